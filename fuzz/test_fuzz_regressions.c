/* Every input in fuzz/regressions/<loader>/ (findings of the fuzz targets, fuzz/regressions/README.md) is refused by
 * its loader with a message, in well under a second, without allocating what the file claims. */
#include "nltest.h"
#include "nnlab/model.h"
#include "transformer/transformer.h"
#include <dirent.h>
#include <sys/resource.h>

static void test_regressions(void) {
    const char *src = getenv("NL_SOURCE_DIR");
    if (!src) { printf("  (NL_SOURCE_DIR unset: skipped)\n"); return; }
    /* no load may allocate gigabytes: cap the address space at 4 GB for this process (ASan reserves far more) */
#if !defined(__SANITIZE_ADDRESS__)
    struct rlimit rl = {(rlim_t)4 << 30, (rlim_t)4 << 30};
    setrlimit(RLIMIT_AS, &rl);
#endif
    const char *dirs[] = {"idx", "model_load", "lm_load"};
    int n = 0;
    for (int d = 0; d < 3; d++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/fuzz/regressions/%s", src, dirs[d]);
        DIR *dp = opendir(path);
        NLT_CHECK(dp != NULL, "%s exists", path);
        if (!dp) continue;
        struct dirent *de;
        while ((de = readdir(dp))) {
            if (de->d_name[0] == '.') continue;
            char file[2048];
            snprintf(file, sizeof file, "%s/%s", path, de->d_name);
            double t0 = nl_time();
            nl_status s;
            if (d == 0) {
                nl_idx idx;
                memset(&idx, 0, sizeof idx);
                s = nl_idx_read(file, &idx);
                if (!s) nl_idx_free(&idx);
            } else if (d == 1) {
                nl_model m;
                s = nl_model_load(&m, file);
                if (!s) nl_model_free(&m);
            } else {
                nl_lm m;
                s = nl_lm_load(&m, file);
                if (!s) nl_lm_free(&m);
            }
            double dt = nl_time() - t0;
            NLT_CHECK(s != NL_OK && nl_last_error()[0], "%s refused (%s)", file, nl_last_error());
            NLT_CHECK(dt < 2.0, "%s refused in %.2f s", file, dt);
            n++;
        }
        closedir(dp);
    }
    NLT_CHECK(n >= 3, "%d regression inputs", n);
}

int main(void) {
    NLT_RUN(test_regressions);
    return nlt_finish();
}
