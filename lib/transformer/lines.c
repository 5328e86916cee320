/* LongChat-Lines-style synthetic retrieval task with a small word-level vocabulary (see transformer.h).
 * Line:   line <adj> - <noun> : REGISTER_CONTENT is < d d d d d > \n        (15 tokens)
 * Query:  ? line <adj> - <noun> : REGISTER_CONTENT is                        (8 tokens)
 * Answer: < d d d d d > \n                                                    (8 tokens) */
#include "transformer/transformer.h"
#include <stdlib.h>
#include <string.h>

enum { TK_NL = 0, TK_LINE, TK_DASH, TK_COLON, TK_REG, TK_IS, TK_LT, TK_GT, TK_Q, TK_D0 };
#define N_ADJ 32
#define N_NOUN 32
#define TK_ADJ (TK_D0 + 10)
#define TK_NOUN (TK_ADJ + N_ADJ)
#define TK_FILL (TK_NOUN + N_NOUN)
#define N_FILL 15
#define VOCAB (TK_FILL + N_FILL)
#define LINE_TOKENS 15
#define QUERY_TOKENS 8
#define ANSWER_TOKENS NL_LINES_ANSWER_TOKENS

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

/* Filler words of the haystack prompts (the passkey task's distractor sentences); "is" is the base token. */
static const char *const fill_words[N_FILL] = {"the", "grass", "green", ".", "sky", "blue", "sun", "yellow", "here",
                                               "we", "go", "there", "and", "back", "again"};
enum { F_THE = TK_FILL, F_GRASS, F_GREEN, F_DOT, F_SKY, F_BLUE, F_SUN, F_YELLOW, F_HERE, F_WE, F_GO, F_THERE, F_AND,
       F_BACK, F_AGAIN };
/* "the grass is green . the sky is blue . the sun is yellow . here we go . there and back again ." (24 tokens) */
static const int32_t fill_cycle[] = {F_THE, F_GRASS, TK_IS, F_GREEN, F_DOT, F_THE, F_SKY, TK_IS, F_BLUE, F_DOT,
                                     F_THE, F_SUN, TK_IS, F_YELLOW, F_DOT, F_HERE, F_WE, F_GO, F_DOT,
                                     F_THERE, F_AND, F_BACK, F_AGAIN, F_DOT};
#define FILL_CYCLE ((int)(sizeof fill_cycle / sizeof fill_cycle[0]))

int nl_lines_vocab(void) { return VOCAB; }

const char *nl_lines_token_str(int32_t id) {
    if (id < 0 || id >= VOCAB) return "?";
    if (id < TK_D0) return base_words[id];
    if (id < TK_ADJ) return digits[id - TK_D0];
    if (id < TK_NOUN) return adjs[id - TK_ADJ];
    if (id < TK_FILL) return nouns[id - TK_NOUN];
    return fill_words[id - TK_FILL];
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

static int cmp_i64(const void *a, const void *b) {
    const int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* One sample. prompt_tokens 0: the lines back to back (dense); otherwise the lines at uniform random depths in
 * filler sentences so that the prompt has exactly prompt_tokens tokens (haystack). */
static int64_t sample_impl(nl_rng *rng, int n_lines, int64_t prompt_tokens, int32_t *toks, int64_t cap,
                           int64_t *prompt_len, int *value) {
    if (n_lines < 1 || n_lines > N_ADJ * N_NOUN) return -1;
    const int64_t dense = nl_lines_prompt_len(n_lines);
    if (prompt_tokens && prompt_tokens < dense) return -1;
    const int64_t total = (prompt_tokens ? prompt_tokens : dense) + ANSWER_TOKENS;
    if (total > cap) return -1;
    int *keys = malloc(sizeof(int) * (size_t)n_lines), *vals = malloc(sizeof(int) * (size_t)n_lines);
    int64_t *at = calloc((size_t)n_lines, sizeof(int64_t));   /* (n_lines) filler offset before each line */
    unsigned char *used = calloc(N_ADJ * N_NOUN, 1);
    if (!keys || !vals || !at || !used) {
        free(keys); free(vals); free(at); free(used);
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
    const int64_t n_fill = prompt_tokens ? prompt_tokens - dense : 0;
    int64_t fpos = 0;
    if (n_fill) {
        for (int i = 0; i < n_lines; i++) at[i] = (int64_t)nl_rng_below(rng, (uint64_t)n_fill + 1);
        qsort(at, (size_t)n_lines, sizeof *at, cmp_i64);
        fpos = (int64_t)nl_rng_below(rng, FILL_CYCLE);
    }
    int64_t w = 0, filled = 0;
    for (int i = 0; i <= n_lines; i++) {
        const int64_t upto = i < n_lines ? at[i] : n_fill;
        for (; filled < upto; filled++) toks[w++] = fill_cycle[(fpos + filled) % FILL_CYCLE];
        if (i == n_lines) break;
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
    free(keys); free(vals); free(at); free(used);
    return w;
}

int64_t nl_lines_sample(nl_rng *rng, int n_lines, int32_t *toks, int64_t cap, int64_t *prompt_len, int *value) {
    return sample_impl(rng, n_lines, 0, toks, cap, prompt_len, value);
}

int64_t nl_lines_haystack_sample(nl_rng *rng, int n_lines, int64_t prompt_tokens, int32_t *toks, int64_t cap,
                                 int64_t *prompt_len, int *value) {
    if (prompt_tokens < 1) return -1;
    return sample_impl(rng, n_lines, prompt_tokens, toks, cap, prompt_len, value);
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

/* Dense rows: n_lines uniform in [min_lines, max_lines or as many as fit], then (fill_queries) further queries.
 * Haystack rows: n_lines uniform in [min_lines, max(max_lines, 1)], prompt length uniform from the dense length to
 * T - answer, one query per row (further queries could copy the previous answer). */
nl_status nl_lines_batch(void *ud, int64_t step, int64_t B, int64_t T, int32_t *ids, int32_t *tg) {
    nl_lines_batcher *u = ud;
    (void)step;
    const int hay = u->haystack;
    int lo = u->min_lines > 0 ? u->min_lines : 1, hi;
    if (hay) {
        hi = u->max_lines > 0 ? u->max_lines : 1;
        while (hi >= 1 && nl_lines_prompt_len(hi) + ANSWER_TOKENS > T) hi--;
    } else {
        const int fit = nl_lines_fit(T);
        hi = u->max_lines > 0 && u->max_lines < fit ? u->max_lines : fit;
    }
    if (hi < 1) return nl_set_error(NL_EINVAL, "lines batch: a window of %lld tokens holds no sample (need %lld)", (long long)T,
                                    (long long)(nl_lines_prompt_len(1) + ANSWER_TOKENS));
    if (lo > hi) lo = hi;
    const int64_t cap = hay ? T : nl_lines_prompt_len(hi) + ANSWER_TOKENS;
    int32_t *tmp = malloc(sizeof(int32_t) * (size_t)cap);
    if (!tmp) return nl_set_error(NL_ENOMEM, "lines batch: out of memory");
    for (int64_t b = 0; b < B; b++) {
        const int n_lines = lo + (int)nl_rng_below(&u->rng, (uint64_t)(hi - lo + 1));
        int64_t P = 0, pl;
        if (hay) {
            const int64_t pmin = nl_lines_prompt_len(n_lines), pmax = T - ANSWER_TOKENS;
            P = pmin + (int64_t)nl_rng_below(&u->rng, (uint64_t)(pmax - pmin + 1));
        }
        const int64_t n = sample_impl(&u->rng, n_lines, P, tmp, cap, &pl, NULL);
        if (n < 0) { /* the sizes were checked above: only an allocation can fail */
            free(tmp);
            return nl_set_error(NL_ENOMEM, "lines batch: out of memory");
        }
        int32_t *row = ids + b * T, *trow = tg + b * T;
        for (int64_t t = 0; t < T; t++) {
            row[t] = t < n ? tmp[t] : TK_NL;
            trow[t] = t + 1 < n && (u->loss_all || t + 1 >= pl) ? tmp[t + 1] : -1;
        }
        if (hay) continue;
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

/* Greedy accuracy over n_samples prompts; prompt_tokens 0 = dense. */
static nl_status eval_impl(nl_lm *m, int n_lines, int64_t prompt_tokens, int n_samples, uint64_t seed, double *accuracy,
                           double *mean_len) {
    *accuracy = 0;
    if (mean_len) *mean_len = 0;
    if (m->cfg.vocab < VOCAB)
        return nl_set_error(NL_EINVAL, "lines eval: model vocab %d < lines vocab %d", m->cfg.vocab, VOCAB);
    if (n_lines < 1 || n_samples < 1) return nl_set_error(NL_EINVAL, "lines eval: n_lines and n_samples must be >= 1");
    if (prompt_tokens && prompt_tokens < nl_lines_prompt_len(n_lines))
        return nl_set_error(NL_EINVAL, "lines eval: a prompt of %lld tokens cannot hold %d lines (need %lld)",
                            (long long)prompt_tokens, n_lines, (long long)nl_lines_prompt_len(n_lines));
    const int64_t cap = (prompt_tokens ? prompt_tokens : nl_lines_prompt_len(n_lines)) + ANSWER_TOKENS;
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
        if (sample_impl(&r, n_lines, prompt_tokens, t, cap, &pl, &val) < 0) { st = nl_set_error(NL_EINVAL, "lines eval: bad sample"); break; }
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

nl_status nl_lines_eval(nl_lm *m, int n_lines, int n_samples, uint64_t seed, double *accuracy, double *mean_len) {
    return eval_impl(m, n_lines, 0, n_samples, seed, accuracy, mean_len);
}

nl_status nl_lines_eval_haystack(nl_lm *m, int n_lines, int64_t prompt_tokens, int n_samples, uint64_t seed,
                                 double *accuracy) {
    if (prompt_tokens < 1) return nl_set_error(NL_EINVAL, "lines eval: prompt_tokens must be >= 1");
    return eval_impl(m, n_lines, prompt_tokens, n_samples, seed, accuracy, NULL);
}
