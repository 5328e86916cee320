/* Negative sampling and sampled softmax: fused SGD kernels and engine-graph ops (lib/text/text.h). */
#include "nnlab/extend.h"
#include "text/text.h"
#include <math.h>
#include <string.h>


float nl_text_ns_step_ex(const float *h, nl_text_emb *out, int32_t t, const int32_t *neg, int k, float lr, float *gh,
                         int want_loss) {
    const int D = out->dim;
    float loss = 0;
    for (int j = -1; j < k; j++) {
        int32_t w = j < 0 ? t : neg[j];
        if (j >= 0 && w == t) continue; /* a negative equal to the target is skipped (word2vec) */
        float *u = nl_text_emb_row(out, w), z = 0;
        for (int d = 0; d < D; d++) z += h[d] * u[d];
        float e = expf(-fabsf(z)), s = z >= 0 ? 1.f / (1.f + e) : e / (1.f + e); /* s = sigmoid(z) */
        if (want_loss) { /* -log s(z) for the target, -log s(-z) for a negative */
            float x = j < 0 ? z : -z;
            loss += (x >= 0 ? 0.f : -x) + log1pf(e);
        }
        float g = s - (j < 0 ? 1.f : 0.f); /* dL/dz */
        if (gh)
            for (int d = 0; d < D; d++) gh[d] += g * u[d];
        if (lr > 0)
            for (int d = 0; d < D; d++) u[d] -= lr * g * h[d];
    }
    return loss;
}

float nl_text_ns_step(const float *h, nl_text_emb *out, int32_t t, const int32_t *neg, int k, float lr, float *gh) {
    return nl_text_ns_step_ex(h, out, t, neg, k, lr, gh, 1);
}

float nl_text_ssm_step(const float *h, nl_text_emb *out, float *b, const float *q, int32_t t, const int32_t *s,
                       int k, float lr, float *gh) {
    const int D = out->dim;
    float z[k + 1]; /* [k + 1] corrected logits; candidate 0 = the target */
    int32_t cand[k + 1];
    int m = 0;
    z[0] = 0.f;
    for (int j = -1; j < k; j++) {
        int32_t w = j < 0 ? t : s[j];
        if (j >= 0 && w == t) continue;
        const float *u = nl_text_emb_row(out, w);
        float v = (b ? b[w] : 0.f) - logf(q[w]);
        for (int d = 0; d < D; d++) v += h[d] * u[d];
        cand[m] = w, z[m++] = v;
    }
    float mx = m > 0 ? z[0] : 0.f, zs = 0;
    for (int j = 1; j < m; j++) mx = z[j] > mx ? z[j] : mx;
    for (int j = 0; j < m; j++) zs += expf(z[j] - mx);
    float loss = -(z[0] - mx - logf(zs));
    for (int j = 0; j < m; j++) {
        float g = expf(z[j] - mx) / zs - (j == 0); /* dL/dz_j */
        float *u = nl_text_emb_row(out, cand[j]);
        if (gh)
            for (int d = 0; d < D; d++) gh[d] += g * u[d];
        if (lr > 0) {
            for (int d = 0; d < D; d++) u[d] -= lr * g * h[d];
            if (b) b[cand[j]] -= lr * g;
        }
    }
    return loss;
}

/* ---------------------------------------------------------------- graph ops */
typedef struct sample_saved {
    int64_t B, D, V;
    int k, kind;        /* kind 0 = negative sampling, 1 = sampled softmax */
    int32_t *t, *s;     /* [B], [B, k] */
    double *g;          /* [B, k + 1] dL/dz per candidate (already divided by B), 0 for skipped ones */
} sample_saved;

static double get(const nl_tensor *t, int64_t i) {
    return t->dtype == NL_F64 ? ((const double *)t->data)[i] : ((const float *)t->data)[i];
}
static void add(nl_tensor *t, int64_t i, double v) {
    if (t->dtype == NL_F64) ((double *)t->data)[i] += v;
    else ((float *)t->data)[i] += (float)v;
}

static void sample_backward(nl_ctx *c, nl_node *n) {
    const sample_saved *sv = n->saved;
    double go = get(nl_node_grad_out(n), 0);
    nl_tensor h = nl_contig(c, &n->in[0]->val), U = nl_contig(c, &n->in[1]->val);
    nl_tensor *gh = nl_grad(c, n->in[0]), *gu = nl_grad(c, n->in[1]);
    for (int64_t b = 0; b < sv->B; b++)
        for (int j = 0; j <= sv->k; j++) {
            double g = go * sv->g[b * (sv->k + 1) + j];
            if (g == 0) continue;
            int32_t w = j == 0 ? sv->t[b] : sv->s[b * sv->k + j - 1];
            for (int64_t d = 0; d < sv->D; d++) {
                if (gh) add(gh, b * sv->D + d, g * get(&U, w * sv->D + d));
                if (gu) add(gu, w * sv->D + d, g * get(&h, b * sv->D + d));
            }
        }
}

static nl_var *sample_op(nl_ctx *c, const char *name, int kind, nl_var *h, nl_var *U, const float *q,
                         const int32_t *targets, const int32_t *samples, int k) {
    NL_REQUIRE(h, U);
    if (h->val.ndim != 2 || U->val.ndim != 2 || h->val.shape[1] != U->val.shape[1])
        return nl_op_fail(NL_ESHAPE, name, "h [B, D] and U [V, D] expected", h, U);
    if (h->val.dtype != U->val.dtype) return nl_op_fail(NL_EDTYPE, name, "mixed dtypes", h, U);
    if (k < 0 || !targets || (k > 0 && !samples) || (kind == 1 && !q))
        return nl_op_fail(NL_EINVAL, name, "targets, samples (k >= 0) and, for sampled softmax, q required", h, U);
    int64_t B = h->val.shape[0], D = h->val.shape[1], V = U->val.shape[0];
    for (int64_t i = 0; i < B; i++) {
        if (targets[i] < 0 || targets[i] >= V) return nl_op_fail(NL_EINVAL, name, "target id out of range", h, U);
        for (int j = 0; j < k; j++)
            if (samples[i * k + j] < 0 || samples[i * k + j] >= V)
                return nl_op_fail(NL_EINVAL, name, "sample id out of range", h, U);
    }
    sample_saved *sv = nl_scratch(c, sizeof *sv);
    if (!sv) return NULL;
    sv->B = B, sv->D = D, sv->V = V, sv->k = k, sv->kind = kind;
    sv->t = nl_scratch(c, sizeof(int32_t) * (size_t)(B + 1));
    sv->s = nl_scratch(c, sizeof(int32_t) * (size_t)(B * k + 1));
    sv->g = nl_scratch(c, sizeof(double) * (size_t)(B * (k + 1)));
    if (!sv->t || !sv->s || !sv->g) return NULL;
    memcpy(sv->t, targets, sizeof(int32_t) * (size_t)B);
    if (k) memcpy(sv->s, samples, sizeof(int32_t) * (size_t)(B * k));
    nl_tensor hv = nl_contig(c, &h->val), Uv = nl_contig(c, &U->val);
    if (!hv.data || !Uv.data) return NULL;
    double z[k + 1]; /* [k + 1] logits of one row */
    double loss = 0;
    for (int64_t b = 0; b < B; b++) {
        double *g = sv->g + b * (k + 1);
        for (int j = 0; j <= k; j++) {
            int32_t w = j == 0 ? targets[b] : samples[b * k + j - 1];
            g[j] = 0, z[j] = NAN;
            if (j > 0 && w == targets[b]) continue; /* skipped candidate */
            double v = kind == 1 ? -log((double)q[w]) : 0;
            for (int64_t d = 0; d < D; d++) v += get(&hv, b * D + d) * get(&Uv, w * D + d);
            z[j] = v;
        }
        if (kind == 0) {
            for (int j = 0; j <= k; j++) {
                if (isnan(z[j])) continue;
                double x = j == 0 ? z[j] : -z[j];                  /* loss term -log s(x) */
                loss += x >= 0 ? log1p(exp(-x)) : -x + log1p(exp(x));
                double s = 1 / (1 + exp(-z[j]));
                g[j] = (s - (j == 0)) / (double)B;
            }
        } else {
            double mx = z[0], zs = 0;
            for (int j = 1; j <= k; j++)
                if (!isnan(z[j]) && z[j] > mx) mx = z[j];
            for (int j = 0; j <= k; j++)
                if (!isnan(z[j])) zs += exp(z[j] - mx);
            loss += -(z[0] - mx - log(zs));
            for (int j = 0; j <= k; j++)
                if (!isnan(z[j])) g[j] = (exp(z[j] - mx) / zs - (j == 0)) / (double)B;
        }
    }
    nl_var *out = nl_op_out(c, h->val.dtype, 0, NULL);
    if (!out) return NULL;
    if (out->val.dtype == NL_F64) *(double *)out->val.data = loss / (double)B;
    else *(float *)out->val.data = (float)(loss / (double)B);
    nl_var *in[2] = {h, U};
    nl_node *nd = nl_op_record(c, name, out, sample_backward, 2, in);
    if (nd) nd->saved = sv;
    return out;
}

nl_var *nl_text_ns_loss(nl_ctx *c, nl_var *h, nl_var *U, const int32_t *targets, const int32_t *samples, int k) {
    return sample_op(c, "text_ns_loss", 0, h, U, NULL, targets, samples, k);
}

nl_var *nl_text_ssm_loss(nl_ctx *c, nl_var *h, nl_var *U, const float *q, const int32_t *targets,
                         const int32_t *samples, int k) {
    return sample_op(c, "text_ssm_loss", 1, h, U, q, targets, samples, k);
}
