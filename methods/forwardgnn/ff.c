/* Forward-forward loss of ForwardGNN (forwardgnn.h): logit = sum_j y_j^2 - theta, BCE. */
#include "forwardgnn/forwardgnn.h"
#include <math.h>
#include <string.h>

nl_var *nl_fgnn_ff_loss(nl_ctx *c, nl_var *H, const int8_t *sign, double theta) {
    const int64_t n = H->val.shape[0];
    int64_t cnt = 0;
    nl_var *flip = nl_new(c, H->val.dtype, 1, &n); /* (n) -1 positive, +1 negative, 0 ignored */
    nl_var *mask = nl_new(c, H->val.dtype, 1, &n); /* (n) 1 where sign != 0 */
    if (!flip || !mask) return NULL;
    for (int64_t i = 0; i < n; i++) {
        const double f = sign[i] > 0 ? -1.0 : sign[i] < 0 ? 1.0 : 0.0;
        if (H->val.dtype == NL_F32) ((float *)flip->val.data)[i] = (float)f, ((float *)mask->val.data)[i] = sign[i] != 0;
        else ((double *)flip->val.data)[i] = f, ((double *)mask->val.data)[i] = sign[i] != 0;
        cnt += sign[i] != 0;
    }
    if (!cnt) {
        nl_set_error(NL_EINVAL, "forwardgnn ff loss: no node has a sign");
        return NULL;
    }
    nl_var *v = nl_square(c, H);                 /* [n, D] */
    if (v) v = nl_sum(c, v, 1, 0);               /* [n] goodness */
    if (v) v = nl_add_scalar(c, v, -theta);      /* [n] logit z */
    /* BCE(sigmoid(z), 1) = softplus(-z); BCE(sigmoid(z), 0) = softplus(z) */
    if (v) v = nl_mul(c, v, flip);
    if (v) v = nl_softplus(c, v);
    if (v) v = nl_mul(c, v, mask);
    if (v) v = nl_sum(c, v, 0, 0);
    return v ? nl_mul_scalar(c, v, 1.0 / (double)cnt) : NULL;
}
