/* Optimizers against hand-computed PyTorch updates, groups, masks, frozen params, schedules, clipping,
 * non-finite gradients, f32/f64 stores, convergence on Rosenbrock. */
#include "nltest.h"
#include <stdlib.h>
#include <string.h>

/* A store with one parameter "w" of 2 elements, p = [1, -2]. */
static nl_var *store2(nl_params *ps, nl_dtype dt) {
    nl_params_init(ps, dt);
    int64_t sh[1] = {2};
    nl_var *w = nl_params_add(ps, "w", 1, sh);
    nl_tensor_set(&w->val, 0, 1.0);
    nl_tensor_set(&w->val, 1, -2.0);
    return w;
}
static void set_grad(nl_var *v, double g0, double g1) {
    nl_tensor_set(&v->grad, 0, g0);
    nl_tensor_set(&v->grad, 1, g1);
}
static double P(nl_var *v, int i) { return nl_tensor_get(&v->val, i); }

/* SGD, lr 0.1, p = [1, -2], g = [0.5, 0.25] every step.
 *  plain:      p1 = p - 0.1 g = [0.95, -2.025]
 *  momentum .9: step 1 buf = g, p1 = [0.95, -2.025]; step 2 buf = .9 g + g = [0.95, 0.475],
 *              p2 = p1 - 0.1 buf = [0.855, -2.0725]
 *  nesterov .9: step 1 buf = g, d = g + .9 buf = 1.9 g = [0.95, 0.475], p1 = [0.905, -2.0475];
 *              step 2 buf = 1.9 g, d = g + .9 * 1.9 g = 2.71 g = [1.355, 0.6775], p2 = [0.7695, -2.11525]
 *  wd 0.1 (L2): g' = g + 0.1 p = [0.6, 0.05], p1 = [0.94, -2.005] */
static void test_sgd(void) {
    struct {
        double mom;
        int nest;
        double wd;
        int steps;
        double e0, e1;
    } cases[4] = {
        {0, 0, 0, 1, 0.95, -2.025},
        {0.9, 0, 0, 2, 0.855, -2.0725},
        {0.9, 1, 0, 2, 0.7695, -2.11525},
        {0, 0, 0.1, 1, 0.94, -2.005},
    };
    for (int k = 0; k < 4; k++)
        for (int dt = 0; dt < 2; dt++) {
            nl_params ps;
            nl_var *w = store2(&ps, dt ? NL_F64 : NL_F32);
            nl_optim_config cfg = nl_optim_defaults(NL_OPT_SGD);
            cfg.lr = 0.1;
            cfg.momentum = cases[k].mom;
            cfg.nesterov = cases[k].nest;
            cfg.weight_decay = cases[k].wd;
            nl_optim o;
            NLT_OK(nl_optim_init(&o, &ps, &cfg));
            for (int s = 0; s < cases[k].steps; s++) {
                set_grad(w, 0.5, 0.25);
                NLT_OK(nl_optim_step(&o));
            }
            double tol = dt ? 1e-14 : 1e-6;
            NLT_NEAR(P(w, 0), cases[k].e0, tol);
            NLT_NEAR(P(w, 1), cases[k].e1, tol);
            NLT_CHECK(o.step == cases[k].steps, "step count");
            nl_optim_free(&o);
            nl_params_free(&ps);
        }
}

/* Adam / AdamW, lr 0.1, betas (0.9, 0.999), eps 1e-8, p = [1, -2], g1 = [0.5, 0.25], g2 = [-1, 0.5].
 * PyTorch: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps).
 *  Adam step 1: mhat = g, vhat = g^2 -> p -= 0.1 g/(|g| + 1e-8) = [0.900000002, -2.099999996]
 *  Adam step 2: m = [-0.055, 0.0725], v = [0.00124975, 0.0003124375], bc1 = 0.19, bc2 = 0.001999
 *     element 0: 0.9 - 0.1 * (-0.055/0.19) / (sqrt(0.00124975)/sqrt(0.001999) + 1e-8) = 0.93661035424056538
 *     element 1: -2.0965181961408047 - ... = -2.1965181961408047
 *  Adam + L2 0.1 (g += 0.1 p), 2 steps: [0.92526351944560614, -2.1847119740372833]
 *  AdamW wd 0.1: p *= 1 - 0.1*0.1 first; step 1: [0.99 - 0.099999998, -1.98 - 0.099999996]
 *     = [0.890000002, -2.079999996]; step 2: [0.91771035422056535, -2.1557181961808047]
 * (numbers from a line-by-line transcription of the PyTorch update in double precision) */
static void test_adam(void) {
    struct {
        nl_optim_kind kind;
        double wd;
        int steps;
        double e0, e1, m0, v0;
    } cases[5] = {
        {NL_OPT_ADAM, 0, 1, 0.90000000199999997, -2.0999999960000002, 0.05, 0.00025},
        {NL_OPT_ADAM, 0, 2, 0.93661035424056538, -2.1965181961408047, -0.055, 0.00124975},
        {NL_OPT_ADAM, 0.1, 2, 0.92526351944560614, -2.1847119740372833, NAN, NAN},
        {NL_OPT_ADAMW, 0.1, 1, 0.89000000199999996, -2.0799999960000002, 0.05, 0.00025},
        {NL_OPT_ADAMW, 0.1, 2, 0.91771035422056535, -2.1557181961808047, -0.055, 0.00124975},
    };
    for (int k = 0; k < 5; k++)
        for (int dt = 0; dt < 2; dt++) {
            nl_params ps;
            nl_var *w = store2(&ps, dt ? NL_F64 : NL_F32);
            nl_optim_config cfg = nl_optim_defaults(cases[k].kind);
            cfg.lr = 0.1;
            cfg.weight_decay = cases[k].wd;
            nl_optim o;
            NLT_OK(nl_optim_init(&o, &ps, &cfg));
            for (int s = 0; s < cases[k].steps; s++) {
                if (s == 0) set_grad(w, 0.5, 0.25);
                else set_grad(w, -1.0, 0.5);
                NLT_OK(nl_optim_step(&o));
            }
            double tol = dt ? 1e-14 : 2e-6;
            NLT_NEAR(P(w, 0), cases[k].e0, tol);
            NLT_NEAR(P(w, 1), cases[k].e1, tol);
            if (!isnan(cases[k].m0)) {
                double m0 = dt ? ((double *)o.m)[0] : ((float *)o.m)[0];
                double v0 = dt ? ((double *)o.v)[0] : ((float *)o.v)[0];
                NLT_NEAR(m0, cases[k].m0, dt ? 1e-15 : 1e-8);
                NLT_NEAR(v0, cases[k].v0, dt ? 1e-15 : 1e-9);
            }
            nl_optim_free(&o);
            nl_params_free(&ps);
        }
}

/* AdamW on long f32 tensors (n = 1003: the vector body and its tail below the threading threshold; n = 40000: above
 * it) equals, bit for bit, the scalar double-precision formula of update_adam_f32. The `if` of an
 * `omp parallel for simd` without the `parallel:` modifier also gates simd (OpenMP 5.0), so small tensors ran scalar. */
static void test_adam_long(void) {
    const int64_t ns[2] = {1003, 40000};
    for (int k = 0; k < 2; k++) {
        const int64_t n = ns[k];
        nl_params ps;
        nl_params_init(&ps, NL_F32);
        nl_var *w = nl_params_add(&ps, "w", 1, &n);
        float *ref = malloc((size_t)n * 3 * sizeof *ref), *rm = ref + n, *rv = ref + 2 * n; /* (3, n): p, m, v */
        NLT_CHECK(w && ref, "alloc");
        for (int64_t i = 0; i < n; i++) {
            ref[i] = ((float *)w->val.data)[i] = (float)sin(0.37 * (double)i);
            rm[i] = rv[i] = 0.0f;
        }
        nl_optim_config cfg = nl_optim_defaults(NL_OPT_ADAMW);
        cfg.lr = 1e-3;
        cfg.weight_decay = 1e-3;
        nl_optim o;
        NLT_OK(nl_optim_init(&o, &ps, &cfg));
        for (int t = 1; t <= 3; t++) {
            float *g = w->grad.data;
            for (int64_t i = 0; i < n; i++) g[i] = (float)cos(0.11 * (double)(i * t) + t);
            NLT_OK(nl_optim_step(&o));
            double bc1 = 1.0 - pow(cfg.beta1, t), sbc2 = sqrt(1.0 - pow(cfg.beta2, t)), decay = 1.0 - cfg.lr * cfg.weight_decay;
            for (int64_t i = 0; i < n; i++) {
                double p = ref[i], gd = 1.0 * (double)g[i] + 0.0 * p;
                p *= decay;
                float mf = (float)(cfg.beta1 * (double)rm[i] + (1.0 - cfg.beta1) * gd);
                float vf = (float)(cfg.beta2 * (double)rv[i] + (1.0 - cfg.beta2) * gd * gd);
                rm[i] = mf;
                rv[i] = vf;
                ref[i] = (float)(p - cfg.lr / bc1 * (double)mf / (sqrt((double)vf) / sbc2 + cfg.eps));
            }
        }
        int64_t bad = 0;
        for (int64_t i = 0; i < n; i++) bad += memcmp(&ref[i], (float *)w->val.data + i, sizeof(float)) != 0;
        NLT_CHECK(bad == 0, "AdamW n = %lld: %lld values differ from the scalar formula", (long long)n, (long long)bad);
        free(ref);
        nl_optim_free(&o);
        nl_params_free(&ps);
    }
}

/* The f32 Adam/AdamW update is bit-identical to the plain scalar formula is bit-identical to the plain scalar formula (odd length: vector body plus
 * tail; clipping, weight decay and bias correction active; 3 steps). */
static void test_adam_f32_exact(void) {
    for (int kind = 0; kind < 2; kind++) {
        const int64_t n = 1003;
        nl_params ps;
        nl_params_init(&ps, NL_F32);
        int64_t sh[1] = {n};
        nl_var *w = nl_params_add(&ps, "w", 1, sh);
        NLT_CHECK(w != NULL, "add");
        float *pv = w->val.data, *gv = w->grad.data;
        float *rp = malloc(sizeof(float) * n), *rm = calloc(n, sizeof(float)), *rv = calloc(n, sizeof(float));
        nl_rng r;
        nl_rng_init(&r, 7, 1);
        for (int64_t i = 0; i < n; i++) rp[i] = pv[i] = (float)nl_rng_normal(&r);
        nl_optim_config cfg = nl_optim_defaults(kind ? NL_OPT_ADAMW : NL_OPT_ADAM);
        cfg.lr = 3e-3;
        cfg.weight_decay = 0.01;
        cfg.beta2 = 0.99;
        cfg.clip_norm = 1.0;
        nl_optim o;
        NLT_OK(nl_optim_init(&o, &ps, &cfg));
        int same = 1;
        for (int s = 0; s < 3; s++) {
            for (int64_t i = 0; i < n; i++) gv[i] = (float)(nl_rng_normal(&r) * (i % 7 ? 0.1 : 3.0));
            double sq = 0;
            for (int64_t i = 0; i < n; i++) sq += (double)gv[i] * (double)gv[i];
            const double norm = sqrt(sq), gs = norm > 1.0 ? 1.0 / (norm + 1e-6) : 1.0;
            const double lr = nl_sched_lr(&cfg, s), t = s + 1;
            const double bc1 = 1.0 - pow(0.9, t), bc2 = 1.0 - pow(0.99, t), step_size = lr / bc1, sbc2 = sqrt(bc2);
            const double l2 = kind ? 0.0 : 0.01, decay = kind ? 1.0 - lr * 0.01 : 1.0;
            for (int64_t i = 0; i < n; i++) {
                double p = rp[i];
                double g = gs * (double)gv[i] + l2 * p;
                p *= decay;
                float mf = (float)(0.9 * (double)rm[i] + (1.0 - 0.9) * g);
                float vf = (float)(0.99 * (double)rv[i] + (1.0 - 0.99) * g * g);
                rm[i] = mf;
                rv[i] = vf;
                double denom = sqrt((double)vf) / sbc2 + 1e-8;
                rp[i] = (float)(p - step_size * (double)mf / denom);
            }
            NLT_OK(nl_optim_step(&o));
            for (int64_t i = 0; i < n; i++)
                if (memcmp(&rp[i], &pv[i], sizeof(float)) || memcmp(&rm[i], (float *)o.m + i, sizeof(float)) ||
                    memcmp(&rv[i], (float *)o.v + i, sizeof(float)))
                    same = 0;
        }
        NLT_CHECK(same, "kind %d: vectorised f32 update differs from the scalar formula", kind);
        free(rp);
        free(rm);
        free(rv);
        nl_optim_free(&o);
        nl_params_free(&ps);
    }
}

/* Groups and per-tensor multipliers. SGD lr 0.1, wd 0.1, all grads 1, all values 1.
 *  a: group 0, lr_mult 1, wd_mult 1            -> lr 0.1,   wd 0.1:   p = 1 - 0.1*(1 + 0.1)     = 0.89
 *  b: group 1 (group_lr 0.5, group_wd 2), lr_mult 0.25, wd_mult 1
 *                                              -> lr 0.0125, wd 0.2:  p = 1 - 0.0125*(1 + 0.2) = 0.985
 *  c: group 0, lr_mult 2, wd_mult 0            -> lr 0.2,   wd 0:     p = 1 - 0.2*1            = 0.8
 * AdamW with the same setup (lr 0.1, wd 0.1), step 1 ~ p*(1 - lr*wd) - lr*sign(g):
 *  a: 1*(1 - 0.01) - 0.1 = 0.89; b: 1*(1 - 0.0125*0.2) - 0.0125 = 0.985; c: 1 - 0.2 = 0.8 (up to ~1e-9) */
static void test_groups(void) {
    for (int kind = 0; kind < 2; kind++) {
        nl_params ps;
        nl_params_init(&ps, NL_F64);
        int64_t sh[1] = {3};
        nl_var *a = nl_params_add(&ps, "a", 1, sh), *b = nl_params_add(&ps, "b", 1, sh), *c = nl_params_add(&ps, "c", 1, sh);
        nl_param *pb = nl_params_find(&ps, "b"), *pc = nl_params_find(&ps, "c");
        pb->group = 1;
        pb->lr_mult = 0.25f;
        pc->lr_mult = 2.0f;
        pc->wd_mult = 0.0f;
        nl_var *vs[3] = {a, b, c};
        for (int i = 0; i < 3; i++) {
            nl_tensor_fill(&vs[i]->val, 1.0);
            nl_tensor_fill(&vs[i]->grad, 1.0);
        }
        nl_optim_config cfg = nl_optim_defaults(kind ? NL_OPT_ADAMW : NL_OPT_SGD);
        cfg.lr = 0.1;
        cfg.weight_decay = 0.1;
        nl_optim o;
        NLT_OK(nl_optim_init(&o, &ps, &cfg));
        o.group_lr[1] = 0.5;
        o.group_wd[1] = 2.0;
        NLT_OK(nl_optim_step(&o));
        double tol = kind ? 1e-8 : 1e-14;
        for (int j = 0; j < 3; j++) {
            NLT_NEAR(P(a, j), 0.89, tol);
            NLT_NEAR(P(b, j), 0.985, tol);
            NLT_NEAR(P(c, j), 0.8, tol);
        }
        pb->group = NL_MAX_GROUPS;
        NLT_CHECK(nl_optim_step(&o) == NL_EINVAL, "group out of range -> NL_EINVAL");
        NLT_NEAR(P(a, 0), 0.89, tol); /* nothing changed */
        nl_optim_free(&o);
        nl_params_free(&ps);
    }
}

/* Mask [1, 0, 1] on w: the middle element keeps its value and its state; frozen param f never moves. */
static void test_mask_frozen(void) {
    for (int kind = 0; kind < 3; kind++) {
        nl_params ps;
        nl_params_init(&ps, NL_F32);
        int64_t sh[1] = {3};
        nl_var *w = nl_params_add(&ps, "w", 1, sh), *f = nl_params_add(&ps, "frozen.f", 1, sh);
        const float mask[3] = {1, 0, 1};
        nl_params_find(&ps, "w")->mask = mask;
        NLT_CHECK(nl_params_set_trainable(&ps, "frozen.", 0) == 1, "one frozen");
        nl_tensor_fill(&w->val, 2.0);
        nl_tensor_fill(&f->val, 3.0);
        nl_optim_config cfg = nl_optim_defaults((nl_optim_kind)kind);
        cfg.lr = 0.1;
        cfg.momentum = kind == NL_OPT_SGD ? 0.9 : 0;
        cfg.weight_decay = 0.05;
        nl_optim o;
        NLT_OK(nl_optim_init(&o, &ps, &cfg));
        for (int s = 0; s < 3; s++) {
            nl_tensor_fill(&w->grad, 1.0);
            nl_tensor_fill(&f->grad, 1.0);
            if (s == 2) nl_tensor_set(&f->grad, 0, NAN); /* frozen: not checked */
            NLT_OK(nl_optim_step(&o));
        }
        NLT_CHECK(P(w, 0) < 2.0 && P(w, 2) < 2.0 && P(w, 0) == P(w, 2), "unmasked elements move (%g)", P(w, 0));
        NLT_CHECK(P(w, 1) == 2.0, "masked element unchanged: %g", P(w, 1));
        NLT_CHECK(((float *)o.m)[nl_params_find(&ps, "w")->offset + 1] == 0.0f, "masked state untouched");
        for (int j = 0; j < 3; j++) NLT_CHECK(P(f, j) == 3.0, "frozen unchanged: %g", P(f, j));
        NLT_CHECK(((float *)o.m)[nl_params_find(&ps, "frozen.f")->offset] == 0.0f, "frozen state untouched");
        nl_optim_free(&o);
        nl_params_free(&ps);
    }
}

/* Schedules (lr = 1; W warmup, T total, r min_ratio):
 *  warmup (step < W): (step+1)/W
 *  cosine W=10 T=110 r=0.1: step 60 is the mid-point p = 0.5: 0.1 + 0.9 * (1 + cos(pi/2))/2 = 0.55;
 *      step 35 (p = 0.25): 0.1 + 0.45 * (1 + cos(pi/4)) = 0.868198051533946; step >= 110: 0.1
 *  linear same W, T, r: step 60: 1 - 0.9 * 0.5 = 0.55; step 35: 1 - 0.9*0.25 = 0.775
 *  invsqrt W=100: step 100 -> 1, step 400 -> sqrt(100/400) = 0.5, step 2500 -> 0.2; W = 0: step 3 -> 0.5 */
static void test_schedules(void) {
    nl_optim_config c = nl_optim_defaults(NL_OPT_SGD);
    c.lr = 1.0;
    c.sched = NL_SCHED_COSINE;
    c.warmup_steps = 10;
    c.total_steps = 110;
    c.min_ratio = 0.1;
    NLT_NEAR(nl_sched_lr(&c, 0), 0.1, 1e-15);
    NLT_NEAR(nl_sched_lr(&c, 4), 0.5, 1e-15);
    NLT_NEAR(nl_sched_lr(&c, 9), 1.0, 1e-15);
    NLT_NEAR(nl_sched_lr(&c, 10), 1.0, 1e-15);
    NLT_NEAR(nl_sched_lr(&c, 35), 0.868198051533946, 1e-12);
    NLT_NEAR(nl_sched_lr(&c, 60), 0.55, 1e-15);
    NLT_NEAR(nl_sched_lr(&c, 110), 0.1, 1e-15);
    NLT_NEAR(nl_sched_lr(&c, 1000), 0.1, 1e-15);
    c.sched = NL_SCHED_LINEAR;
    NLT_NEAR(nl_sched_lr(&c, 4), 0.5, 1e-15);
    NLT_NEAR(nl_sched_lr(&c, 35), 0.775, 1e-15);
    NLT_NEAR(nl_sched_lr(&c, 60), 0.55, 1e-15);
    NLT_NEAR(nl_sched_lr(&c, 110), 0.1, 1e-15);
    c.sched = NL_SCHED_INVSQRT;
    c.warmup_steps = 100;
    NLT_NEAR(nl_sched_lr(&c, 49), 0.5, 1e-15);
    NLT_NEAR(nl_sched_lr(&c, 100), 1.0, 1e-15);
    NLT_NEAR(nl_sched_lr(&c, 400), 0.5, 1e-15);
    NLT_NEAR(nl_sched_lr(&c, 2500), 0.2, 1e-15);
    c.warmup_steps = 0;
    NLT_NEAR(nl_sched_lr(&c, 0), 1.0, 1e-15);
    NLT_NEAR(nl_sched_lr(&c, 3), 0.5, 1e-15);
    c.sched = NL_SCHED_CONSTANT;
    c.warmup_steps = 4;
    NLT_NEAR(nl_sched_lr(&c, 1), 0.5, 1e-15);
    NLT_NEAR(nl_sched_lr(&c, 5), 1.0, 1e-15);

    /* the optimizer applies the scheduled LR: SGD lr 1, warmup 4, g = 1: steps move by 0.25, 0.5, 0.75, 1, 1 */
    nl_params ps;
    nl_var *w = store2(&ps, NL_F64);
    c.lr = 1.0;
    nl_optim o;
    NLT_OK(nl_optim_init(&o, &ps, &c));
    const double expect[5] = {0.75, 0.25, -0.5, -1.5, -2.5};
    for (int s = 0; s < 5; s++) {
        NLT_NEAR(nl_optim_lr(&o), s < 4 ? (s + 1) / 4.0 : 1.0, 1e-15);
        set_grad(w, 1, 1);
        NLT_OK(nl_optim_step(&o));
        NLT_NEAR(P(w, 0), expect[s], 1e-15);
    }
    nl_optim_free(&o);
    /* cosine needs total_steps > warmup_steps */
    c.sched = NL_SCHED_COSINE;
    c.total_steps = 4;
    NLT_CHECK(nl_optim_init(&o, &ps, &c) == NL_EINVAL, "cosine with total <= warmup rejected");
    nl_params_free(&ps);
}

/* Clipping: grads a = [3, 4], b = [0, 0] (norm 5), frozen c = [100] (ignored).
 * SGD lr 1, clip 1: scale = 1 / (5 + 1e-6); a = [1, 1] - [3, 4] * scale. clip 10: no scaling. */
static void test_clip(void) {
    nl_params ps;
    nl_params_init(&ps, NL_F64);
    int64_t sh[1] = {2}, sh1[1] = {1};
    nl_var *a = nl_params_add(&ps, "a", 1, sh), *b = nl_params_add(&ps, "b", 1, sh), *c = nl_params_add(&ps, "c", 1, sh1);
    (void)b;
    c->requires_grad = 0;
    nl_tensor_fill(&a->val, 1.0);
    set_grad(a, 3, 4);
    nl_tensor_set(&c->grad, 0, 100);
    NLT_NEAR(nl_grad_global_norm(&ps), 5.0, 1e-15);
    nl_optim_config cfg = nl_optim_defaults(NL_OPT_SGD);
    cfg.lr = 1.0;
    cfg.clip_norm = 1.0;
    nl_optim o;
    NLT_OK(nl_optim_init(&o, &ps, &cfg));
    NLT_OK(nl_optim_step(&o));
    double sc = 1.0 / (5.0 + 1e-6);
    NLT_NEAR(P(a, 0), 1 - 3 * sc, 1e-15);
    NLT_NEAR(P(a, 1), 1 - 4 * sc, 1e-15);
    NLT_NEAR(o.last_grad_norm, 5.0, 1e-15);
    NLT_CHECK(nl_tensor_get(&a->grad, 0) == 3.0, "step does not write the gradients");
    o.cfg.clip_norm = 10.0;
    NLT_OK(nl_optim_step(&o));
    NLT_NEAR(P(a, 0), 1 - 3 * sc - 3, 1e-14);
    nl_optim_free(&o);
    /* nl_grad_clip scales in place */
    NLT_NEAR(nl_grad_clip(&ps, 2.5), 5.0, 1e-15);
    NLT_NEAR(nl_tensor_get(&a->grad, 0), 3 * 2.5 / (5 + 1e-6), 1e-15);
    NLT_NEAR(nl_tensor_get(&a->grad, 1), 4 * 2.5 / (5 + 1e-6), 1e-15);
    NLT_CHECK(nl_tensor_get(&c->grad, 0) == 100, "frozen grad untouched");
    NLT_NEAR(nl_grad_clip(&ps, 10), 2.5 * 5 / (5 + 1e-6), 1e-14); /* below max: unchanged */
    NLT_NEAR(nl_tensor_get(&a->grad, 0), 3 * 2.5 / (5 + 1e-6), 1e-15);
    /* f64 values whose squares overflow */
    set_grad(a, 3e200, 4e200);
    NLT_NEAR(nl_grad_global_norm(&ps) / 5e200, 1.0, 1e-14);
    nl_params_free(&ps);
}

/* A NaN or Inf gradient: NL_ENONFINITE naming the parameter, nothing changes (values, state, step). */
static void test_nonfinite(void) {
    for (int kind = 0; kind < 3; kind++)
        for (int dt = 0; dt < 2; dt++) {
            nl_params ps;
            nl_params_init(&ps, dt ? NL_F64 : NL_F32);
            int64_t sh[1] = {4};
            nl_var *a = nl_params_add(&ps, "layer.a", 1, sh), *b = nl_params_add(&ps, "layer.b", 1, sh);
            nl_optim_config cfg = nl_optim_defaults((nl_optim_kind)kind);
            cfg.momentum = kind == NL_OPT_SGD ? 0.9 : 0;
            cfg.clip_norm = 1.0;
            nl_optim o;
            NLT_OK(nl_optim_init(&o, &ps, &cfg));
            nl_tensor_fill(&a->grad, 0.5);
            nl_tensor_fill(&b->grad, -0.5);
            NLT_OK(nl_optim_step(&o));
            size_t bytes = (size_t)ps.total * nl_dtype_size(ps.dtype);
            void *d0 = malloc(bytes), *m0 = malloc(bytes), *v0 = malloc(bytes);
            memcpy(d0, ps.data, bytes);
            memcpy(m0, o.m, bytes);
            if (o.v) memcpy(v0, o.v, bytes);
            double norm0 = o.last_grad_norm;
            for (int bad = 0; bad < 2; bad++) {
                nl_tensor_set(&b->grad, 2, bad ? INFINITY : NAN);
                nl_clear_error();
                nl_status s = nl_optim_step(&o);
                NLT_CHECK(s == NL_ENONFINITE, "got %s", nl_status_name(s));
                NLT_CHECK(strstr(nl_last_error(), "'layer.b'") != NULL, "message names the parameter: %s", nl_last_error());
                NLT_CHECK(strstr(nl_last_error(), "element 2") != NULL, "message names the element: %s", nl_last_error());
                NLT_CHECK(!memcmp(d0, ps.data, bytes), "parameters unchanged");
                NLT_CHECK(!memcmp(m0, o.m, bytes), "first moment / momentum unchanged");
                NLT_CHECK(!o.v || !memcmp(v0, o.v, bytes), "second moment unchanged");
                NLT_CHECK(o.step == 1, "step not advanced");
                NLT_CHECK(o.last_grad_norm == norm0, "last norm unchanged");
            }
            NLT_CHECK(!isfinite(nl_grad_global_norm(&ps)), "global norm reports non-finite");
            nl_tensor_set(&b->grad, 2, -0.5);
            NLT_OK(nl_optim_step(&o));
            NLT_CHECK(o.step == 2, "recovers");
            free(d0);
            free(m0);
            free(v0);
            nl_optim_free(&o);
            nl_params_free(&ps);
        }
}

static void test_config(void) {
    nl_optim_kind k;
    NLT_OK(nl_optim_parse_kind("sgd", &k));
    NLT_CHECK(k == NL_OPT_SGD, "sgd");
    NLT_OK(nl_optim_parse_kind("Adam", &k));
    NLT_CHECK(k == NL_OPT_ADAM, "adam");
    NLT_OK(nl_optim_parse_kind("adamw", &k));
    NLT_CHECK(k == NL_OPT_ADAMW, "adamw");
    NLT_CHECK(nl_optim_parse_kind("lion", &k) == NL_EINVAL, "unknown");
    NLT_CHECK(strstr(nl_last_error(), "lion") != NULL, "message names it");
    nl_optim_config c = nl_optim_defaults(NL_OPT_ADAM);
    NLT_NEAR(c.lr, 1e-3, 0);
    NLT_NEAR(c.beta1, 0.9, 0);
    NLT_NEAR(c.beta2, 0.999, 0);
    NLT_NEAR(c.eps, 1e-8, 0);
    NLT_NEAR(nl_optim_defaults(NL_OPT_SGD).lr, 1e-2, 0);
    NLT_NEAR(nl_optim_defaults(NL_OPT_ADAMW).weight_decay, 1e-2, 0);

    nl_params ps;
    nl_var *w = store2(&ps, NL_F32);
    (void)w;
    nl_optim o;
    c = nl_optim_defaults(NL_OPT_SGD);
    c.nesterov = 1;
    NLT_CHECK(nl_optim_init(&o, &ps, &c) == NL_EINVAL, "nesterov without momentum");
    c = nl_optim_defaults(NL_OPT_ADAM);
    c.beta2 = 1.0;
    NLT_CHECK(nl_optim_init(&o, &ps, &c) == NL_EINVAL, "beta2 = 1");
    c = nl_optim_defaults(NL_OPT_ADAM);
    c.lr = -1;
    NLT_CHECK(nl_optim_init(&o, &ps, &c) == NL_EINVAL, "negative lr");
    c = nl_optim_defaults(NL_OPT_ADAM);
    NLT_OK(nl_optim_init(&o, &ps, &c));
    int64_t sh[1] = {5};
    nl_params_add(&ps, "late", 1, sh);
    NLT_CHECK(nl_optim_step(&o) == NL_ESTATE, "store grew after init");
    nl_optim_free(&o);
    nl_params_free(&ps);
}

/* Large tensors take the parallel path: the update and the norm do not depend on the thread count. */
static void test_threads(void) {
    const int64_t n = 200003;
    double norms[2];
    void *res[2];
    for (int th = 0; th < 2; th++) {
        nl_set_num_threads(th + 1);
        nl_params ps;
        nl_params_init(&ps, NL_F32);
        int64_t sh[1] = {n};
        nl_var *w = nl_params_add(&ps, "w", 1, sh);
        nl_rng r;
        nl_rng_init(&r, 1, 0);
        nl_rng_fill_normal(&r, &w->val, 0, 1);
        nl_optim_config c = nl_optim_defaults(NL_OPT_ADAMW);
        c.clip_norm = 10;
        nl_optim o;
        NLT_OK(nl_optim_init(&o, &ps, &c));
        for (int s = 0; s < 3; s++) {
            nl_rng_fill_normal(&r, &w->grad, 0, 1);
            NLT_OK(nl_optim_step(&o));
        }
        norms[th] = o.last_grad_norm;
        res[th] = malloc(n * sizeof(float));
        memcpy(res[th], w->val.data, n * sizeof(float));
        nl_optim_free(&o);
        nl_params_free(&ps);
    }
    NLT_CHECK(norms[0] == norms[1], "norm %.17g vs %.17g", norms[0], norms[1]);
    NLT_NEAR(norms[0], sqrt((double)n), 0.01 * sqrt((double)n));
    NLT_CHECK(!memcmp(res[0], res[1], n * sizeof(float)), "1 thread == 2 threads");
    free(res[0]);
    free(res[1]);
    nl_threads_init();
}

/* Rosenbrock f = (1-x)^2 + 100 (y - x^2)^2 from (-1.5, 2) with Adam (f64 store, analytic gradient), and an
 * ill-conditioned quadratic sum_i c_i (z_i - t_i)^2 (f32 store). */
static void test_minimise(void) {
    nl_params ps;
    nl_params_init(&ps, NL_F64);
    int64_t sh[1] = {2};
    nl_var *xy = nl_params_add(&ps, "xy", 1, sh);
    double *p = xy->val.data, *g = xy->grad.data;
    p[0] = -1.5;
    p[1] = 2.0;
    nl_optim_config c = nl_optim_defaults(NL_OPT_ADAM);
    c.lr = 0.02;
    c.sched = NL_SCHED_COSINE;
    c.total_steps = 20000;
    c.min_ratio = 0.01;
    nl_optim o;
    NLT_OK(nl_optim_init(&o, &ps, &c));
    for (int s = 0; s < 20000; s++) {
        double x = p[0], y = p[1];
        g[0] = -2 * (1 - x) - 400 * x * (y - x * x);
        g[1] = 200 * (y - x * x);
        NLT_OK(nl_optim_step(&o));
    }
    double f = (1 - p[0]) * (1 - p[0]) + 100 * (p[1] - p[0] * p[0]) * (p[1] - p[0] * p[0]);
    NLT_NEAR(p[0], 1.0, 1e-3);
    NLT_NEAR(p[1], 1.0, 2e-3);
    NLT_CHECK(f < 1e-6, "rosenbrock f = %g", f);
    nl_optim_free(&o);
    nl_params_free(&ps);

    nl_params_init(&ps, NL_F32);
    int64_t sh8[1] = {8};
    nl_var *z = nl_params_add(&ps, "z", 1, sh8);
    float *zp = z->val.data, *zg = z->grad.data;
    c = nl_optim_defaults(NL_OPT_ADAM);
    c.lr = 0.05;
    c.sched = NL_SCHED_LINEAR;
    c.total_steps = 3000;
    NLT_OK(nl_optim_init(&o, &ps, &c));
    /* curvatures 1e-4 .. 1e3, targets -3.5 .. 3.5, start at 0 */
    for (int s = 0; s < 3000; s++) {
        for (int i = 0; i < 8; i++) zg[i] = (float)(2 * pow(10, i - 4) * (zp[i] - (i - 3.5)));
        NLT_OK(nl_optim_step(&o));
    }
    double maxerr = 0;
    for (int i = 0; i < 8; i++) maxerr = fmax(maxerr, fabs(zp[i] - (i - 3.5)));
    NLT_CHECK(maxerr < 1e-3, "quadratic max error %g", maxerr);
    nl_optim_free(&o);
    nl_params_free(&ps);
}

int main(void) {
    nl_threads_init();
    NLT_RUN(test_sgd);
    NLT_RUN(test_adam);
    NLT_RUN(test_adam_long);
    NLT_RUN(test_adam_f32_exact);
    NLT_RUN(test_groups);
    NLT_RUN(test_mask_frozen);
    NLT_RUN(test_schedules);
    NLT_RUN(test_clip);
    NLT_RUN(test_nonfinite);
    NLT_RUN(test_config);
    NLT_RUN(test_threads);
    NLT_RUN(test_minimise);
    return nlt_finish();
}
