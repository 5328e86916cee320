/* The giraffe method: registration, its command (`freqs` against the closed forms of the RoPE variants, bad
 * flags), and its pass rule on hand-made results (3 seeds): a candidate that beats every rival beyond the
 * fine-tuning length and gains from a larger eval scale passes; each broken or substitute scheme's pattern fails
 * (a rival as good, a larger eval scale that destroys retrieval, a gain in one seed only, a missing seed). */
#include "nltest.h"
#include "giraffe/giraffe.h"
#include <unistd.h>

/* cand[3] beyond 2L, rivals[4][3], lo[3] / hi[3] past s x L at the eval scale / twice it. */
static void fill(nl_exp_result *r, const double *cand, double rivals[4][3], const double *lo, const double *hi, int seeds) {
    char nm[64];
    nl_exp_set(r, "n_seeds", seeds);
    nl_exp_set(r, "margin", 0.05);
    nl_exp_set(r, "candidate", NL_GIRAFFE_LINEAR);
    for (int j = 0; j < 4; j++) {
        snprintf(nm, sizeof nm, "rival%d", j + 1);
        nl_exp_set(r, nm, j + 1);
    }
    for (int i = 0; i < seeds; i++) {
        snprintf(nm, sizeof nm, "cand_beyond_s%d", i + 1);
        nl_exp_set(r, nm, cand[i]);
        snprintf(nm, sizeof nm, "cand_long_s%d", i + 1);
        nl_exp_set(r, nm, lo[i]);
        snprintf(nm, sizeof nm, "cand_long_big_s%d", i + 1);
        nl_exp_set(r, nm, hi[i]);
        for (int j = 0; j < 4; j++) {
            snprintf(nm, sizeof nm, "rival%d_beyond_s%d", j + 1, i + 1);
            nl_exp_set(r, nm, rivals[j][i]);
        }
    }
    r->seeds = seeds;
}

static int judge(const double *cand, double rivals[4][3], const double *lo, const double *hi, int seeds, int *pa, int *pb) {
    nl_exp_result r;
    nl_exp_result_init(&r);
    fill(&r, cand, rivals, lo, hi, seeds);
    char m[600];
    int pass = nl_exp_giraffe.judge(&nl_exp_giraffe, &r, 0, m, sizeof m);
    NLT_CHECK(r.n_parts == 2, "two parts (%d)", r.n_parts);
    *pa = r.n_parts > 0 && r.parts[0].pass;
    *pb = r.n_parts > 1 && r.parts[1].pass;
    NLT_CHECK(pass == (*pa && *pb), "verdict = both parts: %s", m);
    nl_exp_result_free(&r);
    return pass;
}

static void test_judge(void) {
    double good[3] = {0.80, 0.85, 0.75};
    double rivals[4][3] = {{0.30, 0.35, 0.20}, {0.50, 0.45, 0.40}, {0.20, 0.25, 0.30}, {0.10, 0.20, 0.15}};
    double lo[3] = {0.20, 0.30, 0.25}, hi[3] = {0.60, 0.55, 0.70};
    int pa, pb;
    NLT_CHECK(judge(good, rivals, lo, hi, 3, &pa, &pb) == 1 && pa && pb, "linear best by a margin, larger eval scale helps: pass");
    /* a generic substitute as good as the candidate (truncated, the measured pattern): part (a) fails */
    double tie[4][3] = {{0.30, 0.35, 0.20}, {0.82, 0.80, 0.78}, {0.20, 0.25, 0.30}, {0.10, 0.20, 0.15}};
    NLT_CHECK(judge(good, tie, lo, hi, 3, &pa, &pb) == 0 && !pa && pb, "a rival as good: robust fails");
    /* the plain baseline's pattern: no better than the rivals */
    double plain[3] = {0.30, 0.40, 0.20};
    NLT_CHECK(judge(plain, rivals, lo, hi, 3, &pa, &pb) == 0 && !pa, "baseline no better than the rivals: fail");
    /* broken linear (scale not applied at eval / inverted): retrieval at the floor everywhere */
    double zero[3] = {0, 0, 0};
    NLT_CHECK(judge(zero, rivals, zero, zero, 3, &pa, &pb) == 0 && !pa && !pb, "broken scaling at the floor: both parts fail");
    /* a larger eval scale that destroys retrieval (the measured full run's pattern) */
    NLT_CHECK(judge(good, rivals, hi, zero, 3, &pa, &pb) == 0 && pa && !pb, "larger eval scale hurts: eval-scale fails");
    /* a gain in one seed only: the mean is positive but the paired lower bound is not above the margin */
    double lo1[3] = {0.20, 0.30, 0.25}, hi1[3] = {0.90, 0.28, 0.20};
    NLT_CHECK(judge(good, rivals, lo1, hi1, 3, &pa, &pb) == 0 && !pb, "one lucky seed: eval-scale fails");
    /* a gain below the margin in every seed */
    double hi2[3] = {0.22, 0.32, 0.27};
    NLT_CHECK(judge(good, rivals, lo, hi2, 3, &pa, &pb) == 0 && !pb, "gain below the margin: fail");
    /* fewer than 3 seeds: not a result */
    NLT_CHECK(judge(good, rivals, lo, hi, 2, &pa, &pb) == 0 && !pa && !pb, "2 seeds: fail");
    /* a missing (NaN) measurement fails */
    double nanv[3] = {0.80, NAN, 0.75};
    NLT_CHECK(judge(nanv, rivals, lo, hi, 3, &pa, &pb) == 0 && !pa, "NaN: fail");
    /* the frequencies of the broken control: linear-inverted multiplies by s, noeval evaluates at 1 */
    nl_giraffe_config g;
    memset(&g, 0, sizeof g);
    g.scale = 4; g.L = 64; g.ft_mult = 2; g.power = 0.5; g.xpos_gamma = 512;
    nl_rope_config ri = nl_giraffe_rope(&g, NL_GIRAFFE_INVERTED), rn = nl_giraffe_rope(&g, NL_GIRAFFE_NOEVAL),
                   rl = nl_giraffe_rope(&g, NL_GIRAFFE_LINEAR);
    NLT_CHECK(ri.variant == NL_ROPE_LINEAR && ri.scale_train == 0.25 && ri.scale_eval == 0.25, "inverted: scale 1/s");
    NLT_CHECK(rn.scale_train == 4 && rn.scale_eval == 1, "noeval: trained at s, evaluated at 1");
    NLT_CHECK(rl.scale_train == 4 && rl.scale_eval == 4, "linear: s in both");
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
