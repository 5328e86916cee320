/* Passkey retrieval (LM-Infinite, data/passkey_retrieval of Glaciohound/LM-Infinite): a key K in [1, 1e7) hidden
 * at a random slot between repeated distractor sentences; correct when the first integer the model generates is
 * K. Any model plugs in through a generate callback and a token-length callback (NULL = bytes). */
#include "lm_infinite/lm_infinite.h"
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const nl_lm_infinite_passkey_text nl_lm_infinite_passkey_default_text = {
    "There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. I will quiz you "
    "about the important information there.",
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.",
    "The pass key is {K}. Remember it. {K} is the pass key.",
    "What is the pass key? The pass key is",
};

static int64_t len_of(nl_lm_infinite_token_len_fn f, void *ud, const char *s) { return f ? f(ud, s) : (int64_t)strlen(s); }

/* needle with every "{K}" replaced by key (malloc'd) */
static char *fill_needle(const char *tpl, int64_t key) {
    char ks[32];
    snprintf(ks, sizeof ks, "%lld", (long long)key);
    size_t n = 0;
    for (const char *p = tpl; *p;) {
        if (!strncmp(p, "{K}", 3)) { n += strlen(ks); p += 3; }
        else { n++; p++; }
    }
    char *out = malloc(n + 1), *o = out;
    if (!out) return NULL;
    for (const char *p = tpl; *p;) {
        if (!strncmp(p, "{K}", 3)) { memcpy(o, ks, strlen(ks)); o += strlen(ks); p += 3; }
        else *o++ = *p++;
    }
    *o = 0;
    return out;
}

nl_status nl_lm_infinite_passkey_make(const nl_lm_infinite_passkey_text *txt, int64_t target_len, nl_lm_infinite_token_len_fn len_fn, void *len_ud,
                          int64_t insert_at, int64_t key, nl_rng *rng, nl_lm_infinite_passkey_sample *out) {
    if (!out) return nl_set_error(NL_EINVAL, "passkey_make: out is NULL");
    memset(out, 0, sizeof *out);
    if (!txt) txt = &nl_lm_infinite_passkey_default_text;
    if (!txt->distractor || !txt->needle || !*txt->distractor)
        return nl_set_error(NL_EINVAL, "passkey_make: the distractor and needle texts are required");
    if (key <= 0) {
        if (!rng) return nl_set_error(NL_EINVAL, "passkey_make: a random key needs rng");
        key = 1 + nl_rng_below(rng, 9999999); /* uniform in [1, 1e7) */
    }
    const char *pre = txt->prefix ? txt->prefix : "", *qst = txt->question ? txt->question : "";
    char *needle = fill_needle(txt->needle, key);
    if (!needle) return nl_set_error(NL_ENOMEM, "passkey_make: out of memory");
    /* lengths of the parts, each with the joining space counted once (parts are joined by single spaces) */
    char *tmp = malloc(strlen(txt->distractor) + 2);
    if (!tmp) { free(needle); return nl_set_error(NL_ENOMEM, "passkey_make: out of memory"); }
    snprintf(tmp, strlen(txt->distractor) + 2, "%s ", txt->distractor);
    const int64_t ld = len_of(len_fn, len_ud, tmp);
    free(tmp);
    /* fixed part: prefix + needle + question with their separators */
    const size_t fl = strlen(pre) + strlen(needle) + strlen(qst) + 4;
    char *fixed = malloc(fl);
    if (!fixed) { free(needle); return nl_set_error(NL_ENOMEM, "passkey_make: out of memory"); }
    snprintf(fixed, fl, "%s%s%s %s", pre, *pre ? " " : "", needle, qst);
    const int64_t lf = len_of(len_fn, len_ud, fixed) + (*qst ? 0 : -1);
    free(fixed);
    const int64_t nd = ld > 0 ? (target_len - lf) / ld : 0;
    if (nd < 1) {
        free(needle);
        return nl_set_error(NL_EINVAL, "passkey_make: target length %lld too short: fixed text %lld + one distractor %lld",
                            (long long)target_len, (long long)lf, (long long)ld);
    }
    int64_t at = insert_at;
    if (at < 0) {
        if (!rng) { free(needle); return nl_set_error(NL_EINVAL, "passkey_make: a random slot needs rng"); }
        at = nl_rng_below(rng, nd);
    }
    if (at > nd) at = nd;
    const size_t dl = strlen(txt->distractor);
    const size_t cap = strlen(pre) + strlen(needle) + strlen(qst) + (size_t)nd * (dl + 1) + 8;
    char *p = malloc(cap), *w = p;
    if (!p) { free(needle); return nl_set_error(NL_ENOMEM, "passkey_make: out of memory (%zu bytes)", cap); }
    /* prefix, distractors before, needle, distractors after, question; single spaces between parts */
    int first = 1;
#define PUT(s_)                                           \
    do {                                                  \
        const char *s__ = (s_);                           \
        size_t l__ = strlen(s__);                         \
        if (!first) *w++ = ' ';                           \
        memcpy(w, s__, l__);                              \
        w += l__;                                         \
        first = 0;                                        \
    } while (0)
    if (*pre) PUT(pre);
    for (int64_t i = 0; i < at; i++) PUT(txt->distractor);
    PUT(needle);
    for (int64_t i = at; i < nd; i++) PUT(txt->distractor);
    if (*qst) PUT(qst);
#undef PUT
    *w = 0;
    free(needle);
    out->prompt = p;
    out->key = key;
    out->n_distract = nd;
    out->insert_at = at;
    out->len = len_of(len_fn, len_ud, p);
    return NL_OK;
}

void nl_lm_infinite_passkey_sample_free(nl_lm_infinite_passkey_sample *s) {
    if (!s) return;
    free(s->prompt);
    memset(s, 0, sizeof *s);
}

int64_t nl_lm_infinite_passkey_first_int(const char *s, int *found) {
    if (found) *found = 0;
    if (!s) return 0;
    while (*s && !isdigit((unsigned char)*s)) s++;
    if (!*s) return 0;
    int64_t v = 0;
    const int64_t cap = 999999999999999999LL; /* 18 digits */
    for (; isdigit((unsigned char)*s); s++) v = v > (cap - 9) / 10 ? cap : v * 10 + (*s - '0');
    if (found) *found = 1;
    return v;
}

int nl_lm_infinite_passkey_correct(const char *generated, int64_t key) {
    int found;
    const int64_t v = nl_lm_infinite_passkey_first_int(generated, &found);
    return found && v == key;
}

nl_status nl_lm_infinite_passkey_eval(const nl_lm_infinite_passkey_text *txt, int64_t target_len, int n, uint64_t seed, nl_lm_infinite_token_len_fn len_fn,
                          void *len_ud, nl_lm_infinite_generate_fn gen, void *gen_ud, double *accuracy) {
    if (!gen || !accuracy || n < 1) return nl_set_error(NL_EINVAL, "passkey_eval: need gen, accuracy and n >= 1");
    nl_rng rng;
    nl_rng_init(&rng, seed, 0x9A55);
    int ok = 0;
    char buf[256];
    for (int i = 0; i < n; i++) {
        nl_lm_infinite_passkey_sample s;
        nl_status st = nl_lm_infinite_passkey_make(txt, target_len, len_fn, len_ud, -1, 0, &rng, &s);
        if (st) return st;
        buf[0] = 0;
        st = gen(gen_ud, s.prompt, buf, sizeof buf);
        if (st) { nl_lm_infinite_passkey_sample_free(&s); return st; }
        buf[sizeof buf - 1] = 0;
        ok += nl_lm_infinite_passkey_correct(buf, s.key);
        nl_lm_infinite_passkey_sample_free(&s);
    }
    *accuracy = (double)ok / n;
    return NL_OK;
}
