/* Output of `nnlab kernel`: the matrix as CSV ("%.17g", like nl_csv_write) or as .npy (float64, C order), written by
 * one process, or by every MPI rank at its rows' offsets of one file (MPI-IO, docs/distributed.md). */
#include "nngp_ntk/nngp_ntk.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "nnlab/dist.h"
#include "nnlab/safetensors.h"

/* The .npy v1.0 header of an (n, m) '<f8' C-order array into h (>= 128 bytes); returns its length, a multiple of 64
 * (magic, version, header length, the dict padded with spaces, '\n'). */
static size_t npy_header(char *h, int64_t n, int64_t m) {
    char dict[96];
    int dl = snprintf(dict, sizeof dict, "{'descr': '<f8', 'fortran_order': False, 'shape': (%lld, %lld), }", (long long)n,
                      (long long)m);
    size_t total = (10 + (size_t)dl + 1 + 63) / 64 * 64, hl = total - 10;
    memcpy(h, "\x93NUMPY\x01\x00", 8);
    h[8] = (char)(hl & 0xff);
    h[9] = (char)(hl >> 8);
    memcpy(h + 10, dict, (size_t)dl);
    memset(h + 10 + dl, ' ', hl - (size_t)dl - 1);
    h[total - 1] = '\n';
    return total;
}

static int little_endian(void) {
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 1;
}

nl_status nl_nngp_ntk_write_npy(const char *path, int64_t n, int64_t m, const double *K) {
    if (!little_endian()) return nl_set_error(NL_ESTATE, "kernel: .npy output is written on little-endian hosts only");
    char h[128];
    size_t hl = npy_header(h, n, m), nb = sizeof(double) * (size_t)n * (size_t)m;
    if (!strcmp(path, "-")) {
        if (fwrite(h, 1, hl, stdout) != hl || (nb && fwrite(K, 1, nb, stdout) != nb) || fflush(stdout))
            return nl_set_error(NL_EIO, "kernel: writing the .npy to stdout failed");
        return NL_OK;
    }
    nl_atomic_file af;
    nl_status st = nl_atomic_open(&af, path);
    if (st) return st;
    if ((st = nl_atomic_write(&af, h, hl)) || (nb && (st = nl_atomic_write(&af, K, nb)))) {
        nl_atomic_abort(&af);
        return st;
    }
    return nl_atomic_commit(&af);
}

/* Bytes of row r of K (m entries) as nl_csv_write prints it; into buf when buf != NULL (room for the row). */
static int64_t csv_row(char *buf, const double *row, int64_t m) {
    char tmp[40];
    int64_t len = 0;
    for (int64_t j = 0; j < m; j++) {
        int l = snprintf(buf ? buf + len : tmp, 40, "%.17g%s", row[j], j + 1 < m ? "," : "\n");
        len += l;
    }
    return len;
}

nl_status nl_nngp_ntk_write_rows(const char *path, int npy, int64_t n, int64_t m, int64_t r0, int64_t r1,
                                 const double *K) {
    const int64_t nr = r1 - r0;
    nl_status st = NL_OK;
    int64_t *rowlen = NULL; /* (nr) CSV bytes of each row */
    char *buf = NULL; /* (cap + 48) bytes: one chunk of CSV text */
    int64_t cap = (int64_t)1 << 23, nch = 0, mine = 0; /* chunks of about 8 MB */
    if (npy) {
        if (!little_endian()) st = nl_set_error(NL_ESTATE, "kernel: .npy output is written on little-endian hosts only");
    } else {
        rowlen = malloc(sizeof(int64_t) * (size_t)(nr + 1));
        if (!rowlen) st = nl_set_error(NL_ENOMEM, "kernel: out of memory for %lld row lengths", (long long)nr);
        for (int64_t i = 0; i < nr && !st; i++) {
            rowlen[i] = csv_row(NULL, K + i * m, m);
            mine += rowlen[i];
            if (rowlen[i] > cap) cap = rowlen[i];
        }
        for (int64_t i = 0, acc = 0; i < nr && !st; i++) { /* chunk boundaries: a new chunk when the next row would overflow */
            if (i == 0 || acc + rowlen[i] > cap) { nch++; acc = 0; }
            acc += rowlen[i];
        }
        if (!st && nr > 0 && !(buf = malloc((size_t)cap + 48))) /* + snprintf's bound past the last row */
            st = nl_set_error(NL_ENOMEM, "kernel: out of memory for a %lld-byte CSV chunk", (long long)cap);
    }
    nl_dist_file f;
    if ((st = nl_dist_agree(st)) || (st = nl_dist_file_open(&f, path))) {
        free(rowlen); free(buf);
        return st;
    }
    if (npy) {
        char h[128];
        size_t hl = npy_header(h, n, m);
        st = nl_dist_file_write_at_all(&f, 0, h, nl_dist_rank() == 0 ? hl : 0);
        if (!st) st = nl_dist_file_write_at_all(&f, (int64_t)hl + r0 * m * (int64_t)sizeof(double), K, sizeof(double) * (size_t)(nr * m));
    } else {
        int64_t off = 0, rounds = nch;
        if (!(st = nl_dist_exscan_i64(mine, &off, NULL))) st = nl_dist_max_i64(&rounds);
        for (int64_t k = 0, i = 0; k < rounds && !st; k++) {
            int64_t len = 0;
            while (i < nr && (len == 0 || len + rowlen[i] <= cap)) { len += csv_row(buf + len, K + i * m, m); i++; }
            st = nl_dist_file_write_at_all(&f, off, buf, (size_t)len);
            off += len;
        }
    }
    nl_status st2 = nl_dist_file_close(&f);
    free(rowlen);
    free(buf);
    return st ? st : st2;
}
