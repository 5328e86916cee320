/* Resumable training (train.h): 2 + 2 epochs resumed from a checkpoint give bit-identical weights and optimizer
 * state to 4 uninterrupted (MLP with dropout, Adam, cosine warmup; CNN with batch norm, SGD Nesterov, linear
 * schedule; a mid-epoch --save-every checkpoint); weights-only loading of resumable files; refusals. */
#include "nltest.h"
#include <unistd.h>

static nl_dataset g_ds; /* 200 synthetic 6x6 "images", 3 classes from a linear rule */
static char g_dir[64];

static void make_data(void) {
    memset(&g_ds, 0, sizeof g_ds);
    g_ds.n = 200;
    g_ds.d = 36;
    g_ds.n_classes = 3;
    g_ds.height = g_ds.width = 6;
    g_ds.channels = 1;
    snprintf(g_ds.name, sizeof g_ds.name, "synthetic");
    g_ds.x = malloc(sizeof(float) * 200 * 36);
    g_ds.y = malloc(sizeof(int32_t) * 200);
    nl_rng r;
    nl_rng_init(&r, 7, 1);
    for (int64_t i = 0; i < 200; i++) {
        double s = 0, t = 0;
        for (int64_t j = 0; j < 36; j++) {
            float v = (float)nl_rng_uniform(&r);
            g_ds.x[i * 36 + j] = v;
            s += j < 18 ? v : -v;
            t += j % 2 ? v : -v;
        }
        g_ds.y[i] = s > 0.5 ? 0 : t > 0 ? 1 : 2;
    }
}

typedef struct {
    int64_t stop_epoch, stop_step;
} stopper;
static int on_epoch(void *ud, nl_model *m, const nl_train_progress *p) {
    (void)m;
    const stopper *s = ud;
    return s->stop_epoch > 0 && p->epoch >= s->stop_epoch;
}
static int on_step(void *ud, nl_model *m, const nl_train_progress *p) {
    (void)m;
    const stopper *s = ud;
    return s->stop_step > 0 && p->step >= s->stop_step;
}

static void path(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", g_dir, name); }

/* every tensor of a (names, shapes, bytes) equal in b, and the same count */
static int same_files(const char *a, const char *b) {
    nl_st_file fa, fb;
    if (nl_safetensors_open(a, &fa)) return 0;
    if (nl_safetensors_open(b, &fb)) { nl_safetensors_close(&fa); return 0; }
    int ok = fa.n == fb.n;
    for (int i = 0; ok && i < fa.n; i++) {
        const nl_st_tensor *t = nl_safetensors_find(&fb, fa.t[i].name);
        ok = t && t->end - t->begin == fa.t[i].end - fa.t[i].begin && !memcmp(t->data, fa.t[i].data, (size_t)(t->end - t->begin));
        if (!ok) fprintf(stderr, "  tensor %s differs\n", fa.t[i].name);
    }
    const char *sa = nl_safetensors_get_metadata(&fa, "train.step"), *sb = nl_safetensors_get_metadata(&fb, "train.step");
    ok = ok && sa && sb && !strcmp(sa, sb);
    nl_safetensors_close(&fa);
    nl_safetensors_close(&fb);
    return ok;
}

static nl_train_config base_cfg(int cnn) {
    nl_train_config c = nl_train_defaults();
    c.epochs = 4;
    c.batch = 32; /* 7 batches per epoch, the last one of 8 */
    c.verbose = 0;
    c.threads = 1;
    c.seed = 5;
    if (cnn) {
        c.optim = nl_optim_defaults(NL_OPT_SGD);
        c.optim.momentum = 0.9;
        c.optim.nesterov = 1;
        c.optim.weight_decay = 1e-3;
        c.optim.sched = NL_SCHED_LINEAR;
        c.optim.min_ratio = 0.1;
    } else {
        c.optim = nl_optim_defaults(NL_OPT_ADAM);
        c.optim.sched = NL_SCHED_COSINE;
        c.optim.warmup_steps = 5;
        c.optim.clip_norm = 1.0;
    }
    return c;
}

static nl_model_config model_cfg(int cnn, int64_t hidden) {
    if (cnn) {
        int ch[1] = {4};
        nl_model_config m = nl_cnn_config(1, 6, 6, 1, ch, 8, 3);
        m.batchnorm = 1;
        return m;
    }
    int64_t sizes[3] = {36, hidden, 3};
    return nl_mlp_config(3, sizes, NL_ACT_RELU, 0.2);
}

/* run the config (resumed from `resume` when not NULL), stopped by st, checkpoints to `save` */
static nl_status run(int cnn, uint64_t init_seed, const char *save, const char *resume, int64_t save_every, stopper st,
                     nl_model *m) {
    nl_model_config mc = model_cfg(cnn, 16);
    NLT_OK(nl_model_init(m, &mc, init_seed));
    nl_train_config c = base_cfg(cnn);
    c.checkpoint_path = save;
    c.resume_path = resume;
    c.save_every = save_every;
    nl_train_callbacks cb = {&st, NULL, NULL, on_step, on_epoch};
    nl_train_result r;
    nl_status s = nl_train_run(m, &g_ds, NULL, &c, &cb, &r);
    nl_train_result_free(&r);
    return s;
}

static void check_resume(int cnn) {
    char full[128], a[128], b[128], mid[128], c2[128];
    path(full, sizeof full, "full.st");
    path(a, sizeof a, "a.st");
    path(b, sizeof b, "b.st");
    path(mid, sizeof mid, "mid.st");
    path(c2, sizeof c2, "c.st");
    nl_model m0, m1, m2, m3, m4;
    NLT_OK(run(cnn, 1, full, NULL, 0, (stopper){0, 0}, &m0));
    /* 2 epochs, then a fresh process resumes (the new model's init differs: the weights must come from the file) */
    NLT_OK(run(cnn, 1, a, NULL, 0, (stopper){2, 0}, &m1));
    NLT_OK(run(cnn, 99, b, a, 0, (stopper){0, 0}, &m2));
    NLT_CHECK(!memcmp(m0.ps.data, m2.ps.data, (size_t)m0.ps.total * nl_dtype_size(m0.ps.dtype)), "2 + 2 epochs resumed differ from 4");
    NLT_CHECK(same_files(full, b), "the final checkpoints (weights, optimizer state) differ");
    /* stopped in the middle of epoch 2 (step 12 of 28, save_every 5 wrote step 10 before) */
    NLT_OK(run(cnn, 1, mid, NULL, 5, (stopper){0, 12}, &m3));
    nl_st_file f;
    NLT_OK(nl_train_state_open(mid, &f));
    if (!f.path) return;
    const char *stp = nl_safetensors_get_metadata(&f, "train.step"), *pos = nl_safetensors_get_metadata(&f, "train.pos");
    NLT_CHECK(stp && !strcmp(stp, "12") && pos && !strcmp(pos, "160"), "step %s pos %s", stp ? stp : "-", pos ? pos : "-");
    nl_safetensors_close(&f);
    NLT_OK(run(cnn, 3, c2, mid, 5, (stopper){0, 0}, &m4));
    NLT_CHECK(!memcmp(m0.ps.data, m4.ps.data, (size_t)m0.ps.total * nl_dtype_size(m0.ps.dtype)), "mid-epoch resume differs");
    NLT_CHECK(same_files(full, c2), "the final checkpoints after a mid-epoch resume differ");
    /* a resumable checkpoint still loads as an ordinary model */
    nl_model l;
    NLT_OK(nl_model_load(&l, a));
    NLT_CHECK(l.ps.total == m1.ps.total && !memcmp(l.ps.data, m1.ps.data, (size_t)l.ps.total * nl_dtype_size(l.ps.dtype)), "loaded weights");
    nl_model_free(&l);
    nl_model *ms[5] = {&m0, &m1, &m2, &m3, &m4};
    for (int i = 0; i < 5; i++) nl_model_free(ms[i]);
}

static void test_resume_mlp_adam_cosine(void) { check_resume(0); }
static void test_resume_cnn_sgd_linear(void) { check_resume(1); }

static void test_resume_refusals(void) {
    char a[128], w[128], o[128];
    path(a, sizeof a, "r.st");
    path(w, sizeof w, "weights.st");
    path(o, sizeof o, "out.st");
    nl_model m;
    NLT_OK(run(0, 1, a, NULL, 0, (stopper){1, 0}, &m));
    NLT_OK(nl_model_save(&m, w, 0, NULL, NULL));
    nl_model_free(&m);
    /* weights only */
    nl_status s = run(0, 1, o, w, 0, (stopper){0, 0}, &m);
    NLT_CHECK(s == NL_EFORMAT && strstr(nl_last_error(), "no training state"), "%s", nl_last_error());
    nl_model_free(&m);
    /* another architecture: hidden 8 instead of 16; a CNN */
    nl_model_config mc = model_cfg(0, 8);
    NLT_OK(nl_model_init(&m, &mc, 1));
    nl_train_config c = base_cfg(0);
    c.resume_path = a;
    nl_train_result r;
    s = nl_train_run(&m, &g_ds, NULL, &c, NULL, &r);
    NLT_CHECK(s == NL_ESHAPE && strstr(r.message, "fc1.weight") && strstr(r.message, "architecture"), "%s", r.message);
    nl_train_result_free(&r);
    nl_model_free(&m);
    s = run(1, 1, NULL, a, 0, (stopper){0, 0}, &m);
    NLT_CHECK(s == NL_EINVAL && strstr(nl_last_error(), "mlp") && strstr(nl_last_error(), "cnn"), "%s", nl_last_error());
    nl_model_free(&m);
    /* another batch size; another optimizer */
    mc = model_cfg(0, 16);
    NLT_OK(nl_model_init(&m, &mc, 1));
    c.batch = 16;
    s = nl_train_run(&m, &g_ds, NULL, &c, NULL, &r);
    NLT_CHECK(s == NL_EINVAL && strstr(r.message, "batch size"), "%s", r.message);
    nl_train_result_free(&r);
    c = base_cfg(0);
    c.resume_path = a;
    c.optim = nl_optim_defaults(NL_OPT_SGD);
    s = nl_train_run(&m, &g_ds, NULL, &c, NULL, &r);
    NLT_CHECK(s == NL_EINVAL && strstr(r.message, "adam") && strstr(r.message, "sgd"), "%s", r.message);
    nl_train_result_free(&r);
    /* save_every without a path */
    c = base_cfg(0);
    c.save_every = 3;
    s = nl_train_run(&m, &g_ds, NULL, &c, NULL, &r);
    NLT_CHECK(s == NL_EINVAL, "save_every without a path");
    nl_train_result_free(&r);
    nl_model_free(&m);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/nl_resume_XXXXXX");
    if (!mkdtemp(g_dir)) return 1;
    make_data();
    NLT_RUN(test_resume_mlp_adam_cosine);
    NLT_RUN(test_resume_cnn_sgd_linear);
    NLT_RUN(test_resume_refusals);
    const char *names[] = {"full.st", "a.st", "b.st", "mid.st", "c.st", "r.st", "weights.st", "out.st"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char p[128];
        path(p, sizeof p, names[i]);
        unlink(p);
    }
    rmdir(g_dir);
    free(g_ds.x);
    free(g_ds.y);
    return nlt_finish();
}
