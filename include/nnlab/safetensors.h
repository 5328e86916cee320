/* nnlab/safetensors.h — checkpoints in the safetensors format, and atomic file replacement.
 *
 * File layout (https://github.com/huggingface/safetensors): 8-byte little-endian header length N, N bytes of
 * UTF-8 JSON object {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
 * "__metadata__": {"key": "value"}} (optionally padded with spaces), then the data section: raw little-endian
 * tensor bytes, row-major, where each tensor occupies [begin, end) relative to the start of the data section.
 *
 * The reader validates everything (header size, JSON types, dtypes, shapes, byte counts, ranges that must be
 * in bounds, non-overlapping and cover the data section exactly, duplicate names, metadata) and reports
 * NL_EFORMAT with a message naming the file and the tensor. Strictness, so that no other reader can read the
 * same file differently: an escaped NUL (\u0000) anywhere in the header is refused (C strings would truncate
 * it); tensor names and metadata keys with a control character (U+0000..U+001F, U+007F) are refused; a key
 * repeated inside one object (a tensor name or "__metadata__" at the top level, a metadata key, "dtype",
 * "shape" or "data_offsets" inside a tensor entry) is refused, never resolved first- or last-wins. Duplicate
 * detection sorts the keys: O(n log n) in the number of keys. nl_safetensors_open accepts only a regular file
 * (checked with stat before opening: a FIFO or device is refused, never read). The writers pad the header with spaces so the data
 * section starts at an 8-byte boundary and replace the target file atomically. */
#ifndef NNLAB_SAFETENSORS_H
#define NNLAB_SAFETENSORS_H
#include <stdio.h>
#include "nnlab/autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum nl_st_dtype {
    NL_ST_BOOL = 0, NL_ST_U8, NL_ST_I8, NL_ST_F8_E4M3, NL_ST_F8_E5M2, NL_ST_I16, NL_ST_U16, NL_ST_F16,
    NL_ST_BF16, NL_ST_I32, NL_ST_U32, NL_ST_F32, NL_ST_F64, NL_ST_I64, NL_ST_U64,
    NL_ST_DTYPE_COUNT
} nl_st_dtype;

const char *nl_st_dtype_name(nl_st_dtype t);        /* "F32" */
size_t nl_st_dtype_size(nl_st_dtype t);             /* bytes per element */
/* Parse a dtype name; returns 0 and sets *t, or -1 if unknown. */
int nl_st_dtype_parse(const char *name, nl_st_dtype *t);
/* The safetensors dtype of a store dtype (NL_F32 -> NL_ST_F32, NL_F64 -> NL_ST_F64). */
nl_st_dtype nl_st_dtype_of(nl_dtype t);

#define NL_ST_MAXDIM 8
#define NL_ST_MAX_HEADER ((uint64_t)100000000)   /* 100 MB, as in the reference implementation */

/* ---- reading ---- */
typedef struct nl_st_tensor {
    char *name;
    nl_st_dtype dtype;
    int ndim;                        /* 0 (scalar) .. NL_ST_MAXDIM */
    int64_t shape[NL_ST_MAXDIM];     /* shape[i] for i < ndim (0 allowed); unused entries are 1 */
    int64_t numel;
    uint64_t begin, end;             /* byte range in the data section */
    const void *data;                /* (end - begin) little-endian bytes inside the file's data buffer */
} nl_st_tensor;

typedef struct nl_st_file {
    char *path;
    int n;                           /* tensors */
    nl_st_tensor *t;                 /* (n) in order of their data offsets */
    int n_meta;
    char **meta_key, **meta_val;     /* (n_meta) the __metadata__ map, in file order */
    uint64_t header_len;
    uint64_t data_len;
    void *data;                      /* (data_len) data section, 64-byte aligned, owned */
} nl_st_file;

/* Read and validate a whole file. On error *f is zeroed (nothing to close). */
nl_status nl_safetensors_open(const char *path, nl_st_file *f);
/* Same, from an in-memory image of a file (copied); `what` names it in messages. */
nl_status nl_safetensors_parse(const void *buf, size_t n, const char *what, nl_st_file *f);
void nl_safetensors_close(nl_st_file *f);
const nl_st_tensor *nl_safetensors_find(const nl_st_file *f, const char *name);
/* Value of a __metadata__ key, or NULL. */
const char *nl_safetensors_get_metadata(const nl_st_file *f, const char *key);
/* A __metadata__ value parsed strictly as a base-10 integer in [lo, hi] / a finite number; a missing key or a bad
 * value -> NL_EFORMAT naming the file, the key and the value. */
nl_status nl_safetensors_metadata_int(const nl_st_file *f, const char *key, long long lo, long long hi, long long *out);
nl_status nl_safetensors_metadata_num(const nl_st_file *f, const char *key, double *out);
/* A __metadata__ value that must be present (NL_EFORMAT naming the file and key otherwise); *out points into f. */
nl_status nl_safetensors_metadata_str(const nl_st_file *f, const char *key, const char **out);
/* A comma-separated list of 1..maxn base-10 integers, each in [lo, hi] ("784,256,10"); *n receives the count. */
nl_status nl_safetensors_metadata_ints(const nl_st_file *f, const char *key, long long lo, long long hi, int maxn,
                                       int64_t *v, int *n);
/* Convert a tensor of any numeric dtype (not F8) to dst (numel elements of dt). Handles unaligned data. */
nl_status nl_st_tensor_convert(const nl_st_tensor *t, void *dst, nl_dtype dt);

/* ---- writing ---- */
typedef struct nl_st_entry {
    const char *name;
    nl_st_dtype dtype;
    int ndim;                        /* 0 .. NL_ST_MAXDIM */
    const int64_t *shape;            /* (ndim), entries >= 0 */
    const void *data;                /* (numel * itemsize) contiguous little-endian bytes */
} nl_st_entry;

/* ---- checkpoint metadata: key scheme and builder ----
 * Every nnlab checkpoint keeps its description in __metadata__, whose values are all JSON strings:
 *   "nnlab.model"   what the file holds ("mlp", "cnn", "transformer_lm", "pfn"); readers refuse a file without it
 *                   or with another kind, naming the file;
 *   "nnlab.format"  layout version of the engine models ("1"); "nnlab.dtype" ("f32" | "f64");
 *   "nnlab.<field>" the architecture fields of the engine model or library (see nnlab/model.h,
 *                   transformer/transformer.h; nested settings as "nnlab.rope.base");
 *   "<method>.<field>" fields owned by a method (e.g. "pfn.dim", "pfn.prior").
 * Value forms: names as written ("relu"); integers as base-10 text ("256"); numbers as %.17g text, which strtod
 * turns back into the identical double ("0.10000000000000001"), never inf or nan; integer lists comma-separated
 * without spaces ("1,28,28"). Readers use nl_safetensors_metadata_str / _int / _num / _ints (strict: the whole
 * value must parse and be in range). Keys are only ever added, so files written earlier keep loading.
 *
 * Builder: init, put values (a key put twice keeps the last value, moved to the end), nl_st_meta_json, free.
 * The first failing put (NULL value, empty key, non-finite number, no memory) is remembered in status and
 * later puts and nl_st_meta_json do nothing but return it / NULL, so callers may check once at the end. */
typedef struct nl_st_meta {
    void *json;       /* internal: the JSON object being built */
    nl_status status; /* first failure, NL_OK while all puts succeeded */
} nl_st_meta;

nl_status nl_st_meta_init(nl_st_meta *m);
nl_status nl_st_meta_put_str(nl_st_meta *m, const char *key, const char *val);
nl_status nl_st_meta_put_int(nl_st_meta *m, const char *key, long long v);
nl_status nl_st_meta_put_num(nl_st_meta *m, const char *key, double v); /* NL_EINVAL for inf / nan */
nl_status nl_st_meta_put_ints(nl_st_meta *m, const char *key, int n, const int64_t *v);
/* The metadata as a JSON object string for nl_safetensors_write / _save (malloc'd: free()), or NULL with the
 * error set. The builder stays valid (free it with nl_st_meta_free). */
char *nl_st_meta_json(nl_st_meta *m);
void nl_st_meta_free(nl_st_meta *m);

/* Write tensors e[0..n) in that order (names must be unique and not "__metadata__"). metadata_json: NULL or
 * a JSON object whose values are all strings, stored as __metadata__. */
nl_status nl_safetensors_write(const char *path, const nl_st_entry *e, int n, const char *metadata_json);
/* Every parameter of ps (name, shape, store dtype F32/F64), in store order. */
nl_status nl_safetensors_save(const char *path, const nl_params *ps, const char *metadata_json);
/* Copy each tensor of the file into the parameter with the same name. A tensor whose shape or dtype differs
 * from its parameter is always an error (NL_ESHAPE / NL_EDTYPE); strict also requires every parameter to be
 * present and no extra tensors (NL_EFORMAT). Nothing is copied unless everything checks out.
 * n_loaded (may be NULL) receives the number of parameters set. Tensors named "train.*" (the training state of
 * a resumable checkpoint, nnlab/train.h) are skipped, never matched against parameters. */
nl_status nl_safetensors_load_params(const char *path, nl_params *ps, int strict, int *n_loaded);
/* The same checks on an open file, without copying anything: ps may be a layout-only store
 * (nl_params_init_layout), so a loader can compare the header with the architecture before allocating it. */
nl_status nl_safetensors_check_params(const nl_st_file *f, const nl_params *ps, int strict);
/* nl_safetensors_check_params, then copy the tensors of the open file f into ps (which must hold values). */
nl_status nl_safetensors_copy_params(const nl_st_file *f, nl_params *ps, int strict, int *n_loaded);

/* ---- checkpoint load options (nl_model_load_opt, nl_lm_load_opt, nl_pfn_load_opt) ----
 * By default a checkpoint holding a NaN or Inf value is refused (NL_EFORMAT naming the tensor);
 * NL_LOAD_ALLOW_NONFINITE loads it anyway, for debugging a diverged run. */
#define NL_LOAD_ALLOW_NONFINITE 1u
/* NL_OK when every F32 / F64 tensor of f is finite, else NL_EFORMAT naming the file, the tensor and the element. */
nl_status nl_safetensors_check_finite(const nl_st_file *f);

/* ---- atomic file replacement ----
 * nl_atomic_open creates path.tmp.XXXXXX (X: six of [A-Za-z0-9]) in the target's directory with open(2) mode
 * 0666, so the umask applies as to any new file, and holds an flock on it; nl_atomic_commit flushes, fsyncs,
 * renames it over path, closes it (then fsyncs the directory). On any failure the temp file is removed and an
 * existing file at path is left untouched. Permissions: replacing a regular file keeps that file's permission
 * bits; otherwise the file has 0666 & ~umask.
 * Stale temp files: nl_atomic_open first removes every regular file named path.tmp.XXXXXX whose flock it can
 * take (a save killed before its commit leaves one; a save in progress holds its lock and is left alone).
 * Symlinks: a path that is a symbolic link is REPLACED (rename semantics): afterwards path is a regular file
 * with the new contents, and the file the link pointed to is not modified. Nothing is ever written through
 * a link (the temp file is created with O_EXCL | O_NOFOLLOW). */
typedef struct nl_atomic_file {
    FILE *f;              /* write with fwrite or nl_atomic_write */
    char *path, *tmp;
} nl_atomic_file;

nl_status nl_atomic_open(nl_atomic_file *af, const char *path);
nl_status nl_atomic_write(nl_atomic_file *af, const void *p, size_t n);
nl_status nl_atomic_commit(nl_atomic_file *af);   /* always releases af (also on failure) */
void nl_atomic_abort(nl_atomic_file *af);         /* remove the temp file; safe to call twice */

/* Open an input file for reading, refusing anything but a regular file BEFORE opening it (stat, so that a FIFO
 * cannot block; the opened descriptor is checked again with fstat). max_bytes: 0 = no limit, else a larger file
 * is refused with NL_EFORMAT naming the size and the limit. Errors: NL_ENOTFOUND (missing), NL_EIO ("file X: not
 * a regular file (it is a FIFO)", unreadable). *size (may be NULL) receives the size from fstat. */
nl_status nl_open_regular(const char *path, uint64_t max_bytes, FILE **fp, uint64_t *size);

/* Create directory dir and any missing parents (mode 0755, like mkdir -p). An existing directory is fine; a
 * component that exists but is not a directory, or any other failure, gives NL_EIO naming the path. */
nl_status nl_mkdir_p(const char *dir);

#ifdef __cplusplus
}
#endif
#endif
