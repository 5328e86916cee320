/* fuzz/fuzz_bnn_load.c — lib/bnn's packed-model loader (nl_bnn_model_load: header, CRC, layer table, offsets, byte
 * counts, bit tails, flips, finite floats) on the fuzz input as a file; then the biper method's architecture loader
 * (nl_biper_packed_load: nl_bnn_model_expect per layer, channels, version) and, for a file both accept, packed
 * inference on two images, so that what the loaders let through is also safe to run. */
#include "fuzz_common.h"
#include "bnn/bnn.h"
#include "biper/biper.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    nl_fuzz_init("bnn_load");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = nl_fuzz_write(data, size);
    if (!path) return 0;
    nl_bnn_model m;
    nl_bnn_model_init(&m);
    if (nl_bnn_model_load(&m, path) != NL_OK) {
        if (m.n_layers != 0) abort(); /* a refused file leaves the model empty */
        return 0;
    }
    for (int i = 0; i < m.n_layers; i++) {
        const nl_bnn_layer *l = &m.layers[i];
        int64_t nb = nl_bnn_layer_bytes(l);
        if (nb < 0 || (nb > 0 && !l->data)) abort(); /* a loaded layer is valid and has its data */
        if (nb > 0) {
            volatile uint8_t sink = ((const uint8_t *)l->data)[nb - 1]; /* the whole array is readable */
            (void)sink;
        }
    }
    nl_bnn_model_free(&m);
    nl_biper_packed *p = NULL;
    if (nl_biper_packed_load(path, &p) != NL_OK) {
        if (p) abort();
        return 0;
    }
    static float x[2 * 784]; /* [2, 784]: zeros and a ramp */
    for (int i = 0; i < 784; i++) x[784 + i] = (float)(i % 28) / 14.0f - 1.0f;
    int32_t pred[2] = {-1, -1};
    if (nl_biper_packed_predict(p, x, 2, pred) == NL_OK && (pred[0] < 0 || pred[0] > 9 || pred[1] < 0 || pred[1] > 9)) abort();
    nl_biper_packed_free(p);
    return 0;
}
