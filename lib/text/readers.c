/* Corpus readers over Debian packages: dict-gcide, fortunes, bible-kjv (lib/text/text.h). */
#include "text/text.h"
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define GCIDE_PATH "/usr/share/dictd/gcide.dict.dz"
#define FORTUNE_DIR "/usr/share/games/fortunes"
#define BIBLE_BIN "/usr/bin/bible"
#define BIBLE_DATA "/usr/lib/bible.data"

/* Whole gzip (dictzip) file into memory, NUL-terminated. */
static nl_status read_gz(const char *path, char **out, size_t *n) {
    gzFile f = gzopen(path, "rb");
    if (!f) return nl_set_error(NL_ENOTFOUND, "text: %s not found: install the Debian package dict-gcide", path);
    size_t cap = 1 << 24, len = 0;
    char *b = malloc(cap + 1);
    for (;;) {
        if (!b) return gzclose(f), nl_set_error(NL_ENOMEM, "text: %s: out of memory", path);
        int r = gzread(f, b + len, (unsigned)(cap - len));
        if (r < 0) return free(b), gzclose(f), nl_set_error(NL_EFORMAT, "text: %s: corrupt gzip data", path);
        if (r == 0) break;
        len += (size_t)r;
        if (len == cap) {
            char *nb = realloc(b, cap * 2 + 1);
            if (!nb) free(b);
            b = nb, cap *= 2;
        }
    }
    gzclose(f);
    b[len] = 0;
    *out = b, *n = len;
    return NL_OK;
}

/* Remove [..] (nested), \..\ and pronunciation groups "(..)" holding '"' or '`'; braces dropped; in place. */
static size_t gcide_clean(char *s, size_t n) {
    size_t o = 0;
    int sq = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '[') { sq++; continue; }
        if (ch == ']') { if (sq) sq--; continue; }
        if (sq) continue;
        if (ch == '\\') { /* \pro*nun"ci*a`tion\ */
            size_t j = i + 1;
            while (j < n && s[j] != '\\' && s[j] != '\n') j++;
            if (j < n && s[j] == '\\') { i = j; continue; }
            continue;
        }
        if (ch == '(') {
            size_t j = i + 1;
            int pron = 0;
            while (j < n && s[j] != ')' && j - i < 60) pron |= s[j] == '"' || s[j] == '`', j++;
            if (pron && j < n && s[j] == ')') { i = j; continue; }
        }
        if (ch == '{' || ch == '}') ch = ' ';
        s[o++] = ch;
    }
    return o;
}

/* The domain tag "(Zool.)" in the first 160 bytes of s: its index in domains, or -1; *at and *len give its place. */
static int gcide_tag(const char *s, size_t n, const char *const *domains, int nd, size_t *at, size_t *len) {
    for (size_t i = 0; i < n && i < 160; i++) {
        if (s[i] != '(') continue;
        size_t j = i + 1;
        while (j < n && j - i < 14 && ((s[j] >= 'A' && s[j] <= 'Z') || (s[j] >= 'a' && s[j] <= 'z'))) j++;
        if (j + 1 < n && s[j] == '.' && s[j + 1] == ')' && j > i + 1) {
            for (int d = 0; d < nd; d++)
                if (strlen(domains[d]) == j - i - 1 && strncmp(domains[d], s + i + 1, j - i - 1) == 0) {
                    *at = i, *len = j + 2 - i;
                    return d;
                }
            if (nd == 0) { /* the generic corpus: every tag removed, no label */
                *at = i, *len = j + 2 - i;
                return -2;
            }
            return -1; /* another tag (Obs., Fig.): not one of ours */
        }
    }
    return -1;
}

static nl_status gcide_unit(nl_text_corpus *c, char *s, size_t n, const char *const *domains, int nd, int keep_u) {
    size_t i = 0; /* a leading sense number "12." is not text */
    while (i < n && (s[i] == ' ' || s[i] == '\n')) i++;
    size_t j = i;
    while (j < n && s[j] >= '0' && s[j] <= '9') j++;
    if (j > i && j < n && s[j] == '.') s += j + 1, n -= j + 1;
    size_t at = 0, len = 0;
    int d = gcide_tag(s, n, domains, nd, &at, &len);
    if (d == -1 && !keep_u) return NL_OK;
    if (d >= 0 || d == -2) memset(s + at, ' ', len); /* the tag is the label, not text */
    if (d == -2) d = -1;
    n = gcide_clean(s, n);
    if (n < 12) return NL_OK;
    return nl_text_corpus_add(c, s, n, d, NL_TEXT_UTF8_SKIP, NULL);
}

static int is_sense_line(const char *l, const char *e) {
    while (l < e && *l == ' ') l++;
    if (l < e && *l == '{') return 1; /* a phrase sub-entry */
    int dig = 0;
    while (l < e && *l >= '0' && *l <= '9') l++, dig++;
    return dig > 0 && l + 1 < e && l[0] == '.' && l[1] == ' ';
}

nl_status nl_text_read_gcide(nl_text_corpus *c, const char *path, const char *const *domains, int n_domains,
                             int keep_untagged) {
    char *b = NULL;
    size_t n = 0;
    int32_t idx;
    nl_status st = read_gz(path ? path : GCIDE_PATH, &b, &n);
    if (st) return st;
    for (int d = 0; d < n_domains && !st; d++) st = nl_text_corpus_label(c, domains[d], &idx);
    /* entries: a non-indented line after a blank line; units: the entry head, numbered senses, {phrase} lines */
    char *unit = NULL, *p = b, *end = b + n;
    int prev_blank = 1, in_entry = 0, skip = 0;
    while (p < end && !st) {
        char *e = memchr(p, '\n', (size_t)(end - p));
        if (!e) e = end;
        int blank = e == p || (e - p < 2 && *p == '\r');
        int head = !blank && prev_blank && *p != ' ' && *p != '\t';
        if (head || (in_entry && !blank && is_sense_line(p, e))) {
            if (unit) st = gcide_unit(c, unit, (size_t)(p - unit), domains, n_domains, keep_untagged);
            unit = NULL;
            in_entry = 1;
            skip = 0;
            if (head) {
                char *bs = memchr(p, '\\', (size_t)(e - p));
                in_entry = bs != NULL; /* database notes and licence text have no pronunciation: skipped */
                if (bs) {                /* drop the headword; keep the rest of the head line for its tag */
                    char *bs2 = memchr(bs + 1, '\\', (size_t)(e - bs - 1));
                    unit = bs2 ? bs2 + 1 : e;
                }
            } else unit = p;
        }
        if (in_entry && !blank) {
            const char *q = p;
            while (q < e && *q == ' ') q++;
            if (e - q >= 4 && strncmp(q, "Syn:", 4) == 0) skip = 1;
            if (skip || (q < e && *q == '-' && q + 1 < e && q[1] == '-')) memset(p, ' ', (size_t)(e - p));
        }
        prev_blank = blank;
        p = e + 1;
    }
    if (!st && unit) st = gcide_unit(c, unit, (size_t)(end - unit), domains, n_domains, keep_untagged);
    free(b);
    return st;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

nl_status nl_text_read_fortunes(nl_text_corpus *c, const char *dir, int min_docs) {
    const char *d = dir ? dir : FORTUNE_DIR;
    DIR *dp = opendir(d);
    if (!dp) return nl_set_error(NL_ENOTFOUND, "text: %s not found: install the Debian package fortunes", d);
    char *names[256];
    int nn = 0;
    struct dirent *de;
    while ((de = readdir(dp)) && nn < 256) {
        const char *s = de->d_name;
        size_t l = strlen(s);
        if (s[0] == '.' || (l > 4 && strcmp(s + l - 4, ".dat") == 0) || (l > 3 && strcmp(s + l - 3, ".u8") == 0))
            continue;
        char path[4096];
        struct stat sb;
        snprintf(path, sizeof path, "%s/%s", d, s);
        if (stat(path, &sb) || !S_ISREG(sb.st_mode)) continue;
        names[nn++] = strdup(s);
    }
    closedir(dp);
    if (nn == 0) return nl_set_error(NL_ENOTFOUND, "text: no fortune files in %s: install the Debian package fortunes", d);
    qsort(names, (size_t)nn, sizeof(char *), cmp_str);
    nl_status st = NL_OK;
    for (int f = 0; f < nn && !st; f++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", d, names[f]);
        FILE *fp = fopen(path, "rb");
        if (!fp) { st = nl_set_error(NL_EIO, "text: cannot read %s", path); break; }
        fseek(fp, 0, SEEK_END);
        long sz = ftell(fp);
        fseek(fp, 0, SEEK_SET);
        char *b = malloc((size_t)sz + 2);
        if (!b || fread(b, 1, (size_t)sz, fp) != (size_t)sz) {
            free(b), fclose(fp);
            st = nl_set_error(NL_EIO, "text: cannot read %s", path);
            break;
        }
        fclose(fp);
        b[sz] = 0;
        /* count first: a category with fewer than min_docs fortunes is dropped before it gets a label */
        int cnt = 0;
        for (char *p = b; p < b + sz; p++)
            if (*p == '%' && (p == b || p[-1] == '\n') && (p[1] == '\n' || p[1] == '\r' || p[1] == 0)) cnt++;
        if (cnt + 1 < min_docs) { free(b); continue; }
        int32_t lab;
        st = nl_text_corpus_label(c, names[f], &lab);
        char *s = b;
        for (char *p = b; p <= b + sz && !st; p++) {
            int sep = p == b + sz || (*p == '%' && (p == b || p[-1] == '\n') &&
                                      (p[1] == '\n' || p[1] == '\r' || p[1] == 0));
            if (!sep) continue;
            st = nl_text_corpus_add(c, s, (size_t)(p - s), lab, NL_TEXT_UTF8_SKIP, NULL);
            s = p + 1;
        }
        free(b);
    }
    for (int f = 0; f < nn; f++) free(names[f]);
    return st;
}

nl_status nl_text_read_kjv(nl_text_corpus *c) {
    if (access(BIBLE_BIN, X_OK) || access(BIBLE_DATA, R_OK))
        return nl_set_error(NL_ENOTFOUND, "text: %s or %s not found: install the Debian packages bible-kjv and "
                                          "bible-kjv-text", BIBLE_BIN, BIBLE_DATA);
    FILE *p = popen(BIBLE_BIN " -l100000 Gen1:1-Rev22:21 </dev/null 2>/dev/null", "r");
    if (!p) return nl_set_error(NL_EIO, "text: cannot run %s (package bible-kjv)", BIBLE_BIN);
    char line[1 << 16];
    nl_status st = NL_OK;
    int64_t n0 = c->n_docs;
    while (!st && fgets(line, sizeof line, p)) {
        char *q = line; /* verse lines: "  12 text"; book/chapter headers are not indented */
        if (*q != ' ') continue;
        while (*q == ' ') q++;
        while (*q >= '0' && *q <= '9') q++;
        st = nl_text_corpus_add(c, q, strlen(q), -1, NL_TEXT_UTF8_SKIP, NULL);
    }
    int rc = pclose(p);
    if (!st && (rc != 0 || c->n_docs - n0 < 30000))
        st = nl_set_error(NL_EFORMAT, "text: %s gave %lld verses (exit %d); expected 31102 (packages bible-kjv, "
                                      "bible-kjv-text)", BIBLE_BIN, (long long)(c->n_docs - n0), rc);
    return st;
}

nl_status nl_text_read_generic(nl_text_corpus *c, const char *gcide_path) {
    nl_status st = nl_text_read_kjv(c);
    if (st) return st;
    return nl_text_read_gcide(c, gcide_path, NULL, 0, 1);
}
