/* sara: the threshold and the selection, the optimiser's state size (12 bytes per trainable entry), a masked update
 * that leaves every unselected entry bit-identical and moves the selected ones by the AdamW rule, the nuclear norm
 * and its subgradient (hand case and central differences), the progressive re-selection, the bad inputs and a smoke
 * run of the protocol (when Fashion-MNIST is installed). */
#include "nltest.h"
#include "sara/protocol.h"
#include "nnlab/cli.h"

/* a store w (8, 6), b (6) with values N(0, 1), and random gradients N(0, 1) */
static void make_store(nl_params *ps, uint64_t seed) {
    nl_params_init(ps, NL_F32);
    nl_params_add(ps, "w", 2, (int64_t[]){8, 6});
    nl_params_add(ps, "b", 1, (int64_t[]){6});
    nl_rng r;
    nl_rng_init(&r, seed, 1);
    for (int i = 0; i < ps->n; i++) {
        nl_rng_fill_normal(&r, &ps->p[i]->var.val, 0, 1);
        nl_rng_fill_normal(&r, &ps->p[i]->var.grad, 0, 1);
    }
}

static void test_bad_fraction(void) {
    nl_params ps;
    make_store(&ps, 1);
    nl_sara o;
    nl_sara_config c = nl_sara_defaults();
    double bad[4] = {0, 1, 1.5, -0.1};
    for (int k = 0; k < 4; k++) {
        c.fraction = bad[k];
        NLT_CHECK(nl_sara_init(&o, &ps, &c) == NL_EINVAL && strstr(nl_last_error(), "outside (0, 1)"), "fraction %g: %s", bad[k],
                  nl_last_error());
    }
    c.fraction = NAN;
    NLT_CHECK(nl_sara_init(&o, &ps, &c) == NL_EINVAL, "fraction NaN rejected");
    nl_params_free(&ps);
}

static void test_selection_and_state(void) {
    nl_params ps;
    make_store(&ps, 2);
    nl_sara o;
    nl_sara_config c = nl_sara_defaults();
    c.fraction = 0.25;
    NLT_OK(nl_sara_init(&o, &ps, &c));
    /* 54 entries: k = floor(0.25 * 54) = 13; the 13 smallest |theta| are strictly below the 14th (no ties in N(0,1)) */
    NLT_CHECK(o.n_sel == 13, "selected %lld, want 13", (long long)o.n_sel);
    int64_t below = 0;
    const float *x = ps.data;
    for (int i = 0; i < ps.n; i++)
        for (int64_t k = 0; k < ps.p[i]->numel; k++) below += fabsf(x[ps.p[i]->offset + k]) < o.tau;
    NLT_CHECK(below == o.n_sel, "every entry below tau is selected (%lld vs %lld)", (long long)below, (long long)o.n_sel);
    NLT_CHECK(o.seg[0] == 0 && o.seg[2] == o.n_sel, "segments cover the list");
    /* the state: an int32 offset and two float moments per selected entry, plus per-tensor bookkeeping */
    int64_t per_tensor = (int64_t)(ps.n + 1) * (int64_t)(sizeof(int64_t) + sizeof(int));
    NLT_CHECK(nl_sara_state_bytes(&o) == 12 * o.n_sel + per_tensor, "state %lld bytes for %lld entries",
              (long long)nl_sara_state_bytes(&o), (long long)o.n_sel);
    nl_sara_free(&o);
    nl_params_free(&ps);
}

static void test_masked_update(void) {
    nl_params ps;
    make_store(&ps, 3);
    nl_sara o;
    nl_sara_config c = nl_sara_defaults();
    c.fraction = 0.3;
    c.lambda_rank = 0; /* the plain AdamW rule first */
    c.lr = 1e-2;
    NLT_OK(nl_sara_init(&o, &ps, &c));
    int64_t n = ps.total;
    float *before = malloc((size_t)n * sizeof(float));
    memcpy(before, ps.data, (size_t)n * sizeof(float));
    NLT_OK(nl_sara_step(&o));
    const float *x = ps.data, *g = ps.grad;
    char *sel = calloc((size_t)n, 1);
    for (int64_t j = 0; j < o.n_sel; j++) sel[o.idx[j]] = 1;
    int64_t changed_unsel = 0, wrong = 0;
    for (int64_t k = 0; k < n; k++) {
        if (!sel[k]) changed_unsel += memcmp(&x[k], &before[k], sizeof(float)) != 0;
        else {
            /* first AdamW step: theta (1 - lr wd) - lr g / (|g| + eps) */
            double want = before[k] * (1 - c.lr * c.weight_decay) - c.lr * g[k] / (fabs(g[k]) + c.eps);
            wrong += fabs(want - x[k]) > 1e-6;
        }
    }
    NLT_CHECK(changed_unsel == 0, "%lld unselected entries changed", (long long)changed_unsel);
    NLT_CHECK(wrong == 0, "%lld selected entries off the AdamW rule", (long long)wrong);
    /* with the penalty on, unselected entries still stay bit-identical */
    memcpy(before, ps.data, (size_t)n * sizeof(float));
    o.cfg.lambda_rank = 0.5;
    o.cfg.min_rank_dim = 1;
    o.n_rank = 1, o.rank_ids[0] = 0;
    NLT_OK(nl_sara_step(&o));
    NLT_CHECK(o.last_nuclear > 0, "the penalty ran (||W M||_* = %g)", o.last_nuclear);
    changed_unsel = 0;
    for (int64_t k = 0; k < n; k++)
        if (!sel[k]) changed_unsel += memcmp(&x[k], &before[k], sizeof(float)) != 0;
    NLT_CHECK(changed_unsel == 0, "with the penalty: %lld unselected entries changed", (long long)changed_unsel);
    /* a non-finite gradient changes nothing */
    memcpy(before, ps.data, (size_t)n * sizeof(float));
    ((float *)ps.grad)[o.idx[0]] = NAN;
    NLT_CHECK(nl_sara_step(&o) == NL_ENONFINITE && !memcmp(before, ps.data, (size_t)n * sizeof(float)), "NaN gradient rejected");
    free(before);
    free(sel);
    nl_sara_free(&o);
    nl_params_free(&ps);
}

static void test_nuclear_hand(void) {
    float w[4] = {3, 0, 0, -2};
    double nuc, g[4];
    NLT_OK(nl_sara_nuclear(w, NULL, 2, 2, &nuc, g));
    NLT_NEAR(nuc, 5, 1e-12);
    NLT_NEAR(g[0], 1, 1e-12);
    NLT_NEAR(g[1], 0, 1e-12);
    NLT_NEAR(g[2], 0, 1e-12);
    NLT_NEAR(g[3], -1, 1e-12);
}

static void test_nuclear_fd(void) {
    enum { R = 5, C = 7 };
    float w[R * C], mask[R * C];
    nl_rng r;
    nl_rng_init(&r, 4, 9);
    for (int j = 0; j < R * C; j++) w[j] = (float)nl_rng_normal(&r), mask[j] = nl_rng_uniform(&r) < 0.6 ? 1.0f : 0.0f;
    double nuc, g[R * C];
    NLT_OK(nl_sara_nuclear(w, mask, R, C, &nuc, g));
    double worst = 0;
    for (int j = 0; j < R * C; j++) {
        const float h = 1e-3f;
        float keep = w[j];
        double p, m;
        w[j] = keep + h, nl_sara_nuclear(w, mask, R, C, &p, NULL);
        w[j] = keep - h, nl_sara_nuclear(w, mask, R, C, &m, NULL);
        w[j] = keep;
        double num = (p - m) / ((double)(keep + h) - (double)(keep - h));
        worst = fmax(worst, fabs(num - g[j]));
        if (mask[j] == 0) NLT_CHECK(g[j] == 0, "unmasked entry %d has gradient %g", j, g[j]);
    }
    NLT_CHECK(worst < 1e-4, "subgradient vs central differences: worst |err| %g", worst);
}

static void test_progressive(void) {
    nl_params ps;
    make_store(&ps, 5);
    nl_sara o;
    nl_sara_config c = nl_sara_defaults();
    c.fraction = 0.4;
    c.lambda_rank = 0;
    c.lr = 0.5; /* large, so that some selected entries leave the band |theta| < tau */
    c.weight_decay = 0;
    c.progressive_step = 2;
    NLT_OK(nl_sara_init(&o, &ps, &c));
    int64_t n0 = o.n_sel;
    NLT_OK(nl_sara_step(&o));
    NLT_CHECK(!o.reselected && o.step == 1, "no re-selection before step 2");
    NLT_OK(nl_sara_step(&o));
    const float *x = ps.data;
    int64_t outside = 0;
    for (int64_t j = 0; j < o.n_sel; j++) outside += !(fabsf(x[o.idx[j]]) < o.tau);
    int zero_state = 1;
    for (int64_t j = 0; j < o.n_sel; j++) zero_state &= o.m[j] == 0 && o.v[j] == 0;
    NLT_CHECK(o.reselected && o.step == 0 && zero_state, "state reset at the re-selection");
    NLT_CHECK(o.n_sel < n0 && outside == 0, "mask narrowed %lld -> %lld, %lld kept outside tau", (long long)n0, (long long)o.n_sel,
              (long long)outside);
    nl_sara_free(&o);
    nl_params_free(&ps);
}

/* bad input through the CLI entry: a threshold fraction outside (0, 1), a LoRA rank above a matrix's min(out, in), a
 * checkpoint of another architecture (all rejected before any data is loaded or any training runs) */
static void test_cli_bad_input(void) {
    char *f0[] = {"train", "--fraction", "0", "--quiet"}, *f1[] = {"train", "--fraction", "1.5", "--quiet"};
    NLT_CHECK(nl_sara_cli(4, f0) == NL_CLI_USAGE, "--fraction 0 is a usage error");
    NLT_CHECK(nl_sara_cli(4, f1) == NL_CLI_USAGE, "--fraction 1.5 is a usage error");
    char *rk[] = {"train", "--lora-rank", "9", "--quiet", "--threads", "1"}; /* ch 8: conv_in is (8, 9) */
    int rc = nl_sara_cli(6, rk);
    NLT_CHECK(rc == NL_CLI_FAIL && strstr(nl_last_error(), "rank 9 exceeds min(out, in) = 8"), "rank 9: rc %d, %s", rc, nl_last_error());
    nl_unet_config c = nl_unet_defaults(16);
    c.base_channels = 16; /* the CLI's default architecture has 8 */
    c.levels = 2;
    c.attn = 0;
    nl_unet u;
    NLT_OK(nl_unet_init(&u, &c, 3));
    const char *path = "test_sara_other_arch.safetensors";
    NLT_OK(nl_unet_save(&u, path));
    nl_unet_free(&u);
    char *ck[] = {"train", "--checkpoint", (char *)path, "--quiet", "--threads", "1"};
    rc = nl_sara_cli(6, ck);
    NLT_CHECK(rc == NL_CLI_FAIL && strstr(nl_last_error(), "checkpoint"), "other architecture: rc %d, %s", rc, nl_last_error());
    remove(path);
}

static void put3(nl_exp_result *r, const char *key, double a, double b, double c) {
    nl_exp_set_seed(r, key, 1, a);
    nl_exp_set_seed(r, key, 2, b);
    nl_exp_set_seed(r, key, 3, c);
    nl_exp_set_seed_mean_se(r, key, 3);
}

static int part_pass(const nl_exp_result *r, const char *name) {
    for (int k = 0; k < r->n_parts; k++)
        if (!strcmp(r->parts[k].name, name)) return r->parts[k].pass;
    return -1;
}

/* the judge on hand-made results: all parts pass, then each control's substitution fails its part */
static void test_judge(void) {
    nl_exp_result r;
    nl_exp_result_init(&r);
    nl_exp_set(&r, "seeds", 3);
    put3(&r, "d_small", 0.1, -0.2, 0.05);
    put3(&r, "abs_d_small", 0.1, 0.2, 0.05);
    put3(&r, "d_rand", 300, 250, 400);
    put3(&r, "lora_fd_new", 30, 32, 31);
    put3(&r, "sara_fd_new", 31, 33, 31.5);  /* +0.83 +- 0.17 behind LoRA: within 0.2 x 31 */
    put3(&r, "lora_fd_probe", 22, 23, 22.5);
    put3(&r, "full_fd_probe", 30, 31, 29);
    put3(&r, "sara_fd_probe", 20, 21, 20.2);
    nl_exp_set(&r, "sara_trainable", 1000);
    nl_exp_set(&r, "sara_opt_bytes", 16000 + 100);
    nl_exp_set(&r, "full_opt_bytes", 120000);
    nl_exp_set(&r, "lora_opt_bytes", 12000);
    char m[700];
    NLT_CHECK(nl_exp_sara.judge(&nl_exp_sara, &r, NL_MODE_QUICK, m, sizeof m) == 1, "all parts pass: %s", m);
    NLT_CHECK(r.n_parts == 5, "5 parts (%d)", r.n_parts);
    /* random-for-smallest: d_small as large as d_rand */
    put3(&r, "d_small", 280, 390, 260);
    put3(&r, "abs_d_small", 280, 390, 260);
    nl_exp_sara.judge(&nl_exp_sara, &r, NL_MODE_QUICK, m, sizeof m);
    NLT_CHECK(part_pass(&r, "smallest-inert") == 0, "random zeroing in place of the smallest fails");
    /* a small but not "much less" change: 0.3 of d_rand fails the 0.25 ratio */
    put3(&r, "d_small", 90, 75, 120);
    put3(&r, "abs_d_small", 90, 75, 120);
    nl_exp_sara.judge(&nl_exp_sara, &r, NL_MODE_QUICK, m, sizeof m);
    NLT_CHECK(part_pass(&r, "smallest-inert") == 0, "0.3 of the random change fails");
    put3(&r, "d_small", 0.1, -0.2, 0.05);
    put3(&r, "abs_d_small", 0.1, 0.2, 0.05);
    /* untrained: SaRA's new FD = the pretrained model's */
    put3(&r, "sara_fd_new", 60, 62, 61);
    nl_exp_sara.judge(&nl_exp_sara, &r, NL_MODE_QUICK, m, sizeof m);
    NLT_CHECK(part_pass(&r, "new-domain-vs-lora") == 0, "untrained SaRA fails the new domain");
    put3(&r, "sara_fd_new", 31, 33, 31.5);
    /* full-as-sara: equal retention fails */
    put3(&r, "sara_fd_probe", 30, 31, 29);
    nl_exp_sara.judge(&nl_exp_sara, &r, NL_MODE_QUICK, m, sizeof m);
    NLT_CHECK(part_pass(&r, "retention-over-full") == 0 && part_pass(&r, "retention-over-lora") == 0, "full fine-tuning as SaRA fails");
    put3(&r, "sara_fd_probe", 20, 21, 20.2);
    /* dense-masked-adam: 12 bytes per store entry */
    nl_exp_set(&r, "sara_opt_bytes", 119000);
    nl_exp_sara.judge(&nl_exp_sara, &r, NL_MODE_QUICK, m, sizeof m);
    NLT_CHECK(part_pass(&r, "optimiser-memory") == 0, "a dense masked Adam fails the memory part");
    nl_exp_set(&r, "sara_opt_bytes", 16100);
    NLT_CHECK(nl_exp_sara.judge(&nl_exp_sara, &r, NL_MODE_QUICK, m, sizeof m) == 1, "restored: pass");
    nl_exp_set(&r, "seeds", 2);
    NLT_CHECK(nl_exp_sara.judge(&nl_exp_sara, &r, NL_MODE_QUICK, m, sizeof m) == 0, "2 seeds fail");
    nl_exp_result_free(&r);
}

int main(void) {
    NLT_RUN(test_bad_fraction);
    NLT_RUN(test_selection_and_state);
    NLT_RUN(test_masked_update);
    NLT_RUN(test_nuclear_hand);
    NLT_RUN(test_nuclear_fd);
    NLT_RUN(test_progressive);
    NLT_RUN(test_judge);
    NLT_RUN(test_cli_bad_input);
    return nlt_finish();
}
