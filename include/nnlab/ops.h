/* nnlab/ops.h — core differentiable ops: elementwise (broadcasting), unary, scalar, matmul, reductions, views.
 *
 * Broadcasting follows NumPy: shapes are right-aligned, and a dimension of size 1 (or a missing leading one)
 * stretches. Matmul convention: nl_matmul(a, b) = a @ b with a [..., M, K], b [..., K, N] (no hidden
 * transposes). Linear layers store W as [out, in] (PyTorch order) and use nl_linear = x @ W^T + b.
 * Inputs may be strided views; outputs are fresh contiguous tensors unless the op is a view. */
#ifndef NNLAB_OPS_H
#define NNLAB_OPS_H
#include "nnlab/autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- binary, broadcasting ---- */
nl_var *nl_add(nl_ctx *c, nl_var *a, nl_var *b);
nl_var *nl_sub(nl_ctx *c, nl_var *a, nl_var *b);
nl_var *nl_mul(nl_ctx *c, nl_var *a, nl_var *b);
nl_var *nl_div(nl_ctx *c, nl_var *a, nl_var *b);

/* ---- scalar ---- */
nl_var *nl_add_scalar(nl_ctx *c, nl_var *a, double s);   /* a + s */
nl_var *nl_mul_scalar(nl_ctx *c, nl_var *a, double s);   /* a * s */
nl_var *nl_pow_scalar(nl_ctx *c, nl_var *a, double p);   /* a ^ p (a > 0 unless p is an integer) */
nl_var *nl_rsub_scalar(nl_ctx *c, nl_var *a, double s);  /* s - a */

/* ---- unary ---- */
typedef enum nl_unary_op {
    NL_U_NEG, NL_U_EXP, NL_U_LOG, NL_U_SQRT, NL_U_ABS, NL_U_TANH, NL_U_SIGMOID, NL_U_RELU,
    NL_U_LEAKY_RELU, NL_U_GELU, NL_U_ERF, NL_U_SIN, NL_U_COS, NL_U_SIGN, NL_U_SQUARE, NL_U_SOFTPLUS,
    NL_U_COUNT
} nl_unary_op;
/* y = f(x); `a` parameterises leaky relu (negative slope). Gradient of sign is 0 (use nl_straight_through
 * for STE); abs'(0) = 0; relu'(0) = 0. GELU is the exact erf form x*Phi(x). */
nl_var *nl_unary(nl_ctx *c, nl_var *x, nl_unary_op op, double a);
const char *nl_unary_name(nl_unary_op op);
nl_var *nl_neg(nl_ctx *c, nl_var *x);
nl_var *nl_exp(nl_ctx *c, nl_var *x);
nl_var *nl_log(nl_ctx *c, nl_var *x);
nl_var *nl_sqrt(nl_ctx *c, nl_var *x);
nl_var *nl_abs(nl_ctx *c, nl_var *x);
nl_var *nl_tanh(nl_ctx *c, nl_var *x);
nl_var *nl_sigmoid(nl_ctx *c, nl_var *x);
nl_var *nl_relu(nl_ctx *c, nl_var *x);
nl_var *nl_leaky_relu(nl_ctx *c, nl_var *x, double slope);
nl_var *nl_gelu(nl_ctx *c, nl_var *x);
/* The f32 kernel behind nl_gelu, without autograd (inference paths): y [n] = GELU(x [n]); y may be x. */
void nl_gelu_f32(const float *x, float *y, int64_t n);
nl_var *nl_erf(nl_ctx *c, nl_var *x);
nl_var *nl_sin(nl_ctx *c, nl_var *x);
nl_var *nl_cos(nl_ctx *c, nl_var *x);
nl_var *nl_sign(nl_ctx *c, nl_var *x);
nl_var *nl_square(nl_ctx *c, nl_var *x);
nl_var *nl_softplus(nl_ctx *c, nl_var *x);

/* ---- matmul (CBLAS sgemm/dgemm) ----
 * 2-D: [M,K] @ [K,N]. Batched: [B..,M,K] @ [B..,K,N] with equal batch dims, or [B..,M,K] @ [K,N].
 * ta/tb transpose the last two dims of a/b first (no copy: transposed views also map to BLAS flags). */
nl_var *nl_matmul(nl_ctx *c, nl_var *a, nl_var *b);
nl_var *nl_matmul_t(nl_ctx *c, nl_var *a, nl_var *b, int ta, int tb);
/* y = x @ W^T + b: x [..., in], W [out, in], b [out] or NULL. */
nl_var *nl_linear(nl_ctx *c, nl_var *x, nl_var *W, nl_var *b);

/* ---- reductions ----
 * axis in [-ndim, ndim); NL_AXIS_ALL reduces everything to a scalar. keepdim keeps a size-1 axis.
 * max: gradient goes to the first maximal element. */
#define NL_AXIS_ALL 127
nl_var *nl_sum(nl_ctx *c, nl_var *x, int axis, int keepdim);
nl_var *nl_mean(nl_ctx *c, nl_var *x, int axis, int keepdim);
nl_var *nl_max(nl_ctx *c, nl_var *x, int axis, int keepdim);

/* ---- views and layout (zero-copy where possible; gradients flow through) ---- */
nl_var *nl_reshape(nl_ctx *c, nl_var *x, int ndim, const int64_t *shape); /* copies first if x is strided */
nl_var *nl_permute(nl_ctx *c, nl_var *x, const int *perm);
nl_var *nl_transpose(nl_ctx *c, nl_var *x, int d0, int d1);
nl_var *nl_slice(nl_ctx *c, nl_var *x, int dim, int64_t start, int64_t stop, int64_t step);
nl_var *nl_contiguous(nl_ctx *c, nl_var *x);

/* ---- low-level GEMM used by ops, benchmarks and methods (row-major, C = alpha op(A) op(B) + beta C) ---- */
void nl_gemm(nl_dtype dt, int ta, int tb, int64_t M, int64_t N, int64_t K, double alpha, const void *A, int64_t lda,
             const void *B, int64_t ldb, double beta, void *C, int64_t ldc);

/* ---- SiLU (src/ops/silu.c) ----
 * y = x * sigmoid(x) as one fused op (one pass each way, nothing saved but x); f32 and f64. */
nl_var *nl_silu(nl_ctx *c, nl_var *x);

#ifdef __cplusplus
}
#endif
#endif
