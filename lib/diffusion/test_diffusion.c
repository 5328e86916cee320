/* lib/diffusion: schedules, UNet shapes and training, samplers, EMA, checkpoints, PNG, FD. */
#include "diffusion/diffusion.h"
#include "nltest.h"
#include <unistd.h>

static nl_unet_config tiny(void) {
    nl_unet_config c = nl_unet_defaults(16);
    c.base_channels = 8;
    c.groups = 4;
    return c;
}

static void test_schedules(void) {
    nl_diffusion d;
    NLT_OK(nl_diffusion_init(&d, 1000, NL_DIFF_LINEAR));
    NLT_NEAR(d.beta[0], 1e-4, 1e-12);
    NLT_NEAR(d.beta[999], 0.02, 1e-12);
    NLT_CHECK(d.abar[999] < 1e-4 && d.abar[999] > 0, "abar_T %g", d.abar[999]);
    nl_diffusion_free(&d);
    NLT_OK(nl_diffusion_init(&d, 1000, NL_DIFF_COSINE));
    /* abar_t = f(t+1)/f(0) with f(t) = cos^2((t/T + s)/(1 + s) pi/2) (until the 0.999 clip) */
    const double f0 = pow(cos(0.008 / 1.008 * M_PI / 2), 2), f500 = pow(cos((0.5 + 0.001 + 0.008) / 1.008 * M_PI / 2), 2);
    NLT_NEAR(d.abar[500], f500 / f0, 1e-9);
    for (int t = 1; t < 1000; t++) NLT_CHECK(d.abar[t] < d.abar[t - 1], "abar decreasing at %d", t);
    nl_diffusion_free(&d);
    NLT_CHECK(nl_diffusion_init(&d, 1, NL_DIFF_LINEAR) == NL_EINVAL, "T = 1");
    nl_diff_schedule k;
    NLT_CHECK(nl_diff_schedule_parse("quadratic", &k) == NL_EINVAL, "bad schedule name");
}

static void test_unet_forward(void) {
    int sizes[3] = {16, 28, 32};
    for (int i = 0; i < 3; i++) {
        nl_unet_config cfg = tiny();
        cfg.image_size = sizes[i];
        if (sizes[i] == 28) cfg.levels = 3; /* 28 -> 14 -> 7 */
        nl_unet u;
        NLT_OK(nl_unet_init(&u, &cfg, 1));
        nl_ctx *c = nl_ctx_new(1 << 24, 0);
        int64_t sh[4] = {3, 1, sizes[i], sizes[i]};
        nl_var *x = nl_new(c, NL_F32, 4, sh);
        for (int64_t k = 0; k < 3 * sizes[i] * sizes[i]; k++) ((float *)x->val.data)[k] = (float)sin(0.1 * k);
        float t[3] = {0, 10, 999};
        nl_var *y = nl_unet_forward(c, &u, x, t);
        NLT_CHECK(y && y->val.shape[0] == 3 && y->val.shape[2] == sizes[i] && y->val.shape[3] == sizes[i], "shape S=%d: %s",
                  sizes[i], nl_last_error());
        nl_ctx_free(c);
        nl_unet_free(&u);
    }
    nl_unet_config bad = tiny();
    bad.groups = 3;
    nl_unet u;
    NLT_CHECK(nl_unet_init(&u, &bad, 1) == NL_EINVAL, "groups 3 with 8 channels");
    bad = tiny();
    bad.image_size = 18;
    NLT_CHECK(nl_unet_init(&u, &bad, 1) == NL_EINVAL, "18 not divisible by 4");
}

static nl_var *count_hook(nl_ctx *c, nl_param *p, nl_var *w, void *ud) {
    (*(int *)ud)++;
    return w;
}

/* every parameter receives a gradient from one loss; the weight hook sees every conv / linear weight once per forward */
static void test_grad_reaches_all(void) {
    nl_unet_config cfg = tiny();
    nl_unet u;
    NLT_OK(nl_unet_init(&u, &cfg, 4));
    nl_diffusion d;
    NLT_OK(nl_diffusion_init(&d, 100, NL_DIFF_LINEAR));
    float x[4 * 256];
    for (int i = 0; i < 4 * 256; i++) x[i] = (float)cos(0.3 * i);
    int calls = 0, matrices = 0;
    for (int i = 0; i < u.ps.n; i++) matrices += nl_unet_is_matrix(u.ps.p[i]);
    u.hook = count_hook;
    u.hook_ud = &calls;
    nl_ctx *c = nl_ctx_new(1 << 24, 0);
    nl_rng r;
    nl_rng_init(&r, 1, 0);
    nl_params_zero_grad(&u.ps);
    nl_var *loss = nl_diffusion_loss(c, &d, &u, x, 4, &r);
    NLT_CHECK(loss != NULL, "%s", nl_last_error());
    if (loss) NLT_OK(nl_backward(c, loss));
    NLT_CHECK(calls == matrices, "hook calls %d, matrices %d", calls, matrices);
    int dead = 0;
    for (int i = 0; i < u.ps.n; i++) {
        const nl_param *p = u.ps.p[i];
        const float *g = (const float *)u.ps.grad + p->offset;
        int any = 0;
        for (int64_t k = 0; k < p->numel; k++) any |= g[k] != 0;
        if (!any) {
            dead++;
            printf("  no gradient: %s\n", p->name);
        }
    }
    NLT_CHECK(dead == 0, "%d parameters without gradient", dead);
    nl_ctx_free(c);
    nl_diffusion_free(&d);
    nl_unet_free(&u);
}

/* a few hundred steps on 64 copies of two images: the loss must fall well below its start */
static void test_train_and_sample(void) {
    nl_unet_config cfg = tiny();
    nl_unet u;
    NLT_OK(nl_unet_init(&u, &cfg, 2));
    nl_diffusion d;
    NLT_OK(nl_diffusion_init(&d, 100, NL_DIFF_COSINE));
    float *x = malloc(64 * 256 * sizeof(float));
    for (int i = 0; i < 64; i++)
        for (int p = 0; p < 256; p++) x[i * 256 + p] = (i % 2 ? (p / 16 < 8) : (p % 16 < 8)) ? 0.8f : -0.8f;
    nl_diffusion_train_config tc = nl_diffusion_train_defaults();
    tc.steps = 10;
    tc.batch = 16;
    double l0, l1;
    NLT_OK(nl_diffusion_train(&u, &d, &tc, x, 64, NULL, &l0));
    nl_ema ema;
    NLT_OK(nl_ema_init(&ema, &u.ps, 0.9));
    tc.steps = 150;
    tc.seed = 3;
    NLT_OK(nl_diffusion_train(&u, &d, &tc, x, 64, &ema, &l1));
    NLT_CHECK(l1 < 0.6 * l0, "loss %g -> %g", l0, l1);
    float *s = malloc(8 * 256 * sizeof(float));
    nl_rng r;
    nl_rng_init(&r, 5, 0);
    NLT_OK(nl_diffusion_sample_ddim(&u, &d, 8, 20, 0.0, &r, s));
    int inr = 1;
    for (int i = 0; i < 8 * 256; i++) inr &= s[i] >= -1 && s[i] <= 1 && s[i] == s[i];
    NLT_CHECK(inr, "DDIM samples in [-1, 1]");
    NLT_OK(nl_diffusion_sample_ddpm(&u, &d, 4, &r, s));
    NLT_CHECK(nl_diffusion_sample_ddim(&u, &d, 4, 0, 0.0, &r, s) == NL_EINVAL, "0 DDIM steps");
    /* EMA swap twice restores */
    float p0 = ((float *)u.ps.data)[5];
    nl_ema_swap(&ema, &u.ps);
    nl_ema_swap(&ema, &u.ps);
    NLT_CHECK(((float *)u.ps.data)[5] == p0, "ema swap twice");
    nl_ema_free(&ema);
    free(s);
    free(x);
    nl_diffusion_free(&d);
    nl_unet_free(&u);
}

static void test_checkpoint(void) {
    nl_unet_config cfg = tiny();
    nl_unet u, v, w;
    NLT_OK(nl_unet_init(&u, &cfg, 7));
    nl_diffusion d;
    NLT_OK(nl_diffusion_init(&d, 50, NL_DIFF_LINEAR));
    const char *path = "/tmp/nl_test_diffusion_unet.safetensors";
    NLT_OK(nl_unet_save_ex(&u, &d, path));
    NLT_OK(nl_unet_load_new(&v, path));
    NLT_CHECK(v.ps.total == u.ps.total && !memcmp(v.ps.data, u.ps.data, (size_t)u.ps.total * sizeof(float)), "round trip");
    nl_diffusion d2;
    NLT_OK(nl_diffusion_from_file(&d2, path));
    NLT_CHECK(d2.T == 50 && d2.kind == NL_DIFF_LINEAR && d2.abar[49] == d.abar[49], "schedule round trip");
    nl_diffusion_free(&d2);
    /* another architecture: a clear error naming the field */
    nl_unet_config other = cfg;
    other.base_channels = 16;
    NLT_OK(nl_unet_init(&w, &other, 1));
    NLT_CHECK(nl_unet_load(&w, path) == NL_EFORMAT && strstr(nl_last_error(), "another architecture") &&
                  strstr(nl_last_error(), "base_channels"), "%s", nl_last_error());
    NLT_OK(nl_unet_load(&v, path));
    /* the CLI refuses it too: sample from a file that is not a unet checkpoint */
    const char *mlp = "/tmp/nl_test_diffusion_mlp.safetensors";
    int64_t sizes[3] = {4, 3, 2};
    nl_model_config mc = nl_mlp_config(3, sizes, NL_ACT_RELU, 0);
    nl_model m;
    NLT_OK(nl_model_init(&m, &mc, 1));
    NLT_OK(nl_model_save(&m, mlp, 0, NULL, NULL));
    nl_model_free(&m);
    char *argv[] = {"sample", "--load", (char *)mlp, "--out", "/tmp/nl_test_diffusion_x.png"};
    NLT_CHECK(nl_diffusion_cli(5, argv) == 1, "CLI exit status for a non-unet checkpoint");
    nl_unet_free(&w); /* load_new builds a new UNet into w */
    NLT_CHECK(nl_unet_load_new(&w, mlp) == NL_EFORMAT && strstr(nl_last_error(), "not a unet"), "%s", nl_last_error());
    char *argv2[] = {"train", "--save", "/tmp/x.safetensors", "--schedule", "quadratic"};
    NLT_CHECK(nl_diffusion_cli(5, argv2) == 2, "bad schedule: usage error");
    /* PNG: signature and size */
    float img[4 * 16 * 16];
    for (int i = 0; i < 4 * 256; i++) img[i] = (float)sin(i * 0.05);
    const char *png = "/tmp/nl_test_diffusion_grid.png";
    NLT_OK(nl_png_write_grid(png, img, 4, 16, 2));
    FILE *f = fopen(png, "rb");
    unsigned char hdr[24] = {0};
    NLT_CHECK(f && fread(hdr, 1, 24, f) == 24, "png readable");
    if (f) fclose(f);
    NLT_CHECK(!memcmp(hdr, "\x89PNG\r\n\x1a\n", 8) && hdr[19] == 35 && hdr[23] == 35, "png signature and 35x35 size");
    unlink(path), unlink(mlp), unlink(png);
    nl_diffusion_free(&d);
    nl_unet_free(&u), nl_unet_free(&v), nl_unet_free(&w);
}

static void test_frechet_exact(void) {
    /* 1-D: FD = (m1 - m2)^2 + (s1 - s2)^2 with the unbiased sample moments */
    double a[5] = {1, 2, 3, 4, 5}, b[4] = {10, 14, 10, 14}, fd;
    NLT_OK(nl_frechet_distance(a, 5, b, 4, 1, &fd));
    const double va = 2.5, vb = 16.0 / 3;
    NLT_NEAR(fd, 81 + va + vb - 2 * sqrt(va * vb), 1e-9);
    NLT_OK(nl_frechet_distance(a, 5, a, 5, 1, &fd));
    NLT_NEAR(fd, 0, 1e-12);
    /* 2-D, non-commuting covariances: against tr(Sa + Sb - 2 (Sa^1/2 Sb Sa^1/2)^1/2) from a closed 2x2 form:
     * for 2x2 PSD M, tr(M^1/2) = sqrt(tr M + 2 sqrt(det M)) */
    double A[8] = {0, 0, 2, 1, 0, 2, -2, -3}, B[8] = {1, 0, 1, 3, -1, 1, 3, -2};
    NLT_OK(nl_frechet_distance(A, 4, B, 4, 2, &fd));
    double Sa[4] = {0}, Sb[4] = {0}, ma[2] = {0}, mb[2] = {0};
    for (int i = 0; i < 4; i++) ma[0] += A[2 * i] / 4, ma[1] += A[2 * i + 1] / 4, mb[0] += B[2 * i] / 4, mb[1] += B[2 * i + 1] / 4;
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 2; j++)
            for (int k = 0; k < 2; k++) {
                Sa[j * 2 + k] += (A[2 * i + j] - ma[j]) * (A[2 * i + k] - ma[k]) / 3;
                Sb[j * 2 + k] += (B[2 * i + j] - mb[j]) * (B[2 * i + k] - mb[k]) / 3;
            }
    /* tr((Sa Sb)^1/2) = sqrt(tr(Sa Sb) + 2 sqrt(det(Sa Sb))) */
    const double trp = Sa[0] * Sb[0] + Sa[1] * Sb[2] + Sa[2] * Sb[1] + Sa[3] * Sb[3];
    const double det = (Sa[0] * Sa[3] - Sa[1] * Sa[2]) * (Sb[0] * Sb[3] - Sb[1] * Sb[2]);
    const double ref = (ma[0] - mb[0]) * (ma[0] - mb[0]) + (ma[1] - mb[1]) * (ma[1] - mb[1]) + Sa[0] + Sa[3] + Sb[0] + Sb[3] -
                       2 * sqrt(trp + 2 * sqrt(det));
    NLT_NEAR(fd, ref, 1e-9);
    NLT_CHECK(nl_frechet_distance(a, 1, b, 4, 1, &fd) == NL_EINVAL, "one row");
}

/* FD on classifier features: two disjoint halves of the test set are near each other; the same images with a
 * brightness shift (x + 0.6, clipped) are far. Rule fixed before the first run: FD(A, B) < 0.1 FD(A, shift(B)). */
static void test_fd_features(void) {
    nl_fd_net f;
    nl_status s = nl_fd_net_train(&f, 16, 64, 6000, 1, 1);
    if (s == NL_ENOTFOUND || s == NL_EIO) {
        printf("  (Fashion-MNIST missing: %s)\n", nl_last_error());
        return;
    }
    NLT_OK(s);
    if (s) return;
    NLT_CHECK(f.test_acc > 0.7, "feature net test accuracy %.3f", f.test_acc);
    float *x = NULL;
    int64_t n = 0;
    NLT_OK(nl_diffusion_load_images("fashion-mnist", "test", 0, 16, 4000, &x, NULL, &n));
    const int64_t h = n / 2, D = 256;
    float *sh = malloc((size_t)(h * D) * sizeof(float));
    for (int64_t i = 0; i < h * D; i++) sh[i] = fminf(x[h * D + i] + 0.6f, 1.0f);
    double same, near, far;
    NLT_OK(nl_fd_images(&f, x, h, x, h, &same));
    NLT_OK(nl_fd_images(&f, x, h, x + h * D, h, &near));
    NLT_OK(nl_fd_images(&f, x, h, sh, h, &far));
    printf("  FD: same set %.3g, two halves of the test set %.4g, shifted half %.4g (test acc %.3f)\n", same, near, far, f.test_acc);
    NLT_CHECK(same < 1e-6 * (far + 1), "FD(A, A) = %g", same);
    NLT_CHECK(near < 0.1 * far, "FD(A, B) %g vs FD(A, shift B) %g", near, far);
    const char *path = "/tmp/nl_test_diffusion_fd.safetensors";
    NLT_OK(nl_fd_net_save(&f, path));
    nl_fd_net g;
    NLT_OK(nl_fd_net_load(&g, path));
    double near2;
    NLT_OK(nl_fd_images(&g, x, h, x + h * D, h, &near2));
    NLT_CHECK(near2 == near, "reloaded net gives the same FD (%g vs %g)", near2, near);
    unlink(path);
    nl_fd_net_free(&g);
    nl_fd_net_free(&f);
    free(sh);
    free(x);
}

/* the command end to end on a tiny configuration (skipped without Fashion-MNIST) */
static void test_cli(void) {
    if (access("/usr/share/datasets/fashion-mnist", R_OK) && !getenv("NL_DATA_DIR")) {
        printf("  (Fashion-MNIST missing: skipped)\n");
        return;
    }
    const char *ck = "/tmp/nl_test_diffusion_cli.safetensors", *png = "/tmp/nl_test_diffusion_cli.png";
    char *tr[] = {"train", "--save", (char *)ck, "--size", "16", "--ch", "4", "--groups", "2", "--levels", "2",
                  "--n-train", "128", "--steps", "3", "--batch", "8", "--T", "20", "--classes", "0,1", "--threads", "1"};
    NLT_CHECK(nl_diffusion_cli(23, tr) == 0, "diffusion train: %s", nl_last_error());
    char *sa[] = {"sample", "--load", (char *)ck, "--out", (char *)png, "--n", "6", "--cols", "3", "--ddim-steps", "5"};
    NLT_CHECK(nl_diffusion_cli(11, sa) == 0, "diffusion sample: %s", nl_last_error());
    char *sp[] = {"sample", "--load", (char *)ck, "--out", (char *)png, "--n", "2", "--sampler", "ddpm"};
    NLT_CHECK(nl_diffusion_cli(9, sp) == 0, "diffusion sample ddpm: %s", nl_last_error());
    NLT_CHECK(access(png, R_OK) == 0, "png written");
    char *bad[] = {"sample", "--load", "/nonexistent/x.safetensors", "--out", (char *)png};
    NLT_CHECK(nl_diffusion_cli(5, bad) == 1, "missing checkpoint: exit 1");
    char *noout[] = {"sample", "--load", (char *)ck};
    NLT_CHECK(nl_diffusion_cli(3, noout) == 2, "missing --out: exit 2");
    char *help[] = {"train", "--help"};
    NLT_CHECK(nl_diffusion_cli(2, help) == 0, "--help");
    unlink(ck), unlink(png);
}

int main(void) {
    nl_set_num_threads(1);
    NLT_RUN(test_schedules);
    NLT_RUN(test_unet_forward);
    NLT_RUN(test_grad_reaches_all);
    NLT_RUN(test_train_and_sample);
    NLT_RUN(test_checkpoint);
    NLT_RUN(test_frechet_exact);
    NLT_RUN(test_fd_features);
    NLT_RUN(test_cli);
    return nlt_finish();
}
