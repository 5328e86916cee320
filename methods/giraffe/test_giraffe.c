/* The giraffe method: registration and the `freqs` command; the formulas against closed forms (Wilson bound, reach
 * and its level, the truncated basis' zeroed fraction and the cutoff for a target fraction, the xPos annealing);
 * the three-part judge on hand-made 3-seed results (the claimed pattern passes; a rival as good, an eval scale
 * that does not help, a truncated basis stuck at the fine-tuning length, the scrambled-control pattern, 2 seeds and
 * NaN fail); and a smoke run of the entry (ledger fields, both controls rejected). */
#include "nltest.h"
#include "giraffe/giraffe.h"
#include <math.h>
#include <unistd.h>

static void test_formulas(void) {
    /* Wilson one-sided lower bound, closed form: k = 12, n = 20, z = 1.645 */
    const double p = 0.6, z = 1.645, n = 20;
    const double want = (p + z * z / (2 * n) - z * sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / (1 + z * z / n);
    NLT_NEAR(nl_giraffe_wilson_lower(12, 20, z), want, 1e-12);
    NLT_NEAR(want, 0.41854, 1e-4);   /* by hand: (0.66765 - 0.19248) / 1.13530 */
    NLT_CHECK(nl_giraffe_wilson_lower(0, 20, z) == 0, "0 correct: bound 0");
    NLT_CHECK(nl_giraffe_wilson_lower(20, 20, z) < 1 && nl_giraffe_wilson_lower(20, 20, z) > 0.87, "all correct: below 1 (%g)",
              nl_giraffe_wilson_lower(20, 20, z));
    NLT_CHECK(isnan(nl_giraffe_wilson_lower(3, 2, z)), "k > n: NaN");
    /* reach: the longest length whose bound is above the floor, not necessarily contiguous */
    const int mult[5] = {1, 2, 4, 8, 16};
    const int k1[5] = {20, 18, 15, 3, 0}, k2[5] = {20, 2, 16, 0, 0}, k0[5] = {5, 4, 0, 0, 0};
    NLT_CHECK(nl_giraffe_reach(k1, 20, mult, 5, 0.4) == 4, "reach 4L (%d)", nl_giraffe_reach(k1, 20, mult, 5, 0.4));
    NLT_CHECK(nl_giraffe_reach(k2, 20, mult, 5, 0.4) == 4, "a gap at 2L: reach still 4L");
    NLT_CHECK(nl_giraffe_reach(k0, 20, mult, 5, 0.4) == 0, "nothing above the floor: 0");
    NLT_CHECK(nl_giraffe_reach_level(0) == 0 && nl_giraffe_reach_level(1) == 1 && nl_giraffe_reach_level(16) == 5, "levels");
    /* truncated basis, LLaMA (d = 128, T = 2048): pairs 55..63 zeroed (9 of 64) */
    NLT_NEAR(nl_giraffe_zeroed_fraction(128, 1e4, 2048), 9.0 / 64, 1e-12);
    /* closed form: pair j zeroed iff base^(-2j/d) < 2 pi / (8 T); the cutoff for 10% zeroes round(0.1 h) pairs */
    const int dims[3] = {32, 64, 128};
    for (int i = 0; i < 3; i++) {
        const int d = dims[i], h = d / 2;
        const double T = nl_giraffe_truncate_for(d, 1e4, 0.10);
        int zc = 0;
        for (int j = 0; j < h; j++) zc += pow(1e4, -2.0 * j / d) < 2 * M_PI / (8 * T);
        const int want_c = (int)lround(0.10 * h) < 1 ? 1 : (int)lround(0.10 * h);
        NLT_CHECK(zc == want_c, "d=%d: T %.1f zeroes %d pairs (want %d)", d, T, zc, want_c);
        NLT_NEAR(nl_giraffe_zeroed_fraction(d, 1e4, T), (double)zc / h, 1e-12);
        NLT_CHECK((double)zc / h >= 0.06 && (double)zc / h <= 0.14, "d=%d: LLaMA-like fraction %.3f", d, (double)zc / h);
    }
    /* xPos annealing: 8192 at the start, minus 8 per reference step, 128 at the end */
    NLT_NEAR(nl_giraffe_xpos_gamma(0, 100), 8192, 1e-9);
    NLT_NEAR(nl_giraffe_xpos_gamma(50, 100), 8192 - 8 * 504, 1e-9);
    NLT_NEAR(nl_giraffe_xpos_gamma(100, 100), 128, 1e-9);
    NLT_NEAR(nl_giraffe_xpos_gamma(200, 100), 128, 1e-9);
    /* the evaluation table: every name the judge reads exists */
    const char *names[] = {"linear16@16", "linear4@8", "linear4@4", "truncated", "power", "xpos", "randomised", "base", "base@2",
                           "linear16@16-scrambled", "linear4@8-scrambled", "linear4@4-scrambled", "truncated-scrambled"};
    for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++) NLT_CHECK(nl_giraffe_eval_find(names[i]) >= 0, "eval %s", names[i]);
    nl_giraffe_config g;
    memset(&g, 0, sizeof g);
    g.ft_mult = 2; g.power = 0.5;
    const nl_rope_config r16 = nl_giraffe_rope(&g, NL_GIRAFFE_M_LIN16, 0), rr = nl_giraffe_rope(&g, NL_GIRAFFE_M_RAND, 0);
    NLT_CHECK(r16.variant == NL_ROPE_LINEAR && r16.scale_train == 16 && r16.scale_eval == 16, "linear16");
    NLT_CHECK(rr.randomized == 1 && rr.scale_train == 4, "randomised: linear 4 with random positions");
}

/* levels[seed] of the candidate, each rival (all rivals the same), part 2 hi / lo, part 3 */
static int judge(const double *cand, const double *rival, const double *hi, const double *lo, const double *tr, int seeds, int *pp) {
    nl_exp_result r;
    nl_exp_result_init(&r);
    nl_exp_set(&r, "n_seeds", seeds);
    char nm[64];
    for (int i = 0; i < seeds; i++) {
        nl_exp_set_seed(&r, "p1_cand", i + 1, cand[i]);
        for (int j = 1; j <= 4; j++) {
            snprintf(nm, sizeof nm, "p1_rival%d", j);
            nl_exp_set_seed(&r, nm, i + 1, rival[i] - (j - 1));   /* rival 1 the strongest */
        }
        nl_exp_set_seed(&r, "p2_hi", i + 1, hi[i]);
        nl_exp_set_seed(&r, "p2_lo", i + 1, lo[i]);
        nl_exp_set_seed(&r, "p3_cand", i + 1, tr[i]);
        nl_exp_set_seed(&r, "p3_ft", i + 1, 2);
    }
    char m[600];
    const int pass = nl_exp_giraffe.judge(&nl_exp_giraffe, &r, 0, m, sizeof m);
    NLT_CHECK(r.n_parts == 3, "three parts (%d)", r.n_parts);
    for (int k = 0; k < 3; k++) pp[k] = r.n_parts > k && r.parts[k].pass;
    NLT_CHECK(pass == (pp[0] && pp[1] && pp[2]), "verdict = all parts: %s", m);
    nl_exp_result_free(&r);
    return pass;
}

static void test_judge(void) {
    int pp[3];
    const double c[3] = {5, 5, 5}, rv[3] = {3, 4, 3}, hi[3] = {4, 5, 4}, lo[3] = {3, 3, 3}, tr[3] = {3, 3, 4};
    NLT_CHECK(judge(c, rv, hi, lo, tr, 3, pp) == 1, "the claimed pattern passes");
    const double tie[3] = {5, 5, 5};
    NLT_CHECK(judge(c, tie, hi, lo, tr, 3, pp) == 0 && !pp[0] && pp[1] && pp[2], "a rival as good: part 1 fails");
    const double lucky[3] = {5, 5, 3};
    NLT_CHECK(judge(lucky, rv, hi, lo, tr, 3, pp) == 0 && !pp[0], "one seed behind: part 1 fails");
    NLT_CHECK(judge(c, rv, lo, lo, tr, 3, pp) == 0 && !pp[1], "eval scale x2 no further: part 2 fails");
    const double hi1[3] = {5, 3, 3};
    NLT_CHECK(judge(c, rv, hi1, lo, tr, 3, pp) == 0 && !pp[1], "further in one seed only: part 2 fails");
    const double ft[3] = {2, 2, 2};
    NLT_CHECK(judge(c, rv, hi, lo, ft, 3, pp) == 0 && pp[0] && pp[1] && !pp[2], "truncated reach = the fine-tuning length: part 3 fails");
    const double zero[3] = {0, 0, 0};
    NLT_CHECK(judge(zero, rv, zero, zero, zero, 3, pp) == 0 && !pp[0] && !pp[1] && !pp[2], "scrambled pattern: every part fails");
    NLT_CHECK(judge(c, rv, hi, lo, tr, 2, pp) == 0 && !pp[0] && !pp[1] && !pp[2], "2 seeds: fail");
    const double nanv[3] = {5, NAN, 5};
    NLT_CHECK(judge(nanv, rv, hi, lo, tr, 3, pp) == 0 && !pp[0], "NaN: fail");
}

static void test_smoke_run(void) {
    if (access("/usr/bin/bible", X_OK) || access("/usr/share/games/fortunes", R_OK) || access("/usr/share/dictd/gcide.dict.dz", R_OK)) {
        printf("  (skipped: bible-kjv, fortunes or dict-gcide not installed)\n");
        return;
    }
    nl_exp_result r;
    nl_exp_result_init(&r);
    nl_exp_options o = {NL_MODE_SMOKE, 1, 0, NULL};
    nl_status st = nl_exp_giraffe.run(&nl_exp_giraffe, nl_exp_giraffe.smoke, &o, &r);
    NLT_CHECK(st == NL_OK, "smoke run: %s", st ? nl_last_error() : "ok");
    char m[600];
    if (!st) {
        int found;
        nl_exp_get(&r, "p1_cand_seed3", &found);
        NLT_CHECK(found && r.seeds == 3 && r.n_controls == 2, "per-seed levels and two controls");
        const double zf = nl_exp_get(&r, "trunc_zeroed_fraction", NULL);
        NLT_CHECK(zf >= 0.06 && zf <= 0.14, "zeroed fraction %g", zf);
        for (int i = 0; i < r.n_controls; i++)
            NLT_CHECK(nl_exp_giraffe.judge(&nl_exp_giraffe, r.controls[i].r, 2, m, sizeof m) == 0, "control %s rejected", r.controls[i].name);
    }
    nl_exp_result_free(&r);
}

static void test_registration_and_cli(void) {
    NLT_CHECK(!strcmp(nl_method_giraffe.id, "giraffe") && !strcmp(nl_exp_giraffe.name, "giraffe"), "one id");
    NLT_CHECK(nl_method_giraffe.aliases && !strcmp(nl_method_giraffe.aliases[0].name, "rope"), "alias rope");
    char *bad1[] = {"nosuch", NULL}, *bad2[] = {"freqs", NULL}, *bad3[] = {"freqs", "--dim", "7", NULL};
    NLT_CHECK(nl_giraffe_cli(1, bad1) == 2, "unknown subcommand");
    NLT_CHECK(nl_giraffe_cli(1, bad2) == 2, "--dim is required");
    NLT_CHECK(nl_giraffe_cli(3, bad3) == 2, "odd --dim");
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
    NLT_RUN(test_formulas);
    NLT_RUN(test_judge);
    NLT_RUN(test_registration_and_cli);
    NLT_RUN(test_smoke_run);
    return nlt_finish();
}
