/* The sense layer of Disambiguated Skip-gram (methods/dsg/dsg.h): the sense distribution from the disambiguation
 * logits (a softmax, or a relaxed one-hot / Gumbel-softmax sample), its backward pass, and the entropy term of
 * pre-training. All in double over S <= NL_DSG_MAX_SENSES values (cheap next to the d-sized vectors around it). */
#include "dsg/dsg.h"
#include <math.h>

void nl_dsg_sense_probs(const double *logits, const double *gumbel, double temp, int S, double *y) {
    double m = -INFINITY;
    for (int s = 0; s < S; s++) {
        y[s] = (logits[s] + (gumbel ? gumbel[s] : 0.0)) / temp;
        if (y[s] > m) m = y[s];
    }
    double z = 0;
    for (int s = 0; s < S; s++) z += (y[s] = exp(y[s] - m));
    for (int s = 0; s < S; s++) y[s] /= z;
}

void nl_dsg_sense_backward(const double *y, const double *dy, double temp, int S, double *dlogits) {
    double yd = 0;
    for (int s = 0; s < S; s++) yd += y[s] * dy[s];
    for (int s = 0; s < S; s++) dlogits[s] = y[s] * (dy[s] - yd) / temp;
}

double nl_dsg_entropy(const double *p, int S, double *dp) {
    double h = 0;
    for (int s = 0; s < S; s++) {
        const double l = log(p[s] + NL_DSG_ENTROPY_EPS);
        h -= p[s] * l;
        if (dp) dp[s] = -l - p[s] / (p[s] + NL_DSG_ENTROPY_EPS);
    }
    return h;
}
