/* fuzz/make_seeds.c — writes the seed corpora of the fuzz targets (fuzz/make_seeds.sh runs it once; the files are
 * committed under fuzz/corpus/<target>/). Each corpus holds a few small valid files, written by the library's own
 * writers where there is one, and a few malformed ones (truncated, wrong sizes, bad JSON) that must be refused.
 *
 * usage: fuzz_make_seeds OUTDIR   (creates OUTDIR/<target>/ for every target) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>
#include "nnlab/model.h"
#include "nnlab/safetensors.h"
#include "transformer/transformer.h"
#include "pfn/pfn.h"
#include "bnn/bnn.h"
#include "biper/biper.h"

static const char *g_out;
static int g_fail;

static void check(nl_status s, const char *what) {
    if (s != NL_OK) {
        fprintf(stderr, "make_seeds: %s: %s\n", what, nl_last_error());
        g_fail = 1;
    }
}

static const char *pathof(const char *target, const char *name) {
    static char p[1024];
    snprintf(p, sizeof p, "%s/%s", g_out, target);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/%s/%s", g_out, target, name);
    return p;
}

static void put(const char *target, const char *name, const void *buf, size_t n) {
    FILE *f = fopen(pathof(target, name), "wb");
    if (!f || fwrite(buf, 1, n, f) != n || fclose(f)) {
        fprintf(stderr, "make_seeds: cannot write %s/%s\n", target, name);
        g_fail = 1;
    }
}

static void put_str(const char *target, const char *name, const char *s) { put(target, name, s, strlen(s)); }

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(len > 0 ? (size_t)len : 1);
    *n = b ? fread(b, 1, (size_t)len, f) : 0;
    fclose(f);
    return b;
}

/* A safetensors image from a header string and n data bytes (0x3f pattern). */
static void put_st(const char *target, const char *name, const char *header, size_t ndata) {
    size_t hl = strlen(header), n = 8 + hl + ndata;
    unsigned char *b = malloc(n);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, header, hl);
    memset(b + 8 + hl, 0x3f, ndata);
    put(target, name, b, n);
    free(b);
}

/* Variants of a valid file in the target's corpus: truncated in the data section, and the header length +1. */
static void put_broken_copies(const char *target, const char *name) {
    size_t n;
    unsigned char *b = slurp(pathof(target, name), &n);
    if (!b || n < 16) {
        free(b);
        return;
    }
    char nm[256];
    snprintf(nm, sizeof nm, "bad_truncated_%s", name);
    put(target, nm, b, n - 5);
    b[0]++;
    snprintf(nm, sizeof nm, "bad_hlen_%s", name);
    put(target, nm, b, n);
    free(b);
}

static void seeds_safetensors(void) {
    const char *T = "safetensors";
    float f32[6] = {1, -2, 3.5f, 0, 1e-3f, 7};
    double f64[2] = {0.25, -1e10};
    int64_t i64[3] = {1, -1, 1LL << 40};
    uint8_t u8[4] = {0, 1, 254, 255};
    uint16_t bf16[2] = {0x3f80, 0xc000};   /* 1, -2 */
    uint16_t f16[2] = {0x3c00, 0x7bff};    /* 1, 65504 */
    uint8_t b1[2] = {0, 1};
    int64_t s23[2] = {2, 3}, s2[1] = {2}, s3[1] = {3}, s4[1] = {4}, s0[2] = {0, 5};
    nl_st_entry e[] = {
        {"w", NL_ST_F32, 2, s23, f32},     {"d", NL_ST_F64, 1, s2, f64},  {"i", NL_ST_I64, 1, s3, i64},
        {"u", NL_ST_U8, 1, s4, u8},        {"bf", NL_ST_BF16, 1, s2, bf16}, {"h", NL_ST_F16, 1, s2, f16},
        {"b", NL_ST_BOOL, 1, s2, b1},      {"scalar", NL_ST_F32, 0, NULL, f32}, {"empty", NL_ST_F32, 2, s0, f32},
    };
    check(nl_safetensors_write(pathof(T, "dtypes.safetensors"), e, (int)(sizeof e / sizeof e[0]),
                               "{\"nnlab.model\":\"mlp\",\"n\":\"42\",\"x\":\"0.5\",\"l\":\"1,2,3\"}"),
          "safetensors dtypes");
    put_st(T, "min.safetensors", "{}", 0);
    put_st(T, "meta_only.safetensors", "{\"__metadata__\":{\"a\":\"1\",\"b\":\"x\"}}    ", 0);
    put_st(T, "one.safetensors", "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
    /* malformed */
    put_st(T, "bad_json.safetensors", "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 8);
    put_st(T, "bad_overlap.safetensors",
           "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
           "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[2,6]}}", 6);
    put_st(T, "bad_dup_dtype.safetensors",
           "{\"t\":{\"dtype\":\"F32\",\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4);
    put_st(T, "bad_nul_name.safetensors", "{\"a\\u0000b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1);
    put_st(T, "bad_shape.safetensors",
           "{\"t\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8);
}

static void seeds_idx(void) {
    const char *T = "idx";
    unsigned char labels[4 + 4 + 6] = {0, 0, 8, 1, 0, 0, 0, 6, 0, 1, 2, 3, 4, 9};
    put(T, "labels.idx", labels, sizeof labels);
    unsigned char img[4 + 12 + 18] = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 3};
    for (int i = 0; i < 18; i++) img[16 + i] = (unsigned char)(i * 14);
    put(T, "images.idx", img, sizeof img);
    /* the same images gzipped (what the MNIST packages ship) */
    const char *gzp = pathof(T, "images.idx.gz");
    gzFile gz = gzopen(gzp, "wb9");
    if (!gz || gzwrite(gz, img, sizeof img) != (int)sizeof img || gzclose(gz) != Z_OK) {
        fprintf(stderr, "make_seeds: cannot write %s\n", gzp);
        g_fail = 1;
    }
    /* malformed: wrong type byte, trailing byte, truncated data, zero size, truncated gzip */
    unsigned char bad[sizeof img + 1];
    memcpy(bad, img, sizeof img);
    bad[2] = 0x0d;
    put(T, "bad_type.idx", bad, sizeof img);
    memcpy(bad, img, sizeof img);
    bad[sizeof img] = 7;
    put(T, "bad_trailing.idx", bad, sizeof img + 1);
    put(T, "bad_truncated.idx", img, sizeof img - 3);
    unsigned char zero[8] = {0, 0, 8, 1, 0, 0, 0, 0};
    put(T, "bad_zero.idx", zero, sizeof zero);
    size_t n;
    unsigned char *g = slurp(gzp, &n);
    if (g && n > 12) put(T, "bad_truncated.idx.gz", g, n - 6);
    free(g);
}

static void seeds_csv(void) {
    const char *T = "csv";
    put_str(T, "header.csv", "x,y,label\n1,2,0\n3.5,-4e-3,1\n");
    put_str(T, "noheader.csv", "1,2,3\n4,5,6\n");
    put_str(T, "bom_header.csv", "\xEF\xBB\xBF\"a\",\"b\"\r\n1,2\r\n# comment\r\n\r\n 3 ,\t4\r\n");
    put_str(T, "bom_numeric.csv", "\xEF\xBB\xBF" "1,2\n3,4\n");
    put_str(T, "nonfinite.csv", "a,b\nnan,1\ninf,-inf\n1e999,2\n");
    put_str(T, "bad_ragged.csv", "a,b\n1,2\n3\n");
    put_str(T, "bad_field.csv", "1,2\n3,x4\n");
    put_str(T, "bad_empty.csv", "a,b\n");
}

static void seeds_model(void) {
    const char *T = "model_load";
    int64_t sizes[3] = {4, 3, 2};
    nl_model_config c = nl_mlp_config(3, sizes, NL_ACT_TANH, 0.1);
    nl_model m;
    if (!nl_model_init(&m, &c, 1)) {
        check(nl_model_save(&m, pathof(T, "mlp.safetensors"), 0, NULL, NULL), "mlp save");
        nl_model_free(&m);
    }
    c.dtype = NL_F64;
    c.act = NL_ACT_GELU;
    if (!nl_model_init(&m, &c, 2)) {
        const char *k[1] = {"note"}, *v[1] = {"seed"};
        check(nl_model_save(&m, pathof(T, "mlp_f64.safetensors"), 1, k, v), "mlp f64 save");
        nl_model_free(&m);
    }
    int ch[1] = {2};
    c = nl_cnn_config(1, 4, 4, 1, ch, 3, 2);
    check(nl_model_init(&m, &c, 3), "cnn init");
    if (!g_fail) {
        check(nl_model_save(&m, pathof(T, "cnn.safetensors"), 0, NULL, NULL), "cnn save");
        nl_model_free(&m);
    }
    put_broken_copies(T, "mlp.safetensors");
}

static void seeds_lm(void) {
    const char *T = "lm_load";
    nl_lm_config c = nl_lm_config_default();
    c.context = 8;
    c.n_layers = 1;
    c.d_model = 8;
    c.n_heads = 2;
    c.d_ff = 8;
    nl_lm m;
    check(nl_lm_init(&m, &c, 1), "lm init");
    if (!g_fail) {
        check(nl_lm_save(&m, pathof(T, "lm.safetensors")), "lm save");
        nl_lm_free(&m);
    }
    c.vocab = 16;
    c.tie_weights = 0;
    c.norm = NL_LM_NORM_RMS;
    c.rope.variant = NL_ROPE_XPOS;
    if (!nl_lm_init(&m, &c, 2)) {
        check(nl_lm_save(&m, pathof(T, "lm_untied_rms.safetensors")), "lm save 2");
        nl_lm_free(&m);
    }
    c.norm = NL_LM_NORM_POWER;
    c.rope.variant = NL_ROPE_PLAIN;
    if (!nl_lm_init(&m, &c, 3)) {
        check(nl_lm_save(&m, pathof(T, "lm_powernorm.safetensors")), "lm save 3");
        nl_lm_free(&m);
    }
    put_broken_copies(T, "lm.safetensors");
}

static void seeds_pfn(void) {
    const char *T = "pfn_load";
    nl_pfn_config c = nl_pfn_config_default();
    c.emsize = 8;
    c.n_layers = 1;
    c.n_heads = 2;
    c.d_ff = 8;
    c.d_dec = 8;
    c.n_buckets = 4;
    c.seq = 6;
    double borders[5] = {-2, -1, 0, 1, 2};
    nl_pfn m;
    check(nl_pfn_init(&m, &c, borders, 1), "pfn init");
    if (!g_fail) {
        snprintf(m.prior_name, sizeof m.prior_name, "gp");
        snprintf(m.prior_desc, sizeof m.prior_desc, "GP rbf ls 0.5");
        m.prior_ls = 0.5;
        m.prior_os = 1;
        m.prior_noise = 1e-4;
        check(nl_pfn_save(&m, pathof(T, "pfn.safetensors")), "pfn save");
        nl_pfn_free(&m);
    }
    c.pre_norm = 1;
    c.dim = 2;
    if (!nl_pfn_init(&m, &c, borders, 2)) {
        check(nl_pfn_save(&m, pathof(T, "pfn_prenorm.safetensors")), "pfn save 2");
        nl_pfn_free(&m);
    }
    put_broken_copies(T, "pfn.safetensors");
}

/* lib/bnn packed models: one layer of every kind / dtype pairing (odd bit lengths, so tails matter), a biper network
 * exported by nl_biper_export (channels 2 / 4, what nl_biper_packed_load accepts), and broken copies: truncated,
 * bad magic, one data byte changed (CRC mismatch). */
static void seeds_bnn(void) {
    const char *T = "bnn_load";
    nl_bnn_model m;
    nl_bnn_model_init(&m);
    uint64_t bits[2 * 2] = {0x5aULL, 0x1ULL, 0x7fULL, 0x0ULL}; /* [2, 70] packed: 2 words per row, tails zero */
    bits[1] &= 0x3f, bits[3] &= 0x3f;
    int32_t th[3 * 2] = {0, 0, -5, 1, 7, 0};                      /* [3, 2] (t, flip) */
    float fl[4] = {0.5f, -1.0f, 2.0f, 0.0f};
    int32_t pp[8] = {2, 2, 0, 0, 0, 0, 0, 0};
    check(nl_bnn_model_add(&m, NL_BNN_L_DENSE, "dense", NL_BNN_BITS, 2, (int64_t[]){2, 70}, NULL, bits, NULL), "bnn dense");
    check(nl_bnn_model_add(&m, NL_BNN_L_CONV, "conv", NL_BNN_BITS, 4, (int64_t[]){2, 3, 3, 5}, pp, NULL, NULL), "bnn conv");
    check(nl_bnn_model_add(&m, NL_BNN_L_THRESH, "thresh", NL_BNN_I32, 2, (int64_t[]){3, 2}, NULL, th, NULL), "bnn thresh");
    check(nl_bnn_model_add(&m, NL_BNN_L_POOL, "pool", NL_BNN_I32, 1, (int64_t[]){0}, pp, NULL, NULL), "bnn pool");
    check(nl_bnn_model_add(&m, NL_BNN_L_FLOAT, "float", NL_BNN_F32, 2, (int64_t[]){2, 2}, NULL, fl, NULL), "bnn float");
    check(nl_bnn_model_add(&m, NL_BNN_L_INT, "int", NL_BNN_I32, 1, (int64_t[]){3}, NULL, th, NULL), "bnn int");
    if (!g_fail) check(nl_bnn_model_save(&m, pathof(T, "kinds.bnn")), "bnn save");
    nl_bnn_model_free(&m);
    nl_biper_net net;
    nl_biper_config cfg = nl_biper_defaults();
    cfg.c1 = 2, cfg.c = 4;
    check(nl_biper_net_init(&net, cfg.c1, cfg.c, 5), "biper net init");
    if (!g_fail) {
        nl_biper_packed *p = NULL;
        check(nl_biper_export(&net, &cfg, &p), "biper export");
        if (p) check(nl_biper_packed_save(p, pathof(T, "biper_2_4.bnn")), "biper packed save");
        nl_biper_packed_free(p);
        nl_biper_net_free(&net);
    }
    size_t n;
    unsigned char *b = slurp(pathof(T, "kinds.bnn"), &n);
    if (b && n > 200) {
        put(T, "bad_truncated_kinds.bnn", b, n - 5);
        b[0]++;
        put(T, "bad_magic_kinds.bnn", b, n);
    }
    free(b);
    b = slurp(pathof(T, "biper_2_4.bnn"), &n);
    if (b && n > 200) {
        b[n - 1] ^= 0x40;
        put(T, "bad_crc_biper_2_4.bnn", b, n);
    }
    free(b);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
        return 2;
    }
    g_out = argv[1];
    mkdir(g_out, 0755);
    nl_set_num_threads(1);
    seeds_safetensors();
    seeds_idx();
    seeds_csv();
    seeds_model();
    seeds_lm();
    seeds_pfn();
    seeds_bnn();
    return g_fail ? 1 : 0;
}
