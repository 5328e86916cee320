/* bench/lminf_decode.c — per-token decoding latency and memory of one attention layer at a long context:
 * LM-Infinite's ring-buffer cache (include/lm_infinite/lm_infinite.h nl_lm_infinite_cache, n_global + n_local slots) against a
 * full KV cache (every past token; rotated keys and values in a growing array, capacity doubling like the LM's
 * cache, reserved up front for the run), both in double precision, same RoPE, same per-key work (one dot product for the score, one axpy for
 * the value).
 *
 * A decode step = append the new token's key/value + attend one query over the cache. For each (method, context N)
 * a fresh process (this program re-executed) appends N random tokens, then times `steps` decode steps, 5 times,
 * and reports the median per-token latency; the process's peak resident memory (VmHWM) and the cache's own
 * bytes are printed too.
 *
 * usage: bench_lminf_decode [--heads 8] [--dim 64] [--global 4] [--local 1024] [--ctx 1024,65536] [--steps 64]
 *        (one thread; the layer shape is that of a 512-wide model with 8 heads of 64) */
#include "bench_util.h"
#include "lm_infinite/lm_infinite.h"
#include <math.h>
#include <sys/wait.h>

typedef struct {
    int64_t H, D, len, cap;
    double *theta;   /* (D/2) */
    double *kr, *v;  /* (H, cap, D) rotated keys, (H, cap, D) values */
    double *sc;      /* (cap) */
} full_cache;

static int full_grow(full_cache *f, int64_t want) {
    int64_t nc = f->cap ? 2 * f->cap : 256;
    if (nc < want) nc = want;
    double *kr = malloc(sizeof(double) * (size_t)(f->H * nc * f->D)), *v = malloc(sizeof(double) * (size_t)(f->H * nc * f->D));
    double *sc = malloc(sizeof(double) * (size_t)nc);
    if (!kr || !v || !sc) return 0;
    for (int64_t h = 0; h < f->H; h++) {
        if (f->len) {
            memcpy(kr + h * nc * f->D, f->kr + h * f->cap * f->D, sizeof(double) * (size_t)(f->len * f->D));
            memcpy(v + h * nc * f->D, f->v + h * f->cap * f->D, sizeof(double) * (size_t)(f->len * f->D));
        }
    }
    free(f->kr); free(f->v); free(f->sc);
    f->kr = kr; f->v = v; f->sc = sc; f->cap = nc;
    return 1;
}

static void rot(const double *x, int64_t D, double pos, const double *th, double *y) {
    const int64_t h = D / 2;
    for (int64_t j = 0; j < h; j++) {
        const double c = cos(pos * th[j]), s = sin(pos * th[j]);
        y[j] = x[j] * c - x[j + h] * s;
        y[j + h] = x[j + h] * c + x[j] * s;
    }
}

static int full_append(full_cache *f, const double *k, const double *v) {
    if (f->len == f->cap && !full_grow(f, 0)) return 0;
    for (int64_t h = 0; h < f->H; h++) {
        rot(k + h * f->D, f->D, (double)f->len, f->theta, f->kr + (h * f->cap + f->len) * f->D);
        memcpy(f->v + (h * f->cap + f->len) * f->D, v + h * f->D, sizeof(double) * (size_t)f->D);
    }
    f->len++;
    return 1;
}

static void full_attend(full_cache *f, const double *q, double *out) {
    const int64_t D = f->D, n = f->len;
    const double scale = 1 / sqrt((double)D);
    double qr[1024], *sc = f->sc;
    for (int64_t h = 0; h < f->H; h++) {
        rot(q + h * D, D, (double)(n - 1), f->theta, qr);
        const double *kr = f->kr + h * f->cap * D, *vv = f->v + h * f->cap * D;
        double mx = -INFINITY;
        for (int64_t i = 0; i < n; i++) {
            double d = 0;
            for (int64_t j = 0; j < D; j++) d += qr[j] * kr[i * D + j];
            sc[i] = d * scale;
            if (sc[i] > mx) mx = sc[i];
        }
        double z = 0, *o = out + h * D;
        for (int64_t j = 0; j < D; j++) o[j] = 0;
        for (int64_t i = 0; i < n; i++) {
            const double p = exp(sc[i] - mx);
            z += p;
            for (int64_t j = 0; j < D; j++) o[j] += p * vv[i * D + j];
        }
        for (int64_t j = 0; j < D; j++) o[j] /= z;
    }
}

static size_t full_bytes(const full_cache *f) { return sizeof(double) * (size_t)(2 * f->H * f->cap * f->D + f->cap + f->D / 2); }

static long vm_hwm_kb(void) {
    FILE *fp = fopen("/proc/self/status", "r");
    if (!fp) return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, fp))
        if (!strncmp(line, "VmHWM:", 6)) kb = atol(line + 6);
    fclose(fp);
    return kb;
}

/* child: one (method, context) measurement; prints one machine-readable line */
static int child(int lminf, int64_t H, int64_t D, int64_t ng, int64_t nloc, int64_t ctx, int steps) {
    nl_set_num_threads(1);
    double theta[512];
    for (int64_t j = 0; j < D / 2; j++) theta[j] = pow(10000.0, -2.0 * (double)j / (double)D);
    nl_rng r;
    nl_rng_init(&r, 5, 0);
    /* a pool of random token vectors reused cyclically (the values do not change the work) */
    const int64_t pool = 512, per = H * D;
    double *buf = malloc(sizeof(double) * (size_t)(pool * per * 3)), out[8192];
    nl_tensor bt = nl_tensor_wrap(buf, NL_F64, 1, (int64_t[]){pool * per * 3});
    nl_rng_fill_normal(&r, &bt, 0, 1);
    int64_t sh[3] = {1, H, D};
    nl_lm_infinite_cache kc;
    full_cache fc = {H, D, 0, 0, theta, NULL, NULL, NULL};
    if (lminf && nl_lm_infinite_cache_init(&kc, 1, H, D, D, theta, (nl_lm_infinite_cfg){ng, nloc, nloc})) {
        fprintf(stderr, "%s\n", nl_last_error());
        return 1;
    }
    /* the full cache reserves room for the whole run, so no reallocation falls in the timed steps */
    if (!lminf && !full_grow(&fc, ctx + 5 * (int64_t)steps + 1)) { fprintf(stderr, "out of memory\n"); return 1; }
    int64_t pos = 0;
#define STEP(do_attend)                                                                              \
    do {                                                                                             \
        const double *kk = buf + (pos % pool) * 3 * per, *vv = kk + per, *qq = vv + per;             \
        if (lminf) {                                                                                 \
            nl_tensor kt = nl_tensor_wrap((void *)kk, NL_F64, 3, sh), vt = nl_tensor_wrap((void *)vv, NL_F64, 3, sh); \
            nl_lm_infinite_cache_append(&kc, &kt, &vt, pos);                                              \
            if (do_attend) {                                                                         \
                nl_tensor qt = nl_tensor_wrap((void *)qq, NL_F64, 3, sh), ot = nl_tensor_wrap(out, NL_F64, 3, sh); \
                nl_lm_infinite_cache_attend(&kc, &qt, pos, &ot);                                          \
            }                                                                                        \
        } else {                                                                                     \
            if (!full_append(&fc, kk, vv)) { fprintf(stderr, "out of memory\n"); return 1; }         \
            if (do_attend) full_attend(&fc, qq, out);                                                \
        }                                                                                            \
        pos++;                                                                                       \
    } while (0)
    while (pos < ctx) STEP(0); /* fill the context (no attention needed for timing) */
    double t[5];
    for (int rep = 0; rep < 5; rep++) {
        double t0 = nlb_now();
        for (int s = 0; s < steps; s++) STEP(1);
        t[rep] = (nlb_now() - t0) / steps;
    }
    const double med = nlb_median(t, 5);
    const size_t cb = lminf ? nl_lm_infinite_cache_bytes(&kc) : full_bytes(&fc);
    printf("RESULT %s %lld %.9f %zu %ld %.6f\n", lminf ? "lminf" : "full", (long long)ctx, med, cb, vm_hwm_kb(), out[0]);
    if (lminf) nl_lm_infinite_cache_free(&kc);
    free(fc.kr); free(fc.v); free(fc.sc); free(buf);
    return 0;
}

int main(int argc, char **argv) {
    int64_t H = 8, D = 64, ng = 4, nloc = 1024, ctxs[8] = {1024, 65536};
    int nctx = 2, steps = 64, is_child = 0, lminf = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--heads") && i + 1 < argc) H = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--dim") && i + 1 < argc) D = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--global") && i + 1 < argc) ng = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--local") && i + 1 < argc) nloc = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--ctx") && i + 1 < argc) {
            nctx = 0;
            for (char *p = argv[++i]; *p && nctx < 8; p++) {
                ctxs[nctx++] = strtoll(p, &p, 10);
                if (!*p) break;
            }
        } else if (!strcmp(argv[i], "--child") && i + 1 < argc) { is_child = 1; lminf = !strcmp(argv[++i], "lminf"); }
        else { fprintf(stderr, "usage: %s [--heads H] [--dim D] [--global G] [--local L] [--ctx N1,N2] [--steps S]\n", argv[0]); return 2; }
    }
    if (D < 2 || D % 2 || D > 1024 || H < 1 || H * D > 8192) { fprintf(stderr, "bad --heads/--dim\n"); return 2; }
    if (is_child) return child(lminf, H, D, ng, nloc, ctxs[0], steps);
    printf("LM-Infinite decoding vs full attention: one layer, %lld heads x %lld dims, n_global %lld, n_local %lld, "
           "1 thread, load %.2f\n", (long long)H, (long long)D, (long long)ng, (long long)nloc, nlb_loadavg());
    printf("%-6s %8s %14s %14s %14s\n", "method", "context", "us/token", "cache MiB", "peak RSS MiB");
    double lat[2][8] = {{0}};
    for (int m = 0; m < 2; m++)
        for (int ci = 0; ci < nctx; ci++) {
            char cbuf[32], sbuf[32], hb[32], db[32], gb[32], lb[32];
            snprintf(cbuf, sizeof cbuf, "%lld", (long long)ctxs[ci]);
            snprintf(sbuf, sizeof sbuf, "%d", steps);
            snprintf(hb, sizeof hb, "%lld", (long long)H);
            snprintf(db, sizeof db, "%lld", (long long)D);
            snprintf(gb, sizeof gb, "%lld", (long long)ng);
            snprintf(lb, sizeof lb, "%lld", (long long)nloc);
            int fds[2];
            if (pipe(fds)) return 1;
            pid_t pid = fork();
            if (pid == 0) {
                dup2(fds[1], 1);
                close(fds[0]);
                execl("/proc/self/exe", argv[0], "--child", m ? "lminf" : "full", "--ctx", cbuf, "--steps", sbuf, "--heads", hb,
                      "--dim", db, "--global", gb, "--local", lb, (char *)NULL);
                _exit(127);
            }
            close(fds[1]);
            char line[512] = {0};
            FILE *fp = fdopen(fds[0], "r");
            char meth[16];
            long long n = 0;
            double sec = 0, chk = 0;
            size_t cb = 0;
            long hwm = 0;
            int got = 0;
            while (fgets(line, sizeof line, fp))
                if (sscanf(line, "RESULT %15s %lld %lf %zu %ld %lf", meth, &n, &sec, &cb, &hwm, &chk) == 6) got = 1;
            fclose(fp);
            int st;
            waitpid(pid, &st, 0);
            if (!got) { printf("%-6s %8lld   (child failed)\n", m ? "lminf" : "full", (long long)ctxs[ci]); continue; }
            lat[m][ci] = sec;
            printf("%-6s %8lld %14.2f %14.3f %14.1f\n", meth, n, 1e6 * sec, cb / 1048576.0, hwm / 1024.0);
        }
    for (int m = 0; m < 2; m++)
        if (nctx >= 2 && lat[m][0] > 0)
            printf("%s: latency ratio context %lld / %lld = %.3f\n", m ? "lminf" : "full", (long long)ctxs[nctx - 1],
                   (long long)ctxs[0], lat[m][nctx - 1] / lat[m][0]);
    return 0;
}
