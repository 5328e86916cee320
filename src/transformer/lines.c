/* LongChat-Lines-style synthetic retrieval task with a small word-level vocabulary (see transformer.h).
 * Line:   line <adj> - <noun> : REGISTER_CONTENT is < d d d d d > \n        (15 tokens)
 * Query:  ? line <adj> - <noun> : REGISTER_CONTENT is                        (8 tokens)
 * Answer: < d d d d d > \n                                                    (8 tokens) */
#include "nnlab/transformer.h"
#include <stdlib.h>
#include <string.h>

enum { TK_NL = 0, TK_LINE, TK_DASH, TK_COLON, TK_REG, TK_IS, TK_LT, TK_GT, TK_Q, TK_D0 };
#define N_ADJ 32
#define N_NOUN 32
#define TK_ADJ (TK_D0 + 10)
#define TK_NOUN (TK_ADJ + N_ADJ)
#define VOCAB (TK_NOUN + N_NOUN)
#define LINE_TOKENS 15
#define QUERY_TOKENS 8
#define ANSWER_TOKENS 8

static const char *const base_words[TK_D0] = {"\n", "line", "-", ":", "REGISTER_CONTENT", "is", "<", ">", "?"};
static const char *const digits[10] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
static const char *const adjs[N_ADJ] = {
    "righteous", "torpid", "swift", "ancient", "bitter", "calm", "dusty", "eager", "faint", "gentle", "hollow",
    "icy", "jolly", "keen", "lively", "mellow", "noisy", "odd", "proud", "quiet", "rusty", "shiny", "tidy",
    "upbeat", "vivid", "wary", "young", "zealous", "brave", "clever", "damp", "fuzzy"};
static const char *const nouns[N_NOUN] = {
    "ethernet", "kid", "tiger", "anchor", "bucket", "candle", "dragon", "engine", "falcon", "garden", "harbor",
    "island", "jacket", "kettle", "ladder", "meadow", "needle", "oyster", "pencil", "quartz", "rocket", "saddle",
    "tunnel", "umbrella", "violin", "wagon", "yacht", "zipper", "beacon", "cactus", "dolphin", "feather"};

int nl_lines_vocab(void) { return VOCAB; }

const char *nl_lines_token_str(int32_t id) {
    if (id < 0 || id >= VOCAB) return "?";
    if (id < TK_D0) return base_words[id];
    if (id < TK_ADJ) return digits[id - TK_D0];
    if (id < TK_NOUN) return adjs[id - TK_ADJ];
    return nouns[id - TK_NOUN];
}

int64_t nl_lines_prompt_len(int n_lines) { return (int64_t)n_lines * LINE_TOKENS + QUERY_TOKENS; }

int nl_lines_fit(int64_t max_tokens) {
    int64_t n = (max_tokens - QUERY_TOKENS - ANSWER_TOKENS) / LINE_TOKENS;
    return n < 0 ? 0 : (int)(n > N_ADJ * N_NOUN ? N_ADJ * N_NOUN : n);
}

static int64_t put_value(int32_t *t, int64_t w, int value) {
    t[w++] = TK_LT;
    for (int k = 4, p = 10000; k >= 0; k--, p /= 10) t[w++] = TK_D0 + (value / p) % 10;
    t[w++] = TK_GT;
    return w;
}

int64_t nl_lines_sample(nl_rng *rng, int n_lines, int32_t *toks, int64_t cap, int64_t *prompt_len, int *value) {
    if (n_lines < 1 || n_lines > N_ADJ * N_NOUN) return -1;
    const int64_t total = nl_lines_prompt_len(n_lines) + ANSWER_TOKENS;
    if (total > cap) return -1;
    int *keys = malloc(sizeof(int) * (size_t)n_lines), *vals = malloc(sizeof(int) * (size_t)n_lines);
    unsigned char *used = calloc(N_ADJ * N_NOUN, 1);
    if (!keys || !vals || !used) {
        free(keys); free(vals); free(used);
        return -1;
    }
    for (int i = 0; i < n_lines; i++) {
        int k;
        do k = (int)nl_rng_below(rng, N_ADJ * N_NOUN);
        while (used[k]);
        used[k] = 1;
        keys[i] = k;
        vals[i] = (int)nl_rng_below(rng, 100000);
    }
    int64_t w = 0;
    for (int i = 0; i < n_lines; i++) {
        toks[w++] = TK_LINE;
        toks[w++] = TK_ADJ + keys[i] / N_NOUN;
        toks[w++] = TK_DASH;
        toks[w++] = TK_NOUN + keys[i] % N_NOUN;
        toks[w++] = TK_COLON;
        toks[w++] = TK_REG;
        toks[w++] = TK_IS;
        w = put_value(toks, w, vals[i]);
        toks[w++] = TK_NL;
    }
    int q = (int)nl_rng_below(rng, n_lines);
    toks[w++] = TK_Q;
    toks[w++] = TK_LINE;
    toks[w++] = TK_ADJ + keys[q] / N_NOUN;
    toks[w++] = TK_DASH;
    toks[w++] = TK_NOUN + keys[q] % N_NOUN;
    toks[w++] = TK_COLON;
    toks[w++] = TK_REG;
    toks[w++] = TK_IS;
    if (prompt_len) *prompt_len = w;
    w = put_value(toks, w, vals[q]);
    toks[w++] = TK_NL;
    if (value) *value = vals[q];
    free(keys); free(vals); free(used);
    return w;
}

long nl_lines_first_int(const int32_t *toks, int64_t n) {
    int64_t i = 0;
    while (i < n && !(toks[i] >= TK_D0 && toks[i] < TK_D0 + 10)) i++;
    if (i == n) return -1;
    long v = 0;
    int nd = 0;
    for (; i < n && toks[i] >= TK_D0 && toks[i] < TK_D0 + 10; i++)
        if (nd++ < 12) v = v * 10 + (toks[i] - TK_D0);
    return v;
}

nl_status nl_lines_batch(void *ud, int64_t step, int64_t B, int64_t T, int32_t *ids, int32_t *tg) {
    nl_lines_batcher *u = ud;
    (void)step;
    int fit = nl_lines_fit(T);
    int hi = u->max_lines > 0 && u->max_lines < fit ? u->max_lines : fit, lo = u->min_lines > 0 ? u->min_lines : 1;
    if (hi < 1) return nl_set_error(NL_EINVAL, "lines batch: a window of %lld tokens holds no sample (need %lld)", (long long)T,
                                    (long long)(nl_lines_prompt_len(1) + ANSWER_TOKENS));
    if (lo > hi) lo = hi;
    const int64_t cap = nl_lines_prompt_len(hi) + ANSWER_TOKENS;
    int32_t *tmp = malloc(sizeof(int32_t) * (size_t)cap);
    if (!tmp) return nl_set_error(NL_ENOMEM, "lines batch: out of memory");
    for (int64_t b = 0; b < B; b++) {
        int n_lines = lo + (int)nl_rng_below(&u->rng, hi - lo + 1);
        int64_t pl;
        int val;
        int64_t n = nl_lines_sample(&u->rng, n_lines, tmp, cap, &pl, &val);
        int32_t *row = ids + b * T, *trow = tg + b * T;
        for (int64_t t = 0; t < T; t++) {
            row[t] = t < n ? tmp[t] : TK_NL;
            trow[t] = -1;
        }
        for (int64_t t = 0; t + 1 < n && t < T; t++)
            if (u->loss_all || t + 1 >= pl) trow[t] = tmp[t + 1];
        /* further queries about lines of this sample */
        int64_t w = n;
        while (u->fill_queries && w + QUERY_TOKENS + ANSWER_TOKENS <= T) {
            int q = (int)nl_rng_below(&u->rng, n_lines);
            const int32_t *ln = tmp + (int64_t)q * LINE_TOKENS;   /* line q: key at 1, 3; value at 7..13 */
            const int32_t qa[QUERY_TOKENS] = {TK_Q, TK_LINE, ln[1], TK_DASH, ln[3], TK_COLON, TK_REG, TK_IS};
            for (int k = 0; k < QUERY_TOKENS; k++) row[w + k] = qa[k];
            for (int k = 0; k < ANSWER_TOKENS - 1; k++) row[w + QUERY_TOKENS + k] = ln[7 + k];
            row[w + QUERY_TOKENS + ANSWER_TOKENS - 1] = TK_NL;
            int64_t qs = w + QUERY_TOKENS; /* answer start */
            for (int64_t t = w - 1; t < w + QUERY_TOKENS + ANSWER_TOKENS - 1; t++)
                if (u->loss_all || t + 1 >= qs) trow[t] = row[t + 1];
            w += QUERY_TOKENS + ANSWER_TOKENS;
        }
    }
    free(tmp);
    return NL_OK;
}

nl_status nl_lines_eval(nl_lm *m, int n_lines, int n_samples, uint64_t seed, double *accuracy, double *mean_len) {
    *accuracy = 0;
    if (mean_len) *mean_len = 0;
    if (m->cfg.vocab < VOCAB)
        return nl_set_error(NL_EINVAL, "lines eval: model vocab %d < lines vocab %d", m->cfg.vocab, VOCAB);
    if (n_lines < 1 || n_samples < 1) return nl_set_error(NL_EINVAL, "lines eval: n_lines and n_samples must be >= 1");
    const int64_t cap = nl_lines_prompt_len(n_lines) + ANSWER_TOKENS;
    int32_t *t = malloc(sizeof(int32_t) * (size_t)cap);
    if (!t) return nl_set_error(NL_ENOMEM, "lines eval: out of memory");
    nl_rng r;
    nl_rng_init(&r, seed, (uint64_t)0x11E5ULL << 32);
    nl_lm_sample_opts o = {0.0, 0, TK_NL, 1};
    int correct = 0;
    double lens = 0;
    nl_status st = NL_OK;
    for (int s = 0; s < n_samples; s++) {
        int64_t pl;
        int val;
        if (nl_lines_sample(&r, n_lines, t, cap, &pl, &val) < 0) { st = nl_set_error(NL_EINVAL, "lines eval: bad sample"); break; }
        int32_t out[ANSWER_TOKENS + 2];
        int64_t no = 0;
        if ((st = nl_lm_generate(m, t, pl, ANSWER_TOKENS, &o, NULL, out, &no))) break;
        correct += nl_lines_first_int(out, no) == val;
        lens += (double)pl;
    }
    free(t);
    if (st) return st;
    *accuracy = (double)correct / n_samples;
    if (mean_len) *mean_len = lens / n_samples;
    return NL_OK;
}
