/* lib/compress: pruning (against zeroed channels), save / load of pruned models, quantisation on hand rows,
 * BatchNorm folding, FLOP and parameter counts, bad ratios and bit widths. */
#include "nltest.h"
#include "compress/compress.h"
#include "nnlab/cli.h"
#include <unistd.h>

static void logits(nl_model *m, const float *x, int64_t n, double *out) {
    nl_ctx *c = nl_ctx_new(0, 0);
    nl_var *y = nl_model_forward(m, c, nl_model_input(m, c, x, n), 0);
    NLT_CHECK(y != NULL, "forward: %s", nl_last_error());
    for (int64_t i = 0; y && i < n * m->n_classes; i++) out[i] = nl_compress_get(m, y, i);
    nl_ctx_free(c);
}

/* random BN statistics so that BatchNorm is not the identity */
static void perturb_bn(nl_model *m) {
    nl_rng r;
    nl_rng_init(&r, 99, 1);
    for (int l = 0; l < m->n_layers; l++) {
        nl_model_layer *L = &m->layer[l];
        if (!L->rm) continue;
        for (int64_t i = 0; i < L->rm->val.shape[0]; i++) {
            nl_compress_put(m, L->w, i, 0.5 + nl_rng_uniform(&r));
            nl_compress_put(m, L->b, i, nl_rng_uniform(&r) - 0.3);
            nl_compress_put(m, L->rm, i, 0.2 * nl_rng_uniform(&r));
            nl_compress_put(m, L->rv, i, 0.5 + nl_rng_uniform(&r));
        }
    }
}

/* pruned model == the original with the removed channels silenced (output 0 after the ReLU) */
static void check_prune(const char *what, nl_model *m, int unit, double ratio, const float *x, int64_t n) {
    perturb_bn(m);
    nl_compress_unit u[NL_COMPRESS_MAX_UNITS];
    int nu;
    NLT_OK(nl_compress_units(m, u, &nu));
    int64_t keep[512], nk;
    NLT_OK(nl_compress_l1_keep(m, unit, ratio, keep, &nk));
    nl_model p, z;
    NLT_OK(nl_compress_prune(m, unit, keep, nk, &p));
    NLT_OK(nl_compress_clone(m, &z));
    const nl_compress_unit *q = &u[unit];
    for (int64_t c = 0, k = 0; c < q->width; c++) {
        if (k < nk && keep[k] == c) {
            k++;
            continue;
        }
        for (int64_t t = 0; t < q->fan_in; t++) nl_compress_put(&z, z.layer[q->prod].w, c * q->fan_in + t, 0);
        if (z.layer[q->prod].b) nl_compress_put(&z, z.layer[q->prod].b, c, 0);
        if (q->bn >= 0) nl_compress_put(&z, z.layer[q->bn].b, c, 0);
    }
    double a[64], b[64];
    logits(&p, x, n, a);
    logits(&z, x, n, b);
    double worst = 0;
    for (int64_t i = 0; i < n * m->n_classes; i++) worst = fmax(worst, fabs(a[i] - b[i]));
    NLT_CHECK(worst < 1e-4, "%s: pruned vs silenced differ by %g", what, worst);
    NLT_CHECK(nl_model_num_params(&p, 0) < nl_model_num_params(m, 0), "%s: fewer parameters", what);
    /* a pruned model is an ordinary checkpoint */
    char path[] = "/tmp/nltest_compress_XXXXXX";
    int fd = mkstemp(path);
    NLT_CHECK(fd >= 0, "mkstemp");
    close(fd);
    NLT_OK(nl_model_save(&p, path, 0, NULL, NULL));
    nl_model l;
    NLT_OK(nl_model_load(&l, path));
    logits(&l, x, n, b);
    for (int64_t i = 0; i < n * m->n_classes; i++) NLT_CHECK(a[i] == b[i], "%s: loaded logit %lld", what, (long long)i);
    nl_model_free(&l);
    unlink(path);
    nl_model_free(&p);
    nl_model_free(&z);
}

static void test_prune(void) {
    float x[4 * 144];
    for (int i = 0; i < 4 * 144; i++) x[i] = (float)(0.5 + 0.5 * sin(0.7 * i));
    int64_t s[4] = {144, 20, 12, 5};
    nl_model_config c = nl_mlp_config(4, s, NL_ACT_RELU, 0.0);
    nl_model m;
    for (int bn = 0; bn < 2; bn++) {
        c.batchnorm = bn;
        NLT_OK(nl_model_init(&m, &c, 3));
        check_prune(bn ? "mlp bn unit 0" : "mlp unit 0", &m, 0, 0.5, x, 4);
        check_prune(bn ? "mlp bn unit 1" : "mlp unit 1", &m, 1, 0.7, x, 4);
        nl_model_free(&m);
    }
    int ch[3] = {6, 8, 5};
    nl_model_config cc = nl_cnn_config(1, 12, 12, 3, ch, 7, 4);
    cc.pool_mask = 0x5;
    NLT_OK(nl_model_init(&m, &cc, 4));
    check_prune("cnn conv -> conv", &m, 0, 0.5, x, 4);
    check_prune("cnn conv -> flatten fc", &m, 2, 0.6, x, 4);
    check_prune("cnn hidden fc", &m, 3, 0.4, x, 4);
    nl_model p;
    NLT_OK(nl_compress_prune_ratio(&m, 0.5, &p));
    NLT_CHECK(p.cfg.channels[0] == 3 && p.cfg.channels[1] == 4 && p.cfg.channels[2] == 3 && p.cfg.hidden == 4, "prune_ratio widths");
    nl_model_free(&p);
    NLT_CHECK(nl_compress_prune_ratio(&m, 1.0, &p) == NL_EINVAL && strstr(nl_last_error(), "[0, 1)"), "ratio 1: %s", nl_last_error());
    NLT_CHECK(nl_compress_prune_ratio(&m, -0.1, &p) == NL_EINVAL, "ratio -0.1");
    nl_model_free(&m);
}

static void test_quant(void) {
    double a[4] = {-1, -0.4, 0.2, 1}, sq = 0;
    nl_compress_quant_row(a, 4, 2, 1, &sq);
    NLT_CHECK(a[0] == -1 && a[1] == 0 && a[2] == 0 && a[3] == 1, "sym 2 bit: %g %g %g %g", a[0], a[1], a[2], a[3]);
    NLT_NEAR(sq, 0.16 + 0.04, 1e-12);
    double b[4] = {0, 1, 2, 3};
    nl_compress_quant_row(b, 4, 2, 0, NULL);
    NLT_CHECK(b[0] == 0 && b[1] == 1 && b[2] == 2 && b[3] == 3, "asym 2 bit exact grid");
    double c1[4] = {-2, 1, 3, -0.5};
    nl_compress_quant_row(c1, 4, 1, 1, NULL);
    NLT_CHECK(c1[0] == -1.625 && c1[1] == 1.625 && c1[3] == -1.625, "1 bit = sign * mean|x|");
    int64_t s[3] = {30, 16, 4};
    nl_model_config cfg = nl_mlp_config(3, s, NL_ACT_RELU, 0.0);
    double prev = 1e9;
    for (int bits = 2; bits <= 8; bits += 2) {
        nl_model m;
        NLT_OK(nl_model_init(&m, &cfg, 1));
        nl_quant_report r;
        NLT_OK(nl_compress_quantise(&m, bits, 1, &r));
        NLT_CHECK(r.n_weights == 30 * 16 + 16 * 4 && r.rel_err < prev && r.rel_err > 0, "%d bits: rel err %g", bits, r.rel_err);
        prev = r.rel_err;
        nl_model_free(&m);
    }
    nl_model m;
    NLT_OK(nl_model_init(&m, &cfg, 1));
    nl_quant_report r;
    NLT_OK(nl_compress_quantise(&m, 32, 0, &r));
    NLT_CHECK(r.rel_err < 1e-7, "32 bits: %g", r.rel_err);
    NLT_CHECK(nl_compress_quantise(&m, 0, 1, &r) == NL_EINVAL && strstr(nl_last_error(), "[1, 32]"), "0 bits");
    NLT_CHECK(nl_compress_quantise(&m, 33, 1, &r) == NL_EINVAL, "33 bits");
    nl_model_free(&m);
}

static void test_bn_fold_and_count(void) {
    float x[3 * 100];
    for (int i = 0; i < 300; i++) x[i] = (float)cos(0.3 * i);
    int ch[2] = {4, 6};
    nl_model_config cc = nl_cnn_config(1, 10, 10, 2, ch, 0, 3);
    nl_model m, f;
    NLT_OK(nl_model_init(&m, &cc, 5));
    perturb_bn(&m);
    NLT_OK(nl_compress_bn_fold(&m, &f));
    NLT_CHECK(!f.cfg.batchnorm && nl_params_find(&f.ps, "conv1.bias"), "folded model has conv biases");
    double a[9], b[9];
    logits(&m, x, 3, a);
    logits(&f, x, 3, b);
    for (int i = 0; i < 9; i++) NLT_NEAR(a[i], b[i], 1e-4);
    nl_compress_counts k;
    NLT_OK(nl_compress_count(&m, &k));
    /* conv1 4*1*9 at 10x10, conv2 6*4*9 at 5x5, fc 6*2*2*3 */
    int64_t macs = 36 * 100 + 216 * 25 + 72;
    NLT_CHECK(k.macs == macs && k.weights == 36 + 216 + 72, "cnn macs %lld weights %lld", (long long)k.macs, (long long)k.weights);
    NLT_CHECK(k.flops == 2 * macs + 2 * (400 + 150) + 3, "cnn flops %lld", (long long)k.flops);
    NLT_CHECK(k.params == nl_model_num_params(&m, 0), "params");
    nl_model_free(&m);
    nl_model_free(&f);
    int64_t s[4] = {784, 300, 100, 10};
    nl_model_config lc = nl_mlp_config(4, s, NL_ACT_RELU, 0.0);
    lc.batchnorm = 1;
    NLT_OK(nl_model_init(&m, &lc, 1));
    NLT_OK(nl_compress_count(&m, &k));
    NLT_CHECK(k.macs == 266200, "lenet-300-100 macs %lld", (long long)k.macs);
    double full = nl_compress_size_bytes(&m, 32), q4 = nl_compress_size_bytes(&m, 4);
    NLT_NEAR(full, 4.0 * (double)k.params, 1e-9);
    NLT_NEAR(q4, 266200 * 0.5 + 8.0 * 410 + 4.0 * (double)(k.params - 266200), 1e-9);
    nl_model_free(&m);
}

static int run_cli(const char *a0, const char *a1, const char *a2, const char *a3, const char *a4, const char *a5) {
    char *argv[8];
    const char *in[6] = {a0, a1, a2, a3, a4, a5};
    int n = 0;
    for (int i = 0; i < 6 && in[i]; i++) argv[n++] = (char *)in[i];
    argv[n] = NULL;
    return nl_compress_cli(n, argv);
}

/* nnlab compress on saved checkpoints: outputs load as ordinary models; bad ratios / bits and UDFC without BatchNorm
 * give a clear error and a non-zero exit status */
static void test_cli(void) {
    char dir[] = "/tmp/nltest_compress_cli_XXXXXX";
    NLT_CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char bn[256], plain[256], out[256];
    snprintf(bn, sizeof bn, "%s/bn.safetensors", dir);
    snprintf(plain, sizeof plain, "%s/plain.safetensors", dir);
    snprintf(out, sizeof out, "%s/out.safetensors", dir);
    int64_t s[4] = {784, 40, 20, 10};
    nl_model_config c = nl_mlp_config(4, s, NL_ACT_RELU, 0.0);
    nl_model m;
    NLT_OK(nl_model_init(&m, &c, 1));
    NLT_OK(nl_model_save(&m, plain, 0, NULL, NULL));
    nl_model_free(&m);
    c.batchnorm = 1;
    NLT_OK(nl_model_init(&m, &c, 1));
    perturb_bn(&m);
    NLT_OK(nl_model_save(&m, bn, 0, NULL, NULL));
    nl_model_free(&m);
    NLT_CHECK(run_cli("compensate", bn, "--ratio", "0.5", "--data", "none") == 0, "compensate ok");
    char *av[11] = {"compensate", bn, "--ratio", "0.6", "--bits", "4", "--data", "none", "--out", out, NULL};
    NLT_CHECK(nl_compress_cli(10, av) == 0, "compensate --out");
    NLT_OK(nl_model_load(&m, out));
    NLT_CHECK(m.cfg.sizes[1] == 16 && m.cfg.sizes[2] == 8 && m.cfg.batchnorm == 1, "saved widths %lld %lld", (long long)m.cfg.sizes[1], (long long)m.cfg.sizes[2]);
    nl_model_free(&m);
    char *ap[9] = {"prune", plain, "--ratio", "0.5", "--data", "none", "--out", out, NULL};
    NLT_CHECK(nl_compress_cli(8, ap) == 0, "prune --out");
    NLT_OK(nl_model_load(&m, out));
    NLT_CHECK(m.cfg.sizes[1] == 20 && m.cfg.sizes[2] == 10, "pruned widths");
    nl_model_free(&m);
    NLT_CHECK(run_cli("quantise", plain, "--bits", "4", "--data", "none") == 0, "quantise 4");
    NLT_CHECK(run_cli("info", plain, "--data", "none", NULL, NULL) == 0, "info");
    /* bad input */
    NLT_CHECK(run_cli("prune", plain, "--ratio", "1", "--data", "none") == NL_CLI_USAGE, "ratio 1");
    NLT_CHECK(run_cli("prune", plain, "--ratio", "-0.1", "--data", "none") == NL_CLI_USAGE, "ratio -0.1");
    NLT_CHECK(run_cli("compensate", bn, "--ratio", "1.5", "--data", "none") == NL_CLI_USAGE, "ratio 1.5");
    NLT_CHECK(run_cli("quantise", plain, "--bits", "0", "--data", "none") == NL_CLI_USAGE, "0 bits");
    NLT_CHECK(run_cli("quantise", plain, "--bits", "33", "--data", "none") == NL_CLI_USAGE, "33 bits");
    NLT_CHECK(run_cli("compensate", bn, "--bits", "33", "--data", "none") == NL_CLI_USAGE, "compensate 33 bits");
    NLT_CHECK(run_cli("compensate", plain, "--ratio", "0.5", "--data", "none") == NL_CLI_FAIL, "UDFC without BatchNorm");
    NLT_CHECK(strstr(nl_last_error(), "BatchNorm") != NULL, "message names BatchNorm: %s", nl_last_error());
    NLT_CHECK(run_cli("compensate", plain, "--method", "nm", "--data", "none") == 0, "Neuron Merging needs no BatchNorm");
    NLT_CHECK(run_cli("prune", "/nonexistent.safetensors", "--data", "none", NULL, NULL) == NL_CLI_FAIL, "missing file");
    NLT_CHECK(run_cli("shrink", plain, NULL, NULL, NULL, NULL) == NL_CLI_USAGE, "unknown subcommand");
    NLT_CHECK(run_cli("distil", plain, "--ratio", "1", NULL, NULL) == NL_CLI_USAGE, "distil ratio 1");
    NLT_CHECK(run_cli("distil", plain, "--data", "none", NULL, NULL) == NL_CLI_FAIL, "distil needs data");
    nl_dataset probe;
    if (nl_dataset_load(&probe, "fashion-mnist", "test", NULL) == NL_OK) {
        nl_dataset_free(&probe);
        char *ad[13] = {"distil", bn, "--ratio", "0.5", "--limit", "256", "--test-limit", "200", "--out", out, "--epochs", "1", NULL};
        NLT_CHECK(nl_compress_cli(12, ad) == 0, "distil a pruned student");
        NLT_OK(nl_model_load(&m, out));
        NLT_CHECK(m.cfg.sizes[1] == 20 && m.cfg.batchnorm == 1, "distilled student widths");
        nl_model_free(&m);
    } else printf("  (fashion-mnist not installed: distil run skipped)\n");
    unlink(bn), unlink(plain), unlink(out);
    rmdir(dir);
}

int main(void) {
    nl_threads_init();
    NLT_RUN(test_prune);
    NLT_RUN(test_quant);
    NLT_RUN(test_bn_fold_and_count);
    NLT_RUN(test_cli);
    return nlt_finish();
}
