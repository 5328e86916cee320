/* bnn/bnn_file.c — packed binary models in memory and on disk (format in bnn.h: magic, version, size, CRC-32, a
 * table of 128-byte layer entries, 64-byte aligned data). The loader validates every field before using it. */
#include "bnn/bnn.h"
#include "nnlab/safetensors.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "bnn model files are written in the host byte order, which must be little-endian"
#endif

static const char MAGIC[8] = {'N', 'L', 'B', 'N', 'N', 'P', 'K', '\n'};
#define HDR 64
#define ENTRY 128
#define MAX_FILE (4ull << 30)

int64_t nl_bnn_layer_bytes(const nl_bnn_layer *l) {
    if (l->rank < 1 || l->rank > 4) return -1;
    int64_t rows = 1, last = l->shape[l->rank - 1];
    for (int d = 0; d < l->rank; d++) {
        if (l->shape[d] < 0 || l->shape[d] > (1ll << 40)) return -1;
        if (d < l->rank - 1) {
            rows *= l->shape[d];
            if (rows > (1ll << 40)) return -1;
        }
    }
    const double total = (double)rows * (double)last;
    if (total > (double)(1ll << 40)) return -1;
    switch (l->dtype) {
    case NL_BNN_F32: case NL_BNN_I32: return rows * last * 4;
    case NL_BNN_U8: return rows * last;
    case NL_BNN_BITS: return rows * nl_bnn_words(last) * 8;
    }
    return -1;
}

void nl_bnn_model_init(nl_bnn_model *m) { memset(m, 0, sizeof *m); }

void nl_bnn_model_free(nl_bnn_model *m) {
    for (int i = 0; i < m->n_layers; i++) free(m->layers[i].data);
    free(m->layers);
    memset(m, 0, sizeof *m);
}

static const char *kind_name(int k) {
    switch (k) {
    case NL_BNN_L_CONV: return "conv";
    case NL_BNN_L_DENSE: return "dense";
    case NL_BNN_L_THRESH: return "thresh";
    case NL_BNN_L_POOL: return "pool";
    case NL_BNN_L_FLOAT: return "float";
    case NL_BNN_L_INT: return "int";
    }
    return "?";
}
static const char *dtype_name(int d) {
    switch (d) {
    case NL_BNN_F32: return "f32";
    case NL_BNN_I32: return "i32";
    case NL_BNN_U8: return "u8";
    case NL_BNN_BITS: return "bits";
    }
    return "?";
}

static void shape_str(char *buf, size_t n, int rank, const int64_t *shape) {
    size_t o = 0;
    o += (size_t)snprintf(buf + o, n - o, "[");
    for (int d = 0; d < rank && d < 4 && o < n; d++) o += (size_t)snprintf(buf + o, n - o, d ? ", %lld" : "%lld", (long long)shape[d]);
    if (o < n) snprintf(buf + o, n - o, "]");
}

/* checks of one layer's header fields and data; `who` prefixes the message (file name or "bnn model_add") */
static nl_status check_layer(const char *who, int idx, const nl_bnn_layer *l, const void *data) {
    char sh[128];
    if (l->kind < NL_BNN_L_CONV || l->kind > NL_BNN_L_INT)
        return nl_set_error(NL_EFORMAT, "%s: layer %d: unknown kind %d", who, idx, l->kind);
    if (l->rank < 1 || l->rank > 4) return nl_set_error(NL_EFORMAT, "%s: layer %d '%s': rank %d outside [1, 4]", who, idx, l->name, l->rank);
    shape_str(sh, sizeof sh, l->rank, l->shape);
    const int64_t bytes = nl_bnn_layer_bytes(l);
    if (bytes < 0) return nl_set_error(NL_EFORMAT, "%s: layer %d '%s': bad dtype %d or shape %s", who, idx, l->name, l->dtype, sh);
    static const int want_dt[] = {0, NL_BNN_BITS, NL_BNN_BITS, NL_BNN_I32, NL_BNN_I32, NL_BNN_F32, NL_BNN_I32};
    const int dt_ok = l->dtype == want_dt[l->kind];
    if (!dt_ok)
        return nl_set_error(NL_EFORMAT, "%s: layer %d '%s': a %s layer holds %s data, not %s", who, idx, l->name, kind_name(l->kind),
                            dtype_name(want_dt[l->kind]), dtype_name(l->dtype));
    if ((l->kind == NL_BNN_L_CONV && l->rank != 4) || (l->kind == NL_BNN_L_DENSE && l->rank != 2) ||
        (l->kind == NL_BNN_L_THRESH && (l->rank != 2 || l->shape[1] != 2)))
        return nl_set_error(NL_EFORMAT, "%s: layer %d '%s': shape %s is not that of a %s layer (%s)", who, idx, l->name, sh,
                            kind_name(l->kind),
                            l->kind == NL_BNN_L_CONV ? "[oc, kh, kw, c]" : l->kind == NL_BNN_L_DENSE ? "[out, in]" : "[c, 2]");
    if (!data || !bytes) return NL_OK;
    if (l->dtype == NL_BNN_BITS) {
        const int64_t last = l->shape[l->rank - 1], kw = nl_bnn_words(last), rows = bytes / 8 / (kw ? kw : 1);
        const uint64_t *w = data;
        const uint64_t mask = last % 64 ? ~0ull << (last % 64) : 0;
        if (mask)
            for (int64_t r = 0; r < rows; r++)
                if (w[r * kw + kw - 1] & mask)
                    return nl_set_error(NL_EFORMAT, "%s: layer %d '%s': row %lld has non-zero bits past its %lld values", who, idx,
                                        l->name, (long long)r, (long long)last);
    } else if (l->kind == NL_BNN_L_THRESH) {
        const int32_t *t = data;
        for (int64_t c = 0; c < l->shape[0]; c++)
            if (t[2 * c + 1] != 0 && t[2 * c + 1] != 1)
                return nl_set_error(NL_EFORMAT, "%s: layer %d '%s': channel %lld has flip %d (must be 0 or 1)", who, idx, l->name,
                                    (long long)c, t[2 * c + 1]);
    } else if (l->dtype == NL_BNN_F32) {
        const float *f = data;
        for (int64_t e = 0; e < bytes / 4; e++)
            if (!isfinite(f[e]))
                return nl_set_error(NL_EFORMAT, "%s: layer %d '%s': element %lld is not finite", who, idx, l->name, (long long)e);
    }
    return NL_OK;
}

nl_status nl_bnn_model_add(nl_bnn_model *m, nl_bnn_kind kind, const char *name, nl_bnn_dtype dtype, int rank,
                           const int64_t *shape, const int32_t *param, const void *data, int *idx) {
    if (!m || !shape) return nl_set_error(NL_EINVAL, "bnn model_add: NULL argument");
    if (m->n_layers >= NL_BNN_MAX_LAYERS) return nl_set_error(NL_EINVAL, "bnn model_add: more than %d layers", NL_BNN_MAX_LAYERS);
    nl_bnn_layer l;
    memset(&l, 0, sizeof l);
    l.kind = kind, l.dtype = dtype, l.rank = rank;
    for (int d = 0; d < rank && d < 4; d++) l.shape[d] = shape[d];
    if (param) memcpy(l.param, param, sizeof l.param);
    snprintf(l.name, sizeof l.name, "%s", name ? name : "");
    nl_status s = check_layer("bnn model_add", m->n_layers, &l, data);
    if (s != NL_OK) return nl_set_error(NL_EINVAL, "%s", nl_last_error());
    const int64_t bytes = nl_bnn_layer_bytes(&l);
    l.data = aligned_alloc(64, (size_t)(bytes + 63) / 64 * 64 + 64);
    if (!l.data) return nl_set_error(NL_ENOMEM, "bnn model_add: %lld bytes: out of memory", (long long)bytes);
    if (data) memcpy(l.data, data, (size_t)bytes);
    else memset(l.data, 0, (size_t)bytes);
    if (m->n_layers == m->cap) {
        int cap = m->cap ? 2 * m->cap : 8;
        nl_bnn_layer *nl = realloc(m->layers, (size_t)cap * sizeof *nl);
        if (!nl) {
            free(l.data);
            return nl_set_error(NL_ENOMEM, "bnn model_add: out of memory");
        }
        m->layers = nl, m->cap = cap;
    }
    m->layers[m->n_layers] = l;
    if (idx) *idx = m->n_layers;
    m->n_layers++;
    return NL_OK;
}

nl_status nl_bnn_model_expect(const nl_bnn_model *m, int i, nl_bnn_kind kind, nl_bnn_dtype dtype, int rank, const int64_t *shape) {
    if (i < 0 || i >= m->n_layers)
        return nl_set_error(NL_ESHAPE, "bnn model: layer %d expected (a %s layer), the model has %d layers", i, kind_name(kind), m->n_layers);
    const nl_bnn_layer *l = &m->layers[i];
    if (l->kind != (int)kind || l->dtype != (int)dtype)
        return nl_set_error(NL_ESHAPE, "bnn model: layer %d '%s' is a %s layer of %s, expected a %s layer of %s", i, l->name,
                            kind_name(l->kind), dtype_name(l->dtype), kind_name(kind), dtype_name(dtype));
    int same = l->rank == rank;
    for (int d = 0; same && d < rank; d++) same = l->shape[d] == shape[d];
    if (!same) {
        char a[128], b[128];
        shape_str(a, sizeof a, l->rank, l->shape), shape_str(b, sizeof b, rank, shape);
        return nl_set_error(NL_ESHAPE, "bnn model: layer %d '%s': shape %s, expected %s", i, l->name, a, b);
    }
    return NL_OK;
}

/* ======================================= save ======================================= */
static void put32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }

static uint64_t align64(uint64_t x) { return (x + 63) / 64 * 64; }

nl_status nl_bnn_model_save(const nl_bnn_model *m, const char *path) {
    if (!m || !path) return nl_set_error(NL_EINVAL, "bnn model_save: NULL argument");
    if (m->n_layers < 1) return nl_set_error(NL_EINVAL, "bnn model_save %s: the model has no layer", path);
    const int L = m->n_layers;
    uint64_t off = align64(HDR + (uint64_t)L * ENTRY);
    const uint64_t data0 = off;
    for (int i = 0; i < L; i++) off = align64(off + (uint64_t)nl_bnn_layer_bytes(&m->layers[i]));
    const uint64_t size = off;
    if (size > MAX_FILE) return nl_set_error(NL_EINVAL, "bnn model_save %s: %llu bytes, over the 4 GiB limit", path, (unsigned long long)size);
    unsigned char *buf = calloc(1, (size_t)size);
    if (!buf) return nl_set_error(NL_ENOMEM, "bnn model_save %s: out of memory", path);
    memcpy(buf, MAGIC, 8);
    put32(buf + 8, NL_BNN_FILE_VERSION), put32(buf + 12, (uint32_t)L), put64(buf + 16, size);
    off = data0;
    for (int i = 0; i < L; i++) {
        const nl_bnn_layer *l = &m->layers[i];
        unsigned char *e = buf + HDR + (size_t)i * ENTRY;
        const int64_t bytes = nl_bnn_layer_bytes(l);
        put32(e, (uint32_t)l->kind), put32(e + 4, (uint32_t)l->dtype), put32(e + 8, (uint32_t)l->rank);
        for (int d = 0; d < 4; d++) put64(e + 16 + 8 * d, (uint64_t)(d < l->rank ? l->shape[d] : 0));
        for (int q = 0; q < 8; q++) put32(e + 48 + 4 * q, (uint32_t)l->param[q]);
        memcpy(e + 80, l->name, 31);
        put64(e + 112, off), put64(e + 120, (uint64_t)bytes);
        if (bytes) memcpy(buf + off, l->data, (size_t)bytes);
        off = align64(off + (uint64_t)bytes);
    }
    put32(buf + 24, (uint32_t)crc32(0L, buf + HDR, (uInt)(size - HDR)));
    nl_atomic_file af;
    nl_status s = nl_atomic_open(&af, path);
    if (s == NL_OK) {
        s = nl_atomic_write(&af, buf, (size_t)size);
        if (s == NL_OK) s = nl_atomic_commit(&af);
        else nl_atomic_abort(&af);
    }
    free(buf);
    return s;
}

/* ======================================= load ======================================= */
static nl_status load_buf(nl_bnn_model *m, const char *path, const unsigned char *buf, uint64_t size) {
    if (size < 8 || memcmp(buf, MAGIC, 8) != 0) {
        /* a float nnlab checkpoint is a safetensors file: u64 JSON header length, then '{' */
        if (size >= 9 && buf[8] == '{' && get64(buf) > 0 && get64(buf) <= size - 8)
            return nl_set_error(NL_EFORMAT,
                                "%s: this is a float checkpoint (safetensors), not a packed binary model: export the trained "
                                "network to the packed format first",
                                path);
        return nl_set_error(NL_EFORMAT, "%s: not a packed binary model (bad magic; expected \"NLBNNPK\")", path);
    }
    if (size < HDR) return nl_set_error(NL_EFORMAT, "%s: truncated: %llu bytes, the header alone is %d", path, (unsigned long long)size, HDR);
    const uint32_t version = get32(buf + 8), L = get32(buf + 12);
    const uint64_t declared = get64(buf + 16);
    if (version != NL_BNN_FILE_VERSION)
        return nl_set_error(NL_EFORMAT, "%s: packed model version %u, this build reads version %d", path, version, NL_BNN_FILE_VERSION);
    if (declared != size)
        return nl_set_error(NL_EFORMAT, "%s: %s: the file has %llu bytes, its header says %llu", path,
                            size < declared ? "truncated" : "extended", (unsigned long long)size, (unsigned long long)declared);
    if (L < 1 || L > NL_BNN_MAX_LAYERS) return nl_set_error(NL_EFORMAT, "%s: %u layers (must be 1 .. %d)", path, L, NL_BNN_MAX_LAYERS);
    if (HDR + (uint64_t)L * ENTRY > size)
        return nl_set_error(NL_EFORMAT, "%s: truncated: the layer table of %u entries ends past the end of the file", path, L);
    const uint32_t crc = (uint32_t)crc32(0L, buf + HDR, (uInt)(size - HDR));
    if (crc != get32(buf + 24))
        return nl_set_error(NL_EFORMAT, "%s: checksum mismatch (CRC-32 %08x, header says %08x): the file is corrupt", path, crc, get32(buf + 24));
    for (int i = 0; i < 36; i++)
        if (buf[28 + i]) return nl_set_error(NL_EFORMAT, "%s: reserved header bytes are not zero", path);
    uint64_t prev_end = align64(HDR + (uint64_t)L * ENTRY);
    for (uint32_t i = 0; i < L; i++) {
        const unsigned char *e = buf + HDR + (size_t)i * ENTRY;
        nl_bnn_layer l;
        memset(&l, 0, sizeof l);
        l.kind = (int32_t)get32(e), l.dtype = (int32_t)get32(e + 4), l.rank = (int32_t)get32(e + 8);
        for (int d = 0; d < 4; d++) l.shape[d] = (int64_t)get64(e + 16 + 8 * d);
        for (int q = 0; q < 8; q++) l.param[q] = (int32_t)get32(e + 48 + 4 * q);
        if (memchr(e + 80, 0, 32) == NULL) return nl_set_error(NL_EFORMAT, "%s: layer %u: name not NUL-terminated", path, i);
        memcpy(l.name, e + 80, 32);
        const uint64_t off = get64(e + 112), bytes = get64(e + 120);
        nl_status s = check_layer(path, (int)i, &l, NULL);
        if (s != NL_OK) return s;
        const int64_t want = nl_bnn_layer_bytes(&l);
        char sh[128];
        shape_str(sh, sizeof sh, l.rank, l.shape);
        if ((uint64_t)want != bytes)
            return nl_set_error(NL_EFORMAT, "%s: layer %u '%s': %llu data bytes, but %s %s needs %lld", path, i, l.name,
                                (unsigned long long)bytes, dtype_name(l.dtype), sh, (long long)want);
        if (off % 64 || off < prev_end || off > size || bytes > size - off)
            return nl_set_error(NL_EFORMAT, "%s: layer %u '%s': data at [%llu, +%llu) is out of place (file %llu bytes, previous data ends at %llu)",
                                path, i, l.name, (unsigned long long)off, (unsigned long long)bytes, (unsigned long long)size,
                                (unsigned long long)prev_end);
        s = check_layer(path, (int)i, &l, buf + off);
        if (s != NL_OK) return s;
        s = nl_bnn_model_add(m, (nl_bnn_kind)l.kind, l.name, (nl_bnn_dtype)l.dtype, l.rank, l.shape, l.param, buf + off, NULL);
        if (s != NL_OK) return s;
        prev_end = off + bytes;
    }
    return NL_OK;
}

nl_status nl_bnn_model_load(nl_bnn_model *m, const char *path) {
    if (!m || !path) return nl_set_error(NL_EINVAL, "bnn model_load: NULL argument");
    nl_bnn_model_init(m);
    FILE *f;
    uint64_t size;
    nl_status s = nl_open_regular(path, MAX_FILE, &f, &size);
    if (s != NL_OK) return s;
    unsigned char *buf = malloc((size_t)(size ? size : 1));
    if (!buf) {
        fclose(f);
        return nl_set_error(NL_ENOMEM, "%s: %llu bytes: out of memory", path, (unsigned long long)size);
    }
    const size_t got = size ? fread(buf, 1, (size_t)size, f) : 0;
    fclose(f);
    if (got != size) s = nl_set_error(NL_EIO, "%s: read %zu of %llu bytes", path, got, (unsigned long long)size);
    else s = load_buf(m, path, buf, size);
    free(buf);
    if (s != NL_OK) nl_bnn_model_free(m);
    return s;
}
