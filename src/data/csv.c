/* CSV reader/writer for small numeric tables (see include/nnlab/data.h for the accepted dialect). */
#include "nnlab/data.h"
#include "nnlab/safetensors.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void nl_csv_free(nl_csv *c) {
    if (!c) return;
    if (c->header)
        for (int64_t j = 0; j < c->cols; j++) free(c->header[j]);
    free(c->header);
    free(c->data);
    memset(c, 0, sizeof *c);
}

static int is_blank(char c) { return c == ' ' || c == '\t'; }

typedef struct field {
    const char *s; /* trimmed start */
    size_t n;      /* trimmed length */
    size_t col;    /* 1-based character column of s in the line */
} field;

/* Split line [p, p+n) at commas into fields (growing *fs). Returns the count or -1 (out of memory). */
static int64_t split_line(const char *p, size_t n, field **fs, int64_t *cap) {
    int64_t k = 0;
    size_t i = 0;
    for (;;) {
        size_t a = i;
        while (i < n && p[i] != ',') i++;
        size_t b = i;
        while (a < b && is_blank(p[a])) a++;
        while (b > a && is_blank(p[b - 1])) b--;
        if (k == *cap) {
            int64_t nc = *cap ? 2 * *cap : 16;
            field *nf = realloc(*fs, (size_t)nc * sizeof *nf);
            if (!nf) return -1;
            *fs = nf;
            *cap = nc;
        }
        (*fs)[k].s = p + a;
        (*fs)[k].n = b - a;
        (*fs)[k].col = a + 1;
        k++;
        if (i >= n) break;
        i++; /* skip the comma */
    }
    return k;
}

/* Parse a whole field as a number: 1 ok, 0 not a number. */
static int parse_num(const field *f, double *v, int *range_err) {
    char buf[128];
    if (f->n == 0 || f->n >= sizeof buf) return 0;
    memcpy(buf, f->s, f->n);
    buf[f->n] = 0;
    char *end;
    errno = 0;
    *v = strtod(buf, &end);
    *range_err = errno == ERANGE && isinf(*v);
    return end == buf + f->n;
}

nl_status nl_csv_read(const char *path, nl_csv *out, int flags) {
    memset(out, 0, sizeof *out);
    FILE *fp;
    nl_status st = nl_open_regular(path, NL_CSV_MAX_BYTES, &fp, NULL);
    if (st) return st;
    size_t cap = 1 << 16, len = 0;
    char *txt = malloc(cap);
    while (txt && len <= NL_CSV_MAX_BYTES) { /* the file may grow after the size check */
        if (len == cap) {
            char *nt = realloc(txt, cap * 2);
            if (!nt) {
                free(txt);
                txt = NULL;
                break;
            }
            txt = nt;
            cap *= 2;
        }
        size_t r = fread(txt + len, 1, cap - len, fp);
        len += r;
        if (r == 0) break;
    }
    int rerr = ferror(fp);
    fclose(fp);
    if (!txt) return nl_set_error(NL_ENOMEM, "file %s: out of memory", path);
    if (rerr) {
        free(txt);
        return nl_set_error(NL_EIO, "file %s: read error", path);
    }
    if (len > NL_CSV_MAX_BYTES) {
        free(txt);
        return nl_set_error(NL_EFORMAT, "file %s: more than the limit of %llu bytes", path,
                            (unsigned long long)NL_CSV_MAX_BYTES);
    }
    size_t pos = len >= 3 && !memcmp(txt, "\xEF\xBB\xBF", 3) ? 3 : 0; /* a UTF-8 byte order mark is skipped */
    if (len == pos) {
        free(txt);
        return nl_set_error(NL_EFORMAT, "file %s: empty file (expected rows of comma-separated numbers)", path);
    }
    field *fs = NULL;
    int64_t fcap = 0, rows = 0, cols = -1, dcap = 0;
    double *data = NULL;
    char **header = NULL;
    int first = 1;
    int64_t line = 0;
    while (pos < len && !st) {
        size_t e = pos;
        while (e < len && txt[e] != '\n') e++;
        line++;
        const char *p = txt + pos;
        size_t n = e - pos;
        pos = e + 1;
        if (n && p[n - 1] == '\r') n--;
        size_t a = 0;
        while (a < n && is_blank(p[a])) a++;
        if (a == n || p[a] == '#') continue;
        int64_t k = split_line(p, n, &fs, &fcap);
        if (k < 0) {
            st = nl_set_error(NL_ENOMEM, "file %s: out of memory", path);
            break;
        }
        if (first) {
            first = 0;
            cols = k;
            int is_header;
            if (flags & NL_CSV_HEADER) is_header = 1;
            else if (flags & NL_CSV_NO_HEADER) is_header = 0;
            else { /* the rule (nnlab/data.h): a header iff no field is a number; a mix is an error */
                int64_t names = 0, first_name = -1;
                for (int64_t j = 0; j < k; j++) {
                    double v;
                    int re;
                    if (!parse_num(&fs[j], &v, &re) && names++ == 0) first_name = j;
                }
                is_header = names == k;
                if (names && names < k) {
                    const field *f = &fs[first_name];
                    st = nl_set_error(NL_EFORMAT,
                                      "%s:%lld:%zu: field %lld is %s%.*s%s, but other fields of the first row are "
                                      "numbers (a header row must have no numeric field; force the choice with "
                                      "NL_CSV_HEADER / NL_CSV_NO_HEADER)",
                                      path, (long long)line, f->col, (long long)first_name + 1,
                                      f->n ? "not a number: '" : "empty", (int)(f->n > 40 ? 40 : f->n), f->s,
                                      f->n ? "'" : "");
                    break;
                }
            }
            if (is_header) {
                header = calloc((size_t)k, sizeof *header);
                if (!header) {
                    st = nl_set_error(NL_ENOMEM, "file %s: out of memory", path);
                    break;
                }
                for (int64_t j = 0; j < k; j++) {
                    const char *s = fs[j].s;
                    size_t m = fs[j].n;
                    if (m >= 2 && s[0] == '"' && s[m - 1] == '"') s++, m -= 2;
                    header[j] = malloc(m + 1);
                    if (!header[j]) {
                        st = nl_set_error(NL_ENOMEM, "file %s: out of memory", path);
                        break;
                    }
                    memcpy(header[j], s, m);
                    header[j][m] = 0;
                }
                continue;
            }
        }
        if (k != cols) {
            st = nl_set_error(NL_EFORMAT, "%s:%lld: line %lld has %lld columns, expected %lld", path, (long long)line,
                              (long long)line, (long long)k, (long long)cols);
            break;
        }
        if ((rows + 1) * cols > dcap) {
            int64_t nc = dcap ? 2 * dcap : 64 * cols;
            while (nc < (rows + 1) * cols) nc *= 2;
            double *nd = realloc(data, (size_t)nc * sizeof *nd);
            if (!nd) {
                st = nl_set_error(NL_ENOMEM, "file %s: out of memory", path);
                break;
            }
            data = nd;
            dcap = nc;
        }
        for (int64_t j = 0; j < k; j++) {
            double v;
            int range_err;
            const field *f = &fs[j];
            if (f->n == 0) {
                st = nl_set_error(NL_EFORMAT, "%s:%lld:%zu: field %lld is empty", path, (long long)line, f->col,
                                  (long long)j + 1);
                break;
            }
            if (!parse_num(f, &v, &range_err)) {
                st = nl_set_error(NL_EFORMAT, "%s:%lld:%zu: field %lld is not a number: '%.*s'", path, (long long)line,
                                  f->col, (long long)j + 1, (int)(f->n > 40 ? 40 : f->n), f->s);
                break;
            }
            if (!isfinite(v) && !(flags & NL_CSV_ALLOW_NONFINITE)) {
                st = nl_set_error(NL_EFORMAT, "%s:%lld:%zu: field %lld is %s: '%.*s' (NaN/Inf need NL_CSV_ALLOW_NONFINITE)",
                                  path, (long long)line, f->col, (long long)j + 1,
                                  range_err ? "out of the double range" : "not finite", (int)(f->n > 40 ? 40 : f->n),
                                  f->s);
                break;
            }
            data[rows * cols + j] = v;
        }
        rows++;
    }
    free(fs);
    free(txt);
    if (!st && rows == 0)
        st = nl_set_error(NL_EFORMAT, "file %s: no data rows%s", path, header ? " after the header" : "");
    if (st) {
        if (header)
            for (int64_t j = 0; j < cols; j++) free(header[j]);
        free(header);
        free(data);
        return st;
    }
    out->data = data;
    out->rows = rows;
    out->cols = cols;
    out->header = header;
    return NL_OK;
}

nl_status nl_csv_write(const char *path, int64_t rows, int64_t cols, const double *data, const char *const *header) {
    if (!path || rows < 0 || cols < 1 || (rows > 0 && !data))
        return nl_set_error(NL_EINVAL, "csv_write: bad arguments (rows %lld, cols %lld)", (long long)rows, (long long)cols);
    if (header)
        for (int64_t j = 0; j < cols; j++)
            if (!header[j] || strpbrk(header[j], ",\"\r\n"))
                return nl_set_error(NL_EINVAL, "csv_write %s: header name %lld is NULL or contains a comma, quote or newline",
                                    path, (long long)j);
    int to_stdout = !strcmp(path, "-");
    nl_atomic_file af = {0};
    FILE *f = stdout;
    if (!to_stdout) {
        nl_status st = nl_atomic_open(&af, path);
        if (st) return st;
        f = af.f;
    }
    if (header)
        for (int64_t j = 0; j < cols; j++) fprintf(f, "%s%s", header[j], j + 1 < cols ? "," : "\n");
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) fprintf(f, "%.17g%s", data[i * cols + j], j + 1 < cols ? "," : "\n");
    if (to_stdout) {
        if (fflush(stdout) != 0 || ferror(stdout)) return nl_set_error(NL_EIO, "csv_write: writing to stdout failed");
        return NL_OK;
    }
    return nl_atomic_commit(&af);
}
