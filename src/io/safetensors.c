/* safetensors reader (strict validation) and writer (atomic, 8-byte aligned data section).
 * Format: https://github.com/huggingface/safetensors — 8-byte little-endian header size N, N bytes of JSON,
 * then the data section; every tensor's data_offsets are relative to the data section. */
#include "nnlab/safetensors.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

/* ---- dtypes ---- */
static const struct {
    const char *name;
    size_t size;
} g_st_dtypes[NL_ST_DTYPE_COUNT] = {
    [NL_ST_BOOL] = {"BOOL", 1},       [NL_ST_U8] = {"U8", 1},     [NL_ST_I8] = {"I8", 1},
    [NL_ST_F8_E4M3] = {"F8_E4M3", 1}, [NL_ST_F8_E5M2] = {"F8_E5M2", 1},
    [NL_ST_I16] = {"I16", 2},         [NL_ST_U16] = {"U16", 2},   [NL_ST_F16] = {"F16", 2},
    [NL_ST_BF16] = {"BF16", 2},       [NL_ST_I32] = {"I32", 4},   [NL_ST_U32] = {"U32", 4},
    [NL_ST_F32] = {"F32", 4},         [NL_ST_F64] = {"F64", 8},   [NL_ST_I64] = {"I64", 8},
    [NL_ST_U64] = {"U64", 8},
};

const char *nl_st_dtype_name(nl_st_dtype t) {
    return ((int)t >= 0 && t < NL_ST_DTYPE_COUNT) ? g_st_dtypes[t].name : "?";
}
size_t nl_st_dtype_size(nl_st_dtype t) { return ((int)t >= 0 && t < NL_ST_DTYPE_COUNT) ? g_st_dtypes[t].size : 0; }

int nl_st_dtype_parse(const char *name, nl_st_dtype *t) {
    for (int i = 0; i < NL_ST_DTYPE_COUNT; i++)
        if (!strcmp(name, g_st_dtypes[i].name)) {
            *t = (nl_st_dtype)i;
            return 0;
        }
    return -1;
}

nl_st_dtype nl_st_dtype_of(nl_dtype t) { return t == NL_F64 ? NL_ST_F64 : NL_ST_F32; }

/* ---- helpers ---- */
static int utf8_valid(const unsigned char *s, size_t n, size_t *bad) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) { i++; continue; }
        else if ((c & 0xE0) == 0xC0) k = 1, cp = c & 0x1F;
        else if ((c & 0xF0) == 0xE0) k = 2, cp = c & 0x0F;
        else if ((c & 0xF8) == 0xF0) k = 3, cp = c & 0x07;
        else goto fail;
        for (size_t j = 1; j <= k; j++) {
            if (i + j >= n || (s[i + j] & 0xC0) != 0x80) goto fail;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            goto fail;
        i += k + 1;
    }
    return 1;
fail:
    if (bad) *bad = i;
    return 0;
}

static int is_json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Integral JSON number in [0, 2^53]. */
static int json_uint(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0.0) || d > 9007199254740992.0 || d != floor(d)) return 0;
    *out = (uint64_t)d;
    return 1;
}

static void file_free_contents(nl_st_file *f) {
    for (int i = 0; i < f->n; i++) free(f->t[i].name);
    free(f->t);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta_key[i]);
        free(f->meta_val[i]);
    }
    free(f->meta_key);
    free(f->meta_val);
    free(f->path);
    free(f->data);
    memset(f, 0, sizeof *f);
}

void nl_safetensors_close(nl_st_file *f) {
    if (f) file_free_contents(f);
}

static int cmp_range(const void *a, const void *b) {
    const nl_st_tensor *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static int cmp_name_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first key that occurs twice among the members of object o (sorted: O(k log k)); "" if none, NULL when out
 * of memory. Runs after the escaped-NUL scan, so keys compare as whole strings. */
static const char *dup_key(const cJSON *o) {
    int k = 0;
    for (const cJSON *c = o->child; c; c = c->next) k++;
    if (k < 2) return "";
    const char **keys = malloc((size_t)k * sizeof *keys);
    if (!keys) return NULL;
    k = 0;
    for (const cJSON *c = o->child; c; c = c->next) keys[k++] = c->string ? c->string : "";
    qsort(keys, (size_t)k, sizeof *keys, cmp_name_ptr);
    const char *d = "";
    for (int i = 1; i < k && !*d; i++)
        if (!strcmp(keys[i - 1], keys[i])) d = keys[i][0] ? keys[i] : "(empty)";
    free(keys);
    return d;
}

/* Offset of the first "\u0000" escape inside a JSON string of hdr, or -1. */
static long long find_escaped_nul(const char *hdr, uint64_t n) {
    int in_str = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (!in_str) {
            if (hdr[i] == '"') in_str = 1;
        } else if (hdr[i] == '"') in_str = 0;
        else if (hdr[i] == '\\' && i + 1 < n) {
            if (hdr[i + 1] == 'u' && i + 5 < n && !memcmp(hdr + i + 2, "0000", 4)) return (long long)i;
            i++; /* skip the escaped character */
        }
    }
    return -1;
}

static int has_control(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return 1;
    return 0;
}

/* Parse and validate the header (hdr, hlen) against a data section of data_len bytes. On success fills f
 * (tensors with begin/end; data pointers are set by the caller). `what` names the file in messages. */
static nl_status parse_header(const char *hdr, uint64_t hlen, uint64_t data_len, const char *what, nl_st_file *f) {
    size_t bad = 0;
    if (!utf8_valid((const unsigned char *)hdr, (size_t)hlen, &bad))
        return nl_set_error(NL_EFORMAT, "file %s: header is not valid UTF-8 (byte %zu of the header)", what, bad);
    size_t i0 = 0;
    while (i0 < hlen && is_json_space(hdr[i0])) i0++;
    if (i0 == hlen || hdr[i0] != '{')
        return nl_set_error(NL_EFORMAT, "file %s: header is not a JSON object (it must start with '{')", what);
    long long nul = find_escaped_nul(hdr, hlen);
    if (nul >= 0)
        return nl_set_error(NL_EFORMAT, "file %s: header has an escaped NUL (\\u0000) in a string (byte %lld of the "
                                        "header; refused: names would be truncated)", what, nul);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, (size_t)hlen, &end, 0);
    if (!root) {
        size_t pos = (end && end >= hdr && end <= hdr + hlen) ? (size_t)(end - hdr) : 0;
        return nl_set_error(NL_EFORMAT, "file %s: header is not valid JSON (parse error near byte %zu of the header)",
                            what, pos);
    }
    nl_status st = NL_OK;
    for (const char *p = end; p < hdr + hlen; p++)
        if (!is_json_space(*p)) {
            st = nl_set_error(NL_EFORMAT, "file %s: unexpected bytes after the JSON header (byte %zu of the header)",
                              what, (size_t)(p - hdr));
            goto out;
        }
    if (!cJSON_IsObject(root)) {
        st = nl_set_error(NL_EFORMAT, "file %s: header is not a JSON object", what);
        goto out;
    }
    const char *dk = dup_key(root);
    if (!dk || *dk) {
        st = !dk ? nl_set_error(NL_ENOMEM, "file %s: out of memory", what)
                 : nl_set_error(NL_EFORMAT, !strcmp(dk, "__metadata__") ? "file %s: duplicate %s entry"
                                                                        : "file %s: duplicate tensor name '%s'", what, dk);
        goto out;
    }
    int count = 0; /* __metadata__ at most once: dup_key above */
    for (cJSON *c = root->child; c; c = c->next) count++;
    f->t = calloc(count ? (size_t)count : 1, sizeof *f->t);
    if (!f->t) {
        st = nl_set_error(NL_ENOMEM, "file %s: out of memory", what);
        goto out;
    }
    for (cJSON *c = root->child; c; c = c->next) {
        const char *name = c->string ? c->string : "";
        if (!strcmp(name, "__metadata__")) {
            if (!cJSON_IsObject(c)) {
                st = nl_set_error(NL_EFORMAT, "file %s: __metadata__ must be an object of string values", what);
                goto out;
            }
            if (!(dk = dup_key(c)) || *dk) {
                st = !dk ? nl_set_error(NL_ENOMEM, "file %s: out of memory", what)
                         : nl_set_error(NL_EFORMAT, "file %s: duplicate __metadata__ key '%s'", what, dk);
                goto out;
            }
            int nm = 0;
            for (cJSON *m = c->child; m; m = m->next) nm++;
            f->meta_key = calloc(nm ? (size_t)nm : 1, sizeof(char *));
            f->meta_val = calloc(nm ? (size_t)nm : 1, sizeof(char *));
            if (!f->meta_key || !f->meta_val) {
                st = nl_set_error(NL_ENOMEM, "file %s: out of memory", what);
                goto out;
            }
            for (cJSON *m = c->child; m; m = m->next) {
                const char *k = m->string ? m->string : "";
                if (!cJSON_IsString(m)) {
                    st = nl_set_error(NL_EFORMAT, "file %s: __metadata__ value of key '%s' is not a string", what, k);
                    goto out;
                }
                if (has_control(k)) {
                    st = nl_set_error(NL_EFORMAT, "file %s: __metadata__ key '%s' contains a control character", what, k);
                    goto out;
                }
                f->meta_key[f->n_meta] = strdup(k);
                f->meta_val[f->n_meta] = strdup(m->valuestring);
                f->n_meta++;
                if (!f->meta_key[f->n_meta - 1] || !f->meta_val[f->n_meta - 1]) {
                    st = nl_set_error(NL_ENOMEM, "file %s: out of memory", what);
                    goto out;
                }
            }
            continue;
        }
        if (!cJSON_IsObject(c)) {
            st = nl_set_error(NL_EFORMAT, "file %s: tensor '%s': entry is not a JSON object", what, name);
            goto out;
        }
        if (has_control(name)) {
            st = nl_set_error(NL_EFORMAT, "file %s: tensor name '%s' contains a control character", what, name);
            goto out;
        }
        if (!(dk = dup_key(c)) || *dk) {
            st = !dk ? nl_set_error(NL_ENOMEM, "file %s: out of memory", what)
                     : nl_set_error(NL_EFORMAT, "file %s: tensor '%s': field \"%s\" appears twice", what, name, dk);
            goto out;
        }
        nl_st_tensor *t = &f->t[f->n];
        t->name = strdup(name);
        if (!t->name) {
            st = nl_set_error(NL_ENOMEM, "file %s: out of memory", what);
            goto out;
        }
        f->n++;
        for (int d = 0; d < NL_ST_MAXDIM; d++) t->shape[d] = 1;
        cJSON *dt = cJSON_GetObjectItemCaseSensitive(c, "dtype");
        cJSON *sh = cJSON_GetObjectItemCaseSensitive(c, "shape");
        cJSON *of = cJSON_GetObjectItemCaseSensitive(c, "data_offsets");
        if (!dt || !sh || !of) {
            st = nl_set_error(NL_EFORMAT, "file %s: tensor '%s': missing \"%s\"", what, name,
                              !dt ? "dtype" : !sh ? "shape" : "data_offsets");
            goto out;
        }
        if (!cJSON_IsString(dt)) {
            st = nl_set_error(NL_EFORMAT, "file %s: tensor '%s': dtype is not a string", what, name);
            goto out;
        }
        if (nl_st_dtype_parse(dt->valuestring, &t->dtype) != 0) {
            st = nl_set_error(NL_EFORMAT, "file %s: tensor '%s': unsupported dtype '%s'", what, name, dt->valuestring);
            goto out;
        }
        if (!cJSON_IsArray(sh)) {
            st = nl_set_error(NL_EFORMAT, "file %s: tensor '%s': shape is not an array", what, name);
            goto out;
        }
        int nd = cJSON_GetArraySize(sh);
        if (nd > NL_ST_MAXDIM) {
            st = nl_set_error(NL_EFORMAT, "file %s: tensor '%s': %d dimensions (at most %d supported)", what, name, nd,
                              NL_ST_MAXDIM);
            goto out;
        }
        t->ndim = nd;
        uint64_t numel = 1;
        int overflow = 0;
        int d = 0;
        for (cJSON *e = sh->child; e; e = e->next, d++) {
            uint64_t v;
            if (!json_uint(e, &v)) {
                st = nl_set_error(NL_EFORMAT, "file %s: tensor '%s': shape entry %d is not a non-negative integer", what,
                                  name, d);
                goto out;
            }
            t->shape[d] = (int64_t)v;
            if (v && numel > UINT64_MAX / v) overflow = 1;
            else numel *= v;
        }
        size_t isz = nl_st_dtype_size(t->dtype);
        if (overflow || numel > UINT64_MAX / isz || numel > (uint64_t)INT64_MAX) {
            st = nl_set_error(NL_EFORMAT, "file %s: tensor '%s': shape is too large", what, name);
            goto out;
        }
        t->numel = (int64_t)numel;
        if (!cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2 || !json_uint(of->child, &t->begin) ||
            !json_uint(of->child->next, &t->end)) {
            st = nl_set_error(NL_EFORMAT, "file %s: tensor '%s': data_offsets must be an array of two non-negative integers",
                              what, name);
            goto out;
        }
        if (t->begin > t->end) {
            st = nl_set_error(NL_EFORMAT, "file %s: tensor '%s': data_offsets begin %llu > end %llu", what, name,
                              (unsigned long long)t->begin, (unsigned long long)t->end);
            goto out;
        }
        if (t->end > data_len) {
            st = nl_set_error(NL_EFORMAT,
                              "file %s: tensor '%s': data_offsets [%llu, %llu] out of bounds (data section is %llu bytes; "
                              "file truncated?)",
                              what, name, (unsigned long long)t->begin, (unsigned long long)t->end,
                              (unsigned long long)data_len);
            goto out;
        }
        if (t->end - t->begin != numel * isz) {
            st = nl_set_error(NL_EFORMAT,
                              "file %s: tensor '%s': data_offsets cover %llu bytes but shape and dtype %s need %llu", what,
                              name, (unsigned long long)(t->end - t->begin), nl_st_dtype_name(t->dtype),
                              (unsigned long long)(numel * isz));
            goto out;
        }
    }
    /* the ranges, in order, must tile the data section exactly */
    qsort(f->t, (size_t)f->n, sizeof *f->t, cmp_range);
    uint64_t pos = 0;
    for (int i = 0; i < f->n; i++) {
        nl_st_tensor *t = &f->t[i];
        if (t->begin < pos) {
            st = nl_set_error(NL_EFORMAT, "file %s: tensor '%s': data_offsets [%llu, %llu] overlap the previous tensor '%s'",
                              what, t->name, (unsigned long long)t->begin, (unsigned long long)t->end, f->t[i - 1].name);
            goto out;
        }
        if (t->begin > pos) {
            st = nl_set_error(NL_EFORMAT,
                              "file %s: tensor '%s': data_offsets begin at %llu, leaving a hole of %llu unindexed bytes "
                              "after offset %llu",
                              what, t->name, (unsigned long long)t->begin, (unsigned long long)(t->begin - pos),
                              (unsigned long long)pos);
            goto out;
        }
        pos = t->end;
    }
    if (pos != data_len) {
        st = nl_set_error(NL_EFORMAT,
                          "file %s: the tensors index %llu bytes but the data section has %llu (trailing unindexed bytes)",
                          what, (unsigned long long)pos, (unsigned long long)data_len);
        goto out;
    }
out:
    cJSON_Delete(root);
    return st;
}

static nl_status check_header_len(uint64_t total, uint64_t hlen, const char *what) {
    if (hlen == 0) return nl_set_error(NL_EFORMAT, "file %s: header length is 0", what);
    if (hlen > NL_ST_MAX_HEADER)
        return nl_set_error(NL_EFORMAT, "file %s: header length %llu exceeds the limit of %llu bytes", what,
                            (unsigned long long)hlen, (unsigned long long)NL_ST_MAX_HEADER);
    if (hlen > total - 8)
        return nl_set_error(NL_EFORMAT, "file %s: header length %llu exceeds the %llu bytes after the length field "
                                        "(file truncated?)",
                            what, (unsigned long long)hlen, (unsigned long long)(total - 8));
    return NL_OK;
}

static uint64_t le64(const unsigned char *b) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | b[i];
    return v;
}

static void *alloc_data(uint64_t n) {
    size_t sz = (size_t)((n + 63) / 64 * 64);
    if (!sz) sz = 64;
    return aligned_alloc(64, sz);
}

/* Finish a file whose header text and data section are loaded: validate, set pointers. Takes data. */
static nl_status finish(const char *hdr, uint64_t hlen, void *data, uint64_t data_len, const char *what,
                        nl_st_file *f) {
    memset(f, 0, sizeof *f);
    f->data = data;
    f->data_len = data_len;
    f->header_len = hlen;
    f->path = strdup(what);
    if (!f->path) {
        file_free_contents(f);
        return nl_set_error(NL_ENOMEM, "file %s: out of memory", what);
    }
    nl_status st = parse_header(hdr, hlen, data_len, what, f);
    if (st) {
        file_free_contents(f);
        return st;
    }
    for (int i = 0; i < f->n; i++) f->t[i].data = (const char *)f->data + f->t[i].begin;
    return NL_OK;
}

nl_status nl_safetensors_parse(const void *buf, size_t n, const char *what, nl_st_file *f) {
    memset(f, 0, sizeof *f);
    if (!what) what = "<memory>";
    const unsigned char *b = buf;
    if (n < 8)
        return nl_set_error(NL_EFORMAT, "file %s: too short (%zu bytes) to hold the 8-byte header length", what, n);
    uint64_t hlen = le64(b);
    nl_status st = check_header_len(n, hlen, what);
    if (st) return st;
    uint64_t dlen = n - 8 - hlen;
    void *data = alloc_data(dlen);
    if (!data) return nl_set_error(NL_ENOMEM, "file %s: out of memory", what);
    if (dlen) memcpy(data, b + 8 + hlen, (size_t)dlen);
    return finish((const char *)b + 8, hlen, data, dlen, what, f);
}

nl_status nl_safetensors_open(const char *path, nl_st_file *f) {
    memset(f, 0, sizeof *f);
    FILE *fp;
    uint64_t total;
    nl_status st = nl_open_regular(path, 0, &fp, &total);
    if (st) return st;
    unsigned char lenb[8];
    if (total < 8 || fread(lenb, 1, 8, fp) != 8) {
        fclose(fp);
        return nl_set_error(NL_EFORMAT, "file %s: too short (%llu bytes) to hold the 8-byte header length", path,
                            (unsigned long long)total);
    }
    uint64_t hlen = le64(lenb);
    st = check_header_len(total, hlen, path);
    if (st) {
        fclose(fp);
        return st;
    }
    uint64_t dlen = total - 8 - hlen;
    char *hdr = malloc((size_t)hlen + 1);
    void *data = alloc_data(dlen);
    if (!hdr || !data) {
        free(hdr);
        free(data);
        fclose(fp);
        return nl_set_error(NL_ENOMEM, "file %s: out of memory (header %llu bytes, data %llu bytes)", path,
                            (unsigned long long)hlen, (unsigned long long)dlen);
    }
    size_t gh = fread(hdr, 1, (size_t)hlen, fp);
    size_t gd = dlen ? fread(data, 1, (size_t)dlen, fp) : 0;
    int err = ferror(fp);
    fclose(fp);
    if (err || gh != hlen || gd != dlen) {
        free(hdr);
        free(data);
        return nl_set_error(err ? NL_EIO : NL_EFORMAT, "file %s: read failed (file changed while reading?)", path);
    }
    hdr[hlen] = 0;
    st = finish(hdr, hlen, data, dlen, path, f);
    free(hdr);
    return st;
}

const nl_st_tensor *nl_safetensors_find(const nl_st_file *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->t[i].name, name)) return &f->t[i];
    return NULL;
}

const char *nl_safetensors_get_metadata(const nl_st_file *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++)
        if (!strcmp(f->meta_key[i], key)) return f->meta_val[i];
    return NULL;
}

nl_status nl_safetensors_metadata_int(const nl_st_file *f, const char *key, long long lo, long long hi, long long *out) {
    const char *v = nl_safetensors_get_metadata(f, key);
    if (!v) return nl_set_error(NL_EFORMAT, "%s: checkpoint metadata lacks \"%s\"", f->path, key);
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        return nl_set_error(NL_EFORMAT, "%s: metadata \"%s\" = \"%s\" is not an integer in [%lld, %lld]", f->path, key, v,
                            lo, hi);
    *out = x;
    return NL_OK;
}

nl_status nl_safetensors_metadata_num(const nl_st_file *f, const char *key, double *out) {
    const char *v = nl_safetensors_get_metadata(f, key);
    if (!v) return nl_set_error(NL_EFORMAT, "%s: checkpoint metadata lacks \"%s\"", f->path, key);
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno == ERANGE && isfinite(x) && x != 0) errno = 0; /* a subnormal (as %.17g writes one) is exact enough */
    if (errno || end == v || *end || !isfinite(x))
        return nl_set_error(NL_EFORMAT, "%s: metadata \"%s\" = \"%s\" is not a finite number", f->path, key, v);
    *out = x;
    return NL_OK;
}

static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1F, man = h & 0x3FF, bits;
    if (exp == 0) {
        if (man == 0) bits = sign;
        else { /* subnormal */
            float v = ldexpf((float)man, -24);
            return sign ? -v : v;
        }
    } else if (exp == 31) bits = sign | 0x7F800000u | (man << 13);
    else bits = sign | ((exp + 112) << 23) | (man << 13);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

nl_status nl_st_tensor_convert(const nl_st_tensor *t, void *dst, nl_dtype dt) {
    const unsigned char *s = t->data;
    int64_t n = t->numel;
    if ((t->dtype == NL_ST_F32 && dt == NL_F32) || (t->dtype == NL_ST_F64 && dt == NL_F64)) {
        if (n) memcpy(dst, s, (size_t)n * nl_dtype_size(dt));
        return NL_OK;
    }
    if (t->dtype == NL_ST_F8_E4M3 || t->dtype == NL_ST_F8_E5M2)
        return nl_set_error(NL_EDTYPE, "tensor '%s': conversion from %s is not supported", t->name,
                            nl_st_dtype_name(t->dtype));
    size_t isz = nl_st_dtype_size(t->dtype);
    for (int64_t i = 0; i < n; i++) {
        const unsigned char *p = s + (size_t)i * isz;
        double v = 0;
        switch (t->dtype) {
        case NL_ST_BOOL: v = p[0] != 0; break;
        case NL_ST_U8: v = p[0]; break;
        case NL_ST_I8: v = (int8_t)p[0]; break;
        case NL_ST_I16: { int16_t x; memcpy(&x, p, 2); v = x; } break;
        case NL_ST_U16: { uint16_t x; memcpy(&x, p, 2); v = x; } break;
        case NL_ST_F16: { uint16_t x; memcpy(&x, p, 2); v = half_to_float(x); } break;
        case NL_ST_BF16: { uint16_t x; memcpy(&x, p, 2); uint32_t b = (uint32_t)x << 16; float f; memcpy(&f, &b, 4); v = f; } break;
        case NL_ST_I32: { int32_t x; memcpy(&x, p, 4); v = x; } break;
        case NL_ST_U32: { uint32_t x; memcpy(&x, p, 4); v = x; } break;
        case NL_ST_F32: { float x; memcpy(&x, p, 4); v = x; } break;
        case NL_ST_F64: { double x; memcpy(&x, p, 8); v = x; } break;
        case NL_ST_I64: { int64_t x; memcpy(&x, p, 8); v = (double)x; } break;
        case NL_ST_U64: { uint64_t x; memcpy(&x, p, 8); v = (double)x; } break;
        default: break;
        }
        if (dt == NL_F64) ((double *)dst)[i] = v;
        else ((float *)dst)[i] = (float)v;
    }
    return NL_OK;
}

/* ---- writer ---- */
typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->n + n + 1) nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_json_string(sbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char tmp[8];
        if (*p == '"') sb_put(b, "\\\"", 2);
        else if (*p == '\\') sb_put(b, "\\\\", 2);
        else if (*p < 0x20) {
            snprintf(tmp, sizeof tmp, "\\u%04x", *p);
            sb_put(b, tmp, 6);
        } else sb_put(b, (const char *)p, 1);
    }
    sb_put(b, "\"", 1);
}

nl_status nl_safetensors_write(const char *path, const nl_st_entry *e, int n, const char *metadata_json) {
    if (!path || n < 0 || (n > 0 && !e)) return nl_set_error(NL_EINVAL, "safetensors_write: bad arguments");
    cJSON *meta = NULL;
    if (metadata_json) {
        meta = cJSON_Parse(metadata_json);
        if (!meta || !cJSON_IsObject(meta)) {
            cJSON_Delete(meta);
            return nl_set_error(NL_EINVAL, "safetensors_write %s: metadata is not a JSON object: %.80s", path, metadata_json);
        }
        for (cJSON *m = meta->child; m; m = m->next)
            if (!cJSON_IsString(m) || has_control(m->string) || !utf8_valid((const unsigned char *)m->string, strlen(m->string), NULL) ||
                !utf8_valid((const unsigned char *)m->valuestring, strlen(m->valuestring), NULL)) {
                nl_status s = nl_set_error(NL_EINVAL, "safetensors_write %s: metadata key '%s' has a control character or its value is not a UTF-8 string",
                                           path, m->string);
                cJSON_Delete(meta);
                return s;
            }
    }
    nl_status st = NL_OK;
    sbuf h = {0};
    const char **names = NULL;
    sb_str(&h, "{");
    int first = 1;
    if (meta && meta->child) {
        sb_str(&h, "\"__metadata__\":{");
        for (cJSON *m = meta->child; m; m = m->next) {
            sb_json_string(&h, m->string);
            sb_str(&h, ":");
            sb_json_string(&h, m->valuestring);
            if (m->next) sb_str(&h, ",");
        }
        sb_str(&h, "}");
        first = 0;
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const nl_st_entry *t = &e[i];
        if (!t->name || !strcmp(t->name, "__metadata__") || has_control(t->name) ||
            !utf8_valid((const unsigned char *)t->name, strlen(t->name), NULL)) {
            st = nl_set_error(NL_EINVAL, "safetensors_write %s: entry %d has an invalid name", path, i);
            goto out;
        }
        if ((int)t->dtype < 0 || t->dtype >= NL_ST_DTYPE_COUNT || t->ndim < 0 || t->ndim > NL_ST_MAXDIM ||
            (t->ndim > 0 && !t->shape)) {
            st = nl_set_error(NL_EINVAL, "safetensors_write %s: tensor '%s': bad dtype or ndim", path, t->name);
            goto out;
        }
        uint64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] < 0 || (t->shape[d] && numel > (uint64_t)INT64_MAX / (uint64_t)t->shape[d])) {
                st = nl_set_error(NL_EINVAL, "safetensors_write %s: tensor '%s': bad shape", path, t->name);
                goto out;
            }
            numel *= (uint64_t)t->shape[d];
        }
        uint64_t nb = numel * nl_st_dtype_size(t->dtype);
        if (nb && !t->data) {
            st = nl_set_error(NL_EINVAL, "safetensors_write %s: tensor '%s': no data", path, t->name);
            goto out;
        }
        char tmp[64];
        if (!first) sb_str(&h, ",");
        first = 0;
        sb_json_string(&h, t->name);
        sb_str(&h, ":{\"dtype\":\"");
        sb_str(&h, nl_st_dtype_name(t->dtype));
        sb_str(&h, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            snprintf(tmp, sizeof tmp, d ? ",%lld" : "%lld", (long long)t->shape[d]);
            sb_str(&h, tmp);
        }
        snprintf(tmp, sizeof tmp, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                 (unsigned long long)(off + nb));
        sb_str(&h, tmp);
        off += nb;
    }
    sb_str(&h, "}");
    while (h.n % 8) sb_str(&h, " ");
    if (h.oom) {
        st = nl_set_error(NL_ENOMEM, "safetensors_write %s: out of memory", path);
        goto out;
    }
    if (n > 1) {
        names = malloc((size_t)n * sizeof *names);
        if (!names) {
            st = nl_set_error(NL_ENOMEM, "safetensors_write %s: out of memory", path);
            goto out;
        }
        for (int i = 0; i < n; i++) names[i] = e[i].name;
        qsort(names, (size_t)n, sizeof *names, cmp_name_ptr);
        for (int i = 1; i < n; i++)
            if (!strcmp(names[i - 1], names[i])) {
                st = nl_set_error(NL_EINVAL, "safetensors_write %s: duplicate tensor name '%s'", path, names[i]);
                goto out;
            }
    }
    nl_atomic_file af;
    st = nl_atomic_open(&af, path);
    if (st) goto out;
    unsigned char lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)((uint64_t)h.n >> (8 * i));
    st = nl_atomic_write(&af, lenb, 8);
    if (!st) st = nl_atomic_write(&af, h.p, h.n);
    for (int i = 0; i < n && !st; i++) {
        uint64_t numel = 1;
        for (int d = 0; d < e[i].ndim; d++) numel *= (uint64_t)e[i].shape[d];
        st = nl_atomic_write(&af, e[i].data, (size_t)(numel * nl_st_dtype_size(e[i].dtype)));
    }
    if (st) {
        nl_atomic_abort(&af);
        goto out;
    }
    st = nl_atomic_commit(&af);
out:
    free(names);
    free(h.p);
    cJSON_Delete(meta);
    return st;
}

nl_status nl_safetensors_save(const char *path, const nl_params *ps, const char *metadata_json) {
    if (!ps) return nl_set_error(NL_EINVAL, "safetensors_save: NULL parameter store");
    nl_st_entry *e = calloc(ps->n ? (size_t)ps->n : 1, sizeof *e);
    if (!e) return nl_set_error(NL_ENOMEM, "safetensors_save %s: out of memory", path);
    for (int i = 0; i < ps->n; i++) {
        const nl_param *p = ps->p[i];
        e[i].name = p->name;
        e[i].dtype = nl_st_dtype_of(ps->dtype);
        e[i].ndim = p->var.val.ndim;
        e[i].shape = p->var.val.shape;
        e[i].data = (const char *)ps->data + (size_t)p->offset * nl_dtype_size(ps->dtype);
    }
    nl_status st = nl_safetensors_write(path, e, ps->n, metadata_json);
    free(e);
    return st;
}

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < ndim && k < n; d++) k += (size_t)snprintf(buf + k, n - k, d ? ",%lld" : "%lld", (long long)shape[d]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

nl_status nl_safetensors_load_params(const char *path, nl_params *ps, int strict, int *n_loaded) {
    if (n_loaded) *n_loaded = 0;
    if (!ps) return nl_set_error(NL_EINVAL, "safetensors_load_params: NULL parameter store");
    nl_st_file f;
    nl_status st = nl_safetensors_open(path, &f);
    if (st) return st;
    nl_st_dtype want = nl_st_dtype_of(ps->dtype);
    nl_param **match = calloc(f.n ? (size_t)f.n : 1, sizeof *match);
    if (!match) {
        nl_safetensors_close(&f);
        return nl_set_error(NL_ENOMEM, "load %s: out of memory", path);
    }
    for (int i = 0; i < f.n && !st; i++) {
        const nl_st_tensor *t = &f.t[i];
        if (!strncmp(t->name, "train.", 6)) continue; /* training state of a resumable checkpoint (train.h) */
        nl_param *p = nl_params_find(ps, t->name);
        if (!p) {
            if (strict)
                st = nl_set_error(NL_EFORMAT, "load %s: tensor '%s' has no matching parameter (strict load)", path,
                                  t->name);
            continue;
        }
        if (t->dtype != want) {
            st = nl_set_error(NL_EDTYPE, "load %s: tensor '%s' has dtype %s but the parameter store holds %s", path,
                              t->name, nl_st_dtype_name(t->dtype), nl_st_dtype_name(want));
            break;
        }
        const nl_tensor *v = &p->var.val;
        int same = t->ndim == v->ndim;
        for (int d = 0; same && d < t->ndim; d++) same = t->shape[d] == v->shape[d];
        if (!same) {
            char a[160], b[160];
            shape_str(a, sizeof a, t->ndim, t->shape);
            shape_str(b, sizeof b, v->ndim, v->shape);
            st = nl_set_error(NL_ESHAPE, "load %s: tensor '%s' has shape %s but the parameter has shape %s", path, t->name,
                              a, b);
            break;
        }
        match[i] = p;
    }
    if (!st && strict)
        for (int j = 0; j < ps->n; j++)
            if (!nl_safetensors_find(&f, ps->p[j]->name)) {
                st = nl_set_error(NL_EFORMAT, "load %s: parameter '%s' is missing from the file (strict load)", path,
                                  ps->p[j]->name);
                break;
            }
    if (!st) {
        int cnt = 0;
        for (int i = 0; i < f.n; i++)
            if (match[i]) {
                memcpy((char *)ps->data + (size_t)match[i]->offset * nl_dtype_size(ps->dtype), f.t[i].data,
                       (size_t)(f.t[i].end - f.t[i].begin));
                cnt++;
            }
        if (n_loaded) *n_loaded = cnt;
    }
    free(match);
    nl_safetensors_close(&f);
    return st;
}
