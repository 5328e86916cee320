/* Model files of `nnlab dsg` (methods/dsg/dsg.h): the vocabulary, the parameters and the sense priors, binary,
 * little-endian as the host writes it (a file is read back on the machine kind that wrote it). */
#include "dsg/dsg.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char g_magic[8] = {'N', 'L', 'D', 'S', 'G', '1', '\n', 0};

static int wr(FILE *f, const void *p, size_t sz, size_t n) { return fwrite(p, sz, n, f) == n; }
static int rd(FILE *f, void *p, size_t sz, size_t n) { return fread(p, sz, n, f) == n; }

nl_status nl_dsg_save(const char *path, const nl_dsg_model *m, const nl_text_vocab *v, const float *prior) {
    if (v->n != m->V) return nl_set_error(NL_EINVAL, "dsg: vocabulary of %d words for a model of %d", (int)v->n, (int)m->V);
    FILE *f = fopen(path, "wb");
    if (!f) return nl_set_error(NL_EIO, "dsg: cannot write %s: %s", path, strerror(errno));
    int32_t hdr[3] = {m->V, m->d, m->S};
    int ok = wr(f, g_magic, 1, 8) && wr(f, hdr, sizeof *hdr, 3);
    for (int32_t i = 0; ok && i < v->n; i++) {
        const int32_t len = (int32_t)strlen(v->word[i]);
        ok = wr(f, &len, sizeof len, 1) && wr(f, v->word[i], 1, (size_t)len) && wr(f, &v->count[i], sizeof *v->count, 1);
    }
    const size_t V = (size_t)m->V, d = (size_t)m->d, S = (size_t)m->S;
    ok = ok && wr(f, m->E.w, sizeof(float), V * S * d) && wr(f, m->U.w, sizeof(float), V * d) && wr(f, m->b, sizeof(float), V) &&
         wr(f, prior, sizeof(float), V * S);
    if (ok && S > 1) ok = wr(f, m->Wd, sizeof(float), V * d * S) && wr(f, m->bd, sizeof(float), V * S);
    if (fclose(f) || !ok) return nl_set_error(NL_EIO, "dsg: writing %s failed", path);
    return NL_OK;
}

nl_status nl_dsg_load(const char *path, nl_dsg_model *m, nl_text_vocab *v, float **prior) {
    *prior = NULL;
    memset(m, 0, sizeof *m);
    memset(v, 0, sizeof *v);
    FILE *f = fopen(path, "rb");
    if (!f) return nl_set_error(errno == ENOENT ? NL_ENOTFOUND : NL_EIO, "dsg: cannot open %s: %s", path, strerror(errno));
    char magic[8];
    int32_t hdr[3];
    nl_status s = NL_OK;
    if (!rd(f, magic, 1, 8) || memcmp(magic, g_magic, 8) || !rd(f, hdr, sizeof *hdr, 3) || hdr[0] < 1 || hdr[0] > (1 << 28) ||
        hdr[1] < 1 || hdr[1] > 4096 || hdr[2] < 1 || hdr[2] > NL_DSG_MAX_SENSES)
        s = nl_set_error(NL_EFORMAT, "dsg: %s is not a dsg model file (written by nnlab dsg train --out)", path);
    if (!s) s = nl_text_vocab_init(v);
    char buf[NL_TEXT_MAX_TOKEN * 4 + 1];
    for (int32_t i = 0; !s && i < hdr[0]; i++) {
        int32_t len, id;
        int64_t cnt;
        if (!rd(f, &len, sizeof len, 1) || len < 1 || len >= (int32_t)sizeof buf || !rd(f, buf, 1, (size_t)len) || !rd(f, &cnt, sizeof cnt, 1))
            s = nl_set_error(NL_EFORMAT, "dsg: %s: truncated or corrupt vocabulary", path);
        else if (!(s = nl_text_vocab_add(v, buf, len, cnt, &id)) && id != i)
            s = nl_set_error(NL_EFORMAT, "dsg: %s: repeated word in the vocabulary", path);
    }
    if (!s) s = nl_dsg_model_init(m, hdr[0], hdr[1], hdr[2], 1);
    const size_t V = (size_t)hdr[0], d = (size_t)hdr[1], S = (size_t)hdr[2];
    if (!s && !(*prior = malloc(V * S * sizeof **prior))) s = nl_set_error(NL_ENOMEM, "dsg: out of memory");
    if (!s && !(rd(f, m->E.w, sizeof(float), V * S * d) && rd(f, m->U.w, sizeof(float), V * d) && rd(f, m->b, sizeof(float), V) &&
                rd(f, *prior, sizeof(float), V * S) && (S == 1 || (rd(f, m->Wd, sizeof(float), V * d * S) && rd(f, m->bd, sizeof(float), V * S)))))
        s = nl_set_error(NL_EFORMAT, "dsg: %s: truncated model file", path);
    fclose(f);
    if (s) {
        nl_dsg_model_free(m);
        nl_text_vocab_free(v);
        free(*prior);
        *prior = NULL;
    }
    return s;
}
