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

int main(void) {
    nl_set_num_threads(1);
    NLT_RUN(test_schedules);
    NLT_RUN(test_unet_forward);
    NLT_RUN(test_train_and_sample);
    return nlt_finish();
}
