/* lib/text — the shared text stack: UTF-8-safe tokenisation, vocabularies (frequency cut-off, subsampling), labelled
 * document corpora read from Debian packages (dict-gcide, fortunes, bible-kjv-text), the unigram^0.75 negative-
 * sampling table, negative-sampling and sampled-softmax losses (fused SGD kernels and engine-graph ops, both
 * gradient-tested), embedding tables with sparse row updates, and TF-IDF.
 *
 * Stable interface (methods/bpv and methods/dsg build on it). All functions return nl_status and set the error
 * message (nl_set_error); none exits. Token ids are int32; -1 never appears in an encoded document. */
#ifndef NL_TEXT_H
#define NL_TEXT_H
#include "nnlab/autograd.h"
#include "nnlab/base.h"
#include "nnlab/rng.h"
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- tokenisation */
/* What to do with bytes that are not valid UTF-8 (stray continuation bytes, overlong forms, surrogates, truncated
 * sequences): SKIP drops the byte and treats it as a word separator (documented default of the corpus readers);
 * REPLACE turns it into U+FFFD, also a separator (so it never joins or creates a token) but counted; STRICT fails
 * with NL_EFORMAT naming the byte offset. */
typedef enum nl_text_utf8 { NL_TEXT_UTF8_SKIP = 0, NL_TEXT_UTF8_REPLACE = 1, NL_TEXT_UTF8_STRICT = 2 } nl_text_utf8;

/* A token is a maximal run of letters and digits (ASCII alnum, or any valid multi-byte UTF-8 code point >= U+0080
 * that is not U+FFFD / a space / punctuation in U+2000..U+206F), with inner apostrophes kept ("don't") and ASCII
 * lowercased. Calls fn(tok, len, ud) for each token (tok is NOT NUL-terminated; len <= NL_TEXT_MAX_TOKEN bytes,
 * longer runs are cut at a code-point boundary). *n_bad (may be NULL) gets the number of invalid bytes met.
 * A non-zero return of fn stops the scan and is returned as the status. */
#define NL_TEXT_MAX_TOKEN 64
typedef nl_status (*nl_text_token_fn)(const char *tok, int len, void *ud);
nl_status nl_text_tokenize(const char *s, size_t n, nl_text_utf8 policy, nl_text_token_fn fn, void *ud,
                           int64_t *n_bad);

/* ---------------------------------------------------------------- vocabulary */
typedef struct nl_text_vocab {
    int32_t n;          /* words */
    char **word;        /* [n] NUL-terminated */
    int64_t *count;     /* [n] corpus frequency */
    int64_t total;      /* sum of counts */
    int32_t *hash;      /* [cap] open-addressing table of word ids, -1 = empty */
    int32_t cap;        /* power of two, >= 2n */
    int32_t alloc;      /* allocated entries of word/count */
} nl_text_vocab;

nl_status nl_text_vocab_init(nl_text_vocab *v);
void nl_text_vocab_free(nl_text_vocab *v);
/* Id of word (len bytes), or -1. */
int32_t nl_text_vocab_find(const nl_text_vocab *v, const char *w, int len);
/* Id of word, adding it with count 0 when absent; then count += add. */
nl_status nl_text_vocab_add(nl_text_vocab *v, const char *w, int len, int64_t add, int32_t *id);
/* A new vocabulary of the words of src with count >= min_count, at most max_words (0 = no limit), sorted by count
 * descending then bytewise (deterministic). map (may be NULL) gets [src->n] old id -> new id or -1. */
nl_status nl_text_vocab_prune(const nl_text_vocab *src, int64_t min_count, int32_t max_words, nl_text_vocab *dst,
                              int32_t *map);
/* word2vec subsampling: the probability of KEEPING word id, min(1, sqrt(t / f) + t / f) with f = count / total;
 * t <= 0 keeps everything. keep[v->n] is filled. */
void nl_text_vocab_keep_prob(const nl_text_vocab *v, double t, float *keep);

/* ---------------------------------------------------------------- negative sampling */
/* Table of size entries where word i fills a share proportional to count_i^power (0.75 in word2vec). */
typedef struct nl_text_unigram {
    int32_t *table; /* [size] word ids */
    int64_t size;
} nl_text_unigram;
nl_status nl_text_unigram_build(nl_text_unigram *u, const nl_text_vocab *v, double power, int64_t size);
void nl_text_unigram_free(nl_text_unigram *u);
static inline int32_t nl_text_unigram_draw(const nl_text_unigram *u, nl_rng *r) {
    return u->table[nl_rng_below(r, u->size)];
}
/* The sampling probability of every word under the table ([v_n] probabilities, for sampled-softmax corrections). */
void nl_text_unigram_probs(const nl_text_unigram *u, int32_t v_n, float *q);

/* ---------------------------------------------------------------- corpora */
/* Documents of token ids in the corpus' own dictionary (every word seen, with counts), with integer labels.
 * Splits are fixed: a document is in the test split iff FNV-1a(text) % 10 == 0 (about 10 %), independent of
 * seeds and of the order of files. */
typedef struct nl_text_corpus {
    int64_t n_docs;
    int64_t *off;        /* [n_docs + 1] offsets into ids */
    int32_t *ids;        /* [off[n_docs]] dictionary ids */
    int32_t *label;      /* [n_docs] label index, -1 = unlabelled */
    uint8_t *test;       /* [n_docs] 1 = test split */
    int32_t n_labels;
    char **label_name;   /* [n_labels] */
    nl_text_vocab dict;  /* every word of the corpus with its count */
    int64_t n_bad_bytes; /* invalid UTF-8 bytes skipped while reading */
    int64_t alloc_docs, alloc_ids;
} nl_text_corpus;

nl_status nl_text_corpus_init(nl_text_corpus *c);
void nl_text_corpus_free(nl_text_corpus *c);
/* Add a label name (returns its index; an existing name returns the existing index). */
nl_status nl_text_corpus_label(nl_text_corpus *c, const char *name, int32_t *index);
/* Tokenise text (n bytes) as one document with the given label (-1 = none). Empty documents (no token) are
 * skipped, *added (may be NULL) = 0. */
nl_status nl_text_corpus_add(nl_text_corpus *c, const char *text, size_t n, int32_t label, nl_text_utf8 policy,
                             int *added);

/* GCIDE definitions (dict-gcide, /usr/share/dictd/gcide.dict.dz; path NULL = that file). Every numbered sense or
 * entry body is one definition; a definition whose text starts with a domain tag "(Zool.)" gets that label when
 * the tag is one of domains[0..n_domains) (label index = position), otherwise label -1 (kept only when
 * keep_untagged). Tag, headword and bracketed etymology/source notes ("[1913 Webster]") are removed from the text. */
nl_status nl_text_read_gcide(nl_text_corpus *c, const char *path, const char *const *domains, int n_domains,
                             int keep_untagged);
/* fortunes (the fortunes package, /usr/share/games/fortunes; dir NULL = that): one document per fortune, the label
 * is the file name (category); files ending .dat / .u8 and the offensive subfolder are ignored. Categories are
 * sorted by name. min_docs: categories with fewer fortunes are dropped. */
nl_status nl_text_read_fortunes(nl_text_corpus *c, const char *dir, int min_docs);
/* King James Bible (bible-kjv + bible-kjv-text, read through /usr/bin/bible): one unlabelled document per verse. */
nl_status nl_text_read_kjv(nl_text_corpus *c);
/* The generic corpus: KJV verses + GCIDE definitions without their tags (all unlabelled). */
nl_status nl_text_read_generic(nl_text_corpus *c, const char *gcide_path);

/* Encoded documents in a given vocabulary (out-of-vocabulary words dropped). */
typedef struct nl_text_docs {
    int64_t n_docs;
    int64_t *off;   /* [n_docs + 1] */
    int32_t *ids;   /* [off[n_docs]] vocabulary ids */
    int32_t *label; /* [n_docs] */
    int64_t *src;   /* [n_docs] index of the document in the corpus */
} nl_text_docs;
/* The documents `which` selects: 0 train, 1 test, 2 all; label_only: only labelled documents; max_per_label > 0:
 * at most that many per label (the first ones in corpus order). Documents with no in-vocabulary word are counted in
 * *n_empty (may be NULL) and left out. */
nl_status nl_text_docs_encode(const nl_text_corpus *c, const nl_text_vocab *v, int which, int label_only,
                              int64_t max_per_label, nl_text_docs *d, int64_t *n_empty);
void nl_text_docs_free(nl_text_docs *d);
/* Counts of every vocabulary word over the documents (a vocab copy with counts from d). */
nl_status nl_text_docs_vocab(const nl_text_docs *d, const nl_text_vocab *v, nl_text_vocab *out);

/* ---------------------------------------------------------------- embeddings with sparse updates */
typedef struct nl_text_emb {
    int64_t rows;
    int32_t dim;
    float *w; /* [rows, dim] */
} nl_text_emb;
/* Uniform(-scale, scale) init (scale 0 = zeros). */
nl_status nl_text_emb_init(nl_text_emb *e, int64_t rows, int32_t dim, float scale, nl_rng *r);
void nl_text_emb_free(nl_text_emb *e);
static inline float *nl_text_emb_row(const nl_text_emb *e, int64_t i) { return e->w + i * e->dim; }
/* Sparse SGD: row i += lr * g (g: [dim]). */
void nl_text_emb_update(nl_text_emb *e, int64_t i, float lr, const float *g);

/* ---------------------------------------------------------------- losses */
/* Negative sampling (fused kernel). h: [dim] input vector; out: output embeddings [V, dim]; target word t and k
 * negatives neg[k]. Loss = -log s(h.u_t) - sum_j log s(-h.u_neg_j). Adds dL/dh to gh[dim] (may be NULL) and, if
 * lr > 0, applies SGD to the touched rows of out (out_row -= lr * dL/du). Returns the loss. */
float nl_text_ns_step(const float *h, nl_text_emb *out, int32_t t, const int32_t *neg, int k, float lr, float *gh);
/* The same; want_loss = 0 skips the loss (returns 0), which saves a log per candidate in training loops. */
float nl_text_ns_step_ex(const float *h, nl_text_emb *out, int32_t t, const int32_t *neg, int k, float lr, float *gh,
                         int want_loss);
/* Sampled softmax (fused kernel, Jean et al. 2015 / TF sampled_softmax_loss): logits z_j = h.u_j + b_j - log(q_j)
 * over the candidate set {t, s_1..s_k} (samples equal to t are removed from the candidates, q: [V] sampling
 * probabilities, b may be NULL); loss = -log softmax(z)_t. Gradients / updates as nl_text_ns_step (b updated too). */
float nl_text_ssm_step(const float *h, nl_text_emb *out, float *b, const float *q, int32_t t, const int32_t *s,
                       int k, float lr, float *gh);

/* The same losses as engine-graph ops over a batch: h [B, D], U [V, D] (vars); targets [B], samples [B, k] (int32
 * host arrays, copied into the node). Output: the scalar mean loss over the batch. Gradients flow to h and U. */
nl_var *nl_text_ns_loss(nl_ctx *c, nl_var *h, nl_var *U, const int32_t *targets, const int32_t *samples, int k);
nl_var *nl_text_ssm_loss(nl_ctx *c, nl_var *h, nl_var *U, const float *q, const int32_t *targets,
                         const int32_t *samples, int k);

/* ---------------------------------------------------------------- TF-IDF */
/* idf_w = log(N / df_w) over the documents d ([v_n] floats; words with df 0 get 0). */
nl_status nl_text_idf(const nl_text_docs *d, int32_t v_n, float *idf);
/* The L2-normalised tf * idf vector of document i as sparse (id, weight) pairs; returns the count (<= doc length);
 * ids[], w[] must hold the document length. */
int nl_text_tfidf_doc(const nl_text_docs *d, int64_t i, const float *idf, int32_t *ids, float *w);

#ifdef __cplusplus
}
#endif
#endif
