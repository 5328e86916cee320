/* UCI table loader (src/data/uci.c): small temp files in both formats, corrupt/short rows, missing package
 * message, seeded 90/10 splits with training-part standardisation, and the real python3-sklearn files. */
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include "nltest.h"
#include "nnlab/data.h"

static char g_dir[64];

static void write_file(const char *name, const char *text, int gz) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    if (gz) {
        gzFile f = gzopen(p, "wb");
        gzwrite(f, text, (unsigned)strlen(text));
        gzclose(f);
    } else {
        FILE *f = fopen(p, "wb");
        fputs(text, f);
        fclose(f);
    }
}

static void rm_all(void) {
    const char *names[] = {"boston_house_prices.csv", "diabetes_data_raw.csv.gz", "diabetes_target.csv.gz"};
    char p[256];
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", g_dir, names[i]);
        unlink(p);
    }
}

static const char *BOSTON_OK = "3,2,,\n\"A\",\"C\",\"Y\"\n1,2,3\n4.5,5,6\r\n7,8,9e0\n";
static const char *BOSTON_B = "2,3\n\"A\",\"B\",\"C\",\"Y\"\n1,2,3,4\n5,6,7,8\n";

static void test_boston_small(void) {
    write_file("boston_house_prices.csv", BOSTON_OK, 0);
    nl_uci u;
    NLT_OK(nl_uci_load(&u, "boston", g_dir));
    NLT_CHECK(u.n == 3 && u.d == 2, "%lld x %lld", (long long)u.n, (long long)u.d);
    NLT_NEAR(u.x[2], 4.5, 0);
    NLT_NEAR(u.y[2], 9, 0);
    nl_uci_free(&u);
    write_file("boston_house_prices.csv", BOSTON_B, 0); /* the B column is dropped */
    NLT_OK(nl_uci_load(&u, "boston", g_dir));
    NLT_CHECK(u.n == 2 && u.d == 2 && u.x[2] == 5 && u.x[3] == 7 && u.y[1] == 8, "B not dropped: d %lld", (long long)u.d);
    nl_uci_free(&u);
    write_file("boston_house_prices.csv", BOSTON_OK, 0);
    /* NL_SKLEARN_DATA overrides the default folder */
    setenv("NL_SKLEARN_DATA", g_dir, 1);
    NLT_OK(nl_uci_load(&u, "boston", NULL));
    nl_uci_free(&u);
    unsetenv("NL_SKLEARN_DATA");
    const char *bad[] = {
        "3,2\nA,B,Y\n1,2,3\n4,5\n7,8,9\n",        /* short row */
        "3,2\nA,B,Y\n1,2,3\n4,5,6,7\n7,8,9\n",    /* long row */
        "3,2\nA,B,Y\n1,2,3\n4,x,6\n7,8,9\n",      /* non-numeric */
        "3,2\nA,B,Y\n1,2,3\n4,nan,6\n7,8,9\n",    /* non-finite */
        "3,2\nA,B,Y\n1,2,3\n4,5,6\n",             /* truncated: fewer rows than announced */
        "3,2\nA,B,Y\n1,2,3\n4,5,6\n7,8,9\n1,1,1\n", /* more rows */
        "x,2\nA,B,Y\n1,2,3\n",                    /* bad sizes line */
        "",                                       /* empty */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        write_file("boston_house_prices.csv", bad[i], 0);
        nl_status st = nl_uci_load(&u, "boston", g_dir);
        NLT_CHECK(st == NL_EFORMAT, "case %zu -> %s", i, nl_status_name(st));
        NLT_CHECK(u.x == NULL, "case %zu leaves data", i);
    }
    rm_all();
}

static void test_diabetes_small(void) {
    write_file("diabetes_data_raw.csv.gz", "1 2 3 4 5 6 7 8 9 10\n11 12 13 14 15 16 17 18 19 20\n", 1);
    write_file("diabetes_target.csv.gz", "1.5e2\n7.5e1\n", 1);
    nl_uci u;
    NLT_OK(nl_uci_load(&u, "diabetes", g_dir));
    NLT_CHECK(u.n == 2 && u.d == 10, "%lld x %lld", (long long)u.n, (long long)u.d);
    NLT_NEAR(u.x[19], 20, 0);
    NLT_NEAR(u.y[1], 75, 0);
    nl_uci_free(&u);
    write_file("diabetes_target.csv.gz", "150\n", 1); /* row counts disagree */
    NLT_CHECK(nl_uci_load(&u, "diabetes", g_dir) == NL_EFORMAT, "count mismatch accepted");
    write_file("diabetes_target.csv.gz", "150\n75\n", 1);
    write_file("diabetes_data_raw.csv.gz", "1 2 3 4 5 6 7 8 9 10\n11 12 13 14 15 16 17 18 19\n", 1); /* short */
    NLT_CHECK(nl_uci_load(&u, "diabetes", g_dir) == NL_EFORMAT, "short row accepted");
    /* a truncated gzip stream */
    char p[256];
    snprintf(p, sizeof p, "%s/diabetes_data_raw.csv.gz", g_dir);
    write_file("diabetes_data_raw.csv.gz", "1 2 3 4 5 6 7 8 9 10\n11 12 13 14 15 16 17 18 19 20\n", 1);
    struct stat sb;
    stat(p, &sb);
    NLT_CHECK(truncate(p, sb.st_size - 6) == 0, "truncate");
    nl_status st = nl_uci_load(&u, "diabetes", g_dir);
    NLT_CHECK(st == NL_EFORMAT, "truncated gzip -> %s", nl_status_name(st));
    rm_all();
}

static void test_missing(void) {
    nl_uci u;
    nl_status st = nl_uci_load(&u, "boston", g_dir);
    NLT_CHECK(st == NL_ENOTFOUND, "%s", nl_status_name(st));
    NLT_CHECK(strstr(nl_last_error(), "python3-sklearn") != NULL, "message: %s", nl_last_error());
    st = nl_uci_load(&u, "diabetes", g_dir);
    NLT_CHECK(st == NL_ENOTFOUND && strstr(nl_last_error(), "python3-sklearn"), "%s", nl_last_error());
    NLT_CHECK(nl_uci_load(&u, "iris", g_dir) == NL_EINVAL, "unknown name accepted");
}

static void test_split(void) {
    nl_uci full;
    NLT_OK(nl_uci_alloc(&full, 50, 3));
    for (int i = 0; i < 50; i++) {
        for (int j = 0; j < 3; j++) full.x[i * 3 + j] = i * (j + 1);
        full.x[i * 3 + 2] = 7; /* constant column */
        full.y[i] = 2.0 * i + 1;
    }
    nl_uci tr, te, tr2, te2;
    double ym, ys;
    NLT_OK(nl_uci_split(&full, 0.1, 3, &tr, &te, &ym, &ys));
    NLT_CHECK(tr.n == 45 && te.n == 5, "%lld/%lld", (long long)tr.n, (long long)te.n);
    double m = 0, v = 0;
    for (int i = 0; i < 45; i++) m += tr.x[i * 3] / 45;
    for (int i = 0; i < 45; i++) v += (tr.x[i * 3] - m) * (tr.x[i * 3] - m) / 45;
    NLT_NEAR(m, 0, 1e-12);
    NLT_NEAR(v, 1, 1e-12);
    NLT_NEAR(tr.x[2], 0, 1e-12); /* constant column: std 1, centred */
    /* targets map back exactly; a test row's x and y still belong together (y = 2 x0 + 1 in raw units) */
    for (int i = 0; i < 5; i++) {
        double y = te.y[i] * ys + ym;
        NLT_CHECK(fabs(y - 1 - 2 * round((y - 1) / 2)) < 1e-9, "y %g is not 2 i + 1", y);
    }
    /* same seed -> same split; another seed -> another */
    NLT_OK(nl_uci_split(&full, 0.1, 3, &tr2, &te2, NULL, NULL));
    NLT_CHECK(memcmp(te.y, te2.y, 5 * sizeof *te.y) == 0, "same seed differs");
    nl_uci_free(&tr2);
    nl_uci_free(&te2);
    NLT_OK(nl_uci_split(&full, 0.1, 4, &tr2, &te2, NULL, NULL));
    NLT_CHECK(memcmp(te.y, te2.y, 5 * sizeof *te.y) != 0, "other seed same split");
    nl_uci_free(&tr2);
    nl_uci_free(&te2);
    NLT_CHECK(nl_uci_split(&full, 0, 3, &tr2, &te2, NULL, NULL) == NL_EINVAL, "test_frac 0 accepted");
    nl_uci_free(&tr);
    nl_uci_free(&te);
    nl_uci_free(&full);
}

static void test_real_files(void) {
    nl_uci u;
    nl_status st = nl_uci_load(&u, "boston", NULL);
    if (st == NL_ENOTFOUND) {
        printf("  (python3-sklearn not installed: real-file checks skipped)\n");
        return;
    }
    NLT_OK(st);
    NLT_CHECK(u.n == 506 && u.d == 12 && u.x[11] == 4.98, "boston %lld x %lld", (long long)u.n, (long long)u.d);
    NLT_NEAR(u.y[0], 24, 0);
    nl_uci_free(&u);
    NLT_OK(nl_uci_load(&u, "diabetes", NULL));
    NLT_CHECK(u.n == 442 && u.d == 10, "diabetes %lld x %lld", (long long)u.n, (long long)u.d);
    NLT_NEAR(u.y[0], 151, 0);
    nl_uci_free(&u);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/nl_test_uci_XXXXXX");
    if (!mkdtemp(g_dir)) return 1;
    NLT_RUN(test_missing);
    NLT_RUN(test_boston_small);
    NLT_RUN(test_diabetes_small);
    NLT_RUN(test_split);
    NLT_RUN(test_real_files);
    rm_all();
    rmdir(g_dir);
    return nlt_finish();
}
