/* BT^2: the networks (old, independent, BCT, BT^2 and its frozen control) and their forward pass (bt2.h). */
#include "bt2/bt2.h"
#include "nnlab/linalg.h"
#include "nnlab/nn.h"
#include "nnlab/ops.h"
#include "nnlab/rng.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BT2_STREAM_INIT ((uint64_t)0x62743269ULL << 24)

nl_bt2_config nl_bt2_defaults(void) {
    nl_bt2_config c;
    memset(&c, 0, sizeof c);
    c.hidden = 256;
    c.d_old = 128;
    c.d_add = 32;
    c.old_classes = 5;
    c.lr = 1e-3;
    c.wd = 3.0517578125e-5;
    c.label_smoothing = 0.1;
    c.bct_alpha = 10;
    c.C = 2;
    c.w_old = 10;
    c.w_new = 1;
    c.w_infl = 10;
    c.batch = 128;
    c.epochs = 5;
    c.seed = 1;
    return c;
}

static const char *const g_kind_names[5] = {"old", "independent", "bct", "bt2", "bt2-frozen"};

const char *nl_bt2_kind_name(nl_bt2_kind k) { return (unsigned)k < 5 ? g_kind_names[k] : "?"; }

nl_status nl_bt2_kind_parse(const char *s, nl_bt2_kind *out) {
    for (int k = 0; k < 5; k++)
        if (!strcmp(s, g_kind_names[k])) {
            *out = (nl_bt2_kind)k;
            return NL_OK;
        }
    if (!strcmp(s, "frozen")) {
        *out = NL_BT2_FROZEN;
        return NL_OK;
    }
    return nl_set_error(NL_EINVAL, "unknown model '%s' (old, independent, bct, bt2 or bt2-frozen)", s);
}

/* PyTorch's nn.Linear default: W, b ~ U(-1/sqrt(in), 1/sqrt(in)) */
static void init_linear(nl_var *W, nl_var *b, int64_t in, nl_rng *r) {
    double k = 1.0 / sqrt((double)in);
    nl_rng_fill_uniform(r, &W->val, -k, k);
    if (b) nl_rng_fill_uniform(r, &b->val, -k, k);
}

/* a random orthogonal (n, n) matrix: the QR factor of a Gaussian one */
static nl_status random_orthogonal(int64_t n, nl_rng *r, float **out) {
    double *w = malloc((size_t)(n * n) * sizeof *w);
    float *f = malloc((size_t)(n * n) * sizeof *f);
    if (!w || !f) {
        free(w);
        free(f);
        return nl_set_error(NL_ENOMEM, "bt2: out of memory");
    }
    for (int64_t k = 0; k < n * n; k++) w[k] = nl_rng_normal(r);
    nl_status s = nl_orthogonal_qr(w, n);
    for (int64_t k = 0; k < n * n; k++) f[k] = (float)w[k];
    free(w);
    if (s) free(f);
    else *out = f;
    return s;
}

nl_status nl_bt2_net_init(nl_bt2_net *m, nl_bt2_kind kind, const nl_bt2_config *cfg, int64_t d_in, int64_t n_classes,
                          uint64_t seed) {
    memset(m, 0, sizeof *m);
    if ((unsigned)kind > NL_BT2_FROZEN) return nl_set_error(NL_EINVAL, "bt2: unknown model kind %d", (int)kind);
    if (cfg->d_old < 1 || cfg->hidden < 1 || d_in < 1 || n_classes < 2 || cfg->d_add < 1 || cfg->d_add > cfg->d_old)
        return nl_set_error(NL_EINVAL, "bt2: bad sizes (d_in %lld, hidden %lld, d_old %lld, d_add %lld, classes %lld)", (long long)d_in,
                            (long long)cfg->hidden, (long long)cfg->d_old, (long long)cfg->d_add, (long long)n_classes);
    int bt = kind == NL_BT2_BT2 || kind == NL_BT2_FROZEN;
    m->kind = kind;
    m->d_in = d_in;
    m->hidden = cfg->hidden;
    m->d_old = cfg->d_old;
    m->d_add = cfg->d_add;
    m->d_back = bt ? 2 * cfg->d_old : cfg->d_old;
    m->d_emb = bt ? cfg->d_old + cfg->d_add : cfg->d_old;
    m->n_classes = n_classes;
    m->C = cfg->C;
    nl_status s = nl_params_init(&m->ps, NL_F32);
    if (s) return s;
    int64_t H = m->hidden, Db = m->d_back, Do = m->d_old, Da = m->d_add;
    if (!(m->W1 = nl_params_add(&m->ps, "fc1.W", 2, (int64_t[]){H, d_in})) || !(m->b1 = nl_params_add(&m->ps, "fc1.b", 1, &H)) ||
        !(m->W2 = nl_params_add(&m->ps, "fc2.W", 2, (int64_t[]){Db, H})) || !(m->b2 = nl_params_add(&m->ps, "fc2.b", 1, &Db)) ||
        !(m->fc = nl_params_add(&m->ps, "fc.W", 2, (int64_t[]){n_classes, Do})))
        goto fail;
    if (bt && (!(m->fc3_W = nl_params_add(&m->ps, "fc3.W", 2, (int64_t[]){Da, Db})) ||
               !(m->fc3_b = nl_params_add(&m->ps, "fc3.b", 1, &Da))))
        goto fail;
    if (kind == NL_BT2_BT2 && (!(m->Xp = nl_params_add(&m->ps, "orth_p.X", 2, (int64_t[]){Do, Do})) ||
                               !(m->X2 = nl_params_add(&m->ps, "orth_2.X", 2, (int64_t[]){Do, Do}))))
        goto fail;
    nl_rng r;
    nl_rng_init(&r, seed, BT2_STREAM_INIT + (uint64_t)kind);
    init_linear(m->W1, m->b1, d_in, &r);
    init_linear(m->W2, m->b2, H, &r);
    init_linear(m->fc, NULL, Do, &r);
    if (bt) init_linear(m->fc3_W, m->fc3_b, Db, &r);
    /* orth X start at 0 (A = 0, O = base), as torch's parametrisation after registration */
    if (kind == NL_BT2_BT2 && ((s = random_orthogonal(Do, &r, &m->base_p)) || (s = random_orthogonal(Do, &r, &m->base_2)))) {
        nl_bt2_net_free(m);
        return s;
    }
    return NL_OK;
fail:
    s = nl_last_status();
    nl_bt2_net_free(m);
    return s;
}

void nl_bt2_net_free(nl_bt2_net *m) {
    nl_params_free(&m->ps);
    free(m->base_p);
    free(m->base_2);
    m->base_p = m->base_2 = NULL;
}

/* rows of x [B, d] scaled to unit length */
static nl_var *normalize(nl_ctx *c, nl_var *x) {
    nl_var *n = nl_sqrt(c, nl_add_scalar(c, nl_sum(c, nl_square(c, x), 1, 1), 1e-12)); /* [B, 1] */
    return nl_div(c, x, n);
}

/* O = base exp(A(X))  (n, n) */
static nl_var *orth(nl_ctx *c, nl_var *X, const float *base, int64_t n) {
    nl_var *B = nl_input(c, nl_tensor_wrap((void *)base, NL_F32, 2, (int64_t[]){n, n}));
    return nl_matmul(c, B, nl_orthogonal_expm(c, X));
}

nl_status nl_bt2_forward(nl_ctx *c, nl_bt2_net *m, nl_var *x, nl_var **emb, nl_var **logits, nl_var **feat, nl_var **bct) {
    nl_var *h = nl_relu(c, nl_linear(c, x, m->W1, m->b1));
    nl_var *f2 = nl_relu(c, nl_linear(c, h, m->W2, m->b2)); /* [B, d_back], >= 0 as the reference's ResNet output (last_nonlin) */
    if (!f2) return nl_last_status();
    if (m->kind != NL_BT2_BT2 && m->kind != NL_BT2_FROZEN) {
        nl_var *f = normalize(c, f2); /* [B, d_old] */
        if (emb) *emb = f;
        if (logits) *logits = nl_matmul_t(c, f, m->fc, 0, 1);
        if (feat) *feat = f;
        if (bct) *bct = f;
        return f && (!logits || *logits) ? NL_OK : nl_last_status();
    }
    int64_t Do = m->d_old, Da = m->d_add;
    nl_var *ft = normalize(c, nl_contiguous(c, nl_slice(c, f2, 1, 0, Do, 1)));          /* [B, d_old] feat */
    nl_var *o = normalize(c, nl_linear(c, f2, m->fc3_W, m->fc3_b));                      /* [B, d_add] (fc3(ReLU(f2)), f2 >= 0) */
    nl_var *cf = nl_mul_scalar(c, ft, m->C);                                             /* [B, d_old] */
    nl_var *np = m->kind == NL_BT2_BT2 ? nl_matmul_t(c, cf, orth(c, m->Xp, m->base_p, Do), 0, 1) : cf; /* (C feat) O_p^T */
    nl_var *n = nl_concat(c, 2, (nl_var *[]){o, np}, 1);                                  /* [B, d_add + d_old] */
    nl_var *n1 = nl_contiguous(c, nl_slice(c, n, 1, 0, Do, 1));                           /* [B, d_old] */
    nl_var *b = m->kind == NL_BT2_BT2 ? nl_matmul_t(c, n1, orth(c, m->X2, m->base_2, Do), 0, 1) : n1; /* [B, d_old] bct */
    nl_var *ex = nl_contiguous(c, nl_slice(c, n, 1, Do, Do + Da, 1));                     /* [B, d_add] extra */
    if (emb) *emb = nl_concat(c, 2, (nl_var *[]){b, ex}, 1);                              /* [B, d_old + d_add] */
    if (logits) *logits = nl_matmul_t(c, ft, m->fc, 0, 1);
    if (feat) *feat = ft;
    if (bct) *bct = b;
    if (!b || (emb && !*emb) || (logits && !*logits)) return nl_last_status();
    return NL_OK;
}

nl_status nl_bt2_orthogonals(nl_bt2_net *m, float *op, float *o2) {
    int64_t n = m->d_old;
    if (m->kind == NL_BT2_FROZEN) {
        for (int64_t i = 0; i < n * n; i++) op[i] = o2[i] = (i % (n + 1)) == 0;
        return NL_OK;
    }
    if (m->kind != NL_BT2_BT2) return nl_set_error(NL_EINVAL, "bt2: a %s model has no orthogonal maps", nl_bt2_kind_name(m->kind));
    nl_ctx *c = nl_ctx_new(0, 0);
    if (!c) return nl_set_error(NL_ENOMEM, "bt2: out of memory");
    nl_set_grad_enabled(c, 0);
    nl_var *a = orth(c, m->Xp, m->base_p, n), *b = orth(c, m->X2, m->base_2, n);
    nl_status s = a && b ? NL_OK : nl_last_status();
    if (!s) {
        memcpy(op, a->val.data, (size_t)(n * n) * sizeof *op);
        memcpy(o2, b->val.data, (size_t)(n * n) * sizeof *o2);
    }
    nl_ctx_free(c);
    return s;
}

nl_status nl_bt2_embed(nl_bt2_net *m, const float *x, int64_t n, float *emb) {
    nl_ctx *c = nl_ctx_new(0, 0);
    if (!c) return nl_set_error(NL_ENOMEM, "bt2: out of memory");
    nl_set_grad_enabled(c, 0);
    nl_status s = NL_OK;
    for (int64_t i0 = 0; i0 < n && !s; i0 += 512) {
        int64_t B = n - i0 < 512 ? n - i0 : 512;
        nl_var *xv = nl_input(c, nl_tensor_wrap((void *)(x + i0 * m->d_in), NL_F32, 2, (int64_t[]){B, m->d_in}));
        nl_var *e = NULL;
        if (!(s = nl_bt2_forward(c, m, xv, &e, NULL, NULL, NULL)))
            memcpy(emb + i0 * m->d_emb, e->val.data, (size_t)(B * m->d_emb) * sizeof *emb);
        nl_ctx_reset(c);
    }
    nl_ctx_free(c);
    return s;
}

nl_status nl_bt2_class_means(const float *f, const int32_t *y, int64_t n, int64_t d, int n_classes, float *P) {
    int64_t *cnt = calloc((size_t)n_classes, sizeof *cnt); /* (n_classes) */
    double *acc = calloc((size_t)(n_classes * d), sizeof *acc); /* (n_classes, d) */
    if (cnt && acc) {
        for (int64_t i = 0; i < n; i++)
            if (y[i] >= 0 && y[i] < n_classes) {
                cnt[y[i]]++;
                for (int64_t k = 0; k < d; k++) acc[y[i] * d + k] += f[i * d + k];
            }
        for (int k = 0; k < n_classes; k++)
            for (int64_t j = 0; j < d; j++) P[k * d + j] = cnt[k] ? (float)(acc[k * d + j] / (double)cnt[k]) : 0.0f;
    }
    nl_status s = cnt && acc ? NL_OK : nl_set_error(NL_ENOMEM, "bt2: out of memory");
    free(cnt);
    free(acc);
    return s;
}
