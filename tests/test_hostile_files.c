/* Hostile files against the parsers and file handling (issue 13, items 3-5 and the IDX/FIFO cases of resource
 * use): safetensors strictness (escaped NUL, control characters, duplicated fields, O(n log n) duplicate keys),
 * FIFOs and devices refused before opening (safetensors, IDX, CSV), the IDX geometry checked before inflating a
 * gzip bomb, CSV BOM and header rule, atomic writes (stale temps, umask, symlinks). Every input is made here,
 * in a temp directory. */
#include "nltest.h"
#include "nnlab/data.h"
#include "nnlab/safetensors.h"
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

static char g_dir[] = "/tmp/nl_test_hostile_XXXXXX";

static const char *path_in(const char *name) {
    static char buf[64][512]; /* a ring: callers keep at most a few paths at once */
    static int k;
    k = (k + 1) % 64;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

static int contains(const char *s, const char *sub) { return strstr(s, sub) != NULL; }

static void write_file(const char *p, const void *b, size_t n) {
    FILE *f = fopen(p, "wb");
    if (!f) return;
    if (n) fwrite(b, 1, n, f);
    fclose(f);
}

/* a safetensors image: 8-byte length, the header json (padded), data */
static nl_status parse_st(const char *json, size_t dlen, nl_st_file *f) {
    size_t hl = strlen(json);
    unsigned char *b = calloc(8 + hl + dlen + 1, 1);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, json, hl);
    nl_status s = nl_safetensors_parse(b, 8 + hl + dlen, "hostile", f);
    free(b);
    return s;
}

static void test_st_names(void) {
    nl_st_file f;
    /* an escaped NUL would truncate "a\u0000b" to "a" */
    nl_status s = parse_st("{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}", 4, &f);
    NLT_CHECK(s == NL_EFORMAT && contains(nl_last_error(), "escaped NUL"), "%s", nl_last_error());
    s = parse_st("{\"__metadata__\":{\"k\":\"v\\u0000x\"},\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}",
                 4, &f);
    NLT_CHECK(s == NL_EFORMAT && contains(nl_last_error(), "escaped NUL"), "NUL in a metadata value: %s", nl_last_error());
    /* an escaped backslash followed by the text u0000 is a normal name */
    s = parse_st("{\"a\\\\u0000\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}", 4, &f);
    NLT_CHECK(s == NL_OK && f.n == 1 && !strcmp(f.t[0].name, "a\\u0000"), "%s", nl_last_error());
    if (!s) nl_safetensors_close(&f);
    /* control characters in a tensor name or a metadata key */
    const char *ctl[] = {"{\"a\\u0001\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}",
                         "{\"a\\tb\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}",
                         "{\"a\\u007f\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}",
                         "{\"__metadata__\":{\"k\\n\":\"v\"},\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}"};
    for (int i = 0; i < 4; i++) {
        s = parse_st(ctl[i], 4, &f);
        NLT_CHECK(s == NL_EFORMAT && contains(nl_last_error(), "control character"), "case %d: %s", i, nl_last_error());
    }
    /* a newline in a metadata VALUE is fine */
    s = parse_st("{\"__metadata__\":{\"k\":\"two\\nlines\"},\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}",
                 4, &f);
    NLT_OK(s);
    if (!s) nl_safetensors_close(&f);
    /* the writer refuses what the reader would refuse */
    float v = 1;
    nl_st_entry e = {"bad\x01name", NL_ST_F32, 0, NULL, &v};
    NLT_CHECK(nl_safetensors_write(path_in("w.safetensors"), &e, 1, NULL) == NL_EINVAL, "writer: control character");
}

static void test_st_duplicate_fields(void) {
    nl_st_file f;
    const char *dup[] = {
        "{\"w\":{\"dtype\":\"F32\",\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"shape\":[2],\"data_offsets\":[0,4]}}",
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"data_offsets\":[0,4]}}",
    };
    const char *field[] = {"\"dtype\" appears twice", "\"shape\" appears twice", "\"data_offsets\" appears twice"};
    for (int i = 0; i < 3; i++) {
        nl_status s = parse_st(dup[i], 4, &f);
        NLT_CHECK(s == NL_EFORMAT && contains(nl_last_error(), field[i]), "case %d: %s", i, nl_last_error());
    }
    nl_status s = parse_st("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, &f);
    NLT_CHECK(s == NL_EFORMAT && contains(nl_last_error(), "duplicate __metadata__ key 'k'"), "%s", nl_last_error());
    s = parse_st("{\"__metadata__\":{},\"__metadata__\":{}}", 0, &f);
    NLT_CHECK(s == NL_EFORMAT && contains(nl_last_error(), "duplicate __metadata__"), "%s", nl_last_error());
    s = parse_st("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                 "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, &f);
    NLT_CHECK(s == NL_EFORMAT && contains(nl_last_error(), "duplicate tensor name 'w'"), "%s", nl_last_error());
}

/* 100000 metadata keys (about 1.9 MB of header): once 13-26 s with the quadratic check */
static void test_st_many_keys(void) {
    int nk = 100000;
    size_t cap = (size_t)nk * 24 + 64, n = 0;
    char *j = malloc(cap);
    n += (size_t)sprintf(j + n, "{\"__metadata__\":{");
    for (int i = 0; i < nk; i++) n += (size_t)sprintf(j + n, "%s\"key%08d\":\"v\"", i ? "," : "", i);
    n += (size_t)sprintf(j + n, "}}");
    nl_st_file f;
    double t0 = nl_time();
    nl_status s = parse_st(j, 0, &f);
    double t1 = nl_time() - t0;
    NLT_CHECK(s == NL_OK && f.n_meta == nk, "%s", nl_last_error());
    if (!s) nl_safetensors_close(&f);
    /* the same with the last key equal to the first: refused, as fast */
    memcpy(j + n - 19, "\"key00000000\"", 13);
    t0 = nl_time();
    s = parse_st(j, 0, &f);
    double t2 = nl_time() - t0;
    NLT_CHECK(s == NL_EFORMAT && contains(nl_last_error(), "duplicate __metadata__ key 'key00000000'"), "%s",
              nl_last_error());
    printf("  %d metadata keys (%zu-byte header): %.3f s accepted, %.3f s duplicate refused\n", nk, n, t1, t2);
    NLT_CHECK(t1 < 3 && t2 < 3, "too slow: %.2f s, %.2f s", t1, t2);
    free(j);
}

/* a FIFO (with no writer: opening it for reading would block forever) and /dev/zero are refused at once */
static void test_special_files(void) {
    const char *fifo = path_in("fifo");
    NLT_CHECK(mkfifo(fifo, 0600) == 0, "mkfifo");
    pid_t pid = fork();
    if (pid == 0) { /* the child does the opens; the parent kills it if it blocks */
        nl_st_file f;
        nl_idx m;
        nl_csv c;
        int ok = nl_safetensors_open(fifo, &f) == NL_EIO && contains(nl_last_error(), "FIFO");
        ok &= nl_idx_read(fifo, &m) == NL_EIO && contains(nl_last_error(), "not a regular file");
        ok &= nl_csv_read(fifo, &c, 0) == NL_EIO && contains(nl_last_error(), "FIFO");
        ok &= nl_csv_read("/dev/zero", &c, 0) == NL_EIO && contains(nl_last_error(), "character device");
        ok &= nl_idx_read("/dev/zero", &m) == NL_EIO;
        ok &= nl_safetensors_open(g_dir, &f) == NL_EIO && contains(nl_last_error(), "directory");
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    double t0 = nl_time();
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (nl_time() - t0 > 10) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            break;
        }
        usleep(10000);
    }
    NLT_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "special files not refused (status %d, %.1f s)", status,
              nl_time() - t0);
    unlink(fifo);
}

/* IDX: geometry before allocating / inflating */
static void idx_header(unsigned char *h, int ndim, const uint32_t *dims) {
    h[0] = h[1] = 0, h[2] = 8, h[3] = (unsigned char)ndim;
    for (int d = 0; d < ndim; d++)
        for (int b = 0; b < 4; b++) h[4 + 4 * d + b] = (unsigned char)(dims[d] >> (24 - 8 * b));
}

static void test_idx_bomb(void) {
    /* a gzip of a header claiming 2^31 - 1 bytes of labels followed by 16 MB of zeros (about 16 KB compressed):
     * more than deflate can expand, so refused before inflating */
    const char *p = path_in("bomb-labels-idx1-ubyte.gz");
    gzFile g = gzopen(p, "wb9");
    unsigned char h[8];
    uint32_t dims[1] = {0x7fffffffu};
    idx_header(h, 1, dims);
    gzwrite(g, h, 8);
    unsigned char *z = calloc(1 << 20, 1);
    for (int i = 0; i < 16; i++) gzwrite(g, z, 1 << 20);
    gzclose(g);
    nl_idx m;
    double t0 = nl_time();
    nl_status s = nl_idx_read(p, &m);
    double t = nl_time() - t0;
    NLT_CHECK(s == NL_EFORMAT && contains(nl_last_error(), "cannot come from"), "%s", nl_last_error());
    printf("  gzip bomb (%s): refused in %.4f s\n", p, t);
    NLT_CHECK(t < 1, "bomb took %.2f s", t);
    /* a real 2 GB-inflating bomb fits deflate's ratio: the caller's expected geometry refuses it before inflating */
    nl_idx_expect w = {.ndim = 1, .max_elems = 1000};
    t0 = nl_time();
    s = nl_idx_read_expect(p, &w, &m);
    NLT_CHECK(s == NL_EFORMAT && contains(nl_last_error(), "more than the limit of 1000") && nl_time() - t0 < 1, "%s",
              nl_last_error());
    w.max_elems = 0, w.ndim = 3;
    NLT_CHECK(nl_idx_read_expect(p, &w, &m) == NL_EFORMAT && contains(nl_last_error(), "1 IDX dimensions, expected 3"),
              "%s", nl_last_error());
    /* a plain file claiming more than it holds: refused from its size, nothing allocated */
    const char *q = path_in("big-images-idx3-ubyte");
    uint32_t d3[3] = {60000, 2000, 2000};
    unsigned char h3[16];
    idx_header(h3, 3, d3);
    write_file(q, h3, 16);
    NLT_CHECK(nl_idx_read(q, &m) == NL_EFORMAT && contains(nl_last_error(), "2^31"), "%s", nl_last_error());
    d3[1] = d3[2] = 100;
    idx_header(h3, 3, d3);
    write_file(q, h3, 16);
    NLT_CHECK(nl_idx_read(q, &m) == NL_EFORMAT && contains(nl_last_error(), "expected 600000000 bytes of image data, got 0"),
              "%s", nl_last_error());
    /* the dataset loader: images whose count disagrees with the labels, or over the dataset cap */
    const char *dl = path_in("train-labels-idx1-ubyte"), *di = path_in("train-images-idx3-ubyte");
    unsigned char lab[10];
    uint32_t d1[1] = {2};
    idx_header(lab, 1, d1);
    lab[8] = 1, lab[9] = 2;
    write_file(dl, lab, 10);
    d3[0] = 3, d3[1] = 1, d3[2] = 1;
    idx_header(h3, 3, d3);
    unsigned char img[19] = {0};
    memcpy(img, h3, 16);
    write_file(di, img, 19);
    nl_dataset ds;
    NLT_CHECK(nl_dataset_load(&ds, "fashion-mnist", "train", g_dir) == NL_EFORMAT &&
                  contains(nl_last_error(), "dimension 0 is 3, expected 2"), "%s", nl_last_error());
    d1[0] = 1u << 25;
    idx_header(lab, 1, d1);
    write_file(dl, lab, 8);
    NLT_CHECK(nl_dataset_load(&ds, "fashion-mnist", "train", g_dir) == NL_EFORMAT &&
                  contains(nl_last_error(), "more than the limit"), "%s", nl_last_error());
    unlink(dl);
    unlink(di);
    unlink(q);
    unlink(p);
    free(z);
}

static void test_csv(void) {
    nl_csv c;
    const char *p = path_in("t.csv");
    /* a BOM before a numeric first row: the row is data, not a header */
    write_file(p, "\xEF\xBB\xBF" "1,2\n3,4\n", 11);
    NLT_OK(nl_csv_read(p, &c, 0));
    NLT_CHECK(c.rows == 2 && c.cols == 2 && !c.header && c.data && c.data[0] == 1, "BOM: rows %lld", (long long)c.rows);
    nl_csv_free(&c);
    /* a BOM before a header */
    write_file(p, "\xEF\xBB\xBF" "x,y\n3,4\n", 11);
    NLT_OK(nl_csv_read(p, &c, 0));
    NLT_CHECK(c.rows == 1 && c.header && !strcmp(c.header[0], "x"), "BOM + header");
    nl_csv_free(&c);
    /* a first row that mixes numbers and a name: an error naming line and column, not a header */
    write_file(p, "# comment\n1, abc ,3\n4,5,6\n", 26);
    nl_status s = nl_csv_read(p, &c, 0);
    NLT_CHECK(s == NL_EFORMAT && contains(nl_last_error(), "t.csv:2:4: field 2 is not a number: 'abc'") &&
                  contains(nl_last_error(), "NL_CSV_HEADER"), "%s", nl_last_error());
    write_file(p, "1,,3\n4,5,6\n", 11);
    NLT_CHECK(nl_csv_read(p, &c, 0) == NL_EFORMAT && contains(nl_last_error(), "t.csv:1:3: field 2 is empty"), "%s",
              nl_last_error());
    /* forced either way */
    write_file(p, "1,abc,3\n4,5,6\n", 14);
    NLT_OK(nl_csv_read(p, &c, NL_CSV_HEADER));
    NLT_CHECK(c.rows == 1 && c.header && !strcmp(c.header[1], "abc"), "forced header");
    nl_csv_free(&c);
    write_file(p, "1,2,3\n4,5,6\n", 12);
    NLT_OK(nl_csv_read(p, &c, NL_CSV_HEADER));
    NLT_CHECK(c.rows == 1 && c.header && !strcmp(c.header[0], "1"), "forced numeric header");
    nl_csv_free(&c);
    write_file(p, "a,b\n4,5\n", 8);
    NLT_CHECK(nl_csv_read(p, &c, NL_CSV_NO_HEADER) == NL_EFORMAT && contains(nl_last_error(), "t.csv:1:1: field 1 is not"),
              "%s", nl_last_error());
    /* a non-numeric field in a later data row */
    write_file(p, "x,y\n1,2\n3,4x\n", 13);
    NLT_CHECK(nl_csv_read(p, &c, 0) == NL_EFORMAT && contains(nl_last_error(), "t.csv:3:3: field 2 is not a number"),
              "%s", nl_last_error());
    /* only a BOM */
    write_file(p, "\xEF\xBB\xBF", 3);
    NLT_CHECK(nl_csv_read(p, &c, 0) == NL_EFORMAT && contains(nl_last_error(), "empty"), "%s", nl_last_error());
    unlink(p);
}

static int count_temps(const char *base) {
    DIR *d = opendir(g_dir);
    int n = 0;
    struct dirent *e;
    size_t bl = strlen(base);
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, base, bl) && strstr(e->d_name + bl, ".tmp.")) n++;
    closedir(d);
    return n;
}

static int save_one(const char *p, float v) {
    nl_st_entry e = {"w", NL_ST_F32, 0, NULL, &v};
    return nl_safetensors_write(p, &e, 1, NULL) == NL_OK;
}

static float load_one(const char *p) {
    nl_st_file f;
    if (nl_safetensors_open(p, &f)) return -1;
    float v = -1;
    if (f.n == 1) memcpy(&v, f.t[0].data, 4);
    nl_safetensors_close(&f);
    return v;
}

static void test_atomic(void) {
    const char *p = path_in("ck.safetensors");
    /* stale temps of a killed save (and one with a live writer, which must survive) */
    write_file(path_in("ck.safetensors.tmp.AbC123"), "junk", 4);
    write_file(path_in("ck.safetensors.tmp.zzzzzz"), "junk", 4);
    write_file(path_in("ck.safetensors.tmp.keep"), "not ours", 8);       /* not the pattern: kept */
    write_file(path_in("other.safetensors.tmp.AbC123"), "other", 5);     /* another target: kept */
    write_file(path_in("live.tmp.LIVE01"), "", 0);
    int live = open(path_in("ck.safetensors.tmp.LIVE01"), O_WRONLY | O_CREAT, 0600);
    NLT_CHECK(live >= 0 && flock(live, LOCK_EX) == 0, "live temp");
    NLT_CHECK(count_temps("ck.safetensors") == 4, "setup: %d", count_temps("ck.safetensors"));
    NLT_CHECK(save_one(p, 1.5f), "%s", nl_last_error());
    NLT_CHECK(count_temps("ck.safetensors") == 2, "stale temps left: %d", count_temps("ck.safetensors"));
    NLT_CHECK(access(path_in("ck.safetensors.tmp.LIVE01"), F_OK) == 0, "a live writer's temp was removed");
    NLT_CHECK(access(path_in("ck.safetensors.tmp.keep"), F_OK) == 0 &&
                  access(path_in("other.safetensors.tmp.AbC123"), F_OK) == 0, "unrelated files removed");
    close(live);
    unlink(path_in("ck.safetensors.tmp.LIVE01"));
    unlink(path_in("ck.safetensors.tmp.keep"));
    unlink(path_in("other.safetensors.tmp.AbC123"));
    unlink(path_in("live.tmp.LIVE01"));
    unlink(p);
    /* the umask applies to a new file; a replaced file keeps its bits */
    mode_t old = umask(027);
    NLT_CHECK(save_one(p, 2.0f), "%s", nl_last_error());
    struct stat sb;
    NLT_CHECK(stat(p, &sb) == 0 && (sb.st_mode & 0777) == 0640, "mode %o with umask 027", sb.st_mode & 0777);
    umask(077);
    unlink(p);
    NLT_CHECK(save_one(p, 2.0f) && stat(p, &sb) == 0 && (sb.st_mode & 0777) == 0600, "mode %o with umask 077",
              sb.st_mode & 0777);
    chmod(p, 0604);
    umask(022);
    NLT_CHECK(save_one(p, 3.0f) && stat(p, &sb) == 0 && (sb.st_mode & 0777) == 0604, "replaced file: mode %o",
              sb.st_mode & 0777);
    umask(old);
    /* a symlink is replaced by the new file; the file it pointed to is untouched */
    const char *target = path_in("real.safetensors"), *link = path_in("link.safetensors");
    NLT_CHECK(save_one(target, 4.0f), "%s", nl_last_error());
    NLT_CHECK(symlink("real.safetensors", link) == 0, "symlink");
    NLT_CHECK(save_one(link, 5.0f), "%s", nl_last_error());
    NLT_CHECK(lstat(link, &sb) == 0 && S_ISREG(sb.st_mode), "the link is now a regular file");
    NLT_CHECK(load_one(link) == 5.0f && load_one(target) == 4.0f, "link %g, target %g", load_one(link), load_one(target));
    /* a dangling link: replaced as well, nothing created where it pointed */
    unlink(link);
    NLT_CHECK(symlink("nowhere/x.safetensors", link) == 0, "symlink");
    NLT_CHECK(save_one(link, 6.0f) && load_one(link) == 6.0f, "%s", nl_last_error());
    NLT_CHECK(count_temps("link.safetensors") == 0, "temps left");
    unlink(link);
    unlink(target);
    unlink(p);
}

int main(void) {
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    NLT_RUN(test_st_names);
    NLT_RUN(test_st_duplicate_fields);
    NLT_RUN(test_st_many_keys);
    NLT_RUN(test_special_files);
    NLT_RUN(test_idx_bomb);
    NLT_RUN(test_csv);
    NLT_RUN(test_atomic);
    rmdir(g_dir);
    return nlt_finish();
}
