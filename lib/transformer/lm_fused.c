/* Fused ops of the LM's training step (see transformer.h): the residual linear layer
 * y = r + x W^T (+ b), one GEMM with beta = 1 on a buffer preloaded with r (+ b). It replaces
 * nl_add(r, nl_linear(x, W, b)), which zero-fills the product's output (OpenBLAS's beta = 0 pass) or preloads the
 * bias, then reads both terms again for the add, and in backward copies the output gradient once per branch.
 * Without r (NULL) it is a plain linear layer whose output is zeroed by memset and accumulated with beta = 1:
 * the same values as beta = 0, without OpenBLAS's separate, slower C pass (sgemm_beta). */
#include "transformer/transformer.h"
#include "nnlab/extend.h"
#include "nnlab/ops.h"
#include <string.h>

typedef struct {
    nl_tensor x; /* [R, In] contiguous input of the product */
    int has_r;   /* node inputs: {r, x, W, b} or, without residual, {x, W, b} */
} linres_saved;

static void linres_backward(nl_ctx *c, nl_node *n) {
    const linres_saved *s = n->saved;
    const int k = s->has_r; /* index of x */
    nl_var *W = n->in[k + 1], *bias = n->n_in > k + 2 ? n->in[k + 2] : NULL;
    const nl_tensor *g = nl_node_grad_out(n); /* [R, O] */
    const int64_t O = W->val.shape[0], In = W->val.shape[1], R = nl_tensor_numel(g) / O;
    const nl_dtype dt = g->dtype;
    const size_t es = nl_dtype_size(dt);
    int fresh = 0;
    nl_tensor *gr = k ? nl_grad_w(c, n->in[0], &fresh) : NULL; /* residual branch: the gradient passes through */
    if (gr) {
        if (fresh) memcpy(gr->data, g->data, (size_t)(R * O) * es);
        else nl_tensor_add_into(gr, g);
    }
    nl_tensor Wc = nl_contig(c, &W->val);
    nl_tensor *gx = nl_grad(c, n->in[k]), *gw = nl_grad(c, W), *gb = bias ? nl_grad(c, bias) : NULL;
    if (gx && Wc.data) nl_gemm(dt, 0, 0, R, In, O, 1.0, g->data, O, Wc.data, In, 1.0, gx->data, In); /* dX = G W */
    if (gw) nl_gemm(dt, 1, 0, O, In, R, 1.0, g->data, O, s->x.data, In, 1.0, gw->data, In);          /* dW = G^T X */
    if (gb) {
        if (dt == NL_F32) {
            float *b = gb->data;
            const float *gp = g->data;
            for (int64_t r = 0; r < R; r++)
                for (int64_t o = 0; o < O; o++) b[o] += gp[r * O + o];
        } else {
            double *b = gb->data;
            const double *gp = g->data;
            for (int64_t r = 0; r < R; r++)
                for (int64_t o = 0; o < O; o++) b[o] += gp[r * O + o];
        }
    }
}

nl_var *nl_lm_linear_residual(nl_ctx *c, nl_var *r, nl_var *x, nl_var *W, nl_var *b) {
    NL_REQUIRE(x, W);
    const nl_dtype dt = x->val.dtype;
    if ((r && r->val.dtype != dt) || W->val.dtype != dt || (b && b->val.dtype != dt))
        return nl_op_fail(NL_EDTYPE, "linear_residual", "mixed dtypes", x, W);
    if (W->val.ndim != 2) return nl_op_fail(NL_ESHAPE, "linear_residual", "W must be [out, in]", x, W);
    const int64_t O = W->val.shape[0], In = W->val.shape[1];
    if (x->val.ndim < 1 || x->val.shape[x->val.ndim - 1] != In)
        return nl_op_fail(NL_ESHAPE, "linear_residual", "last dim of x must equal W's in-dim", x, W);
    if (b && (b->val.ndim != 1 || b->val.shape[0] != O))
        return nl_op_fail(NL_ESHAPE, "linear_residual", "bias must be [out]", b, W);
    /* r must have x's shape with the last dim replaced by O */
    int ok = !r || (r->val.ndim == x->val.ndim && r->val.shape[r->val.ndim - 1] == O);
    for (int i = 0; r && ok && i < x->val.ndim - 1; i++) ok = r->val.shape[i] == x->val.shape[i];
    if (!ok) return nl_op_fail(NL_ESHAPE, "linear_residual", "residual must be [.., out] with x's leading dims", r, x);
    nl_tensor X = nl_contig(c, &x->val), Wc = nl_contig(c, &W->val), Rc;
    memset(&Rc, 0, sizeof Rc);
    if (r) Rc = nl_contig(c, &r->val);
    if (!X.data || !Wc.data || (r && !Rc.data)) return NULL;
    int64_t osh[NL_MAXDIM];
    for (int i = 0; i < X.ndim; i++) osh[i] = X.shape[i];
    osh[X.ndim - 1] = O;
    nl_var *out = nl_op_out(c, dt, X.ndim, osh); /* [.., O] */
    if (!out) return NULL;
    const int64_t R = nl_tensor_numel(&X) / In;
    const size_t es = nl_dtype_size(dt);
    if (!r && !b) memset(out->val.data, 0, (size_t)(R * O) * es); /* beta = 1 onto zeros, see the top */
    else if (!r) {
        nl_tensor bc = nl_contig(c, &b->val);
        if (!bc.data) return NULL;
        for (int64_t i = 0; i < R; i++) memcpy((char *)out->val.data + (size_t)(i * O) * es, bc.data, (size_t)O * es);
    } else if (!b) memcpy(out->val.data, Rc.data, (size_t)(R * O) * es);
    else {
        nl_tensor bc = nl_contig(c, &b->val);
        if (!bc.data) return NULL;
        if (dt == NL_F32) {
            float *o = out->val.data;
            const float *rr = Rc.data, *bb = bc.data;
            for (int64_t i = 0; i < R; i++)
                for (int64_t j = 0; j < O; j++) o[i * O + j] = rr[i * O + j] + bb[j];
        } else {
            double *o = out->val.data;
            const double *rr = Rc.data, *bb = bc.data;
            for (int64_t i = 0; i < R; i++)
                for (int64_t j = 0; j < O; j++) o[i * O + j] = rr[i * O + j] + bb[j];
        }
    }
    nl_gemm(dt, 0, 1, R, O, In, 1.0, X.data, In, Wc.data, In, 1.0, out->val.data, O);
    nl_var *in4[4] = {r, x, W, b}, **in = r ? in4 : in4 + 1;
    nl_node *n = nl_op_record(c, "linear_residual", out, linres_backward, (r ? 1 : 0) + (b ? 3 : 2), in);
    if (n) {
        linres_saved *s = nl_scratch(c, sizeof *s);
        if (!s) return NULL;
        s->x = X;
        s->has_r = r != NULL;
        n->saved = s;
    }
    return out;
}
