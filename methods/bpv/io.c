/* The `nnlab bpv` model file: a trained model, its vocabulary and the codes + texts of its database documents.
 * Native byte order (a file is read on the machine kind that wrote it). Layout: "NLBPV001", the config, V, the
 * vocabulary (length-prefixed words and counts), the weight tables, n_db, codes [n_db, words], texts. */
#include "bpv/io.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC "NLBPV001"

static int wr(FILE *f, const void *p, size_t n) { return fwrite(p, 1, n, f) == n; }
static int rd(FILE *f, void *p, size_t n) { return fread(p, 1, n, f) == n; }

nl_status nl_bpv_file_save(const char *path, const nl_bpv_file *b) {
    FILE *f = fopen(path, "wb");
    if (!f) return nl_set_error(NL_EIO, "bpv: cannot write %s", path);
    const nl_bpv_model *m = &b->model;
    int ok = wr(f, MAGIC, 8) && wr(f, &m->cfg, sizeof m->cfg) && wr(f, &b->vocab.n, sizeof(int32_t));
    for (int32_t i = 0; ok && i < b->vocab.n; i++) {
        int32_t l = (int32_t)strlen(b->vocab.word[i]);
        ok = wr(f, &l, 4) && wr(f, b->vocab.word[i], (size_t)l) && wr(f, &b->vocab.count[i], 8);
    }
    const nl_text_emb *t[4] = {&m->out, &m->out_real, &m->out_dm, &m->word};
    for (int k = 0; ok && k < 4; k++) {
        ok = wr(f, &t[k]->rows, 8) && wr(f, &t[k]->dim, 4);
        if (ok && t[k]->rows) ok = wr(f, t[k]->w, sizeof(float) * (size_t)(t[k]->rows * t[k]->dim));
    }
    if (ok && m->cfg.kind == NL_BPV_REAL_BINARY)
        ok = wr(f, m->proj, sizeof(float) * (size_t)m->cfg.bits * (size_t)m->cfg.real_dim);
    int nw = (m->cfg.bits + 63) / 64;
    ok = ok && wr(f, &b->n_db, 8) && wr(f, b->codes, sizeof(uint64_t) * (size_t)(b->n_db * nw));
    for (int64_t i = 0; ok && i < b->n_db; i++) {
        int32_t l = (int32_t)strlen(b->text[i]);
        ok = wr(f, &l, 4) && wr(f, b->text[i], (size_t)l);
    }
    if (fclose(f) || !ok) return nl_set_error(NL_EIO, "bpv: error writing %s", path);
    return NL_OK;
}

void nl_bpv_file_free(nl_bpv_file *b) {
    nl_bpv_free(&b->model);
    nl_text_vocab_free(&b->vocab);
    for (int64_t i = 0; b->text && i < b->n_db; i++) free(b->text[i]);
    free(b->text), free(b->codes);
    memset(b, 0, sizeof *b);
}

static nl_status bad(FILE *f, nl_bpv_file *b, const char *path) {
    fclose(f);
    nl_bpv_file_free(b);
    return nl_set_error(NL_EFORMAT, "bpv: %s is not a valid bpv model file (truncated or corrupt)", path);
}

static int rd_emb(FILE *f, nl_text_emb *e, int64_t max_rows) {
    if (!rd(f, &e->rows, 8) || !rd(f, &e->dim, 4)) return 0;
    if (e->rows == 0) return e->w = NULL, 1;
    if (e->rows < 0 || e->rows > max_rows || e->dim < 1 || e->dim > 8192) return e->rows = 0, 0;
    e->w = malloc(sizeof(float) * (size_t)(e->rows * e->dim));
    if (!e->w) return e->rows = 0, 0;
    return rd(f, e->w, sizeof(float) * (size_t)(e->rows * e->dim));
}

nl_status nl_bpv_file_load(const char *path, nl_bpv_file *b) {
    memset(b, 0, sizeof *b);
    FILE *f = fopen(path, "rb");
    if (!f) return nl_set_error(NL_EIO, "bpv: cannot read model file %s", path);
    char mg[8];
    nl_bpv_model *m = &b->model;
    int32_t V;
    if (!rd(f, mg, 8) || memcmp(mg, MAGIC, 8) || !rd(f, &m->cfg, sizeof m->cfg) || nl_bpv_config_check(&m->cfg) ||
        !rd(f, &V, 4) || V < 2 || V > 50000000 || nl_text_vocab_init(&b->vocab))
        return bad(f, b, path);
    char w[NL_TEXT_MAX_TOKEN + 1];
    for (int32_t i = 0; i < V; i++) {
        int32_t l;
        int64_t cnt;
        if (!rd(f, &l, 4) || l < 1 || l > NL_TEXT_MAX_TOKEN || !rd(f, w, (size_t)l) || !rd(f, &cnt, 8) || cnt < 0 ||
            nl_text_vocab_add(&b->vocab, w, l, cnt, NULL) || b->vocab.n != i + 1)
            return bad(f, b, path);
    }
    m->V = V;
    if (!rd_emb(f, &m->out, V) || !rd_emb(f, &m->out_real, V) || !rd_emb(f, &m->out_dm, V) || !rd_emb(f, &m->word, V))
        return bad(f, b, path);
    if (m->cfg.kind == NL_BPV_REAL_BINARY) {
        m->proj = malloc(sizeof(float) * (size_t)m->cfg.bits * (size_t)m->cfg.real_dim);
        if (!m->proj || !rd(f, m->proj, sizeof(float) * (size_t)m->cfg.bits * (size_t)m->cfg.real_dim))
            return bad(f, b, path);
    }
    int nw = (m->cfg.bits + 63) / 64;
    if (!rd(f, &b->n_db, 8) || b->n_db < 0 || b->n_db > 100000000) return bad(f, b, path);
    b->codes = malloc(sizeof(uint64_t) * (size_t)(b->n_db * nw + 1));
    b->text = calloc((size_t)b->n_db + 1, sizeof(char *));
    if (!b->codes || !b->text || !rd(f, b->codes, sizeof(uint64_t) * (size_t)(b->n_db * nw))) return bad(f, b, path);
    for (int64_t i = 0; i < b->n_db; i++) {
        int32_t l;
        if (!rd(f, &l, 4) || l < 0 || l > 1 << 20 || !(b->text[i] = malloc((size_t)l + 1)) ||
            !rd(f, b->text[i], (size_t)l))
            return bad(f, b, path);
        b->text[i][l] = 0;
    }
    fclose(f);
    /* the sampling tables come back from the counts */
    nl_status st = nl_text_unigram_build(&m->uni, &b->vocab, 0.75, 1 << 20);
    m->keep = st ? NULL : malloc(sizeof(float) * (size_t)V);
    if (!st && !m->keep) st = nl_set_error(NL_ENOMEM, "bpv: out of memory");
    if (st) return nl_bpv_file_free(b), st;
    nl_text_vocab_keep_prob(&b->vocab, m->cfg.subsample, m->keep);
    return NL_OK;
}
