/* Ledger entry `snnk` (schema v2, docs/repro.md). Parts (rules fixed before any run):
 *   kernel-mse:   for each of exp, cos, relu (arc-cosine order 1), arccos0: the least-squares slope of log MSE
 *                 against log m (m = 16..4096, d = 64, 8 pairs, `reps` projection draws per m), averaged over the
 *                 seeds, lies in [-1.2, -0.8], and at m = 4096 every pair's mean error is within 4 SE of 0 (|z| <= 4,
 *                 every seed): the estimate is unbiased and its MSE falls as 1/m.
 *   snnk-layer:   a ReLU-SNNK layer (m = m_layer) replacing the hidden layer of the trained 784-512-10 MLP, fine-tuned:
 *                 mean over seeds of (MLP - SNNK) test accuracy <= 2 points, trainable parameters >= 5x fewer.
 *   bundled:      the fully bundled network phi(x~) M, ridge closed form (no backpropagation): mean (MLP - bundled)
 *                 test accuracy <= 4 points, trainable parameters >= 5x fewer than the MLP.
 * Control (broken): projections drawn U[0, 1) instead of N(0, 1) in the kernel estimates (the public code's
 * torch.rand); the network metrics are the main run's, so only the kernel part can reject it. */
#include "snnk/snnk.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

#define SNNK_MAX_SEEDS 8

typedef struct snnk_entry_cfg {
    int64_t d;
    int reps;
    int64_t n_train, n_test, epochs, m_layer, m_bundle;
    int seeds;
} snnk_entry_cfg;

static const double g_slope_lo = -1.2, g_slope_hi = -0.8, g_zmax = 4.0, g_layer_pts = 0.02, g_bundle_pts = 0.04, g_ratio = 5.0;

static nl_status kernel_metrics(const snnk_entry_cfg *ec, nl_snnk_dist dist, int n, nl_exp_result *r, int verbose) {
    char name[64];
    for (int k = 0; k < NL_SNNK_NKINDS; k++) {
        double sl[SNNK_MAX_SEEDS], mse[NL_SNNK_NM][SNNK_MAX_SEEDS], zmax = 0;
        for (int i = 0; i < n; i++) {
            nl_snnk_mse_result mr;
            nl_status s = nl_snnk_mse_curve((nl_snnk_kind)k, dist, ec->d, ec->reps, (uint64_t)(i + 1), &mr);
            if (s) return s;
            sl[i] = mr.slope;
            if (!(mr.max_z <= zmax)) zmax = mr.max_z;
            for (int j = 0; j < NL_SNNK_NM; j++) mse[j][i] = mr.mse[j];
            snprintf(name, sizeof name, "slope_%s", nl_snnk_kind_name(k)), nl_exp_set_seed(r, name, i + 1, mr.slope);
            if (verbose)
                nl_progress("snnk %s %s seed %d: slope %.3f, max |z| %.2f, mse(16) %.3g, mse(4096) %.3g", dist ? "uniform" : "gaussian",
                            nl_snnk_kind_name(k), i + 1, mr.slope, mr.max_z, mr.mse[0], mr.mse[NL_SNNK_NM - 1]);
        }
        snprintf(name, sizeof name, "slope_%s", nl_snnk_kind_name(k)), nl_exp_set_mean_se(r, name, sl, n);
        snprintf(name, sizeof name, "maxz_%s", nl_snnk_kind_name(k)), nl_exp_set(r, name, zmax);
        for (int j = 0; j < NL_SNNK_NM; j++) {
            snprintf(name, sizeof name, "mse_%s_m%d", nl_snnk_kind_name(k), 16 << (2 * j));
            nl_exp_set_mean_se(r, name, mse[j], n);
        }
    }
    return NL_OK;
}

static nl_status snnk_run_entry(const nl_experiment *e, const void *config, const nl_exp_options *opt, nl_exp_result *out) {
    const snnk_entry_cfg *ec = config;
    const int n = ec->seeds < SNNK_MAX_SEEDS ? ec->seeds : SNNK_MAX_SEEDS;
    nl_exp_result *cr = nl_exp_control_add(out, "uniform-projections", "broken",
                                           "kernel estimates with projections drawn U[0,1) instead of N(0,1) (the public code's "
                                           "torch.rand); same pairs, m and repetitions; network metrics copied from the main run");
    if (!cr) return nl_set_error(NL_ENOMEM, "%s: out of memory", e->name);
    nl_status s = kernel_metrics(ec, NL_SNNK_GAUSS, n, out, opt->verbose);
    if (!s) s = kernel_metrics(ec, NL_SNNK_UNIFORM, n, cr, opt->verbose);
    if (s) return s;
    double mlp[SNNK_MAX_SEEDS], sn[SNNK_MAX_SEEDS], bu[SNNK_MAX_SEEDS], sec[3] = {0, 0, 0};
    nl_snnk_result res;
    memset(&res, 0, sizeof res);
    int64_t ntr = 0, nte = 0;
    for (int i = 0; i < n && !s; i++) {
        nl_dataset tr, te;
        if ((s = nl_snnk_load(ec->n_train, ec->n_test, &tr, &te))) break;
        ntr = tr.n, nte = te.n;
        nl_snnk_config c = nl_snnk_defaults();
        c.epochs = ec->epochs, c.m_layer = ec->m_layer, c.m_bundle = ec->m_bundle, c.seed = (uint64_t)(i + 1);
        c.verbose = opt->verbose > 1;
        s = nl_snnk_run(&c, &tr, &te, &res);
        nl_dataset_free(&tr), nl_dataset_free(&te);
        if (s) break;
        mlp[i] = res.mlp_acc, sn[i] = res.snnk_acc, bu[i] = res.bundle_acc;
        sec[0] += res.mlp_seconds, sec[1] += res.snnk_seconds, sec[2] += res.bundle_seconds;
        if (opt->verbose)
            nl_progress("snnk seed %d: test accuracy MLP %.4f, SNNK layer %.4f, bundled %.4f", i + 1, mlp[i], sn[i], bu[i]);
    }
    if (s) return s;
    nl_exp_result *rs[2] = {out, cr};
    for (int q = 0; q < 2; q++) {
        nl_exp_result *r = rs[q];
        for (int i = 0; i < n; i++) {
            nl_exp_set_seed(r, "mlp_acc", i + 1, mlp[i]);
            nl_exp_set_seed(r, "snnk_acc", i + 1, sn[i]);
            nl_exp_set_seed(r, "bundle_acc", i + 1, bu[i]);
        }
        nl_exp_set_mean_se(r, "mlp_acc", mlp, n), nl_exp_set_mean_se(r, "snnk_acc", sn, n), nl_exp_set_mean_se(r, "bundle_acc", bu, n);
        nl_exp_set(r, "mlp_params", res.mlp_params), nl_exp_set(r, "snnk_params", res.snnk_params);
        nl_exp_set(r, "bundle_params", res.bundle_params);
        nl_exp_set(r, "seeds", (double)n);
        r->seeds = n;
    }
    nl_exp_set(out, "mlp_cpu_seconds", sec[0]), nl_exp_set(out, "snnk_cpu_seconds", sec[1]), nl_exp_set(out, "bundle_cpu_seconds", sec[2]);
    nl_exp_set(out, "n_train", (double)ntr), nl_exp_set(out, "n_test", (double)nte);
    snprintf(out->note, sizeof out->note,
             "%s: kernels d = %lld, %d draws per m; MLP 784-512-10, %lld train / %lld test Fashion-MNIST images, %lld epochs; "
             "SNNK layer m = %lld, bundled m = %lld; %d seeds; CPU s: MLP %.1f, SNNK %.1f, bundled %.1f", e->name, (long long)ec->d,
             ec->reps, (long long)ntr, (long long)nte, (long long)ec->epochs, (long long)ec->m_layer, (long long)ec->m_bundle, n,
             sec[0], sec[1], sec[2]);
    return NL_OK;
}

static int snnk_judge(const nl_experiment *e, nl_exp_result *r, int mode, char *measured, size_t nm) {
    (void)e;
    const int n = nl_exp_get_count(r, "seeds", SNNK_MAX_SEEDS);
    const char *pre = mode == NL_MODE_SMOKE ? "smoke (plumbing only): " : "";
    char rule[320], name[64], buf[256] = "";
    int kpass = n >= 3, off = 0;
    for (int k = 0; k < NL_SNNK_NKINDS; k++) {
        snprintf(name, sizeof name, "slope_%s_mean", nl_snnk_kind_name(k));
        double sl = nl_exp_get(r, name, NULL);
        snprintf(name, sizeof name, "maxz_%s", nl_snnk_kind_name(k));
        double z = nl_exp_get(r, name, NULL);
        int ok = sl >= g_slope_lo && sl <= g_slope_hi && z <= g_zmax; /* NaN fails */
        kpass = kpass && ok;
        off += snprintf(buf + off, sizeof buf - (size_t)off, "%s%s slope %.3f |z| %.1f", k ? ", " : "", nl_snnk_kind_name(k), sl, z);
        if (off >= (int)sizeof buf) off = (int)sizeof buf - 1;
    }
    snprintf(rule, sizeof rule,
             "%sfor exp, cos, relu, arccos0: log-log slope of kernel-estimate MSE against m (16..4096), mean over n >= 3 seeds, "
             "in [%.1f, %.1f], and every pair's mean error at m = 4096 within %.0f SE of 0", pre, g_slope_lo, g_slope_hi, g_zmax);
    nl_exp_part_set(r, "kernel-mse", rule, kpass, "%s (%d seeds)", buf, n);
    double a[SNNK_MAX_SEEDS], b[SNNK_MAX_SEEDS], c[SNNK_MAX_SEEDS], md1 = NAN, sd1 = NAN, md2 = NAN, sd2 = NAN;
    nl_exp_get_seeds(r, "mlp_acc", n, a), nl_exp_get_seeds(r, "snnk_acc", n, b), nl_exp_get_seeds(r, "bundle_acc", n, c);
    /* the rule is on the paired mean (with its SE reported), not on nl_exp_paired_lower's t95 bound */
    if (n >= 2) nl_stats_paired_t(a, b, n, &md1, &sd1), nl_stats_paired_t(a, c, n, &md2, &sd2);
    double pm = nl_exp_get(r, "mlp_params", NULL), r1 = pm / nl_exp_get(r, "snnk_params", NULL),
           r2 = pm / nl_exp_get(r, "bundle_params", NULL);
    int p1 = n >= 3 && md1 <= g_layer_pts && r1 >= g_ratio, p2 = n >= 3 && md2 <= g_bundle_pts && r2 >= g_ratio;
    snprintf(rule, sizeof rule,
             "%sMLP - SNNK-layer test accuracy, paired mean over n >= 3 seeds, <= %.0f points, with >= %.0fx fewer trainable "
             "parameters", pre, 100 * g_layer_pts, g_ratio);
    nl_exp_part_set(r, "snnk-layer", rule, p1, "%+.2f +- %.2f points (%d seeds), %.2fx fewer parameters", 100 * md1, 100 * sd1, n, r1);
    snprintf(rule, sizeof rule,
             "%sMLP - fully bundled closed-form network test accuracy, paired mean over n >= 3 seeds, <= %.0f points, with "
             ">= %.0fx fewer trainable parameters", pre, 100 * g_bundle_pts, g_ratio);
    nl_exp_part_set(r, "bundled", rule, p2, "%+.2f +- %.2f points (%d seeds), %.2fx fewer parameters", 100 * md2, 100 * sd2, n, r2);
    snprintf(measured, nm, "kernel MSE: %s; MLP - SNNK %+.2f pts (%.1fx fewer params); MLP - bundled %+.2f pts (%.1fx)", buf,
             100 * md1, r1, 100 * md2, r2);
    return nl_exp_parts_pass(r);
}

/* quick: d = 64, 50 draws per m; first 6000 training / 2000 test images, 10 epochs, SNNK m = 128, bundled m = 2048;
 * full: 200 draws, all 60000 / 10000 images, 20 epochs, bundled m = 4096; smoke: d = 8, 4 draws, 300 / 100 images,
 * 1 epoch, bundled m = 64. Seeds 1-3 everywhere. */
static const snnk_entry_cfg snnk_quick = {64, 50, 6000, 2000, 10, 128, 2048, 3};
static const snnk_entry_cfg snnk_full = {64, 200, 60000, 10000, 20, 128, 4096, 3};
static const snnk_entry_cfg snnk_smoke = {8, 4, 300, 100, 1, 128, 64, 3};

const nl_experiment nl_exp_snnk = {
    .name = "snnk",
    .paper = "Sehanobish, Choromanski, Zhao, Dubey, Likhosherstov, Scalable Neural Network Kernels (ICLR 2024)",
    .claim = "Universal random features estimate the exp, cos and arc-cosine kernels without bias (MSE ~ 1/m); an SNNK layer "
             "replacing a feed-forward layer, and the fully bundled closed-form network, stay competitive with up to 5x fewer "
             "trainable parameters",
    .quick_desc = "kernel MSE: d = 64, 8 pairs, m = 16..4096, 50 projection draws per m; Fashion-MNIST first 6000 training / 2000 "
                  "test images, MLP 784-512-10 (Adam 1e-3, batch 128, 10 epochs), ReLU-SNNK layer m = 128 fine-tuned 10 epochs, "
                  "bundled ReLU features m = 2048 with ridge; seeds 1-3; control: uniform projections",
    .full_desc = "as quick with 200 draws per m, all 60000 / 10000 images, 20 epochs, bundled m = 4096, seeds 1-3",
    .smoke_desc = "d = 8, 4 draws per m; 300 / 100 images, 1 epoch, bundled m = 64; seeds 1-3",
    .quick = &snnk_quick,
    .full = &snnk_full,
    .smoke = &snnk_smoke,
    .metrics = "slope_exp_mean,slope_exp_se,slope_cos_mean,slope_cos_se,slope_relu_mean,slope_relu_se,slope_arccos0_mean,"
               "slope_arccos0_se,maxz_exp,maxz_cos,maxz_relu,maxz_arccos0,mlp_acc_mean,mlp_acc_se,snnk_acc_mean,snnk_acc_se,"
               "bundle_acc_mean,bundle_acc_se,mlp_params,snnk_params,bundle_params,mlp_cpu_seconds,snnk_cpu_seconds,"
               "bundle_cpu_seconds,n_train,n_test,seeds",
    .run = snnk_run_entry,
    .judge = snnk_judge,
};
