/* Evaluation pieces of the dsg method (methods/dsg/dsg.h): the adjusted Rand index, the ROC AUC of two score
 * samples, and WordNet synonym pairs read from wordnet-base's data.{noun,verb,adj,adv}. */
#include "dsg/dsg.h"
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double choose2(double n) { return n * (n - 1) / 2; }

double nl_dsg_ari(const int *a, const int *b, int64_t n, int ka, int kb) {
    if (n < 2 || ka < 1 || kb < 1) return NAN;
    double *t = calloc((size_t)ka * (size_t)kb, sizeof *t); /* (ka, kb) contingency table */
    double *ra = calloc((size_t)ka, sizeof *ra), *rb = calloc((size_t)kb, sizeof *rb);
    double ari = NAN;
    if (t && ra && rb) {
        for (int64_t i = 0; i < n; i++) {
            if (a[i] < 0 || a[i] >= ka || b[i] < 0 || b[i] >= kb) goto done;
            t[(size_t)a[i] * (size_t)kb + (size_t)b[i]] += 1, ra[a[i]] += 1, rb[b[i]] += 1;
        }
        double sij = 0, sa = 0, sb = 0;
        for (int i = 0; i < ka * kb; i++) sij += choose2(t[i]);
        for (int i = 0; i < ka; i++) sa += choose2(ra[i]);
        for (int j = 0; j < kb; j++) sb += choose2(rb[j]);
        const double expected = sa * sb / choose2((double)n), maxi = 0.5 * (sa + sb);
        /* both partitions trivial (one cluster each, or all singletons): identical -> 1; else the usual formula, and
         * 0 when one side is a single cluster and the other is not (no agreement beyond chance) */
        ari = maxi == expected ? (sa == sb ? 1.0 : 0.0) : (sij - expected) / (maxi - expected);
    }
done:
    free(t), free(ra), free(rb);
    return ari;
}

static int cmp_desc(const void *x, const void *y) {
    const double a = ((const double *)x)[0], b = ((const double *)y)[0];
    return a < b ? 1 : a > b ? -1 : 0;
}

double nl_dsg_auc(const double *pos, int64_t np, const double *neg, int64_t nn) {
    if (np < 1 || nn < 1) return NAN;
    double *v = malloc((size_t)(np + nn) * 2 * sizeof *v); /* (np + nn, 2): score, is-positive */
    if (!v) return NAN;
    for (int64_t i = 0; i < np; i++) v[2 * i] = pos[i], v[2 * i + 1] = 1;
    for (int64_t i = 0; i < nn; i++) v[2 * (np + i)] = neg[i], v[2 * (np + i) + 1] = 0;
    qsort(v, (size_t)(np + nn), 2 * sizeof *v, cmp_desc);
    /* Mann-Whitney: for each negative, the positives above it (ties count half) */
    double above = 0, sum = 0;
    for (int64_t i = 0; i < np + nn;) {
        int64_t j = i;
        double p = 0, q = 0;
        while (j < np + nn && v[2 * j] == v[2 * i]) {
            if (v[2 * j + 1] > 0) p += 1;
            else q += 1;
            j++;
        }
        sum += q * (above + 0.5 * p);
        above += p;
        i = j;
    }
    free(v);
    return sum / ((double)np * (double)nn);
}

/* ---- WordNet synonym pairs ---- */
static int pair_cmp(const void *x, const void *y) {
    const int64_t *a = x, *b = y;
    return a[0] != b[0] ? (a[0] < b[0] ? -1 : 1) : a[1] != b[1] ? (a[1] < b[1] ? -1 : 1) : 0;
}

nl_status nl_dsg_wordnet_pairs(const char *dir, int64_t (*lookup)(const char *word, void *ud), void *ud, int64_t **pairs,
                               int64_t *n_pairs) {
    static const char *const files[4] = {"data.noun", "data.verb", "data.adj", "data.adv"};
    *pairs = NULL, *n_pairs = 0;
    if (!dir) dir = NL_DSG_WORDNET_DIR;
    int64_t n = 0, cap = 0, *p = NULL; /* (cap, 2) id pairs, a < b */
    char path[1024], line[65536];
    nl_status st = NL_OK;
    for (int f = 0; f < 4 && !st; f++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[f]);
        FILE *fp = fopen(path, "r");
        if (!fp) {
            st = errno == ENOENT ? nl_set_error(NL_ENOTFOUND, "dsg: %s not found: install the Debian package wordnet-base "
                                                             "(apt-get install wordnet-base)", path)
                                 : nl_set_error(NL_EIO, "dsg: cannot open %s: %s", path, strerror(errno));
            break;
        }
        while (!st && fgets(line, sizeof line, fp)) {
            if (line[0] == ' ') continue; /* the licence header */
            /* offset lex_filenum ss_type w_cnt(hex) [word lex_id(hex)] x w_cnt ... */
            char *save = NULL, *tok = strtok_r(line, " ", &save);
            for (int k = 0; k < 3 && tok; k++) tok = strtok_r(NULL, " ", &save);
            if (!tok) continue;
            const long wc = strtol(tok, NULL, 16);
            int64_t ids[256];
            int m = 0;
            for (long k = 0; k < wc && k < 256; k++) {
                char *w = strtok_r(NULL, " ", &save), *lex = strtok_r(NULL, " ", &save);
                if (!w || !lex) break;
                char *paren = strchr(w, '(');
                if (paren) *paren = 0; /* adjective markers: "(a)", "(p)", "(ip)" */
                int ok = 1;
                for (char *c = w; *c; c++) {
                    if (!isalpha((unsigned char)*c)) ok = 0; /* multi-word lemmas ("physical_entity") and the like */
                    *c = (char)tolower((unsigned char)*c);
                }
                const int64_t id = ok && *w ? lookup(w, ud) : -1;
                int dup = 0;
                for (int q = 0; q < m; q++) dup |= ids[q] == id;
                if (id >= 0 && !dup) ids[m++] = id;
            }
            for (int a = 0; a < m && !st; a++)
                for (int b = a + 1; b < m; b++) {
                    if (n == cap) {
                        int64_t nc = cap ? 2 * cap : 4096, *np = realloc(p, (size_t)nc * 2 * sizeof *np);
                        if (!np) {
                            st = nl_set_error(NL_ENOMEM, "dsg: out of memory for WordNet pairs");
                            break;
                        }
                        p = np, cap = nc;
                    }
                    p[2 * n] = ids[a] < ids[b] ? ids[a] : ids[b], p[2 * n + 1] = ids[a] < ids[b] ? ids[b] : ids[a];
                    n++;
                }
        }
        fclose(fp);
    }
    if (st) {
        free(p);
        return st;
    }
    if (n) qsort(p, (size_t)n, 2 * sizeof *p, pair_cmp);
    int64_t u = 0;
    for (int64_t i = 0; i < n; i++)
        if (!u || pair_cmp(p + 2 * i, p + 2 * (u - 1))) p[2 * u] = p[2 * i], p[2 * u + 1] = p[2 * i + 1], u++;
    *pairs = p, *n_pairs = u;
    return NL_OK;
}
