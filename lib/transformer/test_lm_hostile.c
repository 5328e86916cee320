/* Hostile transformer-LM checkpoints: metadata naming a huge or invalid architecture (refused before anything of
 * its size is allocated), sizes whose products would overflow, a shape mismatch, NaN / Inf weights (refused with the
 * tensor's name, loaded with NL_LOAD_ALLOW_NONFINITE), and generate on NaN logits. Files made here, in a temp dir. */
#include "nltest.h"
#include "nltest_ckpt.h"
#include "transformer/transformer.h"
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <unistd.h>

static char g_dir[] = "/tmp/nl_lmhostile_XXXXXX";

static void test_config_bounds(void) {
    nl_lm_config c = nl_lm_config_default();
    c.d_model = INT_MAX - 1; /* 4 * d_model would overflow int */
    c.n_heads = 1;
    NLT_CHECK(nl_lm_config_check(&c) == NL_EINVAL && strstr(nl_last_error(), "d_model"), "%s", nl_last_error());
    c = nl_lm_config_default();
    c.vocab = INT_MAX;
    NLT_CHECK(nl_lm_config_check(&c) == NL_EINVAL, "huge vocab");
    c = nl_lm_config_default();
    c.context = INT_MAX;
    NLT_CHECK(nl_lm_config_check(&c) == NL_EINVAL, "huge context");
    c = nl_lm_config_default();
    c.d_ff = NL_LM_MAX_D_FF + 1;
    NLT_CHECK(nl_lm_config_check(&c) == NL_EINVAL, "huge d_ff");
    c = nl_lm_config_default();
    c.tie_weights = 7;
    NLT_CHECK(nl_lm_config_check(&c) == NL_EINVAL, "tie 7");
}

static void test_load_hostile(void) {
    char good[256], bad[256];
    snprintf(good, sizeof good, "%s/lm.safetensors", g_dir);
    snprintf(bad, sizeof bad, "%s/bad.safetensors", g_dir);
    nl_lm_config c = nl_lm_config_default();
    c.vocab = 256;
    c.context = 16;
    c.n_layers = 1;
    c.d_model = 8;
    c.n_heads = 2;
    c.d_ff = 16;
    nl_lm m;
    NLT_OK(nl_lm_init(&m, &c, 3));
    NLT_OK(nl_lm_save(&m, good));
    nl_lm_free(&m);
    NLT_OK(nl_lm_load(&m, good));
    nl_lm_free(&m);

    /* a huge architecture (2^24 x 2^16 embedding = 4 TiB) named by a small file: refused at once */
    const char *keys[] = {"nnlab.vocab", "nnlab.d_model", "nnlab.d_ff", "nnlab.layers"};
    const char *vals[] = {"16777216", "65536", "262144", "16"};
    for (int i = 0; i < 4; i++) {
        NLT_OK(nlt_ckpt_rewrite(good, bad, keys[i], vals[i], NULL, 0));
        double t0 = nl_time();
        nl_status s = nl_lm_load(&m, bad);
        NLT_CHECK(s != NL_OK && s != NL_ENOMEM, "%s = %s: %s %s", keys[i], vals[i], nl_status_name(s), nl_last_error());
        NLT_CHECK(nl_time() - t0 < 1.0, "%s refused in %.3f s", keys[i], nl_time() - t0);
        NLT_CHECK(m.ps.n == 0 && !m.ps.data, "nothing allocated");
    }
    /* beyond the documented bounds / overflowing products / negative */
    const char *bk[] = {"nnlab.d_model", "nnlab.d_model", "nnlab.vocab", "nnlab.context", "nnlab.heads", "nnlab.d_ff", "nnlab.tie", "nnlab.layers"};
    const char *bv[] = {"2147483647", "-8", "2147483647", "2147483647", "0", "-1", "5", "17"};
    for (int i = 0; i < 8; i++) {
        NLT_OK(nlt_ckpt_rewrite(good, bad, bk[i], bv[i], NULL, 0));
        NLT_CHECK(nl_lm_load(&m, bad) == NL_EFORMAT && strstr(nl_last_error(), "invalid"), "%s = %s: %s", bk[i], bv[i], nl_last_error());
    }
    NLT_OK(nlt_ckpt_rewrite(good, bad, "nnlab.d_model", "99999999999999999999", NULL, 0));
    NLT_CHECK(nl_lm_load(&m, bad) == NL_EFORMAT, "d_model beyond long long: %s", nl_last_error());
    /* shape mismatch: d_ff 32 against tensors of 16 */
    NLT_OK(nlt_ckpt_rewrite(good, bad, "nnlab.d_ff", "32", NULL, 0));
    NLT_CHECK(nl_lm_load(&m, bad) == NL_ESHAPE && strstr(nl_last_error(), "fc1"), "%s", nl_last_error());
    /* NaN / Inf weights */
    const double poison[2] = {NAN, -INFINITY};
    for (int i = 0; i < 2; i++) {
        NLT_OK(nlt_ckpt_rewrite(good, bad, NULL, NULL, "tok_emb.weight", poison[i]));
        NLT_CHECK(nl_lm_load(&m, bad) == NL_EFORMAT && strstr(nl_last_error(), "tok_emb.weight"), "%s", nl_last_error());
        nl_lm m2;
        NLT_OK(nl_lm_init(&m2, &c, 4));
        NLT_CHECK(nl_lm_load_into(&m2, bad) == NL_EFORMAT, "load_into refuses too");
        nl_lm_free(&m2);
        NLT_OK(nl_lm_load_opt(&m, bad, NL_LOAD_ALLOW_NONFINITE));
        /* the loaded model's logits are NaN: generate says so instead of printing nothing */
        int32_t prompt[2] = {65, 66}, out[4];
        int64_t no = 0;
        nl_lm_sample_opts so = {0, 0, -1, 0};
        NLT_CHECK(nl_lm_generate(&m, prompt, 2, 4, &so, NULL, out, &no) == NL_ENONFINITE && no == 0, "generate on NaN logits: %s",
                  nl_last_error());
        nl_lm_free(&m);
    }
    unlink(good);
    unlink(bad);
}

int main(void) {
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    NLT_RUN(test_config_bounds);
    NLT_RUN(test_load_hostile);
    rmdir(g_dir);
    return nlt_finish();
}
