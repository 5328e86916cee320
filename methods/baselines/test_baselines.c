/* The baselines method: registration of its two ledger entries (schema v2: quick, full and smoke configurations)
 * and their pass rule on hand-made results: the mean test accuracy over >= 3 seeds, judged by its lower 95% bound
 * (mean - t95(n-1) SE) against the entry's threshold, recorded as the claim's part "accuracy". A passing result
 * passes; each kind of result the controls produce (shuffled labels at chance, an MLP under the CNN's threshold),
 * too few seeds, a noisy mean and a NaN flip the verdict. The training runs themselves are the engine's
 * (tests/test_train_mlp.c); the smoke run is the `repro_baselines` test and the quick run the `cli_repro` test. */
#include "nltest.h"
#include "baselines/baselines.h"

/* A result as the run writes it: per-seed accuracies, their mean and standard error, the threshold. */
static int judge_seeds(const nl_experiment *e, const double *acc, int n, double thr, int *parts) {
    nl_exp_result r;
    nl_exp_result_init(&r);
    double m, se;
    nl_stats_mean_se(acc, n, &m, &se);
    nl_exp_set(&r, "test_accuracy", m);
    nl_exp_set(&r, "test_accuracy_se", se);
    nl_exp_set(&r, "seeds", (double)n);
    nl_exp_set(&r, "threshold", thr);
    nl_exp_set(&r, "literature", thr + 0.05);
    nl_exp_set(&r, "train_seconds", 1.0);
    r.seeds = n;
    char msg[256];
    int pass = e->judge(e, &r, NL_MODE_QUICK, msg, sizeof msg);
    NLT_CHECK(strlen(msg) > 0, "judge writes a summary");
    NLT_CHECK(r.n_parts == 1 && !strcmp(r.parts[0].name, "accuracy"), "one part, \"accuracy\"");
    NLT_CHECK(r.n_parts < 1 || r.parts[0].pass == pass, "the verdict is the part's");
    if (parts) *parts = r.n_parts;
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
        NLT_CHECK(e[i]->smoke && e[i]->smoke_desc, "%s has a smoke configuration", e[i]->name);
        NLT_CHECK(strstr(e[i]->metrics, "test_accuracy_se") != NULL && strstr(e[i]->metrics, "threshold") != NULL,
                  "%s lists the judged metrics", e[i]->name);
    }
}

static void test_judge(void) {
    /* the quick thresholds: mlp 88.33 - 5 = 83.33%, cnn 91.6 - 5 = 86.6% */
    const double mlp_ok[3] = {0.877, 0.876, 0.878}, cnn_ok[3] = {0.870, 0.869, 0.871};
    int parts = 0;
    NLT_CHECK(judge_seeds(&nl_exp_mlp, mlp_ok, 3, 0.8333, &parts) == 1 && parts == 1, "3 seeds well above the threshold pass");
    NLT_CHECK(judge_seeds(&nl_exp_cnn, cnn_ok, 3, 0.866, NULL) == 1, "cnn: 3 seeds above the threshold pass");
    /* the controls' kinds of result */
    const double shuffled[3] = {0.101, 0.098, 0.104};
    NLT_CHECK(judge_seeds(&nl_exp_mlp, shuffled, 3, 0.8333, NULL) == 0, "shuffled labels (chance accuracy) fail");
    NLT_CHECK(judge_seeds(&nl_exp_cnn, shuffled, 3, 0.866, NULL) == 0, "cnn: shuffled labels fail");
    const double mlp_at_cnn_budget[3] = {0.845, 0.842, 0.848};
    NLT_CHECK(judge_seeds(&nl_exp_cnn, mlp_at_cnn_budget, 3, 0.866, NULL) == 0, "an MLP under the CNN's threshold fails");
    /* the rule's statistics */
    NLT_CHECK(judge_seeds(&nl_exp_mlp, mlp_ok, 2, 0.8333, NULL) == 0, "2 seeds are not enough, however good");
    const double noisy[3] = {0.90, 0.84, 0.87}; /* mean 87%, SE 1.7 points: lower bound 82% */
    NLT_CHECK(judge_seeds(&nl_exp_mlp, noisy, 3, 0.8333, NULL) == 0, "a mean above the threshold with a wide bound fails");
    const double edge[3] = {0.8680, 0.8690, 0.8700}; /* mean 86.9, SE 0.058: bound 86.73 */
    NLT_CHECK(judge_seeds(&nl_exp_cnn, edge, 3, 0.8670, NULL) == 1, "bound just above the threshold passes");
    NLT_CHECK(judge_seeds(&nl_exp_cnn, edge, 3, 0.8675, NULL) == 0, "bound just below the threshold fails");
    const double nan3[3] = {NAN, 0.88, 0.88};
    NLT_CHECK(judge_seeds(&nl_exp_cnn, nan3, 3, 0.866, NULL) == 0, "a NaN accuracy fails");
}

int main(void) {
    NLT_RUN(test_registration);
    NLT_RUN(test_judge);
    return nlt_finish();
}
