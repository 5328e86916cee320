/* PFN tests: bar distribution values (docs notes), half-normal tails (normalisation, cdf/quantile, gradient),
 * split sampler distribution, permutation invariance and test-token independence of the model, a short training
 * run, checkpoint round trip, bad inputs, GP prior sampler. */
#include <unistd.h>
#include "nltest.h"
#include "gp/gp.h"
#include "pfn/pfn.h"

static const double g_borders[6] = {0, 1, 2, 2.5, 4, 6};
static const double g_probs[5] = {.05, .05, .1, .3, .5};

static void test_bar_values(void) {
    nl_pfn_bar b;
    NLT_OK(nl_pfn_bar_init(&b, 5, g_borders, 0));
    NLT_NEAR(nl_pfn_bar_cdf(&b, g_probs, 1.0), 0.05, 1e-12);
    NLT_NEAR(nl_pfn_bar_cdf(&b, g_probs, 1.5), 0.075, 1e-12);
    NLT_NEAR(nl_pfn_bar_cdf(&b, g_probs, 2.5), 0.2, 1e-12);
    NLT_NEAR(nl_pfn_bar_cdf(&b, g_probs, 0.0), 0.0, 1e-12);
    NLT_NEAR(nl_pfn_bar_cdf(&b, g_probs, 6.0), 1.0, 1e-12);
    NLT_NEAR(-nl_pfn_bar_logpdf(&b, g_probs, 3.0), -log(0.3 / 1.5), 1e-12);
    NLT_NEAR(-nl_pfn_bar_logpdf(&b, g_probs, 3.0), 1.6094379124341003, 1e-12);
    NLT_CHECK(isinf(nl_pfn_bar_logpdf(&b, g_probs, 6.5)), "outside the plain support the density is 0");
    NLT_NEAR(nl_pfn_bar_quantile(&b, g_probs, 0.075), 1.5, 1e-12);
    NLT_NEAR(nl_pfn_bar_quantile(&b, g_probs, 0.2), 2.5, 1e-12);
    NLT_NEAR(nl_pfn_bar_quantile(&b, g_probs, 0.75), 5.0, 1e-12);
    /* mean = sum p_k * midpoint */
    NLT_NEAR(nl_pfn_bar_mean(&b, g_probs), .05 * .5 + .05 * 1.5 + .1 * 2.25 + .3 * 3.25 + .5 * 5, 1e-12);
    NLT_CHECK(nl_pfn_bar_bucket(&b, 2.0) == 2 && nl_pfn_bar_bucket(&b, 1.999) == 1 && nl_pfn_bar_bucket(&b, 6.0) == 4,
              "bucket convention [b_k, b_k+1)");
    nl_pfn_bar_free(&b);
    double bad[3] = {0, 1, 1};
    NLT_CHECK(nl_pfn_bar_init(&b, 2, bad, 1) == NL_EINVAL, "non-increasing borders refused");
}

static void test_norm_ppf(void) {
    NLT_NEAR(nl_pfn_norm_ppf(0.975), 1.959963984540054, 1e-12);
    NLT_NEAR(nl_pfn_norm_ppf(0.75), 0.6744897501960817, 1e-12);
    NLT_NEAR(nl_pfn_norm_ppf(0.5), 0.0, 1e-14);
    NLT_NEAR(nl_pfn_norm_ppf(1e-10), -6.361340902404056, 1e-9);
    NLT_NEAR(nl_pfn_norm_ppf(1 - 1e-10), 6.361340889697422, 1e-6);
}

/* full-support bar: density integrates to 1, cdf = integral of the density, quantile inverts the cdf */
static void test_bar_tails(void) {
    nl_pfn_bar b;
    NLT_OK(nl_pfn_bar_init(&b, 5, g_borders, 1));
    /* middle buckets are unchanged */
    NLT_NEAR(-nl_pfn_bar_logpdf(&b, g_probs, 3.0), 1.6094379124341003, 1e-12);
    NLT_NEAR(nl_pfn_bar_cdf(&b, g_probs, 1.5), 0.075, 1e-12);
    /* half of each tail's mass inside its nominal bucket */
    NLT_NEAR(nl_pfn_bar_cdf(&b, g_probs, 0.0), 0.025, 1e-12);
    NLT_NEAR(1 - nl_pfn_bar_cdf(&b, g_probs, 6.0), 0.25, 1e-12);
    /* integrate the density piecewise between the borders (it jumps there) with 3-point Gauss-Legendre on fine
     * subintervals; compare the running integral with the cdf at every border and the first moment with the mean */
    double brk[8] = {-40, 0, 1, 2, 2.5, 4, 6, 50}, integ = 0, mom = 0, maxerr = 0;
    const double gx[3] = {-0.7745966692414834, 0, 0.7745966692414834}, gw[3] = {5.0 / 9, 8.0 / 9, 5.0 / 9};
    for (int s = 0; s < 7; s++) {
        int N = 4000;
        double h = (brk[s + 1] - brk[s]) / N;
        for (int i = 0; i < N; i++) {
            double mid = brk[s] + (i + 0.5) * h;
            for (int g = 0; g < 3; g++) {
                double y = mid + gx[g] * h / 2, f = exp(nl_pfn_bar_logpdf(&b, g_probs, y)) * gw[g] * h / 2;
                integ += f, mom += y * f;
            }
        }
        double e = fabs(integ - nl_pfn_bar_cdf(&b, g_probs, brk[s + 1]));
        maxerr = e > maxerr ? e : maxerr;
    }
    NLT_NEAR(integ, 1.0, 1e-9);
    NLT_CHECK(maxerr < 1e-9, "cdf differs from the integrated density by %g", maxerr);
    NLT_NEAR(mom, nl_pfn_bar_mean(&b, g_probs), 1e-8);
    const double qs[] = {0.001, 0.01, 0.025, 0.04, 0.1, 0.5, 0.7, 0.8, 0.9, 0.99, 0.9999};
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) NLT_NEAR(nl_pfn_bar_cdf(&b, g_probs, nl_pfn_bar_quantile(&b, g_probs, qs[i])), qs[i], 1e-10);
    /* d cdf / dy = density, by central differences, in the tails and the middle */
    const double ys[] = {-3.0, -0.3, 0.5, 1.7, 3.3, 5.0, 7.5, 12.0};
    for (size_t i = 0; i < sizeof ys / sizeof ys[0]; i++) {
        double e = 1e-5, fd = (nl_pfn_bar_cdf(&b, g_probs, ys[i] + e) - nl_pfn_bar_cdf(&b, g_probs, ys[i] - e)) / (2 * e);
        NLT_NEAR(fd, exp(nl_pfn_bar_logpdf(&b, g_probs, ys[i])), 1e-7);
    }
    nl_pfn_bar_free(&b);
}

/* gradient of the bar NLL w.r.t. the logits (f64, gradcheck), targets in both tails and the middle */
typedef struct {
    const nl_pfn_bar *b;
    const double *y;
} nll_ud;
static nl_var *nll_fn(nl_ctx *c, nl_var **in, void *ud) {
    nll_ud *u = ud;
    return nl_pfn_bar_nll(c, u->b, in[0], u->y);
}

static void test_bar_nll_grad(void) {
    nl_pfn_bar b;
    NLT_OK(nl_pfn_bar_init(&b, 5, g_borders, 1));
    double y[6] = {-2.0, 0.5, 1.2, 3.0, 4.5, 9.0};
    double lg[30];
    nl_rng r;
    nl_rng_init(&r, 7, 0);
    for (int i = 0; i < 30; i++) lg[i] = nl_rng_normal(&r);
    int64_t sh[2] = {6, 5};
    nl_tensor t = nl_tensor_wrap(lg, NL_F64, 2, sh);
    nll_ud u = {&b, y};
    nl_gc_result res;
    NLT_OK(nl_gradcheck(nll_fn, &u, 1, &t, NULL, 1e-6, 1e-8, 1e-6, &res));
    /* value: mean of -logpdf under softmax(logits) */
    nl_ctx *c = nl_ctx_new(1 << 16, 0);
    nl_var *v = nl_pfn_bar_nll(c, &b, nl_input(c, t), y);
    double ref = 0;
    for (int i = 0; i < 6; i++) {
        double p[5], mx = -1e300, s = 0;
        for (int k = 0; k < 5; k++) mx = lg[i * 5 + k] > mx ? lg[i * 5 + k] : mx;
        for (int k = 0; k < 5; k++) s += (p[k] = exp(lg[i * 5 + k] - mx));
        for (int k = 0; k < 5; k++) p[k] /= s;
        ref += -nl_pfn_bar_logpdf(&b, p, y[i]) / 6;
    }
    NLT_CHECK(v != NULL, "%s", nl_last_error());
    if (v) NLT_NEAR(nl_item(v), ref, 1e-10);
    double ynan[6] = {0, 0, NAN, 0, 0, 0};
    NLT_CHECK(nl_pfn_bar_nll(c, &b, nl_input(c, t), ynan) == NULL && nl_last_status() == NL_ENONFINITE, "NaN target refused");
    nl_ctx_free(c);
    nl_pfn_bar_free(&b);
}

/* split sampler: chi-square of 40000 draws against P(n) ∝ 1/(T - n) */
static void test_split_sampler(void) {
    enum { T = 12, N = 40000 };
    double w[T], tot = 0;
    nl_pfn_split_weights(T, w);
    NLT_NEAR(w[0], 1.0 / 12, 1e-15);
    NLT_NEAR(w[T - 1], 1.0, 1e-15);
    for (int i = 0; i < T; i++) tot += w[i];
    long cnt[T] = {0};
    nl_rng r;
    nl_rng_init(&r, 3, 0);
    for (int i = 0; i < N; i++) {
        int64_t n = nl_pfn_sample_split(&r, T);
        NLT_CHECK(n >= 0 && n < T, "split %lld out of range", (long long)n);
        if (n >= 0 && n < T) cnt[n]++;
    }
    double chi2 = 0;
    for (int i = 0; i < T; i++) {
        double e = N * w[i] / tot;
        chi2 += (cnt[i] - e) * (cnt[i] - e) / e;
    }
    /* 11 degrees of freedom: P(chi2 > 31.26) = 0.001 */
    NLT_CHECK(chi2 < 31.26, "chi-square %g with 11 dof", chi2);
    /* expected number of loss terms (T - n test tokens) is the same for every n */
    NLT_NEAR(w[3] * (T - 3), w[9] * (T - 9), 1e-15);
}

/* model with every parameter random (zero-initialised projections would hide the attention) */
static int make_random_model(nl_pfn *m, int dim, int pre_norm) {
    nl_pfn_config c = nl_pfn_config_default();
    c.dim = dim, c.emsize = 16, c.n_layers = 2, c.n_heads = 2, c.d_ff = 24, c.d_dec = 20, c.n_buckets = 10;
    c.pre_norm = pre_norm, c.seq = 12;
    double bd[11];
    for (int i = 0; i <= 10; i++) bd[i] = -2.5 + 0.5 * i;
    if (nl_pfn_init(m, &c, bd, 5)) return 0;
    nl_rng r;
    nl_rng_init(&r, 11, 0);
    float *p = m->ps.data;
    for (int64_t i = 0; i < m->ps.total; i++) p[i] += (float)(0.3 * nl_rng_normal(&r));
    return 1;
}

/* nl_pfn_forward_infer (infer.c: fused q/k/v, masked keys skipped, only the test tokens past the last layer's
 * keys/values) gives nl_pfn_forward's logits: the fast path (widths multiples of 8; 1 and 2 layers, n = 0 where
 * every token is a test token, n = T - 1) and the fallback (pre-LN, odd widths); and nl_pfn_bar_nll_logp of the
 * log-softmax equals -nl_pfn_bar_logpdf of the softmax. */
static void test_forward_infer(void) {
    const int cfgs[4][7] = {/* E, H, layers, d_ff, d_dec, K, pre_norm */
                            {32, 2, 2, 64, 64, 16, 0}, {16, 2, 1, 24, 16, 24, 0}, {16, 2, 2, 24, 20, 10, 1}, {16, 2, 2, 24, 20, 10, 0}};
    const int64_t B = 3, T = 12, d = 2, ns[5] = {0, 1, 3, 7, 11};
    double x[3 * 12 * 2], y[3 * 12];
    nl_rng r;
    nl_rng_init(&r, 3, 0);
    for (int i = 0; i < B * T * d; i++) x[i] = nl_rng_uniform(&r);
    for (int i = 0; i < B * T; i++) y[i] = nl_rng_normal(&r);
    for (int ci = 0; ci < 4; ci++) {
        nl_pfn_config c = nl_pfn_config_default();
        c.dim = (int)d, c.emsize = cfgs[ci][0], c.n_heads = cfgs[ci][1], c.n_layers = cfgs[ci][2], c.d_ff = cfgs[ci][3];
        c.d_dec = cfgs[ci][4], c.n_buckets = cfgs[ci][5], c.pre_norm = cfgs[ci][6], c.seq = (int)T;
        const int K = c.n_buckets;
        double bd[25];
        for (int i = 0; i <= K; i++) bd[i] = -2.5 + 5.0 * i / K;
        nl_pfn m;
        NLT_OK(nl_pfn_init(&m, &c, bd, 5));
        nl_rng_init(&r, 11, 0);
        float *p = m.ps.data;
        for (int64_t i = 0; i < m.ps.total; i++) p[i] += (float)(0.3 * nl_rng_normal(&r));
        nl_ctx *cx = nl_ctx_new((size_t)1 << 20, 0);
        for (int k = 0; k < 5; k++) {
            const int64_t n = ns[k], M = T - n;
            nl_ctx_reset(cx);
            nl_var *a = nl_pfn_forward(&m, cx, x, y, B, T, n), *b = nl_pfn_forward_infer(&m, cx, x, y, B, T, n);
            NLT_CHECK(a && b && b->val.shape[0] == B * M && b->val.shape[1] == K, "config %d n %lld: %s", ci, (long long)n, nl_last_error());
            if (!a || !b) continue;
            double md = 0, mx = 0;
            for (int64_t i = 0; i < B * M * K; i++) {
                double u = ((const float *)a->val.data)[i], v = ((const float *)b->val.data)[i];
                md = fabs(u - v) > md ? fabs(u - v) : md, mx = fabs(u) > mx ? fabs(u) : mx;
            }
            NLT_CHECK(md < 1e-5 * (1 + mx), "config %d n %lld: infer differs from forward by %g (max |logit| %g)", ci, (long long)n, md, mx);
            nl_var *lp = nl_log_softmax(cx, b, -1);
            double pr[25], me = 0;
            for (int64_t j = 0; j < B * M && lp; j++) {
                const float *row = (const float *)b->val.data + j * K;
                double s = 0, mxr = row[0];
                for (int q = 1; q < K; q++) mxr = row[q] > mxr ? row[q] : mxr;
                for (int q = 0; q < K; q++) s += (pr[q] = exp(row[q] - mxr));
                for (int q = 0; q < K; q++) pr[q] /= s;
                double yy = -3 + 6.0 * (double)j / (double)(B * M); /* inside and outside the borders (tails) */
                double e = fabs(nl_pfn_bar_nll_logp(&m.bar, (const float *)lp->val.data + j * K, yy) + nl_pfn_bar_logpdf(&m.bar, pr, yy));
                me = e > me ? e : me;
            }
            NLT_CHECK(lp && me < 1e-5, "config %d n %lld: NLL from the log-softmax differs by %g", ci, (long long)n, me);
        }
        nl_ctx_free(cx);
        nl_pfn_free(&m);
    }
}

static void test_permutation_invariance(void) {
    for (int pre = 0; pre < 2; pre++) {
        nl_pfn m;
        NLT_CHECK(make_random_model(&m, 2, pre), "%s", nl_last_error());
        enum { n = 7, q = 5, d = 2 };
        double xc[n * d], yc[n], xq[q * d], px[n * d], py[n];
        nl_rng r;
        nl_rng_init(&r, 1, 0);
        for (int i = 0; i < n * d; i++) xc[i] = nl_rng_uniform(&r);
        for (int i = 0; i < n; i++) yc[i] = nl_rng_normal(&r);
        for (int i = 0; i < q * d; i++) xq[i] = nl_rng_uniform(&r);
        const int perm[n] = {3, 6, 0, 5, 1, 4, 2};
        for (int i = 0; i < n; i++) {
            py[i] = yc[perm[i]];
            for (int k = 0; k < d; k++) px[i * d + k] = xc[perm[i] * d + k];
        }
        double p1[q * 10], p2[q * 10], p3[q * 10];
        NLT_OK(nl_pfn_predict(&m, xc, yc, n, xq, q, p1));
        NLT_OK(nl_pfn_predict(&m, px, py, n, xq, q, p2));
        double md = 0;
        for (int i = 0; i < q * 10; i++) md = fmax(md, fabs(p1[i] - p2[i]));
        NLT_CHECK(md < 1e-5, "pre_norm %d: permuting the training tokens changed the predictive by %g", pre, md);
        /* the predictive must depend on the context at all */
        py[0] += 1.5;
        NLT_OK(nl_pfn_predict(&m, px, py, n, xq, q, p3));
        double dd = 0;
        for (int i = 0; i < q * 10; i++) dd = fmax(dd, fabs(p1[i] - p3[i]));
        NLT_CHECK(dd > 1e-3, "pre_norm %d: changing a context y did not change the predictive (%g)", pre, dd);
        /* change test x number 2: the other test outputs are unchanged, test 2 changes */
        double xq2[q * d];
        memcpy(xq2, xq, sizeof xq);
        xq2[2 * d] += 0.37;
        NLT_OK(nl_pfn_predict(&m, xc, yc, n, xq2, q, p3));
        double other = 0, self = 0;
        for (int j = 0; j < q; j++)
            for (int k = 0; k < 10; k++) {
                double e = fabs(p1[j * 10 + k] - p3[j * 10 + k]);
                if (j == 2) self = fmax(self, e);
                else other = fmax(other, e);
            }
        NLT_CHECK(other < 1e-6, "pre_norm %d: other test outputs changed by %g", pre, other);
        NLT_CHECK(self > 1e-4, "pre_norm %d: the changed test output did not change (%g)", pre, self);
        /* one query at a time gives the same as all queries together */
        double p4[10];
        NLT_OK(nl_pfn_predict(&m, xc, yc, n, xq + 3 * d, 1, p4));
        double sd = 0;
        for (int k = 0; k < 10; k++) sd = fmax(sd, fabs(p4[k] - p1[30 + k]));
        NLT_CHECK(sd < 1e-5, "pre_norm %d: single-query prediction differs by %g", pre, sd);
        /* n = 0 (prior predictive) works */
        NLT_OK(nl_pfn_predict(&m, NULL, NULL, 0, xq, q, p3));
        nl_pfn_free(&m);
    }
}

/* toy prior: y = a + b x_1 + 0.1 eps, a, b ~ N(0, 1), x ~ U[0,1]^dim */
static nl_status toy_sample(const nl_pfn_prior *p, nl_rng *r, int64_t B, int64_t T, double *x, double *y, void *ho) {
    (void)ho;
    for (int64_t b = 0; b < B; b++) {
        double a = nl_rng_normal(r), s = nl_rng_normal(r);
        for (int64_t t = 0; t < T; t++) {
            for (int k = 0; k < p->dim; k++) x[(b * T + t) * p->dim + k] = nl_rng_uniform(r);
            y[b * T + t] = a + s * x[(b * T + t) * p->dim] + 0.1 * nl_rng_normal(r);
        }
    }
    return NL_OK;
}

static void test_train_and_checkpoint(void) {
    nl_pfn_prior pr = {.name = "toy-linear", .desc = "y = a + b x + 0.1 eps", .dim = 1, .sample = toy_sample};
    nl_pfn_config c = nl_pfn_config_default();
    c.emsize = 32, c.n_layers = 2, c.n_heads = 4, c.d_ff = 64, c.d_dec = 64, c.n_buckets = 30, c.seq = 20;
    nl_pfn_train_config tc = nl_pfn_train_defaults();
    tc.steps = 150, tc.batch = 16, tc.lr = 3e-3, tc.border_datasets = 200, tc.seed = 2;
    nl_pfn m;
    nl_pfn_train_stats st;
    NLT_OK(nl_pfn_fit(&m, &c, &pr, &tc, &st));
    NLT_CHECK(st.steps == 150, "steps %lld", (long long)st.steps);
    NLT_CHECK(st.last_loss < st.first_loss - 0.5, "loss %g -> %g", st.first_loss, st.last_loss);
    printf("  toy training: loss %.3f -> %.3f in %.2fs\n", st.first_loss, st.last_loss, st.seconds);
    nl_pfn_train_stats_free(&st);
    /* trained model: with 15 context points on a line the 90% interval must contain the true function value */
    double xc[15], yc[15], xq[3] = {0.1, 0.5, 0.9}, pr3[3 * 30];
    for (int i = 0; i < 15; i++) xc[i] = (i + 0.5) / 15, yc[i] = 0.3 - 0.8 * xc[i];
    NLT_OK(nl_pfn_predict(&m, xc, yc, 15, xq, 3, pr3));
    for (int j = 0; j < 3; j++) {
        nl_pfn_summary s;
        nl_pfn_summarize(&m, pr3 + 30 * j, &s);
        double f = 0.3 - 0.8 * xq[j];
        NLT_CHECK(s.q05 < f && f < s.q95 && s.q95 - s.q05 < 1.5, "query %d: f %.3f, interval [%.3f, %.3f], mean %.3f", j, f, s.q05,
                  s.q95, s.mean);
        NLT_CHECK(s.q05 <= s.median && s.median <= s.q95, "quantiles ordered");
    }
    /* checkpoint round trip: identical predictions, config and borders */
    char path[] = "/tmp/test_pfn_XXXXXX";
    int fd = mkstemp(path);
    NLT_CHECK(fd >= 0, "mkstemp");
    close(fd);
    NLT_OK(nl_pfn_save(&m, path));
    nl_pfn m2;
    NLT_OK(nl_pfn_load(&m2, path));
    NLT_CHECK(m2.cfg.emsize == 32 && m2.cfg.n_buckets == 30 && m2.cfg.seq == 20 && m2.steps_trained == 150, "config restored");
    NLT_CHECK(!strcmp(m2.prior_name, "toy-linear"), "prior name restored: %s", m2.prior_name);
    NLT_CHECK(!memcmp(m.bar.borders, m2.bar.borders, 31 * sizeof(double)), "borders restored exactly");
    NLT_CHECK(m.ps.total == m2.ps.total && !memcmp(m.ps.data, m2.ps.data, (size_t)m.ps.total * sizeof(float)), "parameters restored");
    double pr4[3 * 30];
    NLT_OK(nl_pfn_predict(&m2, xc, yc, 15, xq, 3, pr4));
    NLT_CHECK(!memcmp(pr3, pr4, sizeof pr3), "predictions identical after reload");
    /* a checkpoint that is not a PFN */
    nl_params ps;
    NLT_OK(nl_params_init(&ps, NL_F32));
    int64_t sh[1] = {3};
    nl_params_add(&ps, "w", 1, sh);
    NLT_OK(nl_safetensors_save(path, &ps, "{\"nnlab.model\": \"mlp\"}"));
    nl_pfn m3;
    NLT_CHECK(nl_pfn_load(&m3, path) == NL_EFORMAT && strstr(nl_last_error(), "not a PFN checkpoint"), "non-PFN: %s", nl_last_error());
    NLT_OK(nl_safetensors_save(path, &ps, NULL));
    NLT_CHECK(nl_pfn_load(&m3, path) == NL_EFORMAT && strstr(nl_last_error(), "not a PFN checkpoint"), "no metadata: %s", nl_last_error());
    nl_params_free(&ps);
    /* a file that is not safetensors at all */
    FILE *f = fopen(path, "w");
    fputs("hello\n", f);
    fclose(f);
    NLT_CHECK(nl_pfn_load(&m3, path) != NL_OK, "garbage file refused");
    NLT_CHECK(nl_pfn_load(&m3, "/nonexistent/x.safetensors") != NL_OK && strstr(nl_last_error(), "/nonexistent/x.safetensors"),
              "missing file: %s", nl_last_error());
    /* bad inputs to predict: NaN */
    double xbad[1] = {NAN};
    NLT_CHECK(nl_pfn_predict(&m, xc, yc, 15, xbad, 1, pr4) == NL_ENONFINITE, "NaN query refused");
    yc[3] = INFINITY;
    NLT_CHECK(nl_pfn_predict(&m, xc, yc, 15, xq, 1, pr4) == NL_ENONFINITE, "Inf context refused");
    /* CSV inputs: wrong column count, NaN, query dimension mismatch */
    int64_t n;
    double *x, *y;
    int hy;
    f = fopen(path, "w");
    fputs("x,y\n0.1,1\n0.2,2\n", f);
    fclose(f);
    NLT_OK(nl_pfn_read_points(path, 1, 1, &n, &x, &y, &hy));
    NLT_CHECK(n == 2 && hy && x[1] == 0.2 && y[1] == 2, "context CSV read");
    free(x), free(y);
    NLT_CHECK(nl_pfn_read_points(path, 2, 1, &n, &x, &y, &hy) == NL_EFORMAT && strstr(nl_last_error(), "columns"),
              "context with too few columns: %s", nl_last_error());
    NLT_CHECK(nl_pfn_read_points(path, 3, 0, &n, &x, &y, &hy) == NL_EFORMAT, "query dimension mismatch: %s", nl_last_error());
    NLT_OK(nl_pfn_read_points(path, 2, 0, &n, &x, &y, &hy));
    NLT_CHECK(n == 2 && !hy && !y, "query without y");
    free(x);
    f = fopen(path, "w");
    fputs("0.1,1\n0.2,nan\n", f);
    fclose(f);
    NLT_CHECK(nl_pfn_read_points(path, 1, 1, &n, &x, &y, &hy) != NL_OK, "NaN in CSV refused: %s", nl_last_error());
    f = fopen(path, "w");
    fputs("0.1,1\n0.2\n", f);
    fclose(f);
    NLT_CHECK(nl_pfn_read_points(path, 1, 1, &n, &x, &y, &hy) != NL_OK, "ragged CSV refused: %s", nl_last_error());
    unlink(path);
    nl_pfn_free(&m2);
    nl_pfn_free(&m);
}

/* GP priors: shapes, x in [0,1]^d, marginal variance of y = outputscale + noise */
static void test_gp_prior(void) {
    nl_pfn_prior p;
    NLT_OK(nl_pfn_prior_gp(&p, "rbf", 2, 0.6, 1.0, 0.01));
    NLT_CHECK(!strcmp(p.name, "gp-rbf") && p.dim == 2, "name %s", p.name);
    enum { B = 400, T = 10 };
    static double x[B * T * 2], y[B * T];
    nl_rng r;
    nl_rng_init(&r, 9, 0);
    NLT_OK(p.sample(&p, &r, B, T, x, y, NULL));
    int inside = 1;
    double v = 0;
    for (int i = 0; i < B * T * 2; i++) inside &= x[i] >= 0 && x[i] < 1;
    for (int i = 0; i < B * T; i++) v += y[i] * y[i] / (B * T);
    NLT_CHECK(inside, "x in [0,1)");
    NLT_CHECK(fabs(v - 1.01) < 0.12, "E y^2 = %g, expected 1.01", v);
    nl_pfn_prior_free(&p);
    NLT_OK(nl_pfn_prior_gp_hyper(&p, 1));
    nl_gpr_hyper hs[4];
    NLT_OK(p.sample(&p, &r, 4, T, x, y, hs));
    NLT_CHECK(hs[0].kernel == NL_GPR_MATERN52 && hs[0].lengthscale[0] != hs[1].lengthscale[0], "hyperparameters per dataset");
    nl_pfn_prior_free(&p);
    NLT_CHECK(nl_pfn_prior_by_name(&p, "gp-foo", 1, 1, 1, 1) == NL_EINVAL, "unknown prior refused");
    NLT_CHECK(nl_pfn_prior_gp(&p, "rbf", 1, -1, 1, 0.1) == NL_EINVAL, "negative lengthscale refused");
}

int main(void) {
    nl_set_num_threads(1);
    NLT_RUN(test_bar_values);
    NLT_RUN(test_norm_ppf);
    NLT_RUN(test_bar_tails);
    NLT_RUN(test_bar_nll_grad);
    NLT_RUN(test_split_sampler);
    NLT_RUN(test_forward_infer);
    NLT_RUN(test_permutation_invariance);
    NLT_RUN(test_train_and_checkpoint);
    NLT_RUN(test_gp_prior);
    return nlt_finish();
}
