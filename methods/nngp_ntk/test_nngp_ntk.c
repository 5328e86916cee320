/* The nngp-ntk method: registration, its command (help, bad flags), and its pass rule on hand-made results
 * (both kernels within the margin of the trained network passes; either kernel outside it fails). The kernels
 * themselves are tested against closed forms in lib/kernels/test_kernels.c. */
#include "nltest.h"
#include "nngp_ntk/nngp_ntk.h"

static int judge(double nngp, double ntk, double mlp) {
    nl_exp_result r;
    nl_exp_result_init(&r);
    nl_exp_set(&r, "nngp_accuracy", nngp);
    nl_exp_set(&r, "ntk_accuracy", ntk);
    nl_exp_set(&r, "mlp_accuracy", mlp);
    nl_exp_set(&r, "margin", 0.02);
    char m[256];
    int pass = nl_exp_nngp_ntk.judge(&nl_exp_nngp_ntk, &r, 0, m, sizeof m);
    nl_exp_result_free(&r);
    return pass;
}

static void test_registration(void) {
    NLT_CHECK(!strcmp(nl_method_nngp_ntk.id, "nngp-ntk"), "id");
    NLT_CHECK(!strcmp(nl_exp_nngp_ntk.name, "nngp-ntk"), "ledger name = id");
    NLT_CHECK(nl_method_nngp_ntk.cli == nl_nngp_ntk_cli, "command");
    NLT_CHECK(nl_method_nngp_ntk.aliases && !strcmp(nl_method_nngp_ntk.aliases[0].name, "kernel"), "alias kernel");
    char *help[] = {"--help", NULL}, *bad[] = {"nngp", "--depth", "x", NULL};
    NLT_CHECK(nl_nngp_ntk_cli(1, help) == 0, "--help exits 0");
    NLT_CHECK(nl_nngp_ntk_cli(3, bad) == 2, "a bad value is a usage error");
}

static void test_judge(void) {
    NLT_CHECK(judge(0.85, 0.86, 0.86) == 1, "both within 2 points");
    NLT_CHECK(judge(0.83, 0.86, 0.86) == 0, "NNGP 3 points below fails");
    NLT_CHECK(judge(0.86, 0.80, 0.86) == 0, "NTK 6 points below fails");
    NLT_CHECK(judge(NAN, 0.86, 0.86) == 0, "NaN fails");
}

int main(void) {
    NLT_RUN(test_registration);
    NLT_RUN(test_judge);
    return nlt_finish();
}
