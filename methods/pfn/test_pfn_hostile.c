/* Hostile PFN checkpoints: metadata naming a huge configuration (refused before allocating), a shape mismatch, a
 * wrong tensor count, NaN / Inf weights and borders (NL_EFORMAT naming the tensor; NL_LOAD_ALLOW_NONFINITE loads the
 * weights). Every file is made here from a real checkpoint, in a temp dir. */
#include "nltest.h"
#include "nltest_ckpt.h"
#include "pfn/pfn.h"
#include <math.h>
#include <stdio.h>
#include <unistd.h>

static char g_dir[] = "/tmp/nl_pfnhostile_XXXXXX";

static void test_pfn_hostile(void) {
    char good[256], bad[256];
    snprintf(good, sizeof good, "%s/pfn.safetensors", g_dir);
    snprintf(bad, sizeof bad, "%s/bad.safetensors", g_dir);
    nl_pfn_config c = nl_pfn_config_default();
    c.dim = 1;
    c.emsize = 8;
    c.n_layers = 1;
    c.n_heads = 2;
    c.d_ff = 16;
    c.d_dec = 16;
    c.n_buckets = 5;
    const double borders[6] = {0, 1, 2, 2.5, 4, 6};
    nl_pfn m;
    NLT_OK(nl_pfn_init(&m, &c, borders, 1));
    NLT_OK(nl_pfn_save(&m, good));
    nl_pfn_free(&m);
    NLT_OK(nl_pfn_load(&m, good));
    nl_pfn_free(&m);
    /* the largest configuration the bounds allow (16 layers of 4096 x 65536) from a small file: refused at once */
    const char *keys[] = {"pfn.emsize", "pfn.d_ff", "pfn.layers", "pfn.d_dec"};
    const char *vals[] = {"4096", "65536", "16", "65536"};
    for (int i = 0; i < 4; i++) {
        NLT_OK(nlt_ckpt_rewrite(good, bad, keys[i], vals[i], NULL, 0));
        double t0 = nl_time();
        nl_status s = nl_pfn_load(&m, bad);
        NLT_CHECK((s == NL_ESHAPE || s == NL_EFORMAT) && nl_time() - t0 < 1.0, "%s = %s: %s %s (%.3f s)", keys[i], vals[i],
                  nl_status_name(s), nl_last_error(), nl_time() - t0);
        NLT_CHECK(m.ps.n == 0 && !m.ps.data, "nothing allocated");
    }
    const char *bk[] = {"pfn.emsize", "pfn.layers", "pfn.buckets", "pfn.dim", "pfn.heads"};
    const char *bv[] = {"-8", "17", "2147483648", "0", "3"};
    for (int i = 0; i < 5; i++) {
        NLT_OK(nlt_ckpt_rewrite(good, bad, bk[i], bv[i], NULL, 0));
        NLT_CHECK(nl_pfn_load(&m, bad) == NL_EFORMAT, "%s = %s: %s", bk[i], bv[i], nl_last_error());
    }
    /* one bucket more: the decoder's shape no longer matches */
    NLT_OK(nlt_ckpt_rewrite(good, bad, "pfn.buckets", "6", NULL, 0));
    NLT_CHECK(nl_pfn_load(&m, bad) == NL_ESHAPE && strstr(nl_last_error(), "dec.fc2"), "%s", nl_last_error());
    /* NaN / Inf: refused with the tensor's name (the same status as the model and LM loaders) */
    const double poison[2] = {NAN, INFINITY};
    for (int i = 0; i < 2; i++) {
        NLT_OK(nlt_ckpt_rewrite(good, bad, NULL, NULL, "layers.0.ff.fc1.weight", poison[i]));
        NLT_CHECK(nl_pfn_load(&m, bad) == NL_EFORMAT && strstr(nl_last_error(), "layers.0.ff.fc1.weight"), "%s", nl_last_error());
        NLT_OK(nl_pfn_load_opt(&m, bad, NL_LOAD_ALLOW_NONFINITE));
        NLT_CHECK(!isfinite(((float *)m.ps.data)[m.layer[0].fc1_w ? nl_params_of(&m.ps, m.layer[0].fc1_w)->offset : 0]), "value kept");
        nl_pfn_free(&m);
    }
    NLT_OK(nlt_ckpt_rewrite(good, bad, NULL, NULL, "bar.borders", NAN));
    NLT_CHECK(nl_pfn_load(&m, bad) == NL_EFORMAT && strstr(nl_last_error(), "bar.borders"), "%s", nl_last_error());
    NLT_CHECK(nl_pfn_load_opt(&m, bad, NL_LOAD_ALLOW_NONFINITE) != NL_OK, "NaN borders are never usable: %s", nl_last_error());
    unlink(good);
    unlink(bad);
}

int main(void) {
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    NLT_RUN(test_pfn_hostile);
    rmdir(g_dir);
    return nlt_finish();
}
