/* bench/pfn_bench.c — PFN posterior predictive vs MLE-II and MCMC under the BoTorch GP hyperprior (methods/pfn/README.md).
 *
 * For each test task (a GP drawn from the Matern-5/2 hyperprior, d = 1): n context points (n in --ns, default
 * 5,10,20,30) and --queries held-out points (default 1000) of the same function. Times, per task:
 *   PFN   one forward pass (nl_pfn_predict) for all queries + the NLL of each query,
 *   MLE   nl_gpr_fit_mle (MAP under the hyperprior, --restarts, --iters) + nl_gpr_predict,
 *   MCMC  nl_gpr_mcmc_predict (slice sampling, --warmup + --samples sweeps; the paper's NUTS used 32 or 256),
 * and prints each method's total time and mean NLL per query, and the speed-ups MLE/PFN and MCMC/PFN.
 * The paper (Sec. 5.2) reports > 200x vs MLE-II and 1,000x-8,000x vs NUTS at comparable NLL (GPU PFN, CPU
 * baselines: GPyTorch/BoTorch MLE-II in Python). The paper's comparison class is a Python GP library, so the same
 * tasks are also written to a temporary CSV and fitted by scikit-learn's GaussianProcessRegressor (MLE-II,
 * ConstantKernel * Matern-5/2 + WhiteKernel, --sk-restarts starts; bench/pfn_sklearn.py, /usr/bin/python3 with the
 * same thread count), run right after in the same CPU; its time per task and NLL are printed beside, with the
 * ratios sklearn/PFN and sklearn/nnlab-MLE. --no-sklearn skips it. No timing is asserted.
 *
 * The PFN: --load FILE (a gp-hyper PFN, e.g. from `nnlab pfn train --prior gp-hyper` or the full ledger run), or
 * trained here with --steps (default 1500) steps of a small model (E 64, 4 layers). */
#include <math.h>
#include "bench_util.h"
#include "gp/gp.h"
#include "pfn/pfn.h"

/* CPU seconds of this process (all threads): the clock of every timing here, so that a loaded shared machine does
 * not skew the ratios (bench/pfn_sklearn.py uses time.process_time, the same clock). */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void usage(void) {
    fprintf(stderr,
            "usage: bench_pfn_bench [--load FILE | --steps S] [--tasks-per-n N] [--queries Q] [--ns LIST] [--warmup W]\n"
            "                       [--samples S] [--restarts R] [--iters I] [--threads T] [--seed S] [--sk-restarts R]\n"
            "                       [--no-sklearn]\n");
}

int main(int argc, char **argv) {
    /* OpenMP workers must sleep between loops (docs/architecture.md): re-run once with OMP_WAIT_POLICY=passive */
    if (!getenv("OMP_WAIT_POLICY")) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        execv("/proc/self/exe", argv);
    }
    const char *load = NULL;
    int steps = 1500, per_n = 5, queries = 1000, warmup = 32, samples = 32, restarts = 1, iters = 100, threads = 1;
    int sk_restarts = 1, sklearn = 1;
    uint64_t seed = 7;
    int ns[16] = {5, 10, 20, 30}, n_ns = 4;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage();
            return 0;
        }
        if (!strcmp(a, "--no-sklearn")) {
            sklearn = 0;
            continue;
        }
        if (!v) {
            usage();
            return 2;
        }
        if (!strcmp(a, "--load")) load = v;
        else if (!strcmp(a, "--steps")) steps = atoi(v);
        else if (!strcmp(a, "--tasks-per-n")) per_n = atoi(v);
        else if (!strcmp(a, "--queries")) queries = atoi(v);
        else if (!strcmp(a, "--warmup")) warmup = atoi(v);
        else if (!strcmp(a, "--samples")) samples = atoi(v);
        else if (!strcmp(a, "--restarts")) restarts = atoi(v);
        else if (!strcmp(a, "--iters")) iters = atoi(v);
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--sk-restarts")) sk_restarts = atoi(v);
        else if (!strcmp(a, "--seed")) seed = (uint64_t)atoll(v);
        else if (!strcmp(a, "--ns")) {
            n_ns = 0;
            for (char *s = (char *)v; *s && n_ns < 16;) {
                ns[n_ns++] = (int)strtol(s, &s, 10);
                if (*s == ',') s++;
                else break;
            }
        } else {
            usage();
            return 2;
        }
        i++;
    }
    if (per_n < 1 || queries < 1 || steps < 0 || warmup < 0 || samples < 1 || restarts < 1 || iters < 1 || threads < 1 || sk_restarts < 1) {
        usage();
        return 2;
    }
    nlb_set_threads(threads);
    nl_pfn m;
    nl_pfn_prior p;
    if (nl_pfn_prior_gp_hyper(&p, 1)) {
        fprintf(stderr, "%s\n", nl_last_error());
        return 1;
    }
    if (load) {
        if (nl_pfn_load(&m, load)) {
            fprintf(stderr, "%s\n", nl_last_error());
            return 1;
        }
        if (strcmp(m.prior_name, "gp-hyper") || m.cfg.dim != 1) {
            fprintf(stderr, "%s: trained on prior '%s' with dim %d, this benchmark needs a gp-hyper PFN with dim 1\n", load, m.prior_name,
                    m.cfg.dim);
            return 1;
        }
        printf("PFN: %s (%lld parameters, %lld training steps)\n", load, (long long)nl_pfn_num_params(&m), (long long)m.steps_trained);
    } else {
        nl_pfn_config c = nl_pfn_config_default();
        nl_pfn_train_config tc = nl_pfn_train_defaults();
        tc.steps = steps;
        nl_pfn_train_stats ts;
        if (nl_pfn_fit(&m, &c, &p, &tc, &ts)) {
            fprintf(stderr, "%s\n", nl_last_error());
            return 1;
        }
        printf("PFN trained here: %lld steps x 32 datasets of 50 points in %.1f s (loss %.3f -> %.3f), %lld parameters\n",
               (long long)ts.steps, ts.seconds, ts.first_loss, ts.last_loss, (long long)nl_pfn_num_params(&m));
        nl_pfn_train_stats_free(&ts);
    }
    const nl_gpr_hyperprior *hp = nl_pfn_prior_gp_hyperprior_of(&p);
    printf("prior: %s\n", p.desc);
    printf("threads %d, load average %.2f; %d tasks per n, %d queries per task; MLE: %d restart(s), <= %d L-BFGS iterations; "
           "MCMC: %d warm-up + %d sample sweeps\n",
           threads, nlb_loadavg(), per_n, queries, restarts, iters, warmup, samples);
    int K = m.cfg.n_buckets, nmax = 0;
    for (int i = 0; i < n_ns; i++) nmax = ns[i] > nmax ? ns[i] : nmax;
    int64_t Tm = nmax + queries;
    double *x = malloc((size_t)Tm * sizeof *x), *y = malloc((size_t)Tm * sizeof *y);
    double *probs = malloc((size_t)queries * K * sizeof *probs);
    double *mean = malloc((size_t)queries * sizeof *mean), *var = malloc((size_t)queries * sizeof *var);
    double *nll = malloc((size_t)queries * sizeof *nll);
    if (!x || !y || !probs || !mean || !var || !nll) return 1;
    printf("\n%4s  %10s %8s  %10s %8s  %10s %8s  %9s %9s\n", "n", "PFN s", "NLL", "MLE s", "NLL", "MCMC s", "NLL", "MLE/PFN", "MCMC/PFN");
    double T[3] = {0}, L[3] = {0}, Tp[16] = {0}, Tml[16] = {0};
    int tasks = 0;
    char tpath[] = "/tmp/pfn_bench_tasks_XXXXXX";
    int tfd = sklearn ? mkstemp(tpath) : -1;
    FILE *tf = tfd >= 0 ? fdopen(tfd, "w") : NULL;
    if (sklearn && !tf) fprintf(stderr, "sklearn side skipped: cannot create a temporary file\n");
    for (int i = 0; i < n_ns; i++) {
        int n = ns[i];
        double t[3] = {0}, l[3] = {0};
        for (int k = 0; k < per_n; k++) {
            nl_rng r;
            nl_rng_init(&r, seed, (uint64_t)(n * 1000 + k));
            nl_gpr_hyper h;
            int64_t TT = n + queries;
            if (p.sample(&p, &r, 1, TT, x, y, &h)) {
                fprintf(stderr, "%s\n", nl_last_error());
                return 1;
            }
            const double *xq = x + n, *yq = y + n;
            for (int j = 0; tf && j < TT; j++) fprintf(tf, "%d,%d,%d,%.17g,%.17g\n", tasks + k, n, j >= n, x[j], y[j]);
            /* PFN */
            double t0 = cpu_now();
            if (nl_pfn_predict(&m, x, y, n, xq, queries, probs)) {
                fprintf(stderr, "%s\n", nl_last_error());
                return 1;
            }
            double s = 0;
            for (int j = 0; j < queries; j++) s += nl_pfn_nll(&m, probs + (int64_t)j * K, yq[j]);
            t[0] += cpu_now() - t0;
            l[0] += s / queries;
            /* MLE-II (MAP under the hyperprior, as BoTorch's fit) */
            t0 = cpu_now();
            nl_gpr_hyper hm = h;
            nl_rng rm;
            nl_rng_init(&rm, seed + 1, (uint64_t)(n * 1000 + k));
            if (nl_gpr_fit_mle(hp, x, y, n, restarts, iters, &rm, &hm) ||
                nl_gpr_predict(&hm, x, y, n, xq, queries, mean, var, yq, nll)) {
                fprintf(stderr, "%s\n", nl_last_error());
                return 1;
            }
            s = 0;
            for (int j = 0; j < queries; j++) s += nll[j];
            t[1] += cpu_now() - t0;
            l[1] += s / queries;
            /* MCMC */
            t0 = cpu_now();
            if (nl_gpr_mcmc_predict(hp, x, y, n, xq, queries, warmup, samples, &rm, mean, var, yq, nll)) {
                fprintf(stderr, "%s\n", nl_last_error());
                return 1;
            }
            s = 0;
            for (int j = 0; j < queries; j++) s += nll[j];
            t[2] += cpu_now() - t0;
            l[2] += s / queries;
        }
        printf("%4d  %10.4f %8.4f  %10.4f %8.4f  %10.4f %8.4f  %9.3g %9.3g\n", n, t[0] / per_n, l[0] / per_n, t[1] / per_n, l[1] / per_n,
               t[2] / per_n, l[2] / per_n, t[1] / t[0], t[2] / t[0]);
        for (int j = 0; j < 3; j++) T[j] += t[j], L[j] += l[j];
        Tp[i] = t[0] / per_n, Tml[i] = t[1] / per_n;
        tasks += per_n;
    }
    printf("%4s  %10.4f %8.4f  %10.4f %8.4f  %10.4f %8.4f  %9.3g %9.3g\n", "all", T[0] / tasks, L[0] / tasks, T[1] / tasks, L[1] / tasks,
           T[2] / tasks, L[2] / tasks, T[1] / T[0], T[2] / T[0]);
    printf("\n(CPU seconds of the process per task: posterior predictive for %d queries; NLL = mean per query)\n", queries);
    printf("speed-up of the PFN (time of the baseline / time of the PFN; < 1 means the PFN is slower): %.3gx vs MLE-II, %.3gx vs "
           "MCMC (%d+%d sweeps)\n",
           T[1] / T[0], T[2] / T[0], warmup, samples);
    printf("mean NLL per query: PFN %.4f, MLE-II %.4f, MCMC %.4f\n", L[0] / tasks, L[1] / tasks, L[2] / tasks);
    if (tf) { /* the paper's comparison class: MLE-II in a Python GP library, on the same tasks and CPU */
        fclose(tf);
        char script[1024], cmd[2048], line[1024];
        if (!nlb_find_script("pfn_sklearn.py", script, sizeof script)) {
            fprintf(stderr, "sklearn side skipped: bench/pfn_sklearn.py not found (set NL_SOURCE_DIR to the source tree)\n");
        } else {
            snprintf(cmd, sizeof cmd,
                     "OMP_NUM_THREADS=%d OPENBLAS_NUM_THREADS=%d MKL_NUM_THREADS=%d /usr/bin/python3 '%s' --tasks '%s' --restarts %d 2>&1",
                     threads, threads, threads, script, tpath, sk_restarts);
            FILE *pp = popen(cmd, "r");
            printf("\nscikit-learn GaussianProcessRegressor, MLE-II (Matern-5/2 * constant + white noise, %d start(s)), same tasks, %d thread(s):\n",
                   sk_restarts, threads);
            printf("%4s  %10s  %12s  %12s %8s  %11s %13s\n", "n", "PFN s", "nnlab MLE s", "sklearn s", "NLL", "sklearn/PFN", "sklearn/nnlab");
            while (pp && fgets(line, sizeof line, pp)) {
                const char *q = strstr(line, "SKLEARN_GP n="), *ts = q ? strstr(q, "seconds_per_task=") : NULL;
                const char *ln = q ? strstr(q, "nll=") : NULL;
                if (!q || !ts || !ln) {
                    fputs(line, stdout);
                    continue;
                }
                double sk = atof(ts + 17), pf = NAN, ml = NAN;
                int nn = atoi(q + 13), all = !strncmp(q + 13, "all", 3);
                for (int i = 0; i < n_ns; i++)
                    if (ns[i] == nn) pf = Tp[i], ml = Tml[i];
                if (all) pf = T[0] / tasks, ml = T[1] / tasks;
                if (all) printf("%4s", "all");
                else printf("%4d", nn);
                printf("  %10.4f  %12.4f  %12.4f %8.4f  %11.3g %13.3g\n", pf, ml, sk, atof(ln + 4), sk / pf, sk / ml);
            }
            if (pp && pclose(pp) != 0) fprintf(stderr, "sklearn side exited with an error\n");
        }
        unlink(tpath);
    }
    free(x), free(y), free(probs), free(mean), free(var), free(nll);
    nl_pfn_free(&m);
    nl_pfn_prior_free(&p);
    return 0;
}
