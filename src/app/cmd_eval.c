/* nnlab eval --load FILE */
#include "app.h"
#include "nnlab/param.h"
#include "nnlab/safetensors.h"
#include "nnlab/train.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void help_eval(FILE *f) {
    fprintf(f,
            "usage: nnlab eval --load FILE [options]\n"
            "\n"
            "Evaluate a checkpoint written by `nnlab train --save` (or nl_model_save) on a dataset split.\n"
            "\n"
            "  --load FILE          the checkpoint (required)\n"
            "  --data NAME          fashion-mnist (default) or mnist\n"
            "  --data-dir DIR       directory with the IDX files (default: the standard search)\n"
            "  --split NAME         test (default) or train\n"
            "  --limit N            evaluate the first N examples only\n"
            "  --json               print one JSON line (accuracy, loss, examples, seconds)\n"
            "  --allow-nonfinite    load a checkpoint holding NaN / Inf values (debugging; a NaN result still exits 1)\n"
            "  --threads T          threads (default: NL_NUM_THREADS or all cores)\n");
}

int cmd_eval(int argc, char **argv) {
    const char *load = NULL, *data = "fashion-mnist", *data_dir = NULL, *split = "test";
    int64_t threads = 0, limit = 0;
    int json = 0, allow_nonfinite = 0;
    nl_cli_opt opts[] = {
        {"--load", NL_OPT_STR, &load, 0, 0, 0, 0, "FILE"},
        {"--data", NL_OPT_STR, &data, 0, 0, 0, 0, "NAME"},
        {"--data-dir", NL_OPT_STR, &data_dir, 0, 0, 0, 0, "DIR"},
        {"--split", NL_OPT_STR, &split, 0, 0, 0, 0, "NAME"},
        {"--limit", NL_OPT_INT, &limit, 1, 1e9, 0, 0, "N"},
        {"--threads", NL_OPT_INT, &threads, 1, 1024, 0, 0, "T"},
        {"--json", NL_OPT_FLAG, &json, 0, 0, 0, 0, NULL},
        {"--allow-nonfinite", NL_OPT_FLAG, &allow_nonfinite, 0, 0, 0, 0, NULL},
    };
    enum { N_OPTS = sizeof opts / sizeof opts[0] };
    int n_pos, help;
    int rc = nl_cli_parse("eval", argc, argv, opts, N_OPTS, NULL, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        help_eval(stdout);
        return NL_CLI_OK;
    }
    if (!load) return nl_cli_usage_error("eval", "--load FILE is required");
    if (strcmp(data, "fashion-mnist") && strcmp(data, "mnist"))
        return nl_cli_usage_error("eval", "--data: unknown dataset '%s' (expected fashion-mnist or mnist)", data);
    if (strcmp(split, "test") && strcmp(split, "train"))
        return nl_cli_usage_error("eval", "--split: unknown split '%s' (expected test or train)", split);
    nl_cli_threads(threads, opts[5].seen);

    nl_model m;
    nl_status s = nl_model_load_opt(&m, load, allow_nonfinite ? NL_LOAD_ALLOW_NONFINITE : 0);
    if (s) {
        fprintf(stderr, "nnlab eval: error: %s\n", nl_last_error());
        return NL_CLI_FAIL;
    }
    /* a model trained with --param ntk|mup needs its forward multipliers back (checkpoints hold values only) */
    nl_parametrization par;
    int has_par = 0;
    if ((s = nl_param_from_checkpoint(load, &par, &has_par)) || (has_par && (s = nl_param_set_multipliers(&m, &par)))) {
        fprintf(stderr, "nnlab eval: error: %s\n", nl_last_error());
        nl_model_free(&m);
        return NL_CLI_FAIL;
    }
    nl_dataset ds;
    if ((s = nl_dataset_load(&ds, data, split, data_dir))) {
        fprintf(stderr, "nnlab eval: error: %s\n", nl_last_error());
        nl_model_free(&m);
        return NL_CLI_FAIL;
    }
    if (limit > 0 && limit < ds.n) ds.n = limit; /* the first rows; nl_dataset_free only frees the buffers */
    double acc = NAN, loss = NAN, t0 = nl_time();
    s = nl_evaluate(&m, &ds, &acc, &loss);
    double secs = nl_time() - t0;
    if (!s && (!isfinite(loss) || !isfinite(acc)))
        s = nl_set_error(NL_ENONFINITE, "the loss on %s %s came out %g (accuracy %g): the model's weights or activations are not "
                         "finite", data, split, loss, acc);
    if (s) {
        fprintf(stderr, "nnlab eval: error: %s\n", nl_last_error());
    } else if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "command", "eval");
        cJSON_AddStringToObject(o, "checkpoint", load);
        cJSON_AddStringToObject(o, "model", nl_model_kind_name(m.cfg.kind));
        cJSON_AddStringToObject(o, "dataset", data);
        cJSON_AddStringToObject(o, "split", split);
        cJSON_AddNumberToObject(o, "examples", (double)ds.n);
        cJSON_AddNumberToObject(o, "accuracy", acc);
        cJSON_AddNumberToObject(o, "loss", loss);
        cJSON_AddNumberToObject(o, "seconds", secs);
        char *txt = cJSON_PrintUnformatted(o);
        printf("%s\n", txt);
        cJSON_free(txt);
        cJSON_Delete(o);
    } else {
        printf("%s (%s, %lld parameters) on %s %s (%lld examples): accuracy %.2f%%, loss %.4f (%.2f s)\n", load,
               nl_model_kind_name(m.cfg.kind), (long long)nl_model_num_params(&m, 1), data, split, (long long)ds.n, 100 * acc, loss, secs);
    }
    nl_dataset_free(&ds);
    nl_model_free(&m);
    return s ? NL_CLI_FAIL : NL_CLI_OK;
}
