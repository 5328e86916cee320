/* Progress sink (base.h): lines reach the sink, NULL restores stderr, and the sink is per thread. */
#include "nltest.h"
#include <pthread.h>
#include <unistd.h>

typedef struct {
    int n;
    char last[4096];
    size_t last_len;
} collect;

static void sink(void *ud, const char *line) {
    collect *c = ud;
    c->n++;
    c->last_len = strlen(line);
    snprintf(c->last, sizeof c->last, "%s", line);
}

static void test_sink_receives(void) {
    collect c = {0};
    nl_set_progress(sink, &c);
    void *ud = NULL;
    NLT_CHECK(nl_get_progress(&ud) == sink && ud == &c, "nl_get_progress returns the sink");
    nl_progress("step %d loss %.2f", 3, 0.5);
    NLT_CHECK(c.n == 1 && !strcmp(c.last, "step 3 loss 0.50"), "got %d lines, last '%s'", c.n, c.last);
    nl_progress("with newline\n");
    NLT_CHECK(c.n == 2 && !strcmp(c.last, "with newline"), "trailing newline dropped: '%s'", c.last);
    char big[3000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    nl_progress("<%s>", big); /* longer than the formatter's stack buffer */
    NLT_CHECK(c.n == 3 && c.last_len == sizeof big + 1 && c.last[0] == '<' && c.last[sizeof big] == '>',
              "long line whole (%zu chars)", c.last_len);
    nl_set_progress(NULL, &c);
    NLT_CHECK(nl_get_progress(&ud) == NULL && ud == NULL, "NULL sink: default");
}

/* With the default sink the line goes to stderr: redirect fd 2 to a temporary file and read it back. */
static void test_null_restores_stderr(void) {
    collect c = {0};
    nl_set_progress(sink, &c);
    nl_progress("to the sink");
    nl_set_progress(NULL, NULL);
    fflush(stderr);
    FILE *tmp = tmpfile();
    NLT_CHECK(tmp != NULL, "tmpfile");
    if (!tmp) return;
    int saved = dup(2);
    dup2(fileno(tmp), 2);
    nl_progress("to stderr %d", 42);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char buf[256] = {0};
    rewind(tmp);
    size_t got = fread(buf, 1, sizeof buf - 1, tmp);
    fclose(tmp);
    NLT_CHECK(got == strlen("to stderr 42\n") && !strcmp(buf, "to stderr 42\n"), "stderr got '%s'", buf);
    NLT_CHECK(c.n == 1, "the old sink got nothing more (%d lines)", c.n);
}

typedef struct {
    int id, own_sink;
    collect c;
    int default_seen; /* the thread's sink before it set one */
} worker;

static pthread_barrier_t g_bar;

static void *run_worker(void *arg) {
    worker *w = arg;
    w->default_seen = nl_get_progress(NULL) == NULL;
    if (w->own_sink) nl_set_progress(sink, &w->c);
    pthread_barrier_wait(&g_bar); /* all sinks set before anyone writes */
    for (int i = 0; i < 50; i++)
        if (w->own_sink) nl_progress("thread %d line %d", w->id, i);
    pthread_barrier_wait(&g_bar);
    nl_set_progress(NULL, NULL);
    return NULL;
}

static void test_per_thread(void) {
    collect mine = {0};
    nl_set_progress(sink, &mine); /* the main thread's sink must not leak into the workers */
    enum { NT = 3 };
    worker w[NT];
    pthread_t th[NT];
    pthread_barrier_init(&g_bar, NULL, NT);
    for (int i = 0; i < NT; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].id = i;
        w[i].own_sink = 1;
        pthread_create(&th[i], NULL, run_worker, &w[i]);
    }
    for (int i = 0; i < NT; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&g_bar);
    for (int i = 0; i < NT; i++) {
        char want[64];
        snprintf(want, sizeof want, "thread %d line 49", i);
        NLT_CHECK(w[i].default_seen, "thread %d started with the default sink", i);
        NLT_CHECK(w[i].c.n == 50 && !strcmp(w[i].c.last, want), "thread %d: %d lines, last '%s'", i, w[i].c.n, w[i].c.last);
    }
    NLT_CHECK(mine.n == 0, "main thread's sink got %d lines from the workers", mine.n);
    void *ud = NULL;
    NLT_CHECK(nl_get_progress(&ud) == sink && ud == &mine, "main thread's sink unchanged by the workers");
    nl_progress("main");
    NLT_CHECK(mine.n == 1 && !strcmp(mine.last, "main"), "main thread still reaches its sink");
    nl_set_progress(NULL, NULL);
}

/* A training run's progress (verbose 1, not a bar) goes to the sink. */
static void test_train_uses_sink(void) {
    enum { N = 64, D = 4 };
    float *x = calloc(N * D, sizeof *x);
    int32_t *y = calloc(N, sizeof *y);
    for (int i = 0; i < N * D; i++) x[i] = (float)((i * 37) % 11) / 11.0f;
    for (int i = 0; i < N; i++) y[i] = i % 2;
    nl_dataset ds = {0};
    ds.x = x, ds.y = y, ds.n = N, ds.d = D, ds.n_classes = 2;
    snprintf(ds.name, sizeof ds.name, "toy");
    int64_t sizes[3] = {D, 8, 2};
    nl_model_config mc = nl_mlp_config(3, sizes, NL_ACT_RELU, 0.0);
    nl_model m;
    nl_status s = nl_model_init(&m, &mc, 1);
    NLT_OK(s);
    if (!s) {
        nl_train_config cfg = nl_train_defaults();
        cfg.epochs = 2, cfg.batch = 16, cfg.verbose = 1, cfg.log_every = 2;
        collect c = {0};
        nl_set_progress(sink, &c);
        nl_train_result r;
        NLT_OK(nl_train_run(&m, &ds, NULL, &cfg, NULL, &r));
        nl_set_progress(NULL, NULL);
        NLT_CHECK(c.n >= 2, "training sent %d lines to the sink (last '%s')", c.n, c.last);
        nl_train_result_free(&r);
        nl_model_free(&m);
    }
    free(x), free(y);
}

int main(void) {
    NLT_RUN(test_sink_receives);
    NLT_RUN(test_null_restores_stderr);
    NLT_RUN(test_per_thread);
    NLT_RUN(test_train_uses_sink);
    return nlt_finish();
}
