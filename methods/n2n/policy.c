/* N2N: the architecture the policies act on, the reward, and the two policies (bidirectional LSTM layer removal,
 * autoregressive LSTM layer shrinkage) with their log-probabilities for REINFORCE. */
#include "n2n/n2n.h"
#include "nnlab/extend.h"
#include "nnlab/ops.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

const double NL_N2N_FACTORS[NL_N2N_NFACT] = {0.25, 0.5, 0.5, 0.5, 0.5, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0};

/* ---------------------------------------- architecture ---------------------------------------- */
int nl_n2n_arch_layers(const nl_n2n_arch *a) { return a->n_conv + (a->hidden > 0) + 1; }

static int64_t layer_out(const nl_n2n_arch *a, int l) {
    if (l < a->n_conv) return a->channels[l];
    if (a->hidden > 0 && l == a->n_conv) return a->hidden;
    return a->n_classes;
}

void nl_n2n_arch_describe(const nl_n2n_arch *a, int l, float *f) {
    int conv = l < a->n_conv;
    int64_t in = l == 0 ? a->in_c : layer_out(a, l - 1);
    f[0] = (float)conv;
    f[1] = conv ? 1.0f : 0.0f; /* kernel 3 / 3 */
    f[2] = conv ? (float)a->pooled[l] : 0.0f;
    f[3] = (float)layer_out(a, l) / 64.0f;
    f[4] = (float)in / 64.0f;
}

int nl_n2n_removable(const nl_n2n_arch *a, int l) {
    int L = nl_n2n_arch_layers(a);
    if (l <= 0 || l >= L - 1) return 0;
    return l < a->n_conv ? !a->pooled[l] : 1;
}

int nl_n2n_shrinkable(const nl_n2n_arch *a, int l) { return l >= 0 && l < nl_n2n_arch_layers(a) - 1; }

void nl_n2n_arch_remove(const nl_n2n_arch *a, const int *remove, nl_n2n_arch *ch) {
    *ch = *a;
    ch->n_conv = 0;
    for (int l = 0; l < a->n_conv; l++) {
        if (remove[l] && nl_n2n_removable(a, l)) continue;
        ch->channels[ch->n_conv] = a->channels[l];
        ch->pooled[ch->n_conv] = a->pooled[l];
        ch->n_conv++;
    }
    if (a->hidden > 0 && remove[a->n_conv] && nl_n2n_removable(a, a->n_conv)) ch->hidden = 0;
}

void nl_n2n_arch_shrink(const nl_n2n_arch *a, const int *fact, nl_n2n_arch *ch) {
    *ch = *a;
    for (int l = 0; l < nl_n2n_arch_layers(a); l++) {
        if (!nl_n2n_shrinkable(a, l) || fact[l] < 0 || fact[l] >= NL_N2N_NFACT) continue;
        double w = floor((double)layer_out(a, l) * NL_N2N_FACTORS[fact[l]]);
        if (w < 2) w = 2;
        if (l < a->n_conv) ch->channels[l] = (int)w;
        else ch->hidden = (int64_t)w;
    }
}

nl_status nl_n2n_arch_config(const nl_n2n_arch *a, nl_model_config *cfg) {
    if (a->n_conv < 1 || a->n_conv > NL_MODEL_MAX_BLOCKS)
        return nl_set_error(NL_EINVAL, "n2n: %d conv blocks outside [1, %d]", a->n_conv, NL_MODEL_MAX_BLOCKS);
    *cfg = nl_cnn_config(a->in_c, a->in_h, a->in_w, a->n_conv, a->channels, a->hidden, a->n_classes);
    cfg->pool = 2;
    cfg->pool_mask = 0;
    for (int l = 0; l < a->n_conv; l++)
        if (a->pooled[l]) cfg->pool_mask |= 1u << l;
    return nl_model_config_check(cfg);
}

int64_t nl_n2n_arch_params(const nl_n2n_arch *a) {
    nl_model_config cfg;
    if (nl_n2n_arch_config(a, &cfg)) return -1;
    nl_params ps;
    if (nl_model_layout(&cfg, &ps)) return -1;
    int64_t n = 0;
    for (int i = 0; i < ps.n; i++)
        if (!strstr(ps.p[i]->name, "running_")) n += ps.p[i]->numel; /* BatchNorm buffers are not parameters */
    nl_params_free(&ps);
    return n;
}

double nl_n2n_reward(double acc_s, double acc_t, double params_s, double params_t) {
    if (!(params_s > 0) || !(params_t > 0) || params_s >= params_t || !(acc_t > 0)) return -1.0;
    double C = 1.0 - params_s / params_t;
    return (acc_s / acc_t) * C * (2.0 - C);
}

/* ---------------------------------------- policies ---------------------------------------- */
nl_status nl_n2n_policy_init(nl_n2n_policy *p, nl_n2n_policy_kind kind, int64_t hidden, nl_dtype dt, uint64_t seed) {
    memset(p, 0, sizeof *p);
    p->kind = kind;
    p->hidden = hidden;
    nl_status s = nl_params_init(&p->ps, dt);
    if (s) return s;
    static const char *const rn[4] = {"lstm.l0.fw", "lstm.l0.bw", "lstm.l1.fw", "lstm.l1.bw"};
    static const char *const sn[2] = {"cell0", "cell1"};
    int nl = kind == NL_N2N_REMOVAL ? 4 : 2;
    for (int k = 0; k < nl && !s; k++) {
        int64_t in = kind == NL_N2N_REMOVAL ? (k < 2 ? NL_N2N_FEAT : 2 * hidden) : (k == 0 ? NL_N2N_FEAT + 1 : hidden);
        s = nl_lstm_init(&p->l[k], &p->ps, kind == NL_N2N_REMOVAL ? rn[k] : sn[k], in, hidden);
    }
    int64_t nout = kind == NL_N2N_REMOVAL ? 2 : NL_N2N_NFACT, hin = kind == NL_N2N_REMOVAL ? 2 * hidden : hidden;
    int64_t sw[2] = {nout, hin}, sb[1] = {nout};
    if (!s) {
        p->W = nl_params_add(&p->ps, "head.weight", 2, sw);
        p->b = nl_params_add(&p->ps, "head.bias", 1, sb);
        if (!p->W || !p->b) s = nl_last_status();
    }
    if (s) {
        nl_params_free(&p->ps);
        return s;
    }
    nl_rng r;
    nl_rng_init(&r, seed, 0x2A2AULL);
    for (int k = 0; k < nl; k++) nl_lstm_reset(&p->l[k], &r);
    double a = 1.0 / sqrt((double)hin);
    nl_rng_fill_uniform(&r, &p->W->val, -a, a);
    nl_rng_fill_uniform(&r, &p->b->val, -a, a);
    return NL_OK;
}

void nl_n2n_policy_free(nl_n2n_policy *p) { nl_params_free(&p->ps); }

/* a [1, n] input var holding v[0..n) */
static nl_var *row_var(nl_ctx *c, nl_dtype dt, const float *v, int n) {
    int64_t shp[2] = {1, n};
    nl_var *x = nl_new(c, dt, 2, shp);
    if (!x) return NULL;
    for (int k = 0; k < n; k++) nl_tensor_set(&x->val, k, v[k]);
    return x;
}

/* sample an index from log-probabilities lp [1, n] (or use *a), add log p(a) to *acc, record probabilities */
static nl_var *pick(nl_ctx *c, nl_var *lp, int n, nl_rng *rng, int *a, double *probs, nl_var *acc) {
    if (!lp) return NULL;
    if (probs)
        for (int k = 0; k < n; k++) probs[k] = exp(nl_tensor_get(&lp->val, k));
    if (rng) {
        double u = nl_rng_uniform(rng), cum = 0;
        int chosen = n - 1;
        for (int k = 0; k < n; k++) {
            cum += exp(nl_tensor_get(&lp->val, k));
            if (u < cum) {
                chosen = k;
                break;
            }
        }
        *a = chosen;
    }
    if (*a < 0 || *a >= n) {
        nl_set_error(NL_EINVAL, "n2n policy: action %d outside [0, %d)", *a, n);
        return NULL;
    }
    nl_var *term = nl_slice(c, lp, 1, *a, *a + 1, 1); /* [1, 1] */
    return acc ? nl_add(c, acc, term) : term;
}

nl_var *nl_n2n_policy_logprob(nl_ctx *c, nl_n2n_policy *p, int L, const float *feat, const int *mask, nl_rng *rng, int *act,
                              double *probs) {
    if (L < 1 || L > NL_N2N_MAX_LAYERS) {
        nl_set_error(NL_EINVAL, "n2n policy: %d layers outside [1, %d]", L, NL_N2N_MAX_LAYERS);
        return NULL;
    }
    const nl_dtype dt = p->ps.dtype;
    const int nact = p->kind == NL_N2N_REMOVAL ? 2 : NL_N2N_NFACT;
    nl_var *acc = NULL;
    if (p->kind == NL_N2N_REMOVAL) {
        nl_var *xs[NL_N2N_MAX_LAYERS], *h1[NL_N2N_MAX_LAYERS], *h2[NL_N2N_MAX_LAYERS];
        for (int l = 0; l < L; l++)
            if (!(xs[l] = row_var(c, dt, feat + l * NL_N2N_FEAT, NL_N2N_FEAT))) return NULL;
        if (nl_bilstm_run(c, &p->l[0], &p->l[1], L, xs, h1) || nl_bilstm_run(c, &p->l[2], &p->l[3], L, h1, h2)) return NULL;
        for (int l = 0; l < L; l++) {
            if (!mask[l]) {
                if (rng) act[l] = 0;
                continue;
            }
            nl_var *lp = nl_log_softmax(c, nl_linear(c, h2[l], p->W, p->b), 1); /* [1, 2] */
            if (!(acc = pick(c, lp, nact, rng, &act[l], probs ? probs + l * nact : NULL, acc))) return NULL;
        }
    } else {
        /* autoregressive: input = [descriptor, factor of the previous sampled action] (1 before the first) */
        int64_t shp[2] = {1, p->hidden};
        nl_var *h[2], *cs[2];
        for (int k = 0; k < 2; k++) h[k] = cs[k] = nl_zeros(c, dt, 2, shp);
        double prev = 1.0;
        for (int l = 0; l < L; l++) {
            float in[NL_N2N_FEAT + 1];
            memcpy(in, feat + l * NL_N2N_FEAT, sizeof(float) * NL_N2N_FEAT);
            in[NL_N2N_FEAT] = (float)prev;
            nl_var *x = row_var(c, dt, in, NL_N2N_FEAT + 1);
            for (int k = 0; k < 2; k++) {
                nl_var *hc = nl_lstm_cell(c, x, h[k], cs[k], p->l[k].Wx, p->l[k].Wh, p->l[k].b); /* [1, 2H] */
                h[k] = nl_slice(c, hc, 1, 0, p->hidden, 1);
                cs[k] = nl_slice(c, hc, 1, p->hidden, 2 * p->hidden, 1);
                x = h[k];
            }
            if (!x) return NULL;
            if (!mask[l]) {
                if (rng) act[l] = NL_N2N_NFACT - 1;
                prev = 1.0;
                continue;
            }
            nl_var *lp = nl_log_softmax(c, nl_linear(c, x, p->W, p->b), 1); /* [1, NFACT] */
            if (!(acc = pick(c, lp, nact, rng, &act[l], probs ? probs + l * nact : NULL, acc))) return NULL;
            prev = NL_N2N_FACTORS[act[l]];
        }
    }
    if (!acc) return nl_scalar(c, dt, 0.0); /* no free layer: log pi = 0 */
    return nl_sum(c, acc, NL_AXIS_ALL, 0);  /* scalar */
}
