/* UCI regression tables shipped by Debian's python3-sklearn (boston, diabetes): loader, seeded train/test
 * splits and standardisation from the training part (see include/nnlab/data.h). */
#include "nnlab/data.h"
#include "nnlab/rng.h"
#include "nnlab/safetensors.h"
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define UCI_MAX_BYTES ((size_t)64 << 20) /* decompressed text limit */
#define UCI_DEFAULT_DIR "/usr/lib/python3/dist-packages/sklearn/datasets/data"
#define UCI_HINT "install it with `apt-get install python3-sklearn` (or set NL_SKLEARN_DATA to the folder)"

void nl_uci_free(nl_uci *u) {
    if (!u) return;
    free(u->x);
    free(u->y);
    memset(u, 0, sizeof *u);
}

nl_status nl_uci_alloc(nl_uci *u, int64_t n, int64_t d) {
    memset(u, 0, sizeof *u);
    if (n < 1 || d < 1 || n > NL_DATASET_MAX_ROWS || d > 4096)
        return nl_set_error(NL_EINVAL, "uci_alloc: bad size %lld x %lld", (long long)n, (long long)d);
    u->x = malloc((size_t)(n * d) * sizeof *u->x);
    u->y = malloc((size_t)n * sizeof *u->y);
    if (!u->x || !u->y) {
        nl_uci_free(u);
        return nl_set_error(NL_ENOMEM, "uci_alloc: out of memory");
    }
    u->n = n;
    u->d = d;
    return NL_OK;
}

/* Whole file as NUL-terminated text, plain or gzip (zlib detects which). *txt owned by the caller. */
static nl_status read_text(const char *path, char **txt, size_t *len) {
    *txt = NULL;
    *len = 0;
    FILE *fp;
    nl_status st = nl_open_regular(path, UCI_MAX_BYTES, &fp, NULL);
    if (st) {
        if (st == NL_ENOTFOUND)
            return nl_set_error(NL_ENOTFOUND, "UCI table file %s not found: %s", path, UCI_HINT);
        return st;
    }
    int fd = dup(fileno(fp));
    fclose(fp);
    gzFile gz = fd >= 0 ? gzdopen(fd, "rb") : NULL;
    if (!gz) {
        if (fd >= 0) close(fd);
        return nl_set_error(NL_EIO, "file %s: cannot open: %s", path, strerror(errno));
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (!buf) {
            gzclose(gz);
            return nl_set_error(NL_ENOMEM, "file %s: out of memory", path);
        }
        if (n == cap) {
            if (cap >= UCI_MAX_BYTES) {
                free(buf);
                gzclose(gz);
                return nl_set_error(NL_EFORMAT, "file %s: more than %zu bytes of text", path, UCI_MAX_BYTES);
            }
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb) free(buf);
            buf = nb;
            continue;
        }
        int r = gzread(gz, buf + n, (unsigned)(cap - n));
        if (r < 0) {
            int e;
            const char *m = gzerror(gz, &e);
            nl_set_error(NL_EFORMAT, "file %s: corrupt or truncated gzip stream: %s", path, m ? m : "?");
            free(buf);
            gzclose(gz);
            return NL_EFORMAT;
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    int e = 0;
    const char *m = gzerror(gz, &e);
    if (e != Z_OK && e != Z_STREAM_END) {
        nl_set_error(NL_EFORMAT, "file %s: corrupt or truncated gzip stream: %s", path, m ? m : "?");
        free(buf);
        gzclose(gz);
        return NL_EFORMAT;
    }
    gzclose(gz);
    buf[n] = 0;
    if (memchr(buf, 0, n)) {
        free(buf);
        return nl_set_error(NL_EFORMAT, "file %s: NUL byte in a text table", path);
    }
    *txt = buf;
    *len = n;
    return NL_OK;
}

/* Next line of text starting at *p (LF or CRLF); returns its start, sets *n (without the line end) and
 * advances *p; NULL at the end. */
static const char *next_line(const char **p, size_t *n) {
    const char *s = *p;
    if (!*s) return NULL;
    const char *e = strchr(s, '\n');
    if (!e) e = s + strlen(s);
    *p = *e ? e + 1 : e;
    size_t k = (size_t)(e - s);
    if (k && s[k - 1] == '\r') k--;
    *n = k;
    return s;
}

static int is_blank_line(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t') return 0;
    return 1;
}

/* Parse exactly `want` numbers from line [s, s+n): sep ',' (spaces around fields allowed; empty fields after the
 * wanted ones are allowed only if allow_trailing_empty) or sep ' ' (runs of spaces/tabs). */
static nl_status parse_row(const char *path, int64_t lineno, const char *s, size_t n, char sep, int64_t want,
                           int allow_trailing_empty, double *out) {
    char buf[4096];
    if (n >= sizeof buf) return nl_set_error(NL_EFORMAT, "%s:%lld: line too long", path, (long long)lineno);
    memcpy(buf, s, n);
    buf[n] = 0;
    int64_t k = 0;
    char *q = buf;
    for (;;) {
        while (*q == ' ' || *q == '\t') q++;
        if (!*q) break;
        char *end;
        errno = 0;
        double v = strtod(q, &end);
        if (end == q) {
            if (sep == ',' && *q == ',' && k >= want && allow_trailing_empty) {
                q++;
                continue;
            }
            return nl_set_error(NL_EFORMAT, "%s:%lld:%lld: not a number", path, (long long)lineno,
                                (long long)(q - buf + 1));
        }
        if (!isfinite(v) || (errno == ERANGE && isinf(v)))
            return nl_set_error(NL_EFORMAT, "%s:%lld:%lld: non-finite value", path, (long long)lineno,
                                (long long)(q - buf + 1));
        if (k >= want)
            return nl_set_error(NL_EFORMAT, "%s:%lld: more than %lld fields", path, (long long)lineno,
                                (long long)want);
        out[k++] = v;
        q = end;
        while (*q == ' ' || *q == '\t') q++;
        if (sep == ',') {
            if (*q == ',') q++;
            else if (*q) return nl_set_error(NL_EFORMAT, "%s:%lld:%lld: expected ','", path, (long long)lineno,
                                             (long long)(q - buf + 1));
        }
        if (!*q) break;
    }
    if (k != want)
        return nl_set_error(NL_EFORMAT, "%s:%lld: %lld fields, expected %lld (short or corrupt row)", path,
                            (long long)lineno, (long long)k, (long long)want);
    return NL_OK;
}

/* Index of the comma-separated header field equal to name (double quotes and blanks ignored), or -1. */
static int64_t header_find(const char *h, size_t n, const char *name) {
    size_t i = 0, ln = strlen(name);
    for (int64_t k = 0; i <= n; k++) {
        size_t a = i;
        while (i < n && h[i] != ',') i++;
        size_t b = i;
        while (a < b && (h[a] == ' ' || h[a] == '\t' || h[a] == '"')) a++;
        while (b > a && (h[b - 1] == ' ' || h[b - 1] == '\t' || h[b - 1] == '"')) b--;
        if (b - a == ln && !memcmp(h + a, name, ln)) return k;
        i++;
    }
    return -1;
}

/* boston_house_prices.csv: "n,d[,,,]" line, header line, n rows of d+1 comma-separated numbers (last = target). */
static nl_status load_boston(nl_uci *u, const char *path) {
    char *txt;
    size_t len;
    nl_status st = read_text(path, &txt, &len);
    if (st) return st;
    const char *p = txt, *s;
    size_t n;
    int64_t lineno = 1;
    s = next_line(&p, &n);
    double nd[2];
    if (!s) st = nl_set_error(NL_EFORMAT, "%s: empty file", path);
    else st = parse_row(path, 1, s, n, ',', 2, 1, nd);
    if (!st && (nd[0] < 1 || nd[0] > 1e6 || nd[1] < 1 || nd[1] > 1000 || nd[0] != floor(nd[0]) ||
                nd[1] != floor(nd[1])))
        st = nl_set_error(NL_EFORMAT, "%s:1: bad sizes line (want \"rows,features\")", path);
    const char *h = NULL;
    size_t hn = 0;
    if (!st && !(h = next_line(&p, &hn))) st = nl_set_error(NL_EFORMAT, "%s: no header line", path);
    lineno = 2;
    int64_t rows = st ? 0 : (int64_t)nd[0], d = st ? 0 : (int64_t)nd[1];
    /* the column named B (1000 (Bk - 0.63)^2, an ethically problematic feature) is dropped, as the issue asks */
    int64_t drop = st ? -1 : header_find(h, hn, "B");
    double *row = st ? NULL : malloc((size_t)(d + 1) * sizeof *row); /* (d+1) one parsed row */
    if (!st && !row) st = nl_set_error(NL_ENOMEM, "out of memory");
    if (!st && drop >= d) drop = -1;
    if (!st) st = nl_uci_alloc(u, rows, drop >= 0 ? d - 1 : d);
    int64_t i = 0;
    while (!st && (s = next_line(&p, &n))) {
        lineno++;
        if (is_blank_line(s, n)) continue;
        if (i >= rows) {
            st = nl_set_error(NL_EFORMAT, "%s:%lld: more rows than the %lld announced", path, (long long)lineno,
                              (long long)rows);
            break;
        }
        st = parse_row(path, lineno, s, n, ',', d + 1, 0, row);
        if (st) break;
        for (int64_t j = 0, k = 0; j < d; j++)
            if (j != drop) u->x[i * u->d + k++] = row[j];
        u->y[i] = row[d];
        i++;
    }
    if (!st && i != rows)
        st = nl_set_error(NL_EFORMAT, "%s: %lld rows, the first line announces %lld (truncated file)", path,
                          (long long)i, (long long)rows);
    free(row);
    free(txt);
    if (st) nl_uci_free(u);
    return st;
}

/* Space-separated numeric table with `cols` columns; rows grow as needed. *out (rows, cols) owned. */
static nl_status load_spaced(const char *path, int64_t cols, double **out, int64_t *rows_out) {
    char *txt;
    size_t len;
    *out = NULL;
    *rows_out = 0;
    nl_status st = read_text(path, &txt, &len);
    if (st) return st;
    const char *p = txt, *s;
    size_t n;
    int64_t lineno = 0, rows = 0, cap = 0;
    double *a = NULL; /* (cap, cols) */
    while (!st && (s = next_line(&p, &n))) {
        lineno++;
        if (is_blank_line(s, n)) continue;
        if (rows == cap) {
            cap = cap ? 2 * cap : 256;
            double *na = cap <= NL_DATASET_MAX_ROWS ? realloc(a, (size_t)(cap * cols) * sizeof *a) : NULL;
            if (!na) {
                st = nl_set_error(NL_ENOMEM, "%s: out of memory", path);
                break;
            }
            a = na;
        }
        st = parse_row(path, lineno, s, n, ' ', cols, 0, a + rows * cols);
        rows++;
    }
    if (!st && rows == 0) st = nl_set_error(NL_EFORMAT, "%s: no data rows", path);
    free(txt);
    if (st) {
        free(a);
        return st;
    }
    *out = a;
    *rows_out = rows;
    return NL_OK;
}

static nl_status load_diabetes(nl_uci *u, const char *xpath, const char *ypath) {
    double *x = NULL, *y = NULL;
    int64_t nx, ny;
    nl_status st = load_spaced(xpath, 10, &x, &nx);
    if (!st) st = load_spaced(ypath, 1, &y, &ny);
    if (!st && nx != ny)
        st = nl_set_error(NL_EFORMAT, "diabetes: %s has %lld rows but %s has %lld", xpath, (long long)nx, ypath,
                          (long long)ny);
    if (!st) st = nl_uci_alloc(u, nx, 10);
    if (!st) {
        memcpy(u->x, x, (size_t)(nx * 10) * sizeof *x);
        memcpy(u->y, y, (size_t)nx * sizeof *y);
    }
    free(x);
    free(y);
    return st;
}

nl_status nl_uci_load(nl_uci *u, const char *name, const char *dir) {
    memset(u, 0, sizeof *u);
    if (!name) return nl_set_error(NL_EINVAL, "uci_load: NULL name");
    if (!dir || !*dir) dir = getenv("NL_SKLEARN_DATA");
    if (!dir || !*dir) dir = UCI_DEFAULT_DIR;
    char a[PATH_MAX], b[PATH_MAX];
    nl_status st;
    if (!strcmp(name, "boston")) {
        snprintf(a, sizeof a, "%s/boston_house_prices.csv", dir);
        st = load_boston(u, a);
    } else if (!strcmp(name, "diabetes")) {
        snprintf(a, sizeof a, "%s/diabetes_data_raw.csv.gz", dir);
        snprintf(b, sizeof b, "%s/diabetes_target.csv.gz", dir);
        st = load_diabetes(u, a, b);
    } else {
        return nl_set_error(NL_EINVAL, "uci_load: unknown table '%s' (known: boston, diabetes)", name);
    }
    if (!st) snprintf(u->name, sizeof u->name, "%s", name);
    return st;
}

nl_status nl_uci_split(const nl_uci *full, double test_frac, uint64_t seed, nl_uci *train, nl_uci *test,
                       double *y_mean, double *y_std) {
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    if (!(test_frac > 0 && test_frac < 1)) return nl_set_error(NL_EINVAL, "uci_split: test_frac must be in (0, 1)");
    int64_t n = full->n, d = full->d;
    int64_t nte = (int64_t)llround(test_frac * (double)n);
    if (nte < 1) nte = 1;
    if (nte > n - 2) return nl_set_error(NL_EINVAL, "uci_split: %lld rows are too few to split", (long long)n);
    int64_t ntr = n - nte;
    int64_t *perm = malloc((size_t)n * sizeof *perm); /* (n) */
    double *mu = calloc((size_t)d, sizeof *mu), *sd = calloc((size_t)d, sizeof *sd); /* (d) each */
    nl_status st = perm && mu && sd ? NL_OK : nl_set_error(NL_ENOMEM, "uci_split: out of memory");
    if (!st) st = nl_uci_alloc(train, ntr, d);
    if (!st) st = nl_uci_alloc(test, nte, d);
    if (st) goto done;
    nl_rng r;
    nl_rng_init(&r, seed, NL_STREAM_UCI_SPLIT);
    nl_rng_permutation(&r, perm, n);
    for (int64_t i = 0; i < n; i++) {
        nl_uci *dst = i < ntr ? train : test;
        int64_t k = i < ntr ? i : i - ntr;
        memcpy(dst->x + k * d, full->x + perm[i] * d, (size_t)d * sizeof *dst->x);
        dst->y[k] = full->y[perm[i]];
    }
    /* standardise from the training part: features (per column) and the target */
    for (int64_t i = 0; i < ntr; i++)
        for (int64_t j = 0; j < d; j++) mu[j] += train->x[i * d + j] / (double)ntr;
    for (int64_t i = 0; i < ntr; i++)
        for (int64_t j = 0; j < d; j++) {
            double t = train->x[i * d + j] - mu[j];
            sd[j] += t * t / (double)ntr;
        }
    for (int64_t j = 0; j < d; j++) sd[j] = sd[j] > 1e-16 ? sqrt(sd[j]) : 1.0;
    double ym = 0, ys = 0;
    for (int64_t i = 0; i < ntr; i++) ym += train->y[i] / (double)ntr;
    for (int64_t i = 0; i < ntr; i++) ys += (train->y[i] - ym) * (train->y[i] - ym) / (double)ntr;
    ys = ys > 1e-16 ? sqrt(ys) : 1.0;
    nl_uci *parts[2] = {train, test};
    for (int p = 0; p < 2; p++) {
        nl_uci *u = parts[p];
        for (int64_t i = 0; i < u->n; i++) {
            for (int64_t j = 0; j < d; j++) u->x[i * d + j] = (u->x[i * d + j] - mu[j]) / sd[j];
            u->y[i] = (u->y[i] - ym) / ys;
        }
        snprintf(u->name, sizeof u->name, "%s", full->name);
    }
    if (y_mean) *y_mean = ym;
    if (y_std) *y_std = ys;
done:
    free(perm);
    free(mu);
    free(sd);
    if (st) {
        nl_uci_free(train);
        nl_uci_free(test);
    }
    return st;
}
