/* The SaRA protocol on a tiny DDPM (protocol.h): pretraining (cached), zeroing, three fine-tunings, FD scoring. */
#include "sara/protocol.h"
#include "peft/lora.h"
#include "nnlab/optim.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int nl_sara_lora_targets(const nl_params *ps, const char **names, int cap) {
    int n = 0;
    for (int i = 0; i < ps->n && n < cap; i++) {
        const nl_param *p = ps->p[i];
        if (nl_unet_is_matrix(p) && p->var.val.shape[0] > 1) names[n++] = p->name;
    }
    return n;
}

/* ---- sampling helpers ---- */

/* DDIM (eta 0) from x [n, 1, S, S] at timestep t0 down to 0 in `steps` evenly spaced steps, in place */
static nl_status ddim_from(nl_unet *u, const nl_diffusion *d, float *x, int64_t n, int t0, int steps) {
    const int64_t D = (int64_t)u->cfg.in_channels * u->cfg.image_size * u->cfg.image_size;
    int64_t sh[4] = {n, u->cfg.in_channels, u->cfg.image_size, u->cfg.image_size};
    nl_ctx *c = nl_ctx_new((size_t)32 << 20, 0);
    float *tt = malloc((size_t)n * sizeof(float)); /* (n) */
    if (!c || !tt) {
        nl_ctx_free(c);
        free(tt);
        return nl_set_error(NL_ENOMEM, "sara: out of memory (probe)");
    }
    nl_set_grad_enabled(c, 0);
    nl_status s = NL_OK;
    for (int k = 0; k < steps && !s; k++) {
        int t = (int)((int64_t)t0 * (steps - k) / steps), tn = (int)((int64_t)t0 * (steps - k - 1) / steps) - (k == steps - 1);
        for (int64_t i = 0; i < n; i++) tt[i] = (float)t;
        nl_var *e = nl_unet_forward(c, u, nl_input(c, nl_tensor_wrap(x, NL_F32, 4, sh)), tt);
        if (!e) {
            s = nl_last_status();
            break;
        }
        const float *ev = e->val.data; /* (n, D) */
        double a = d->abar[t], an = tn >= 0 ? d->abar[tn] : 1.0;
        for (int64_t j = 0; j < n * D; j++) {
            double x0 = (x[j] - sqrt(1 - a) * ev[j]) / sqrt(a);
            x0 = x0 < -1 ? -1 : x0 > 1 ? 1 : x0;
            x[j] = (float)(sqrt(an) * x0 + sqrt(1 - an) * ev[j]);
        }
        nl_ctx_reset(c);
    }
    nl_ctx_free(c);
    free(tt);
    return s;
}

typedef struct sara_eval {
    nl_fd_net fd;
    double *f_old_a, *f_old_b, *f_new; /* (n_eval, dim) features of the real sets */
    const float *x_old_a;              /* (n_eval, 1, S, S) the probe's inputs */
    int64_t n;
} sara_eval;

static nl_status fd_against(sara_eval *ev, const float *x, const double *ref, double *fd) {
    double *f = NULL;
    nl_status s = nl_fd_features(&ev->fd, x, ev->n, &f);
    if (!s) s = nl_frechet_distance(f, ev->n, ref, ev->n, ev->fd.dim, fd);
    free(f);
    return s;
}

/* samples of u (seeded) scored against the old (which 0) or new (1) domain; fd2 (may be NULL) the other one */
static nl_status sample_fd(nl_unet *u, const nl_diffusion *d, const nl_sara_proto_config *cfg, sara_eval *ev, uint64_t seed,
                           double *fd_old, double *fd_new, const char *png) {
    const int64_t D = (int64_t)cfg->unet.image_size * cfg->unet.image_size;
    float *x = malloc((size_t)(ev->n * D) * sizeof(float)); /* (n_eval, 1, S, S) */
    if (!x) return nl_set_error(NL_ENOMEM, "sara: out of memory");
    nl_rng rng;
    nl_rng_init(&rng, seed, 0x5a3e);
    nl_status s = nl_diffusion_sample_ddim(u, d, ev->n, cfg->ddim_steps, 0.0, &rng, x);
    if (!s && fd_old) s = fd_against(ev, x, ev->f_old_b, fd_old);
    if (!s && fd_new) s = fd_against(ev, x, ev->f_new, fd_new);
    if (!s && png && cfg->cache_dir) { /* a grid of the first 64 samples next to the ledger; a failed write is no error */
        char path[1024];
        snprintf(path, sizeof path, "%s/sara-samples-%s.png", cfg->cache_dir, png);
        nl_png_write_grid(path, x, ev->n < 64 ? ev->n : 64, cfg->unet.image_size, 8);
    }
    free(x);
    return s;
}

/* the retention probe: old-domain images noised to t* (seeded) and denoised back, FD against the other old set */
static nl_status probe_fd(nl_unet *u, const nl_diffusion *d, const nl_sara_proto_config *cfg, sara_eval *ev, uint64_t seed,
                          double *fd) {
    const int64_t D = (int64_t)cfg->unet.image_size * cfg->unet.image_size;
    float *x = malloc((size_t)(ev->n * D) * sizeof(float)); /* (n_eval, 1, S, S) */
    if (!x) return nl_set_error(NL_ENOMEM, "sara: out of memory");
    int t0 = (int)(cfg->probe_t * (d->T - 1));
    double a = d->abar[t0];
    nl_rng rng;
    nl_rng_init(&rng, seed, 0x960b);
    for (int64_t j = 0; j < ev->n * D; j++) x[j] = (float)(sqrt(a) * ev->x_old_a[j] + sqrt(1 - a) * nl_rng_normal(&rng));
    int steps = (int)ceil(cfg->ddim_steps * cfg->probe_t);
    nl_status s = ddim_from(u, d, x, ev->n, t0, steps < 1 ? 1 : steps);
    if (!s) s = fd_against(ev, x, ev->f_old_b, fd);
    free(x);
    return s;
}

/* ---- fine-tuning ---- */
static const char *const g_names[SARA_M_N] = {"sara", "lora", "full"};

typedef struct ft_out {
    double loss, state_bytes;
    int64_t trainable, after_reselect;
    double tau;
} ft_out;

static nl_status finetune(nl_unet *u, const nl_diffusion *d, const nl_sara_proto_config *cfg, int method, int lora_rank,
                          double sara_fraction, const float *x, int64_t n, uint64_t seed, ft_out *fo, nl_lora *lora) {
    const int64_t D = (int64_t)cfg->unet.image_size * cfg->unet.image_size, B = cfg->ft_batch;
    memset(fo, 0, sizeof *fo);
    nl_params *ps = &u->ps;
    nl_sara so;
    nl_optim o;
    memset(&so, 0, sizeof so);
    memset(&o, 0, sizeof o);
    nl_optim_config oc = nl_optim_defaults(NL_OPT_ADAMW);
    oc.lr = cfg->ft_lr;
    oc.weight_decay = 1e-2;
    nl_status s = NL_OK;
    if (method == SARA_M_SARA) {
        nl_sara_config sc = nl_sara_defaults();
        sc.fraction = sara_fraction;
        sc.lr = cfg->ft_lr;
        sc.lambda_rank = cfg->lambda_rank;
        sc.progressive_step = cfg->progressive ? cfg->ft_steps / 2 : 0;
        sc.seed = seed;
        if ((s = nl_sara_init(&so, ps, &sc))) return s;
        for (int i = 0; i < ps->n; i++) ps->p[i]->var.requires_grad = so.seg[i + 1] > so.seg[i];
        fo->trainable = so.n_sel;
        fo->tau = so.tau;
    } else if (method == SARA_M_LORA) {
        const char *names[256];
        int nn = nl_sara_lora_targets(ps, names, 256);
        if ((s = nl_lora_init(lora, ps, names, nn, lora_rank, (double)lora_rank, seed))) return s;
        if ((s = nl_optim_init(&o, &lora->ad, &oc))) return s;
        fo->trainable = nl_lora_count(lora);
        fo->state_bytes = (double)o.n_state * 2 * sizeof(float) + (double)fo->trainable * sizeof(float);
    } else {
        for (int i = 0; i < ps->n; i++) ps->p[i]->var.requires_grad = 1;
        if ((s = nl_optim_init(&o, ps, &oc))) return s;
        fo->trainable = 0;
        for (int i = 0; i < ps->n; i++) fo->trainable += ps->p[i]->numel;
        fo->state_bytes = (double)o.n_state * 2 * sizeof(float) + (double)fo->trainable * sizeof(float);
    }
    nl_ctx *c = nl_ctx_new((size_t)64 << 20, 0);
    float *xb = malloc((size_t)(B * D) * sizeof(float)); /* (B, 1, S, S) */
    if (!c || !xb) s = nl_set_error(NL_ENOMEM, "sara: out of memory (fine-tuning)");
    nl_rng rng;
    nl_rng_init(&rng, seed, 0xf1e7 + (uint64_t)method);
    double tail = 0;
    int64_t ntail = 0;
    for (int64_t step = 0; step < cfg->ft_steps && !s; step++) {
        for (int64_t i = 0; i < B; i++) memcpy(xb + i * D, x + nl_rng_below(&rng, n) * D, (size_t)D * sizeof(float));
        if (method == SARA_M_LORA) nl_lora_merge(lora), nl_params_zero_grad(&lora->ad);
        nl_params_zero_grad(ps);
        nl_var *loss = nl_diffusion_loss(c, d, u, xb, B, &rng);
        if (!loss) {
            s = nl_last_status();
            break;
        }
        double lv = nl_item(loss);
        if ((s = nl_backward(c, loss))) break;
        if (method == SARA_M_SARA) s = nl_sara_step(&so);
        else if (method == SARA_M_LORA) nl_lora_grad(lora), s = nl_optim_step(&o);
        else s = nl_optim_step(&o);
        nl_ctx_reset(c);
        if (step >= cfg->ft_steps - (cfg->ft_steps + 9) / 10) tail += lv, ntail++;
    }
    if (method == SARA_M_LORA && !s) nl_lora_merge(lora); /* the store holds W0 + s B A; nl_lora_free restores W0 */
    if (method == SARA_M_SARA) {
        /* the optimiser's memory at its largest (before the re-selection): idx + m + v + bookkeeping, plus the gathered
         * gradient of a step (4 bytes per entry, transient) */
        fo->state_bytes = (double)(fo->trainable * (int64_t)(sizeof(int32_t) + 2 * sizeof(float)) +
                                   (int64_t)(ps->n + 1) * (int64_t)(sizeof(int64_t) + sizeof(int))) +
                          (double)fo->trainable * sizeof(float);
        fo->after_reselect = so.n_sel;
    }
    for (int i = 0; i < ps->n; i++) ps->p[i]->var.requires_grad = 1;
    fo->loss = ntail ? tail / ntail : NAN;
    nl_sara_free(&so);
    nl_optim_free(&o);
    nl_ctx_free(c);
    free(xb);
    return s;
}

/* ---- pretraining, cached under cache_dir keyed by every setting that determines the weights ---- */
static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static nl_status pretrain(nl_unet *u, const nl_diffusion *d, const nl_sara_proto_config *cfg, const float *x, int64_t n,
                          nl_sara_proto_result *r) {
    const nl_unet_config *uc = &cfg->unet;
    if (cfg->checkpoint) {
        nl_status s = nl_unet_load(u, cfg->checkpoint);
        if (!s) s = nl_params_check_finite(&u->ps, "sara checkpoint");
        if (s) return nl_set_error(s, "sara: checkpoint '%s': %s", cfg->checkpoint, nl_last_error());
        r->pre_loss = NAN;
        return NL_OK;
    }
    char key[512], path[1024];
    snprintf(key, sizeof key, "unet S%d C%d ch%d L%d m%d,%d,%d,%d g%d a%d | T%d linear | n%lld steps%lld B%lld lr%.9g seed%llu",
             uc->image_size, uc->in_channels, uc->base_channels, uc->levels, uc->ch_mult[0], uc->ch_mult[1], uc->ch_mult[2],
             uc->ch_mult[3], uc->groups, uc->attn, cfg->T, (long long)n, (long long)cfg->pre_steps, (long long)cfg->batch,
             cfg->pre_lr, (unsigned long long)cfg->pre_seed);
    path[0] = 0;
    if (cfg->cache_dir)
        snprintf(path, sizeof path, "%s/sara-pretrained-%016llx.safetensors", cfg->cache_dir, (unsigned long long)fnv1a(key));
    if (path[0] && nl_unet_load(u, path) == NL_OK && nl_params_check_finite(&u->ps, "sara cache") == NL_OK) {
        r->cache_hit = 1;
        r->pre_loss = NAN;
        return NL_OK;
    }
    nl_diffusion_train_config tc = nl_diffusion_train_defaults();
    tc.steps = cfg->pre_steps;
    tc.batch = cfg->batch;
    tc.lr = cfg->pre_lr;
    tc.ema_decay = 0;
    tc.seed = cfg->pre_seed;
    tc.verbose = 0;
    nl_status s = nl_diffusion_train(u, d, &tc, x, n, NULL, &r->pre_loss);
    if (!s && path[0] && nl_unet_save(u, path) != NL_OK) s = NL_OK; /* a cache that cannot be written is no error */
    return s;
}

/* zero the entries with |theta| < tau (smallest) or `count` random entries (seeded) of the store */
static int64_t zero_smallest(nl_params *ps, double tau) {
    int64_t k = 0;
    for (int i = 0; i < ps->n; i++) {
        float *x = ps->p[i]->var.val.data;
        for (int64_t j = 0; j < ps->p[i]->numel; j++)
            if (fabsf(x[j]) < tau) x[j] = 0, k++;
    }
    return k;
}

static void zero_random(nl_params *ps, int64_t count, uint64_t seed) {
    int64_t N = 0;
    for (int i = 0; i < ps->n; i++) N += ps->p[i]->numel;
    nl_rng rng;
    nl_rng_init(&rng, seed, 0x2e40);
    /* selection sampling (Knuth's algorithm S): exactly `count` of the N entries, each set equally likely */
    int64_t left = count, seen = 0;
    for (int i = 0; i < ps->n; i++) {
        float *x = ps->p[i]->var.val.data;
        for (int64_t j = 0; j < ps->p[i]->numel; j++, seen++)
            if ((double)(N - seen) * nl_rng_uniform(&rng) < (double)left) x[j] = 0, left--;
    }
}

static nl_status load(const char *split, unsigned mask, int S, int64_t at_most, float **x, int64_t *n) {
    nl_status s = nl_diffusion_load_images("fashion-mnist", split, mask, S, at_most, x, NULL, n);
    if (!s && *n < at_most)
        s = nl_set_error(NL_EINVAL, "sara: only %lld images of the %s split for mask 0x%x (%lld asked)", (long long)*n, split, mask,
                         (long long)at_most);
    return s;
}

nl_status nl_sara_protocol_run(const nl_sara_proto_config *cfg, nl_sara_proto_result *r) {
    memset(r, 0, sizeof *r);
    if (cfg->seeds < 1 || cfg->seeds > SARA_MAX_SEEDS) return nl_set_error(NL_EINVAL, "sara: seeds %d outside 1..%d", cfg->seeds, SARA_MAX_SEEDS);
    if (!(cfg->fraction > 0 && cfg->fraction < 1)) return nl_set_error(NL_EINVAL, "sara: threshold fraction %g outside (0, 1)", cfg->fraction);
    if (!(cfg->probe_t > 0 && cfg->probe_t < 1)) return nl_set_error(NL_EINVAL, "sara: probe noise level %g outside (0, 1)", cfg->probe_t);
    const int S = cfg->unet.image_size;
    const unsigned OLD = 0x1F, NEW = 0x3E0;
    float *x_old = NULL, *x_new = NULL, *t_old = NULL, *t_new = NULL;
    float *keep = NULL; /* (N) the pretrained values */
    int64_t n_old, n_new, m_old, m_new;
    sara_eval ev;
    memset(&ev, 0, sizeof ev);
    nl_unet u;
    memset(&u, 0, sizeof u);
    nl_diffusion d;
    memset(&d, 0, sizeof d);
    /* the cheap checks first: the architecture, a checkpoint against it, an explicit LoRA rank against its matrices */
    nl_status s = nl_diffusion_init(&d, cfg->T, NL_DIFF_LINEAR);
    if (!s) s = nl_unet_init(&u, &cfg->unet, cfg->pre_seed);
    if (!s && cfg->checkpoint) s = pretrain(&u, &d, cfg, NULL, 0, r);
    if (!s && cfg->lora_rank > 0) {
        const char *names[256];
        int nn = nl_sara_lora_targets(&u.ps, names, 256);
        if (nl_lora_count_for(&u.ps, names, nn, cfg->lora_rank) < 0) {
            nl_lora probe;
            s = nl_lora_init(&probe, &u.ps, names, nn, cfg->lora_rank, 1, 1); /* fails with the message naming the matrix */
            if (!s) nl_lora_free(&probe), s = nl_set_error(NL_EINVAL, "sara: LoRA rank %d rejected", cfg->lora_rank);
            else s = nl_set_error(s, "sara: %s", nl_last_error());
        }
    }
    if (!s) s = load("train", OLD, S, cfg->n_train, &x_old, &n_old);
    if (!s) s = load("train", NEW, S, cfg->n_train, &x_new, &n_new);
    if (!s) s = load("test", OLD, S, 2 * cfg->n_eval, &t_old, &m_old);
    if (!s) s = load("test", NEW, S, cfg->n_eval, &t_new, &m_new);
    if (s) goto done;
    /* the FD network and the real sets' features */
    ev.n = cfg->n_eval;
    ev.x_old_a = t_old;
    if ((s = nl_fd_net_train(&ev.fd, S, cfg->fd_dim, cfg->fd_train, cfg->fd_epochs, cfg->pre_seed))) goto done;
    r->fd_net_acc = ev.fd.test_acc;
    const int64_t D = (int64_t)S * S;
    if (!(s = nl_fd_features(&ev.fd, t_old, ev.n, &ev.f_old_a)) && !(s = nl_fd_features(&ev.fd, t_old + ev.n * D, ev.n, &ev.f_old_b)) &&
        !(s = nl_fd_features(&ev.fd, t_new, ev.n, &ev.f_new)))
        s = nl_frechet_distance(ev.f_old_a, ev.n, ev.f_old_b, ev.n, ev.fd.dim, &r->fd_real_real);
    if (s) goto done;
    double t_pre = nl_time();
    if (!cfg->checkpoint && (s = pretrain(&u, &d, cfg, x_old, n_old, r))) goto done;
    r->seconds_pre = nl_time() - t_pre;
    nl_params *ps = &u.ps;
    int64_t N = 0;
    for (int i = 0; i < ps->n; i++) N += ps->p[i]->numel;
    r->n_params = N;
    r->dense_masked_bytes = (double)N * 3 * sizeof(float); /* nl_optim with masks: m, v and the gradient over every entry */
    keep = malloc((size_t)ps->total * sizeof(float));
    if (!keep) {
        s = nl_set_error(NL_ENOMEM, "sara: out of memory");
        goto done;
    }
    memcpy(keep, ps->data, (size_t)ps->total * sizeof(float));
    r->tau = nl_sara_threshold(ps, cfg->fraction);
    /* equal trainable counts: LoRA's rank is the given one or the smallest whose count reaches fraction N, and SaRA
     * trains that many entries (fraction n_lora / N of the smallest |theta|) */
    const char *names[256];
    int nn = nl_sara_lora_targets(ps, names, 256);
    r->lora_rank = cfg->lora_rank; /* checked above when given */
    for (int rank = 1; rank <= 1024 && r->lora_rank == 0; rank++) {
        int64_t cnt = nl_lora_count_for(ps, names, nn, rank);
        if (cnt < 0) break;
        if ((double)cnt >= cfg->fraction * (double)N) r->lora_rank = rank;
    }
    int64_t n_lora = r->lora_rank > 0 ? nl_lora_count_for(ps, names, nn, r->lora_rank) : -1;
    r->sara_fraction = n_lora > 0 ? (double)n_lora / (double)N : NAN;
    if (!(r->sara_fraction > 0 && r->sara_fraction < 1)) {
        s = nl_set_error(NL_EINVAL, "sara: no LoRA rank reaches %g of the %lld parameters without exceeding a matrix", cfg->fraction,
                         (long long)N);
        goto done;
    }
    r->seeds = cfg->seeds;
    double t_eval = 0, t_ft = 0;
    for (int si = 0; si < cfg->seeds && !s; si++) {
        uint64_t seed = (uint64_t)(si + 1);
        double t0 = nl_time();
        /* part 1: the pretrained model, smallest-fraction zeroing, random zeroing (same sampling noise) */
        if ((s = sample_fd(&u, &d, cfg, &ev, seed, &r->fd_base_old[si], &r->fd_base_new[si], si == 0 ? "pretrained" : NULL))) break;
        if ((s = probe_fd(&u, &d, cfg, &ev, seed, &r->fd_base_probe[si]))) break;
        int64_t zeroed = zero_smallest(ps, r->tau);
        s = sample_fd(&u, &d, cfg, &ev, seed, &r->fd_small_old[si], NULL, si == 0 ? "smallest-zeroed" : NULL);
        memcpy(ps->data, keep, (size_t)ps->total * sizeof(float));
        if (s) break;
        zero_random(ps, zeroed, seed);
        s = sample_fd(&u, &d, cfg, &ev, seed, &r->fd_rand_old[si], NULL, si == 0 ? "random-zeroed" : NULL);
        memcpy(ps->data, keep, (size_t)ps->total * sizeof(float));
        if (s) break;
        t_eval += nl_time() - t0;
        for (int m = 0; m < SARA_M_N && !s; m++) {
            double t1 = nl_time();
            ft_out fo;
            nl_lora lora;
            memset(&lora, 0, sizeof lora);
            s = finetune(&u, &d, cfg, m, r->lora_rank, r->sara_fraction, x_new, n_new, seed, &fo, &lora);
            double t2 = nl_time();
            t_ft += t2 - t1;
            if (!s) s = sample_fd(&u, &d, cfg, &ev, seed, NULL, &r->fd_new[m][si], si == 0 ? g_names[m] : NULL);
            if (!s) s = probe_fd(&u, &d, cfg, &ev, seed, &r->fd_probe[m][si]);
            t_eval += nl_time() - t2;
            nl_lora_free(&lora);
            memcpy(ps->data, keep, (size_t)ps->total * sizeof(float));
            r->ft_loss[m][si] = fo.loss;
            r->trainable[m] = fo.trainable;
            r->state_bytes[m] = fo.state_bytes;
            if (m == SARA_M_SARA) r->sara_after_reselect = fo.after_reselect;
            if (cfg->verbose && !s)
                nl_progress("sara seed %d %s: new FD %.2f, retention FD %.2f, loss %.4f (%.1f s)", si + 1,
                            m == 0 ? "sara" : m == 1 ? "lora" : "full", r->fd_new[m][si], r->fd_probe[m][si], fo.loss, t2 - t1);
        }
        if (cfg->verbose && !s)
            nl_progress("sara seed %d: old FD base %.2f, smallest-zeroed %.2f, random-zeroed %.2f; base new FD %.2f, probe %.2f", si + 1,
                        r->fd_base_old[si], r->fd_small_old[si], r->fd_rand_old[si], r->fd_base_new[si], r->fd_base_probe[si]);
    }
    /* the control's random zeroing of another draw: seed i takes seed i+1's (cyclic) */
    for (int si = 0; si < cfg->seeds; si++) r->fd_rand2_old[si] = r->fd_rand_old[(si + 1) % cfg->seeds];
    r->seconds_ft = t_ft;
    r->seconds_eval = t_eval;
done:
    free(keep);
    free(x_old);
    free(x_new);
    free(t_old);
    free(t_new);
    free(ev.f_old_a);
    free(ev.f_old_b);
    free(ev.f_new);
    if (ev.fd.size) nl_fd_net_free(&ev.fd);
    nl_unet_free(&u);
    nl_diffusion_free(&d);
    return s;
}
