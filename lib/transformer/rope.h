/* transformer/rope.h — rotary position embeddings (RoPE) and the Giraffe context-extension variants.
 *
 * Frequencies (d = head dim, j = 0 .. d/2-1):  theta_j = base^(-2j/d)   (base 1e4 by default).
 * Variants (Giraffe, Pal et al. 2023; abacusai/Long-Context python/models/interpolate.py and xpos.py), applied in
 * this order to the plain basis:
 *   linear     theta_j <- theta_j / s                (position interpolation; s = scale, see below)
 *   power      theta_j <- theta_j / s * (1 - j/(d/2))^k          (low frequencies stretched most; theta'_{d/2} -> 0)
 *   truncated  theta_j <- theta_j / s, then with b = 2 pi / T, a = b / 8, rho = 2 pi / (16 T):
 *              theta_j if theta_j >= b;  rho if a <= theta_j < b;  0 if theta_j < a   (rho < a)
 *   xpos       theta_j <- theta_j / s for the rotation, and in addition queries are multiplied (per pair j) by
 *              zeta_j^(n/gamma) and keys by zeta_j^(-m/gamma), zeta_j = (2j + 0.4 d) / (1.4 d), so the score decays
 *              like zeta_j^((n-m)/gamma) with the distance.
 *   plain      theta_j unchanged (the scales must be 1).
 * The scale is the only part that differs between training and evaluation: a config carries scale_train (used
 * while training / fine-tuning) and scale_eval (used when evaluating or generating; Giraffe finds that a larger
 * eval scale than trained helps at long lengths). nl_rope_freqs() gives the training basis;
 * nl_rope_freqs_scaled() takes the scale explicitly.
 *
 * Rotation (HF rotate_half pairing: element j pairs with element j + d/2), for a row x at position p:
 *   y_j       = x_j cos(p theta_j) - x_{j+d/2} sin(p theta_j)
 *   y_{j+d/2} = x_{j+d/2} cos(p theta_j) + x_j sin(p theta_j)
 * so (R_n q) . (R_m k) depends on n - m only, and with theta/s it equals the score at positions n/s, m/s.
 * Positions are doubles: fractional positions (randomised training positions, interpolation) are allowed.
 * A theta of 0 leaves its pair unchanged. */
#ifndef NNLAB_ROPE_H
#define NNLAB_ROPE_H
#include "nnlab/autograd.h"
#include "nnlab/rng.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum nl_rope_variant {
    NL_ROPE_PLAIN = 0,
    NL_ROPE_LINEAR,
    NL_ROPE_POWER,
    NL_ROPE_TRUNCATED,
    NL_ROPE_XPOS,
    NL_ROPE_VARIANT_COUNT
} nl_rope_variant;

typedef struct nl_rope_config {
    nl_rope_variant variant;
    double base;          /* 10000 */
    double scale_train;   /* linear scale s while training (1 = none); > 0 */
    double scale_eval;    /* linear scale s at evaluation / generation (1 = none); > 0 */
    double power;         /* k of the power basis (> 0), e.g. 0.5 */
    double truncate;      /* T of the truncated basis, in positions (> 0), e.g. the context length */
    double xpos_gamma;    /* gamma (scale base) of xPos (> 0); 512 by default (xpos.py) */
    int randomized;       /* 1: randomised positions in training (t = cumsum(U[0,2)) rescaled to the length);
                             evaluation always uses integer positions 0, 1, 2, ... */
} nl_rope_config;

const char *nl_rope_variant_name(nl_rope_variant v);            /* "plain" | "linear" | "power" | ... */
nl_status nl_rope_variant_parse(const char *s, nl_rope_variant *out); /* NL_EINVAL listing the choices */
/* plain, base 1e4, scales 1, power 0.5, truncate 2048, gamma 512, not randomised. */
nl_rope_config nl_rope_config_default(void);
/* NL_EINVAL naming the bad field (non-positive base/scale/power/truncate/gamma, plain with a scale != 1). */
nl_status nl_rope_config_check(const nl_rope_config *cfg);

/* Frequencies theta (dim/2) of the variant with the training scale (cfg->scale_train). dim even, >= 2. */
nl_status nl_rope_freqs(const nl_rope_config *cfg, int dim, double *theta /* (dim/2) */);
/* Same with an explicit scale s (> 0) in place of scale_train (e.g. cfg->scale_eval). */
nl_status nl_rope_freqs_scaled(const nl_rope_config *cfg, int dim, double scale, double *theta /* (dim/2) */);
/* xPos per-pair decay bases zeta_j = (2j + 0.4 dim) / (1.4 dim), j = 0 .. dim/2-1. */
nl_status nl_rope_xpos_zeta(int dim, double *zeta /* (dim/2) */);

/* Randomised training positions (Giraffe): t_i = sum_{l<=i} u_l, u_l ~ U[0, 2), then t <- t * L / max(t_{T-1}, L).
 * Draws T uniforms from rng. L > 0 is the length to rescale to (normally T). */
void nl_rope_random_positions(nl_rng *rng, int64_t T, double L, double *pos /* (T) */);

/* Differentiable RoPE: x [B, H, T, D] (any strides; f32 or f64), positions (T) shared by the batch, theta (D/2)
 * -> rotated [B, H, T, D] (contiguous). The arrays are copied into the graph (the caller may free them).
 * Backward applies the inverse rotation (the transpose) to the gradient. */
nl_var *nl_rope(nl_ctx *c, nl_var *x, const double *positions /* (T) */, const double *theta /* (D/2) */);

/* Differentiable xPos: RoPE as above, then pair j of the row at position p multiplied by
 * zeta_j^(sign * p / gamma), sign = +1 for queries (is_key = 0) and -1 for keys (is_key = 1). Shifting all
 * positions by a constant leaves q.k unchanged, so callers may centre positions (xpos.py centres them at -L/2)
 * to keep the factors in range. zeta from nl_rope_xpos_zeta. */
nl_var *nl_rope_xpos(nl_ctx *c, nl_var *x, const double *positions /* (T) */, const double *theta /* (D/2) */,
                     const double *zeta /* (D/2) */, double gamma, int is_key);

/* Low-level kernel (no graph) for fused ops such as LM-Infinite attention: rotate one contiguous row of D
 * elements at position pos, dst may equal src. dt selects float/double. inverse = 1 rotates by -pos. */
void nl_rope_rotate_row(nl_dtype dt, void *dst /* (D) */, const void *src /* (D) */, int64_t D, double pos,
                        const double *theta /* (D/2) */, int inverse);

#ifdef __cplusplus
}
#endif
#endif
