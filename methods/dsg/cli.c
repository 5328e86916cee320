/* nnlab dsg — train Disambiguated Skip-gram (or plain skip-gram, --senses 1) on a corpus and print the senses of a
 * word with their nearest neighbours (methods/dsg/README.md). */
#include "dsg/dsg.h"
#include "nnlab/cli.h"
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void help_dsg(FILE *f) {
    fprintf(f,
            "usage: nnlab dsg train [--corpus kjv|generic|FILE] [--out MODEL] [options]\n"
            "       nnlab dsg senses WORD --model MODEL [--neighbours K]\n"
            "\n"
            "Disambiguated Skip-gram (Grzegorczyk 2019; kagrze/disgram): S sense vectors per word, a per-word\n"
            "disambiguation network that picks the sense from the mean of the context words' output vectors\n"
            "(gradient stopped), Gumbel-softmax sense sampling, sampled softmax. --senses 1 is plain skip-gram.\n"
            "The ledger entry is `nnlab repro dsg`.\n"
            "\n"
            "train:\n"
            "  --corpus NAME      kjv (default: the King James Bible, package bible-kjv-text), generic (KJV + GCIDE\n"
            "                     definitions, dict-gcide) or a UTF-8 text file, one document per line (invalid bytes\n"
            "                     are skipped and counted)\n"
            "  --out MODEL        write the model (vocabulary, vectors, networks, sense priors) to MODEL\n"
            "  --senses S         senses per word (default 5; 1..16)\n"
            "  --dim D            vector size (default 100)\n"
            "  --window W         context words on each side (default 5)\n"
            "  --samples K        sampled-softmax candidates per pair (default 64)\n"
            "  --pre-epochs N     pre-training epochs: one shared network, entropy term (default 1)\n"
            "  --epochs N         training epochs: per-word networks, Gumbel-softmax (default 3)\n"
            "  --lr X             starting SGD learning rate, linear decay (default 0.1, disgram's)\n"
            "  --temp X           Gumbel-softmax temperature (default 0.5)\n"
            "  --entropy X        coefficient of the sense entropy in pre-training (default -0.1)\n"
            "  --min-count N      vocabulary cut-off (default 5)\n"
            "  --subsample T      word2vec subsampling threshold (default 1e-4; 0: off)\n"
            "  --max-docs N       use the first N documents (default 0: all)\n"
            "  --seed N           default 1\n"
            "  --quiet            no progress lines\n"
            "senses:\n"
            "  --model MODEL      a file written by train --out\n"
            "  --neighbours K     nearest sense vectors to print per sense (default 8)\n");
}

nl_status nl_dsg_corpus(const char *name, int64_t max_docs, int64_t min_count, nl_text_vocab *v, nl_text_docs *d, int64_t *bad) {
    memset(v, 0, sizeof *v);
    memset(d, 0, sizeof *d);
    if (bad) *bad = 0;
    nl_text_corpus c;
    nl_status s = nl_text_corpus_init(&c);
    if (s) return s;
    if (!strcmp(name, "kjv")) s = nl_text_read_kjv(&c);
    else if (!strcmp(name, "generic")) s = nl_text_read_generic(&c, NULL);
    else {
        FILE *f = fopen(name, "rb");
        if (!f) s = nl_set_error(errno == ENOENT ? NL_ENOTFOUND : NL_EIO, "dsg: cannot open corpus %s: %s", name, strerror(errno));
        char *line = NULL;
        size_t cap = 0;
        ssize_t len;
        while (!s && (len = getline(&line, &cap, f)) > 0) s = nl_text_corpus_add(&c, line, (size_t)len, -1, NL_TEXT_UTF8_SKIP, NULL);
        free(line);
        if (f) fclose(f);
    }
    if (!s && max_docs > 0 && max_docs < c.n_docs) c.n_docs = max_docs; /* the first documents */
    if (bad) *bad = c.n_bad_bytes;
    nl_text_docs raw;
    nl_text_vocab all;
    memset(&raw, 0, sizeof raw);
    memset(&all, 0, sizeof all);
    if (!s && c.n_docs < 1) s = nl_set_error(NL_EINVAL, "dsg: empty corpus %s (no document with a word)", name);
    if (!s) s = nl_text_docs_encode(&c, &c.dict, 2, 0, 0, &raw, NULL);
    if (!s) s = nl_text_docs_vocab(&raw, &c.dict, &all); /* counts over the documents used */
    if (!s) s = nl_text_vocab_prune(&all, min_count, 0, v, NULL);
    if (!s && v->n < 2)
        s = nl_set_error(NL_EINVAL, "dsg: empty corpus %s: %d words occur at least %lld times", name, (int)v->n, (long long)min_count);
    if (!s) s = nl_text_docs_encode(&c, v, 2, 0, 0, d, NULL);
    if (!s && (d->n_docs < 1 || d->off[d->n_docs] < 2)) s = nl_set_error(NL_EINVAL, "dsg: empty corpus %s (fewer than 2 tokens)", name);
    nl_text_docs_free(&raw);
    nl_text_vocab_free(&all);
    nl_text_corpus_free(&c);
    if (s) {
        nl_text_docs_free(d);
        nl_text_vocab_free(v);
        memset(v, 0, sizeof *v);
        memset(d, 0, sizeof *d);
    }
    return s;
}

static int cmd_train(int argc, char **argv) {
    nl_dsg_config cfg = nl_dsg_defaults();
    const char *corpus = "kjv", *out = NULL;
    int64_t senses = cfg.senses, dim = cfg.dim, window = cfg.window, samples = cfg.samples, pre = cfg.pre_epochs,
            epochs = cfg.epochs, min_count = 5, max_docs = 0, seed = 1;
    double lr = cfg.lr, temp = cfg.temp, ent = cfg.entropy, sub = cfg.subsample;
    int quiet = 0;
    /* --senses takes any integer so that 0 reaches the library's own check (a clear message, exit 1) */
    nl_cli_opt opts[] = {
        {"--corpus", NL_OPT_STR, &corpus, 0, 0, 0, 0, "NAME"},
        {"--out", NL_OPT_STR, &out, 0, 0, 0, 0, "MODEL"},
        {"--senses", NL_OPT_INT, &senses, -1e9, 1e9, 0, 0, "S"},
        {"--dim", NL_OPT_INT, &dim, -1e9, 1e9, 0, 0, "D"},
        {"--window", NL_OPT_INT, &window, -1e9, 1e9, 0, 0, "W"},
        {"--samples", NL_OPT_INT, &samples, -1e9, 1e9, 0, 0, "K"},
        {"--pre-epochs", NL_OPT_INT, &pre, 0, 1000, 0, 0, "N"},
        {"--epochs", NL_OPT_INT, &epochs, 0, 1000, 0, 0, "N"},
        {"--lr", NL_OPT_DOUBLE, &lr, 0, 10, 1, 0, "X"},
        {"--temp", NL_OPT_DOUBLE, &temp, 0, 100, 1, 0, "X"},
        {"--entropy", NL_OPT_DOUBLE, &ent, -100, 100, 0, 0, "X"},
        {"--min-count", NL_OPT_INT, &min_count, 1, 1e12, 0, 0, "N"},
        {"--subsample", NL_OPT_DOUBLE, &sub, 0, 1, 0, 0, "T"},
        {"--max-docs", NL_OPT_INT, &max_docs, 0, 1e12, 0, 0, "N"},
        {"--seed", NL_OPT_INT, &seed, 0, 9007199254740992.0, 0, 0, "N"},
        {"--quiet", NL_OPT_FLAG, &quiet, 0, 0, 0, 0, NULL},
    };
    enum { N_OPTS = sizeof opts / sizeof opts[0] };
    int n_pos, help;
    int rc = nl_cli_parse("dsg train", argc, argv, opts, N_OPTS, NULL, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        help_dsg(stdout);
        return NL_CLI_OK;
    }
    if (out && (rc = nl_cli_check_output_file("dsg train", "--out", out))) return rc;
    cfg.senses = (int)senses, cfg.dim = (int32_t)dim, cfg.window = (int)window, cfg.samples = (int)samples;
    cfg.pre_epochs = (int)pre, cfg.epochs = (int)epochs, cfg.lr = lr, cfg.temp = temp, cfg.entropy = ent, cfg.subsample = sub;
    cfg.seed = (uint64_t)seed, cfg.verbose = !quiet;
    if (senses != cfg.senses || dim != cfg.dim || window != cfg.window || samples != cfg.samples) /* out of int range */
        cfg.senses = 0;
    nl_status s = nl_dsg_check_config(&cfg);
    nl_text_vocab v;
    nl_text_docs d;
    nl_dsg_model m;
    int64_t bad = 0;
    float *prior = NULL;
    memset(&m, 0, sizeof m);
    memset(&v, 0, sizeof v);
    memset(&d, 0, sizeof d);
    if (!s) s = nl_dsg_corpus(corpus, max_docs, min_count, &v, &d, &bad);
    if (!s && bad && !quiet) nl_progress("dsg: %lld invalid UTF-8 bytes skipped in %s", (long long)bad, corpus);
    if (!s) s = nl_dsg_model_init(&m, v.n, cfg.dim, cfg.senses, cfg.seed);
    nl_dsg_stats st;
    if (!s) s = cfg.senses == 1 ? nl_dsg_sg_train(&m, &cfg, &d, &v, &st) : nl_dsg_train(&m, &cfg, &d, &v, &st);
    if (!s && !(prior = malloc((size_t)m.V * m.S * sizeof *prior))) s = nl_set_error(NL_ENOMEM, "dsg: out of memory");
    if (!s) s = nl_dsg_priors(&m, &d, cfg.window, prior);
    if (!s && out) s = nl_dsg_save(out, &m, &v, prior);
    if (!s)
        printf("dsg %s: %d words, %lld tokens, %d senses, d %d: %lld pairs in %.2f s (%.0f words/s), last-epoch loss %.4f%s%s\n",
               corpus, (int)v.n, (long long)d.off[d.n_docs], cfg.senses, (int)cfg.dim, (long long)st.pairs, st.seconds,
               (double)st.words / st.seconds, st.loss, out ? ", model " : "", out ? out : "");
    free(prior);
    nl_dsg_model_free(&m);
    nl_text_docs_free(&d);
    nl_text_vocab_free(&v);
    if (s) {
        fprintf(stderr, "nnlab dsg train: error: %s\n", nl_last_error());
        return NL_CLI_FAIL;
    }
    return NL_CLI_OK;
}

static double cosine(const float *a, const float *b, int32_t d) {
    double ab = 0, aa = 0, bb = 0;
    for (int32_t k = 0; k < d; k++) ab += (double)a[k] * b[k], aa += (double)a[k] * a[k], bb += (double)b[k] * b[k];
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0;
}

static int cmd_senses(int argc, char **argv) {
    const char *model = NULL, *pos[1] = {NULL};
    int64_t k_nn = 8;
    nl_cli_opt opts[] = {
        {"--model", NL_OPT_STR, &model, 0, 0, 0, 0, "MODEL"},
        {"--neighbours", NL_OPT_INT, &k_nn, 1, 1000, 0, 0, "K"},
    };
    int n_pos, help;
    int rc = nl_cli_parse("dsg senses", argc, argv, opts, 2, pos, 1, &n_pos, &help);
    if (rc) return rc;
    if (help) {
        help_dsg(stdout);
        return NL_CLI_OK;
    }
    if (n_pos != 1) return nl_cli_usage_error("dsg senses", "expected one WORD");
    if (!model) return nl_cli_usage_error("dsg senses", "--model MODEL is required (write one with nnlab dsg train --out)");
    nl_dsg_model m;
    nl_text_vocab v;
    float *prior;
    nl_status s = nl_dsg_load(model, &m, &v, &prior);
    if (s) {
        fprintf(stderr, "nnlab dsg senses: error: %s\n", nl_last_error());
        return NL_CLI_FAIL;
    }
    char low[256];
    size_t n = strlen(pos[0]);
    if (n >= sizeof low) n = sizeof low - 1;
    for (size_t i = 0; i < n; i++) low[i] = (char)((unsigned char)pos[0][i] < 128 ? tolower((unsigned char)pos[0][i]) : pos[0][i]);
    low[n] = 0;
    const int32_t w = nl_text_vocab_find(&v, low, (int)n);
    rc = NL_CLI_OK;
    if (w < 0) {
        fprintf(stderr, "nnlab dsg senses: error: '%s' is not in the model's vocabulary (%d words)\n", pos[0], (int)v.n);
        rc = NL_CLI_FAIL;
    }
    const int S = m.S;
    const int64_t rows = (int64_t)m.V * S;
    int64_t *best = malloc((size_t)k_nn * sizeof *best); /* [K] row ids */
    double *bs = malloc((size_t)k_nn * sizeof *bs);      /* [K] their cosines */
    if (!rc && (!best || !bs)) {
        fprintf(stderr, "nnlab dsg senses: error: out of memory\n");
        rc = NL_CLI_FAIL;
    }
    if (!rc) printf("%s: %lld occurrences, %d senses\n", v.word[w], (long long)v.count[w], S);
    for (int s0 = 0; !rc && s0 < S; s0++) {
        const float *e = nl_text_emb_row(&m.E, (int64_t)w * S + s0);
        int nb = 0;
        for (int64_t r = 0; r < rows; r++) {
            if (r / S == w || prior[r] < 0.01f) continue; /* other words' senses that are used */
            const double c = cosine(e, nl_text_emb_row(&m.E, r), m.d);
            if (nb < k_nn) nb++;
            else if (c <= bs[nb - 1]) continue;
            int at = nb - 1; /* insertion into the descending list */
            while (at > 0 && bs[at - 1] < c) bs[at] = bs[at - 1], best[at] = best[at - 1], at--;
            bs[at] = c, best[at] = r;
        }
        printf("  sense %d (prior %.2f):", s0 + 1, prior[(size_t)w * S + s0]);
        for (int j = 0; j < nb; j++)
            printf(" %s%s%d (%.2f)", v.word[best[j] / S], S > 1 ? "#" : "", S > 1 ? (int)(best[j] % S) + 1 : 0, bs[j]);
        printf("\n");
    }
    free(best), free(bs), free(prior);
    nl_dsg_model_free(&m);
    nl_text_vocab_free(&v);
    return rc;
}

int nl_dsg_cli(int argc, char **argv) {
    static const nl_cli_sub subs[] = {{"train", cmd_train}, {"senses", cmd_senses}};
    return nl_cli_subcommands("dsg", argc, argv, help_dsg, subs, 2);
}
