/* Mixed text + LongChat-Lines training batches (transformer.h nl_lm_mix_batcher): a general language model that
 * can also retrieve. Text rows are byte windows of a corpus (ids 0..255, next-byte targets); Lines rows are
 * nl_lines_batch rows with every token id shifted by lines_offset (so that both share one vocabulary). */
#include "transformer/transformer.h"
#include <string.h>

int nl_lm_mix_vocab(int32_t lines_offset) { return lines_offset + nl_lines_vocab(); }

nl_status nl_lm_mix_batch(void *ud, int64_t step, int64_t B, int64_t T, int32_t *ids, int32_t *tg) {
    nl_lm_mix_batcher *u = ud;
    if (!(u->lines_frac >= 0 && u->lines_frac <= 1))
        return nl_set_error(NL_EINVAL, "mix batch: lines_frac must be in [0, 1] (got %g)", u->lines_frac);
    if (u->lines_offset < 0) return nl_set_error(NL_EINVAL, "mix batch: lines_offset must be >= 0 (got %d)", (int)u->lines_offset);
    if (u->lines_frac < 1 && (!u->text || u->n_text < T + 1))
        return nl_set_error(NL_EINVAL, "mix batch: a text row of %lld tokens needs a corpus of at least %lld tokens (have %lld)",
                            (long long)T, (long long)(T + 1), (long long)(u->text ? u->n_text : 0));
    for (int64_t b = 0; b < B; b++) {
        int32_t *row = ids + b * T, *trow = tg + b * T;   /* (T) each */
        if (u->lines_frac > 0 && nl_rng_uniform(&u->rng) < u->lines_frac) {
            nl_status st = nl_lines_batch(&u->lines, step, 1, T, row, trow);
            if (st) return st;
            for (int64_t t = 0; t < T; t++) {
                row[t] += u->lines_offset;
                if (trow[t] >= 0) trow[t] += u->lines_offset;
            }
        } else {
            const int64_t s = (int64_t)nl_rng_below(&u->rng, (uint64_t)(u->n_text - T));   /* start in [0, n - T - 1] */
            memcpy(row, u->text + s, sizeof(int32_t) * (size_t)T);
            memcpy(trow, u->text + s + 1, sizeof(int32_t) * (size_t)T);
        }
    }
    return NL_OK;
}
