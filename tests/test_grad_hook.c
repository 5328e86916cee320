/* Gradient-ready hooks (nl_ctx_set_grad_hook, autograd.h): each leaf that requires a gradient is reported exactly
 * once per backward pass, after its last contribution (the gradient seen by the hook is the final one, bitwise), in
 * reverse parameter order for a feed-forward model; gradients are bitwise those of a pass without the hook. */
#include "nltest.h"

typedef struct {
    nl_var *seen[64];        /* (n) leaves in hook order */
    float *snap[64];         /* (n) copy of each leaf's gradient at its hook (numel of that leaf) */
    int n, overflow;
} hook_log;

static void log_hook(void *ud, nl_var *leaf) {
    hook_log *h = ud;
    if (h->n >= 64) { h->overflow = 1; return; }
    const int64_t n = nl_tensor_numel(&leaf->grad);
    float *s = malloc(sizeof(float) * (size_t)n); /* (numel) */
    if (s) memcpy(s, leaf->grad.data, sizeof(float) * (size_t)n);
    h->seen[h->n] = leaf;
    h->snap[h->n++] = s;
}

static void log_free(hook_log *h) {
    for (int i = 0; i < h->n; i++) free(h->snap[i]);
    memset(h, 0, sizeof *h);
}

static int count_of(const hook_log *h, const nl_var *v) {
    int k = 0;
    for (int i = 0; i < h->n; i++) k += h->seen[i] == v;
    return k;
}

/* every hooked gradient equals the final one bitwise (nothing was added after the hook) */
static int snapshots_final(const hook_log *h) {
    for (int i = 0; i < h->n; i++)
        if (!h->snap[i] || memcmp(h->snap[i], h->seen[i]->grad.data, sizeof(float) * (size_t)nl_tensor_numel(&h->seen[i]->grad)))
            return 0;
    return 1;
}

/* One forward + backward of model m on fixed inputs; grads left in m->ps.grad. */
static nl_status model_step(nl_model *m, nl_ctx *c, const float *x, const int32_t *y, int64_t n, hook_log *h) {
    nl_ctx_reset(c);
    nl_ctx_set_grad_hook(c, h ? log_hook : NULL, h);
    nl_var *xv = nl_model_input(m, c, x, n);
    nl_var *loss = nl_cross_entropy(c, nl_model_forward(m, c, xv, 1), y, 0, -1);
    nl_params_zero_grad(&m->ps);
    nl_status s = nl_backward(c, loss);
    nl_ctx_set_grad_hook(c, NULL, NULL);
    return s;
}

static void check_model(const nl_model_config *mc, int64_t in_dim, int64_t n) {
    nl_model m;
    NLT_OK(nl_model_init(&m, mc, 5));
    nl_ctx *c = nl_ctx_new(0, 0);
    float *x = malloc(sizeof(float) * (size_t)(n * in_dim)); /* (n, in_dim) */
    int32_t y[16];                                             /* (n) */
    nl_rng r;
    nl_rng_init(&r, 9, 1);
    for (int64_t i = 0; i < n * in_dim; i++) x[i] = (float)nl_rng_normal(&r);
    for (int64_t i = 0; i < n; i++) y[i] = (int32_t)(i % m.n_classes);
    const size_t gb = sizeof(float) * (size_t)m.ps.total;
    float *g0 = malloc(gb); /* (total) gradient without the hook */
    NLT_OK(model_step(&m, c, x, y, n, NULL));
    memcpy(g0, m.ps.grad, gb);
    hook_log h = {0};
    NLT_OK(model_step(&m, c, x, y, n, &h));
    NLT_CHECK(!memcmp(g0, m.ps.grad, gb), "gradients changed by the hook");
    /* the trainable parameters (batch norm's running statistics are buffers without a gradient), store order */
    const nl_var *tr[64]; /* (n_tr) */
    int n_tr = 0;
    for (int i = 0; i < m.ps.n && n_tr < 64; i++)
        if (m.ps.p[i]->var.requires_grad) tr[n_tr++] = &m.ps.p[i]->var;
    NLT_CHECK(n_tr >= 4 && !h.overflow && h.n == n_tr, "%d hooks for %d trainable parameters", h.n, n_tr);
    for (int i = 0; i < m.ps.n; i++)
        NLT_CHECK(count_of(&h, &m.ps.p[i]->var) == m.ps.p[i]->var.requires_grad, "%s hooked %d times", m.ps.p[i]->name,
                  count_of(&h, &m.ps.p[i]->var));
    NLT_CHECK(snapshots_final(&h), "a gradient changed after its hook");
    int rev = h.n == n_tr;
    for (int i = 0; rev && i < h.n; i++) rev = h.seen[i] == tr[n_tr - 1 - i];
    NLT_CHECK(rev, "hooks not in reverse parameter order (first: %s)", h.n ? h.seen[0]->name : "-");
    log_free(&h);
    /* a second pass on the same context reports again (once per pass) */
    NLT_OK(model_step(&m, c, x, y, n, &h));
    NLT_CHECK(h.n == n_tr && snapshots_final(&h), "second pass: %d hooks", h.n);
    log_free(&h);
    free(g0);
    free(x);
    nl_ctx_free(c);
    nl_model_free(&m);
}

static void test_mlp(void) {
    int64_t sizes[4] = {12, 16, 8, 3};
    nl_model_config mc = nl_mlp_config(4, sizes, NL_ACT_RELU, 0.0);
    check_model(&mc, 12, 10);
}

static void test_cnn(void) {
    int ch[2] = {4, 6};
    nl_model_config mc = nl_cnn_config(1, 8, 8, 2, ch, 16, 3);
    check_model(&mc, 64, 6);
}

/* W is read twice (a = W * x, b = a * W): its hook must come after the earlier node (the later one in backward),
 * i.e. after both contributions; an unused leaf and a leaf without requires_grad are not reported. */
static void test_shared_leaf(void) {
    nl_ctx *c = nl_ctx_new(0, 0);
    float wv[3] = {0.5f, -1.f, 2.f}, xv[3] = {1.f, 2.f, 3.f}, uv[3] = {1, 1, 1}; /* (3) each */
    float wg[3] = {0}, ug[3] = {0};                                           /* (3) gradients */
    int64_t sh[1] = {3};
    nl_tensor tw = nl_tensor_wrap(wv, NL_F32, 1, sh), tx = nl_tensor_wrap(xv, NL_F32, 1, sh), tu = nl_tensor_wrap(uv, NL_F32, 1, sh);
    nl_var *W = nl_leaf(c, tw, 1), *X = nl_leaf(c, tx, 0), *U = nl_leaf(c, tu, 1);
    W->grad = tw; W->grad.data = wg; /* persistent gradient, as parameters have */
    U->grad = tu; U->grad.data = ug;
    W->name = "W";
    hook_log h = {0};
    nl_ctx_set_grad_hook(c, log_hook, &h);
    nl_var *a = nl_mul(c, W, X), *b = nl_mul(c, a, W), *loss = nl_sum(c, b, -1, 0);
    NLT_OK(nl_backward(c, loss));
    NLT_CHECK(h.n == 1 && h.seen[0] == W, "%d hooks (want W once)", h.n);
    NLT_CHECK(snapshots_final(&h), "W's gradient changed after its hook");
    for (int i = 0; i < 3; i++) NLT_NEAR(wg[i], 2 * wv[i] * xv[i], 1e-6); /* d/dW sum(W^2 x) */
    NLT_CHECK(ug[0] == 0 && count_of(&h, U) == 0, "unused leaf reported");
    log_free(&h);
    nl_ctx_free(c);
}

int main(void) {
    nl_threads_init();
    NLT_RUN(test_mlp);
    NLT_RUN(test_cnn);
    NLT_RUN(test_shared_leaf);
    return nlt_finish();
}
