/* methods/dsg/dsg.h — Disambiguated Skip-gram (Grzegorczyk 2019, "Vector representations of text data in deep
 * learning", arXiv 1901.01695, ch. 5; official code kagrze/disgram, src/disgram.py), with plain skip-gram as S = 1.
 *
 * Model. Every vocabulary word w has S sense embeddings E[w, s] (d), every word an output vector U[w] (d) and bias
 * b[w] (both start at zero). For a centre word w at a position with context words c_1..c_m (the window, m <= 2 win,
 * cut at the document's ends):
 *   ctx        = stopgrad(mean_j U[c_j])                                   (the context source of disgram's default)
 *   logits_s   = ctx . Wd[w][s] + bd[w][s]                                 the disambiguation network (per word)
 *   y          = softmax(logits)                 (pre-training: with the entropy term coef * H(y) added to the loss)
 *              = softmax((logits + g) / temp)    (training: a relaxed one-hot / Gumbel-softmax sample, g ~ Gumbel)
 *   h          = sum_s y_s E[w, s]
 * and h predicts each context word through the sampled softmax of lib/text (nl_text_ssm_step). Pre-training uses one
 * disambiguation network shared by all words (Ws: S x d, bs: S, starting at zero); training copies it to every word
 * (disgram's --prob_sense_assign 2 then 3). With S = 1 every y is exactly 1, the disambiguation gradient is exactly
 * 0 and the updates are those of skip-gram bit for bit (test_dsg.c checks against nl_dsg_sg_train).
 *
 * Optimisation: plain SGD on every pair as it comes (word2vec style, no batches, no autograd graph), learning rate
 * decaying linearly from lr to lr * 1e-4 over the pairs expected in all epochs (each document at its expected
 * subsampled length). Random numbers: separate Philox-seeded splitmix64 streams for the per-epoch subsampling, the
 * negative samples and the Gumbel noise (a Gumbel draw never shifts the others). */
#ifndef NNLAB_DSG_H
#define NNLAB_DSG_H
#include "nnlab/nnlab.h"
#include "nnlab/ledger.h"
#include "text/text.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NL_DSG_MAX_SENSES 16
#define NL_DSG_ENTROPY_EPS 1e-5 /* H(p) = -sum p log(p + eps), disgram's EPSILON_BIS */
#define NL_DSG_WORDNET_DIR "/usr/share/wordnet"

/* ---- the sense layer (sense.c) ---- */
/* y[S] = softmax((logits + gumbel) / temp); gumbel NULL: no noise. */
void nl_dsg_sense_probs(const double *logits, const double *gumbel, double temp, int S, double *y);
/* dlogits[S] from dy[S] = dL/dy for y of nl_dsg_sense_probs (same temp; the noise is a constant). */
void nl_dsg_sense_backward(const double *y, const double *dy, double temp, int S, double *dlogits);
/* H(p) = -sum p_s log(p_s + eps); dp[S] (may be NULL) = dH/dp. */
double nl_dsg_entropy(const double *p, int S, double *dp);

/* ---- model ---- */
typedef struct nl_dsg_model {
    int32_t V, d;      /* vocabulary, dimension */
    int S;             /* senses per word (1: skip-gram) */
    nl_text_emb E;     /* [V * S, d] sense embeddings, row w * S + s; U(-0.5/(d S), 0.5/(d S)) as disgram */
    nl_text_emb U;     /* [V, d] output vectors, zeros */
    float *b;          /* [V] output biases, zeros */
    float *Wd;         /* [V, S, d] per-word disambiguation weights, one row per sense (NULL when S = 1) */
    float *bd;         /* [V, S] their biases */
    float *Ws, *bs;    /* [S, d], [S] the shared network of pre-training (NULL when S = 1) */
} nl_dsg_model;

nl_status nl_dsg_model_init(nl_dsg_model *m, int32_t V, int32_t d, int S, uint64_t seed);
void nl_dsg_model_free(nl_dsg_model *m);

typedef struct nl_dsg_config {
    int senses;          /* S (1 = skip-gram) */
    int32_t dim;         /* d */
    int window;          /* context words on each side */
    int samples;         /* sampled-softmax candidates per pair (disgram: 64) */
    double lr;           /* starting learning rate (linear decay to lr * 1e-4) */
    int pre_epochs;      /* pre-training epochs: shared network, plain softmax, entropy term */
    int epochs;          /* training epochs: per-word networks, Gumbel-softmax */
    double entropy;      /* coefficient of H(y) in the pre-training loss (disgram: -0.1, rewarding balanced senses) */
    double temp;         /* Gumbel-softmax temperature (disgram: 0.5) */
    double disamb_lr;    /* learning-rate multiplier of the disambiguation network (the reference: 1) */
    double subsample;    /* word2vec subsampling threshold t (0: off) */
    int random_disamb;   /* control: per-word disambiguation weights N(0, 1), frozen, no pre-training of them */
    uint64_t seed;
    int verbose;
} nl_dsg_config;

nl_dsg_config nl_dsg_defaults(void);
nl_status nl_dsg_check_config(const nl_dsg_config *c);

typedef struct nl_dsg_stats {
    int64_t pairs, words;  /* trained pairs and centre words (after subsampling) */
    double seconds;        /* wall seconds of training */
    double loss;           /* mean sampled-softmax loss over the last epoch */
} nl_dsg_stats;

/* Trains m (initialised by nl_dsg_model_init with cfg's dim, senses and seed) on the documents d of vocabulary v.
 * nl_dsg_sg_train is plain skip-gram written without the sense layer: the reference S = 1 must equal. */
nl_status nl_dsg_train(nl_dsg_model *m, const nl_dsg_config *cfg, const nl_text_docs *d, const nl_text_vocab *v,
                       nl_dsg_stats *st);
nl_status nl_dsg_sg_train(nl_dsg_model *m, const nl_dsg_config *cfg, const nl_text_docs *d, const nl_text_vocab *v,
                          nl_dsg_stats *st);

/* ctx[d] = mean of U over the window of position i of document doc (count of context words returned; 0: ctx = 0). */
int nl_dsg_context(const nl_dsg_model *m, const nl_text_docs *d, int64_t doc, int64_t i, int window, float *ctx);
/* The disambiguation logits[S] of word w in context ctx (the per-word network). */
void nl_dsg_logits(const nl_dsg_model *m, int32_t w, const float *ctx, double *logits);
/* prior[V, S]: the mean sense distribution (softmax of the logits, no noise) over every occurrence in d. */
nl_status nl_dsg_priors(const nl_dsg_model *m, const nl_text_docs *d, int window, float *prior);
/* vec[V, d]: each word's vector sum_s prior[w, s] E[w, s] (skip-gram: E[w]). */
void nl_dsg_word_vectors(const nl_dsg_model *m, const float *prior, float *vec);

/* ---- evaluation (eval.c) ---- */
/* Adjusted Rand index of two labelings a[n] in [0, ka), b[n] in [0, kb) (NAN when n < 2 or a label is out of range). */
double nl_dsg_ari(const int *a, const int *b, int64_t n, int ka, int kb);
/* ROC AUC: P(a positive score > a negative one), ties half. */
double nl_dsg_auc(const double *pos, int64_t np, const double *neg, int64_t nn);
/* Synonym pairs (id pairs a < b, sorted, unique; *pairs [n_pairs, 2], free()) of WordNet 3.0 (data.noun, data.verb,
 * data.adj, data.adv under dir; NULL: NL_DSG_WORDNET_DIR): two single-word lemmas of one synset, both known to
 * lookup (an id >= 0). Missing files: NL_ENOTFOUND naming the package wordnet-base. */
nl_status nl_dsg_wordnet_pairs(const char *dir, int64_t (*lookup)(const char *word, void *ud), void *ud, int64_t **pairs,
                               int64_t *n_pairs);

/* ---- model files (io.c) ---- */
/* Writes the vocabulary (words, counts), E, U, b, prior [V, S] and the per-word disambiguation network. */
nl_status nl_dsg_save(const char *path, const nl_dsg_model *m, const nl_text_vocab *v, const float *prior);
/* Reads a file of nl_dsg_save: m, v (initialised here) and *prior (malloc'd [V, S]). NL_EFORMAT on a bad file. */
nl_status nl_dsg_load(const char *path, nl_dsg_model *m, nl_text_vocab *v, float **prior);

/* ---- corpora of the command (cli.c) ---- */
/* Documents (the first max_docs, 0: all) and vocabulary (count >= min_count over them, by count descending) of
 * "kjv", "generic" (KJV + GCIDE) or a text file (one document per non-empty line; invalid UTF-8 bytes are skipped
 * and counted in *bad, may be NULL). No document with a vocabulary word: NL_EINVAL ("empty corpus"). */
nl_status nl_dsg_corpus(const char *name, int64_t max_docs, int64_t min_count, nl_text_vocab *v, nl_text_docs *d, int64_t *bad);

int nl_dsg_cli(int argc, char **argv);
extern const nl_experiment nl_exp_dsg;

#ifdef __cplusplus
}
#endif
#endif
