/* The giraffe method: registration, its command (`freqs` against the closed forms of the RoPE variants, bad
 * flags), and its pass rule on hand-made results: linear scaling best beyond the fine-tuning length AND a larger
 * eval scale better past s x L passes; either part failing fails (the measured full run is such a case). */
#include "nltest.h"
#include "giraffe/giraffe.h"
#include <unistd.h>

static void set_lines(nl_exp_result *r, double lin, double trunc, double l4, double l8, double l16) {
    nl_exp_set(r, "lines_beyond_linear_s4", lin);
    nl_exp_set(r, "lines_beyond_power", 0.2);
    nl_exp_set(r, "lines_beyond_truncated", trunc);
    nl_exp_set(r, "lines_beyond_xpos", 0.3);
    nl_exp_set(r, "lines_beyond_plain", 0.1);
    nl_exp_set(r, "lines_longest_linear_s4", l4);
    nl_exp_set(r, "lines_longest_linear_s8", l8);
    nl_exp_set(r, "lines_longest_linear_s16", l16);
}

static int judge(double lin, double trunc, double l4, double l8, double l16) {
    nl_exp_result r;
    nl_exp_result_init(&r);
    set_lines(&r, lin, trunc, l4, l8, l16);
    char m[512];
    int pass = nl_exp_giraffe.judge(&nl_exp_giraffe, &r, 0, m, sizeof m);
    NLT_CHECK(strstr(m, "Lines accuracy") != NULL, "judged on Lines accuracy: %s", m);
    nl_exp_result_free(&r);
    return pass;
}

static void test_judge(void) {
    NLT_CHECK(judge(0.9, 0.5, 0.2, 0.4, 0.3) == 1, "linear best and a larger eval scale helps: pass");
    NLT_CHECK(judge(0.483, 0.808, 0.2, 0.4, 0.3) == 0, "truncated better than linear (the measured quick run): fail");
    NLT_CHECK(judge(0.9, 0.5, 0.4, 0.0, 0.0) == 0, "a larger eval scale destroys retrieval: fail");
}

static void test_registration_and_cli(void) {
    NLT_CHECK(!strcmp(nl_method_giraffe.id, "giraffe") && !strcmp(nl_exp_giraffe.name, "giraffe"), "one id");
    NLT_CHECK(nl_method_giraffe.aliases && !strcmp(nl_method_giraffe.aliases[0].name, "rope"), "alias rope");
    char *bad1[] = {"nosuch", NULL}, *bad2[] = {"freqs", NULL}, *bad3[] = {"freqs", "--dim", "7", NULL};
    NLT_CHECK(nl_giraffe_cli(1, bad1) == 2, "unknown subcommand");
    NLT_CHECK(nl_giraffe_cli(1, bad2) == 2, "--dim is required");
    NLT_CHECK(nl_giraffe_cli(3, bad3) == 2, "odd --dim");
    /* linear scaling divides every plain frequency by the scale: theta_j = base^(-2j/D) / s */
    char path[] = "/tmp/test_giraffe_XXXXXX";
    int fd = mkstemp(path);
    NLT_CHECK(fd >= 0, "temp file");
    fflush(stdout);
    int saved = dup(1);
    dup2(fd, 1);
    char *args[] = {"freqs", "--dim", "8", "--variant", "linear", "--scale", "4", NULL};
    int rc = nl_giraffe_cli(7, args);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    close(fd);
    NLT_CHECK(rc == 0, "freqs runs");
    FILE *f = fopen(path, "r");
    int n = 0;
    long j;
    double th;
    while (f && fscanf(f, "%ld %lf", &j, &th) == 2) {
        NLT_NEAR(th, pow(10000.0, -2.0 * (double)j / 8) / 4, 1e-8);
        n++;
    }
    if (f) fclose(f);
    unlink(path);
    NLT_CHECK(n == 4, "D/2 = 4 frequencies (got %d)", n);
}

int main(void) {
    NLT_RUN(test_judge);
    NLT_RUN(test_registration_and_cli);
    return nlt_finish();
}
