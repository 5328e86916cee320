/* Ledger entry `bpv` (schema v2, docs/repro.md): 32-bit Binary PV-DBOW codes against 32-bit baselines (LSH over
 * TF-IDF, a semantic-hashing-style binary autoencoder) on two labelled corpora from Debian packages: GCIDE
 * definitions by domain tag (Zool., Bot., Chem., Med., Anat., Naut.) and fortunes by category (file). Queries: the
 * test split (fixed hash split, lib/text); database: the training split; relevant = same label; the test documents'
 * vectors are inferred with the model frozen. Parts (rules fixed before the first run; seeds 1..n, n >= 3; paired by
 * seed: every method of a seed sees the same documents):
 *   gcide:    Binary PV-DBOW MAP and precision@100 - each baseline's: mean - t95(n-1) SE > 0 (both metrics, both
 *             baselines);
 *   fortunes: the same on the fortune categories;
 *   rerank:   Real-Binary PV-DBOW, MAP after re-ranking the Hamming shortlist by the real vectors - MAP of its codes
 *             alone: mean - t95(n-1) SE >= -0.005 (non-inferiority margin) on both corpora;
 *   transfer: Binary PV-DBOW trained on the generic corpus (KJV verses + untagged GCIDE), codes inferred for the
 *             fortunes: MAP - each baseline's MAP on fortunes: mean - t95(n-1) SE > 0.
 * Control the rule must reject: the untrained model's codes (initial document vectors, no inference) in place of
 * the trained ones (every part's Binary PV metric). Binary PV-DM is reported. */
#include "bpv/bpv.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BPV_MAX_SEEDS 8

typedef struct bpv_entry_cfg {
    int64_t g_train, g_test;   /* GCIDE documents per label: database, queries */
    int64_t f_train, f_test;   /* fortunes per category */
    int64_t generic_docs;      /* documents of the generic corpus (an even stride over it) */
    int epochs, infer_epochs, generic_epochs, bits, real_dim, seeds, ae_vocab;
    int64_t shortlist;
} bpv_entry_cfg;

static const char *const g_domains[6] = {"Zool", "Bot", "Chem", "Med", "Anat", "Naut"};
static const double g_margin = 0.005; /* re-ranking non-inferiority margin (MAP) */

typedef struct corpus_set {
    nl_text_corpus c;
    nl_text_vocab v, counts;
    nl_text_docs tr, te;
} corpus_set;

static void set_free(corpus_set *s) {
    nl_text_docs_free(&s->tr), nl_text_docs_free(&s->te);
    nl_text_vocab_free(&s->v), nl_text_vocab_free(&s->counts);
    nl_text_corpus_free(&s->c);
}

static nl_status set_prepare(corpus_set *s, int64_t ntr, int64_t nte) {
    nl_status st = nl_text_vocab_prune(&s->c.dict, 2, 0, &s->v, NULL);
    if (!st) st = nl_text_docs_encode(&s->c, &s->v, 0, 1, ntr, &s->tr, NULL);
    if (!st) st = nl_text_docs_encode(&s->c, &s->v, 1, 1, nte, &s->te, NULL);
    if (!st) st = nl_text_docs_vocab(&s->tr, &s->v, &s->counts);
    return st;
}

static nl_bpv_config model_cfg(const bpv_entry_cfg *ec, nl_bpv_kind kind, int epochs, uint64_t seed) {
    nl_bpv_config c = nl_bpv_defaults();
    c.kind = kind, c.bits = ec->bits, c.real_dim = ec->real_dim, c.epochs = epochs;
    c.infer_epochs = ec->infer_epochs, c.seed = seed;
    return c;
}

/* Train (epochs > 0) or initialise a model, infer the queries, evaluate; rr: also the re-ranked evaluation. */
static nl_status run_model(const nl_bpv_config *c, const corpus_set *s, const nl_text_docs *db,
                           const nl_text_docs *q, const nl_text_vocab *counts, int untrained, nl_bpv_eval *ev,
                           nl_bpv_eval *rr, int64_t shortlist) {
    nl_bpv_model m;
    nl_bpv_docvec dtr, dte = {0};
    uint64_t *ctr = NULL, *cte = NULL;
    (void)s;
    nl_status st = untrained ? nl_bpv_init(&m, c, counts, db->n_docs, &dtr) : nl_bpv_train(&m, c, counts, db, &dtr, NULL);
    if (st) return st;
    nl_bpv_config ci = m.cfg;
    if (untrained) m.cfg.infer_epochs = 0;
    st = nl_bpv_infer(&m, q, c->seed + 1000, &dte);
    m.cfg = ci;
    if (!st) st = nl_bpv_codes(&m, &dtr, &ctr);
    if (!st) st = nl_bpv_codes(&m, &dte, &cte);
    if (!st) st = nl_bpv_evaluate(cte, q->label, q->n_docs, ctr, db->label, db->n_docs, c->bits, NULL, NULL, 0, 0, ev);
    if (!st && rr)
        st = nl_bpv_evaluate(cte, q->label, q->n_docs, ctr, db->label, db->n_docs, c->bits, dte.w, dtr.w, dte.dim,
                             shortlist, rr);
    free(ctr), free(cte);
    nl_text_emb_free(&dtr), nl_text_emb_free(&dte);
    nl_bpv_free(&m);
    return st;
}

static nl_status run_baselines(const bpv_entry_cfg *ec, const corpus_set *s, uint64_t seed, nl_bpv_eval *lsh,
                               nl_bpv_eval *ae) {
    uint64_t *c[2] = {NULL, NULL};
    const nl_text_docs *sets[2] = {&s->tr, &s->te};
    uint64_t **out[2] = {&c[0], &c[1]};
    nl_status st = nl_bpv_lsh(&s->tr, s->v.n, ec->bits, seed, sets, out, 2);
    if (!st) st = nl_bpv_evaluate(c[1], s->te.label, s->te.n_docs, c[0], s->tr.label, s->tr.n_docs, ec->bits, NULL,
                                  NULL, 0, 0, lsh);
    free(c[0]), free(c[1]), c[0] = c[1] = NULL;
    nl_bpv_config ac = model_cfg(ec, NL_BPV_DBOW, ec->epochs, seed);
    if (!st) st = nl_bpv_ae(&s->tr, &s->counts, ec->ae_vocab, &ac, sets, out, 2);
    if (!st) st = nl_bpv_evaluate(c[1], s->te.label, s->te.n_docs, c[0], s->tr.label, s->tr.n_docs, ec->bits, NULL,
                                  NULL, 0, 0, ae);
    free(c[0]), free(c[1]);
    return st;
}

static void set_pair(nl_exp_result *r, const char *key, int seed, const nl_bpv_eval *e) {
    char k[64];
    snprintf(k, sizeof k, "%s_map", key);
    nl_exp_set_seed(r, k, seed, e->map);
    snprintf(k, sizeof k, "%s_p100", key);
    nl_exp_set_seed(r, k, seed, e->p100);
}

static const char *const g_keys[] = {"g_bpv", "g_dm", "g_rb", "g_rbrr", "g_lsh", "g_ae",
                                     "f_bpv", "f_dm", "f_rb", "f_rbrr", "f_lsh", "f_ae", "t_bpv"};
#define N_KEYS ((int)(sizeof g_keys / sizeof g_keys[0]))

/* One corpus for one seed: Binary PV-DBOW, PV-DM, Real-Binary, the baselines, the untrained control. ev[0..5]:
 * bpv, dm, rb, rbrr, lsh, ae; cev: untrained bpv, rb, rbrr. */
static nl_status run_corpus(const bpv_entry_cfg *ec, const corpus_set *s, uint64_t seed, nl_bpv_eval *ev,
                            nl_bpv_eval *cev) {
    nl_bpv_config c = model_cfg(ec, NL_BPV_DBOW, ec->epochs, seed);
    nl_status st = run_model(&c, s, &s->tr, &s->te, &s->counts, 0, &ev[0], NULL, 0);
    nl_bpv_config cd = model_cfg(ec, NL_BPV_DM, ec->epochs, seed);
    if (!st) st = run_model(&cd, s, &s->tr, &s->te, &s->counts, 0, &ev[1], NULL, 0);
    nl_bpv_config cr = model_cfg(ec, NL_BPV_REAL_BINARY, ec->epochs, seed);
    if (!st) st = run_model(&cr, s, &s->tr, &s->te, &s->counts, 0, &ev[2], &ev[3], ec->shortlist);
    if (!st) st = run_baselines(ec, s, seed, &ev[4], &ev[5]);
    if (!st) st = run_model(&c, s, &s->tr, &s->te, &s->counts, 1, &cev[0], NULL, 0);
    if (!st) st = run_model(&cr, s, &s->tr, &s->te, &s->counts, 1, &cev[1], &cev[2], ec->shortlist);
    return st;
}

/* The generic corpus reduced to n documents by an even stride (its vocabulary: words seen >= 3 times). */
typedef struct generic_set {
    nl_text_vocab gv, gcounts;
    nl_text_docs sub;
} generic_set;

static void generic_free(generic_set *g) {
    nl_text_vocab_free(&g->gv), nl_text_vocab_free(&g->gcounts), nl_text_docs_free(&g->sub);
}

static nl_status generic_prepare(const bpv_entry_cfg *ec, const nl_text_corpus *gen, generic_set *g) {
    nl_text_docs all;
    nl_text_docs *sub = &g->sub;
    nl_status st = nl_text_vocab_prune(&gen->dict, 3, 0, &g->gv, NULL);
    if (st) return st;
    if ((st = nl_text_docs_encode(gen, &g->gv, 2, 0, 0, &all, NULL))) return st;
    int64_t n = ec->generic_docs < all.n_docs ? ec->generic_docs : all.n_docs, stride = all.n_docs / (n > 0 ? n : 1);
    sub->n_docs = n;
    sub->off = malloc(sizeof(int64_t) * (size_t)(n + 1));          /* [n + 1] */
    sub->ids = malloc(sizeof(int32_t) * (size_t)(all.off[all.n_docs] + 1));
    sub->label = calloc((size_t)n + 1, sizeof(int32_t)), sub->src = calloc((size_t)n + 1, sizeof(int64_t));
    if (!sub->off || !sub->ids || !sub->label || !sub->src) st = nl_set_error(NL_ENOMEM, "bpv: out of memory");
    for (int64_t i = 0, p = 0; !st && i < n; i++) {
        int64_t j = i * stride;
        sub->off[i] = p;
        for (int64_t k = all.off[j]; k < all.off[j + 1]; k++) sub->ids[p++] = all.ids[k];
        sub->off[i + 1] = p, sub->src[i] = j, sub->label[i] = -1;
    }
    nl_text_docs_free(&all);
    if (!st) st = nl_text_docs_vocab(sub, &g->gv, &g->gcounts);
    return st;
}

/* The generic model's codes on the fortunes (database and queries inferred with the model frozen). */
static nl_status run_transfer(const bpv_entry_cfg *ec, const generic_set *g, const corpus_set *f, uint64_t seed,
                              nl_bpv_eval *ev, nl_bpv_eval *cev) {
    nl_text_docs ftr, fte;
    memset(&ftr, 0, sizeof ftr), memset(&fte, 0, sizeof fte);
    nl_status st = nl_text_docs_encode(&f->c, &g->gv, 0, 1, ec->f_train, &ftr, NULL);
    if (!st) st = nl_text_docs_encode(&f->c, &g->gv, 1, 1, ec->f_test, &fte, NULL);
    nl_bpv_config c = model_cfg(ec, NL_BPV_DBOW, ec->generic_epochs, seed);
    nl_bpv_model m;
    nl_bpv_docvec dg, dtr = {0}, dte = {0};
    uint64_t *ctr = NULL, *cte = NULL;
    for (int untrained = 0; untrained < 2 && !st; untrained++) {
        st = untrained ? nl_bpv_init(&m, &c, &g->gcounts, g->sub.n_docs, &dg)
                       : nl_bpv_train(&m, &c, &g->gcounts, &g->sub, &dg, NULL);
        if (st) break;
        if (untrained) m.cfg.infer_epochs = 0;
        st = nl_bpv_infer(&m, &ftr, seed + 2000, &dtr);
        if (!st) st = nl_bpv_infer(&m, &fte, seed + 3000, &dte);
        if (!st) st = nl_bpv_codes(&m, &dtr, &ctr);
        if (!st) st = nl_bpv_codes(&m, &dte, &cte);
        if (!st) st = nl_bpv_evaluate(cte, fte.label, fte.n_docs, ctr, ftr.label, ftr.n_docs, c.bits, NULL, NULL, 0, 0,
                                      untrained ? cev : ev);
        free(ctr), free(cte), ctr = cte = NULL;
        nl_text_emb_free(&dg), nl_text_emb_free(&dtr), nl_text_emb_free(&dte);
        nl_bpv_free(&m);
    }
    nl_text_docs_free(&ftr), nl_text_docs_free(&fte);
    return st;
}

static nl_status bpv_run(const nl_experiment *e, const void *config, const nl_exp_options *opt, nl_exp_result *out) {
    const bpv_entry_cfg *ec = config;
    const int n = ec->seeds < BPV_MAX_SEEDS ? ec->seeds : BPV_MAX_SEEDS;
    corpus_set g, f;
    nl_text_corpus gen;
    generic_set gs;
    memset(&g, 0, sizeof g), memset(&f, 0, sizeof f), memset(&gen, 0, sizeof gen), memset(&gs, 0, sizeof gs);
    nl_status st = nl_text_corpus_init(&g.c);
    if (!st) st = nl_text_corpus_init(&f.c);
    if (!st) st = nl_text_corpus_init(&gen);
    if (!st) st = nl_text_read_gcide(&g.c, NULL, g_domains, 6, 0);
    if (!st) st = nl_text_read_fortunes(&f.c, NULL, 100);
    if (!st) st = nl_text_read_generic(&gen, NULL);
    if (!st) st = set_prepare(&g, ec->g_train, ec->g_test);
    if (!st) st = set_prepare(&f, ec->f_train, ec->f_test);
    if (!st) st = generic_prepare(ec, &gen, &gs);
    nl_exp_result *cu = st ? NULL
                           : nl_exp_control_add(out, "untrained", "broken",
                                                "codes of the untrained models (initial document vectors, no "
                                                "inference) in place of the trained Binary PV / Real-Binary codes");
    if (!st && !cu) st = nl_set_error(NL_ENOMEM, "bpv: out of memory");
    for (int i = 0; i < n && !st; i++) {
        uint64_t seed = (uint64_t)(i + 1);
        nl_bpv_eval ev[13], cev[7];
        if ((st = run_corpus(ec, &g, seed, ev, cev))) break;
        if ((st = run_corpus(ec, &f, seed, ev + 6, cev + 3))) break;
        if ((st = run_transfer(ec, &gs, &f, seed, &ev[12], &cev[6]))) break;
        for (int k = 0; k < N_KEYS; k++) set_pair(out, g_keys[k], i + 1, &ev[k]);
        for (int k = 0; k < N_KEYS; k++) set_pair(cu, g_keys[k], i + 1, &ev[k]);
        /* the control's Binary PV metrics are the untrained codes' */
        set_pair(cu, "g_bpv", i + 1, &cev[0]), set_pair(cu, "g_rb", i + 1, &cev[1]), set_pair(cu, "g_rbrr", i + 1, &cev[2]);
        set_pair(cu, "f_bpv", i + 1, &cev[3]), set_pair(cu, "f_rb", i + 1, &cev[4]), set_pair(cu, "f_rbrr", i + 1, &cev[5]);
        set_pair(cu, "t_bpv", i + 1, &cev[6]);
        if (opt->verbose)
            nl_progress("bpv seed %d: GCIDE MAP bpv %.3f dm %.3f rb %.3f/%.3f lsh %.3f ae %.3f (untrained %.3f); fortunes "
                        "bpv %.3f dm %.3f rb %.3f/%.3f lsh %.3f ae %.3f (untrained %.3f); transfer %.3f", i + 1,
                        ev[0].map, ev[1].map, ev[2].map, ev[3].map, ev[4].map, ev[5].map, cev[0].map, ev[6].map,
                        ev[7].map, ev[8].map, ev[9].map, ev[10].map, ev[11].map, cev[3].map, ev[12].map);
    }
    if (!st) {
        nl_exp_result *rs[2] = {out, cu};
        char k[64];
        for (int j = 0; j < 2; j++) {
            for (int q = 0; q < N_KEYS; q++) {
                snprintf(k, sizeof k, "%s_map", g_keys[q]);
                nl_exp_set_seed_mean_se(rs[j], k, n);
                snprintf(k, sizeof k, "%s_p100", g_keys[q]);
                nl_exp_set_seed_mean_se(rs[j], k, n);
            }
            nl_exp_set(rs[j], "seeds", n);
            nl_exp_set(rs[j], "bits", ec->bits);
            rs[j]->seeds = n;
        }
        nl_exp_set(out, "gcide_db", (double)g.tr.n_docs), nl_exp_set(out, "gcide_queries", (double)g.te.n_docs);
        nl_exp_set(out, "fortunes_db", (double)f.tr.n_docs), nl_exp_set(out, "fortunes_queries", (double)f.te.n_docs);
        nl_exp_set(out, "gcide_vocab", g.v.n), nl_exp_set(out, "fortunes_vocab", f.v.n);
        nl_exp_set(out, "fortunes_categories", f.c.n_labels);
        nl_exp_set(out, "generic_docs", (double)(ec->generic_docs < gen.n_docs ? ec->generic_docs : gen.n_docs));
        snprintf(out->note, sizeof out->note,
                 "%s: %d-bit codes; GCIDE %lld database / %lld query definitions (6 domains), fortunes %lld / %lld "
                 "(%d categories); generic model on %lld of %lld documents; %d seeds, %d threads",
                 e->name, ec->bits, (long long)g.tr.n_docs, (long long)g.te.n_docs, (long long)f.tr.n_docs,
                 (long long)f.te.n_docs, f.c.n_labels, (long long)(ec->generic_docs < gen.n_docs ? ec->generic_docs : gen.n_docs),
                 (long long)gen.n_docs, n, opt->threads);
    }
    set_free(&g), set_free(&f), nl_text_corpus_free(&gen), generic_free(&gs);
    return st;
}

/* min over the two baselines of the paired lower bound of (a - baseline), for one metric suffix */
static double beats(const nl_exp_result *r, const char *pre, const char *a, const char *metric, int n, double *worst) {
    char ka[64], kb[64];
    double lo = INFINITY, m;
    const char *base[2] = {"lsh", "ae"};
    for (int b = 0; b < 2; b++) {
        snprintf(ka, sizeof ka, "%s_%s", a, metric);
        snprintf(kb, sizeof kb, "%s_%s_%s", pre, base[b], metric);
        double l = nl_exp_paired_lower(r, ka, kb, n, &m, NULL);
        if (!(l >= lo)) lo = l, *worst = m; /* NaN propagates */
    }
    return lo;
}

static int bpv_judge(const nl_experiment *e, nl_exp_result *r, int mode, char *measured, size_t nm) {
    (void)e;
    int n = (int)nl_exp_get(r, "seeds", NULL);
    if (!(n >= 0)) n = 0;
    const char *pre = mode == NL_MODE_SMOKE ? "smoke (plumbing only): " : "";
    char rule[320];
    double dm[4], lg[2], lf[2], lt, dt, lr[2], mr[2];
    lg[0] = beats(r, "g", "g_bpv", "map", n, &dm[0]), lg[1] = beats(r, "g", "g_bpv", "p100", n, &dm[1]);
    lf[0] = beats(r, "f", "f_bpv", "map", n, &dm[2]), lf[1] = beats(r, "f", "f_bpv", "p100", n, &dm[3]);
    lt = beats(r, "f", "t_bpv", "map", n, &dt);
    lr[0] = nl_exp_paired_lower(r, "g_rbrr_map", "g_rb_map", n, &mr[0], NULL);
    lr[1] = nl_exp_paired_lower(r, "f_rbrr_map", "f_rb_map", n, &mr[1], NULL);
    int pg = n >= 3 && lg[0] > 0 && lg[1] > 0, pf = n >= 3 && lf[0] > 0 && lf[1] > 0;
    int pr = n >= 3 && lr[0] >= -g_margin && lr[1] >= -g_margin, pt = n >= 3 && lt > 0;
    snprintf(rule, sizeof rule, "%sGCIDE domains: Binary PV-DBOW - each 32-bit baseline (LSH/TF-IDF, binary AE), MAP and "
                                "precision@100, paired over n >= 3 seeds: mean - t95(n-1)*SE > 0", pre);
    nl_exp_part_set(r, "gcide", rule, pg, "worst bound MAP %+.4f (mean diff %+.4f), P@100 %+.4f (mean diff %+.4f)",
                    lg[0], dm[0], lg[1], dm[1]);
    snprintf(rule, sizeof rule, "%sfortune categories: the same rule", pre);
    nl_exp_part_set(r, "fortunes", rule, pf, "worst bound MAP %+.4f (mean diff %+.4f), P@100 %+.4f (mean diff %+.4f)",
                    lf[0], dm[2], lf[1], dm[3]);
    snprintf(rule, sizeof rule, "%sReal-Binary PV-DBOW: MAP re-ranked by the real vectors - MAP of the codes alone, "
                                "paired: mean - t95(n-1)*SE >= -%.3f on GCIDE and on fortunes", pre, g_margin);
    nl_exp_part_set(r, "rerank", rule, pr, "GCIDE %+.4f (bound %+.4f), fortunes %+.4f (bound %+.4f)", mr[0], lr[0],
                    mr[1], lr[1]);
    snprintf(rule, sizeof rule, "%sfortunes with the model trained on the generic corpus: MAP - each baseline's, "
                                "paired: mean - t95(n-1)*SE > 0", pre);
    nl_exp_part_set(r, "transfer", rule, pt, "worst bound %+.4f (mean diff %+.4f)", lt, dt);
    snprintf(measured, nm, "MAP GCIDE bpv %.3f vs lsh %.3f / ae %.3f; fortunes %.3f vs %.3f / %.3f; transfer %.3f; "
                           "re-rank %+.3f / %+.3f",
             nl_exp_get(r, "g_bpv_map_mean", NULL), nl_exp_get(r, "g_lsh_map_mean", NULL),
             nl_exp_get(r, "g_ae_map_mean", NULL), nl_exp_get(r, "f_bpv_map_mean", NULL),
             nl_exp_get(r, "f_lsh_map_mean", NULL), nl_exp_get(r, "f_ae_map_mean", NULL),
             nl_exp_get(r, "t_bpv_map_mean", NULL), mr[0], mr[1]);
    return nl_exp_parts_pass(r);
}

/* quick: a subsample of both corpora (per-label caps), a 30000-document generic subset; full: every document. */
static const bpv_entry_cfg bpv_quick = {300, 60, 80, 20, 20000, 15, 15, 3, 32, 64, 3, 2000, 100};
static const bpv_entry_cfg bpv_full = {0, 0, 0, 0, 300000, 20, 20, 5, 32, 100, 3, 2000, 100};
static const bpv_entry_cfg bpv_smoke = {40, 10, 10, 4, 2000, 2, 2, 1, 32, 16, 3, 500, 50};

#define BPV_METRICS                                                                                                    \
    "g_bpv_map_mean,g_bpv_map_se,g_bpv_p100_mean,g_dm_map_mean,g_rb_map_mean,g_rbrr_map_mean,g_lsh_map_mean,"        \
    "g_lsh_p100_mean,g_ae_map_mean,g_ae_p100_mean,f_bpv_map_mean,f_bpv_map_se,f_bpv_p100_mean,f_dm_map_mean,"         \
    "f_rb_map_mean,f_rbrr_map_mean,f_lsh_map_mean,f_lsh_p100_mean,f_ae_map_mean,f_ae_p100_mean,t_bpv_map_mean,"      \
    "t_bpv_map_se,gcide_db,gcide_queries,fortunes_db,fortunes_queries,generic_docs,bits,seeds"

const nl_experiment nl_exp_bpv = {
    .name = "bpv",
    .paper = "Grzegorczyk & Kurdziel, Binary Paragraph Vectors (RepL4NLP 2017); Grzegorczyk, Vector representations "
             "of text data in deep learning (PhD thesis 2019, arXiv 1901.01695)",
    .claim = "32-bit Binary PV-DBOW codes retrieve same-label documents (MAP, precision@100) better than 32-bit "
             "semantic-hashing-style and LSH codes, on GCIDE domains and fortune categories; re-ranking by the "
             "Real-Binary model's real vectors is no worse; a model trained on a generic corpus still beats the "
             "baselines on the fortunes.",
    .quick_desc = "GCIDE definitions (Zool/Bot/Chem/Med/Anat/Naut) 300 database + 60 query per domain, fortunes 80 + "
                  "20 per category (>= 100 fortunes); 32 bits, k = 5 negatives, 15 epochs (inference 15), SGD 0.05 "
                  "linear decay; Real-Binary 64-d; generic model: 20000 KJV + GCIDE documents, 3 epochs; seeds 1-3",
    .full_desc = "every tagged definition and every fortune (fixed hash split), 20 epochs; Real-Binary 100-d; generic "
                 "model on 300000 documents (all), 5 epochs; seeds 1-3",
    .smoke_desc = "40 + 10 per domain, 10 + 4 per category, 2 epochs, generic 2000 documents, 1 epoch",
    .quick = &bpv_quick,
    .full = &bpv_full,
    .smoke = &bpv_smoke,
    .metrics = BPV_METRICS,
    .run = bpv_run,
    .judge = bpv_judge,
};
