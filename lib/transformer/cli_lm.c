/* nnlab lm train|eval|generate: the transformer language model (lib/transformer/README.md). */
#include "nnlab/cli.h"
#include "transformer/transformer.h"
#include "nnlab/dist.h"
#include "nnlab/safetensors.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>


static void help_lm(FILE *f) {
    fprintf(f,
            "usage: nnlab lm train|eval|generate [options]\n"
            "\n"
            "A decoder-only transformer language model with rotary position embeddings (RoPE) and the Giraffe context\n"
            "extensions, on a byte-level text corpus (KJV Bible + fortunes from Debian packages) or on the synthetic\n"
            "LongChat-Lines retrieval task (word-level tokens). lib/transformer/README.md, methods/giraffe/README.md.\n"
            "\n"
            "  train      train a model (or fine-tune one with --load), report validation perplexity, --save it\n"
            "  eval       perplexity / bits per character of a checkpoint (or Lines retrieval accuracy)\n"
            "  generate   sample a continuation of --prompt with a KV cache (temperature, top-k)\n"
            "\n"
            "Run `nnlab lm COMMAND --help` for the options of each.\n");
}

#define MODEL_HELP                                                                                                \
    "model (train; ignored with --load except where noted):\n"                                                    \
    "  --context N          training window in tokens (default 128; with --load: the new fine-tuning length)\n"  \
    "  --layers N           transformer blocks (default 2)\n"                                                     \
    "  --d-model N          width (default 128)\n"                                                                \
    "  --heads N            attention heads; d_model/heads must be even (default 4: head dim 32)\n"               \
    "  --d-ff N             MLP width (default 4 d_model)\n"                                                      \
    "  --norm KIND          layernorm (default) | rmsnorm | batchnorm | powernorm\n"                              \
    "  --untied             separate output matrix (default: tied to the token embedding)\n"                      \
    "position encoding and attention (also for eval/generate: override the checkpoint's settings):\n"            \
    "  --rope VARIANT       plain (default) | linear | power | truncated | xpos\n"                                \
    "  --scale S            linear scale for training and evaluation (sets both)\n"                               \
    "  --train-scale S      scale while training / fine-tuning\n"                                                 \
    "  --eval-scale S       scale when evaluating / generating\n"                                                 \
    "  --power K            power-basis exponent (default 0.5)\n"                                                 \
    "  --truncate T         truncated-basis wavelength cutoff in positions (default 2048)\n"                      \
    "  --xpos-gamma G       xPos scale base (default 512)\n"                                                      \
    "  --rope-base B        RoPE base (default 10000)\n"                                                          \
    "  --random-pos         randomised training positions (cumsum of U[0,2), rescaled to the length)\n"           \
    "  --attn KIND          vanilla (default) | lminf (LM-Infinite Lambda attention)\n"                           \
    "  --n-global N         lminf: always-visible starting tokens (default 4)\n"                                  \
    "  --n-local N          lminf: local window and distance limit (default: the training context)\n"

static void help_lm_train(FILE *f) {
    fprintf(f,
            "usage: nnlab lm train [options]\n"
            "\n"
            "Train with AdamW, linear warmup + cosine decay, gradient clipping; then report the validation perplexity\n"
            "(per token), bits per character and the training throughput.\n"
            "\n"
            "data:\n"
            "  --corpus SPEC        default (KJV + fortunes) | kjv | fortunes | FILE (raw bytes); split 90/5/5 by\n"
            "                       contiguous 64 KiB chunks\n"
            "  --task NAME          text (default) or lines (synthetic LongChat-Lines retrieval, word tokens)\n"
            "  --haystack           lines task: one line hidden at a random depth in filler sentences, prompts of\n"
            "                       every length up to --context (default: lines back to back, as many as fit)\n" MODEL_HELP
            "training:\n"
            "  --steps N            optimizer steps (default 300)\n"
            "  --batch B            sequences per step (default 16)\n"
            "  --lr X               peak learning rate (default 3e-3)\n"
            "  --warmup N           linear warmup steps (default 20)\n"
            "  --wd X               AdamW weight decay on matrices (default 0.01)\n"
            "  --clip X             global gradient-norm clip (default 1)\n"
            "  --seed S             init and data seed (default 0)\n"
            "  --threads T          threads (default: NL_NUM_THREADS or all cores)\n"
            "  --load FILE          start from a checkpoint (fine-tuning; its architecture is used)\n"
            "  --save FILE          write the trained model (safetensors, architecture in __metadata__); the file is\n"
            "                       resumable: it also holds the AdamW state, the step and the RNG states (tensors\n"
            "                       and metadata keys \"train.*\", ignored by eval/generate/--load)\n"
            "  --save-every N       also write --save FILE (atomically) every N steps\n"
            "  --resume FILE        continue the run saved in FILE up to --steps in total (task text only; give the\n"
            "                       same model flags, --batch and --context; the optimizer settings and the LR\n"
            "                       schedule with its horizon are the saved ones). For a fixed seed and --threads,\n"
            "                       the result is bit-identical to the uninterrupted run. FILE may equal --save\n"
            "  --stop-after N       stop after N steps in total although the schedule spans --steps (train in parts)\n"
            "  --json               one final JSON line on stdout (step_loss: the loss of every step)\n"
            "  --quiet              no progress lines\n"
            "\n"
            "Under mpirun (an -DNL_MPI=ON build) training is data-parallel: --batch is split evenly over the ranks (a\n"
            "multiple of the rank count); rank 0 alone prints, evaluates and writes --save (docs/distributed.md).\n"
            "  --bucket-mb X        gradient buckets of X MiB all-reduced during backward, overlapped with it\n"
            "                       (default 1); 0: one blocking all-reduce after backward (the same bits)\n"
            "\n"
            "example: nnlab lm train --steps 300 --save lm.safetensors\n"
            "         nnlab lm train --load lm.safetensors --context 512 --rope linear --scale 4 --steps 100 --save ft.safetensors\n");
}

static void help_lm_eval(FILE *f) {
    fprintf(f,
            "usage: nnlab lm eval --load FILE [options]\n"
            "\n"
            "Text models: mean negative log-likelihood over non-overlapping windows of --context tokens of a split, as\n"
            "perplexity per token (byte) and bits per character. Lines models (--task lines): greedy retrieval\n"
            "accuracy (first generated integer == the queried value).\n"
            "\n"
            "  --load FILE          checkpoint (required)\n"
            "  --corpus SPEC        as for train (default: default)\n"
            "  --split NAME         valid (default) | test | train\n"
            "  --task NAME          text (default) | lines\n"
            "  --context N          evaluation window (default: the model's training context)\n"
            "  --extrapolate        allow --context beyond the training context (RoPE extrapolation/interpolation)\n"
            "  --max-windows N      evaluate at most N windows (default 64)\n"
            "  --lines N            lines task: lines per prompt (default: as many as fit in --context; 1 with\n"
            "                       --haystack)\n"
            "  --haystack           lines task: the lines hidden in filler sentences, prompt of exactly --context\n"
            "                       minus the 8 answer tokens\n"
            "  --samples N          lines task: prompts (default 50)\n"
            "  --allow-nonfinite    load a checkpoint holding NaN / Inf values (debugging; a NaN result still exits 1)\n"
            "  --seed S, --threads T, --json\n" MODEL_HELP);
}

static void help_lm_generate(FILE *f) {
    fprintf(f,
            "usage: nnlab lm generate --load FILE --prompt TEXT [options]\n"
            "\n"
            "Continue a byte-level prompt with the KV cache (memory grows with the context for vanilla attention;\n"
            "bounded with --attn lminf).\n"
            "\n"
            "  --load FILE          checkpoint (required, a text model)\n"
            "  --prompt TEXT        the prompt (required, non-empty)\n"
            "  --tokens N           bytes to generate (default 200)\n"
            "  --temperature X      0 = greedy; default 0.8\n"
            "  --top-k K            sample among the K most likely bytes (default 40; 0 = all)\n"
            "  --extrapolate        allow prompt + tokens beyond the training context\n"
            "  --allow-nonfinite    load a checkpoint holding NaN / Inf values (debugging; NaN logits still exit 1)\n"
            "  --seed S, --threads T, --json\n" MODEL_HELP);
}

static cJSON *jnum(double v) { return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

static void print_json(cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    if (s) printf("%s\n", s);
    free(s);
    cJSON_Delete(o);
}

/* A copy of the n bytes of s as valid UTF-8 (malloc'd, NUL-terminated): every byte that does not start a
 * well-formed sequence (stray continuation bytes, truncated, overlong or surrogate sequences, code points above
 * U+10FFFF) and every NUL becomes U+FFFD. NULL when out of memory. */
static char *utf8_sanitize(const char *s, int64_t n) {
    const unsigned char *u = (const unsigned char *)s;
    char *o = malloc((size_t)n * 3 + 1), *w = o;
    if (!o) return NULL;
    for (int64_t i = 0; i < n;) {
        const unsigned c = u[i];
        int len = c >= 0x01 && c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
        if (len > 1) {
            /* the second byte's range depends on the first (no overlongs, no surrogates, nothing above U+10FFFF) */
            const unsigned lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80, hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
            if (i + len > n || u[i + 1] < lo || u[i + 1] > hi) len = 0;
            for (int k = 2; len && k < len; k++)
                if (u[i + k] < 0x80 || u[i + k] > 0xBF) len = 0;
        }
        if (!len) {
            memcpy(w, "\xEF\xBF\xBD", 3);
            w += 3;
            i++;
        } else {
            memcpy(w, u + i, (size_t)len);
            w += len;
            i += len;
        }
    }
    *w = 0;
    return o;
}

static int fail(const char *cmd) {
    fprintf(stderr, "nnlab lm %s: %s\n", cmd, nl_last_error());
    return NL_CLI_FAIL;
}

/* ---- shared options ---- */
typedef struct {
    int64_t context, layers, d_model, heads, d_ff, n_global, n_local;
    const char *norm, *rope, *attn;
    double scale, train_scale, eval_scale, power, truncate, xpos_gamma, rope_base;
    int untied, random_pos;
} model_opts;

#define MODEL_OPTS(mo)                                                          \
    {"--context", NL_OPT_INT, &(mo).context, 1, 1 << 20, 0, 0, "N"},               \
    {"--layers", NL_OPT_INT, &(mo).layers, 1, NL_LM_MAX_LAYERS, 0, 0, "N"},        \
    {"--d-model", NL_OPT_INT, &(mo).d_model, 2, 1 << 16, 0, 0, "N"},               \
    {"--heads", NL_OPT_INT, &(mo).heads, 1, 1024, 0, 0, "N"},                      \
    {"--d-ff", NL_OPT_INT, &(mo).d_ff, 1, 1 << 18, 0, 0, "N"},                     \
    {"--norm", NL_OPT_STR, &(mo).norm, 0, 0, 0, 0, "KIND"},                        \
    {"--untied", NL_OPT_FLAG, &(mo).untied, 0, 0, 0, 0, NULL},                     \
    {"--rope", NL_OPT_STR, &(mo).rope, 0, 0, 0, 0, "VARIANT"},                     \
    {"--scale", NL_OPT_DOUBLE, &(mo).scale, 0, 1e9, 1, 0, "S"},                    \
    {"--train-scale", NL_OPT_DOUBLE, &(mo).train_scale, 0, 1e9, 1, 0, "S"},        \
    {"--eval-scale", NL_OPT_DOUBLE, &(mo).eval_scale, 0, 1e9, 1, 0, "S"},          \
    {"--power", NL_OPT_DOUBLE, &(mo).power, 0, 1e3, 1, 0, "K"},                    \
    {"--truncate", NL_OPT_DOUBLE, &(mo).truncate, 0, 1e12, 1, 0, "T"},             \
    {"--xpos-gamma", NL_OPT_DOUBLE, &(mo).xpos_gamma, 0, 1e12, 1, 0, "G"},         \
    {"--rope-base", NL_OPT_DOUBLE, &(mo).rope_base, 1, 1e12, 1, 0, "B"},           \
    {"--random-pos", NL_OPT_FLAG, &(mo).random_pos, 0, 0, 0, 0, NULL},             \
    {"--attn", NL_OPT_STR, &(mo).attn, 0, 0, 0, 0, "KIND"},                        \
    {"--n-global", NL_OPT_INT, &(mo).n_global, 0, 1 << 20, 0, 0, "N"},             \
    {"--n-local", NL_OPT_INT, &(mo).n_local, 1, 1 << 20, 0, 0, "N"}

/* Apply the position/attention options that were given to cfg (architecture options only when arch). Returns
 * NL_CLI_OK or NL_CLI_USAGE. */
static int apply_model_opts(const char *cmd, const model_opts *mo, const nl_cli_opt *o, int n, nl_lm_config *c, int arch) {
    if (arch) {
        if (nl_cli_seen(o, n, "--context")) c->context = (int)mo->context;
        if (nl_cli_seen(o, n, "--layers")) c->n_layers = (int)mo->layers;
        if (nl_cli_seen(o, n, "--d-model")) c->d_model = (int)mo->d_model;
        if (nl_cli_seen(o, n, "--heads")) c->n_heads = (int)mo->heads;
        c->d_ff = nl_cli_seen(o, n, "--d-ff") ? (int)mo->d_ff : 4 * c->d_model;
        if (nl_cli_seen(o, n, "--untied")) c->tie_weights = 0;
        if (nl_cli_seen(o, n, "--norm") && nl_lm_norm_parse(mo->norm, &c->norm)) return nl_cli_usage_error(cmd, "--norm: %s", nl_last_error());
    }
    if (nl_cli_seen(o, n, "--rope") && nl_rope_variant_parse(mo->rope, &c->rope.variant))
        return nl_cli_usage_error(cmd, "--rope: %s", nl_last_error());
    if (nl_cli_seen(o, n, "--scale")) c->rope.scale_train = c->rope.scale_eval = mo->scale;
    if (nl_cli_seen(o, n, "--train-scale")) c->rope.scale_train = mo->train_scale;
    if (nl_cli_seen(o, n, "--eval-scale")) c->rope.scale_eval = mo->eval_scale;
    if (nl_cli_seen(o, n, "--power")) c->rope.power = mo->power;
    if (nl_cli_seen(o, n, "--truncate")) c->rope.truncate = mo->truncate;
    if (nl_cli_seen(o, n, "--xpos-gamma")) c->rope.xpos_gamma = mo->xpos_gamma;
    if (nl_cli_seen(o, n, "--rope-base")) c->rope.base = mo->rope_base;
    if (nl_cli_seen(o, n, "--random-pos")) c->rope.randomized = 1;
    /* switching to plain resets the scales (plain takes none) */
    if (c->rope.variant == NL_ROPE_PLAIN && !nl_cli_seen(o, n, "--scale") && !nl_cli_seen(o, n, "--train-scale") && !nl_cli_seen(o, n, "--eval-scale"))
        c->rope.scale_train = c->rope.scale_eval = 1;
    if (nl_cli_seen(o, n, "--attn")) {
        if (nl_lm_attn_parse(mo->attn, &c->attn)) return nl_cli_usage_error(cmd, "--attn: %s", nl_last_error());
        if (c->attn == NL_LM_ATTN_CUSTOM) return nl_cli_usage_error(cmd, "--attn: custom attention is for library use only");
    }
    if (nl_cli_seen(o, n, "--n-global")) c->lminf_global = (int)mo->n_global;
    if (nl_cli_seen(o, n, "--n-local")) c->lminf_local = (int)mo->n_local;
    if (nl_rope_config_check(&c->rope)) return nl_cli_usage_error(cmd, "%s", nl_last_error());
    return NL_CLI_OK;
}

typedef struct {
    int32_t *train, *valid, *test;
    int64_t n_train, n_valid, n_test;
} corpus;

static nl_status load_corpus(const char *spec, corpus *cp) {
    uint8_t *buf;
    int64_t n;
    memset(cp, 0, sizeof *cp);
    nl_status st = nl_lm_corpus_load(spec, &buf, &n);
    if (st) return st;
    st = nl_lm_corpus_split(buf, n, 0, &cp->train, &cp->n_train, &cp->valid, &cp->n_valid, &cp->test, &cp->n_test);
    free(buf);
    return st;
}

static void free_corpus(corpus *cp) {
    free(cp->train);
    free(cp->valid);
    free(cp->test);
}

/* ---- train ---- */
static int lm_train(int argc, char **argv) {
    const char *cmd = "lm train";
    model_opts mo = {128, 2, 128, 4, 0, 4, 0, "layernorm", "plain", "vanilla", 1, 1, 1, 0.5, 2048, 512, 10000, 0, 0};
    const char *corpus_spec = "default", *task = "text", *load = NULL, *save = NULL, *resume = NULL;
    int64_t save_every = 0, stop_after = 0;
    int64_t steps = 300, batch = 16, warmup = 20, seed = 0, threads = 0;
    double lr = 3e-3, wd = 0.01, clip = 1.0, bucket_mb = 1;
    int json = 0, quiet = 0, haystack = 0;
    nl_cli_opt opts[] = {
        MODEL_OPTS(mo),
        {"--corpus", NL_OPT_STR, &corpus_spec, 0, 0, 0, 0, "SPEC"},
        {"--task", NL_OPT_STR, &task, 0, 0, 0, 0, "NAME"},
        {"--haystack", NL_OPT_FLAG, &haystack, 0, 0, 0, 0, NULL},
        {"--steps", NL_OPT_INT, &steps, 1, 1e12, 0, 0, "N"},
        {"--batch", NL_OPT_INT, &batch, 1, 65536, 0, 0, "B"},
        {"--lr", NL_OPT_DOUBLE, &lr, 0, 10, 1, 0, "X"},
        {"--warmup", NL_OPT_INT, &warmup, 0, 1e12, 0, 0, "N"},
        {"--wd", NL_OPT_DOUBLE, &wd, 0, 10, 0, 0, "X"},
        {"--clip", NL_OPT_DOUBLE, &clip, 0, 1e300, 0, 0, "X"},
        {"--seed", NL_OPT_INT, &seed, 0, 9.2e18, 0, 0, "S"},
        {"--threads", NL_OPT_INT, &threads, 1, 1024, 0, 0, "T"},
        {"--load", NL_OPT_STR, &load, 0, 0, 0, 0, "FILE"},
        {"--save", NL_OPT_STR, &save, 0, 0, 0, 0, "FILE"},
        {"--save-every", NL_OPT_INT, &save_every, 1, 1e12, 0, 0, "N"},
        {"--resume", NL_OPT_STR, &resume, 0, 0, 0, 0, "FILE"},
        {"--stop-after", NL_OPT_INT, &stop_after, 1, 1e12, 0, 0, "N"},
        {"--bucket-mb", NL_OPT_DOUBLE, &bucket_mb, 0, 1e6, 0, 0, "X"},
        {"--json", NL_OPT_FLAG, &json, 0, 0, 0, 0, NULL},
        {"--quiet", NL_OPT_FLAG, &quiet, 0, 0, 0, 0, NULL},
    };
    enum { N = sizeof opts / sizeof opts[0] };
    const char *pos[1];
    int n_pos, help;
    int rc = nl_cli_parse(cmd, argc, argv, opts, N, pos, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) { help_lm_train(stdout); return NL_CLI_OK; }
    /* under mpirun (docs/distributed.md): data-parallel; rank 0 alone prints, evaluates and writes --save */
    const int rank0 = nl_dist_rank() == 0;
    if (!rank0) quiet = 1;
    int lines = 0;
    if (!strcmp(task, "lines")) lines = 1;
    else if (strcmp(task, "text")) return nl_cli_usage_error(cmd, "--task: unknown task '%s' (text|lines)", task);
    if (haystack && !lines) return nl_cli_usage_error(cmd, "--haystack is for --task lines");
    if (save_every > 0 && !save) return nl_cli_usage_error(cmd, "--save-every needs --save FILE");
    if (resume && lines) return nl_cli_usage_error(cmd, "--resume is supported for --task text only");
    if (save && nl_cli_check_output_file(cmd, "--save", save)) return NL_CLI_FAIL;
    nl_cli_threads(threads, nl_cli_seen(opts, N, "--threads"));

    nl_lm m;
    nl_lm_config c;
    if (load) {
        if (nl_lm_load(&m, load)) return fail("train");
        c = m.cfg;
        if ((rc = apply_model_opts(cmd, &mo, opts, N, &c, 0))) { nl_lm_free(&m); return rc; }
        if (nl_cli_seen(opts, N, "--context")) c.context = (int)mo.context;
        if (nl_lm_config_check(&c)) { nl_lm_free(&m); return fail("train"); }
        m.cfg = c; /* position/attention settings and context are not part of the parameters */
    } else {
        c = nl_lm_config_default();
        if (lines) c.vocab = nl_lines_vocab();
        if ((rc = apply_model_opts(cmd, &mo, opts, N, &c, 1))) return rc;
        if (nl_lm_init(&m, &c, (uint64_t)seed)) return fail("train");
    }
    const int vocab = m.cfg.vocab; /* nl_lm_free clears m */
    if (lines && vocab != nl_lines_vocab()) {
        nl_lm_free(&m);
        return nl_cli_usage_error(cmd, "--task lines needs a lines model (vocab %d), the checkpoint has vocab %d", nl_lines_vocab(), vocab);
    }
    if (!lines && vocab < 256) {
        nl_lm_free(&m);
        return nl_cli_usage_error(cmd, "this model has vocab %d: a byte corpus needs 256 (use --task lines for a lines model)", vocab);
    }
    corpus cp = {0};
    if (!lines && load_corpus(corpus_spec, &cp)) { nl_lm_free(&m); return fail("train"); }
    if (!lines && (cp.n_train < (int64_t)m.cfg.context + 2 || cp.n_valid < (int64_t)m.cfg.context + 1)) {
        /* training samples windows of context + 1 tokens from the train split, validation needs one window too */
        fprintf(stderr, "nnlab lm train: the corpus '%s' (%lld bytes) is too short for a context of %d tokens: its training "
                        "split has %lld tokens (needs %d) and its validation split %lld (needs %d), about %lld bytes of "
                        "corpus in all; use a longer corpus or a smaller --context\n",
                corpus_spec, (long long)(cp.n_train + cp.n_valid + cp.n_test), m.cfg.context, (long long)cp.n_train,
                m.cfg.context + 2, (long long)cp.n_valid, m.cfg.context + 1, 20LL * (m.cfg.context + 2));
        free_corpus(&cp);
        nl_lm_free(&m);
        return NL_CLI_FAIL;
    }
    nl_lm_train_config tc = nl_lm_train_defaults();
    tc.steps = steps; tc.batch = batch; tc.lr = lr; tc.warmup = warmup; tc.weight_decay = wd; tc.clip = clip;
    tc.seed = (uint64_t)seed; tc.verbose = !quiet; tc.log_every = steps >= 10 ? steps / 10 : 1;
    tc.tokens = cp.train; tc.n_tokens = cp.n_train;
    tc.save_path = save; tc.save_every = save_every; tc.resume_path = resume; tc.stop_after = stop_after;
    tc.dist_bucket_mb = bucket_mb;
    nl_lines_batcher lb;
    memset(&lb, 0, sizeof lb);
    if (lines) {
        nl_rng_init(&lb.rng, (uint64_t)seed, (uint64_t)0x11E5ULL << 33);
        lb.haystack = haystack;
        tc.batch_fn = nl_lines_batch;
        tc.batch_ud = &lb;
    }
    if (!quiet)
        fprintf(stderr, "lm: %lld parameters, %d layers, d_model %d, %d heads, %s, rope %s (train scale %g), context %d, %s\n",
                (long long)nl_lm_num_params(&m), m.cfg.n_layers, m.cfg.d_model, m.cfg.n_heads, nl_lm_norm_name(m.cfg.norm),
                nl_rope_variant_name(m.cfg.rope.variant), m.cfg.rope.scale_train, m.cfg.context,
                lines ? "task lines" : corpus_spec);
    nl_lm_train_result r;
    double *step_loss = json ? malloc(sizeof(double) * (size_t)steps) : NULL; /* (steps) for --json */
    for (int64_t i = 0; step_loss && i < steps; i++) step_loss[i] = NAN; /* a resumed run fills its own steps */
    tc.loss_out = step_loss;
    if (nl_lm_train(&m, &tc, &r)) { free(step_loss); free_corpus(&cp); nl_lm_free(&m); return fail("train"); }
    double nll = NAN, acc = NAN;
    int64_t cnt = 0;
    int status = NL_CLI_OK;
    if (!rank0) {
        /* the replicas hold the same weights: rank 0 alone evaluates */
    } else if (lines) {
        if (haystack ? nl_lines_eval_haystack(&m, 1, m.cfg.context - NL_LINES_ANSWER_TOKENS, 50, (uint64_t)seed + 1, &acc)
                     : nl_lines_eval(&m, nl_lines_fit(m.cfg.context), 50, (uint64_t)seed + 1, &acc, NULL))
            status = fail("train");
    } else if (nl_lm_eval_nll(&m, cp.valid, cp.n_valid, m.cfg.context, 16, 64, 0, &nll, &cnt)) {
        status = fail("train");
    }
    /* --save: nl_lm_train wrote the (resumable) checkpoint at the end */
    if (!status) {
        if (!quiet) {
            fprintf(stderr, "trained %lld steps in %.1fs (%.0f tokens/s); loss %.4f -> %.4f\n", (long long)r.steps, r.seconds,
                    r.tokens_per_sec, r.first_loss, r.final_loss);
            if (lines) fprintf(stderr, "lines retrieval accuracy at the training length: %.3f\n", acc);
            else fprintf(stderr, "valid: nll %.4f nats/byte, perplexity %.3f, %.4f bits per character\n", nll, exp(nll), nll / log(2));
            if (save) fprintf(stderr, "saved %s\n", save);
        }
        if (json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddItemToObject(o, "steps", cJSON_CreateNumber((double)r.steps));
            cJSON_AddItemToObject(o, "params", cJSON_CreateNumber((double)nl_lm_num_params(&m)));
            cJSON_AddItemToObject(o, "first_loss", jnum(r.first_loss));
            cJSON_AddItemToObject(o, "final_loss", jnum(r.final_loss));
            cJSON_AddItemToObject(o, "seconds", jnum(r.seconds));
            cJSON_AddItemToObject(o, "tokens_per_sec", jnum(r.tokens_per_sec));
            if (lines) cJSON_AddItemToObject(o, "lines_accuracy", jnum(acc));
            else {
                cJSON_AddItemToObject(o, "valid_nll", jnum(nll));
                cJSON_AddItemToObject(o, "valid_ppl", jnum(exp(nll)));
                cJSON_AddItemToObject(o, "valid_bpc", jnum(nll / log(2)));
            }
            if (step_loss) { /* the steps this process ran (a resumed run: from the resume point on) */
                cJSON *a = cJSON_AddArrayToObject(o, "step_loss");
                for (int64_t i = 0; i < r.steps; i++)
                    if (!isnan(step_loss[i])) cJSON_AddItemToArray(a, cJSON_CreateNumber(step_loss[i]));
            }
            print_json(o);
        }
    }
    free(step_loss);
    free_corpus(&cp);
    nl_lm_free(&m);
    return status;
}

/* ---- eval ---- */
static int lm_eval(int argc, char **argv) {
    const char *cmd = "lm eval";
    model_opts mo = {128, 2, 128, 4, 0, 4, 0, "layernorm", "plain", "vanilla", 1, 1, 1, 0.5, 2048, 512, 10000, 0, 0};
    const char *corpus_spec = "default", *task = "text", *load = NULL, *split = "valid";
    int64_t seed = 0, threads = 0, max_windows = 64, n_lines = 0, samples = 50;
    int json = 0, extrapolate = 0, haystack = 0, allow_nonfinite = 0;
    nl_cli_opt opts[] = {
        MODEL_OPTS(mo),
        {"--corpus", NL_OPT_STR, &corpus_spec, 0, 0, 0, 0, "SPEC"},
        {"--task", NL_OPT_STR, &task, 0, 0, 0, 0, "NAME"},
        {"--split", NL_OPT_STR, &split, 0, 0, 0, 0, "NAME"},
        {"--allow-nonfinite", NL_OPT_FLAG, &allow_nonfinite, 0, 0, 0, 0, NULL},
        {"--load", NL_OPT_STR, &load, 0, 0, 0, 0, "FILE"},
        {"--extrapolate", NL_OPT_FLAG, &extrapolate, 0, 0, 0, 0, NULL},
        {"--max-windows", NL_OPT_INT, &max_windows, 1, 1e12, 0, 0, "N"},
        {"--lines", NL_OPT_INT, &n_lines, 1, 1024, 0, 0, "N"},
        {"--haystack", NL_OPT_FLAG, &haystack, 0, 0, 0, 0, NULL},
        {"--samples", NL_OPT_INT, &samples, 1, 1e7, 0, 0, "N"},
        {"--seed", NL_OPT_INT, &seed, 0, 9.2e18, 0, 0, "S"},
        {"--threads", NL_OPT_INT, &threads, 1, 1024, 0, 0, "T"},
        {"--json", NL_OPT_FLAG, &json, 0, 0, 0, 0, NULL},
    };
    enum { N = sizeof opts / sizeof opts[0] };
    const char *pos[1];
    int n_pos, help;
    int rc = nl_cli_parse(cmd, argc, argv, opts, N, pos, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) { help_lm_eval(stdout); return NL_CLI_OK; }
    if (!load) return nl_cli_usage_error(cmd, "--load FILE is required");
    int lines = !strcmp(task, "lines");
    if (!lines && strcmp(task, "text")) return nl_cli_usage_error(cmd, "--task: unknown task '%s' (text|lines)", task);
    if (haystack && !lines) return nl_cli_usage_error(cmd, "--haystack is for --task lines");
    if (strcmp(split, "valid") && strcmp(split, "test") && strcmp(split, "train"))
        return nl_cli_usage_error(cmd, "--split: unknown split '%s' (valid|test|train)", split);
    nl_cli_threads(threads, nl_cli_seen(opts, N, "--threads"));
    nl_lm m;
    if (nl_lm_load_opt(&m, load, allow_nonfinite ? NL_LOAD_ALLOW_NONFINITE : 0)) return fail("eval");
    nl_lm_config c = m.cfg;
    if ((rc = apply_model_opts(cmd, &mo, opts, N, &c, 0))) { nl_lm_free(&m); return rc; }
    if (nl_lm_config_check(&c)) { nl_lm_free(&m); return fail("eval"); }
    m.cfg = c;
    const int64_t T = nl_cli_seen(opts, N, "--context") ? mo.context : m.cfg.context;
    int status = NL_CLI_OK;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "context", cJSON_CreateNumber((double)T));
    cJSON_AddItemToObject(o, "eval_scale", jnum(m.cfg.rope.scale_eval));
    if (lines) {
        if (m.cfg.vocab != nl_lines_vocab()) {
            nl_lm_free(&m);
            cJSON_Delete(o);
            return nl_cli_usage_error(cmd, "--task lines needs a lines model (vocab %d), the checkpoint has vocab %d", nl_lines_vocab(), c.vocab);
        }
        int nlines = n_lines ? (int)n_lines : haystack ? 1 : nl_lines_fit(T);
        double acc, ml = (double)(T - NL_LINES_ANSWER_TOKENS);
        if (nlines < 1 || (haystack && nl_lines_prompt_len(nlines) + NL_LINES_ANSWER_TOKENS > T))
            status = nl_cli_usage_error(cmd, "--context %lld holds no Lines prompt%s", (long long)T, haystack && nlines > 1 ? " with that many lines" : "");
        else if (nl_lm_check_length(&m, haystack ? T : nl_lines_prompt_len(nlines) + NL_LINES_ANSWER_TOKENS, extrapolate))
            status = fail("eval");
        else if (haystack ? nl_lines_eval_haystack(&m, nlines, T - NL_LINES_ANSWER_TOKENS, (int)samples, (uint64_t)seed, &acc)
                          : nl_lines_eval(&m, nlines, (int)samples, (uint64_t)seed, &acc, &ml))
            status = fail("eval");
        else {
            printf("lines %d (mean prompt %.0f tokens), eval scale %g: accuracy %.3f over %lld prompts\n", nlines, ml,
                   m.cfg.rope.scale_eval, acc, (long long)samples);
            cJSON_AddItemToObject(o, "lines", cJSON_CreateNumber(nlines));
            cJSON_AddItemToObject(o, "accuracy", jnum(acc));
        }
    } else {
        corpus cp;
        if (m.cfg.vocab < 256) {
            status = nl_cli_usage_error(cmd, "this model has vocab %d: a byte corpus needs 256 (use --task lines)", m.cfg.vocab);
        } else if (nl_lm_check_length(&m, T, extrapolate)) {
            status = fail("eval");
        } else if (load_corpus(corpus_spec, &cp)) {
            status = fail("eval");
        } else {
            const int32_t *tk = !strcmp(split, "valid") ? cp.valid : !strcmp(split, "test") ? cp.test : cp.train;
            int64_t nt = !strcmp(split, "valid") ? cp.n_valid : !strcmp(split, "test") ? cp.n_test : cp.n_train;
            double nll;
            int64_t cnt;
            int64_t bs = T >= 1024 ? 1 : 1024 / T;
            if (nl_lm_eval_nll(&m, tk, nt, T, bs, max_windows, 1, &nll, &cnt)) status = fail("eval");
            else if (!isfinite(nll)) {
                nl_set_error(NL_ENONFINITE, "the %s loss came out %g (perplexity not finite): the model's weights or "
                             "activations have diverged", split, nll);
                status = fail("eval");
            } else {
                printf("%s: %lld predictions, context %lld, eval scale %g: nll %.4f nats/byte, perplexity %.4f, %.4f bits per character\n",
                       split, (long long)cnt, (long long)T, m.cfg.rope.scale_eval, nll, exp(nll), nll / log(2));
                cJSON_AddItemToObject(o, "nll", jnum(nll));
                cJSON_AddItemToObject(o, "ppl", jnum(exp(nll)));
                cJSON_AddItemToObject(o, "bpc", jnum(nll / log(2)));
                cJSON_AddItemToObject(o, "predictions", cJSON_CreateNumber((double)cnt));
            }
            free_corpus(&cp);
        }
    }
    if (!status && json) print_json(o);
    else cJSON_Delete(o);
    nl_lm_free(&m);
    return status;
}

/* ---- generate ---- */
static int lm_generate(int argc, char **argv) {
    const char *cmd = "lm generate";
    model_opts mo = {128, 2, 128, 4, 0, 4, 0, "layernorm", "plain", "vanilla", 1, 1, 1, 0.5, 2048, 512, 10000, 0, 0};
    const char *load = NULL, *prompt = NULL;
    int64_t seed = 0, threads = 0, tokens = 200, top_k = 40;
    double temperature = 0.8;
    int json = 0, extrapolate = 0, allow_nonfinite = 0;
    nl_cli_opt opts[] = {
        MODEL_OPTS(mo),
        {"--load", NL_OPT_STR, &load, 0, 0, 0, 0, "FILE"},
        {"--prompt", NL_OPT_STR, &prompt, 0, 0, 0, 0, "TEXT"},
        {"--allow-nonfinite", NL_OPT_FLAG, &allow_nonfinite, 0, 0, 0, 0, NULL},
        {"--tokens", NL_OPT_INT, &tokens, 1, 1e7, 0, 0, "N"},
        {"--temperature", NL_OPT_DOUBLE, &temperature, 0, 100, 0, 0, "X"},
        {"--top-k", NL_OPT_INT, &top_k, 0, 1 << 20, 0, 0, "K"},
        {"--extrapolate", NL_OPT_FLAG, &extrapolate, 0, 0, 0, 0, NULL},
        {"--seed", NL_OPT_INT, &seed, 0, 9.2e18, 0, 0, "S"},
        {"--threads", NL_OPT_INT, &threads, 1, 1024, 0, 0, "T"},
        {"--json", NL_OPT_FLAG, &json, 0, 0, 0, 0, NULL},
    };
    enum { N = sizeof opts / sizeof opts[0] };
    const char *pos[1];
    int n_pos, help;
    int rc = nl_cli_parse(cmd, argc, argv, opts, N, pos, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) { help_lm_generate(stdout); return NL_CLI_OK; }
    if (!load) return nl_cli_usage_error(cmd, "--load FILE is required");
    if (!prompt || !*prompt) return nl_cli_usage_error(cmd, "--prompt TEXT is required (non-empty)");
    nl_cli_threads(threads, nl_cli_seen(opts, N, "--threads"));
    nl_lm m;
    if (nl_lm_load_opt(&m, load, allow_nonfinite ? NL_LOAD_ALLOW_NONFINITE : 0)) return fail("generate");
    nl_lm_config c = m.cfg;
    if ((rc = apply_model_opts(cmd, &mo, opts, N, &c, 0))) { nl_lm_free(&m); return rc; }
    if (nl_lm_config_check(&c)) { nl_lm_free(&m); return fail("generate"); }
    m.cfg = c;
    if (m.cfg.vocab < 256) {
        const int vocab = m.cfg.vocab; /* nl_lm_free clears m */
        nl_lm_free(&m);
        return nl_cli_usage_error(cmd, "this model has vocab %d: generate works on byte-level text models", vocab);
    }
    int64_t np = (int64_t)strlen(prompt);
    int32_t *p = malloc(sizeof(int32_t) * (size_t)np), *out = malloc(sizeof(int32_t) * (size_t)tokens);
    char *text = malloc((size_t)tokens + 1);
    int status = NL_CLI_OK;
    if (!p || !out || !text) { nl_set_error(NL_ENOMEM, "out of memory"); status = fail("generate"); goto done; }
    for (int64_t i = 0; i < np; i++) p[i] = (unsigned char)prompt[i];
    nl_rng r;
    nl_rng_init(&r, (uint64_t)seed, (uint64_t)0x5A3BULL << 32);
    nl_lm_sample_opts so = {temperature, (int)top_k, -1, extrapolate};
    int64_t no = 0;
    double t0 = nl_time();
    if (nl_lm_generate(&m, p, np, tokens, &so, &r, out, &no)) { status = fail("generate"); goto done; }
    double secs = nl_time() - t0;
    for (int64_t i = 0; i < no; i++) text[i] = (char)out[i];
    text[no] = 0;
    if (json) {
        /* JSON strings are Unicode: the bytes that are not valid UTF-8 (and NUL) become U+FFFD */
        char *jp = utf8_sanitize(prompt, np), *jt = utf8_sanitize(text, no);
        if (!jp || !jt) {
            free(jp);
            free(jt);
            nl_set_error(NL_ENOMEM, "out of memory");
            status = fail("generate");
            goto done;
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "prompt", cJSON_CreateString(jp));
        cJSON_AddItemToObject(o, "text", cJSON_CreateString(jt));
        cJSON_AddItemToObject(o, "tokens", cJSON_CreateNumber((double)no));
        cJSON_AddItemToObject(o, "seconds", jnum(secs));
        print_json(o);
        free(jp);
        free(jt);
    } else {
        fputs(prompt, stdout); /* the raw bytes, NUL included */
        fwrite(text, 1, (size_t)no, stdout);
        putchar('\n');
    }
done:
    free(p);
    free(out);
    free(text);
    nl_lm_free(&m);
    return status;
}

int nl_lm_cli(int argc, char **argv) {
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h") || !strcmp(argv[0], "help")) {
        help_lm(argc < 1 ? stderr : stdout);
        return argc < 1 ? NL_CLI_USAGE : NL_CLI_OK;
    }
    if (!strcmp(argv[0], "train")) return lm_train(argc - 1, argv + 1);
    if (!strcmp(argv[0], "eval")) return lm_eval(argc - 1, argv + 1);
    if (!strcmp(argv[0], "generate")) return lm_generate(argc - 1, argv + 1);
    return nl_cli_usage_error("lm", "unknown subcommand '%s' (train|eval|generate)", argv[0]);
}
