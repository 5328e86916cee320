/* RoPE and the Giraffe variants: frequency values from the implementation notes (d=128, base 1e4, T=2048),
 * relative-position and scale identities of the rotation, xPos factors, randomised positions, gradchecks. */
#include "nltest.h"
#include "nnlab/extend.h"
#include "transformer/rope.h"

static void test_plain_linear(void) {
    nl_rope_config cfg = nl_rope_config_default();
    double th[64];
    NLT_OK(nl_rope_freqs(&cfg, 128, th));
    NLT_NEAR(th[0], 1.0, 0);
    NLT_NEAR(th[32], 0.01, 1e-15);
    NLT_NEAR(th[40], 3.16228e-3, 1e-8);
    cfg.variant = NL_ROPE_LINEAR;
    cfg.scale_train = 4;
    cfg.scale_eval = 8;
    double tl[64], te[64];
    NLT_OK(nl_rope_freqs(&cfg, 128, tl));
    NLT_OK(nl_rope_freqs_scaled(&cfg, 128, cfg.scale_eval, te));
    for (int j = 0; j < 64; j++) {
        NLT_NEAR(tl[j], th[j] / 4, 1e-15);
        NLT_NEAR(te[j], th[j] / 8, 1e-15);
    }
}

static void test_truncated(void) {
    nl_rope_config cfg = nl_rope_config_default();
    cfg.variant = NL_ROPE_TRUNCATED;
    cfg.truncate = 2048;
    double b = 2 * M_PI / 2048, a = b / 8, rho = 2 * M_PI / (16 * 2048);
    NLT_NEAR(b, 3.06796e-3, 1e-8);
    NLT_NEAR(a, 3.83495e-4, 1e-9);
    NLT_NEAR(rho, 1.91748e-4, 1e-9);
    double th[64], plain[64];
    nl_rope_config pc = nl_rope_config_default();
    NLT_OK(nl_rope_freqs(&cfg, 128, th));
    NLT_OK(nl_rope_freqs(&pc, 128, plain));
    for (int j = 0; j <= 40; j++) NLT_NEAR(th[j], plain[j], 0);
    NLT_NEAR(th[40], 3.16228e-3, 1e-8);
    for (int j = 41; j <= 54; j++) NLT_NEAR(th[j], 1.91748e-4, 1e-9);
    for (int j = 55; j <= 63; j++) NLT_NEAR(th[j], 0, 0);
}

static void test_power(void) {
    nl_rope_config cfg = nl_rope_config_default();
    cfg.variant = NL_ROPE_POWER;
    cfg.power = 0.5;
    double th[64];
    NLT_OK(nl_rope_freqs(&cfg, 128, th));
    NLT_NEAR(th[0], 1.0, 0);
    NLT_NEAR(th[1], 0.859172, 1e-6);
    NLT_NEAR(th[32], 7.07107e-3, 1e-8);
    for (int j = 1; j < 64; j++) NLT_CHECK(th[j] < th[j - 1], "power basis decreasing at %d", j);
}

static void test_xpos_zeta(void) {
    double z[64];
    NLT_OK(nl_rope_xpos_zeta(128, z));
    NLT_NEAR(z[0], 0.285714, 1e-6);
    NLT_NEAR(z[32], 0.642857, 1e-6);
    NLT_NEAR(z[63], 0.988839, 1e-6);
}

/* score(n, m) = (R_n q) . (R_m k) through the op, with q, k as [1,1,1,D] vars. */
static double score(nl_ctx *c, const double *q, const double *k, int D, double n, double m, const double *th,
                    const double *zeta, double gamma) {
    int64_t sh[4] = {1, 1, 1, D};
    nl_var *qv = nl_input(c, nl_tensor_wrap((void *)q, NL_F64, 4, sh));
    nl_var *kv = nl_input(c, nl_tensor_wrap((void *)k, NL_F64, 4, sh));
    nl_var *qr = zeta ? nl_rope_xpos(c, qv, &n, th, zeta, gamma, 0) : nl_rope(c, qv, &n, th);
    nl_var *kr = zeta ? nl_rope_xpos(c, kv, &m, th, zeta, gamma, 1) : nl_rope(c, kv, &m, th);
    double s = 0;
    for (int i = 0; i < D; i++) s += ((double *)qr->val.data)[i] * ((double *)kr->val.data)[i];
    return s;
}

static void test_relative_and_scale(void) {
    enum { D = 32 };
    nl_ctx *c = nl_ctx_new(0, 0);
    double q[D], k[D];
    nl_rng r;
    nl_rng_init(&r, 7, 1);
    for (int i = 0; i < D; i++) q[i] = nl_rng_normal(&r), k[i] = nl_rng_normal(&r);
    nl_rope_config cfg = nl_rope_config_default();
    double th[D / 2], ts[D / 2];
    NLT_OK(nl_rope_freqs(&cfg, D, th));
    /* depends on n - m only */
    double s1 = score(c, q, k, D, 10, 3, th, NULL, 0), s2 = score(c, q, k, D, 107, 100, th, NULL, 0);
    double s3 = score(c, q, k, D, 7, 0, th, NULL, 0);
    NLT_NEAR(s1, s2, 1e-10);
    NLT_NEAR(s1, s3, 1e-10);
    double s4 = score(c, q, k, D, 8, 0, th, NULL, 0);
    NLT_CHECK(fabs(s4 - s1) > 1e-3, "score must change with the distance (%g vs %g)", s4, s1);
    /* linear scale s: score(n, m, s) = score(n/s, m/s, 1) */
    cfg.variant = NL_ROPE_LINEAR;
    cfg.scale_train = 4;
    NLT_OK(nl_rope_freqs(&cfg, D, ts));
    NLT_NEAR(score(c, q, k, D, 37, 5, ts, NULL, 0), score(c, q, k, D, 37 / 4.0, 5 / 4.0, th, NULL, 0), 1e-10);
    NLT_NEAR(score(c, q, k, D, 1000, 13, ts, NULL, 0), score(c, q, k, D, 250, 3.25, th, NULL, 0), 1e-9);
    /* xPos: also relative; magnitudes decay with distance */
    double z[D / 2];
    NLT_OK(nl_rope_xpos_zeta(D, z));
    double x1 = score(c, q, k, D, 10, 3, th, z, 16), x2 = score(c, q, k, D, 510, 503, th, z, 16);
    NLT_NEAR(x1, x2, 1e-9);
    /* at distance 0 xPos equals plain RoPE at distance 0 (factors cancel) */
    NLT_NEAR(score(c, q, k, D, 50, 50, th, z, 16), score(c, q, k, D, 0, 0, th, NULL, 0), 1e-10);
    /* with q == k (all pairs positive), the xPos score at a distance is the plain score weighted down */
    double one[D];
    for (int i = 0; i < D; i++) one[i] = 1;
    NLT_CHECK(score(c, one, one, D, 0, 0, th, z, 16) > score(c, one, one, D, 40, 0, th, z, 16) + 1e-3, "xpos decays");
    nl_ctx_free(c);
}

static void test_rotation_values(void) {
    /* D = 4: theta = {1, 0.5}; pos 2: pairs (x0, x2) rotated by 2 rad, (x1, x3) by 1 rad */
    double x[4] = {1, 2, 3, 4}, th[2] = {1, 0.5}, pos = 2, y[4];
    nl_rope_rotate_row(NL_F64, y, x, 4, pos, th, 0);
    NLT_NEAR(y[0], 1 * cos(2) - 3 * sin(2), 1e-14);
    NLT_NEAR(y[2], 3 * cos(2) + 1 * sin(2), 1e-14);
    NLT_NEAR(y[1], 2 * cos(1) - 4 * sin(1), 1e-14);
    NLT_NEAR(y[3], 4 * cos(1) + 2 * sin(1), 1e-14);
    double back[4];
    nl_rope_rotate_row(NL_F64, back, y, 4, pos, th, 1);
    for (int i = 0; i < 4; i++) NLT_NEAR(back[i], x[i], 1e-14);
    /* op agrees with the row kernel, also for a strided (permuted) input */
    nl_ctx *c = nl_ctx_new(0, 0);
    int64_t sh[4] = {1, 3, 2, 4}; /* [B, T, H, D] -> permute to [B, H, T, D] */
    double buf[24], ps[3] = {0, 1.5, 7};
    for (int i = 0; i < 24; i++) buf[i] = sin(i + 1.0);
    nl_var *v = nl_input(c, nl_tensor_wrap(buf, NL_F64, 4, sh));
    int perm[4] = {0, 2, 1, 3};
    nl_var *p = nl_permute(c, v, perm);
    nl_var *o = nl_rope(c, p, ps, th);
    NLT_CHECK(o != NULL, "%s", nl_last_error());
    for (int h = 0; h < 2; h++)
        for (int t = 0; t < 3; t++) {
            double ref[4];
            nl_rope_rotate_row(NL_F64, ref, buf + (t * 2 + h) * 4, 4, ps[t], th, 0);
            for (int i = 0; i < 4; i++) NLT_NEAR(((double *)o->val.data)[(h * 3 + t) * 4 + i], ref[i], 1e-14);
        }
    /* theta 0 leaves the pair unchanged; f32 path */
    float xf[4] = {1, 2, 3, 4}, yf[4];
    double th0[2] = {0, 0};
    nl_rope_rotate_row(NL_F32, yf, xf, 4, 123.0, th0, 0);
    for (int i = 0; i < 4; i++) NLT_NEAR(yf[i], xf[i], 0);
    nl_ctx_free(c);
}

static void test_random_positions(void) {
    nl_rng r, r2;
    nl_rng_init(&r, 3, 5);
    nl_rng_init(&r2, 3, 5);
    double p[256], p2[256];
    nl_rope_random_positions(&r, 256, 256, p);
    nl_rope_random_positions(&r2, 256, 256, p2);
    int mono = 1, same = 1;
    for (int i = 0; i < 256; i++) {
        if (i && p[i] < p[i - 1]) mono = 0;
        if (p[i] != p2[i]) same = 0;
    }
    NLT_CHECK(mono, "positions must be non-decreasing");
    NLT_CHECK(same, "same seed -> same positions");
    NLT_CHECK(p[255] <= 256 + 1e-9 && p[0] >= 0, "within [0, L]: last %g", p[255]);
    /* mean step 1, so the last position is near L (either rescaled to L or a little below) */
    NLT_CHECK(p[255] > 200, "last position %g should be close to 256", p[255]);
    /* not integers */
    int frac = 0;
    for (int i = 0; i < 256; i++) frac += fabs(p[i] - round(p[i])) > 1e-6;
    NLT_CHECK(frac > 200, "positions should be fractional (%d)", frac);
}

typedef struct { double pos[5]; double th[3]; double z[3]; int mode; } gc_ud;
static nl_var *f_rope(nl_ctx *c, nl_var **in, void *ud) {
    gc_ud *u = ud;
    if (u->mode == 0) return nl_rope(c, in[0], u->pos, u->th);
    return nl_rope_xpos(c, in[0], u->pos, u->th, u->z, 4.0, u->mode == 2);
}

static void test_gradcheck(void) {
    gc_ud u = {{0, 1, 2.5, 4, 9.25}, {1, 0.3, 0.01}, {0, 0, 0}, 0};
    NLT_OK(nl_rope_xpos_zeta(6, u.z));
    for (int dt = 0; dt < 2; dt++)
        for (int mode = 0; mode < 3; mode++) {
            u.mode = mode;
            int64_t sh[4] = {2, 2, 5, 6};
            nl_tensor t = nl_tensor_wrap(calloc(120, nl_dtype_size((nl_dtype)dt)), (nl_dtype)dt, 4, sh);
            nl_rng r;
            nl_rng_init(&r, 11 + mode, 2);
            nl_rng_fill_uniform(&r, &t, -1, 1);
            nl_gc_result res;
            nl_status s = dt == NL_F64 ? nl_gradcheck(f_rope, &u, 1, &t, NULL, 1e-6, 1e-9, 1e-6, &res)
                                       : nl_gradcheck(f_rope, &u, 1, &t, NULL, 1e-2, 2e-3, 2e-2, &res);
            NLT_CHECK(s == NL_OK && res.checked == 120, "gradcheck mode %d %s: %s", mode,
                      nl_dtype_name((nl_dtype)dt), nl_last_error());
            free(t.data);
        }
}

static void test_errors(void) {
    nl_rope_config cfg = nl_rope_config_default();
    double th[64];
    NLT_CHECK(nl_rope_freqs(&cfg, 7, th) == NL_EINVAL, "odd dim");
    NLT_CHECK(nl_rope_freqs(&cfg, 0, th) == NL_EINVAL, "zero dim");
    cfg.scale_eval = 2;
    NLT_CHECK(nl_rope_freqs(&cfg, 8, th) == NL_EINVAL, "plain with scale");
    NLT_CHECK(strstr(nl_last_error(), "plain") != NULL, "message: %s", nl_last_error());
    cfg.variant = NL_ROPE_LINEAR;
    cfg.scale_train = 0;
    NLT_CHECK(nl_rope_freqs(&cfg, 8, th) == NL_EINVAL, "zero scale");
    cfg = nl_rope_config_default();
    cfg.variant = NL_ROPE_TRUNCATED;
    cfg.truncate = -1;
    NLT_CHECK(nl_rope_config_check(&cfg) == NL_EINVAL, "negative truncate");
    nl_rope_variant v;
    NLT_CHECK(nl_rope_variant_parse("yarn", &v) == NL_EINVAL, "unknown variant");
    NLT_CHECK(strstr(nl_last_error(), "plain|linear|power|truncated|xpos") != NULL, "lists choices: %s", nl_last_error());
    NLT_OK(nl_rope_variant_parse("truncated", &v));
    NLT_CHECK(v == NL_ROPE_TRUNCATED, "parse");
    NLT_CHECK(!strcmp(nl_rope_variant_name(NL_ROPE_XPOS), "xpos"), "name");
    nl_ctx *c = nl_ctx_new(0, 0);
    float buf[12] = {0};
    int64_t sh3[3] = {1, 3, 4}, sh4[4] = {1, 1, 3, 3};
    double pos[3] = {0, 1, 2}, t2[2] = {1, 1};
    NLT_CHECK(nl_rope(c, nl_input(c, nl_tensor_wrap(buf, NL_F32, 3, sh3)), pos, t2) == NULL, "3-d input");
    NLT_CHECK(nl_rope(c, nl_input(c, nl_tensor_wrap(buf, NL_F32, 4, sh4)), pos, t2) == NULL, "odd D");
    NLT_CHECK(nl_rope(c, NULL, pos, t2) == NULL, "NULL propagates");
    nl_ctx_free(c);
}

int main(void) {
    nl_threads_init();
    NLT_RUN(test_plain_linear);
    NLT_RUN(test_truncated);
    NLT_RUN(test_power);
    NLT_RUN(test_xpos_zeta);
    NLT_RUN(test_relative_and_scale);
    NLT_RUN(test_rotation_values);
    NLT_RUN(test_random_positions);
    NLT_RUN(test_gradcheck);
    NLT_RUN(test_errors);
    return nlt_finish();
}
