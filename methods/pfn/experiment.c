/* PFN evaluation against GP baselines (exact GP with the true hyperparameters, MLE-II / MAP, MCMC; gpreg.h): mean
 * NLL per held-out point vs the number of context points (pfn.h, methods/pfn/README.md). The ledger entry `pfn` is
 * ledger_entry.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "gp/gp.h"
#include "nnlab/ledger.h"
#include "nnlab/nn.h"
#include "pfn/pfn.h"

nl_status nl_pfn_prior_of_model(const nl_pfn *m, nl_pfn_prior *p) {
    if (!strcmp(m->prior_name, "gp-hyper")) return nl_pfn_prior_gp_hyper(p, m->cfg.dim);
    if (!strcmp(m->prior_name, "gp-rbf") || !strcmp(m->prior_name, "gp-matern"))
        return nl_pfn_prior_by_name(p, m->prior_name, m->cfg.dim, m->prior_ls, m->prior_os, m->prior_noise);
    memset(p, 0, sizeof *p);
    return nl_set_error(NL_EINVAL, "pfn: the model was trained on prior '%s', which cannot be re-created for evaluation",
                        m->prior_name);
}

double nl_pfn_cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define EVAL_CHUNK 64

nl_status nl_pfn_eval(nl_pfn *m, const nl_pfn_prior *p, const nl_pfn_eval_config *ec, nl_pfn_eval_result *r) {
    memset(r, 0, sizeof *r);
    if (p->dim != m->cfg.dim) return nl_set_error(NL_EINVAL, "pfn eval: prior dim %d differs from the model's %d", p->dim, m->cfg.dim);
    if (ec->n_ns < 1 || ec->n_ns > NL_PFN_EVAL_MAX_NS || ec->datasets < 2 || ec->queries < 1)
        return nl_set_error(NL_EINVAL, "pfn eval: need 1..%d context sizes, >= 2 datasets and >= 1 query", NL_PFN_EVAL_MAX_NS);
    const nl_gpr_hyperprior *hp = ec->hyperprior ? ec->hyperprior : nl_pfn_prior_gp_hyperprior_of(p);
    if (!hp && !nl_pfn_prior_gp_hyper_of(p)) return nl_set_error(NL_EINVAL, "pfn eval: the prior '%s' is not a GP prior", p->name);
    if ((ec->baselines & NL_PFN_BASE_MCMC) && !hp)
        return nl_set_error(NL_EINVAL, "pfn eval: MCMC needs a hyperprior (prior gp-hyper, or ec->hyperprior)");
    int64_t d = p->dim, K = m->cfg.n_buckets, B = ec->datasets, Q = ec->queries;
    int nmax = 0;
    for (int i = 0; i < ec->n_ns; i++) {
        if (ec->ns[i] < 0 || ec->ns[i] > 100000) return nl_set_error(NL_EINVAL, "pfn eval: bad context size %d", ec->ns[i]);
        nmax = ec->ns[i] > nmax ? ec->ns[i] : nmax;
    }
    int64_t Tmax = nmax + Q;
    double *x = malloc((size_t)(B * Tmax * d) * sizeof *x), *y = malloc((size_t)(B * Tmax) * sizeof *y);
    double *buf = malloc((size_t)(4 * Q) * sizeof *buf);
    double *pfn_nll = malloc((size_t)(B * Q) * sizeof *pfn_nll), *dd = malloc((size_t)(2 * B) * sizeof *dd);
    nl_gpr_hyper *hy = malloc((size_t)B * sizeof *hy);
    nl_ctx *c = nl_ctx_new((size_t)8 << 20, 0);
    nl_status st = NL_OK;
    if (!x || !y || !buf || !pfn_nll || !dd || !hy || !c) {
        st = nl_set_error(NL_ENOMEM, "pfn eval: out of memory");
        goto done;
    }
    nl_set_grad_enabled(c, 0);
    double *mean = buf, *var = buf + Q, *nll = buf + 2 * Q, *xq = NULL;
    (void)xq;
    r->n_ns = ec->n_ns;
    int mcmc_b = ec->mcmc_datasets > 0 && ec->mcmc_datasets < B ? ec->mcmc_datasets : (int)B;
    int mle_b = ec->mle_datasets > 0 && ec->mle_datasets < B ? ec->mle_datasets : (int)B;
    r->mle_b = mle_b, r->mcmc_b = mcmc_b;
    for (int i = 0; i < ec->n_ns; i++) {
        int64_t n = ec->ns[i], T = n + Q;
        r->ns[i] = (int)n;
        nl_rng rg;
        nl_rng_init(&rg, ec->seed, NL_PFN_STREAM_EVAL + (uint64_t)n);
        if ((st = p->sample(p, &rg, B, T, x, y, hy))) goto done;
        /* PFN: datasets in chunks, one forward each */
        double t0 = nl_pfn_cpu_seconds();
        for (int64_t b0 = 0; b0 < B; b0 += EVAL_CHUNK) {
            int64_t nb = B - b0 < EVAL_CHUNK ? B - b0 : EVAL_CHUNK;
            nl_ctx_reset(c);
            nl_var *lg = nl_pfn_forward_infer(m, c, x + b0 * T * d, y + b0 * T, nb, T, n);
            if (lg) lg = nl_log_softmax(c, lg, -1); /* [nb * Q, K] log bucket probabilities (vectorised engine op) */
            if (!lg) {
                st = nl_last_status();
                goto done;
            }
            for (int64_t b = 0; b < nb; b++)
                for (int64_t j = 0; j < Q; j++)
                    pfn_nll[(b0 + b) * Q + j] =
                        nl_pfn_bar_nll_logp(&m->bar, (const float *)lg->val.data + (b * Q + j) * K, y[(b0 + b) * T + n + j]);
        }
        r->pfn_sec[i] = nl_pfn_cpu_seconds() - t0;
        r->pfn_seconds += r->pfn_sec[i];
        double sp = 0, sx = 0, sm = 0, smc = 0, spm = 0;
        for (int64_t b = 0; b < B; b++) {
            double pb = 0;
            for (int64_t j = 0; j < Q; j++) pb += pfn_nll[b * Q + j] / (double)Q;
            sp += pb;
            if (ec->pfn_nll_out) ec->pfn_nll_out[(int64_t)i * B + b] = pb;
            const double *xb = x + b * T * d, *yb = y + b * T;
            if (ec->baselines & NL_PFN_BASE_EXACT) {
                t0 = nl_pfn_cpu_seconds();
                if ((st = nl_gpr_predict(&hy[b], xb, yb, n, xb + n * d, Q, mean, var, yb + n, nll))) goto done;
                r->exact_seconds += nl_pfn_cpu_seconds() - t0;
                double eb = 0;
                for (int64_t j = 0; j < Q; j++) eb += nll[j] / (double)Q;
                sx += eb;
                dd[b] = pb - eb;
                if (ec->exact_nll_out) ec->exact_nll_out[(int64_t)i * B + b] = eb;
            }
            if ((ec->baselines & NL_PFN_BASE_MLE) && n > 0 && b < mle_b) {
                t0 = nl_pfn_cpu_seconds();
                nl_gpr_hyper h = hy[b];
                nl_rng rm;
                nl_rng_init(&rm, ec->seed + 1, NL_PFN_STREAM_EVAL + (uint64_t)(n * 100003 + b));
                if ((st = nl_gpr_fit_mle(hp, xb, yb, n, ec->mle_restarts, ec->mle_iters, &rm, &h))) goto done;
                if ((st = nl_gpr_predict(&h, xb, yb, n, xb + n * d, Q, mean, var, yb + n, nll))) goto done;
                r->mle_sec[i] += nl_pfn_cpu_seconds() - t0;
                double mb = 0;
                for (int64_t j = 0; j < Q; j++) mb += nll[j] / (double)Q;
                sm += mb;
                if (ec->mle_nll_out) ec->mle_nll_out[(int64_t)i * B + b] = mb;
            }
            if ((ec->baselines & NL_PFN_BASE_MCMC) && b < mcmc_b) {
                t0 = nl_pfn_cpu_seconds();
                nl_rng rm;
                nl_rng_init(&rm, ec->seed + 2, NL_PFN_STREAM_EVAL + (uint64_t)(n * 100003 + b));
                if ((st = nl_gpr_mcmc_predict(hp, xb, yb, n, xb + n * d, Q, ec->mcmc_warmup, ec->mcmc_samples, &rm, mean, var, yb + n,
                                              nll)))
                    goto done;
                r->mcmc_sec[i] += nl_pfn_cpu_seconds() - t0;
                double cb = 0;
                for (int64_t j = 0; j < Q; j++) cb += nll[j] / (double)Q;
                smc += cb;
                if (ec->mcmc_nll_out) ec->mcmc_nll_out[(int64_t)i * B + b] = cb;
                spm += pb;
                dd[B + b] = pb - cb;
            }
        }
        r->pfn[i] = sp / (double)B;
        r->exact[i] = (ec->baselines & NL_PFN_BASE_EXACT) ? sx / (double)B : NAN;
        r->mle[i] = (ec->baselines & NL_PFN_BASE_MLE) && n > 0 ? sm / (double)mle_b : NAN;
        r->mle_seconds += r->mle_sec[i], r->mcmc_seconds += r->mcmc_sec[i];
        r->mcmc[i] = (ec->baselines & NL_PFN_BASE_MCMC) ? smc / (double)mcmc_b : NAN;
        r->pfn_on_mcmc[i] = (ec->baselines & NL_PFN_BASE_MCMC) ? spm / (double)mcmc_b : NAN;
        r->diff_se[i] = NAN;
        if (ec->baselines & NL_PFN_BASE_EXACT) {
            double md = (r->pfn[i] - r->exact[i]), v = 0;
            for (int64_t b = 0; b < B; b++) v += (dd[b] - md) * (dd[b] - md) / (double)(B - 1);
            r->diff_se[i] = sqrt(v / (double)B);
        }
        r->mcmc_diff_se[i] = NAN;
        if ((ec->baselines & NL_PFN_BASE_MCMC) && mcmc_b > 1) {
            double md = r->pfn_on_mcmc[i] - r->mcmc[i], v = 0;
            for (int64_t b = 0; b < mcmc_b; b++) v += (dd[B + b] - md) * (dd[B + b] - md) / (double)(mcmc_b - 1);
            r->mcmc_diff_se[i] = sqrt(v / (double)mcmc_b);
        }
        if (ec->verbose)
            nl_progress("pfn eval n=%3lld: PFN %.4f  exact %.4f (diff %+.4f +- %.4f)  MLE %.4f  MCMC %.4f (PFN on MCMC subset %.4f)",
                    (long long)n, r->pfn[i], r->exact[i], r->pfn[i] - r->exact[i], r->diff_se[i], r->mle[i], r->mcmc[i],
                    r->pfn_on_mcmc[i]);
    }
done:
    free(x), free(y), free(buf), free(pfn_nll), free(dd), free(hy);
    if (c) nl_ctx_free(c);
    return st;
}
