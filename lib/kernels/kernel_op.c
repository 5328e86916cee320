/* The differentiable kernel op nl_kernel_fc (forward through the row kernels, hand-derived reverse pass per entry)
 * and nl_kernel_add_diag. */
#include "kernels/kernels_internal.h"
#include "nnlab/extend.h"
#include <omp.h>
#include <string.h>

/* ======================================================================================================
 * Differentiable op
 * ====================================================================================================== */
typedef struct kop_saved {
    kplan p;
    int which, sym, nhyp;
    int64_t n1, n2;
    kdiag d1, d2;          /* d2 aliases d1 when sym */
    const double *K0;      /* (n1, n2) contiguous input values */
} kop_saved;

static nl_status diag_arena(nl_ctx *c, kdiag *dg, int L, int64_t n) {
    dg->n = n;
    size_t m = (size_t)(L > 0 ? L : 1) * (size_t)(n > 0 ? n : 1);
    dg->P = nl_scratch(c, 3 * m * sizeof(double));
    if (!dg->P) return NL_ENOMEM;
    dg->Q = dg->P + m;
    dg->R = dg->Q + m;
    return NL_OK;
}

/* Reverse pass through one entry. st: (L+1) x 12 stash. q1b: adjoints of the row point's Q (stride qs1),
 * q2b: of the column point's Q (stride qs2); hb: (2(L+1)) adjoints of sw2[l] then sb2[l]. Returns dOut/dK0. */
static double elem_backward(const kplan *p, int wantT, double k0, const double *q1, int64_t qs1, const double *q2,
                            int64_t qs2, int coinc, double g, double *st, double *q1b, double *q2b, double *hb) {
    int L = p->L;
    double S = k0, T = 0.0;
    for (int l = 0; l < L; l++) {
        double *e = st + 12 * l;
        klay y = lay_of(p, l);
        e[0] = S;
        e[1] = T;
        double Sp = NL_MADD(y.sw2, S, y.sb2);
        double Tp = wantT ? NL_MADD(y.A, S, NL_MADD(y.sw2, T, y.B)) : 0.0;
        e[2] = Tp;
        nl_kact_map(p, Sp, q1[l * qs1], q2[l * qs2], coinc, wantT, 1, e + 4);
        S = e[4];
        T = Tp * e[5];
    }
    int ntk_par = !p->sp;
    double Spb = wantT ? 0.0 : g, Tpb = wantT ? g : 0.0;
    klay y = lay_of(p, L);
    hb[L] += S * Spb + T * Tpb + (ntk_par ? S * Tpb : 0.0);
    hb[L + 1 + L] += Spb + (ntk_par ? Tpb : 0.0);
    double Sb = y.sw2 * Spb + y.A * Tpb, Tb = y.sw2 * Tpb;
    for (int l = L - 1; l >= 0; l--) {
        const double *e = st + 12 * l, *o = e + 4;
        double Tp = e[2];
        Spb = Sb * o[3] + Tb * Tp * o[6];
        q1b[l * qs1] += Sb * o[2] + Tb * Tp * o[5];
        q2b[l * qs2] += Sb * o[4] + Tb * Tp * o[7];
        Tpb = Tb * o[1];
        y = lay_of(p, l);
        hb[l] += e[0] * Spb + e[1] * Tpb + (ntk_par ? e[0] * Tpb : 0.0);
        hb[L + 1 + l] += Spb + (ntk_par ? Tpb : 0.0);
        Sb = y.sw2 * Spb + y.A * Tpb;
        Tb = y.sw2 * Tpb;
    }
    return Sb;
}

/* Backward of the diagonal chains of one point set: qbar (L, n) adjoints of Q -> q0bar (n) and hb. */
static void diag_backward(const kplan *p, const kdiag *dg, const double *qbar, double *hb, double *q0bar) {
    int L = p->L;
    int64_t n = dg->n;
    for (int64_t i = 0; i < n; i++) {
        double Pb = 0.0;
        for (int l = L - 1; l >= 0; l--) {
            double Qb = qbar[l * n + i];
            if (l < L - 1 && Pb != 0.0) {
                double dV;
                nl_kact_diag(p, dg->Q[l * n + i], &dV);
                Qb += dV * Pb;
            }
            hb[l] += dg->P[l * n + i] * Qb;
            hb[L + 1 + l] += Qb;
            Pb = p->sw2[l] * Qb;
        }
        q0bar[i] = Pb;
    }
}

static void kop_backward(nl_ctx *c, nl_node *nd) {
    kop_saved *s = nd->saved;
    const kplan *p = &s->p;
    nl_tensor *gK = nl_grad(c, nd->in[0]), *gd1 = nl_grad(c, nd->in[1]), *gd2 = nl_grad(c, nd->in[2]);
    nl_tensor *gh = nl_grad(c, nd->in[3]);
    if (!gK && !gd1 && !gd2 && !gh) return;
    const double *g = nl_node_grad_out(nd)->data;
    int L = p->L, wantT = s->which == NL_KERNEL_NTK;
    int64_t n1 = s->n1, n2 = s->n2, Lm = L > 0 ? L : 1;
    int nth = omp_get_max_threads();
    size_t nh = (size_t)(2 * (L + 1));
    double *q1b = nl_scratch(c, sizeof(double) * (size_t)(Lm * n1));
    double *q2b = nl_scratch(c, sizeof(double) * (size_t)nth * (size_t)(Lm * n2));
    double *hb = nl_scratch(c, sizeof(double) * (size_t)nth * nh);
    double *stash = nl_scratch(c, sizeof(double) * (size_t)nth * (size_t)(12 * (L + 1)));
    double *kbar = gK ? gK->data : nl_scratch(c, sizeof(double) * (size_t)(n1 * n2));
    if (!q1b || !q2b || !hb || !stash || !kbar) return;
    memset(q1b, 0, sizeof(double) * (size_t)(Lm * n1));
    memset(q2b, 0, sizeof(double) * (size_t)nth * (size_t)(Lm * n2));
    memset(hb, 0, sizeof(double) * (size_t)nth * nh);
    const double *K0 = s->K0;
#pragma omp parallel num_threads(nth) if (n1 * n2 * (L + 1) * elem_cost(p) * 4 > PAR_WORK)
    {
        int tid = omp_get_thread_num();
        double *myq2 = q2b + (size_t)tid * (size_t)(Lm * n2), *myh = hb + (size_t)tid * nh;
        double *st = stash + (size_t)tid * (size_t)(12 * (L + 1));
#pragma omp for schedule(static)
        for (int64_t i = 0; i < n1; i++) {
            for (int64_t j = 0; j < n2; j++) {
                double gij = g[i * n2 + j];
                if (gij == 0.0) continue;
                double kb = elem_backward(p, wantT, K0[i * n2 + j], s->d1.Q + i, n1, s->d2.Q + j, n2,
                                          s->sym && i == j, gij, st, q1b + i, myq2 + j, myh);
                kbar[i * n2 + j] += kb;
            }
        }
    }
    /* reduce the per-thread column adjoints and hyperparameter sums */
    for (int t = 1; t < nth; t++) {
        double *src = q2b + (size_t)t * (size_t)(Lm * n2);
        for (int64_t k = 0; k < Lm * n2; k++) q2b[k] += src[k];
        for (size_t k = 0; k < nh; k++) hb[k] += hb[(size_t)t * nh + k];
    }
    double *q0b1 = nl_scratch(c, sizeof(double) * (size_t)(n1 > 0 ? n1 : 1));
    double *q0b2 = nl_scratch(c, sizeof(double) * (size_t)(n2 > 0 ? n2 : 1));
    if (!q0b1 || !q0b2) return;
    if (s->sym) {
        for (int64_t k = 0; k < Lm * n1; k++) q1b[k] += q2b[k];
        diag_backward(p, &s->d1, q1b, hb, q0b1);
        for (int64_t i = 0; i < n1; i++) kbar[i * n2 + i] += q0b1[i];
    } else {
        diag_backward(p, &s->d1, q1b, hb, q0b1);
        diag_backward(p, &s->d2, q2b, hb, q0b2);
        if (gd1) for (int64_t i = 0; i < n1; i++) ((double *)gd1->data)[i] += q0b1[i];
        if (gd2) for (int64_t j = 0; j < n2; j++) ((double *)gd2->data)[j] += q0b2[j];
    }
    if (gh) {
        double *ghd = gh->data;
        for (int l = 0; l <= L; l++) {
            int out = s->nhyp == 4 && l == L;
            ghd[out ? 2 : 0] += hb[l];
            ghd[out ? 3 : 1] += hb[L + 1 + l];
        }
    }
}

static int is_f64_vec(const nl_var *v, int64_t n) {
    return v->val.dtype == NL_F64 && v->val.ndim == 1 && v->val.shape[0] == n;
}

nl_var *nl_kernel_fc(nl_ctx *c, const nl_kernel_cfg *cfg, int which, nl_var *K0, nl_var *d1, nl_var *d2, nl_var *hyp) {
    const char *op = "kernel_fc";
    NL_REQUIRE(K0, hyp);
    if (nl_kernel_cfg_check(cfg)) return NULL;
    if (which != NL_KERNEL_NNGP && which != NL_KERNEL_NTK)
        return nl_op_fail(NL_EINVAL, op, "which must be NL_KERNEL_NNGP or NL_KERNEL_NTK", K0, NULL);
    if (K0->val.dtype != NL_F64 || K0->val.ndim != 2) return nl_op_fail(NL_EDTYPE, op, "K0 must be a 2-D f64 matrix", K0, NULL);
    int64_t n1 = K0->val.shape[0], n2 = K0->val.shape[1];
    int sym = !d1 && !d2;
    if (!sym && (!d1 || !d2)) return nl_op_fail(NL_EINVAL, op, "pass both d1 and d2, or neither (symmetric case)", K0, NULL);
    if (sym && n1 != n2) return nl_op_fail(NL_ESHAPE, op, "symmetric case (d1 = d2 = NULL) needs a square K0", K0, NULL);
    if (!sym && (!is_f64_vec(d1, n1) || !is_f64_vec(d2, n2)))
        return nl_op_fail(NL_ESHAPE, op, "d1 / d2 must be f64 vectors [n1] / [n2] (K0 is [n1, n2]; d1 shown)", K0, d1);
    int64_t nh = nl_tensor_numel(&hyp->val);
    if (hyp->val.dtype != NL_F64 || (nh != 2 && nh != 4))
        return nl_op_fail(NL_ESHAPE, op, "hyp must be f64 with 2 (sw2, sb2) or 4 (sw2, sb2, sw2_out, sb2_out) elements", hyp, NULL);
    if (cfg->force_quad) return nl_op_fail(NL_EINVAL, op, "force_quad is forward-only (non-smooth activations have no NTK gradient by quadrature)", K0, NULL);
    if (cfg->param == NL_KPARAM_SP && cfg->sp_in_dim < 1)
        return nl_op_fail(NL_EINVAL, op, "the standard parametrisation needs cfg.sp_in_dim (input dimension d)", K0, NULL);
    double hv[4];
    for (int k = 0; k < nh; k++) {
        hv[k] = nl_tensor_get(&hyp->val, k);
        if (!(hv[k] >= 0) || !isfinite(hv[k])) {
            nl_set_error(NL_EINVAL, "%s: hyperparameter %d = %g must be a finite variance >= 0", op, k, hv[k]);
            return NULL;
        }
    }
    kop_saved *s = nl_scratch(c, sizeof *s);
    void *pmem = nl_scratch(c, nl_kplan_bytes(cfg));
    if (!s || !pmem) return NULL;
    memset(s, 0, sizeof *s);
    if (nl_kplan_init(&s->p, cfg, hv, (int)nh, cfg->sp_in_dim, pmem)) return NULL;
    const kplan *p = &s->p;
    int L = p->L;
    s->which = which; s->sym = sym; s->nhyp = (int)nh; s->n1 = n1; s->n2 = n2;
    nl_tensor k0 = nl_contig(c, &K0->val);
    if (!k0.data) return NULL;
    s->K0 = k0.data;
    if (diag_arena(c, &s->d1, L, n1)) return NULL;
    if (sym) {
        s->d2 = s->d1;
        nl_kdiag_fill(p, &s->d1, s->K0, n1 + 1);
    } else {
        if (diag_arena(c, &s->d2, L, n2)) return NULL;
        nl_tensor a = nl_contig(c, &d1->val), b = nl_contig(c, &d2->val);
        if (!a.data || !b.data) return NULL;
        nl_kdiag_fill(p, &s->d1, a.data, 1);
        nl_kdiag_fill(p, &s->d2, b.data, 1);
    }
    int64_t shape[2] = {n1, n2};
    nl_var *out = nl_op_out(c, NL_F64, 2, shape);
    if (!out) return NULL;
    int nth = omp_get_max_threads();
    double *scr = nl_scratch(c, sizeof(double) * (size_t)nth * (size_t)(n2 > 0 ? n2 : 1));
    if (!scr) return NULL;
    double *o = out->val.data;
#pragma omp parallel for schedule(static) num_threads(nth) if (n1 * n2 * (L + 1) * elem_cost(p) > PAR_WORK)
    for (int64_t i = 0; i < n1; i++) {
        double *mine = scr + (size_t)omp_get_thread_num() * (size_t)n2;
        double *S = which == NL_KERNEL_NNGP ? o + i * n2 : mine, *T = which == NL_KERNEL_NTK ? o + i * n2 : NULL;
        memcpy(S, s->K0 + i * n2, sizeof(double) * (size_t)n2);
        nl_krow_kernel(p, S, T, n2, &s->d1, i, &s->d2, 0, sym ? i : -1);
    }
    nl_var *in[4] = {K0, d1, d2, hyp};
    nl_node *n = nl_op_record(c, op, out, kop_backward, 4, in);
    if (n) n->saved = s;
    return out;
}

/* ---- A + s I ---- */
static void adddiag_backward(nl_ctx *c, nl_node *nd) {
    const nl_tensor *g = nl_node_grad_out(nd);
    nl_tensor *gA = nl_grad(c, nd->in[0]), *gs = nl_grad(c, nd->in[1]);
    if (gA) nl_tensor_add_into(gA, g);
    if (gs) {
        int64_t n = g->shape[0];
        double tr = 0;
        for (int64_t i = 0; i < n; i++) tr += nl_tensor_get(g, i * n + i);
        nl_tensor_set(gs, 0, nl_tensor_get(gs, 0) + tr);
    }
}

nl_var *nl_kernel_add_diag(nl_ctx *c, nl_var *A, nl_var *s) {
    const char *op = "kernel_add_diag";
    NL_REQUIRE(A, s);
    if (A->val.ndim != 2 || A->val.shape[0] != A->val.shape[1]) return nl_op_fail(NL_ESHAPE, op, "A must be square", A, NULL);
    if (nl_tensor_numel(&s->val) != 1) return nl_op_fail(NL_ESHAPE, op, "s must have one element", s, NULL);
    if (A->val.dtype != s->val.dtype) return nl_op_fail(NL_EDTYPE, op, "A and s must have the same dtype", A, s);
    nl_var *out = nl_op_out(c, A->val.dtype, 2, A->val.shape);
    if (!out) return NULL;
    nl_tensor_copy(&out->val, &A->val);
    int64_t n = A->val.shape[0];
    double sv = nl_tensor_get(&s->val, 0);
    for (int64_t i = 0; i < n; i++) nl_tensor_set(&out->val, i * n + i, nl_tensor_get(&out->val, i * n + i) + sv);
    nl_var *in[2] = {A, s};
    nl_op_record(c, op, out, adddiag_backward, 2, in);
    return out;
}
