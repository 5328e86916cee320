/* safetensors: round trips (f32/f64 stores, metadata), a hand-built file per the published layout, the exact
 * bytes the writer produces, adversarial files (every truncation, bad headers, bad ranges), strict loading, and
 * atomic replacement (failures keep the old file and leave no temp files). */
#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "nltest.h"
#include "nnlab/safetensors.h"

static char g_dir[] = "/tmp/nl_test_st_XXXXXX";

static const char *path_in(const char *name) {
    static char buf[4][256];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, 256, "%s/%s", g_dir, name);
    return p;
}

static int contains(const char *s, const char *sub) { return strstr(s, sub) != NULL; }

/* Count files in dir whose name contains ".tmp." */
static int count_temps(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    if (!d) return -1;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) n++;
    closedir(d);
    return n;
}

static void make_store(nl_params *ps, nl_dtype dt, double scale) {
    nl_params_init(ps, dt);
    int64_t sw[2] = {3, 4}, sb[1] = {4};
    nl_var *w = nl_params_add(ps, "layer0.weight", 2, sw);
    nl_var *b = nl_params_add(ps, "layer0.bias", 1, sb);
    nl_var *s = nl_params_add(ps, "scale", 0, NULL);
    for (int i = 0; i < 12; i++) nl_tensor_set(&w->val, i, scale * (i - 5.5) / 3.0);
    for (int i = 0; i < 4; i++) nl_tensor_set(&b->val, i, scale * (0.1 + i));
    nl_tensor_set(&s->val, 0, scale * 2.718281828459045);
}

static int stores_equal(const nl_params *a, const nl_params *b) {
    if (a->n != b->n || a->dtype != b->dtype) return 0;
    for (int i = 0; i < a->n; i++) {
        const nl_param *p = a->p[i], *q = nl_params_find(b, p->name);
        if (!q || q->numel != p->numel) return 0;
        size_t es = nl_dtype_size(a->dtype);
        if (memcmp(p->var.val.data, q->var.val.data, (size_t)p->numel * es)) return 0;
    }
    return 1;
}

/* ---- round trips ---- */
static void test_round_trip(void) {
    for (int k = 0; k < 2; k++) {
        nl_dtype dt = k ? NL_F64 : NL_F32;
        nl_params a, b;
        make_store(&a, dt, 1.0);
        make_store(&b, dt, 0.0);
        const char *p = path_in(k ? "rt64.safetensors" : "rt32.safetensors");
        NLT_OK(nl_safetensors_save(p, &a, "{\"epoch\": \"3\", \"note\": \"q\\\"uote\"}"));
        NLT_CHECK(!stores_equal(&a, &b), "stores differ before load");
        int nl = -1;
        NLT_OK(nl_safetensors_load_params(p, &b, 1, &nl));
        NLT_CHECK(nl == 3, "loaded %d", nl);
        NLT_CHECK(stores_equal(&a, &b), "bit-exact round trip (%s)", nl_dtype_name(dt));
        nl_st_file f;
        NLT_OK(nl_safetensors_open(p, &f));
        NLT_CHECK(f.n == 3 && (8 + f.header_len) % 8 == 0, "n=%d header %llu", f.n, (unsigned long long)f.header_len);
        const char *e = nl_safetensors_get_metadata(&f, "epoch");
        const char *q = nl_safetensors_get_metadata(&f, "note");
        NLT_CHECK(e && !strcmp(e, "3") && q && !strcmp(q, "q\"uote") && !nl_safetensors_get_metadata(&f, "x"),
                  "metadata");
        long long iv = -1;
        double dv = -1;
        NLT_OK(nl_safetensors_metadata_int(&f, "epoch", 0, 10, &iv));
        NLT_CHECK(iv == 3, "metadata_int %lld", iv);
        NLT_OK(nl_safetensors_metadata_num(&f, "epoch", &dv));
        NLT_CHECK(dv == 3.0, "metadata_num %g", dv);
        NLT_CHECK(nl_safetensors_metadata_int(&f, "epoch", 4, 10, &iv) == NL_EFORMAT && strstr(nl_last_error(), "[4, 10]"),
                  "out of range: %s", nl_last_error());
        NLT_CHECK(nl_safetensors_metadata_num(&f, "note", &dv) == NL_EFORMAT && strstr(nl_last_error(), "note"),
                  "not a number: %s", nl_last_error());
        NLT_CHECK(nl_safetensors_metadata_int(&f, "x", 0, 1, &iv) == NL_EFORMAT && strstr(nl_last_error(), "lacks \"x\""),
                  "missing key: %s", nl_last_error());
        /* wrapping the previous message in a new one (the arguments alias the error buffer) */
        nl_set_error(NL_EFORMAT, "%s | %s", "outer", nl_last_error());
        NLT_CHECK(!strncmp(nl_last_error(), "outer | ", 8) && strstr(nl_last_error(), "lacks \"x\""), "wrap: %s",
                  nl_last_error());
        const nl_st_tensor *w = nl_safetensors_find(&f, "layer0.weight");
        NLT_CHECK(w && w->dtype == (k ? NL_ST_F64 : NL_ST_F32) && w->ndim == 2 && w->shape[0] == 3 && w->shape[1] == 4,
                  "weight entry");
        const nl_st_tensor *s = nl_safetensors_find(&f, "scale");
        NLT_CHECK(s && s->ndim == 0 && s->numel == 1, "scalar entry");
        if (w) {
            double v[12];
            NLT_OK(nl_st_tensor_convert(w, v, NL_F64));
            NLT_NEAR(v[11], (11 - 5.5) / 3.0, k ? 0 : 1e-7);
            NLT_CHECK(((uintptr_t)w->data % 8) == 0, "aligned data pointer");
        }
        nl_safetensors_close(&f);
        nl_params_free(&a);
        nl_params_free(&b);
        unlink(p);
    }
    /* no metadata */
    nl_params a;
    make_store(&a, NL_F32, 1.0);
    const char *p = path_in("nometa.safetensors");
    NLT_OK(nl_safetensors_save(p, &a, NULL));
    nl_st_file f;
    NLT_OK(nl_safetensors_open(p, &f));
    NLT_CHECK(f.n_meta == 0 && f.n == 3, "no metadata");
    nl_safetensors_close(&f);
    NLT_CHECK(nl_safetensors_save(p, &a, "[1,2]") == NL_EINVAL, "metadata must be an object");
    NLT_CHECK(nl_safetensors_save(p, &a, "{\"a\": 1}") == NL_EINVAL, "metadata values must be strings");
    nl_params_free(&a);
    unlink(p);
}

/* The low-level writer: exact bytes, other dtypes, zero-size tensors. */
static void test_writer_bytes(void) {
    const char *p = path_in("bytes.safetensors");
    float x[2] = {1.0f, -2.5f};
    int64_t sx[1] = {2};
    nl_st_entry e[1] = {{"x", NL_ST_F32, 1, sx, x}};
    NLT_OK(nl_safetensors_write(p, e, 1, "{\"k\":\"v\"}"));
    unsigned char buf[256];
    FILE *fp = fopen(p, "rb");
    size_t n = fp ? fread(buf, 1, sizeof buf, fp) : 0;
    if (fp) fclose(fp);
    const char *json = "{\"__metadata__\":{\"k\":\"v\"},\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    size_t jl = strlen(json), hl = (jl + 7) / 8 * 8;
    NLT_CHECK(n == 8 + hl + 8, "file size %zu, want %zu", n, 8 + hl + 8);
    uint64_t h = 0;
    for (int i = 7; i >= 0; i--) h = (h << 8) | buf[i];
    NLT_CHECK(h == hl, "header length %llu", (unsigned long long)h);
    NLT_CHECK(n >= 8 + hl && memcmp(buf + 8, json, jl) == 0, "header JSON '%.*s'", (int)jl, buf + 8);
    int pad_ok = 1;
    for (size_t i = 8 + jl; i < 8 + hl && i < n; i++) pad_ok &= buf[i] == ' ';
    NLT_CHECK(pad_ok, "space padding");
    const unsigned char le[8] = {0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x20, 0xc0};
    NLT_CHECK(n == 8 + hl + 8 && memcmp(buf + 8 + hl, le, 8) == 0, "little-endian f32 data");
    /* mixed dtypes and a zero-size tensor */
    int32_t iv[3] = {-7, 0, 123456789};
    uint8_t u[2] = {200, 1};
    int64_t si[1] = {3}, su[2] = {2, 1}, sz[2] = {0, 3};
    nl_st_entry m[3] = {{"ints", NL_ST_I32, 1, si, iv}, {"bytes", NL_ST_U8, 2, su, u}, {"empty", NL_ST_F32, 2, sz, NULL}};
    NLT_OK(nl_safetensors_write(p, m, 3, NULL));
    nl_st_file f;
    NLT_OK(nl_safetensors_open(p, &f));
    const nl_st_tensor *ti = nl_safetensors_find(&f, "ints"), *tu = nl_safetensors_find(&f, "bytes"),
                       *te = nl_safetensors_find(&f, "empty");
    NLT_CHECK(ti && tu && te && te->numel == 0 && te->begin == te->end, "entries");
    if (ti && tu) {
        double v[3];
        NLT_OK(nl_st_tensor_convert(ti, v, NL_F64));
        NLT_CHECK(v[0] == -7 && v[2] == 123456789, "I32 values");
        float fu[2];
        NLT_OK(nl_st_tensor_convert(tu, fu, NL_F32));
        NLT_CHECK(fu[0] == 200 && fu[1] == 1, "U8 values");
    }
    nl_safetensors_close(&f);
    nl_st_entry dup[2] = {{"a", NL_ST_U8, 1, si, u}, {"a", NL_ST_U8, 1, si, u}};
    int64_t one[1] = {1};
    dup[0].shape = dup[1].shape = one;
    NLT_CHECK(nl_safetensors_write(p, dup, 2, NULL) == NL_EINVAL && contains(nl_last_error(), "duplicate"), "%s",
              nl_last_error());
    nl_st_entry bad = {"__metadata__", NL_ST_U8, 1, one, u};
    NLT_CHECK(nl_safetensors_write(p, &bad, 1, NULL) == NL_EINVAL, "reserved name");
    unlink(p);
}

/* ---- a file built byte by byte from the published layout ---- */
static size_t build_file(unsigned char *out, const char *json, const unsigned char *data, size_t dlen) {
    size_t n = strlen(json);
    for (int i = 0; i < 8; i++) out[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(out + 8, json, n);
    if (dlen) memcpy(out + 8 + n, data, dlen);
    return 8 + n + dlen;
}

static void test_hand_built(void) {
    /* unpadded header (data section at an odd offset), tensors listed out of offset order, several dtypes */
    const char *json =
        "{\"b\":{\"dtype\":\"F64\",\"shape\":[1,1],\"data_offsets\":[8,16]},"
        "\"__metadata__\":{\"format\":\"pt\"},"
        "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
        "\"c\":{\"dtype\":\"I32\",\"shape\":[],\"data_offsets\":[16,20]},"
        "\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[20,24]},"
        "\"g\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[24,26]},"
        "\"u\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[26,28]},"
        "\"l\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[28,36]}}";
    const unsigned char data[36] = {
        0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x20, 0xc0,             /* a: 1.0f, -2.5f */
        0x9a, 0x99, 0x99, 0x99, 0x99, 0x99, 0xb9, 0x3f,             /* b: 0.1 */
        0xf9, 0xff, 0xff, 0xff,                                     /* c: -7 */
        0x00, 0x3e, 0x01, 0x00,                                     /* h: 1.5, 2^-24 (subnormal) */
        0x00, 0xc0,                                                 /* g: -2.0 */
        0xc8, 0x01,                                                 /* u: 200, 1 */
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};            /* l: -1 */
    unsigned char buf[1024];
    size_t n = build_file(buf, json, data, sizeof data);
    const char *p = path_in("hand.safetensors");
    FILE *fp = fopen(p, "wb");
    fwrite(buf, 1, n, fp);
    fclose(fp);
    nl_st_file f;
    NLT_OK(nl_safetensors_open(p, &f));
    NLT_CHECK(f.n == 7 && f.data_len == 36 && f.header_len == strlen(json), "counts n=%d", f.n);
    NLT_CHECK(f.n == 7 && !strcmp(f.t[0].name, "a") && !strcmp(f.t[1].name, "b"), "sorted by offset");
    const char *fm = nl_safetensors_get_metadata(&f, "format");
    NLT_CHECK(fm && !strcmp(fm, "pt"), "metadata");
    struct {
        const char *name;
        double v0, v1;
    } want[] = {{"a", 1.0, -2.5}, {"b", 0.1, 0}, {"c", -7, 0}, {"h", 1.5, 5.9604644775390625e-08},
                {"g", -2.0, 0},   {"u", 200, 1}, {"l", -1, 0}};
    for (int i = 0; i < 7; i++) {
        const nl_st_tensor *t = nl_safetensors_find(&f, want[i].name);
        NLT_CHECK(t != NULL, "tensor %s", want[i].name);
        if (!t) continue;
        double v[2] = {0, 0};
        NLT_OK(nl_st_tensor_convert(t, v, NL_F64));
        NLT_CHECK(v[0] == want[i].v0 && (t->numel < 2 || v[1] == want[i].v1), "%s = %.17g %.17g", want[i].name, v[0],
                  v[1]);
    }
    const nl_st_tensor *c = nl_safetensors_find(&f, "c");
    NLT_CHECK(c && c->ndim == 0 && c->numel == 1 && c->dtype == NL_ST_I32, "scalar I32");
    nl_safetensors_close(&f);
    /* the same bytes through the in-memory parser */
    NLT_OK(nl_safetensors_parse(buf, n, "mem", &f));
    NLT_CHECK(f.n == 7, "parse from memory");
    nl_safetensors_close(&f);

    /* load_params accepts only the store dtype: file a (F32) into an F32 store works; b (F64) does not */
    nl_params ps;
    nl_params_init(&ps, NL_F32);
    int64_t s2[1] = {2};
    nl_var *a = nl_params_add(&ps, "a", 1, s2);
    int nl = 0;
    NLT_OK(nl_safetensors_load_params(p, &ps, 0, &nl));
    NLT_CHECK(nl == 1 && ((float *)a->val.data)[1] == -2.5f, "non-strict load of 'a'");
    NLT_CHECK(nl_safetensors_load_params(p, &ps, 1, NULL) == NL_EFORMAT && contains(nl_last_error(), "'b'"), "%s",
              nl_last_error());
    int64_t s11[2] = {1, 1};
    nl_params_add(&ps, "b", 2, s11);
    NLT_CHECK(nl_safetensors_load_params(p, &ps, 0, NULL) == NL_EDTYPE && contains(nl_last_error(), "'b'") &&
                  contains(nl_last_error(), "F64"),
              "%s", nl_last_error());
    nl_params_free(&ps);
    unlink(p);
}

/* ---- strict / non-strict load mismatches ---- */
static void test_load_mismatch(void) {
    nl_params a;
    make_store(&a, NL_F32, 1.0);
    const char *p = path_in("m.safetensors");
    NLT_OK(nl_safetensors_save(p, &a, NULL));
    /* missing parameter in the file */
    nl_params b;
    make_store(&b, NL_F32, 0.0);
    int64_t s3[1] = {3};
    nl_params_add(&b, "extra.param", 1, s3);
    NLT_CHECK(nl_safetensors_load_params(p, &b, 1, NULL) == NL_EFORMAT && contains(nl_last_error(), "'extra.param'") &&
                  contains(nl_last_error(), "missing"),
              "%s", nl_last_error());
    NLT_CHECK(((float *)b.p[0]->var.val.data)[0] == 0.0f, "nothing copied on failure");
    int nl = 0;
    NLT_OK(nl_safetensors_load_params(p, &b, 0, &nl));
    NLT_CHECK(nl == 3 && ((float *)b.p[0]->var.val.data)[1] == ((float *)a.p[0]->var.val.data)[1], "non-strict loads 3");
    nl_params_free(&b);
    /* extra tensor in the file */
    nl_params_init(&b, NL_F32);
    int64_t sb[1] = {4};
    nl_params_add(&b, "layer0.bias", 1, sb);
    NLT_CHECK(nl_safetensors_load_params(p, &b, 1, NULL) == NL_EFORMAT && contains(nl_last_error(), "no matching"),
              "%s", nl_last_error());
    NLT_OK(nl_safetensors_load_params(p, &b, 0, &nl));
    NLT_CHECK(nl == 1, "one matching");
    nl_params_free(&b);
    /* shape mismatch */
    nl_params_init(&b, NL_F32);
    int64_t sw[2] = {4, 3};
    nl_params_add(&b, "layer0.weight", 2, sw);
    NLT_CHECK(nl_safetensors_load_params(p, &b, 0, NULL) == NL_ESHAPE && contains(nl_last_error(), "[3,4]") &&
                  contains(nl_last_error(), "[4,3]"),
              "%s", nl_last_error());
    nl_params_free(&b);
    /* dtype mismatch */
    make_store(&b, NL_F64, 0.0);
    NLT_CHECK(nl_safetensors_load_params(p, &b, 1, NULL) == NL_EDTYPE, "%s", nl_last_error());
    nl_params_free(&b);
    NLT_CHECK(nl_safetensors_load_params(path_in("nope.safetensors"), &a, 1, NULL) == NL_ENOTFOUND, "missing file");
    nl_params_free(&a);
    unlink(p);
}

/* ---- adversarial files ---- */
static nl_status parse_json(const char *json, const unsigned char *data, size_t dlen) {
    static unsigned char buf[4096];
    size_t n = build_file(buf, json, data, dlen);
    nl_st_file f;
    nl_status s = nl_safetensors_parse(buf, n, "adv", &f);
    if (s == NL_OK) nl_safetensors_close(&f);
    else if (f.t || f.data || f.path) return NL_STATUS_COUNT; /* must be zeroed on error */
    return s;
}

#define BAD(json, dlen, sub)                                                                                   \
    do {                                                                                                       \
        nl_status s_ = parse_json(json, zeros, dlen);                                                          \
        NLT_CHECK(s_ == NL_EFORMAT && contains(nl_last_error(), sub), "%s -> %s: %s (want '%s')", json,         \
                  nl_status_name(s_), nl_last_error(), sub);                                                   \
    } while (0)

static void test_adversarial(void) {
    static const unsigned char zeros[64] = {0};
    /* sanity: the base case is valid */
    NLT_OK(parse_json("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", zeros, 8));
    NLT_OK(parse_json("{}", zeros, 0));
    /* header JSON problems */
    BAD("", 0, "header length is 0");
    BAD("{\"a\":", 0, "not valid JSON");
    BAD("[1,2]", 0, "not a JSON object");
    BAD("{} x", 0, "unexpected bytes after");
    BAD("{}{}", 0, "unexpected bytes after");
    BAD("{\"\xff\":1}", 0, "UTF-8");
    BAD("{\"a\":[1]}", 0, "'a': entry is not a JSON object");
    /* missing fields / wrong types */
    BAD("{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "'a': missing \"dtype\"");
    BAD("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, "'a': missing \"shape\"");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "'a': missing \"data_offsets\"");
    BAD("{\"a\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "dtype is not a string");
    BAD("{\"a\":{\"dtype\":\"F128\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "unsupported dtype 'F128'");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":\"2\",\"data_offsets\":[0,8]}}", 8, "shape is not an array");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "not a non-negative integer");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,8]}}", 8, "not a non-negative integer");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8, "not a non-negative integer");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, "9 dimensions");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,8]}}", 8,
        "too large");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,9]}}", 8, "two non-negative integers");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":\"0-8\"}}", 8, "two non-negative integers");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", 8, "two non-negative integers");
    /* byte ranges */
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,12]}}", 12, "'a': data_offsets cover 12 bytes");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "begin 8 > end 0");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "out of bounds");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[1000000,1000008]}}", 8, "out of bounds");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
        12, "overlap");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
        8, "overlap");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}}",
        16, "hole of 4");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "hole of 4");
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 9, "trailing unindexed");
    BAD("{}", 3, "trailing unindexed");
    /* names */
    BAD("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
        "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
        8, "duplicate tensor name 'a'");
    /* metadata */
    BAD("{\"__metadata__\":[\"x\"]}", 0, "__metadata__ must be an object");
    BAD("{\"__metadata__\":{\"k\":1}}", 0, "key 'k' is not a string");
    BAD("{\"__metadata__\":{\"k\":{\"x\":\"y\"}}}", 0, "key 'k' is not a string");
    BAD("{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", 0, "duplicate __metadata__ key");
    BAD("{\"__metadata__\":{},\"__metadata__\":{}}", 0, "duplicate __metadata__");

    /* header length field problems */
    unsigned char b[64];
    memset(b, 0, sizeof b);
    nl_st_file f;
    NLT_CHECK(nl_safetensors_parse(b, 7, "short", &f) == NL_EFORMAT && contains(nl_last_error(), "too short"), "%s",
              nl_last_error());
    b[7] = 0x80; /* 2^63 */
    NLT_CHECK(nl_safetensors_parse(b, 64, "huge", &f) == NL_EFORMAT && contains(nl_last_error(), "exceeds the limit"),
              "%s", nl_last_error());
    memset(b, 0, 8);
    b[0] = 0x00, b[1] = 0xe1, b[2] = 0xf5, b[3] = 0x05; /* 100000000 = the limit: then exceeds the file */
    NLT_CHECK(nl_safetensors_parse(b, 64, "limit", &f) == NL_EFORMAT && contains(nl_last_error(), "file truncated"),
              "%s", nl_last_error());
    b[0] = 0x01; /* 100000001 */
    NLT_CHECK(nl_safetensors_parse(b, 64, "limit+1", &f) == NL_EFORMAT && contains(nl_last_error(), "exceeds the limit"),
              "%s", nl_last_error());
    memset(b, 0, 8);
    b[0] = 57; /* 57 > 64 - 8 */
    NLT_CHECK(nl_safetensors_parse(b, 64, "over", &f) == NL_EFORMAT && contains(nl_last_error(), "exceeds the 56"), "%s",
              nl_last_error());
}

/* Truncating a valid file at every byte gives NL_EFORMAT each time (never a crash or a partial success). */
static void test_truncation_every_byte(void) {
    nl_params a;
    make_store(&a, NL_F64, 1.0);
    const char *p = path_in("full.safetensors");
    NLT_OK(nl_safetensors_save(p, &a, "{\"k\":\"v\"}"));
    unsigned char buf[2048];
    FILE *fp = fopen(p, "rb");
    size_t n = fp ? fread(buf, 1, sizeof buf, fp) : 0;
    if (fp) fclose(fp);
    NLT_CHECK(n > 100 && n < sizeof buf, "size %zu", n);
    const char *q = path_in("cut.safetensors");
    int bad = 0;
    for (size_t cut = 0; cut < n; cut++) {
        fp = fopen(q, "wb");
        fwrite(buf, 1, cut, fp);
        fclose(fp);
        nl_st_file f;
        nl_status s = nl_safetensors_open(q, &f);
        if (s != NL_EFORMAT || f.t || f.data) {
            bad++;
            if (bad < 4) NLT_CHECK(0, "cut %zu: %s: %s", cut, nl_status_name(s), nl_last_error());
            if (s == NL_OK) nl_safetensors_close(&f);
        }
        /* the loader rejects it as well and leaves the store untouched */
        nl_params z;
        make_store(&z, NL_F64, 0.0);
        if (nl_safetensors_load_params(q, &z, 0, NULL) == NL_OK) bad++;
        if (((double *)z.p[0]->var.val.data)[0] != 0.0) bad++;
        nl_params_free(&z);
    }
    NLT_CHECK(bad == 0, "%d truncations not rejected", bad);
    /* every single-bit flip in the header either parses to a valid file or fails cleanly */
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | buf[i];
    int ok = 0, fail = 0;
    for (size_t i = 0; i < 8 + hl; i++)
        for (int bit = 0; bit < 8; bit++) {
            buf[i] ^= (unsigned char)(1 << bit);
            nl_st_file f;
            nl_status s = nl_safetensors_parse(buf, n, "flip", &f);
            if (s == NL_OK) {
                ok++;
                nl_safetensors_close(&f);
            } else if (s == NL_EFORMAT && !f.t && !f.data) fail++;
            buf[i] ^= (unsigned char)(1 << bit);
        }
    NLT_CHECK(ok + fail == (int)(8 + hl) * 8, "bit flips: %d ok, %d rejected", ok, fail);
    nl_params_free(&a);
    unlink(p);
    unlink(q);
}

/* ---- atomic replacement ---- */
static void test_atomic(void) {
    char sub[300];
    snprintf(sub, sizeof sub, "%s/ro", g_dir);
    mkdir(sub, 0755);
    char p[400];
    snprintf(p, sizeof p, "%s/ckpt.safetensors", sub);
    nl_params a, b, c;
    make_store(&a, NL_F32, 1.0);
    make_store(&b, NL_F32, -3.0);
    NLT_OK(nl_safetensors_save(p, &a, NULL));
    chmod(p, 0640);
    NLT_OK(nl_safetensors_save(p, &a, NULL)); /* replacing keeps the permission bits */
    struct stat st;
    NLT_CHECK(stat(p, &st) == 0 && (st.st_mode & 0777) == 0640, "mode %o", st.st_mode & 0777);
    NLT_CHECK(count_temps(sub) == 0, "no temp files after success");

    /* 1. read-only directory (only meaningful when not root: root may write anyway) */
    if (geteuid() != 0) {
        chmod(sub, 0555);
        nl_status s = nl_safetensors_save(p, &b, NULL);
        chmod(sub, 0755);
        NLT_CHECK(s == NL_EIO && contains(nl_last_error(), "cannot create temporary file"), "%s: %s", nl_status_name(s),
                  nl_last_error());
        make_store(&c, NL_F32, 0.0);
        NLT_OK(nl_safetensors_load_params(p, &c, 1, NULL));
        NLT_CHECK(stores_equal(&a, &c), "old file intact after read-only failure");
        nl_params_free(&c);
        NLT_CHECK(count_temps(sub) == 0, "no temp files after read-only failure");
    } else {
        printf("  (running as root: read-only directory case replaced by the file-size-limit case below)\n");
    }

    /* 2. a write that fails part-way (file size limit, in a child process) keeps the old file */
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {64, 64};
        setrlimit(RLIMIT_FSIZE, &rl);
        nl_status s = nl_safetensors_save(p, &b, NULL);
        _exit(s == NL_EIO ? 0 : 1);
    }
    int status = -1;
    waitpid(pid, &status, 0);
    NLT_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child: save under a 64-byte file limit must fail (status %d)",
              status);
    make_store(&c, NL_F32, 0.0);
    NLT_OK(nl_safetensors_load_params(p, &c, 1, NULL));
    NLT_CHECK(stores_equal(&a, &c), "old file intact after a failed write");
    nl_params_free(&c);
    NLT_CHECK(count_temps(sub) == 0, "no temp files after a failed write");

    /* 3. target is a directory: rename fails, temp removed */
    char d[400];
    snprintf(d, sizeof d, "%s/adir", sub);
    mkdir(d, 0755);
    NLT_CHECK(nl_safetensors_save(d, &a, NULL) == NL_EIO && contains(nl_last_error(), "rename"), "%s", nl_last_error());
    NLT_CHECK(count_temps(sub) == 0, "no temp files after a failed rename");
    rmdir(d);
    /* 4. missing directory */
    NLT_CHECK(nl_safetensors_save("/nonexistent/dir/x.safetensors", &a, NULL) == NL_EIO, "%s", nl_last_error());

    /* success replaces the content */
    NLT_OK(nl_safetensors_save(p, &b, NULL));
    make_store(&c, NL_F32, 0.0);
    NLT_OK(nl_safetensors_load_params(p, &c, 1, NULL));
    NLT_CHECK(stores_equal(&b, &c), "new content after a successful save");
    nl_params_free(&c);
    NLT_CHECK(count_temps(sub) == 0, "no temp files");
    unlink(p);
    rmdir(sub);
    nl_params_free(&a);
    nl_params_free(&b);
}

/* ---- checkpoint metadata builder and readers ---- */
static void test_meta(void) {
    const double nums[] = {0.1, 1.0 / 3.0, -0.0, 5e-324, 1.7976931348623157e308, -2.5e-17, 1e22, 123456789.123456789};
    const int nn = (int)(sizeof nums / sizeof nums[0]);
    int64_t lst[3] = {1, 28, 28}, back[4];
    nl_st_meta m;
    NLT_OK(nl_st_meta_init(&m));
    NLT_OK(nl_st_meta_put_str(&m, "nnlab.model", "mlp"));
    NLT_OK(nl_st_meta_put_str(&m, "nnlab.note", "first"));
    NLT_OK(nl_st_meta_put_int(&m, "nnlab.classes", 10));
    NLT_OK(nl_st_meta_put_int(&m, "nnlab.big", -9223372036854775807LL - 1));
    NLT_OK(nl_st_meta_put_ints(&m, "nnlab.input", 3, lst));
    NLT_OK(nl_st_meta_put_str(&m, "nnlab.note", "café \"quoted\"")); /* replaces, moved to the end */
    char key[32];
    for (int i = 0; i < nn; i++) {
        snprintf(key, sizeof key, "test.num%d", i);
        NLT_OK(nl_st_meta_put_num(&m, key, nums[i]));
    }
    char *js = nl_st_meta_json(&m);
    NLT_CHECK(js != NULL, "json: %s", nl_last_error());
    NLT_CHECK(js && contains(js, "\"nnlab.model\":\"mlp\",\"nnlab.classes\":\"10\"") && contains(js, "\"nnlab.input\":\"1,28,28\"") &&
                  contains(js, "\"test.num0\":\"0.10000000000000001\"") && !contains(js, "first"),
              "json %s", js ? js : "(null)");
    nl_st_meta_free(&m);
    nl_st_meta_free(&m); /* safe twice */
    nl_params a;
    make_store(&a, NL_F32, 1.0);
    const char *p = path_in("meta.safetensors");
    NLT_OK(nl_safetensors_save(p, &a, js));
    free(js);
    nl_st_file f;
    NLT_OK(nl_safetensors_open(p, &f));
    const char *sv;
    long long iv;
    int n;
    NLT_OK(nl_safetensors_metadata_str(&f, "nnlab.model", &sv));
    NLT_CHECK(!strcmp(sv, "mlp"), "str %s", sv);
    NLT_OK(nl_safetensors_metadata_str(&f, "nnlab.note", &sv));
    NLT_CHECK(!strcmp(sv, "café \"quoted\"") && !strcmp(f.meta_key[f.n_meta - 1 - nn], "nnlab.note"), "replaced %s", sv);
    NLT_OK(nl_safetensors_metadata_int(&f, "nnlab.classes", 1, 100, &iv));
    NLT_CHECK(iv == 10, "int %lld", iv);
    NLT_OK(nl_safetensors_metadata_int(&f, "nnlab.big", LLONG_MIN, LLONG_MAX, &iv));
    NLT_CHECK(iv == LLONG_MIN, "int %lld", iv);
    NLT_OK(nl_safetensors_metadata_ints(&f, "nnlab.input", 1, 100, 4, back, &n));
    NLT_CHECK(n == 3 && back[0] == 1 && back[1] == 28 && back[2] == 28, "list n=%d", n);
    for (int i = 0; i < nn; i++) {
        double d = 1;
        snprintf(key, sizeof key, "test.num%d", i);
        NLT_OK(nl_safetensors_metadata_num(&f, key, &d));
        NLT_CHECK(!memcmp(&d, &nums[i], sizeof d), "%s: %.17g came back as %.17g", key, nums[i], d);
    }
    /* strict readers: missing keys and bad values name the file and the key */
    NLT_CHECK(nl_safetensors_metadata_str(&f, "nnlab.absent", &sv) == NL_EFORMAT && contains(nl_last_error(), "nnlab.absent") &&
                  contains(nl_last_error(), "meta.safetensors"), "%s", nl_last_error());
    NLT_CHECK(nl_safetensors_metadata_int(&f, "nnlab.classes", 11, 20, &iv) == NL_EFORMAT, "range");
    NLT_CHECK(nl_safetensors_metadata_int(&f, "nnlab.model", 0, 9, &iv) == NL_EFORMAT && contains(nl_last_error(), "nnlab.model"), "%s", nl_last_error());
    double dv;
    NLT_CHECK(nl_safetensors_metadata_num(&f, "nnlab.input", &dv) == NL_EFORMAT, "a list is not a number");
    NLT_CHECK(nl_safetensors_metadata_ints(&f, "nnlab.input", 1, 100, 2, back, &n) == NL_EFORMAT, "too many");
    NLT_CHECK(nl_safetensors_metadata_ints(&f, "nnlab.input", 2, 100, 4, back, &n) == NL_EFORMAT, "element range");
    NLT_CHECK(nl_safetensors_metadata_ints(&f, "nnlab.note", 0, 100, 4, back, &n) == NL_EFORMAT && contains(nl_last_error(), "nnlab.note"),
              "%s", nl_last_error());
    nl_safetensors_close(&f);
    unlink(p);
    nl_params_free(&a);

    /* non-finite numbers are refused, and the first failure sticks */
    NLT_OK(nl_st_meta_init(&m));
    NLT_CHECK(nl_st_meta_put_num(&m, "nnlab.x", NAN) == NL_EINVAL && contains(nl_last_error(), "nnlab.x"), "%s", nl_last_error());
    NLT_CHECK(nl_st_meta_put_str(&m, "nnlab.y", "ok") == NL_EINVAL && m.status == NL_EINVAL, "sticky");
    NLT_CHECK(nl_st_meta_json(&m) == NULL && contains(nl_last_error(), "nnlab.x"), "json after failure: %s", nl_last_error());
    nl_st_meta_free(&m);
    NLT_OK(nl_st_meta_init(&m));
    NLT_CHECK(nl_st_meta_put_num(&m, "nnlab.x", -INFINITY) == NL_EINVAL, "-inf");
    nl_st_meta_free(&m);
    NLT_OK(nl_st_meta_init(&m));
    NLT_CHECK(nl_st_meta_put_str(&m, "nnlab.x", NULL) == NL_EINVAL && nl_st_meta_put_str(&m, "", "v") == NL_EINVAL, "NULL value");
    nl_st_meta_free(&m);
}

static void test_mkdir_p(void) {
    char d[400], file[400], bad[512];
    snprintf(d, sizeof d, "%s/mk/a//b/c/", g_dir);
    NLT_OK(nl_mkdir_p(d));
    struct stat st;
    NLT_CHECK(stat(d, &st) == 0 && S_ISDIR(st.st_mode), "nested dirs created");
    NLT_OK(nl_mkdir_p(d)); /* existing: fine */
    snprintf(d, sizeof d, "%s/mk", g_dir);
    NLT_OK(nl_mkdir_p(d));
    snprintf(file, sizeof file, "%s/mk/file", g_dir);
    FILE *fp = fopen(file, "w");
    NLT_CHECK(fp != NULL, "create %s", file);
    if (fp) fclose(fp);
    snprintf(bad, sizeof bad, "%s/sub/dir", file);
    NLT_CHECK(nl_mkdir_p(bad) == NL_EIO && contains(nl_last_error(), "cannot create directory") && contains(nl_last_error(), "mk/file"),
              "through a file: %s", nl_last_error());
    NLT_CHECK(nl_mkdir_p(file) == NL_EIO && contains(nl_last_error(), "not a directory"), "a file: %s", nl_last_error());
    NLT_CHECK(nl_mkdir_p("") == NL_EINVAL, "empty path");
    unlink(file);
    const char *rm[] = {"mk/a/b/c", "mk/a/b", "mk/a", "mk"};
    for (int i = 0; i < 4; i++) {
        snprintf(d, sizeof d, "%s/%s", g_dir, rm[i]);
        NLT_CHECK(rmdir(d) == 0, "rmdir %s", d);
    }
}

int main(void) {
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    NLT_RUN(test_round_trip);
    NLT_RUN(test_writer_bytes);
    NLT_RUN(test_hand_built);
    NLT_RUN(test_load_mismatch);
    NLT_RUN(test_adversarial);
    NLT_RUN(test_truncation_every_byte);
    NLT_RUN(test_atomic);
    NLT_RUN(test_meta);
    NLT_RUN(test_mkdir_p);
    NLT_CHECK(count_temps(g_dir) == 0, "no temp files left in %s", g_dir);
    rmdir(g_dir);
    return nlt_finish();
}
