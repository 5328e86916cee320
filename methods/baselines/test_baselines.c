/* The baselines method: registration of its two ledger entries and their pass rule (accuracy >= the entry's
 * threshold), checked on hand-made results on both sides of the threshold. The training runs themselves are the
 * engine's (tests/test_train_mlp.c) and the quick reproduction is the `cli_repro` test. */
#include "nltest.h"
#include "baselines/baselines.h"

static int judge(const nl_experiment *e, double acc, double thr) {
    nl_exp_result r;
    nl_exp_result_init(&r);
    nl_exp_set(&r, "test_accuracy", acc);
    nl_exp_set(&r, "threshold", thr);
    nl_exp_set(&r, "train_seconds", 1.0);
    char m[256];
    int pass = e->judge(e, &r, 0, m, sizeof m);
    NLT_CHECK(strlen(m) > 0, "judge writes a summary");
    nl_exp_result_free(&r);
    return pass;
}

static void test_registration(void) {
    NLT_CHECK(!strcmp(nl_method_baselines.id, "baselines"), "id");
    const nl_experiment *const *e = nl_method_baselines.experiments;
    NLT_CHECK(e && e[0] == &nl_exp_mlp && e[1] == &nl_exp_cnn && e[2] == NULL, "entries mlp, cnn");
    NLT_CHECK(nl_method_baselines.cli == NULL, "trained by `nnlab train`, no command of its own");
    for (int i = 0; e[i]; i++) {
        NLT_CHECK(e[i]->run && e[i]->judge && e[i]->quick && e[i]->full, "%s complete", e[i]->name);
        NLT_CHECK(strstr(e[i]->metrics, "test_accuracy") != NULL, "%s lists test_accuracy", e[i]->name);
    }
}

static void test_judge(void) {
    NLT_CHECK(judge(&nl_exp_mlp, 0.8700, 0.86) == 1, "above threshold passes");
    NLT_CHECK(judge(&nl_exp_mlp, 0.8600, 0.86) == 1, "at threshold passes");
    NLT_CHECK(judge(&nl_exp_mlp, 0.8599, 0.86) == 0, "below threshold fails");
    NLT_CHECK(judge(&nl_exp_cnn, 0.10, 0.88) == 0, "chance accuracy (shuffled labels) fails");
    NLT_CHECK(judge(&nl_exp_cnn, NAN, 0.88) == 0, "a NaN accuracy fails");
}

int main(void) {
    NLT_RUN(test_registration);
    NLT_RUN(test_judge);
    return nlt_finish();
}
