/* Ledger entry `forwardgnn` (schema v2, docs/repro.md): single-forward (SF) ForwardGNN against end-to-end backprop on
 * the WordNet noun graph with the 5%-labelled split, for GCN and for SAGE, the same seeds paired (seed i: split,
 * initialisation and virtual node features). Parts:
 *  - gcn / sage: with L* the backprop depth (1-4 layers) of the best mean test accuracy, the paired differences
 *    d_i = SF(4 layers)_i - BP(L*)_i satisfy mean - t95(n-1) SE >= -2 points over n >= 3 seeds;
 *  - memory: SF's peak training bytes at 4 layers <= 1.3x its 1-layer figure, and backprop's 4-layer peak > its
 *    1-layer peak, for GCN and for SAGE (seed 1).
 * Control the rule must reject: SF whose virtual nodes have no label edges (the same seeds), compared with the main
 * result's backprop runs. */
#include "forwardgnn/forwardgnn.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

#define FG_MAX_SEEDS 8
#define FG_MARGIN 0.02

typedef struct fg_entry_cfg {
    int n_cls;
    int cls[26];          /* WordNet classes kept (lexicographer file - 3); n_cls = 0: all 26 */
    int split_pct;        /* 5 */
    int hidden;
    int sf_epochs, sf_patience;
    double sf_lr;
    int bp_epochs, bp_patience;
    int seeds;
} fg_entry_cfg;

static const char *const g_kinds[2] = {"gcn", "sage"};

static nl_status run_seed(const nl_graph *g, const fg_entry_cfg *ec, int ki, uint64_t seed, int label_edges, int with_bp,
                          const nl_exp_options *opt, nl_exp_result *r, double *sf_peak, double *bp_peak) {
    char name[64];
    nl_forwardgnn_config fc = nl_forwardgnn_defaults(ki ? NL_GRAPH_SAGE : NL_GRAPH_GCN);
    fc.layers = 4, fc.hidden = ec->hidden, fc.max_epochs = ec->sf_epochs, fc.patience = ec->sf_patience, fc.lr = ec->sf_lr;
    fc.seed = seed, fc.label_edges = label_edges, fc.verbose = opt->verbose > 1;
    nl_forwardgnn_result fr;
    nl_status s = nl_forwardgnn_sf_train(g, &fc, &fr);
    if (s) return s;
    for (int l = 0; l < 4; l++) {
        snprintf(name, sizeof name, "sf%d_%s", l + 1, g_kinds[ki]);
        nl_exp_set_seed(r, name, (int)seed, fr.test_acc[l]);
        if (sf_peak) sf_peak[l] = (double)fr.peak_bytes[l];
    }
    if (opt->verbose)
        nl_progress("forwardgnn %s seed %d SF%s: %.4f %.4f %.4f %.4f (layers 1-4; %.1f s)", g_kinds[ki], (int)seed,
                    label_edges ? "" : " without label edges", fr.test_acc[0], fr.test_acc[1], fr.test_acc[2], fr.test_acc[3], fr.seconds);
    if (!with_bp) return NL_OK;
    for (int L = 1; L <= 4; L++) {
        nl_graph_config bc = nl_graph_defaults(ki ? NL_GRAPH_SAGE : NL_GRAPH_GCN);
        bc.layers = L, bc.hidden = ec->hidden, bc.max_epochs = ec->bp_epochs, bc.patience = ec->bp_patience, bc.seed = seed;
        nl_graph_result br;
        if ((s = nl_graph_train(g, &bc, &br))) return s;
        snprintf(name, sizeof name, "bp%d_%s", L, g_kinds[ki]);
        nl_exp_set_seed(r, name, (int)seed, br.test_acc);
        if (bp_peak) bp_peak[L - 1] = (double)br.arena_peak;
        if (opt->verbose) nl_progress("forwardgnn %s seed %d BP %d layers: %.4f (best epoch %d of %d)", g_kinds[ki], (int)seed, L, br.test_acc, br.best_epoch, br.epochs);
    }
    return NL_OK;
}

/* means and SEs of every per-seed series present for prefix in {sf, bp} */
static void summarise(nl_exp_result *r, const char *pre, int ki, int n) {
    char name[64];
    for (int L = 1; L <= 4; L++) {
        snprintf(name, sizeof name, "%s%d_%s", pre, L, g_kinds[ki]);
        nl_exp_set_seed_mean_se(r, name, n);
    }
}

static nl_status fg_run(const nl_experiment *e, const void *config, const nl_exp_options *opt, nl_exp_result *out) {
    const fg_entry_cfg *ec = config;
    const int n = ec->seeds < FG_MAX_SEEDS ? ec->seeds : FG_MAX_SEEDS;
    const double t0 = nl_time();
    nl_graph g;
    nl_status s = nl_fgnn_wordnet(&g, ec->cls, ec->n_cls);
    if (s) return s;
    nl_exp_result *ctl = nl_exp_control_add(out, "no-label-edges", "broken",
                                            "SF whose virtual class nodes have no edges (N(0,1) features only), same seeds, compared with the "
                                            "main result's backprop runs");
    if (!ctl) s = nl_set_error(NL_ENOMEM, "%s: out of memory", e->name);
    double sfp[2][4], bpp[2][4];
    for (int i = 0; i < n && !s; i++) {
        if ((s = nl_graph_split(&g, (uint64_t)(i + 1), ec->split_pct))) break;
        for (int ki = 0; ki < 2 && !s; ki++) {
            if ((s = run_seed(&g, ec, ki, (uint64_t)(i + 1), 1, 1, opt, out, i ? NULL : sfp[ki], i ? NULL : bpp[ki]))) break;
            s = run_seed(&g, ec, ki, (uint64_t)(i + 1), 0, 0, opt, ctl, NULL, NULL);
        }
    }
    if (!s) {
        char name[64];
        for (int ki = 0; ki < 2; ki++) {
            for (int i = 0; i < n; i++)
                for (int L = 1; L <= 4; L++) {
                    snprintf(name, sizeof name, "bp%d_%s_seed%d", L, g_kinds[ki], i + 1);
                    nl_exp_set(ctl, name, nl_exp_get(out, name, NULL));
                }
            summarise(out, "sf", ki, n), summarise(out, "bp", ki, n);
            summarise(ctl, "sf", ki, n), summarise(ctl, "bp", ki, n);
            for (int L = 1; L <= 4; L++) {
                snprintf(name, sizeof name, "sf%d_%s_peak_mb", L, g_kinds[ki]);
                nl_exp_set(out, name, sfp[ki][L - 1] / 1e6), nl_exp_set(ctl, name, sfp[ki][L - 1] / 1e6);
                snprintf(name, sizeof name, "bp%d_%s_peak_mb", L, g_kinds[ki]);
                nl_exp_set(out, name, bpp[ki][L - 1] / 1e6), nl_exp_set(ctl, name, bpp[ki][L - 1] / 1e6);
            }
        }
        nl_exp_set(out, "nodes", (double)g.n), nl_exp_set(out, "classes", g.num_classes);
        nl_exp_set(out, "seeds", n), nl_exp_set(ctl, "seeds", n);
        out->seeds = ctl->seeds = n;
        nl_exp_set(out, "train_seconds", nl_time() - t0);
        snprintf(out->note, sizeof out->note, "%s: WordNet %s (%lld nodes, %d classes), %d%% labelled, hidden %d, %d seeds, %d threads", e->name,
                 ec->n_cls ? "subgraph" : "full graph", (long long)g.n, g.num_classes, ec->split_pct, ec->hidden, n, opt->threads);
    }
    nl_graph_free(&g);
    return s;
}

static int fg_judge(const nl_experiment *e, nl_exp_result *r, int mode, char *measured, size_t nm) {
    (void)e;
    const int n = nl_exp_get_count(r, "seeds", FG_MAX_SEEDS);
    size_t used = 0;
    measured[0] = 0;
    char name[64], rule[256];
    const char *pre = mode == NL_MODE_SMOKE ? "smoke (plumbing only): " : "";
    for (int ki = 0; ki < 2; ki++) {
        int Lb = 1;
        double bm = -1;
        for (int L = 1; L <= 4; L++) {
            snprintf(name, sizeof name, "bp%d_%s_mean", L, g_kinds[ki]);
            double v = nl_exp_get(r, name, NULL);
            if (v > bm) bm = v, Lb = L;
        }
        double md, sd;
        char sk[64], bk[64]; /* the per-seed keys sf4_KIND, bpLb_KIND */
        snprintf(sk, sizeof sk, "sf4_%s", g_kinds[ki]);
        snprintf(bk, sizeof bk, "bp%d_%s", Lb, g_kinds[ki]);
        const double lo = nl_exp_paired_lower(r, sk, bk, n, &md, &sd); /* NAN (and md, sd) when n < 2 */
        const int pass = n >= 3 && lo >= -FG_MARGIN;
        snprintf(name, sizeof name, "sf4_%s_mean", g_kinds[ki]);
        const double sm = nl_exp_get(r, name, NULL);
        snprintf(rule, sizeof rule, "%sSF (4 layers) - best backprop over 1-4 layers (by mean), %s test accuracy, paired over n >= 3 seeds: "
                 "mean - t95(n-1)*SE >= -%.1f points", pre, g_kinds[ki], 100 * FG_MARGIN);
        nl_exp_part_set(r, g_kinds[ki], rule, pass, "SF %.2f%%, backprop (%d layers) %.2f%%, difference %+.2f +- %.2f points (%d seeds), bound %+.2f %s -%.1f",
                        100 * sm, Lb, 100 * bm, 100 * md, 100 * sd, n, 100 * lo, pass ? ">=" : "<", 100 * FG_MARGIN);
        int w = snprintf(measured + used, nm - used, "%s%s: SF %.2f%% vs BP%d %.2f%% (bound %+.2f)", ki ? "; " : "", g_kinds[ki], 100 * sm, Lb,
                         100 * bm, 100 * lo);
        if (w > 0 && (size_t)w < nm - used) used += (size_t)w;
    }
    double ratio[2][2];
    int mpass = 1;
    for (int ki = 0; ki < 2; ki++)
        for (int a = 0; a < 2; a++) {
            snprintf(name, sizeof name, "%s1_%s_peak_mb", a ? "bp" : "sf", g_kinds[ki]);
            const double p1 = nl_exp_get(r, name, NULL);
            snprintf(name, sizeof name, "%s4_%s_peak_mb", a ? "bp" : "sf", g_kinds[ki]);
            ratio[ki][a] = nl_exp_get(r, name, NULL) / p1;
            mpass = mpass && (a ? ratio[ki][a] > 1.0 : ratio[ki][a] <= 1.3); /* NaN fails */
        }
    snprintf(rule, sizeof rule, "%speak training bytes, 4 layers / 1 layer (seed 1): SF <= 1.3 and backprop > 1, for GCN and SAGE", pre);
    nl_exp_part_set(r, "memory", rule, mpass, "SF %.2f (gcn), %.2f (sage); backprop %.2f (gcn), %.2f (sage)", ratio[0][0], ratio[1][0], ratio[0][1],
                    ratio[1][1]);
    int w = snprintf(measured + used, nm - used, "; memory 4/1 layers SF %.2f/%.2f, BP %.2f/%.2f", ratio[0][0], ratio[1][0], ratio[0][1], ratio[1][1]);
    (void)w;
    return nl_exp_parts_pass(r);
}

/* Quick: the five WordNet classes whose sizes are nearest 2000 (body, object, food, group, cognition: 11,722 nodes);
 * full: all 82,115 nodes and 26 classes, hidden 64, <= 100 epochs, patience 30 (about 30 minutes estimated from
 * lib/graph's measured epoch costs; not run yet); smoke: three small classes (feeling, relation, shape: 1,206 nodes). */
static const fg_entry_cfg fg_quick = {5, {5, 14, 10, 11, 6}, 5, 32, 60, 20, 1e-2, 100, 20, 3};
static const fg_entry_cfg fg_full = {0, {0}, 5, 64, 100, 30, 1e-2, 100, 30, 3};
static const fg_entry_cfg fg_smoke = {3, {9, 21, 22}, 5, 16, 10, 5, 1e-2, 10, 5, 3};

#define FG_METRICS                                                                                                      \
    "sf1_gcn_mean,sf2_gcn_mean,sf3_gcn_mean,sf4_gcn_mean,bp1_gcn_mean,bp2_gcn_mean,bp3_gcn_mean,bp4_gcn_mean,"          \
    "sf1_sage_mean,sf2_sage_mean,sf3_sage_mean,sf4_sage_mean,bp1_sage_mean,bp2_sage_mean,bp3_sage_mean,bp4_sage_mean,"  \
    "sf1_gcn_peak_mb,sf4_gcn_peak_mb,bp1_gcn_peak_mb,bp4_gcn_peak_mb,sf1_sage_peak_mb,sf4_sage_peak_mb,bp1_sage_peak_mb,"  \
    "bp4_sage_peak_mb,nodes,classes,seeds,train_seconds"

const nl_experiment nl_exp_forwardgnn = {
    .name = "forwardgnn",
    .paper = "Park et al., Forward Learning of Graph Neural Networks (ICLR 2024)",
    .claim = "Single-forward ForwardGNN (layers trained greedily on virtual-class-node scores) is within 2 points of the best backprop "
             "result over 1-4 layers for GCN and for SAGE (paper, Cora_ML GCN: backprop 31.7/86.8/88.7/86.6 vs SF 87.8/88.0/88.2/88.5), "
             "and its peak training memory at 4 layers is at most 1.3x its 1-layer figure while backprop's grows.",
    .quick_desc = "WordNet nouns, 5 classes (11,722 nodes), 5% labelled, seeds 1-3; SF 4 layers hidden 32, Adam 1e-2 (wd 5e-4), <= 60 steps/layer, "
                  "validation every 2 steps, patience 20 validations; backprop (lib/graph: Adam 1e-2, dropout 0.5, wd 5e-4) 1-4 layers hidden 32, <= 100 epochs, patience 20; "
                  "control: no label edges",
    .full_desc = "WordNet nouns, all 82,115 nodes and 26 classes, 5% labelled, seeds 1-3; SF 4 layers hidden 64, Adam 1e-2 (wd 5e-4), <= 100 "
                 "steps/layer, validation every 2 steps, patience 30 validations; backprop (lib/graph defaults: Adam 1e-2, dropout 0.5, wd 5e-4) 1-4 layers hidden 64, <= 100 "
                 "epochs, patience 30; control: no label edges",
    .smoke_desc = "WordNet nouns, 3 small classes (1,206 nodes), 5% labelled, seeds 1-3, hidden 16, 10 epochs",
    .quick = &fg_quick,
    .full = &fg_full,
    .smoke = &fg_smoke,
    .metrics = FG_METRICS,
    .run = fg_run,
    .judge = fg_judge,
};
