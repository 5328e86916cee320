/* Ledger entry `dsg` (schema v2, docs/repro.md): Disambiguated Skip-gram on the King James Bible (one document per
 * verse) with 10 pseudowords: 10 pairs of unrelated words, each pair merged into one token everywhere in the corpus.
 * Per seed (1..n, n >= 3) three models train on the same data for the same epochs: plain skip-gram
 * (nl_dsg_sg_train), DSG with S senses, and the control (S senses behind a random, frozen disambiguation network).
 * Parts (rules fixed before the first run):
 *   pseudoword-ari: the senses separate the merged words: for every pseudoword, the argmax sense of each of its
 *                   occurrences (the disambiguation network on its context, no noise) against the original word,
 *                   adjusted Rand index, averaged over the 10 pseudowords; mean - SE over seeds >= 0.3 (skip-gram has
 *                   one sense: ARI 0 by construction, computed the same way).
 *   wordnet-auc:    ROC AUC of the cosine similarity of WordNet synonym pairs vs random pairs (word vector: the
 *                   sense vectors weighted by the word's mean sense distribution) is at least skip-gram's: paired
 *                   over seeds, mean(AUC_dsg - AUC_sg) >= -0.01 (a non-inferiority margin of 0.01 AUC).
 * Controls the rule must reject: the random disambiguation network, and skip-gram itself standing in for DSG. */
#include "dsg/dsg.h"
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DSG_MAX_SEEDS 8
#define DSG_PSEUDO 10

typedef struct dsg_entry_cfg {
    int64_t max_docs;     /* verses used (0: all 31102) */
    int64_t min_count;    /* vocabulary cut-off */
    int64_t band_lo, band_hi; /* pseudoword candidates: counts in [lo, hi] */
    int32_t dim;
    int senses, window, samples, pre_epochs, epochs;
    double lr, subsample;
    int seeds;
} dsg_entry_cfg;

static const double g_ari_bar = 0.3, g_auc_margin = 0.01;

typedef struct dsg_data {
    nl_text_vocab v;      /* counts after the merge (the second word of each pair: 0) */
    nl_text_docs d;       /* all verses, pseudowords merged */
    uint8_t *truth;       /* [tokens] 1 where the token was the second word of its pair */
    int32_t pw[DSG_PSEUDO][2]; /* ids of the two words of each pseudoword (the merged token has id pw[k][0]) */
    int64_t *syn;         /* [n_syn, 2] WordNet synonym pairs */
    int64_t *rnd;         /* [n_syn, 2] random pairs */
    int64_t n_syn;
} dsg_data;

static void data_free(dsg_data *x) {
    nl_text_vocab_free(&x->v);
    nl_text_docs_free(&x->d);
    free(x->truth), free(x->syn), free(x->rnd);
    memset(x, 0, sizeof *x);
}

typedef struct lookup_ud {
    const nl_text_vocab *v;
    const dsg_data *x;
} lookup_ud;

static int64_t lookup(const char *word, void *ud) {
    const lookup_ud *u = ud;
    const int32_t id = nl_text_vocab_find(u->v, word, (int)strlen(word));
    if (id < 0 || u->v->count[id] <= 0) return -1;
    for (int k = 0; k < DSG_PSEUDO; k++)
        if (id == u->x->pw[k][0] || id == u->x->pw[k][1]) return -1; /* their meaning is the merge's */
    return id;
}

static int alpha_word(const char *w) {
    int n = 0;
    for (; *w; w++, n++)
        if (!isalpha((unsigned char)*w)) return 0;
    return n >= 3;
}

static nl_status data_make(const dsg_entry_cfg *ec, dsg_data *x) {
    memset(x, 0, sizeof *x);
    nl_text_vocab v0;
    nl_status s = nl_dsg_corpus("kjv", ec->max_docs, ec->min_count, &v0, &x->d, NULL);
    if (s) return s;
    /* pseudowords: the alphabetic words (>= 3 letters) with counts in the band, by count descending (the pruned
     * vocabulary's order); 10 positions evenly spaced through them, each word paired with the next one in that order
     * (frequency-matched pairs of otherwise arbitrary, so almost always unrelated, words) */
    int32_t cand_n = 0, *cand = s ? NULL : malloc((size_t)v0.n * sizeof *cand);
    if (!s && !cand) s = nl_set_error(NL_ENOMEM, "dsg: out of memory");
    for (int32_t i = 0; !s && i < v0.n; i++)
        if (v0.count[i] >= ec->band_lo && v0.count[i] <= ec->band_hi && alpha_word(v0.word[i])) cand[cand_n++] = i;
    if (!s && cand_n < 4 * DSG_PSEUDO)
        s = nl_set_error(NL_EINVAL, "dsg: only %d words with counts in [%lld, %lld] for %d pseudowords", (int)cand_n,
                         (long long)ec->band_lo, (long long)ec->band_hi, DSG_PSEUDO);
    for (int k = 0; !s && k < DSG_PSEUDO; k++) {
        const int64_t at = (int64_t)(2 * k + 1) * (cand_n - 1) / (2 * DSG_PSEUDO);
        x->pw[k][0] = cand[at], x->pw[k][1] = cand[at + 1];
    }
    free(cand);
    const int64_t ntok = s ? 0 : x->d.off[x->d.n_docs];
    if (!s && !(x->truth = calloc((size_t)ntok + 1, 1))) s = nl_set_error(NL_ENOMEM, "dsg: out of memory");
    for (int64_t i = 0; !s && i < ntok; i++)
        for (int k = 0; k < DSG_PSEUDO; k++)
            if (x->d.ids[i] == x->pw[k][1]) x->d.ids[i] = x->pw[k][0], x->truth[i] = 1;
    if (!s) s = nl_text_docs_vocab(&x->d, &v0, &x->v);
    nl_text_vocab_free(&v0);
    if (!s) {
        lookup_ud u = {&x->v, x};
        s = nl_dsg_wordnet_pairs(NULL, lookup, &u, &x->syn, &x->n_syn);
    }
    if (!s && x->n_syn < 100) s = nl_set_error(NL_EINVAL, "dsg: only %lld WordNet synonym pairs in the vocabulary", (long long)x->n_syn);
    if (!s) { /* random pairs over the words of the synonym pairs (a fixed stream, the same for every seed) */
        int64_t *words = malloc((size_t)x->n_syn * 2 * sizeof *words);
        x->rnd = malloc((size_t)x->n_syn * 2 * sizeof *x->rnd);
        if (!words || !x->rnd) s = nl_set_error(NL_ENOMEM, "dsg: out of memory");
        nl_rng r;
        nl_rng_init(&r, 20190105, 7);
        for (int64_t i = 0; !s && i < 2 * x->n_syn; i++) words[i] = x->syn[i];
        for (int64_t i = 0; !s && i < x->n_syn; i++) {
            int64_t a, b;
            do a = words[nl_rng_below(&r, 2 * x->n_syn)], b = words[nl_rng_below(&r, 2 * x->n_syn)];
            while (a == b);
            x->rnd[2 * i] = a, x->rnd[2 * i + 1] = b;
        }
        free(words);
    }
    if (s) data_free(x);
    return s;
}

static double cosine(const float *a, const float *b, int32_t d) {
    double ab = 0, aa = 0, bb = 0;
    for (int32_t k = 0; k < d; k++) ab += (double)a[k] * b[k], aa += (double)a[k] * a[k], bb += (double)b[k] * b[k];
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0;
}

/* Mean ARI over the pseudowords, the mean ARI of the supervised nearest-centroid assignment of the same contexts
 * (the ceiling of what the context representation separates: each occurrence goes to the nearer of the two
 * original words' mean context vectors, computed with the labels), and the WordNet AUC of a trained model. */
static nl_status measure(const nl_dsg_model *m, const dsg_data *x, int window, double *ari, double *oracle, double *auc) {
    const int32_t d = m->d;
    const int64_t ntok = x->d.off[x->d.n_docs];
    float *prior = malloc((size_t)m->V * m->S * sizeof *prior); /* [V, S] */
    float *vec = malloc((size_t)m->V * d * sizeof *vec);        /* [V, d] */
    float *cx = malloc((size_t)ntok * d * sizeof *cx);          /* [occurrences, d] contexts of one pseudoword */
    double cen[2 * 4096];                                       /* [2, d] class centroids (d <= 4096) */
    int *a = malloc((size_t)ntok * sizeof *a), *b = malloc((size_t)ntok * sizeof *b), *o = malloc((size_t)ntok * sizeof *o);
    double *ps = malloc((size_t)x->n_syn * sizeof *ps), *ns = malloc((size_t)x->n_syn * sizeof *ns);
    nl_status s = prior && vec && cx && a && b && o && ps && ns ? NL_OK : nl_set_error(NL_ENOMEM, "dsg: out of memory");
    if (!s) s = nl_dsg_priors(m, &x->d, window, prior);
    if (!s) {
        double sum = 0, sum_o = 0, logits[NL_DSG_MAX_SENSES];
        for (int k = 0; k < DSG_PSEUDO; k++) {
            int64_t n = 0;
            double cnt[2] = {0, 0};
            memset(cen, 0, 2 * (size_t)d * sizeof *cen);
            for (int64_t doc = 0; doc < x->d.n_docs; doc++)
                for (int64_t i = x->d.off[doc]; i < x->d.off[doc + 1]; i++) {
                    if (x->d.ids[i] != x->pw[k][0]) continue;
                    float *ctx = cx + (size_t)n * d;
                    nl_dsg_context(m, &x->d, doc, i - x->d.off[doc], window, ctx);
                    nl_dsg_logits(m, x->pw[k][0], ctx, logits);
                    int best = 0;
                    for (int q = 1; q < m->S; q++)
                        if (logits[q] > logits[best]) best = q;
                    a[n] = x->truth[i], b[n] = best;
                    cnt[a[n]] += 1;
                    for (int32_t q = 0; q < d; q++) cen[a[n] * d + q] += ctx[q];
                    n++;
                }
            for (int c = 0; c < 2; c++)
                for (int32_t q = 0; q < d; q++) cen[c * d + q] /= cnt[c] > 0 ? cnt[c] : 1;
            for (int64_t j = 0; j < n; j++) {
                double d0 = 0, d1 = 0;
                for (int32_t q = 0; q < d; q++) {
                    const double v = cx[(size_t)j * d + q];
                    d0 += (v - cen[q]) * (v - cen[q]), d1 += (v - cen[d + q]) * (v - cen[d + q]);
                }
                o[j] = d1 < d0;
            }
            sum += nl_dsg_ari(a, b, n, 2, m->S);
            sum_o += nl_dsg_ari(a, o, n, 2, 2);
        }
        *ari = sum / DSG_PSEUDO, *oracle = sum_o / DSG_PSEUDO;
        nl_dsg_word_vectors(m, prior, vec);
        for (int64_t i = 0; i < x->n_syn; i++) {
            ps[i] = cosine(vec + x->syn[2 * i] * d, vec + x->syn[2 * i + 1] * d, d);
            ns[i] = cosine(vec + x->rnd[2 * i] * d, vec + x->rnd[2 * i + 1] * d, d);
        }
        *auc = nl_dsg_auc(ps, x->n_syn, ns, x->n_syn);
    }
    free(prior), free(vec), free(cx), free(a), free(b), free(o), free(ps), free(ns);
    return s;
}

static nl_dsg_config run_config(const dsg_entry_cfg *ec, int senses, uint64_t seed) {
    nl_dsg_config c = nl_dsg_defaults();
    c.senses = senses, c.dim = ec->dim, c.window = ec->window, c.samples = ec->samples, c.lr = ec->lr;
    c.pre_epochs = ec->pre_epochs, c.epochs = ec->epochs, c.subsample = ec->subsample, c.seed = seed;
    return c;
}

static nl_status dsg_run(const nl_experiment *e, const void *config, const nl_exp_options *opt, nl_exp_result *out) {
    const dsg_entry_cfg *ec = config;
    const int n = ec->seeds < DSG_MAX_SEEDS ? ec->seeds : DSG_MAX_SEEDS;
    dsg_data x;
    nl_status s = data_make(ec, &x);
    if (s) return s;
    nl_exp_result *cr = nl_exp_control_add(out, "random-disambiguation", "broken",
                                           "S senses behind a random disambiguation network (per-word weights N(0, 1), "
                                           "frozen), trained otherwise as DSG");
    nl_exp_result *cs = nl_exp_control_add(out, "skip-gram", "baseline", "plain skip-gram (one sense) judged as if it were DSG");
    if (!cr || !cs) s = nl_set_error(NL_ENOMEM, "%s: out of memory", e->name);
    double secs = 0, words_s = 0;
    int64_t pairs = 0;
    for (int i = 0; i < n && !s; i++) {
        double ari[3], auc[3], orc[3];
        for (int k = 0; k < 3 && !s; k++) { /* 0 skip-gram, 1 DSG, 2 random disambiguation */
            nl_dsg_config c = run_config(ec, k ? ec->senses : 1, (uint64_t)(i + 1));
            c.random_disamb = k == 2;
            c.verbose = opt->verbose > 1;
            nl_dsg_model m;
            nl_dsg_stats st;
            if ((s = nl_dsg_model_init(&m, x.v.n, c.dim, c.senses, c.seed))) break;
            s = k ? nl_dsg_train(&m, &c, &x.d, &x.v, &st) : nl_dsg_sg_train(&m, &c, &x.d, &x.v, &st);
            if (!s) s = measure(&m, &x, c.window, &ari[k], &orc[k], &auc[k]);
            nl_dsg_model_free(&m);
            secs += st.seconds;
            if (k == 0) words_s += (double)st.words / st.seconds, pairs = st.pairs;
        }
        if (s) break;
        nl_exp_set_seed(out, "ari", i + 1, ari[1]);
        nl_exp_set_seed(out, "auc", i + 1, auc[1]);
        nl_exp_set_seed(out, "ari_sg", i + 1, ari[0]);
        nl_exp_set_seed(out, "ari_oracle", i + 1, orc[1]);
        nl_exp_set_seed(out, "auc_sg", i + 1, auc[0]);
        nl_exp_set_seed(cr, "ari", i + 1, ari[2]);
        nl_exp_set_seed(cr, "auc", i + 1, auc[2]);
        nl_exp_set_seed(cr, "auc_sg", i + 1, auc[0]);
        nl_exp_set_seed(cs, "ari", i + 1, ari[0]);
        nl_exp_set_seed(cs, "auc", i + 1, auc[0]);
        nl_exp_set_seed(cs, "auc_sg", i + 1, auc[0]);
        if (opt->verbose)
            nl_progress("dsg seed %d: ARI DSG %.3f, random net %.3f, skip-gram %.3f; AUC DSG %.4f, random net %.4f, "
                        "skip-gram %.4f (%.1f s)", i + 1, ari[1], ari[2], ari[0], auc[1], auc[2], auc[0], secs);
    }
    if (!s) {
        nl_exp_result *rs[3] = {out, cr, cs};
        for (int k = 0; k < 3; k++) {
            nl_exp_set_seed_mean_se(rs[k], "ari", n);
            nl_exp_set_seed_mean_se(rs[k], "auc", n);
            nl_exp_set_seed_mean_se(rs[k], "auc_sg", n);
            nl_exp_set(rs[k], "seeds", n);
            rs[k]->seeds = n;
        }
        nl_exp_set_seed_mean_se(out, "ari_sg", n);
        nl_exp_set_seed_mean_se(out, "ari_oracle", n);
        nl_exp_set(out, "vocab", x.v.n);
        nl_exp_set(out, "tokens", (double)x.d.off[x.d.n_docs]);
        nl_exp_set(out, "synonym_pairs", (double)x.n_syn);
        nl_exp_set(out, "train_seconds", secs);
        nl_exp_set(out, "sg_words_per_s", words_s / n);
        nl_exp_set(out, "pairs_per_run", (double)pairs);
        char pw[200];
        int w = 0;
        for (int k = 0; k < DSG_PSEUDO && w < (int)sizeof pw; k++)
            w += snprintf(pw + w, sizeof pw - (size_t)w, "%s%s/%s", k ? " " : "", x.v.word[x.pw[k][0]], x.v.word[x.pw[k][1]]);
        snprintf(out->note, sizeof out->note, "%d words, %lld tokens, %lld synonym pairs; pseudowords %s", (int)x.v.n,
                 (long long)x.d.off[x.d.n_docs], (long long)x.n_syn, pw);
    }
    data_free(&x);
    return s;
}

static int dsg_judge(const nl_experiment *e, nl_exp_result *r, int mode, char *measured, size_t nm) {
    (void)e;
    const int n = nl_exp_get_count(r, "seeds", DSG_MAX_SEEDS);
    double ari[DSG_MAX_SEEDS], m = NAN, se = NAN, md = NAN, sd = NAN;
    nl_exp_get_seeds(r, "ari", n, ari);
    if (n >= 1) nl_stats_mean_se(ari, n, &m, &se);
    nl_exp_paired_lower(r, "auc", "auc_sg", n, &md, &sd);
    const char *pre = mode == NL_MODE_SMOKE ? "smoke (plumbing only): " : "";
    const int p1 = n >= 3 && m - se >= g_ari_bar, p2 = n >= 3 && md >= -g_auc_margin; /* NaN fails */
    char rule[256];
    snprintf(rule, sizeof rule, "%spseudoword ARI (mean over 10 pseudowords) over n >= 3 seeds: mean - SE >= %.1f", pre, g_ari_bar);
    nl_exp_part_set(r, "pseudoword-ari", rule, p1, "%.3f +- %.3f (%d seeds): %.3f %s %.1f", m, se, n, m - se, p1 ? ">=" : "<", g_ari_bar);
    snprintf(rule, sizeof rule, "%sWordNet synonym-vs-random AUC minus skip-gram's, paired over n >= 3 seeds: mean >= -%.2f", pre, g_auc_margin);
    nl_exp_part_set(r, "wordnet-auc", rule, p2, "AUC %.4f vs skip-gram %.4f: difference %+.4f +- %.4f %s -%.2f",
                    nl_exp_get(r, "auc_mean", NULL), nl_exp_get(r, "auc_sg_mean", NULL), md, sd, p2 ? ">=" : "<", g_auc_margin);
    snprintf(measured, nm, "pseudoword ARI %.3f +- %.3f (bar %.1f); WordNet AUC %.4f vs skip-gram %.4f (%+.4f +- %.4f)", m, se,
             g_ari_bar, nl_exp_get(r, "auc_mean", NULL), nl_exp_get(r, "auc_sg_mean", NULL), md, sd);
    return nl_exp_parts_pass(r);
}

/* quick: d 32 and 8 samples to fit the quick budget; lr 0.1 (disgram's --lr_train; at word2vec's 0.025 the vectors
 * stayed near their initial scale after 3 epochs of KJV: README); full: d 100, 64 samples (disgram's), 3 training
 * epochs (disgram's); smoke: tiny. */
static const dsg_entry_cfg dsg_quick = {.max_docs = 0, .min_count = 5, .band_lo = 100, .band_hi = 1000, .dim = 32, .senses = 5,
                                        .window = 5, .samples = 8, .pre_epochs = 1, .epochs = 2, .lr = 0.1, .subsample = 1e-4, .seeds = 3};
static const dsg_entry_cfg dsg_full = {.max_docs = 0, .min_count = 5, .band_lo = 100, .band_hi = 1000, .dim = 100, .senses = 5,
                                       .window = 5, .samples = 64, .pre_epochs = 1, .epochs = 3, .lr = 0.1, .subsample = 1e-4, .seeds = 3};
static const dsg_entry_cfg dsg_smoke = {.max_docs = 3000, .min_count = 3, .band_lo = 20, .band_hi = 300, .dim = 16, .senses = 3,
                                        .window = 3, .samples = 8, .pre_epochs = 1, .epochs = 1, .lr = 0.1, .subsample = 1e-3, .seeds = 3};

#define DSG_METRICS                                                                                                    \
    "ari_mean,ari_se,auc_mean,auc_se,auc_sg_mean,auc_sg_se,ari_sg_mean,ari_oracle_mean,ari_oracle_se,vocab,tokens,synonym_pairs,train_seconds,"      \
    "sg_words_per_s,pairs_per_run,seeds"

const nl_experiment nl_exp_dsg = {
    .name = "dsg",
    .paper = "Grzegorczyk, Vector representations of text data in deep learning (PhD thesis, AGH 2019; arXiv 1901.01695), "
             "Disambiguated Skip-gram; code kagrze/disgram",
    .claim = "Disambiguated Skip-gram learns word senses: on 10 pseudowords (pairs of unrelated words merged in the corpus) "
             "its senses separate the original words (ARI >= 0.3, skip-gram 0), and its word vectors rank WordNet "
             "synonyms above random pairs at least as well as skip-gram's (AUC).",
    .quick_desc = "KJV (31102 verses), min count 5, 10 frequency-matched pseudowords from counts in [100, 1000]; d 32, "
                  "S 5, window 5, sampled softmax 8, SGD 0.1 linear decay, subsampling 1e-4, 1 pre-training epoch "
                  "(shared net, entropy -0.1) + 2 training epochs (per-word nets, Gumbel-softmax 0.5); seeds 1-3; "
                  "controls: random disambiguation network, skip-gram as DSG",
    .full_desc = "as quick with d 100, sampled softmax 64 and 3 training epochs",
    .smoke_desc = "the first 3000 verses, min count 3, counts in [20, 300], d 16, S 3, window 3, 8 samples, 1 + 1 epochs",
    .quick = &dsg_quick,
    .full = &dsg_full,
    .smoke = &dsg_smoke,
    .metrics = DSG_METRICS,
    .run = dsg_run,
    .judge = dsg_judge,
};
