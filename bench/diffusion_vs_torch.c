/* bench/diffusion_vs_torch.c — one DDPM training step (forward, backward, AdamW) of the same UNet, nnlab vs PyTorch.
 *
 * UNet (lib/diffusion): image size S, base channels ch, ch_mult {1,2,2}, GroupNorm groups 4 (ch 16) / 8 (ch 32), one
 * attention block at the lowest resolution, sinusoidal time embedding; epsilon-prediction MSE at uniform random t of
 * a linear schedule (T = 1000); AdamW. Random images in [-1, 1] (only the speed is measured). PyTorch runs the same
 * architecture in bench/diffusion_vs_torch.py (/usr/bin/python3; OMP/OPENBLAS/MKL_NUM_THREADS and
 * torch.set_num_threads pinned to T), started right after the nnlab measurement at the same thread count, same run.
 *
 * Timing: `warmup` untimed steps, then the median over `repeats` blocks of `steps` steps (wall and process CPU).
 * Usage: bench_diffusion_vs_torch [--size 16] [--ch 16] [--batch 64] [--steps 10] [--repeats 3] [--no-torch]
 * Env: NLB_THREADS (default "1,2"), NL_SOURCE_DIR (to find bench/diffusion_vs_torch.py). */
#include "bench_util.h"
#include "diffusion/diffusion.h"

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    int size = 16, ch = 16, batch = 64, steps = 10, repeats = 3, torch = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--size") && i + 1 < argc) size = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--ch") && i + 1 < argc) ch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--repeats") && i + 1 < argc) repeats = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-torch")) torch = 0;
        else {
            fprintf(stderr, "usage: %s [--size S] [--ch C] [--batch B] [--steps K] [--repeats R] [--no-torch]\n", argv[0]);
            return 2;
        }
    }
    if (repeats < 1) repeats = 1;
    if (repeats > 32) repeats = 32;
    if (steps < 1) steps = 1;
    int ts[8];
    int nt = nlb_thread_list(ts, 8);
    nl_unet_config cfg = nl_unet_defaults(size);
    cfg.base_channels = ch;
    cfg.groups = ch >= 32 ? 8 : 4;
    nl_diffusion d;
    NLB_CHECK(nl_diffusion_init(&d, 1000, NL_DIFF_LINEAR) == NL_OK);
    const int64_t D = (int64_t)size * size;
    float *x = malloc((size_t)(batch * D) * sizeof(float));
    NLB_CHECK(x);
    nl_rng r;
    nl_rng_init(&r, 1, 0);
    for (int64_t i = 0; i < batch * D; i++) x[i] = (float)(2 * nl_rng_uniform(&r) - 1);
    char title[160];
    snprintf(title, sizeof title, "DDPM training step, UNet %dx%d ch %d mult 1,2,2 attn, batch %d: nnlab vs PyTorch", size, size,
             ch, batch);
    nlb_header(title);
    double nl_w[8] = {0}, nl_c[8] = {0}, t_w[8] = {0}, t_c[8] = {0};
    for (int k = 0; k < nt; k++) {
        const int T = ts[k];
        nlb_set_threads(T);
        printf("\n-- threads %d (load %.2f)\n", T, nlb_loadavg());
        nl_unet u;
        NLB_CHECK(nl_unet_init(&u, &cfg, 1) == NL_OK);
        nl_optim_config oc = nl_optim_defaults(NL_OPT_ADAMW);
        oc.lr = 1e-3;
        nl_optim o;
        NLB_CHECK(nl_optim_init(&o, &u.ps, &oc) == NL_OK);
        nl_ctx *c = nl_ctx_new((size_t)64 << 20, 0);
        double w[32], cs[32];
        for (int rep = -1; rep < repeats; rep++) { /* rep -1: warmup */
            const double w0 = nlb_now(), c0 = cpu_now();
            for (int s = 0; s < (rep < 0 ? 2 : steps); s++) {
                nl_params_zero_grad(&u.ps);
                nl_var *loss = nl_diffusion_loss(c, &d, &u, x, batch, &r);
                NLB_CHECK(loss);
                NLB_CHECK(nl_backward(c, loss) == NL_OK);
                NLB_CHECK(nl_optim_step(&o) == NL_OK);
                nl_ctx_reset(c);
            }
            if (rep >= 0) w[rep] = (nlb_now() - w0) / steps, cs[rep] = (cpu_now() - c0) / steps;
        }
        nl_w[k] = nlb_median(w, repeats);
        nl_c[k] = nlb_median(cs, repeats);
        printf("NNLAB_DIFFUSION threads=%d params=%lld step_ms=%.2f cpu_ms=%.2f\n", T, (long long)nl_unet_param_count(&u),
               1e3 * nl_w[k], 1e3 * nl_c[k]);
        fflush(stdout);
        nl_ctx_free(c);
        nl_optim_free(&o);
        nl_unet_free(&u);
        if (torch) {
            char args[160];
            snprintf(args, sizeof args, "--size %d --ch %d --batch %d --steps %d --repeats %d", size, ch, batch, steps, repeats);
            FILE *p = nlb_python_open("diffusion_vs_torch.py", T, args);
            char line[1024];
            while (p && fgets(line, sizeof line, p)) {
                fputs(line, stdout);
                const char *q = strstr(line, "TORCH_DIFFUSION "), *a = q ? strstr(q, "step_ms=") : NULL,
                           *b = q ? strstr(q, "cpu_ms=") : NULL;
                if (a && b) t_w[k] = 1e-3 * atof(a + 8), t_c[k] = 1e-3 * atof(b + 7);
            }
            if (p && pclose(p) != 0) fprintf(stderr, "torch side exited with an error\n");
        }
    }
    printf("\nsummary DDPM training step (median of %d blocks of %d steps; ms per step)\n", repeats, steps);
    printf("%-7s %10s %10s %10s %10s %9s %9s\n", "threads", "nnlab ms", "nnlab cpu", "torch ms", "torch cpu", "nl/torch",
           "nl/t CPU");
    for (int k = 0; k < nt; k++)
        printf("%-7d %10.2f %10.2f %10.2f %10.2f %9.2f %9.2f\n", ts[k], 1e3 * nl_w[k], 1e3 * nl_c[k], 1e3 * t_w[k],
               1e3 * t_c[k], t_w[k] > 0 ? nl_w[k] / t_w[k] : 0.0, t_c[k] > 0 ? nl_c[k] / t_c[k] : 0.0);
    printf("(nl/torch < 1: nnlab is faster)\n");
    free(x);
    nl_diffusion_free(&d);
    return 0;
}
