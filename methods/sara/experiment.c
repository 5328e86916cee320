/* Ledger entry `sara` (schema v2, docs/repro.md): a tiny DDPM pretrained on Fashion-MNIST classes 0-4 (16x16),
 * fine-tuned to classes 5-9 with SaRA, LoRA (closest trainable count) and full fine-tuning over n >= 3 fine-tuning
 * seeds (protocol.h). Parts (rules and margins fixed before the first run; t = t95(n-1), SE over the seeds):
 *   smallest-inert      d_small = FD(smallest 10% zeroed) - FD(pretrained), d_rand = FD(random 10% zeroed) -
 *                       FD(pretrained), old-domain samples, same sampling noise per seed:
 *                       paired lower bound of d_rand - d_small > 0 and mean |d_small| <= 0.25 mean d_rand
 *   new-domain-vs-lora  new-domain FD, paired upper bound of SaRA - LoRA (mean + t SE) <= 0.20 x LoRA's mean FD
 *   retention-over-lora old-domain retention-probe FD, paired lower bound of LoRA - SaRA > 0
 *   retention-over-full the same against full fine-tuning
 *   optimiser-memory    SaRA's measured optimiser bytes (index, two moments, the gathered gradient) <= 16.2 per
 *                       trainable entry and < 0.25 of full fine-tuning's (two moments and a gradient per entry)
 * Controls (each must be rejected):
 *   random-for-smallest (generic substitute): the smallest-10% zeroing replaced by another seed's random-10% zeroing
 *   untrained (broken): SaRA's fine-tuned model replaced by the pretrained one (no update)
 *   full-as-sara (generic substitute): SaRA's numbers replaced by full fine-tuning's
 *   dense-masked-adam (broken): SaRA's memory replaced by a masked dense Adam's (nl_optim with masks: 12 bytes per
 *     entry of the whole store) */
#include "sara/protocol.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct sara_entry_cfg {
    int base_channels, levels, m0, m1, m2, attn, T;
    int64_t n_train, pre_steps, ft_steps, batch, ft_batch, n_eval;
    int ddim_steps, fd_dim, fd_epochs, seeds;
    int64_t fd_train;
} sara_entry_cfg;

static const char *const g_m[SARA_M_N] = {"sara", "lora", "full"};

/* what a result holds (the judge reads these names); src: the protocol's numbers, with the substitutions of a control */
typedef struct sara_view {
    const double *small_old, *sara_new, *sara_probe;
    double sara_bytes;
} sara_view;

static void put(nl_exp_result *r, const nl_sara_proto_result *p, const sara_view *v) {
    int n = p->seeds;
    for (int i = 0; i < n; i++) {
        nl_exp_set_seed(r, "fd_base_old", i + 1, p->fd_base_old[i]);
        nl_exp_set_seed(r, "fd_small_old", i + 1, v->small_old[i]);
        nl_exp_set_seed(r, "fd_rand_old", i + 1, p->fd_rand_old[i]);
        nl_exp_set_seed(r, "d_small", i + 1, v->small_old[i] - p->fd_base_old[i]);
        nl_exp_set_seed(r, "d_rand", i + 1, p->fd_rand_old[i] - p->fd_base_old[i]);
        nl_exp_set_seed(r, "abs_d_small", i + 1, fabs(v->small_old[i] - p->fd_base_old[i]));
        nl_exp_set_seed(r, "fd_base_new", i + 1, p->fd_base_new[i]);
        nl_exp_set_seed(r, "fd_base_probe", i + 1, p->fd_base_probe[i]);
        for (int m = 0; m < SARA_M_N; m++) {
            char k[48];
            snprintf(k, sizeof k, "%s_fd_new", g_m[m]);
            nl_exp_set_seed(r, k, i + 1, m == SARA_M_SARA ? v->sara_new[i] : p->fd_new[m][i]);
            snprintf(k, sizeof k, "%s_fd_probe", g_m[m]);
            nl_exp_set_seed(r, k, i + 1, m == SARA_M_SARA ? v->sara_probe[i] : p->fd_probe[m][i]);
            snprintf(k, sizeof k, "%s_ft_loss", g_m[m]);
            nl_exp_set_seed(r, k, i + 1, p->ft_loss[m][i]);
        }
    }
    static const char *const keys[] = {"fd_base_old", "fd_small_old", "fd_rand_old", "d_small", "d_rand", "abs_d_small", "fd_base_new",
                                       "fd_base_probe", "sara_fd_new", "lora_fd_new", "full_fd_new", "sara_fd_probe", "lora_fd_probe",
                                       "full_fd_probe", "sara_ft_loss", "lora_ft_loss", "full_ft_loss"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) nl_exp_set_seed_mean_se(r, keys[k], n);
    for (int m = 0; m < SARA_M_N; m++) {
        char k[48];
        snprintf(k, sizeof k, "%s_trainable", g_m[m]);
        nl_exp_set(r, k, (double)p->trainable[m]);
        snprintf(k, sizeof k, "%s_opt_bytes", g_m[m]);
        nl_exp_set(r, k, m == SARA_M_SARA ? v->sara_bytes : p->state_bytes[m]);
    }
    nl_exp_set(r, "sara_after_reselect", (double)p->sara_after_reselect);
    nl_exp_set(r, "dense_masked_bytes", p->dense_masked_bytes);
    nl_exp_set(r, "n_params", (double)p->n_params);
    nl_exp_set(r, "lora_rank", p->lora_rank);
    nl_exp_set(r, "tau", p->tau);
    nl_exp_set(r, "sara_fraction", p->sara_fraction);
    nl_exp_set(r, "fd_real_real", p->fd_real_real);
    nl_exp_set(r, "fd_net_acc", p->fd_net_acc);
    nl_exp_set(r, "pre_loss", p->pre_loss);
    nl_exp_set(r, "cache_hit", p->cache_hit);
    nl_exp_set(r, "seconds_pretrain", p->seconds_pre);
    nl_exp_set(r, "seconds_finetune", p->seconds_ft);
    nl_exp_set(r, "seconds_eval", p->seconds_eval);
    nl_exp_set(r, "seeds", n);
    r->seeds = n;
}

static nl_status sara_run(const nl_experiment *e, const void *config, const nl_exp_options *opt, nl_exp_result *out) {
    const sara_entry_cfg *ec = config;
    nl_sara_proto_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.unet = nl_unet_defaults(16);
    cfg.unet.base_channels = ec->base_channels;
    cfg.unet.levels = ec->levels;
    cfg.unet.ch_mult[0] = ec->m0, cfg.unet.ch_mult[1] = ec->m1, cfg.unet.ch_mult[2] = ec->m2;
    cfg.unet.attn = ec->attn;
    cfg.T = ec->T;
    cfg.n_train = ec->n_train;
    cfg.pre_steps = ec->pre_steps;
    cfg.ft_steps = ec->ft_steps;
    cfg.batch = ec->batch;
    cfg.ft_batch = ec->ft_batch;
    cfg.pre_lr = 2e-3;
    cfg.ft_lr = 1e-3;
    cfg.fraction = 0.1;
    cfg.lambda_rank = 5e-4;
    cfg.progressive = 1;
    cfg.n_eval = ec->n_eval;
    cfg.ddim_steps = ec->ddim_steps;
    cfg.probe_t = 0.5;
    cfg.fd_dim = ec->fd_dim;
    cfg.fd_train = ec->fd_train;
    cfg.fd_epochs = ec->fd_epochs;
    cfg.seeds = ec->seeds;
    cfg.pre_seed = 1;
    cfg.cache_dir = opt->out_dir;
    cfg.verbose = opt->verbose;
    nl_sara_proto_result p;
    nl_status s = nl_sara_protocol_run(&cfg, &p);
    if (s) return s;
    sara_view main_v = {p.fd_small_old, p.fd_new[SARA_M_SARA], p.fd_probe[SARA_M_SARA], p.state_bytes[SARA_M_SARA]};
    put(out, &p, &main_v);
    static const char *const names[4] = {"random-for-smallest", "untrained", "full-as-sara", "dense-masked-adam"};
    static const char *const kinds[4] = {"generic", "broken", "generic", "broken"};
    static const char *const what[4] = {
        "the smallest-10% zeroing replaced by the random-10% zeroing of the next seed (cyclic); everything else as the main result",
        "SaRA's fine-tuned model replaced by the pretrained model (no update): its new-domain and retention FD in SaRA's place",
        "SaRA's new-domain and retention FD replaced by full fine-tuning's (same seeds)",
        "SaRA's optimiser memory replaced by a masked dense Adam's (moments and gradient over every entry of the store)"};
    sara_view cv[4] = {main_v, main_v, main_v, main_v};
    cv[0].small_old = p.fd_rand2_old;
    cv[1].sara_new = p.fd_base_new, cv[1].sara_probe = p.fd_base_probe;
    cv[2].sara_new = p.fd_new[SARA_M_FULL], cv[2].sara_probe = p.fd_probe[SARA_M_FULL];
    cv[3].sara_bytes = p.dense_masked_bytes;
    for (int k = 0; k < 4; k++) {
        nl_exp_result *c = nl_exp_control_add(out, names[k], kinds[k], what[k]);
        if (!c) return nl_set_error(NL_ENOMEM, "%s: out of memory", e->name);
        put(c, &p, &cv[k]);
    }
    snprintf(out->note, sizeof out->note,
             "%s: UNet 16x16 ch %d mult {%d,%d%s%.0d} (%lld params), T %d, %lld images per domain, pretrain %lld steps%s, fine-tune %lld steps "
             "x %lld, SaRA |M| %lld (%.1f%%), LoRA rank %d (%lld), FD on %lld images, %d seeds, %d thread(s)",
             e->name, ec->base_channels, ec->m0, ec->m1, ec->levels > 2 ? "," : "", ec->levels > 2 ? ec->m2 : 0, (long long)p.n_params, ec->T,
             (long long)ec->n_train, (long long)ec->pre_steps, p.cache_hit ? " (cached)" : "", (long long)ec->ft_steps, (long long)ec->ft_batch,
             (long long)p.trainable[0], 100 * p.sara_fraction, p.lora_rank, (long long)p.trainable[1], (long long)ec->n_eval, p.seeds, opt->threads);
    return NL_OK;
}

static int sara_judge(const nl_experiment *e, nl_exp_result *r, int mode, char *measured, size_t nm) {
    (void)e;
    const int n = nl_exp_get_count(r, "seeds", SARA_MAX_SEEDS);
    const char *pre = mode == NL_MODE_SMOKE ? "smoke (plumbing only): " : "";
    double t = n >= 2 ? nl_stats_t95(n - 1) : NAN;
    char rule[320];
    /* smallest-inert */
    double md, sd, lo = nl_exp_paired_lower(r, "d_rand", "d_small", n, &md, &sd);
    double abs_small = nl_exp_get(r, "abs_d_small_mean", NULL), d_rand = nl_exp_get(r, "d_rand_mean", NULL);
    int p1 = n >= 3 && lo > 0 && abs_small <= 0.25 * d_rand;
    snprintf(rule, sizeof rule,
             "%szeroing the smallest 10%% of |theta| vs a random 10%%, FD of old-domain samples minus the pretrained model's, paired over n "
             ">= 3 seeds: mean - t95*SE of d_rand - d_small > 0 and mean |d_small| <= 0.25 mean d_rand", pre);
    nl_exp_part_set(r, "smallest-inert", rule, p1, "d_small |.| %.2f, d_rand %+.2f; d_rand - d_small %+.2f +- %.2f (%d seeds), bound %+.2f",
                    abs_small, d_rand, md, sd, n, lo);
    /* new-domain-vs-lora: upper bound of SaRA - LoRA = -(lower bound of LoRA - SaRA) */
    double lo2 = nl_exp_paired_lower(r, "lora_fd_new", "sara_fd_new", n, &md, &sd), up = -lo2;
    double lora_fd = nl_exp_get(r, "lora_fd_new_mean", NULL);
    int p2 = n >= 3 && up <= 0.20 * lora_fd;
    snprintf(rule, sizeof rule, "%snew-domain FD, paired over n >= 3 seeds: mean + t95*SE of SaRA - LoRA <= 0.20 x LoRA's mean FD", pre);
    nl_exp_part_set(r, "new-domain-vs-lora", rule, p2, "SaRA - LoRA %+.2f +- %.2f (%d seeds), upper bound %+.2f vs margin %.2f", -md, sd, n,
                    up, 0.20 * lora_fd);
    /* retention */
    static const char *const other[2] = {"lora", "full"};
    int p3[2];
    for (int k = 0; k < 2; k++) {
        char a[32], part[32];
        snprintf(a, sizeof a, "%s_fd_probe", other[k]);
        snprintf(part, sizeof part, "retention-over-%s", other[k]);
        double lo3 = nl_exp_paired_lower(r, a, "sara_fd_probe", n, &md, &sd);
        p3[k] = n >= 3 && lo3 > 0;
        snprintf(rule, sizeof rule,
                 "%sold-domain retention FD (old test images noised to t = T/2 and denoised by the fine-tuned model), paired over n >= 3 "
                 "seeds: mean - t95*SE of %s - SaRA > 0", pre, k ? "full fine-tuning" : "LoRA");
        nl_exp_part_set(r, part, rule, p3[k], "%s - SaRA %+.2f +- %.2f (%d seeds), bound %+.2f", other[k], md, sd, n, lo3);
    }
    /* memory */
    double sb = nl_exp_get(r, "sara_opt_bytes", NULL), st = nl_exp_get(r, "sara_trainable", NULL), fb = nl_exp_get(r, "full_opt_bytes", NULL);
    double lb = nl_exp_get(r, "lora_opt_bytes", NULL);
    int p4 = st > 0 && sb / st <= 16.2 && sb < 0.25 * fb;
    snprintf(rule, sizeof rule,
             "%sSaRA's measured optimiser bytes (int32 index, two moments, gathered gradient) <= 16.2 per trainable entry and < 0.25 x "
             "full fine-tuning's", pre);
    nl_exp_part_set(r, "optimiser-memory", rule, p4, "SaRA %.0f B (%.2f per entry), LoRA %.0f B, full %.0f B (SaRA/full %.3f)", sb, sb / st, lb,
                    fb, sb / fb);
    snprintf(measured, nm, "d_small %.2f vs d_rand %.2f; new FD sara %.2f lora %.2f full %.2f; probe FD sara %.2f lora %.2f full %.2f; t %.2f",
             abs_small, d_rand, nl_exp_get(r, "sara_fd_new_mean", NULL), lora_fd, nl_exp_get(r, "full_fd_new_mean", NULL),
             nl_exp_get(r, "sara_fd_probe_mean", NULL), nl_exp_get(r, "lora_fd_probe_mean", NULL), nl_exp_get(r, "full_fd_probe_mean", NULL), t);
    return nl_exp_parts_pass(r);
}

/* quick: ch 8 mult {1,2}, no attention, T 200, 2000 images per domain, pretrain 600 steps (batch 32), fine-tune 100 steps
 * (batch 16), FD on 200 images, DDIM 8 steps, 3 seeds; full: ch 16 mult {1,2,2} with attention, T 500, 6000 + 1500 steps
 * (batch 64), FD on 1000 images, DDIM 50 steps; smoke: tiny. */
static const sara_entry_cfg sara_quick = {8, 2, 1, 2, 2, 0, 200, 2000, 600, 100, 32, 16, 200, 8, 32, 1, 3, 4000};
static const sara_entry_cfg sara_full = {16, 3, 1, 2, 2, 1, 500, 12000, 6000, 1500, 64, 64, 1000, 50, 64, 3, 3, 20000};
static const sara_entry_cfg sara_smoke = {8, 2, 1, 2, 2, 0, 50, 200, 20, 6, 8, 8, 40, 3, 16, 1, 3, 500};

#define SARA_K(x) x "_fd_new_mean," x "_fd_new_se," x "_fd_probe_mean," x "_fd_probe_se," x "_ft_loss_mean," x "_trainable," x "_opt_bytes,"
#define SARA_METRICS                                                                                                                   \
    "fd_base_old_mean,fd_small_old_mean,fd_rand_old_mean,d_small_mean,d_small_se,d_rand_mean,d_rand_se,abs_d_small_mean,"                \
    "fd_base_new_mean,fd_base_probe_mean," SARA_K("sara") SARA_K("lora") SARA_K("full")                                                \
    "sara_after_reselect,dense_masked_bytes,n_params,lora_rank,tau,sara_fraction,fd_real_real,fd_net_acc,pre_loss,cache_hit,seconds_pretrain,"      \
    "seconds_finetune,seconds_eval,seeds"

const nl_experiment nl_exp_sara = {
    .name = "sara",
    .paper = "Hu, Zhang, Xu, Liu, Zhang, Wang, SaRA: High-Efficient Diffusion Model Fine-tuning with Progressive Sparse Low-Rank "
             "Adaptation (ICLR 2025)",
    .claim = "The smallest 10-20% of a pretrained diffusion model's parameters hardly affect generation; fine-tuning only them (sparse, "
             "nuclear-norm regularised, progressively re-selected) adapts to a new domain as well as LoRA with the same trainable count "
             "while keeping the old domain better than LoRA and full fine-tuning, with optimiser state for the trainable entries only",
    .quick_desc = "UNet 16x16 ch 8 mult {1,2}, DDPM T 200, pretrained 600 steps on 2000 Fashion-MNIST images of classes 0-4 (cached in "
                  "--out by config+seed), fine-tuned 100 steps (batch 16, lr 1e-3) on 2000 images of classes 5-9 with LoRA (smallest rank reaching 10% "
                  "of the parameters), SaRA (the same count of smallest-|theta| entries) and full fine-tuning; FD on 200 images (DDIM 8 "
                  "steps), seeds 1-3",
    .full_desc = "UNet 16x16 ch 16 mult {1,2,2} with attention, T 500, 12000 images per domain, pretrain 6000 / fine-tune 1500 steps "
                 "(batch 64), FD on 1000 images (DDIM 50 steps), seeds 1-3",
    .smoke_desc = "UNet ch 8, T 50, 200 images, 20 + 6 steps, FD on 40 images, seeds 1-3",
    .quick = &sara_quick,
    .full = &sara_full,
    .smoke = &sara_smoke,
    .metrics = SARA_METRICS,
    .run = sara_run,
    .judge = sara_judge,
};
