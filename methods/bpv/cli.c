/* nnlab bpv train|encode|search — train Binary Paragraph Vectors on a corpus, print codes of texts, and search the
 * training documents by Hamming distance (methods/bpv/README.md). */
#include "bpv/io.h"
#include "nnlab/cli.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void help_bpv(FILE *f) {
    fprintf(f,
            "usage: nnlab bpv train --corpus NAME|FILE --out MODEL [options]\n"
            "       nnlab bpv encode --model MODEL (--text TEXT | --file FILE)\n"
            "       nnlab bpv search --model MODEL --query TEXT [--top K]\n"
            "\n"
            "Binary Paragraph Vectors (Grzegorczyk & Kurdziel 2017): every document gets a short binary code trained to\n"
            "predict its words; similar documents get codes at a small Hamming distance. train fits a model and stores\n"
            "it with the codes and texts of its documents; encode prints the hex code of new texts (one per line of\n"
            "FILE), inferred with the model frozen; search prints the training documents nearest to a query.\n"
            "Corpora: gcide (dict-gcide definitions), fortunes, generic (KJV + GCIDE), or a UTF-8 text FILE with one\n"
            "document per line. Bytes that are not valid UTF-8 are skipped (counted on stderr). The ledger entry is\n"
            "`nnlab repro bpv`.\n"
            "\n"
            "  --model-kind K     dbow (default), dm or real-binary\n"
            "  --bits B           code length, 1..1024 (default 32)\n"
            "  --epochs N         training passes (default 20)\n"
            "  --infer-epochs N   passes over a new document (default 20)\n"
            "  --max-docs N       use at most N documents of the corpus (default 0: all)\n"
            "  --seed N           default 1\n"
            "  --top K            search: documents printed (default 10)\n");
}

/* A file with one document per line. */
static nl_status read_lines(nl_text_corpus *c, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return nl_set_error(NL_EIO, "bpv: cannot read %s", path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    nl_status st = NL_OK;
    while (!st && (n = getline(&line, &cap, f)) >= 0) st = nl_text_corpus_add(c, line, (size_t)n, -1, NL_TEXT_UTF8_SKIP, NULL);
    free(line);
    fclose(f);
    return st;
}

static nl_status read_corpus(nl_text_corpus *c, const char *name) {
    static const char *const dom[6] = {"Zool", "Bot", "Chem", "Med", "Anat", "Naut"};
    nl_status st = nl_text_corpus_init(c);
    if (st) return st;
    if (!strcmp(name, "gcide")) st = nl_text_read_gcide(c, NULL, dom, 6, 0);
    else if (!strcmp(name, "fortunes")) st = nl_text_read_fortunes(c, NULL, 1);
    else if (!strcmp(name, "generic")) st = nl_text_read_generic(c, NULL);
    else st = read_lines(c, name);
    if (!st && c->n_docs == 0) st = nl_set_error(NL_EINVAL, "bpv: corpus %s is empty (no document with a word)", name);
    if (!st && c->n_bad_bytes)
        fprintf(stderr, "nnlab bpv: %lld bytes that are not valid UTF-8 skipped\n", (long long)c->n_bad_bytes);
    return st;
}

static char *doc_text(const nl_text_docs *d, const nl_text_vocab *v, int64_t i) {
    char *s = malloc(301);
    size_t n = 0;
    if (!s) return NULL;
    for (int64_t p = d->off[i]; p < d->off[i + 1] && n < 300; p++) {
        const char *w = v->word[d->ids[p]];
        size_t l = strlen(w);
        if (n + l + 1 > 300) break;
        if (n) s[n++] = ' ';
        memcpy(s + n, w, l), n += l;
    }
    s[n] = 0;
    return s;
}

static int cmd_train(int argc, char **argv) {
    const char *corpus = NULL, *outp = NULL, *kind = "dbow";
    nl_bpv_config cfg = nl_bpv_defaults();
    int64_t bits = 32, epochs = 20, iep = 20, maxd = 0, seed = 1, top = 10;
    nl_cli_opt opts[] = {
        {"--corpus", NL_OPT_STR, &corpus, 0, 0, 0, 0, "NAME"}, {"--out", NL_OPT_STR, &outp, 0, 0, 0, 0, "MODEL"},
        {"--model-kind", NL_OPT_STR, &kind, 0, 0, 0, 0, "K"},   {"--bits", NL_OPT_INT, &bits, -1e9, 1e9, 0, 0, "B"},
        {"--epochs", NL_OPT_INT, &epochs, 0, 1e6, 0, 0, "N"},   {"--infer-epochs", NL_OPT_INT, &iep, 0, 1e6, 0, 0, "N"},
        {"--max-docs", NL_OPT_INT, &maxd, 0, 1e12, 0, 0, "N"},  {"--seed", NL_OPT_INT, &seed, 0, 1e15, 0, 0, "N"},
        {"--top", NL_OPT_INT, &top, 1, 1e6, 0, 0, "K"},
    };
    int n_pos, help;
    int rc = nl_cli_parse("bpv train", argc, argv, opts, sizeof opts / sizeof opts[0], NULL, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) return help_bpv(stdout), NL_CLI_OK;
    if (!corpus || !outp) return nl_cli_usage_error("bpv train", "--corpus and --out are required");
    if (!strcmp(kind, "dbow")) cfg.kind = NL_BPV_DBOW;
    else if (!strcmp(kind, "dm")) cfg.kind = NL_BPV_DM;
    else if (!strcmp(kind, "real-binary")) cfg.kind = NL_BPV_REAL_BINARY;
    else return nl_cli_usage_error("bpv train", "--model-kind '%s' (dbow, dm or real-binary)", kind);
    cfg.bits = (int)(bits < -1 ? -1 : bits > 1 << 20 ? 1 << 20 : bits), cfg.epochs = (int)epochs;
    cfg.infer_epochs = (int)iep, cfg.seed = (uint64_t)seed;
    nl_text_corpus c;
    nl_bpv_file b;
    nl_text_docs d;
    nl_text_vocab v;
    memset(&b, 0, sizeof b), memset(&d, 0, sizeof d), memset(&c, 0, sizeof c), memset(&v, 0, sizeof v);
    nl_status st = nl_bpv_config_check(&cfg);
    if (!st) st = read_corpus(&c, corpus);
    if (!st) st = nl_text_vocab_prune(&c.dict, 2, 0, &v, NULL);
    if (!st && v.n < 2) st = nl_set_error(NL_EINVAL, "bpv: corpus %s has fewer than 2 words seen twice", corpus);
    if (!st) st = nl_text_docs_encode(&c, &v, 2, 0, 0, &d, NULL);
    if (!st && maxd > 0 && d.n_docs > maxd) d.n_docs = maxd;
    if (!st) st = nl_text_docs_vocab(&d, &v, &b.vocab);
    nl_bpv_docvec dv = {0};
    if (!st) st = nl_bpv_train(&b.model, &cfg, &b.vocab, &d, &dv, NULL);
    if (!st) st = nl_bpv_codes(&b.model, &dv, &b.codes);
    if (!st) {
        b.n_db = d.n_docs;
        b.text = calloc((size_t)d.n_docs + 1, sizeof(char *));
        for (int64_t i = 0; b.text && i < d.n_docs && !st; i++)
            if (!(b.text[i] = doc_text(&d, &b.vocab, i))) st = nl_set_error(NL_ENOMEM, "bpv: out of memory");
        if (!b.text) st = nl_set_error(NL_ENOMEM, "bpv: out of memory");
    }
    if (!st) st = nl_bpv_file_save(outp, &b);
    if (!st)
        printf("bpv: trained %s on %lld documents of %s (%d words, %d bits); saved %s\n", kind, (long long)d.n_docs, corpus,
               b.vocab.n, cfg.bits, outp);
    nl_text_emb_free(&dv);
    nl_text_docs_free(&d);
    nl_text_corpus_free(&c), nl_text_vocab_free(&v);
    nl_bpv_file_free(&b);
    if (st) {
        fprintf(stderr, "nnlab bpv train: error: %s\n", nl_last_error());
        return NL_CLI_FAIL;
    }
    return NL_CLI_OK;
}

/* Codes of texts[0..n) (each must hold an in-vocabulary word). */
static nl_status encode_texts(const nl_bpv_file *b, char **texts, int64_t n, uint64_t **codes) {
    nl_text_corpus c;
    nl_text_docs d;
    nl_status st = nl_text_corpus_init(&c);
    for (int64_t i = 0; i < n && !st; i++) {
        int added;
        size_t before = (size_t)c.n_bad_bytes;
        st = nl_text_corpus_add(&c, texts[i], strlen(texts[i]), 0, NL_TEXT_UTF8_SKIP, &added);
        if (!st && !added) st = nl_set_error(NL_EINVAL, "bpv: text %lld has no word", (long long)i + 1);
        if (!st && (size_t)c.n_bad_bytes != before)
            fprintf(stderr, "nnlab bpv: text %lld: %lld bytes that are not valid UTF-8 skipped\n", (long long)i + 1,
                    (long long)(c.n_bad_bytes - (int64_t)before));
    }
    int64_t empty = 0;
    if (!st) st = nl_text_docs_encode(&c, &b->vocab, 2, 0, 0, &d, &empty);
    if (!st && empty) {
        nl_text_docs_free(&d);
        st = nl_set_error(NL_EINVAL, "bpv: %lld text(s) have no word of the model's vocabulary", (long long)empty);
    }
    nl_bpv_docvec dv = {0};
    if (!st) {
        st = nl_bpv_infer(&b->model, &d, 1, &dv);
        if (!st) st = nl_bpv_codes(&b->model, &dv, codes);
        nl_text_emb_free(&dv), nl_text_docs_free(&d);
    }
    nl_text_corpus_free(&c);
    return st;
}

static void print_code(const uint64_t *c, int bits) {
    for (int b = (bits + 3) / 4 - 1; b >= 0; b--) printf("%x", (unsigned)((c[b * 4 / 64] >> (b * 4 % 64)) & 15));
}

static int cmd_use(int search, int argc, char **argv) {
    const char *mp = NULL, *text = NULL, *file = NULL;
    int64_t top = 10;
    nl_cli_opt opts[] = {
        {"--model", NL_OPT_STR, &mp, 0, 0, 0, 0, "MODEL"}, {search ? "--query" : "--text", NL_OPT_STR, &text, 0, 0, 0, 0, "TEXT"},
        {"--file", NL_OPT_STR, &file, 0, 0, 0, 0, "FILE"}, {"--top", NL_OPT_INT, &top, 1, 1e6, 0, 0, "K"},
    };
    const char *cmd = search ? "bpv search" : "bpv encode";
    int n_pos, help;
    int rc = nl_cli_parse(cmd, argc, argv, opts, sizeof opts / sizeof opts[0], NULL, 0, &n_pos, &help);
    if (rc) return rc;
    if (help) return help_bpv(stdout), NL_CLI_OK;
    if (!mp || (!text && (!file || search))) return nl_cli_usage_error(cmd, "--model and %s are required", search ? "--query" : "--text or --file");
    nl_bpv_file b;
    nl_status st = nl_bpv_file_load(mp, &b);
    char **texts = NULL;
    int64_t n = 0;
    uint64_t *codes = NULL;
    if (!st && text) {
        texts = malloc(sizeof(char *));
        if (texts) texts[0] = strdup(text), n = 1;
    } else if (!st) {
        FILE *f = fopen(file, "rb");
        if (!f) st = nl_set_error(NL_EIO, "bpv: cannot read %s", file);
        char *line = NULL;
        size_t cap = 0;
        while (f && getline(&line, &cap, f) >= 0) {
            char **nt = realloc(texts, sizeof(char *) * (size_t)(n + 1));
            if (!nt) break;
            texts = nt, texts[n++] = strdup(line);
        }
        free(line);
        if (f) fclose(f);
        if (!st && n == 0) st = nl_set_error(NL_EINVAL, "bpv: %s is empty", file);
    }
    if (!st) st = encode_texts(&b, texts, n, &codes);
    const int bits = b.model.cfg.bits, nw = (bits + 63) / 64;
    if (!st && !search)
        for (int64_t i = 0; i < n; i++) print_code(codes + i * nw, bits), printf("\n");
    if (!st && search) {
        int64_t k = top < b.n_db ? top : b.n_db, *idx = malloc(sizeof(int64_t) * (size_t)(k + 1));
        int *dist = malloc(sizeof(int) * (size_t)(k + 1));
        if (!idx || !dist) st = nl_set_error(NL_ENOMEM, "bpv: out of memory");
        else {
            nl_bpv_search(codes, b.codes, b.n_db, bits, k, idx, dist);
            printf("query code ");
            print_code(codes, bits);
            printf("\n");
            for (int64_t j = 0; j < k; j++) printf("%3lld  d=%-3d %s\n", (long long)j + 1, dist[j], b.text[idx[j]]);
        }
        free(idx), free(dist);
    }
    for (int64_t i = 0; i < n; i++) free(texts[i]);
    free(texts), free(codes);
    nl_bpv_file_free(&b);
    if (st) {
        fprintf(stderr, "nnlab %s: error: %s\n", cmd, nl_last_error());
        return NL_CLI_FAIL;
    }
    return NL_CLI_OK;
}

static int cmd_encode(int argc, char **argv) { return cmd_use(0, argc, argv); }
static int cmd_search(int argc, char **argv) { return cmd_use(1, argc, argv); }

int nl_bpv_cli(int argc, char **argv) {
    static const nl_cli_sub subs[] = {{"train", cmd_train}, {"encode", cmd_encode}, {"search", cmd_search}};
    return nl_cli_subcommands("bpv", argc, argv, help_bpv, subs, 3);
}
