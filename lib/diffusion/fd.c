/* "FD": Frechet distance between Gaussians fitted to penultimate-layer features of a Fashion-MNIST CNN trained in
 * nnlab (the FID recipe with our own small classifier instead of Inception; numbers are not comparable to FID).
 *   FD = ||mu_a - mu_b||^2 + tr(Sa) + tr(Sb) - 2 tr((Sa^1/2 Sb Sa^1/2)^1/2)
 * tr((Sa Sb)^1/2) is computed as tr((Sa^1/2 Sb Sa^1/2)^1/2) with symmetric eigendecompositions (nl_eigh, LAPACKE):
 * the matrix inside is symmetric PSD, so its square root is the sum of sqrt(max(eigenvalue, 0)). */
#include "diffusion/diffusion.h"
#include "nnlab/data.h"
#include "nnlab/linalg.h"
#include "nnlab/nn.h"
#include "nnlab/ops.h"
#include "nnlab/train.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static nl_model_config fd_config(int size, int dim) {
    const int ch[2] = {16, 32};
    nl_model_config c = nl_cnn_config(1, size, size, 2, ch, dim, 10);
    return c;
}

nl_status nl_fd_net_train(nl_fd_net *f, int size, int dim, int64_t n_train, int epochs, uint64_t seed) {
    memset(f, 0, sizeof *f);
    if (size < 8 || size > 64 || dim < 2 || dim > 4096 || epochs < 1 || n_train < 10)
        return nl_set_error(NL_EINVAL, "fd net: size 8..64, dim 2..4096, epochs >= 1, n_train >= 10");
    float *x = NULL, *xt = NULL;
    int32_t *y = NULL, *yt = NULL;
    int64_t n = 0, nt = 0;
    nl_dataset tr, te;
    memset(&tr, 0, sizeof tr);
    memset(&te, 0, sizeof te);
    nl_status s = nl_diffusion_load_images("fashion-mnist", "train", 0, size, n_train, &x, &y, &n);
    if (!s) s = nl_diffusion_load_images("fashion-mnist", "test", 0, size, 2000, &xt, &yt, &nt);
    const int64_t D = (int64_t)size * size;
    if (!s) s = nl_dataset_alloc(&tr, n, D, 10);
    if (!s) s = nl_dataset_alloc(&te, nt, D, 10);
    nl_model_config mc = fd_config(size, dim);
    if (!s) {
        for (int64_t i = 0; i < n * D; i++) tr.x[i] = 0.5f * (x[i] + 1.0f); /* [-1, 1] -> [0, 1], as nl_fd_features */
        memcpy(tr.y, y, (size_t)n * sizeof(int32_t));
        for (int64_t i = 0; i < nt * D; i++) te.x[i] = 0.5f * (xt[i] + 1.0f);
        memcpy(te.y, yt, (size_t)nt * sizeof(int32_t));
        s = nl_model_init(&f->m, &mc, seed);
    }
    if (!s) {
        nl_train_config tc = nl_train_defaults();
        tc.epochs = epochs;
        tc.batch = 128;
        tc.seed = seed;
        tc.verbose = 0;
        tc.optim.lr = 2e-3;
        tc.valid_name = "test";
        nl_train_result r;
        s = nl_train_run(&f->m, &tr, &te, &tc, NULL, &r);
        f->test_acc = r.valid_accuracy;
        nl_train_result_free(&r);
        if (s) nl_model_free(&f->m);
    }
    f->size = size;
    f->dim = dim;
    free(x), free(y), free(xt), free(yt);
    nl_dataset_free(&tr);
    nl_dataset_free(&te);
    if (s) memset(f, 0, sizeof *f);
    return s;
}

void nl_fd_net_free(nl_fd_net *f) {
    if (!f) return;
    nl_model_free(&f->m);
    memset(f, 0, sizeof *f);
}

nl_status nl_fd_net_save(const nl_fd_net *f, const char *path) {
    char acc[32];
    snprintf(acc, sizeof acc, "%.17g", f->test_acc);
    const char *k[2] = {"fd.role", "fd.test_accuracy"}, *v[2] = {"fd-features", acc};
    return nl_model_save(&f->m, path, 2, k, v);
}

nl_status nl_fd_net_load(nl_fd_net *f, const char *path) {
    memset(f, 0, sizeof *f);
    nl_status s = nl_model_load(&f->m, path);
    if (s) return s;
    const nl_model_config *c = &f->m.cfg;
    if (c->kind != NL_MODEL_CNN || c->n_blocks != 2 || c->in_channels != 1 || c->in_height != c->in_width || c->hidden < 2 ||
        c->n_classes != 10 || !c->batchnorm) {
        nl_model_free(&f->m);
        return nl_set_error(NL_EFORMAT, "fd net %s: not an FD feature network (2-block CNN, hidden layer, 10 classes)", path);
    }
    f->size = c->in_height;
    f->dim = (int)c->hidden;
    f->test_acc = NAN;
    return NL_OK;
}

/* ReLU(fc1(flatten(blocks(x)))), the engine CNN's forward (src/model/model.c) stopped before the readout; eval mode. */
nl_status nl_fd_features(nl_fd_net *f, const float *x, int64_t n, double **feats) {
    *feats = NULL;
    nl_model *m = &f->m;
    const nl_model_config *cfg = &m->cfg;
    const int S = f->size, B = 256;
    double *out = malloc((size_t)(n ? n : 1) * f->dim * sizeof(double));
    float *xb = malloc((size_t)B * S * S * sizeof(float));
    nl_ctx *c = nl_ctx_new((size_t)16 << 20, 0);
    if (!out || !xb || !c) {
        free(out), free(xb), nl_ctx_free(c);
        return nl_set_error(NL_ENOMEM, "fd features: out of memory");
    }
    nl_set_grad_enabled(c, 0);
    nl_status s = NL_OK;
    for (int64_t b0 = 0; b0 < n && !s; b0 += B) {
        const int64_t mb = n - b0 < B ? n - b0 : B;
        for (int64_t i = 0; i < mb * S * S; i++) xb[i] = 0.5f * (x[b0 * S * S + i] + 1.0f); /* [-1, 1] -> [0, 1] */
        int64_t sh[4] = {mb, 1, S, S};
        nl_var *h = nl_input(c, nl_tensor_wrap(xb, NL_F32, 4, sh));
        if (cfg->input_mean != 0.0) h = nl_add_scalar(c, h, -cfg->input_mean);
        if (cfg->input_std != 1.0) h = nl_mul_scalar(c, h, 1.0 / cfg->input_std);
        int l = 0;
        for (int k = 0; k < cfg->n_blocks; k++) {
            nl_model_layer *L = &m->layer[l++];
            h = nl_conv2d(c, h, L->w, L->b, 1, cfg->kernel / 2);
            L = &m->layer[l++];
            h = nl_batchnorm(c, h, L->w, L->b, L->rm, L->rv, cfg->bn_momentum, cfg->bn_eps, 0);
            h = nl_relu(c, h);
            if (cfg->pool > 1) h = nl_maxpool2d(c, h, cfg->pool, cfg->pool, 0);
        }
        int64_t fs[2] = {mb, -1};
        h = nl_relu(c, nl_linear(c, nl_reshape(c, h, 2, fs), m->layer[l].w, m->layer[l].b));
        if (!h) {
            s = nl_last_status();
            break;
        }
        const float *hv = h->val.data;
        for (int64_t i = 0; i < mb * f->dim; i++) out[b0 * f->dim + i] = hv[i];
        nl_ctx_reset(c);
    }
    nl_ctx_free(c);
    free(xb);
    if (s) {
        free(out);
        return s;
    }
    *feats = out;
    return NL_OK;
}

/* mean (D) and covariance (D, D) (unbiased) of a [n, D] */
static void moments(const double *a, int64_t n, int D, double *mu, double *cov) {
    for (int j = 0; j < D; j++) {
        double s = 0;
        for (int64_t i = 0; i < n; i++) s += a[i * D + j];
        mu[j] = s / n;
    }
    memset(cov, 0, (size_t)D * D * sizeof(double));
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < D; j++) {
            const double dj = a[i * D + j] - mu[j];
            for (int k = 0; k <= j; k++) cov[j * D + k] += dj * (a[i * D + k] - mu[k]);
        }
    for (int j = 0; j < D; j++)
        for (int k = 0; k <= j; k++) cov[k * D + j] = cov[j * D + k] /= (double)(n - 1);
}

nl_status nl_frechet_distance(const double *a, int64_t na, const double *b, int64_t nb, int D, double *fd) {
    if (na < 2 || nb < 2 || D < 1) return nl_set_error(NL_EINVAL, "frechet distance: need >= 2 rows per set and D >= 1");
    const size_t DD = (size_t)D * D;
    double *mua = malloc((size_t)D * sizeof(double)), *mub = malloc((size_t)D * sizeof(double));
    double *Sa = malloc(DD * sizeof(double)), *Sb = malloc(DD * sizeof(double)), *T = malloc(DD * sizeof(double));
    double *w = malloc((size_t)D * sizeof(double));
    nl_status s = NL_OK;
    if (!mua || !mub || !Sa || !Sb || !T || !w) {
        s = nl_set_error(NL_ENOMEM, "frechet distance: out of memory");
        goto done;
    }
    moments(a, na, D, mua, Sa);
    moments(b, nb, D, mub, Sb);
    double d2 = 0, tr = 0;
    for (int j = 0; j < D; j++) d2 += (mua[j] - mub[j]) * (mua[j] - mub[j]), tr += Sa[j * D + j] + Sb[j * D + j];
    /* Sa^1/2 = V diag(sqrt(max(w, 0))) V^T (into Sa's place via T) */
    memcpy(T, Sa, DD * sizeof(double));
    if ((s = nl_eigh(T, D, w))) goto done; /* T = V */
    for (int j = 0; j < D; j++) w[j] = sqrt(w[j] > 0 ? w[j] : 0);
    for (int i = 0; i < D; i++)
        for (int k = 0; k < D; k++) {
            double acc = 0;
            for (int j = 0; j < D; j++) acc += T[i * D + j] * w[j] * T[k * D + j];
            Sa[i * D + k] = acc; /* Sa now holds Sa^1/2 */
        }
    /* M = Sa^1/2 Sb Sa^1/2 */
    nl_gemm(NL_F64, 0, 0, D, D, D, 1.0, Sa, D, Sb, D, 0.0, T, D);
    nl_gemm(NL_F64, 0, 0, D, D, D, 1.0, T, D, Sa, D, 0.0, Sb, D);
    for (int i = 0; i < D; i++) /* symmetrise rounding */
        for (int k = 0; k < i; k++) Sb[i * D + k] = Sb[k * D + i] = 0.5 * (Sb[i * D + k] + Sb[k * D + i]);
    if ((s = nl_eigh(Sb, D, w))) goto done;
    double trs = 0;
    for (int j = 0; j < D; j++) trs += sqrt(w[j] > 0 ? w[j] : 0);
    *fd = d2 + tr - 2 * trs;
    if (*fd < 0) *fd = 0; /* rounding when both sets coincide */
done:
    free(mua), free(mub), free(Sa), free(Sb), free(T), free(w);
    return s;
}

nl_status nl_fd_images(nl_fd_net *f, const float *xa, int64_t na, const float *xb, int64_t nb, double *fd) {
    double *fa = NULL, *fb = NULL;
    nl_status s = nl_fd_features(f, xa, na, &fa);
    if (!s) s = nl_fd_features(f, xb, nb, &fb);
    if (!s) s = nl_frechet_distance(fa, na, fb, nb, f->dim, fd);
    free(fa);
    free(fb);
    return s;
}
