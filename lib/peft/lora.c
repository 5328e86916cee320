/* peft/lora.c — LoRA adapters over an nl_params store (lora.h): merge W0 + s B A, chain rule to dA, dB. */
#include "peft/lora.h"
#include "nnlab/ops.h"
#include "nnlab/rng.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_target(const nl_param *p, const char *const *names, int n_names) {
    if (!names) return p->var.val.ndim >= 2;
    for (int k = 0; k < n_names; k++)
        if (!strcmp(names[k], p->name)) return 1;
    return 0;
}

static void matrix_view(const nl_param *p, int64_t *out, int64_t *in) {
    *out = p->var.val.ndim >= 1 ? p->var.val.shape[0] : 1;
    *in = *out > 0 ? p->numel / *out : 0;
}

/* check every target before anything is allocated: the names exist, >= 2 dims, rank <= min(out, in) */
static nl_status check_targets(const nl_params *ps, const char *const *names, int n_names, int rank, int64_t *count,
                               int *n_targets) {
    *count = 0;
    *n_targets = 0;
    for (int k = 0; names && k < n_names; k++)
        if (!nl_params_find(ps, names[k])) return nl_set_error(NL_EINVAL, "lora: no parameter named '%s'", names[k]);
    for (int i = 0; i < ps->n; i++) {
        const nl_param *p = ps->p[i];
        if (!is_target(p, names, n_names)) continue;
        if (p->var.val.ndim < 2)
            return nl_set_error(NL_EINVAL, "lora: '%s' has %d dimension(s); LoRA adapts weights of 2 or more (linear, conv)", p->name,
                                p->var.val.ndim);
        int64_t out, in;
        matrix_view(p, &out, &in);
        int64_t mn = out < in ? out : in;
        if (rank > mn)
            return nl_set_error(NL_EINVAL, "lora: rank %d exceeds min(out, in) = %lld of '%s' (%lld, %lld)", rank, (long long)mn,
                                p->name, (long long)out, (long long)in);
        *count += (int64_t)rank * (out + in);
        (*n_targets)++;
    }
    if (*n_targets == 0) return nl_set_error(NL_EINVAL, "lora: no parameter to adapt (none of 2 or more dimensions named)");
    return NL_OK;
}

int64_t nl_lora_count_for(const nl_params *ps, const char *const *names, int n_names, int rank) {
    int64_t count;
    int nt;
    if (rank < 1 || check_targets(ps, names, n_names, rank, &count, &nt)) return -1;
    return count;
}

nl_status nl_lora_init(nl_lora *l, nl_params *ps, const char *const *names, int n_names, int rank, double alpha,
                       uint64_t seed) {
    memset(l, 0, sizeof *l);
    if (!ps || ps->dtype != NL_F32 || !ps->data) return nl_set_error(NL_EINVAL, "lora: an allocated f32 parameter store is required");
    if (rank < 1) return nl_set_error(NL_EINVAL, "lora: rank %d (must be >= 1)", rank);
    if (!(alpha > 0)) return nl_set_error(NL_EINVAL, "lora: alpha %g (must be > 0)", alpha);
    int64_t count;
    int nt;
    nl_status s = check_targets(ps, names, n_names, rank, &count, &nt);
    if (s) return s;
    l->ps = ps;
    l->rank = rank;
    l->alpha = alpha;
    l->scale = alpha / rank;
    l->t = calloc((size_t)nt, sizeof *l->t);
    if (!l->t) return nl_set_error(NL_ENOMEM, "lora: out of memory");
    if ((s = nl_params_init(&l->ad, NL_F32))) {
        free(l->t);
        l->t = NULL;
        return s;
    }
    for (int i = 0; i < ps->n && !s; i++) {
        nl_param *p = ps->p[i];
        if (!is_target(p, names, n_names)) continue;
        nl_lora_target *t = &l->t[l->n++];
        t->p = p;
        matrix_view(p, &t->out, &t->in);
        char nm[128];
        snprintf(nm, sizeof nm, "%s.lora_A", p->name);
        t->A = nl_params_add(&l->ad, nm, 2, (int64_t[]){rank, t->in});
        snprintf(nm, sizeof nm, "%s.lora_B", p->name);
        t->B = nl_params_add(&l->ad, nm, 2, (int64_t[]){t->out, rank});
        t->W0 = malloc((size_t)p->numel * sizeof(float));
        if (!t->A || !t->B || !t->W0) s = nl_set_error(NL_ENOMEM, "lora: out of memory attaching '%s'", p->name);
        else memcpy(t->W0, p->var.val.data, (size_t)p->numel * sizeof(float));
    }
    if (s) {
        nl_lora_free(l);
        return s;
    }
    /* the adapter store's arrays are final only now (adding moves them): fill A, B through the views */
    nl_rng rng;
    nl_rng_init(&rng, seed, 0x10a4);
    for (int k = 0; k < l->n; k++) {
        nl_lora_target *t = &l->t[k];
        nl_rng_fill_uniform(&rng, &t->A->val, -1.0 / sqrt((double)t->in), 1.0 / sqrt((double)t->in)); /* (r, in) */
        nl_tensor_fill(&t->B->val, 0);                                                                  /* (out, r) */
    }
    for (int i = 0; i < ps->n; i++) ps->p[i]->var.requires_grad = 0;
    for (int k = 0; k < l->n; k++) l->t[k].p->var.requires_grad = 1;
    return NL_OK;
}

void nl_lora_free(nl_lora *l) {
    if (!l) return;
    for (int k = 0; k < l->n; k++)
        if (l->t[k].W0) memcpy(l->t[k].p->var.val.data, l->t[k].W0, (size_t)l->t[k].p->numel * sizeof(float));
    for (int k = 0; k < l->n; k++) free(l->t[k].W0);
    free(l->t);
    if (l->ps) nl_params_free(&l->ad);
    memset(l, 0, sizeof *l);
}

void nl_lora_merge(nl_lora *l) {
    for (int k = 0; k < l->n; k++) {
        nl_lora_target *t = &l->t[k];
        float *W = t->p->var.val.data; /* (out, in) */
        memcpy(W, t->W0, (size_t)(t->out * t->in) * sizeof(float));
        /* W += s B A: (out, r) @ (r, in) */
        nl_gemm(NL_F32, 0, 0, t->out, t->in, l->rank, l->scale, t->B->val.data, l->rank, t->A->val.data, t->in, 1.0, W, t->in);
    }
}

void nl_lora_grad(nl_lora *l) {
    for (int k = 0; k < l->n; k++) {
        nl_lora_target *t = &l->t[k];
        const float *G = t->p->var.grad.data; /* (out, in) dL/dW, the store's flat gradient view */
        if (!G) continue;
        float *dA = t->A->grad.data, *dB = t->B->grad.data; /* (r, in), (out, r) */
        /* dB += s G A^T: (out, in) @ (in, r); dA += s B^T G: (r, out) @ (out, in) */
        nl_gemm(NL_F32, 0, 1, t->out, l->rank, t->in, l->scale, G, t->in, t->A->val.data, t->in, 1.0, dB, l->rank);
        nl_gemm(NL_F32, 1, 0, l->rank, t->in, t->out, l->scale, t->B->val.data, l->rank, G, t->in, 1.0, dA, t->in);
    }
}

int64_t nl_lora_count(const nl_lora *l) {
    int64_t c = 0;
    for (int k = 0; k < l->n; k++) c += (int64_t)l->rank * (l->t[k].out + l->t[k].in);
    return c;
}

int64_t nl_lora_bytes(const nl_lora *l) {
    int64_t b = 2 * nl_lora_count(l) * (int64_t)sizeof(float);
    for (int k = 0; k < l->n; k++) b += l->t[k].out * l->t[k].in * (int64_t)sizeof(float);
    return b;
}
