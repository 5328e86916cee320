/* nnlab train mlp|cnn */
#include "app.h"
#include "nnlab/dist.h"
#include "nnlab/param.h"
#include "nnlab/train.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void help_train(FILE *f) {
    fprintf(f,
            "usage: nnlab train mlp|cnn [options]\n"
            "\n"
            "Train a classifier, evaluate it on the test split and optionally save it (safetensors, architecture in\n"
            "the metadata). Progress goes to stderr (a redrawn bar on a terminal, plain lines otherwise).\n"
            "\n"
            "data:\n"
            "  --data NAME          fashion-mnist (default) or mnist\n"
            "  --data-dir DIR       directory with the four IDX files (default: the standard search, docs/data.md)\n"
            "  --limit N            train on the first N training examples only (default: all)\n"
            "  --valid N            hold out N training examples (seeded) for validation (default 0: the test set\n"
            "                       is evaluated after every epoch, for reporting only)\n"
            "model:\n"
            "  --hidden LIST        MLP hidden widths, comma-separated (default 256,256)\n"
            "  --act NAME           relu (default), tanh, gelu, sigmoid\n"
            "  --dropout P          dropout probability in [0, 1) (default 0)\n"
            "  --channels LIST      CNN channels per conv block (default 16,32)\n"
            "  --fc N               CNN hidden fully connected width, 0 = none (default 0)\n"
            "training:\n"
            "  --epochs N           epochs (default 5)\n"
            "  --steps N            train for exactly N steps instead of whole epochs\n"
            "  --batch B            mini-batch size (default 128)\n"
            "  --optim NAME         sgd, adam (default) or adamw\n"
            "  --lr X               learning rate (default 1e-3 for adam/adamw, 0.01 for sgd)\n"
            "  --momentum X         SGD momentum in [0, 1) (default 0.9 with sgd)\n"
            "  --wd X               weight decay (default 0; 0.01 for adamw)\n"
            "  --sched NAME         constant (default), cosine or linear decay to 0 over the run\n"
            "  --warmup N           linear warmup steps (default 0)\n"
            "  --clip X             clip the global gradient norm to X (default: off)\n"
            "  --patience N         early stopping after N epochs without a better validation accuracy (needs --valid)\n"
            "  --seed S             seed of init, shuffling and dropout (default 0)\n"
            "  --threads T          threads (default: NL_NUM_THREADS or all cores)\n"
            "output:\n"
            "  --save FILE          write the trained model (a checkpoint is also written after every epoch); every\n"
            "                       checkpoint is resumable: it also holds the optimizer state, step, data position\n"
            "                       and RNG state (tensors and metadata keys \"train.*\"; `nnlab eval` ignores them)\n"
            "  --save-every N       also write the checkpoint (atomically) every N steps (needs --save)\n"
            "  --resume FILE        continue the run saved in FILE (same model, data, --limit and --batch) up to\n"
            "                       --epochs / --steps in total; the optimizer settings, LR schedule (with its\n"
            "                       horizon) and seed are the saved ones. For a fixed seed and --threads, 2 + 2 epochs\n"
            "                       resumed give bit-identical weights to 4 at once. FILE may equal --save\n"
            "  --json               print one final JSON line on stdout (test_accuracy, epoch_seconds, samples_per_sec, ...)\n"
            "  --quiet              no progress output\n"
            "\n"
            "MPI (a -DNL_MPI=ON build): under `mpirun -np P` the run is data-parallel, each batch split over the P ranks\n"
            "(--batch must be a multiple of P), rank 0 prints and saves (docs/distributed.md)\n"
            "  --bucket-mb X        gradient buckets of X MiB all-reduced during backward, overlapped with it\n"
            "                       (default 1); 0: one blocking all-reduce after backward (the same bits)\n"
            "\n"
            "example: nnlab train mlp --epochs 3 --lr 2e-3 --sched cosine --save mlp.safetensors\n");
}

/* src/cli/cmd_mup.c */

static cJSON *jnum(double v) { return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

int cmd_train(int argc, char **argv) {
    const char *data = "fashion-mnist", *data_dir = NULL, *hidden = "256,256", *act = "relu", *channels = "16,32";
    const char *optim = "adam", *sched = "constant", *save = NULL, *resume = NULL;
    int64_t save_every = 0;
    int64_t epochs = 5, steps = 0, batch = 128, seed = 0, threads = 0, valid = 0, limit = 0, fc = 0, warmup = 0, patience = 0;
    double lr = 0, momentum = 0.9, wd = 0, dropout = 0, clip = 0, bucket_mb = 1;
    int json = 0, quiet = 0;
    /* --param sp|ntk|mup --base-width N ... (include/nnlab/param.h) are taken out of argv first */
    nl_parametrization par = nl_param_defaults();
    {
        int prc = nl_cli_param_extract("train", &argc, argv, &par);
        if (prc) return prc;
    }
    nl_cli_opt opts[] = {
        {"--data", NL_OPT_STR, &data, 0, 0, 0, 0, "NAME"},
        {"--data-dir", NL_OPT_STR, &data_dir, 0, 0, 0, 0, "DIR"},
        {"--limit", NL_OPT_INT, &limit, 1, 1e9, 0, 0, "N"},
        {"--valid", NL_OPT_INT, &valid, 0, 1e9, 0, 0, "N"},
        {"--hidden", NL_OPT_STR, &hidden, 0, 0, 0, 0, "LIST"},
        {"--act", NL_OPT_STR, &act, 0, 0, 0, 0, "NAME"},
        {"--dropout", NL_OPT_DOUBLE, &dropout, 0, 0.999, 0, 0, "P"},
        {"--channels", NL_OPT_STR, &channels, 0, 0, 0, 0, "LIST"},
        {"--fc", NL_OPT_INT, &fc, 0, 1 << 20, 0, 0, "N"},
        {"--epochs", NL_OPT_INT, &epochs, 1, 100000, 0, 0, "N"},
        {"--steps", NL_OPT_INT, &steps, 1, 1e12, 0, 0, "N"},
        {"--batch", NL_OPT_INT, &batch, 1, 65536, 0, 0, "B"},
        {"--optim", NL_OPT_STR, &optim, 0, 0, 0, 0, "NAME"},
        {"--lr", NL_OPT_DOUBLE, &lr, 0, 1e300, 1, 0, "X"},
        {"--momentum", NL_OPT_DOUBLE, &momentum, 0, 0.999999, 0, 0, "X"},
        {"--wd", NL_OPT_DOUBLE, &wd, 0, 1e6, 0, 0, "X"},
        {"--sched", NL_OPT_STR, &sched, 0, 0, 0, 0, "NAME"},
        {"--warmup", NL_OPT_INT, &warmup, 0, 1e12, 0, 0, "N"},
        {"--clip", NL_OPT_DOUBLE, &clip, 0, 1e300, 1, 0, "X"},
        {"--patience", NL_OPT_INT, &patience, 1, 1000000, 0, 0, "N"},
        {"--seed", NL_OPT_INT, &seed, 0, 9.2e18, 0, 0, "S"},
        {"--threads", NL_OPT_INT, &threads, 1, 1024, 0, 0, "T"},
        {"--save", NL_OPT_STR, &save, 0, 0, 0, 0, "FILE"},
        {"--save-every", NL_OPT_INT, &save_every, 1, 1e12, 0, 0, "N"},
        {"--resume", NL_OPT_STR, &resume, 0, 0, 0, 0, "FILE"},
        {"--bucket-mb", NL_OPT_DOUBLE, &bucket_mb, 0, 1e6, 0, 0, "X"},
        {"--json", NL_OPT_FLAG, &json, 0, 0, 0, 0, NULL},
        {"--quiet", NL_OPT_FLAG, &quiet, 0, 0, 0, 0, NULL},
    };
    enum { N_OPTS = sizeof opts / sizeof opts[0] };
    const char *pos[1];
    int n_pos, help;
    int rc = nl_cli_parse("train", argc, argv, opts, N_OPTS, pos, 1, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        help_train(stdout);
        nl_cli_param_help(stdout);
        return NL_CLI_OK;
    }
    int seen_lr = 0, seen_momentum = 0, seen_wd = 0, seen_threads = 0, seen_hidden = 0, seen_channels = 0, seen_fc = 0, seen_patience = 0;
    for (int i = 0; i < N_OPTS; i++) {
        if (!opts[i].seen) continue;
        const char *n = opts[i].name;
        seen_lr |= !strcmp(n, "--lr");
        seen_momentum |= !strcmp(n, "--momentum");
        seen_wd |= !strcmp(n, "--wd");
        seen_threads |= !strcmp(n, "--threads");
        seen_hidden |= !strcmp(n, "--hidden");
        seen_channels |= !strcmp(n, "--channels");
        seen_fc |= !strcmp(n, "--fc");
        seen_patience |= !strcmp(n, "--patience");
    }
    if (n_pos < 1) return nl_cli_usage_error("train", "which model? (nnlab train mlp|cnn)");
    nl_model_kind kind;
    if (nl_model_kind_parse(pos[0], &kind)) return nl_cli_usage_error("train", "unknown model '%s' (expected mlp or cnn)", pos[0]);
    if (strcmp(data, "fashion-mnist") && strcmp(data, "mnist"))
        return nl_cli_usage_error("train", "--data: unknown dataset '%s' (expected fashion-mnist or mnist)", data);
    nl_activation a;
    if (nl_activation_parse(act, &a)) return nl_cli_usage_error("train", "--act: unknown activation '%s' (expected relu, tanh, gelu or sigmoid)", act);
    nl_optim_kind ok;
    if (nl_optim_parse_kind(optim, &ok)) return nl_cli_usage_error("train", "--optim: unknown optimizer '%s' (expected sgd, adam or adamw)", optim);
    nl_sched_kind sk;
    if (!strcmp(sched, "constant")) sk = NL_SCHED_CONSTANT;
    else if (!strcmp(sched, "cosine")) sk = NL_SCHED_COSINE;
    else if (!strcmp(sched, "linear")) sk = NL_SCHED_LINEAR;
    else return nl_cli_usage_error("train", "--sched: unknown schedule '%s' (expected constant, cosine or linear)", sched);
    if (kind == NL_MODEL_MLP && (seen_channels || seen_fc)) return nl_cli_usage_error("train", "--channels and --fc are CNN options");
    if (kind == NL_MODEL_CNN && seen_hidden) return nl_cli_usage_error("train", "--hidden is an MLP option (use --channels / --fc for a CNN)");
    if (seen_patience && valid == 0) return nl_cli_usage_error("train", "--patience needs a validation split (--valid N)");
    if (seen_momentum && ok != NL_OPT_SGD) return nl_cli_usage_error("train", "--momentum applies to --optim sgd only");
    if (valid >= 60000) return nl_cli_usage_error("train", "--valid: %lld leaves no training examples (the training split has 60000)", (long long)valid);

    nl_recipe rc_;
    memset(&rc_, 0, sizeof rc_);
    rc_.dataset = data;
    rc_.data_dir = data_dir;
    rc_.limit = limit;
    rc_.n_valid = valid;
    rc_.standardize = 1;
    char err[256];
    int64_t list[NL_MODEL_MAX_LAYERS + 1];
    int nl;
    if (kind == NL_MODEL_MLP) {
        if (nl_cli_parse_list(hidden, 1, 1 << 20, NL_MODEL_MAX_LAYERS - 1, list + 1, &nl, err, sizeof err))
            return nl_cli_usage_error("train", "--hidden: %s", err);
        list[0] = 784;
        list[nl + 1] = 10;
        rc_.model = nl_mlp_config(nl + 2, list, a, dropout);
    } else {
        if (nl_cli_parse_list(channels, 1, 4096, NL_MODEL_MAX_BLOCKS, list, &nl, err, sizeof err))
            return nl_cli_usage_error("train", "--channels: %s", err);
        if (nl > 4) return nl_cli_usage_error("train", "--channels: at most 4 blocks for 28x28 images (each halves the size)");
        int ch[NL_MODEL_MAX_BLOCKS];
        for (int i = 0; i < nl; i++) ch[i] = (int)list[i];
        rc_.model = nl_cnn_config(1, 28, 28, nl, ch, fc, 10);
        rc_.model.act = a;
        rc_.model.dropout = dropout;
    }
    nl_param_set_optim(&par, ok);
    nl_param_apply(&rc_.model, &par);
    rc_.model_seed = (uint64_t)seed;
    rc_.train = nl_train_defaults();
    rc_.train.epochs = epochs;
    rc_.train.steps = steps;
    rc_.train.batch = batch;
    rc_.train.optim = nl_optim_defaults(ok);
    if (seen_lr) rc_.train.optim.lr = lr;
    if (ok == NL_OPT_SGD) rc_.train.optim.momentum = momentum;
    if (seen_wd) rc_.train.optim.weight_decay = wd;
    rc_.train.optim.sched = sk;
    rc_.train.optim.warmup_steps = warmup;
    rc_.train.optim.clip_norm = clip;
    rc_.train.seed = (uint64_t)seed;
    rc_.train.patience = (int)patience;
    rc_.train.checkpoint_path = save;
    if (save_every > 0 && !save) return nl_cli_usage_error("train", "--save-every needs --save FILE");
    rc_.train.save_every = save_every;
    rc_.train.resume_path = resume;
    rc_.train.verbose = quiet ? 0 : 1;
    rc_.train.dist_bucket_mb = bucket_mb;
    if (save && nl_cli_check_output_file("train", "--save", save)) return NL_CLI_FAIL;
    nl_cli_threads(threads, seen_threads);

    nl_model m;
    nl_recipe_result res;
    nl_status s = nl_recipe_run(&rc_, &m, &res);
    const nl_train_result *tr = &res.train;
    if (!s && save && nl_dist_rank() == 0) { /* data-parallel runs: rank 0 alone writes */
        char acc[32], eps[32];
        snprintf(acc, sizeof acc, "%.6f", res.test_accuracy);
        snprintf(eps, sizeof eps, "%lld", tr->n_epochs ? (long long)tr->epoch[tr->n_epochs - 1].epoch : 0LL); /* resumed runs too */
        const char *k[4 + NL_PARAM_META_N] = {"nnlab.dataset", "nnlab.test_accuracy", "nnlab.epoch", "nnlab.creator"};
        const char *v[4 + NL_PARAM_META_N] = {data, acc, eps, "nnlab train"};
        char pv[NL_PARAM_META_N][32];
        int np = nl_param_metadata(&par, &m.cfg, k + 4, pv); /* the parametrisation, restored by `nnlab eval` */
        for (int i = 0; i < np; i++) v[4 + i] = pv[i];
        if ((s = nl_model_save_keep_state(&m, save, 4 + np, k, v))) {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", nl_last_error());
            nl_set_error(s, "saving the model: %s", msg);
        }
    }
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "command", "train");
        cJSON_AddStringToObject(o, "status", s == NL_OK ? "ok" : s == NL_ENONFINITE ? "nonfinite" : "error");
        if (s) cJSON_AddStringToObject(o, "error", nl_last_error());
        cJSON_AddStringToObject(o, "model", nl_model_kind_name(kind));
        cJSON_AddStringToObject(o, "dataset", data);
        cJSON_AddItemToObject(o, "test_accuracy", jnum(res.test_accuracy));
        cJSON_AddItemToObject(o, "test_loss", jnum(res.test_loss));
        if (valid) {
            cJSON_AddItemToObject(o, "valid_accuracy", jnum(tr->valid_accuracy));
            cJSON_AddItemToObject(o, "best_valid_accuracy", jnum(tr->best_valid_accuracy));
            cJSON_AddNumberToObject(o, "best_epoch", (double)tr->best_epoch);
        }
        cJSON_AddNumberToObject(o, "epochs", tr->n_epochs);
        cJSON_AddNumberToObject(o, "steps", (double)tr->steps);
        cJSON *es = cJSON_AddArrayToObject(o, "epoch_seconds");
        cJSON *el = cJSON_AddArrayToObject(o, "epoch_train_loss");
        cJSON *ea = cJSON_AddArrayToObject(o, valid ? "epoch_valid_accuracy" : "epoch_test_accuracy");
        for (int i = 0; i < tr->n_epochs; i++) {
            cJSON_AddItemToArray(es, jnum(tr->epoch[i].seconds));
            cJSON_AddItemToArray(el, jnum(tr->epoch[i].train_loss));
            cJSON_AddItemToArray(ea, jnum(tr->epoch[i].valid_accuracy));
        }
        cJSON_AddItemToObject(o, "samples_per_sec", jnum(tr->samples_per_sec));
        cJSON_AddItemToObject(o, "train_seconds", jnum(tr->train_seconds));
        cJSON_AddItemToObject(o, "total_seconds", jnum(tr->total_seconds + res.load_seconds));
        cJSON_AddNumberToObject(o, "n_train", (double)res.n_train);
        cJSON_AddNumberToObject(o, "params", m.ps.n ? (double)nl_model_num_params(&m, 1) : 0);
        cJSON_AddNumberToObject(o, "threads", nl_get_num_threads());
        cJSON_AddNumberToObject(o, "seed", (double)seed);
        if (nl_dist_size() > 1) { /* rank 0's seconds (docs/distributed.md) */
            cJSON_AddNumberToObject(o, "dist_ranks", nl_dist_size());
            cJSON_AddNumberToObject(o, "dist_bucket_mb", bucket_mb);
            cJSON_AddItemToObject(o, "dist_backward_seconds", jnum(tr->dist_backward_seconds));
            cJSON_AddItemToObject(o, "dist_hook_seconds", jnum(tr->dist_hook_seconds));
            cJSON_AddItemToObject(o, "dist_comm_seconds", jnum(tr->dist_comm_seconds));
        }
        if (save && (s == NL_OK || tr->checkpoints > 0)) cJSON_AddStringToObject(o, "checkpoint", save);
        else cJSON_AddNullToObject(o, "checkpoint");
        char *txt = cJSON_PrintUnformatted(o);
        printf("%s\n", txt);
        cJSON_free(txt);
        cJSON_Delete(o);
    }
    if (s) {
        fprintf(stderr, "nnlab train: error: %s\n", nl_last_error());
    } else if (!json) {
        printf("%s on %s: test accuracy %.2f%% (loss %.4f)\n", nl_model_kind_name(kind), data, 100 * res.test_accuracy, res.test_loss);
        printf("%d epochs, %lld steps, %lld training examples, %.1f s training, %.0f samples/s, %d threads\n", tr->n_epochs,
               (long long)tr->steps, (long long)res.n_train, tr->train_seconds, tr->samples_per_sec, nl_get_num_threads());
        printf("epoch seconds:");
        for (int i = 0; i < tr->n_epochs; i++) printf(" %.2f", tr->epoch[i].seconds);
        printf("\n");
        if (nl_dist_size() > 1)
            printf("data-parallel on %d ranks (rank 0): backward %.2f s (of which %.2f s in the all-reduce hooks), gradient "
                   "reduction after backward %.2f s (%s)\n", nl_dist_size(), tr->dist_backward_seconds, tr->dist_hook_seconds,
                   tr->dist_comm_seconds, bucket_mb > 0 ? "buckets overlapped with backward" : "blocking");
        if (tr->stopped_early) printf("stopped early: best validation accuracy %.2f%% at epoch %lld\n", 100 * tr->best_valid_accuracy, (long long)tr->best_epoch);
        if (save) printf("saved %s\n", save);
    }
    nl_recipe_result_free(&res);
    nl_model_free(&m);
    return s ? NL_CLI_FAIL : NL_CLI_OK;
}
