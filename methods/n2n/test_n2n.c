/* N2N: the reward on hand values, the architecture rules (first / pooled / output layers fixed), the policy gradient of
 * both policies against central finite differences (f64, tiny policies), sampling frequencies, one REINFORCE step,
 * and the CLI's bad input. */
#include "nltest.h"
#include "n2n/n2n.h"
#include "nnlab/cli.h"
#include "nnlab/optim.h"

static nl_n2n_arch teacher(void) {
    nl_n2n_arch t = {8, {8, 8, 8, 16, 16, 16, 32, 32}, {0, 0, 1, 0, 0, 1, 0, 0}, 32, 1, 14, 14, 10};
    return t;
}

static void test_reward(void) {
    NLT_NEAR(nl_n2n_reward(0.90, 0.92, 1e6, 1e7), 0.9684783, 1e-7); /* (0.9/0.92) 0.9 (2 - 0.9) */
    NLT_NEAR(nl_n2n_reward(0.92, 0.92, 5e6, 1e7), 0.75, 1e-12);     /* C = 0.5 */
    NLT_NEAR(nl_n2n_reward(0.5, 1.0, 0, 10), -1, 0);                 /* invalid child */
    NLT_NEAR(nl_n2n_reward(0.99, 0.9, 10, 10), -1, 0);               /* not smaller */
    NLT_NEAR(nl_n2n_reward(0.99, 0.9, 11, 10), -1, 0);               /* larger */
    NLT_NEAR(nl_n2n_reward(0.0, 0.9, 1, 10), 0, 0);
}

static void test_arch(void) {
    nl_n2n_arch t = teacher(), ch;
    int L = nl_n2n_arch_layers(&t);
    NLT_CHECK(L == 10, "layers %d", L);
    int want[10] = {0, 1, 0, 1, 1, 0, 1, 1, 1, 0}; /* first, pooled (2, 5) and output fixed */
    for (int l = 0; l < L; l++) NLT_CHECK(nl_n2n_removable(&t, l) == want[l], "layer %d removable %d", l, nl_n2n_removable(&t, l));
    NLT_CHECK(nl_n2n_shrinkable(&t, 8) && !nl_n2n_shrinkable(&t, 9), "output not shrinkable");
    int all[10] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    nl_n2n_arch_remove(&t, all, &ch);
    NLT_CHECK(ch.n_conv == 3 && ch.channels[0] == 8 && ch.pooled[1] && ch.pooled[2] && ch.channels[2] == 16 && ch.hidden == 0,
              "remove all: %d convs, hidden %lld", ch.n_conv, (long long)ch.hidden);
    /* parameters of the teacher by hand: conv weights + BN (2 per channel), fc 288x32 + 32, 32x10 + 10 */
    int64_t conv = 9 * (1 * 8 + 8 * 8 + 8 * 8 + 8 * 16 + 16 * 16 + 16 * 16 + 16 * 32 + 32 * 32), bn = 2 * (8 * 3 + 16 * 3 + 32 * 2);
    int64_t fc = 32 * 9 * 32 + 32 + 32 * 10 + 10;
    NLT_CHECK(nl_n2n_arch_params(&t) == conv + bn + fc, "teacher params %lld, hand %lld", (long long)nl_n2n_arch_params(&t),
              (long long)(conv + bn + fc));
    int f[10];
    for (int l = 0; l < 10; l++) f[l] = 0; /* factor 0.25 */
    nl_n2n_arch_shrink(&t, f, &ch);
    NLT_CHECK(ch.channels[0] == 2 && ch.channels[3] == 4 && ch.channels[7] == 8 && ch.hidden == 8 && ch.n_classes == 10,
              "shrink 0.25: %d %d %d fc %lld", ch.channels[0], ch.channels[3], ch.channels[7], (long long)ch.hidden);
    nl_model_config mc;
    NLT_OK(nl_n2n_arch_config(&t, &mc));
    NLT_CHECK(mc.pool_mask == ((1u << 2) | (1u << 5)), "pool mask %x", mc.pool_mask);
    nl_n2n_arch bad = t;
    bad.n_conv = 0;
    NLT_CHECK(nl_n2n_arch_params(&bad) == -1 && nl_n2n_reward(0.9, 0.9, -1, 100) == -1, "invalid child -> -1");
}

/* central finite differences of log pi(actions) over every policy parameter against the backward pass */
static void check_policy_grad(nl_n2n_policy_kind kind) {
    nl_n2n_policy p;
    NLT_OK(nl_n2n_policy_init(&p, kind, 3, NL_F64, 5));
    nl_n2n_arch t = teacher();
    int L = nl_n2n_arch_layers(&t), mask[NL_N2N_MAX_LAYERS], act[NL_N2N_MAX_LAYERS];
    float feat[NL_N2N_MAX_LAYERS * NL_N2N_FEAT];
    for (int l = 0; l < L; l++) {
        nl_n2n_arch_describe(&t, l, feat + l * NL_N2N_FEAT);
        mask[l] = kind == NL_N2N_REMOVAL ? nl_n2n_removable(&t, l) : nl_n2n_shrinkable(&t, l);
    }
    nl_rng r;
    nl_rng_init(&r, 3, 1);
    nl_ctx *c = nl_ctx_new(0, 0);
    nl_var *lp = nl_n2n_policy_logprob(c, &p, L, feat, mask, &r, act, NULL); /* sample the actions once */
    NLT_CHECK(lp && lp->val.ndim == 0 && nl_item(lp) < 0, "log pi %g", lp ? nl_item(lp) : NAN);
    nl_params_zero_grad(&p.ps);
    NLT_OK(nl_backward(c, lp));
    double *v = p.ps.data, *g = p.ps.grad, maxerr = 0;
    int64_t bad = 0;
    for (int64_t k = 0; k < p.ps.total; k++) {
        double v0 = v[k], h = 1e-6, f[2];
        for (int sgn = 0; sgn < 2; sgn++) {
            v[k] = v0 + (sgn ? -h : h);
            nl_ctx_reset(c);
            nl_var *q = nl_n2n_policy_logprob(c, &p, L, feat, mask, NULL, act, NULL); /* teacher-forced */
            f[sgn] = q ? nl_item(q) : NAN;
        }
        v[k] = v0;
        double num = (f[0] - f[1]) / (2 * h), err = fabs(num - g[k]);
        maxerr = fmax(maxerr, err);
        if (!(err <= 1e-7 + 1e-5 * fabs(num))) bad++;
    }
    NLT_CHECK(bad == 0, "%s: %lld of %lld gradient entries off (max err %.3g)", kind ? "shrink" : "removal", (long long)bad,
              (long long)p.ps.total, maxerr);
    /* a fixed layer's action does not enter log pi */
    nl_ctx_reset(c);
    int a2[NL_N2N_MAX_LAYERS];
    memcpy(a2, act, sizeof a2);
    nl_var *q0 = nl_n2n_policy_logprob(c, &p, L, feat, mask, NULL, act, NULL);
    a2[L - 1] = kind == NL_N2N_REMOVAL ? 1 : 3;
    nl_var *q1 = nl_n2n_policy_logprob(c, &p, L, feat, mask, NULL, a2, NULL);
    NLT_CHECK(q0 && q1 && nl_item(q0) == nl_item(q1), "output layer's action ignored");
    nl_ctx_free(c);
    nl_n2n_policy_free(&p);
}
static void test_policy_grad(void) {
    check_policy_grad(NL_N2N_REMOVAL);
    check_policy_grad(NL_N2N_SHRINK);
}

/* sampled removal frequencies follow the policy's probabilities; one REINFORCE step with R > b makes the sampled
 * action more likely */
static void test_sampling_and_step(void) {
    nl_n2n_policy p;
    NLT_OK(nl_n2n_policy_init(&p, NL_N2N_REMOVAL, 8, NL_F32, 9));
    nl_n2n_arch t = teacher();
    int L = nl_n2n_arch_layers(&t), mask[NL_N2N_MAX_LAYERS], act[NL_N2N_MAX_LAYERS];
    float feat[NL_N2N_MAX_LAYERS * NL_N2N_FEAT];
    for (int l = 0; l < L; l++) nl_n2n_arch_describe(&t, l, feat + l * NL_N2N_FEAT), mask[l] = nl_n2n_removable(&t, l);
    nl_rng r;
    nl_rng_init(&r, 11, 2);
    nl_ctx *c = nl_ctx_new(0, 0);
    double probs[NL_N2N_MAX_LAYERS * 2];
    int count = 0, n = 2000;
    for (int i = 0; i < n; i++) {
        nl_ctx_reset(c);
        NLT_CHECK(nl_n2n_policy_logprob(c, &p, L, feat, mask, &r, act, probs) != NULL, "sample");
        count += act[1];
        for (int l = 0; l < L; l++)
            if (!mask[l] && act[l]) NLT_CHECK(0, "fixed layer %d sampled as removed", l);
    }
    double p1 = probs[1 * 2 + 1], se = sqrt(p1 * (1 - p1) / n);
    NLT_CHECK(fabs((double)count / n - p1) < 4 * se, "layer 1 removed %.3f of the time, policy %.3f", (double)count / n, p1);
    /* REINFORCE: loss = -(R - b) log pi(a) with R - b = 1 */
    nl_optim o;
    nl_optim_config oc = nl_optim_defaults(NL_OPT_ADAM);
    oc.lr = 0.01;
    NLT_OK(nl_optim_init(&o, &p.ps, &oc));
    nl_ctx_reset(c);
    nl_var *lp = nl_n2n_policy_logprob(c, &p, L, feat, mask, &r, act, NULL);
    double before = lp ? nl_item(lp) : NAN;
    nl_params_zero_grad(&p.ps);
    NLT_OK(nl_backward(c, nl_neg(c, lp)));
    NLT_OK(nl_optim_step(&o));
    nl_ctx_reset(c);
    nl_var *lp2 = nl_n2n_policy_logprob(c, &p, L, feat, mask, NULL, act, NULL);
    NLT_CHECK(lp2 && nl_item(lp2) > before, "log pi(a) %g -> %g", before, lp2 ? nl_item(lp2) : NAN);
    nl_optim_free(&o);
    nl_ctx_free(c);
    nl_n2n_policy_free(&p);
}

static void test_cli(void) {
    char *help[] = {"--help"}, *unk[] = {"train"}, *big[] = {"search", "--train", "500", "--distil", "1000"};
    char *zero[] = {"search", "--rollouts", "0"};
    NLT_CHECK(nl_n2n_cli(1, help) == NL_CLI_OK, "--help");
    NLT_CHECK(nl_n2n_cli(1, unk) == NL_CLI_USAGE, "unknown subcommand");
    NLT_CHECK(nl_n2n_cli(5, big) == NL_CLI_USAGE, "--distil larger than --train");
    NLT_CHECK(nl_n2n_cli(3, zero) == NL_CLI_USAGE, "--rollouts 0");
}

/* the judge on hand-made results: a passing one, and one whose reward does not rise (the frozen control's shape) */
static void test_judge(void) {
    for (int flat = 0; flat < 2; flat++) {
        nl_exp_result r;
        nl_exp_result_init(&r);
        static const double ta[3] = {0.85, 0.86, 0.84}, ba[3] = {0.845, 0.852, 0.838}, ra[3] = {0.80, 0.81, 0.79};
        static const double rise[3] = {0.05, 0.06, 0.07}, none[3] = {0.01, -0.02, 0.005};
        for (int i = 0; i < 3; i++) {
            nl_exp_set_seed(&r, "teacher_acc", i + 1, ta[i]);
            nl_exp_set_seed(&r, "best_acc", i + 1, ba[i]);
            nl_exp_set_seed(&r, "random_acc", i + 1, ra[i]);
            nl_exp_set_seed(&r, "compression", i + 1, 6.0 + i);
            nl_exp_set_seed(&r, "reward_rise", i + 1, flat ? none[i] : rise[i]);
            nl_exp_set_seed(&r, "zero", i + 1, 0.0);
        }
        nl_exp_set(&r, "seeds", 3);
        char m[512];
        int pass = nl_exp_n2n.judge(&nl_exp_n2n, &r, NL_MODE_QUICK, m, sizeof m);
        NLT_CHECK(pass == !flat && r.n_parts == 3, "%s: pass %d (%s)", flat ? "flat reward" : "rising reward", pass, m);
        nl_exp_result_free(&r);
    }
}

int main(void) {
    NLT_RUN(test_judge);
    NLT_RUN(test_reward);
    NLT_RUN(test_arch);
    NLT_RUN(test_policy_grad);
    NLT_RUN(test_sampling_and_step);
    NLT_RUN(test_cli);
    return nlt_finish();
}
