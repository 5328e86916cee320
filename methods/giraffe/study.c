/* The giraffe study: the text corpus (KJV, fortunes, GCIDE definitions as bytes), per seed a base LM pretrained at L
 * on text mixed with Lines rows (haystack or dense), copies fine-tuned at ft_mult * L on text only (same token budget per arm),
 * and every evaluation of the table (eval.c) at every length. methods/giraffe/README.md. */
#include "giraffe/giraffe.h"
#include "text/text.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    uint8_t *p;
    int64_t n, cap;
} gbuf;

static int gput(gbuf *b, const void *src, int64_t n) {
    if (b->n + n > b->cap) {
        int64_t nc = b->cap ? b->cap : 1 << 20;
        while (nc < b->n + n) nc *= 2;
        uint8_t *q = realloc(b->p, (size_t)nc);
        if (!q) return -1;
        b->p = q;
        b->cap = nc;
    }
    memcpy(b->p + b->n, src, (size_t)n);
    b->n += n;
    return 0;
}

/* GCIDE definitions as text: their (lowercased) words joined by spaces, one definition per line, up to cap bytes. */
static nl_status load_gcide(gbuf *b, int64_t cap) {
    nl_text_corpus c;
    nl_status st = nl_text_corpus_init(&c);
    if (st) return st;
    if ((st = nl_text_read_gcide(&c, NULL, NULL, 0, 1))) { nl_text_corpus_free(&c); return st; }
    const int64_t start = b->n;
    for (int64_t d = 0; d < c.n_docs && (cap <= 0 || b->n - start < cap); d++) {
        for (int64_t i = c.off[d]; i < c.off[d + 1]; i++) {
            const char *w = c.dict.word[c.ids[i]];
            if ((i > c.off[d] && gput(b, " ", 1)) || gput(b, w, (int64_t)strlen(w))) { st = nl_set_error(NL_ENOMEM, "giraffe: out of memory"); break; }
        }
        if (st || gput(b, "\n", 1)) { if (!st) st = nl_set_error(NL_ENOMEM, "giraffe: out of memory"); break; }
    }
    nl_text_corpus_free(&c);
    return st;
}

/* KJV + fortunes + GCIDE (each up to cap/3 bytes; cap 0 = all), split 90/5/5 by chunks: train and test tokens. */
static nl_status load_text(int64_t cap, int32_t **train, int64_t *n_train, int32_t **test, int64_t *n_test) {
    gbuf b = {0};
    nl_status st = NL_OK;
    const char *src[2] = {"kjv", "fortunes"};
    for (int i = 0; i < 2 && !st; i++) {
        uint8_t *p;
        int64_t n;
        if ((st = nl_lm_corpus_load(src[i], &p, &n))) break;
        if (cap > 0 && n > cap / 3) n = cap / 3;
        if (gput(&b, p, n)) st = nl_set_error(NL_ENOMEM, "giraffe: out of memory");
        free(p);
    }
    if (!st) st = load_gcide(&b, cap > 0 ? cap / 3 : 0);
    int32_t *valid = NULL;
    int64_t n_valid;
    if (!st) st = nl_lm_corpus_split(b.p, b.n, 0, train, n_train, &valid, &n_valid, test, n_test);
    free(valid);
    free(b.p);
    return st;
}

static nl_status pretrain(const nl_giraffe_config *g, const int32_t *text, int64_t n_text, uint64_t seed, int verbose, nl_lm *base,
                          double *loss) {
    nl_lm_config c = nl_lm_config_default();
    c.vocab = nl_lm_mix_vocab(NL_GIRAFFE_LINES_OFFSET);
    c.d_model = g->d_model; c.n_layers = g->layers; c.n_heads = g->heads; c.d_ff = 4 * g->d_model;
    c.context = g->L;
    nl_status st = nl_lm_init(base, &c, seed);
    if (st) return st;
    nl_lm_mix_batcher mb;
    memset(&mb, 0, sizeof mb);
    mb.text = text; mb.n_text = n_text; mb.lines_frac = g->lines_frac; mb.lines_offset = NL_GIRAFFE_LINES_OFFSET;
    nl_rng_init(&mb.rng, seed, 101);
    nl_rng_init(&mb.lines.rng, seed, 102);
    mb.lines.fill_queries = 1;   /* dense rows: the room after the first answer filled with further queries */
    mb.lines.haystack = g->haystack;
    nl_lm_train_config tc = nl_lm_train_defaults();
    tc.steps = g->pre_steps; tc.batch = g->pre_batch; tc.lr = g->pre_lr; tc.warmup = g->pre_steps / 20;
    tc.min_ratio = g->pre_min_ratio;
    tc.batch_fn = nl_lm_mix_batch; tc.batch_ud = &mb; tc.verbose = verbose > 1; tc.log_every = 100;
    nl_lm_train_result tr;
    if ((st = nl_lm_train(base, &tc, &tr))) { nl_lm_free(base); return st; }
    *loss = tr.final_loss;
    if (verbose) nl_progress("giraffe: base (seed %llu): %d steps at L=%d, loss %.4f (%.1fs)", (unsigned long long)seed,
                             g->pre_steps, g->L, tr.final_loss, tr.seconds);
    return NL_OK;
}

/* Text-only batches; for xPos the reference's gamma annealing, applied to the model before each step. */
typedef struct {
    nl_lm_mix_batcher mb;
    nl_lm *m;
    int64_t steps;
} ft_batcher;

static nl_status ft_batch(void *ud, int64_t step, int64_t B, int64_t T, int32_t *ids, int32_t *tg) {
    ft_batcher *u = ud;
    if (u->m->cfg.rope.variant == NL_ROPE_XPOS) u->m->cfg.rope.xpos_gamma = nl_giraffe_xpos_gamma(step, u->steps);
    return nl_lm_mix_batch(&u->mb, step, B, T, ids, tg);
}

static nl_status finetune(const nl_giraffe_config *g, const nl_lm *base, nl_giraffe_model which, double truncate_T, const int32_t *text,
                          int64_t n_text, uint64_t seed, int verbose, nl_lm *m, double *loss) {
    nl_lm_config c = base->cfg;
    c.rope = nl_giraffe_rope(g, which, truncate_T);
    c.context = g->ft_mult * g->L;
    nl_status st = nl_lm_init(m, &c, 0);
    if (st) return st;
    if ((st = nl_params_copy(&m->ps, &base->ps))) { nl_lm_free(m); return st; }
    ft_batcher fb;
    memset(&fb, 0, sizeof fb);
    fb.mb.text = text; fb.mb.n_text = n_text; fb.mb.lines_frac = 0; fb.mb.lines_offset = NL_GIRAFFE_LINES_OFFSET;
    nl_rng_init(&fb.mb.rng, seed, 202);   /* the same text windows for every arm of this seed */
    fb.m = m;
    fb.steps = g->ft_steps;
    nl_lm_train_config ft = nl_lm_train_defaults();
    ft.steps = g->ft_steps; ft.batch = g->ft_batch; ft.lr = g->ft_lr; ft.warmup = g->ft_steps / 10;
    ft.batch_fn = ft_batch; ft.batch_ud = &fb; ft.verbose = verbose > 1; ft.log_every = 100;
    nl_lm_train_result tr;
    if ((st = nl_lm_train(m, &ft, &tr))) { nl_lm_free(m); return st; }
    if (which == NL_GIRAFFE_M_XPOS) m->cfg.rope.xpos_gamma = nl_giraffe_xpos_gamma(g->ft_steps, g->ft_steps);
    *loss = tr.final_loss;
    if (verbose) nl_progress("giraffe:   %s fine-tuned at %d: loss %.4f (%.1fs)", nl_giraffe_model_name(which), c.context, tr.final_loss, tr.seconds);
    return NL_OK;
}

/* Every evaluation of model `which` at every length (seed index si). */
static nl_status evaluate(const nl_giraffe_config *g, nl_lm *m, nl_giraffe_model which, nl_ctx *ctx, const int32_t *test, int64_t n_test,
                          uint64_t seed, int si, int verbose, nl_giraffe_study *out) {
    int ne;
    const nl_giraffe_eval_def *ev = nl_giraffe_evals(&ne);
    const nl_rope_config own = m->cfg.rope;
    nl_status st = NL_OK;
    for (int e = 0; e < ne && !st; e++) {
        if (ev[e].model != which) continue;
        if (ev[e].scale > 0 && (own.variant == NL_ROPE_LINEAR || (own.variant == NL_ROPE_PLAIN && ev[e].scale != 1))) {
            m->cfg.rope.variant = NL_ROPE_LINEAR;
            m->cfg.rope.scale_eval = ev[e].scale;
        }
        for (int li = 0; li < g->n_len && !st; li++) {
            const int64_t P = (int64_t)g->len_mult[li] * g->L;
            const uint64_t es = seed * 1000 + (uint64_t)g->len_mult[li];   /* the same prompts for every evaluation */
            out->bpb[e][si][li] = NAN;
            st = nl_giraffe_lines_correct(m, ctx, P, NL_GIRAFFE_LINES_OFFSET, g->haystack, g->samples, g->eval_batch, es, ev[e].scrambled,
                                          &out->k[e][si][li]);
            if (!st && ev[e].ppl) st = nl_giraffe_bpb(m, test, n_test, P, g->ppl_windows, &out->bpb[e][si][li]);
        }
        m->cfg.rope = own;
        if (verbose && !st) {
            char line[256];
            int w = 0;
            for (int li = 0; li < g->n_len; li++)
                w += snprintf(line + w, sizeof line - (size_t)w, " %dx %.2f/%.2f", g->len_mult[li],
                              (double)out->k[e][si][li] / g->samples, out->bpb[e][si][li]);
            nl_progress("giraffe:   %-22s acc/bpb%s", ev[e].name, line);
        }
    }
    return st;
}

nl_status nl_giraffe_study_run(const nl_giraffe_config *g, int verbose, nl_giraffe_study *out) {
    memset(out, 0, sizeof *out);
    if (g->seeds < 1 || g->seeds > NL_GIRAFFE_MAX_SEEDS || g->n_len < 1 || g->n_len > NL_GIRAFFE_MAX_LEN)
        return nl_set_error(NL_EINVAL, "giraffe: seeds must be in 1..%d and lengths in 1..%d", NL_GIRAFFE_MAX_SEEDS, NL_GIRAFFE_MAX_LEN);
    out->seeds = g->seeds;
    out->n_len = g->n_len;
    out->samples = g->samples;
    nl_giraffe_evals(&out->n_evals);
    const int hd = g->d_model / g->heads;
    out->truncate_T = nl_giraffe_truncate_for(hd, 1e4, g->trunc_frac);
    out->trunc_zeroed = nl_giraffe_zeroed_fraction(hd, 1e4, out->truncate_T);
    int32_t *train = NULL, *test = NULL;
    int64_t n_train, n_test;
    clock_t c0 = clock();
    nl_status st = load_text(g->text_cap, &train, &n_train, &test, &n_test);
    out->cpu_data = (double)(clock() - c0) / CLOCKS_PER_SEC;
    if (st) return st;
    if (verbose) nl_progress("giraffe: text %lld train / %lld test bytes; truncation T = %.0f zeroes %.3f of the pairs",
                             (long long)n_train, (long long)n_test, out->truncate_T, out->trunc_zeroed);
    nl_ctx *ctx = nl_ctx_new(0, 0);
    if (!ctx) { free(train); free(test); return nl_set_error(NL_ENOMEM, "giraffe: out of memory"); }
    nl_lm base;
    int have_base = 0;
    for (int si = 0; si < g->seeds && !st; si++) {
        const uint64_t seed = g->seed + (uint64_t)si;
        if (!have_base || !g->shared_base) {
            if (have_base) nl_lm_free(&base);
            have_base = 0;
            c0 = clock();
            st = pretrain(g, train, n_train, seed, verbose, &base, &out->base_loss[si]);
            out->cpu_pretrain += (double)(clock() - c0) / CLOCKS_PER_SEC;
            if (st) break;
            have_base = 1;
        } else {
            out->base_loss[si] = out->base_loss[0];
        }
        c0 = clock();
        st = evaluate(g, &base, NL_GIRAFFE_M_BASE, ctx, test, n_test, seed, si, verbose, out);
        out->cpu_eval += (double)(clock() - c0) / CLOCKS_PER_SEC;
        for (int mi = 1; mi < NL_GIRAFFE_N_MODELS && !st; mi++) {
            nl_lm m;
            c0 = clock();
            st = finetune(g, &base, (nl_giraffe_model)mi, out->truncate_T, train, n_train, seed, verbose, &m, &out->ft_loss[mi][si]);
            const clock_t c1 = clock();
            out->cpu_finetune += (double)(c1 - c0) / CLOCKS_PER_SEC;
            if (st) break;
            st = evaluate(g, &m, (nl_giraffe_model)mi, ctx, test, n_test, seed, si, verbose, out);
            out->cpu_eval += (double)(clock() - c1) / CLOCKS_PER_SEC;
            nl_lm_free(&m);
        }
    }
    if (have_base) nl_lm_free(&base);
    nl_ctx_free(ctx);
    free(train);
    free(test);
    return st;
}
