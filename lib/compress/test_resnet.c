/* lib/compress: the ResNet's FLOP and parameter counts on a hand-computed configuration, the parameter count against
 * the store, the forward shape, projection shortcuts exactly where shapes change, uniform width scaling, the config
 * checks, a finite-difference gradient of a tiny net (f32, eval-mode BN), and a short training run on a Fashion-MNIST
 * subset that beats chance by far (skipped when the dataset is not installed). */
#include "nltest.h"
#include "compress/resnet.h"
#include "nnlab/gradcheck.h"

static void test_resnet_counts(void) {
    /* 1 block per stage, widths 4/8/16, no pooling, 28x28 -> 28, 14, 7 */
    nl_resnet_config c = nl_resnet_default_config(1, 4, 1);
    double f = 9.0 * 1 * 4 * 784                                   /* stem */
               + 9.0 * 4 * 4 * 784 + 9.0 * 4 * 4 * 784               /* stage 1 block: identity shortcut */
               + 9.0 * 4 * 8 * 196 + 9.0 * 8 * 8 * 196 + 4.0 * 8 * 196 /* stage 2: a, b, 1x1 projection */
               + 9.0 * 8 * 16 * 49 + 9.0 * 16 * 16 * 49 + 8.0 * 16 * 49 + 16.0 * 10;
    NLT_NEAR(nl_resnet_flops(&c), f, 1e-6);
    int64_t p = 9 * 4 + 8 + (9 * 16 + 8) * 2 + (9 * 32 + 16) + (9 * 64 + 16) + (32 + 16) + (9 * 128 + 32) + (9 * 256 + 32) +
                (128 + 32) + 160 + 10;
    NLT_CHECK(nl_resnet_param_count(&c) == p, "params %lld, expected %lld", (long long)nl_resnet_param_count(&c), (long long)p);
    nl_resnet m;
    NLT_OK(nl_resnet_init(&m, &c, 1));
    int64_t trainable = 0;
    for (int i = 0; i < m.ps.n; i++)
        if (m.ps.p[i]->var.requires_grad) trainable += m.ps.p[i]->numel;
    NLT_CHECK(trainable == p, "store holds %lld trainable values, count says %lld", (long long)trainable, (long long)p);
    NLT_CHECK(m.proj[0].w == NULL && m.proj[1].w && m.proj[2].w, "projections: %p %p %p", (void *)m.proj[0].w,
              (void *)m.proj[1].w, (void *)m.proj[2].w);
    nl_resnet_free(&m);
    /* pooled input: 14 -> 14, 7, 4 */
    nl_resnet_config q = nl_resnet_default_config(2, 8, 2);
    int hw[4];
    nl_resnet_sizes(&q, hw);
    NLT_CHECK(hw[0] == 14 && hw[1] == 14 && hw[2] == 7 && hw[3] == 4, "sizes %d %d %d %d", hw[0], hw[1], hw[2], hw[3]);
    NLT_CHECK(nl_resnet_num_convs(&q) == 13, "convs %d", nl_resnet_num_convs(&q));
    /* a block whose width changes inside a stage gets a projection; halving every width ~quarters the FLOPs */
    q.ch[4] = 6;
    NLT_OK(nl_resnet_init(&m, &q, 2));
    NLT_CHECK(m.proj[1].w != NULL && m.proj[0].w == NULL && m.proj[2].w != NULL, "in-stage width change: no projection");
    nl_resnet_free(&m);
    nl_resnet_config h = nl_resnet_scale_width(&c, 0.5);
    NLT_CHECK(h.ch[0] == 2 && h.ch[2] == 2 && h.ch[6] == 8, "scaled %d %d %d", h.ch[0], h.ch[2], h.ch[6]);
    double r = nl_resnet_flops(&h) / nl_resnet_flops(&c);
    NLT_CHECK(r > 0.24 && r < 0.3, "half width keeps %.3f of the FLOPs", r);
}

static void test_resnet_checks(void) {
    nl_resnet_config c = nl_resnet_default_config(1, 4, 1);
    c.blocks[1] = 0;
    NLT_CHECK(nl_resnet_check(&c) == NL_EINVAL && strstr(nl_last_error(), "stage 1"), "0 blocks accepted");
    c = nl_resnet_default_config(1, 4, 1);
    c.ch[3] = 0;
    NLT_CHECK(nl_resnet_check(&c) == NL_EINVAL && strstr(nl_last_error(), "conv 3"), "0 channels accepted");
    c = nl_resnet_default_config(1, 4, 40);
    NLT_CHECK(nl_resnet_check(&c) == NL_EINVAL, "pooling 40 on 28x28 accepted");
}

typedef struct gc_ud { nl_resnet *m; } gc_ud;
static nl_var *gc_fn(nl_ctx *c, nl_var **in, void *ud) {
    gc_ud *g = ud;
    return nl_resnet_forward(c, g->m, in[0], 0);
}

static void test_resnet_forward_grad(void) {
    nl_resnet_config c = nl_resnet_default_config(1, 2, 4); /* 7x7 input after pooling */
    nl_resnet m;
    NLT_OK(nl_resnet_init(&m, &c, 3));
    float x[2 * 784];
    for (int i = 0; i < 2 * 784; i++) x[i] = (float)((i * 37 % 101) / 101.0);
    nl_ctx *ctx = nl_ctx_new(1 << 20, 0);
    nl_var *z = nl_resnet_forward(ctx, &m, nl_input(ctx, nl_tensor_wrap(x, NL_F32, 2, (int64_t[]){2, 784})), 1);
    NLT_CHECK(z && z->val.shape[0] == 2 && z->val.shape[1] == 10, "logits shape");
    nl_ctx_free(ctx);
    /* gradient with respect to the input through every layer (eval-mode BN, smooth except at ReLU kinks) */
    gc_ud g = {&m};
    nl_tensor in = nl_tensor_wrap(x, NL_F32, 2, (int64_t[]){1, 784});
    nl_gc_result r;
    nl_status s = nl_gradcheck(gc_fn, &g, 1, &in, NULL, 1e-2, 2e-3, 5e-2, &r);
    NLT_CHECK(s == NL_OK || r.failed <= r.checked / 100, "gradcheck: %lld of %lld failed (%s)", (long long)r.failed,
              (long long)r.checked, r.first_failure);
    nl_resnet_free(&m);
}

static void test_resnet_train(void) {
    nl_dataset full, tr, te;
    nl_status s = nl_dataset_load(&full, "fashion-mnist", "train", NULL);
    if (s == NL_ENOTFOUND) {
        printf("  note: fashion-mnist not installed: training test skipped\n");
        return;
    }
    NLT_OK(s);
    NLT_OK(nl_dataset_split(&full, 500, 7, &tr, &te));
    nl_dataset_free(&full);
    int64_t idx[1000];
    for (int i = 0; i < 1000; i++) idx[i] = i;
    nl_dataset sub;
    NLT_OK(nl_dataset_subset(&tr, idx, 1000, &sub));
    nl_resnet_config c = nl_resnet_default_config(1, 4, 2);
    nl_resnet m;
    NLT_OK(nl_resnet_init(&m, &c, 1));
    nl_kd_config k = nl_kd_defaults();
    k.epochs = 3;
    k.batch = 50;
    double loss, acc;
    NLT_OK(nl_resnet_fit(&m, &sub, &k, &loss));
    NLT_OK(nl_resnet_accuracy(&m, &te, &acc));
    NLT_CHECK(acc > 0.5, "test accuracy %.3f after 3 epochs on 1000 images", acc);
    printf("  resnet 4/8/16 pooled, 1000 images x 3 epochs: loss %.3f, held-out accuracy %.3f\n", loss, acc);
    nl_resnet_free(&m);
    nl_dataset_free(&sub);
    nl_dataset_free(&tr);
    nl_dataset_free(&te);
}

int main(void) {
    NLT_RUN(test_resnet_counts);
    NLT_RUN(test_resnet_checks);
    NLT_RUN(test_resnet_forward_grad);
    NLT_RUN(test_resnet_train);
    return nlt_finish();
}
