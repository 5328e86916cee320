/* nnlab compress — compress a saved model checkpoint: prune, quantise, compensate (UDFC / Neuron Merging), info;
 * reports parameters, size, MACs / FLOPs and test accuracy before and after, and writes an ordinary checkpoint that
 * `nnlab eval` loads (docs/compress.md). */
#include "compress/compensate.h"
#include "compress/compress.h"
#include "compress/kd.h"
#include "nnlab/cli.h"
#include "nnlab/data.h"
#include "nnlab/train.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void help_compress(FILE *f) {
    fprintf(f,
            "usage: nnlab compress info|prune|quantise|compensate CHECKPOINT [options]\n"
            "\n"
            "Compress a model checkpoint (nnlab train --save, or any nnlab MLP / CNN) without data or fine-tuning and report\n"
            "parameters, size, MACs / FLOPs and test accuracy before and after (docs/compress.md):\n"
            "  info        counts only\n"
            "  prune       structured L1 channel pruning of every hidden layer / conv block at --ratio, the next layer rewired\n"
            "  quantise    uniform per-output-channel --bits weights (stored dequantised in f32; size counted at --bits)\n"
            "  compensate  prune at --ratio and quantise to --bits (0 = none), the damage compensated in the next layer:\n"
            "              --method udfc (closed form, needs BatchNorm), nm (Neuron Merging) or none\n"
            "  distil      train a student by knowledge distillation from the checkpoint (the teacher) on the training\n"
            "              images: the student is --student FILE, or the teacher pruned at --ratio (L1); loss\n"
            "              (1 - alpha) CE + alpha T^2 KL (lib/compress/kd.h), SGD with Nesterov momentum, cosine schedule\n"
            "\n"
            "  --out FILE         write the compressed checkpoint (it loads in nnlab eval)\n"
            "  --ratio R          fraction of channels removed per layer, in [0, 1) (prune, compensate; default 0.5)\n"
            "  --bits K           weight bits in [1, 32] (quantise default 8; compensate default 0 = full precision)\n"
            "  --asymmetric       asymmetric (min / max, zero point) quantiser instead of symmetric\n"
            "  --method M         compensate: udfc (default), nm, none\n"
            "  --data NAME        test set for the accuracy: fashion-mnist (default), mnist, or none\n"
            "  --test-limit N     first N test images (default all)\n"
            "  --student FILE     distil: the student checkpoint (default: the teacher pruned at --ratio)\n"
            "  --epochs N         distil: epochs (default 1)\n"
            "  --limit N          distil: first N training images (default all)\n"
            "  --T X, --alpha X   distil: temperature (default 4) and weight of the soft term (default 0.9)\n"
            "  --lr X             distil: learning rate (default 0.1)\n"
            "  --threads T        threads (default NL_NUM_THREADS or all cores)\n");
}

static void report(const char *what, nl_model *m, int bits, const nl_dataset *te) {
    nl_compress_counts k;
    if (nl_compress_count(m, &k)) return;
    double acc = -1;
    if (te && nl_evaluate(m, te, &acc, NULL)) acc = -1;
    printf("%-12s params %10lld  size %10.1f KB (%2d-bit weights)  MACs %12lld  FLOPs %12lld  accuracy %s", what, (long long)k.params,
           nl_compress_size_bytes(m, bits) / 1024.0, bits, (long long)k.macs, (long long)k.flops, acc >= 0 ? "" : "-\n");
    if (acc >= 0) printf("%.2f%%\n", 100 * acc);
}

static nl_var *model_fwd(nl_ctx *c, void *ud, nl_var *x, int train) { return nl_model_forward((nl_model *)ud, c, x, train); }

/* dst = the student (loaded, or the teacher pruned at ratio) trained by KD from teacher on the training images */
static nl_status distil(const char *cmd, nl_model *teacher, const char *student, double ratio, const char *data, int64_t epochs,
                        int64_t limit, double T, double alpha, double lr, nl_model *dst) {
    if (!strcmp(data, "none")) return nl_set_error(NL_EINVAL, "distil needs training images (--data fashion-mnist or mnist)");
    nl_status s = student ? nl_model_load(dst, student) : nl_compress_prune_ratio(teacher, ratio, dst);
    if (s) return s;
    if (dst->in_dim != teacher->in_dim || dst->n_classes != teacher->n_classes) {
        nl_model_free(dst);
        return nl_set_error(NL_EINVAL, "the student (%lld inputs, %d classes) does not match the teacher (%lld, %d)", (long long)dst->in_dim,
                            dst->n_classes, (long long)teacher->in_dim, teacher->n_classes);
    }
    nl_dataset full, tr;
    memset(&tr, 0, sizeof tr);
    if (!(s = nl_dataset_load(&full, data, "train", NULL))) {
        int64_t k = limit > 0 && limit < full.n ? limit : full.n;
        int64_t *idx = malloc((size_t)k * sizeof *idx); /* [k] */
        if (!idx) s = nl_set_error(NL_ENOMEM, "distil: out of memory");
        for (int64_t i = 0; !s && i < k; i++) idx[i] = i;
        if (!s && full.d != teacher->in_dim) s = nl_set_error(NL_EINVAL, "the model takes %lld inputs, %s has %lld", (long long)teacher->in_dim, data, (long long)full.d);
        if (!s) s = nl_dataset_subset(&full, idx, k, &tr);
        free(idx);
        nl_dataset_free(&full);
    }
    float *tl = NULL; /* [n, classes] teacher logits */
    if (!s && !(tl = malloc((size_t)(tr.n * tr.n_classes) * sizeof *tl))) s = nl_set_error(NL_ENOMEM, "distil: out of memory");
    if (!s && tr.n_classes != teacher->n_classes) s = nl_set_error(NL_EINVAL, "the model has %d classes, %s %d", teacher->n_classes, data, tr.n_classes);
    if (!s) s = nl_kd_logits(model_fwd, teacher, &tr, 256, tl);
    if (!s) {
        nl_kd_config kc = nl_kd_defaults();
        kc.T = T;
        kc.alpha = alpha;
        kc.epochs = epochs;
        kc.optim.lr = lr;
        nl_kd_teacher t = {tl, NULL, NULL};
        double loss = NAN;
        s = nl_kd_train(&kc, &t, model_fwd, dst, &dst->ps, &tr, &loss);
        if (!s) printf("distilled %lld epoch(s) on %lld %s training images (T %g, alpha %g, lr %g): last epoch loss %.4f\n", (long long)epochs,
                       (long long)tr.n, data, T, alpha, lr, loss);
    }
    (void)cmd;
    free(tl);
    nl_dataset_free(&tr);
    if (s) nl_model_free(dst);
    return s;
}

int nl_compress_cli(int argc, char **argv) {
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h") || !strcmp(argv[0], "help")) {
        help_compress(argc < 1 ? stderr : stdout);
        return argc < 1 ? NL_CLI_USAGE : NL_CLI_OK;
    }
    const char *sub = argv[0];
    int is_info = !strcmp(sub, "info"), is_prune = !strcmp(sub, "prune"), is_quant = !strcmp(sub, "quantise") || !strcmp(sub, "quantize"),
        is_comp = !strcmp(sub, "compensate");
    int is_distil = !strcmp(sub, "distil") || !strcmp(sub, "distill");
    if (!is_info && !is_prune && !is_quant && !is_comp && !is_distil)
        return nl_cli_usage_error("compress", "unknown subcommand '%s' (info, prune, quantise, compensate or distil)", sub);
    double ratio = 0.5;
    int64_t bits = is_quant ? 8 : 0, test_limit = 0, threads = 0;
    int asym = 0;
    const char *out = NULL, *method = "udfc", *data = "fashion-mnist", *student = NULL;
    int64_t epochs = 1, limit = 0;
    double T = 4, alpha = 0.9, lr = 0.1;
    nl_cli_opt opts[] = {
        {"--out", NL_OPT_STR, &out, 0, 0, 0, 0, "FILE"},
        {"--ratio", NL_OPT_DOUBLE, &ratio, -1e300, 1e300, 0, 0, "R"}, /* range checked below with a clear message */
        {"--bits", NL_OPT_INT, &bits, -1e9, 1e9, 0, 0, "K"},
        {"--asymmetric", NL_OPT_FLAG, &asym, 0, 0, 0, 0, NULL},
        {"--method", NL_OPT_STR, &method, 0, 0, 0, 0, "M"},
        {"--data", NL_OPT_STR, &data, 0, 0, 0, 0, "NAME"},
        {"--test-limit", NL_OPT_INT, &test_limit, 1, 1e9, 0, 0, "N"},
        {"--threads", NL_OPT_INT, &threads, 1, 1024, 0, 0, "T"},
        {"--student", NL_OPT_STR, &student, 0, 0, 0, 0, "FILE"},
        {"--epochs", NL_OPT_INT, &epochs, 1, 100000, 0, 0, "N"},
        {"--limit", NL_OPT_INT, &limit, 2, 1e9, 0, 0, "N"},
        {"--T", NL_OPT_DOUBLE, &T, 0, 1e6, 1, 0, "X"},
        {"--alpha", NL_OPT_DOUBLE, &alpha, 0, 1, 0, 0, "X"},
        {"--lr", NL_OPT_DOUBLE, &lr, 0, 1e3, 1, 0, "X"},
    };
    enum { N_OPTS = sizeof opts / sizeof opts[0] };
    const char *pos[1];
    int n_pos, help;
    char cmd[48];
    snprintf(cmd, sizeof cmd, "compress %s", sub);
    int rc = nl_cli_parse(cmd, argc - 1, argv + 1, opts, N_OPTS, pos, 1, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        help_compress(stdout);
        return NL_CLI_OK;
    }
    if (n_pos != 1) return nl_cli_usage_error(cmd, "which checkpoint? (nnlab compress %s CHECKPOINT)", sub);
    if ((is_prune || is_comp || is_distil) && nl_compress_check_ratio(ratio)) return nl_cli_usage_error(cmd, "--ratio: %s", nl_last_error());
    if ((is_quant || (is_comp && bits != 0)) && nl_compress_check_bits((int)bits))
        return nl_cli_usage_error(cmd, "--bits: %s", nl_last_error());
    nl_comp_kind kind = NL_COMP_UDFC;
    if (!strcmp(method, "nm")) kind = NL_COMP_NM;
    else if (!strcmp(method, "none")) kind = NL_COMP_NONE;
    else if (strcmp(method, "udfc")) return nl_cli_usage_error(cmd, "--method: unknown method '%s' (udfc, nm or none)", method);
    if (strcmp(data, "fashion-mnist") && strcmp(data, "mnist") && strcmp(data, "none"))
        return nl_cli_usage_error(cmd, "--data: unknown dataset '%s' (fashion-mnist, mnist or none)", data);
    if (out && nl_cli_check_output_file(cmd, "--out", out)) return NL_CLI_FAIL;
    nl_cli_threads(threads, nl_cli_seen(opts, N_OPTS, "--threads"));

    nl_model m, c;
    memset(&c, 0, sizeof c);
    nl_status s = nl_model_load(&m, pos[0]);
    if (s) {
        fprintf(stderr, "nnlab %s: error: %s\n", cmd, nl_last_error());
        return NL_CLI_FAIL;
    }
    nl_dataset full, te, *tp = NULL;
    memset(&te, 0, sizeof te);
    if (strcmp(data, "none")) {
        if ((s = nl_dataset_load(&full, data, "test", NULL))) {
            fprintf(stderr, "nnlab %s: error: %s (use --data none to skip the accuracy)\n", cmd, nl_last_error());
            nl_model_free(&m);
            return NL_CLI_FAIL;
        }
        if (full.d != m.in_dim) {
            fprintf(stderr, "nnlab %s: note: the model takes %lld inputs, %s has %lld: accuracy not measured\n", cmd,
                    (long long)m.in_dim, data, (long long)full.d);
            nl_dataset_free(&full);
        } else {
            int64_t k = test_limit > 0 && test_limit < full.n ? test_limit : full.n;
            int64_t *idx = malloc((size_t)k * sizeof *idx); /* [k] */
            if (!idx) s = nl_set_error(NL_ENOMEM, "compress: out of memory");
            for (int64_t i = 0; !s && i < k; i++) idx[i] = i;
            if (!s) s = nl_dataset_subset(&full, idx, k, &te);
            free(idx);
            nl_dataset_free(&full);
            if (!s) tp = &te;
        }
    }
    char desc[160];
    if (!s) report("original", &m, 32, tp);
    if (is_info || s) goto done;
    int qbits = 32;
    if (is_prune) {
        s = nl_compress_prune_ratio(&m, ratio, &c);
        snprintf(desc, sizeof desc, "prune ratio %g (L1)", ratio);
    } else if (is_quant) {
        nl_quant_report qr;
        if (!(s = nl_compress_clone(&m, &c))) s = nl_compress_quantise(&c, (int)bits, !asym, &qr);
        if (!s)
            printf("quantised %lld weights to %d bits (%s, per output channel): relative error %.4g, max abs error %.4g\n",
                   (long long)qr.n_weights, (int)bits, asym ? "asymmetric" : "symmetric", qr.rel_err, qr.max_abs_err);
        qbits = (int)bits;
        snprintf(desc, sizeof desc, "quantise %d bits %s", (int)bits, asym ? "asymmetric" : "symmetric");
    } else if (is_distil) {
        s = distil(cmd, &m, student, ratio, data, epochs, limit, T, alpha, lr, &c);
        snprintf(desc, sizeof desc, "distil T %g alpha %g epochs %lld from a %s", T, alpha, (long long)epochs,
                 student ? "given student" : "pruned teacher");
    } else {
        nl_compensate_opts o = nl_compensate_defaults();
        o.ratio = ratio;
        o.bits = (int)bits;
        o.symmetric = !asym;
        o.prune_comp = kind;
        o.quant_comp = kind != NL_COMP_NONE;
        o.require_bn = kind == NL_COMP_UDFC;
        s = nl_compensate(&m, &o, &c);
        if (bits > 0) qbits = (int)bits;
        snprintf(desc, sizeof desc, "compensate %s ratio %g bits %d", method, ratio, (int)bits);
    }
    if (!s) report("compressed", &c, qbits, tp);
    if (!s && out) {
        const char *keys[1] = {"nnlab.compress"}, *vals[1] = {desc};
        if (!(s = nl_model_save(&c, out, 1, keys, vals))) printf("wrote %s (%s)\n", out, desc);
    }
done:
    if (s) fprintf(stderr, "nnlab %s: error: %s\n", cmd, nl_last_error());
    nl_model_free(&m);
    nl_model_free(&c);
    nl_dataset_free(&te);
    return s ? NL_CLI_FAIL : NL_CLI_OK;
}
