/* Transformer LM: f64 gradcheck of a 1-layer model (every norm kind available, tied and untied), KV-cache decoding
 * equals the full forward (every RoPE variant), a tiny model learns a repetitive corpus, checkpoint round trip and
 * architecture mismatch, corpus split, Lines task generator/scorer, error paths, hostile corpus paths (FIFO,
 * /dev/zero, a directory, over the size cap). */
#include "nltest.h"
#include "nnlab/extend.h"
#include "transformer/transformer.h"
#include <unistd.h>
#include <sys/stat.h>

static nl_lm_config tiny(nl_dtype dt) {
    nl_lm_config c = nl_lm_config_default();
    c.vocab = 11;
    c.context = 8;
    c.n_layers = 1;
    c.d_model = 8;
    c.n_heads = 2;
    c.d_ff = 12;
    c.dtype = dt;
    return c;
}

/* Finite differences directly on the parameter store (the model's own forward/backward). */
static void gradcheck_store(nl_lm *m, const int32_t *ids, const int32_t *tg, int64_t B, int64_t T, int train,
                            const char *what) {
    nl_ctx *c = nl_ctx_new(0, 0);
    nl_params_zero_grad(&m->ps);
    nl_var *loss = nl_lm_loss(m, c, ids, tg, B, T, train);
    NLT_CHECK(loss != NULL, "%s: %s", what, nl_last_error());
    if (!loss) { nl_ctx_free(c); return; }
    NLT_OK(nl_backward(c, loss));
    double *p = m->ps.data, *g = m->ps.grad;
    int64_t bad = 0, checked = 0;
    double worst = 0;
    const double eps = 1e-6;
    for (int i = 0; i < m->ps.n; i++) {
        nl_param *pp = m->ps.p[i];
        if (!pp->var.requires_grad) continue;
        for (int64_t k = pp->offset; k < pp->offset + pp->numel; k++) {
            double old = p[k];
            p[k] = old + eps;
            nl_ctx_reset(c);
            double lp = nl_item(nl_lm_loss(m, c, ids, tg, B, T, 0));
            p[k] = old - eps;
            nl_ctx_reset(c);
            double lm = nl_item(nl_lm_loss(m, c, ids, tg, B, T, 0));
            p[k] = old;
            double num = (lp - lm) / (2 * eps), err = fabs(num - g[k]);
            double tol = 1e-7 + 1e-5 * fmax(fabs(num), fabs(g[k]));
            if (err > tol) {
                if (!bad) fprintf(stderr, "%s: %s[%lld] num %.10g ana %.10g\n", what, pp->name, (long long)(k - pp->offset), num, g[k]);
                bad++;
            }
            if (err > worst) worst = err;
            checked++;
        }
    }
    NLT_CHECK(bad == 0 && checked > 100, "%s: %lld of %lld gradient entries off (worst %.3g)", what, (long long)bad,
              (long long)checked, worst);
    nl_ctx_free(c);
}

static void test_gradcheck_f64(void) {
    const int32_t ids[2 * 6] = {1, 4, 2, 9, 3, 3, 0, 10, 5, 7, 7, 2};
    const int32_t tg[2 * 6] = {4, 2, 9, 3, 3, 1, 10, 5, -1, 7, 2, 6};
    nl_lm_norm_kind norms[3] = {NL_LM_NORM_LAYER, NL_LM_NORM_RMS, NL_LM_NORM_LAYER};
    nl_rope_variant vars[3] = {NL_ROPE_PLAIN, NL_ROPE_TRUNCATED, NL_ROPE_XPOS};
    for (int i = 0; i < 3; i++) {
        nl_lm_config c = tiny(NL_F64);
        c.norm = norms[i];
        c.tie_weights = i != 1;
        c.rope.variant = vars[i];
        c.rope.truncate = 8;
        c.rope.xpos_gamma = 16;
        nl_lm m;
        NLT_OK(nl_lm_init(&m, &c, 5 + i));
        /* larger init so the gradients are not tiny */
        for (int64_t k = 0; k < m.ps.total; k++) ((double *)m.ps.data)[k] *= 10 * (k % 7 == 3 ? -1 : 1) + 0.5;
        char what[64];
        snprintf(what, sizeof what, "%s/%s/tie=%d", nl_lm_norm_name(c.norm), nl_rope_variant_name(c.rope.variant), c.tie_weights);
        gradcheck_store(&m, ids, tg, 2, 6, 0, what);
        nl_lm_free(&m);
    }
}

/* batchnorm in eval mode (running statistics) as a differentiable function */
static void test_gradcheck_batchnorm_eval(void) {
    const int32_t ids[5] = {1, 4, 2, 9, 3}, tg[5] = {4, 2, 9, 3, 8};
    nl_lm_config c = tiny(NL_F64);
    c.norm = NL_LM_NORM_BATCH;
    nl_lm m;
    NLT_OK(nl_lm_init(&m, &c, 3));
    for (int64_t k = 0; k < m.ps.total; k++) ((double *)m.ps.data)[k] *= 10;
    for (int i = 0; i < m.ps.n; i++)
        if (strstr(m.ps.p[i]->name, "running_var")) nl_tensor_fill(&m.ps.p[i]->var.val, 2.0);
    gradcheck_store(&m, ids, tg, 1, 5, 0, "batchnorm eval");
    nl_lm_free(&m);
}

static double max_diff_rows(const nl_var *a, int64_t ra, const nl_var *b, int64_t rb, int64_t V) {
    double w = 0;
    for (int64_t v = 0; v < V; v++) {
        double d = fabs(nl_tensor_get(&a->val, ra * V + v) - nl_tensor_get(&b->val, rb * V + v));
        if (d > w) w = d;
    }
    return w;
}

static void test_kv_cache(void) {
    for (int vi = 0; vi < NL_ROPE_VARIANT_COUNT; vi++) {
        nl_lm_config c = nl_lm_config_default();
        c.vocab = 30;
        c.context = 24;
        c.n_layers = 2;
        c.d_model = 32;
        c.n_heads = 2;
        c.d_ff = 48;
        c.rope.variant = (nl_rope_variant)vi;
        if (vi != NL_ROPE_PLAIN) { c.rope.scale_train = 2; c.rope.scale_eval = 3; }
        c.rope.truncate = 16;
        c.rope.xpos_gamma = 32;
        nl_lm m;
        NLT_OK(nl_lm_init(&m, &c, 11));
        int32_t ids[20];
        for (int i = 0; i < 20; i++) ids[i] = (i * 7 + 3) % 30;
        nl_ctx *c1 = nl_ctx_new(0, 0), *c2 = nl_ctx_new(0, 0);
        nl_set_grad_enabled(c1, 0);
        nl_var *full = nl_lm_forward(&m, c1, ids, 1, 20, 0);
        NLT_CHECK(full != NULL, "%s", nl_last_error());
        nl_lm_cache kc;
        NLT_OK(nl_lm_cache_init(&kc, &m, 1));
        /* prefill 7 tokens, then 1 at a time (crosses the initial capacity when grown in test below) */
        nl_var *p = nl_lm_forward_cached(&m, c2, &kc, ids, 1, 7);
        double worst = 0;
        for (int t = 0; t < 7; t++) worst = fmax(worst, max_diff_rows(full, t, p, t, 30));
        for (int t = 7; t < 20; t++) {
            nl_ctx_reset(c2);
            nl_var *s = nl_lm_forward_cached(&m, c2, &kc, ids + t, 1, 1);
            NLT_CHECK(s != NULL, "%s", nl_last_error());
            if (s) worst = fmax(worst, max_diff_rows(full, t, s, 0, 30));
        }
        NLT_CHECK(worst < 2e-5, "variant %s: cached logits differ by %g", nl_rope_variant_name(c.rope.variant), worst);
        NLT_CHECK(kc.len == 20, "cache length %lld", (long long)kc.len);
        nl_lm_cache_free(&kc);
        nl_ctx_free(c1);
        nl_ctx_free(c2);
        nl_lm_free(&m);
    }
}

/* the cache grows (memory grows with the context) and stays exact past its first capacity */
static void test_kv_cache_growth(void) {
    nl_lm_config c = nl_lm_config_default();
    c.vocab = 16; c.context = 160; c.n_layers = 1; c.d_model = 16; c.n_heads = 2; c.d_ff = 16;
    nl_lm m;
    NLT_OK(nl_lm_init(&m, &c, 2));
    int32_t ids[150];
    for (int i = 0; i < 150; i++) ids[i] = (i * i + 1) % 16;
    nl_ctx *c1 = nl_ctx_new(0, 0), *c2 = nl_ctx_new(0, 0);
    nl_var *full = nl_lm_forward(&m, c1, ids, 1, 150, 0);
    nl_lm_cache kc;
    NLT_OK(nl_lm_cache_init(&kc, &m, 1));
    size_t b0 = 0;
    double worst = 0;
    for (int t = 0; t < 150; t++) {
        nl_ctx_reset(c2);
        nl_var *s = nl_lm_forward_cached(&m, c2, &kc, ids + t, 1, 1);
        if (!s) { NLT_CHECK(0, "%s", nl_last_error()); break; }
        worst = fmax(worst, max_diff_rows(full, t, s, 0, 16));
        if (t == 0) b0 = kc.bytes;
    }
    NLT_CHECK(worst < 2e-5, "cached logits differ by %g", worst);
    NLT_CHECK(kc.bytes > b0 && kc.cap >= 150, "cache grew: %zu -> %zu bytes, cap %lld", b0, kc.bytes, (long long)kc.cap);
    nl_lm_cache_free(&kc);
    nl_ctx_free(c1);
    nl_ctx_free(c2);
    nl_lm_free(&m);
}

static void test_training_reduces_loss(void) {
    /* repetitive corpus: "abcabd" repeated; after training the next byte is nearly determined */
    const char *pat = "the cat sat on the mat. ";
    int64_t n = 4000;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)n);
    for (int64_t i = 0; i < n; i++) tok[i] = (unsigned char)pat[i % (int64_t)strlen(pat)];
    nl_lm_config c = nl_lm_config_default();
    c.context = 32; c.n_layers = 2; c.d_model = 32; c.n_heads = 2; c.d_ff = 64;
    nl_lm m;
    NLT_OK(nl_lm_init(&m, &c, 1));
    nl_lm_train_config tc = nl_lm_train_defaults();
    tc.steps = 150; tc.batch = 8; tc.lr = 1e-2; tc.warmup = 10; tc.tokens = tok; tc.n_tokens = n; tc.seed = 3;
    nl_lm_train_result r;
    NLT_OK(nl_lm_train(&m, &tc, &r));
    NLT_CHECK(r.first_loss > 4.0, "initial loss %g should be near ln 256 = 5.5", r.first_loss);
    NLT_CHECK(r.final_loss < 0.3, "final training loss %g should be < 0.3", r.final_loss);
    double nll;
    int64_t cnt;
    NLT_OK(nl_lm_eval_nll(&m, tok, n, 32, 8, 0, 0, &nll, &cnt));
    NLT_CHECK(nll < 0.3 && cnt > 1000, "eval nll %g over %lld", nll, (long long)cnt);
    /* greedy generation continues the pattern */
    int32_t prompt[8], out[24];
    for (int i = 0; i < 8; i++) prompt[i] = (unsigned char)pat[i];
    nl_lm_sample_opts o = {0.0, 0, -1, 0};
    int64_t no;
    NLT_OK(nl_lm_generate(&m, prompt, 8, 24, &o, NULL, out, &no));
    int match = 0;
    for (int i = 0; i < 24; i++) match += out[i] == (unsigned char)pat[(8 + i) % strlen(pat)];
    NLT_CHECK(match >= 22, "greedy continuation matches %d/24", match);
    /* sampling with top-k 1 is greedy; temperature sampling is reproducible from the rng */
    nl_rng r1, r2;
    nl_rng_init(&r1, 9, 0);
    nl_rng_init(&r2, 9, 0);
    nl_lm_sample_opts s1 = {0.8, 5, -1, 0};
    int32_t a[16], b[16], g1[16];
    nl_lm_sample_opts k1 = {1.0, 1, -1, 0};
    NLT_OK(nl_lm_generate(&m, prompt, 8, 16, &s1, &r1, a, &no));
    NLT_OK(nl_lm_generate(&m, prompt, 8, 16, &s1, &r2, b, &no));
    NLT_CHECK(!memcmp(a, b, sizeof a), "same seed -> same sample");
    NLT_OK(nl_lm_generate(&m, prompt, 8, 16, &k1, &r1, g1, &no));
    NLT_CHECK(!memcmp(g1, out, sizeof g1), "top-k 1 equals greedy");
    free(tok);
    nl_lm_free(&m);
}

static void test_checkpoint(void) {
    char path[] = "/tmp/nl_test_lm_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    nl_lm_config c = tiny(NL_F32);
    c.norm = NL_LM_NORM_BATCH;
    c.tie_weights = 0;
    c.rope.variant = NL_ROPE_POWER;
    c.rope.power = 0.25;
    nl_lm m, m2;
    NLT_OK(nl_lm_init(&m, &c, 4));
    m.norm_step = 17;
    NLT_OK(nl_lm_save(&m, path));
    NLT_OK(nl_lm_load(&m2, path));
    NLT_CHECK(m2.cfg.norm == NL_LM_NORM_BATCH && m2.cfg.rope.variant == NL_ROPE_POWER && m2.cfg.rope.power == 0.25 &&
              !m2.cfg.tie_weights && m2.norm_step == 17, "config round trip");
    NLT_CHECK(m2.ps.total == m.ps.total && !memcmp(m.ps.data, m2.ps.data, sizeof(float) * (size_t)m.ps.total), "values");
    const int32_t ids[4] = {1, 2, 3, 4};
    nl_ctx *c1 = nl_ctx_new(0, 0);
    nl_var *l1 = nl_lm_forward(&m, c1, ids, 1, 4, 0), *l2 = nl_lm_forward(&m2, c1, ids, 1, 4, 0);
    NLT_CHECK(l1 && l2 && max_diff_rows(l1, 3, l2, 3, 11) == 0, "same logits");
    nl_ctx_free(c1);
    /* load into a model of another architecture -> clear error */
    nl_lm_config c3 = c;
    c3.n_layers = 2;
    nl_lm m3;
    NLT_OK(nl_lm_init(&m3, &c3, 1));
    nl_status s = nl_lm_load_into(&m3, path);
    NLT_CHECK(s == NL_EINVAL && strstr(nl_last_error(), "layers"), "mismatch: %s", nl_last_error());
    nl_lm_free(&m3);
    c3 = c;
    c3.norm = NL_LM_NORM_LAYER;
    NLT_OK(nl_lm_init(&m3, &c3, 1));
    s = nl_lm_load_into(&m3, path);
    NLT_CHECK(s == NL_EINVAL && strstr(nl_last_error(), "norm"), "norm mismatch: %s", nl_last_error());
    nl_lm_free(&m3);
    /* a checkpoint of another model type */
    nl_st_entry e = {"w", NL_ST_F32, 1, (int64_t[]){2}, (float[]){1, 2}};
    NLT_OK(nl_safetensors_write(path, &e, 1, "{\"nnlab.model\":\"mlp\"}"));
    s = nl_lm_load(&m3, path);
    NLT_CHECK(s == NL_EFORMAT && strstr(nl_last_error(), "different architecture"), "other model: %s", nl_last_error());
    NLT_OK(nl_safetensors_write(path, &e, 1, NULL));
    s = nl_lm_load(&m3, path);
    NLT_CHECK(s == NL_EFORMAT && strstr(nl_last_error(), "not an nnlab model"), "plain file: %s", nl_last_error());
    unlink(path);
    nl_lm_free(&m);
    nl_lm_free(&m2);
}

/* 2 + 2 steps resumed from a checkpoint == 4 at once: weights, AdamW state, RNGs (random windows, randomised
 * positions), batch-norm running statistics and the warmup + cosine schedule all continue bit-identically. */
static int same_bytes(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int ok = fa && fb, ca, cb;
    while (ok && (ca = fgetc(fa)) == (cb = fgetc(fb)) && ca != EOF) {}
    ok = ok && ca == EOF && cb == EOF;
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return ok;
}

static void test_resume_lm(void) {
    char pa[] = "/tmp/nl_test_lmr_XXXXXX", pb[] = "/tmp/nl_test_lmr_XXXXXX", pc[] = "/tmp/nl_test_lmr_XXXXXX";
    close(mkstemp(pa));
    close(mkstemp(pb));
    close(mkstemp(pc));
    const char *pat = "the cat sat on the mat. ";
    int32_t tok[600];
    for (int i = 0; i < 600; i++) tok[i] = (unsigned char)pat[i % (int)strlen(pat)];
    nl_lm_config c = tiny(NL_F32);
    c.vocab = 256;
    c.norm = NL_LM_NORM_BATCH;
    c.rope.randomized = 1;
    nl_lm_train_config tc = nl_lm_train_defaults();
    tc.steps = 4; tc.batch = 3; tc.warmup = 2; tc.tokens = tok; tc.n_tokens = 600; tc.seed = 11;
    nl_lm m0, m1, m2;
    nl_lm_train_result r;
    NLT_OK(nl_lm_init(&m0, &c, 2));
    tc.save_path = pa;
    NLT_OK(nl_lm_train(&m0, &tc, &r)); /* uninterrupted */
    NLT_OK(nl_lm_init(&m1, &c, 2));
    tc.save_path = pb;
    tc.stop_after = 2;
    NLT_OK(nl_lm_train(&m1, &tc, &r)); /* stopped after 2 of 4 */
    NLT_CHECK(r.steps == 2, "stopped at %lld", (long long)r.steps);
    NLT_OK(nl_lm_init(&m2, &c, 77));   /* another init: the weights must come from the file */
    tc.stop_after = 0;
    tc.resume_path = pb;
    tc.save_path = pc;
    tc.save_every = 1;
    NLT_OK(nl_lm_train(&m2, &tc, &r));
    NLT_CHECK(r.steps == 4, "resumed to %lld", (long long)r.steps);
    NLT_CHECK(!memcmp(m0.ps.data, m2.ps.data, sizeof(float) * (size_t)m0.ps.total) && m0.norm_step == m2.norm_step,
              "2 + 2 steps differ from 4");
    NLT_CHECK(same_bytes(pa, pc), "the final checkpoints (weights, optimizer state, RNGs) differ");
    /* the resumable file loads as a plain checkpoint */
    nl_lm l;
    NLT_OK(nl_lm_load(&l, pc));
    NLT_CHECK(!memcmp(l.ps.data, m0.ps.data, sizeof(float) * (size_t)m0.ps.total), "loaded weights");
    nl_lm_free(&l);
    /* refusals: another batch; another architecture; a weights-only file; a powernorm model */
    tc.save_path = NULL;
    tc.save_every = 0;
    tc.batch = 2;
    NLT_CHECK(nl_lm_train(&m2, &tc, &r) == NL_EINVAL && strstr(nl_last_error(), "batch"), "%s", nl_last_error());
    tc.batch = 3;
    nl_lm_config c3 = c;
    c3.n_layers = 2;
    NLT_OK(nl_lm_init(&l, &c3, 1));
    NLT_CHECK(nl_lm_train(&l, &tc, &r) == NL_EINVAL && strstr(nl_last_error(), "layers"), "%s", nl_last_error());
    nl_lm_free(&l);
    NLT_OK(nl_lm_save(&m0, pa));
    tc.resume_path = pa;
    NLT_CHECK(nl_lm_train(&m2, &tc, &r) == NL_EFORMAT && strstr(nl_last_error(), "no training state"), "%s", nl_last_error());
    c3 = c;
    c3.norm = NL_LM_NORM_POWER;
    NLT_OK(nl_lm_init(&l, &c3, 1));
    tc.resume_path = pb;
    NLT_CHECK(nl_lm_train(&l, &tc, &r) == NL_EINVAL && strstr(nl_last_error(), "powernorm"), "%s", nl_last_error());
    nl_lm_free(&l);
    unlink(pa);
    unlink(pb);
    unlink(pc);
    nl_lm_free(&m0);
    nl_lm_free(&m1);
    nl_lm_free(&m2);
}

/* hostile corpus paths: a FIFO (would block), /dev/zero (endless), a directory, a file over the cap (sparse) */
static void test_corpus_limits(void) {
    char dir[] = "/tmp/nl_test_corpus_lim_XXXXXX", fifo[64], big[64];
    NLT_CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    snprintf(big, sizeof big, "%s/big.txt", dir);
    NLT_CHECK(mkfifo(fifo, 0600) == 0, "mkfifo");
    uint8_t *buf = NULL;
    int64_t nb = 0;
    double t0 = nl_time(); /* with no writer, opening the FIFO would block forever */
    NLT_CHECK(nl_lm_corpus_load(fifo, &buf, &nb) == NL_EIO && strstr(nl_last_error(), "FIFO"), "%s", nl_last_error());
    NLT_CHECK(nl_lm_corpus_load("/dev/zero", &buf, &nb) == NL_EIO && strstr(nl_last_error(), "character device"), "%s",
              nl_last_error());
    NLT_CHECK(nl_lm_corpus_load(dir, &buf, &nb) == NL_EIO && strstr(nl_last_error(), "directory"), "%s", nl_last_error());
    FILE *f = fopen(big, "wb");
    NLT_CHECK(f && ftruncate(fileno(f), NL_LM_CORPUS_MAX_BYTES + 1) == 0, "sparse file");
    if (f) fclose(f);
    NLT_CHECK(nl_lm_corpus_load(big, &buf, &nb) == NL_EFORMAT && strstr(nl_last_error(), "limit"), "%s", nl_last_error());
    NLT_CHECK(buf == NULL && nl_time() - t0 < 5, "refused quickly");
    unlink(fifo);
    unlink(big);
    rmdir(dir);
}

static void test_corpus_split(void) {
    int64_t n = 65536 * 40 + 123;
    uint8_t *b = malloc((size_t)n);
    for (int64_t i = 0; i < n; i++) b[i] = (uint8_t)(i / 65536);
    int32_t *tr, *va, *te;
    int64_t ntr, nva, nte;
    NLT_OK(nl_lm_corpus_split(b, n, 0, &tr, &ntr, &va, &nva, &te, &nte));
    NLT_CHECK(ntr + nva + nte == n, "sizes add up");
    NLT_CHECK(nva == 2 * 65536 && nte == 2 * 65536, "valid %lld test %lld", (long long)nva, (long long)nte);
    NLT_CHECK(va[0] == 18 && va[65536] == 38 && te[0] == 19 && te[65536] == 39 && tr[0] == 0, "chunk assignment");
    free(tr); free(va); free(te);
    free(b);
    uint8_t *buf;
    int64_t nb;
    char path[] = "/tmp/nl_test_corpus_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    NLT_CHECK(nl_lm_corpus_load(path, &buf, &nb) == NL_EFORMAT && strstr(nl_last_error(), "empty"), "empty corpus: %s", nl_last_error());
    unlink(path);
    NLT_CHECK(nl_lm_corpus_load("/nonexistent/file", &buf, &nb) == NL_EIO, "missing file");
}

static void test_lines(void) {
    nl_rng r;
    nl_rng_init(&r, 1, 2);
    int32_t t[400];
    int64_t pl;
    int val;
    int64_t n = nl_lines_sample(&r, 5, t, 400, &pl, &val);
    NLT_CHECK(n == 5 * 15 + 8 + 8 && pl == 5 * 15 + 8, "lengths %lld %lld", (long long)n, (long long)pl);
    NLT_CHECK(nl_lines_prompt_len(5) == pl, "prompt_len");
    NLT_CHECK(nl_lines_first_int(t + pl, n - pl) == val, "answer parses to the value %d", val);
    NLT_CHECK(!strcmp(nl_lines_token_str(t[0]), "line") && !strcmp(nl_lines_token_str(t[5]), "REGISTER_CONTENT"),
              "format: %s ... %s", nl_lines_token_str(t[0]), nl_lines_token_str(t[5]));
    /* the queried key occurs in exactly one line and its value follows it */
    int32_t qa = t[pl - 6], qn = t[pl - 4];
    NLT_CHECK(!strcmp(nl_lines_token_str(t[pl - 8]), "?") && !strcmp(nl_lines_token_str(t[pl - 1]), "is"), "query format");
    int hits = 0;
    for (int i = 0; i < 5; i++)
        if (t[i * 15 + 1] == qa && t[i * 15 + 3] == qn) {
            hits++;
            NLT_CHECK(nl_lines_first_int(t + i * 15, 15) == val, "value of the queried line");
        }
    NLT_CHECK(hits == 1, "key found once (%d)", hits);
    int32_t none[3] = {0, 1, 2}, two[4] = {9 + 4, 9 + 2, 7, 9 + 9};
    NLT_CHECK(nl_lines_first_int(none, 3) == -1, "no integer");
    NLT_CHECK(nl_lines_first_int(two, 4) == 42, "first integer stops at a non-digit");
    NLT_CHECK(nl_lines_fit(128) == 7 && nl_lines_fit(16) == 0, "fit %d", nl_lines_fit(128));
    /* batches: every target span is an answer whose integer is the value of the queried line */
    nl_lines_batcher lb;
    memset(&lb, 0, sizeof lb);
    nl_rng_init(&lb.rng, 4, 0);
    lb.fill_queries = 1;
    int32_t ids[4 * 96], tg[4 * 96];
    NLT_OK(nl_lines_batch(&lb, 0, 4, 96, ids, tg));
    int answers = 0, good = 0;
    for (int b = 0; b < 4; b++) {
        const int32_t *row = ids + b * 96, *tr = tg + b * 96;
        for (int t = 0; t + 1 < 96; t++) {
            if (tr[t] < 0 || (t > 0 && tr[t - 1] >= 0)) continue; /* start of a target span: row[t] is '?' */
            NLT_CHECK(!strcmp(nl_lines_token_str(row[t]), "is") && !strcmp(nl_lines_token_str(row[t - 7]), "?"),
                      "targets start after the query");
            long v = nl_lines_first_int(tr + t, 8);
            int32_t qa = row[t - 5], qn = row[t - 3];
            for (int s = 0; s + 13 < t - 7; s++)
                if (!strcmp(nl_lines_token_str(row[s]), "line") && row[s + 1] == qa && row[s + 3] == qn &&
                    !strcmp(nl_lines_token_str(row[s + 4]), ":")) {
                    good += nl_lines_first_int(row + s + 7, 7) == v;
                    break;
                }
            answers++;
        }
    }
    NLT_CHECK(answers > 4 && good == answers, "%d of %d answers match their line", good, answers);
}

/* haystack prompts: exact length, lines intact at some depth, filler elsewhere, answer = the queried line's value;
 * haystack batches: one answer per row, targets only on it, prompts of varied length */
static int is_filler(int32_t tok) {
    static const char *const w[] = {"the", "grass", "is", "green", ".", "sky", "blue", "sun", "yellow", "here", "we",
                                    "go", "there", "and", "back", "again"};
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++)
        if (!strcmp(nl_lines_token_str(tok), w[i])) return 1;
    return 0;
}

static void test_lines_haystack(void) {
    NLT_CHECK(nl_lines_vocab() == 98, "vocab %d", nl_lines_vocab());
    NLT_CHECK(!strcmp(nl_lines_token_str(83), "the") && !strcmp(nl_lines_token_str(97), "again"), "filler tokens");
    nl_rng r;
    nl_rng_init(&r, 3, 4);
    int32_t t[300];
    int64_t pl;
    int val;
    for (int rep = 0; rep < 20; rep++) {
        const int nl = 1 + rep % 3;
        const int64_t P = nl_lines_prompt_len(nl) + 7 * rep;
        int64_t n = nl_lines_haystack_sample(&r, nl, P, t, 300, &pl, &val);
        NLT_CHECK(pl == P && n == P + 8, "lengths %lld %lld (P %lld)", (long long)n, (long long)pl, (long long)P);
        NLT_CHECK(nl_lines_first_int(t + pl, n - pl) == val, "answer is the value");
        int lines = 0, hits = 0, fill = 0;
        const int32_t qa = t[pl - 6], qn = t[pl - 4];
        for (int64_t i = 0; i < pl - 8;) {
            if (!strcmp(nl_lines_token_str(t[i]), "line")) {
                NLT_CHECK(!strcmp(nl_lines_token_str(t[i + 5]), "REGISTER_CONTENT") && !strcmp(nl_lines_token_str(t[i + 14]), "\n"),
                          "an intact line at %lld", (long long)i);
                if (t[i + 1] == qa && t[i + 3] == qn) {
                    hits++;
                    NLT_CHECK(nl_lines_first_int(t + i + 7, 7) == val, "the queried line holds the value");
                }
                lines++;
                i += 15;
            } else {
                fill += is_filler(t[i]);
                NLT_CHECK(is_filler(t[i]), "filler token '%s' at %lld", nl_lines_token_str(t[i]), (long long)i);
                i++;
            }
        }
        NLT_CHECK(lines == nl && hits == 1 && fill == 7 * rep, "%d lines, %d hits, %d filler", lines, hits, fill);
    }
    NLT_CHECK(nl_lines_haystack_sample(&r, 2, nl_lines_prompt_len(2) - 1, t, 300, &pl, &val) == -1, "too short a prompt");
    NLT_CHECK(nl_lines_haystack_sample(&r, 1, 293, t, 300, &pl, &val) == -1 && nl_lines_haystack_sample(&r, 1, 292, t, 300, &pl, &val) == 300, "room for the answer");
    /* batches */
    nl_lines_batcher lb;
    memset(&lb, 0, sizeof lb);
    nl_rng_init(&lb.rng, 5, 0);
    lb.haystack = 1;
    lb.fill_queries = 1; /* ignored */
    enum { BB = 8, TT = 80 };
    int32_t ids[BB * TT], tg[BB * TT];
    NLT_OK(nl_lines_batch(&lb, 0, BB, TT, ids, tg));
    int64_t minp = TT, maxp = 0;
    for (int b = 0; b < BB; b++) {
        const int32_t *row = ids + b * TT, *tr = tg + b * TT;
        int spans = 0, ntg = 0;
        int64_t start = -1;
        for (int t2 = 0; t2 < TT; t2++) {
            if (tr[t2] >= 0) {
                ntg++;
                if (t2 == 0 || tr[t2 - 1] < 0) { spans++; start = t2; }
            }
        }
        NLT_CHECK(spans == 1 && ntg == 8 && start >= 0, "row %d: %d target spans, %d targets", b, spans, ntg);
        if (start < 0) continue;
        NLT_CHECK(!strcmp(nl_lines_token_str(row[start]), "is") && !strcmp(nl_lines_token_str(row[start - 7]), "?"),
                  "row %d: the target follows the query", b);
        const int32_t qa = row[start - 5], qn = row[start - 3];
        int good = 0;
        for (int s2 = 0; s2 + 14 < start - 7; s2++)
            if (!strcmp(nl_lines_token_str(row[s2]), "line") && row[s2 + 1] == qa && row[s2 + 3] == qn)
                good = nl_lines_first_int(row + s2 + 7, 7) == nl_lines_first_int(tr + start, 8);
        NLT_CHECK(good, "row %d: the answer is the line's value", b);
        if (start + 1 < minp) minp = start + 1;
        if (start + 1 > maxp) maxp = start + 1;
    }
    NLT_CHECK(maxp > minp, "prompt lengths vary (%lld..%lld)", (long long)minp, (long long)maxp);
    int32_t small_ids[2 * 20], small_tg[2 * 20];
    NLT_CHECK(nl_lines_batch(&lb, 0, 2, 20, small_ids, small_tg) == NL_EINVAL, "a window too short for a sample");
}

/* every norm kind: trains a few steps, eval forward equals cached decoding (running statistics) */
static void test_norm_kinds(void) {
    const char *pat = "abcdefgh";
    int32_t tok[600];
    for (int i = 0; i < 600; i++) tok[i] = (unsigned char)pat[i % 8];
    for (int nk = 0; nk < NL_LM_NORM_KIND_COUNT; nk++) {
        nl_lm_config c = nl_lm_config_default();
        c.context = 16; c.n_layers = 2; c.d_model = 16; c.n_heads = 2; c.d_ff = 32;
        c.norm = (nl_lm_norm_kind)nk;
        c.pn_warmup = 5;
        nl_lm m;
        NLT_OK(nl_lm_init(&m, &c, 1));
        nl_lm_train_config tc = nl_lm_train_defaults();
        tc.steps = 30; tc.batch = 4; tc.lr = 1e-2; tc.warmup = 3; tc.tokens = tok; tc.n_tokens = 600;
        nl_lm_train_result r;
        NLT_OK(nl_lm_train(&m, &tc, &r));
        NLT_CHECK(r.final_loss < r.first_loss - 1.0, "%s: loss %g -> %g", nl_lm_norm_name(c.norm), r.first_loss, r.final_loss);
        nl_ctx *c1 = nl_ctx_new(0, 0), *c2 = nl_ctx_new(0, 0);
        nl_var *full = nl_lm_forward(&m, c1, tok, 1, 12, 0);
        nl_lm_cache kc;
        NLT_OK(nl_lm_cache_init(&kc, &m, 1));
        double worst = 0;
        for (int t = 0; t < 12 && full; t++) {
            nl_ctx_reset(c2);
            nl_var *s = nl_lm_forward_cached(&m, c2, &kc, tok + t, 1, 1);
            if (!s) { NLT_CHECK(0, "%s", nl_last_error()); break; }
            worst = fmax(worst, max_diff_rows(full, t, s, 0, 256));
        }
        NLT_CHECK(full && worst < 2e-4, "%s: cached logits differ by %g", nl_lm_norm_name(c.norm), worst);
        if (c.norm == NL_LM_NORM_POWER) {
            const nl_param *it = nl_params_find(&m.ps, "layers.0.norm1.iters");
            NLT_CHECK(it && nl_tensor_get(&it->var.val, 0) == 30, "powernorm step counter is a buffer (%g)",
                      it ? nl_tensor_get(&it->var.val, 0) : -1.0);
            NLT_CHECK(nl_params_find(&m.ps, "norm_f.running_phi") != NULL, "powernorm buffers present");
        }
        nl_lm_cache_free(&kc);
        nl_ctx_free(c1);
        nl_ctx_free(c2);
        nl_lm_free(&m);
    }
}

/* LM-Infinite attention: identical to vanilla within the local window; cached decoding equals the full forward
 * beyond it; the cache stays bounded. */
/* plug-in attention kinds: a kind nobody provided is refused naming the method; a provided one is called with the
 * unrotated q, k, v of every layer and may run past the training context when it says so */
static int g_plug_calls;
static nl_var *plug_attn(nl_ctx *c, const nl_lm_attn_args *a, void *ud) {
    (void)ud;
    g_plug_calls++;
    return nl_attention(c, a->q, a->k, a->v, NULL, 1, 0.0);   /* causal attention without RoPE */
}

static void test_attn_plugin(void) {
    nl_lm_config c = nl_lm_config_default();
    c.vocab = 16; c.context = 8; c.n_layers = 2; c.d_model = 16; c.n_heads = 2; c.d_ff = 32;
    c.attn = NL_LM_ATTN_LMINF;
    nl_lm m;
    NLT_CHECK(nl_lm_init(&m, &c, 1) == NL_EINVAL && strstr(nl_last_error(), "nl_lm_infinite_register"),
              "unprovided kind refused: %s", nl_last_error());
    NLT_CHECK(nl_lm_attn_provide(NL_LM_ATTN_VANILLA, plug_attn, NULL, 1) == NL_EINVAL, "vanilla is not a plug-in");
    NLT_OK(nl_lm_attn_provide(NL_LM_ATTN_LMINF, plug_attn, NULL, 1));
    NLT_OK(nl_lm_init(&m, &c, 1));
    int32_t ids[20];
    for (int i = 0; i < 20; i++) ids[i] = i % 16;
    nl_ctx *ctx = nl_ctx_new(0, 0);
    g_plug_calls = 0;
    nl_var *lg = nl_lm_forward(&m, ctx, ids, 1, 8, 0);
    NLT_CHECK(lg && g_plug_calls == 2, "called once per layer (%d)", g_plug_calls);
    NLT_OK(nl_lm_check_length(&m, 20, 0));   /* any_length = 1 */
    NLT_OK(nl_lm_attn_provide(NL_LM_ATTN_LMINF, plug_attn, NULL, 0));
    NLT_CHECK(nl_lm_check_length(&m, 20, 0) == NL_EINVAL, "bounded kind: too long without extrapolation");
    nl_lm_attn_provide(NL_LM_ATTN_LMINF, NULL, NULL, 0);
    nl_ctx_free(ctx);
    nl_lm_free(&m);
}

static void test_errors(void) {
    nl_lm_config c = tiny(NL_F32);
    nl_lm m;
    c.n_heads = 3;
    NLT_CHECK(nl_lm_init(&m, &c, 0) == NL_EINVAL && strstr(nl_last_error(), "heads"), "%s", nl_last_error());
    c = tiny(NL_F32);
    c.d_model = 6; c.n_heads = 2;  /* head dim 3 is odd */
    NLT_CHECK(nl_lm_init(&m, &c, 0) == NL_EINVAL && strstr(nl_last_error(), "even"), "%s", nl_last_error());
    c = tiny(NL_F32);
    c.rope.scale_eval = 2; /* plain with a scale */
    NLT_CHECK(nl_lm_init(&m, &c, 0) == NL_EINVAL, "plain rope with scale");
    c = tiny(NL_F32);
    c.attn = NL_LM_ATTN_CUSTOM;
    NLT_CHECK(nl_lm_init(&m, &c, 0) == NL_EINVAL && strstr(nl_last_error(), "attn_fn"), "%s", nl_last_error());
    nl_lm_norm_kind nk;
    NLT_CHECK(nl_lm_norm_parse("groupnorm", &nk) == NL_EINVAL, "unknown norm");
    c = tiny(NL_F32);
    NLT_OK(nl_lm_init(&m, &c, 0));
    nl_ctx *ctx = nl_ctx_new(0, 0);
    int32_t ids[20] = {0}, bad[2] = {3, 11};
    NLT_CHECK(nl_lm_forward(&m, ctx, ids, 1, 20, 1) == NULL && strstr(nl_last_error(), "exceeds"), "train length: %s", nl_last_error());
    NLT_CHECK(nl_lm_forward(&m, ctx, bad, 1, 2, 0) == NULL && strstr(nl_last_error(), "out of range"), "bad id: %s", nl_last_error());
    NLT_CHECK(nl_lm_check_length(&m, 20, 0) == NL_EINVAL && strstr(nl_last_error(), "training context 8"), "%s", nl_last_error());
    NLT_OK(nl_lm_check_length(&m, 20, 1));
    double nll;
    int64_t cnt;
    NLT_CHECK(nl_lm_eval_nll(&m, ids, 20, 16, 1, 0, 0, &nll, &cnt) == NL_EINVAL, "eval longer than context refused");
    NLT_OK(nl_lm_eval_nll(&m, ids, 20, 16, 1, 0, 1, &nll, &cnt));
    int32_t out[4];
    int64_t no;
    nl_lm_sample_opts o = {0, 0, -1, 0};
    NLT_CHECK(nl_lm_generate(&m, ids, 6, 4, &o, NULL, out, &no) == NL_EINVAL, "generation past the context refused");
    NLT_CHECK(nl_lm_generate(&m, ids, 0, 4, &o, NULL, out, &no) == NL_EINVAL, "empty prompt");
    nl_lm_train_config tc = nl_lm_train_defaults();
    tc.steps = 1; tc.tokens = ids; tc.n_tokens = 5;
    nl_lm_train_result r;
    NLT_CHECK(nl_lm_train(&m, &tc, &r) == NL_EINVAL && strstr(nl_last_error(), "fewer than one window"), "%s", nl_last_error());
    nl_ctx_free(ctx);
    nl_lm_free(&m);
    NLT_CHECK(nl_lm_load(&m, "/nonexistent.safetensors") != NL_OK, "missing checkpoint");
}

/* Attention whose output is finite but whose backward is not: sqrt(q - q) adds 0, its derivative at 0 is infinite. */
static nl_var *nan_grad_attn(nl_ctx *c, const nl_lm_attn_args *a, void *ud) {
    (void)ud;
    nl_var *o = nl_attention(c, a->q, a->k, a->v, NULL, 1, 0.0);
    return o ? nl_add(c, o, nl_sqrt(c, nl_sub(c, a->q, a->q))) : NULL;
}

/* A diverging run names the step and what went non-finite: the loss (NaN weight) or a parameter's gradient. */
static void test_divergence_message(void) {
    int32_t tok[64];
    for (int i = 0; i < 64; i++) tok[i] = i % 11;
    nl_lm_config c = tiny(NL_F32);
    nl_lm m;
    NLT_OK(nl_lm_init(&m, &c, 1));
    ((float *)m.ps.data)[m.ps.p[0]->offset] = NAN; /* the loss is NaN from the first step */
    nl_lm_train_config tc = nl_lm_train_defaults();
    tc.steps = 3; tc.batch = 2; tc.tokens = tok; tc.n_tokens = 64;
    nl_lm_train_result r;
    NLT_CHECK(nl_lm_train(&m, &tc, &r) == NL_ENONFINITE && strstr(nl_last_error(), "step 1: loss is NaN"), "%s", nl_last_error());
    nl_lm_free(&m);
    c.attn = NL_LM_ATTN_CUSTOM;
    c.attn_fn = nan_grad_attn;
    NLT_OK(nl_lm_init(&m, &c, 1));
    nl_status st = nl_lm_train(&m, &tc, &r);
    NLT_CHECK(st == NL_ENONFINITE && strstr(nl_last_error(), "step 1: ") && strstr(nl_last_error(), "gradient") &&
                  strstr(nl_last_error(), "parameter '"),
              "the step and the parameter: %s", nl_last_error());
    nl_lm_free(&m);
}

int main(void) {
    nl_threads_init();
    NLT_RUN(test_gradcheck_f64);
    NLT_RUN(test_gradcheck_batchnorm_eval);
    NLT_RUN(test_kv_cache);
    NLT_RUN(test_kv_cache_growth);
    NLT_RUN(test_training_reduces_loss);
    NLT_RUN(test_checkpoint);
    NLT_RUN(test_resume_lm);
    NLT_RUN(test_corpus_split);
    NLT_RUN(test_corpus_limits);
    NLT_RUN(test_lines);
    NLT_RUN(test_lines_haystack);
    NLT_RUN(test_norm_kinds);
    NLT_RUN(test_attn_plugin);
    NLT_RUN(test_errors);
    NLT_RUN(test_divergence_message);
    return nlt_finish();
}
