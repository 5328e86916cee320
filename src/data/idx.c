/* IDX reader (MNIST format), plain or gzip. Strict: magic, sizes, exact byte count, no trailing bytes. */
#include "nnlab/data.h"
#include "nnlab/safetensors.h" /* nl_open_regular */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

typedef struct src {
    FILE *f;
    const char *path;
    int gz;             /* gzip: inflate through z */
    int z_init, z_done; /* z_done: last member ended and no more input */
    int truncated;      /* input ended inside a gzip member */
    int garbage;        /* non-gzip bytes after the last member */
    z_stream z;
    unsigned char *in;  /* (SRC_BUF) compressed input */
} src;

#define SRC_BUF (1 << 16)

/* Refill the gzip input buffer; returns bytes now available, 0 at end of file, -1 on error (set). */
static int64_t src_fill(src *s) {
    if (s->z.avail_in) return s->z.avail_in;
    size_t r = fread(s->in, 1, SRC_BUF, s->f);
    if (r == 0 && ferror(s->f)) {
        nl_set_error(NL_EIO, "file %s: read error: %s", s->path, strerror(errno));
        return -1;
    }
    s->z.next_in = s->in;
    s->z.avail_in = (uInt)r;
    return (int64_t)r;
}

/* Read up to n bytes of (decompressed) content; returns the count (short only at end of input), or -1 with
 * the error set (I/O error, corrupt gzip stream). */
static int64_t src_read(src *s, void *buf, int64_t n) {
    int64_t got = 0;
    if (!s->gz) {
        while (got < n) {
            size_t r = fread((char *)buf + got, 1, (size_t)(n - got), s->f);
            if (r == 0) {
                if (ferror(s->f)) {
                    nl_set_error(NL_EIO, "file %s: read error: %s", s->path, strerror(errno));
                    return -1;
                }
                break;
            }
            got += (int64_t)r;
        }
        return got;
    }
    while (got < n && !s->z_done) {
        int64_t a = src_fill(s);
        if (a < 0) return -1;
        if (a == 0) { /* end of file inside a member */
            s->truncated = 1;
            s->z_done = 1;
            break;
        }
        int64_t want = n - got > (1 << 30) ? (1 << 30) : n - got;
        s->z.next_out = (Bytef *)buf + got;
        s->z.avail_out = (uInt)want;
        int r = inflate(&s->z, Z_NO_FLUSH);
        got += want - (int64_t)s->z.avail_out;
        if (r == Z_STREAM_END) {
            /* another gzip member may follow (concatenated .gz files); anything else is garbage */
            int64_t b = src_fill(s);
            if (b < 0) return -1;
            if (b == 0) s->z_done = 1;
            else if (s->z.next_in[0] != 0x1f) {
                s->garbage = 1;
                s->z_done = 1;
            } else inflateReset(&s->z);
        } else if (r != Z_OK && r != Z_BUF_ERROR) {
            nl_set_error(r == Z_MEM_ERROR ? NL_ENOMEM : NL_EFORMAT, "file %s: corrupt gzip stream: %s", s->path,
                         s->z.msg ? s->z.msg : "inflate failed");
            return -1;
        }
    }
    return got;
}

/* After the payload and the trailing-data probe: the gzip stream must have ended cleanly. */
static nl_status src_check_end(src *s) {
    if (!s->gz) return NL_OK;
    if (s->truncated)
        return nl_set_error(NL_EFORMAT, "file %s: truncated gzip stream (the gzip trailer is missing)", s->path);
    if (s->garbage) return nl_set_error(NL_EFORMAT, "file %s: trailing garbage after the gzip stream", s->path);
    return NL_OK;
}

static void src_close(src *s) {
    if (s->z_init) inflateEnd(&s->z);
    if (s->f) fclose(s->f);
    free(s->in);
    s->in = NULL;
    s->z_init = 0;
    s->f = NULL;
}

void nl_idx_free(nl_idx *m) {
    if (!m) return;
    free(m->data);
    memset(m, 0, sizeof *m);
}

nl_status nl_idx_read(const char *path, nl_idx *out) { return nl_idx_read_expect(path, NULL, out); }

/* deflate inflates at most 1032 bytes per input byte; a gzip file claiming more content than that is truncated */
#define GZ_MAX_RATIO 1032

nl_status nl_idx_read_expect(const char *path, const nl_idx_expect *want, nl_idx *out) {
    memset(out, 0, sizeof *out);
    src s;
    memset(&s, 0, sizeof s);
    s.path = path;
    FILE *f;
    uint64_t fsize;
    nl_status st0 = nl_open_regular(path, 0, &f, &fsize);
    if (st0) return st0;
    unsigned char mg[2];
    size_t nm = fread(mg, 1, 2, f);
    if (nm == 0) {
        int err = ferror(f);
        fclose(f);
        if (err) return nl_set_error(NL_EIO, "file %s: read error", path);
        return nl_set_error(NL_EFORMAT, "file %s: empty file (0 bytes), expected an IDX header", path);
    }
    int is_gz = nm == 2 && mg[0] == 0x1f && mg[1] == 0x8b;
    rewind(f);
    s.f = f;
    if (is_gz) {
        s.gz = 1;
        s.in = malloc(SRC_BUF);
        if (!s.in || inflateInit2(&s.z, 16 + MAX_WBITS) != Z_OK) {
            free(s.in);
            fclose(f);
            return nl_set_error(NL_ENOMEM, "file %s: cannot initialise zlib", path);
        }
        s.z_init = 1;
    }
    nl_status st = NL_OK;
    unsigned char hdr[4 + 4 * 255];
    int64_t got = src_read(&s, hdr, 4);
    if (got < 0) goto fail_set;
    if (got == 0 && s.truncated) {
        st = nl_set_error(NL_EFORMAT, "file %s: truncated gzip stream: ends before any IDX data", path);
        goto fail;
    }
    if (got == 0) {
        st = nl_set_error(NL_EFORMAT, "file %s: empty after decompression, expected an IDX header", path);
        goto fail;
    }
    if (got < 4) {
        st = nl_set_error(NL_EFORMAT, "file %s: truncated: expected 4 bytes of IDX magic, got %lld", path,
                          (long long)got);
        goto fail;
    }
    if (hdr[0] != 0 || hdr[1] != 0) {
        st = nl_set_error(NL_EFORMAT, "file %s: not an IDX file (magic %02x %02x %02x %02x, expected 00 00 08 <ndim>)",
                          path, hdr[0], hdr[1], hdr[2], hdr[3]);
        goto fail;
    }
    if (hdr[2] != 0x08) {
        st = nl_set_error(NL_EFORMAT, "file %s: IDX element type 0x%02x not supported (only 0x08 = unsigned byte)", path,
                          hdr[2]);
        goto fail;
    }
    int ndim = hdr[3];
    if (ndim < 1 || ndim > NL_IDX_MAXDIM) {
        st = nl_set_error(NL_EFORMAT, "file %s: IDX dimension count %d out of range (1..%d)", path, ndim,
                          NL_IDX_MAXDIM);
        goto fail;
    }
    got = src_read(&s, hdr + 4, 4 * ndim);
    if (got < 0) goto fail_set;
    if (got < 4 * ndim) {
        st = nl_set_error(NL_EFORMAT, "file %s: truncated: expected %d bytes of IDX dimensions, got %lld", path,
                          4 * ndim, (long long)got);
        goto fail;
    }
    if (want && want->ndim && ndim != want->ndim) {
        st = nl_set_error(NL_EFORMAT, "file %s: %d IDX dimensions, expected %d%s%s", path, ndim, want->ndim,
                          want->what ? " " : "", want->what ? want->what : "");
        goto fail;
    }
    int64_t numel = 1;
    out->ndim = ndim;
    for (int d = 0; d < NL_IDX_MAXDIM; d++) out->dims[d] = 1;
    for (int d = 0; d < ndim; d++) {
        const unsigned char *p = hdr + 4 + 4 * d;
        uint32_t v = ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
        if (v == 0) {
            st = nl_set_error(NL_EFORMAT, "file %s: IDX dimension %d is 0", path, d);
            goto fail;
        }
        out->dims[d] = v;
        numel *= v; /* at most 2^31 * 2^32 before the check below: no overflow */
        if (numel > NL_IDX_MAX_ELEMS) {
            st = nl_set_error(NL_EFORMAT, "file %s: IDX sizes give more than 2^31 elements (refused)", path);
            goto fail;
        }
    }
    out->numel = numel;
    /* the geometry against the caller's expectation and the file's size, before anything is allocated */
    for (int d = 0; want && d < ndim; d++)
        if (want->dims[d] && out->dims[d] != want->dims[d]) {
            st = nl_set_error(NL_EFORMAT, "file %s: IDX dimension %d is %lld, expected %lld%s%s", path, d,
                              (long long)out->dims[d], (long long)want->dims[d], want->what ? " " : "",
                              want->what ? want->what : "");
            goto fail;
        }
    if (want && want->max_elems && numel > want->max_elems) {
        st = nl_set_error(NL_EFORMAT, "file %s: IDX sizes give %lld elements, more than the limit of %lld%s%s", path,
                          (long long)numel, (long long)want->max_elems, want->what ? " " : "",
                          want->what ? want->what : "");
        goto fail;
    }
    const char *what = ndim >= 3 ? "image data" : ndim == 1 ? "label data" : "data";
    uint64_t hbytes = 4 + 4 * (uint64_t)ndim;
    if (!is_gz && fsize - hbytes < (uint64_t)numel) {
        st = nl_set_error(NL_EFORMAT, "file %s: truncated: expected %lld bytes of %s, got %lld", path,
                          (long long)numel, what, (long long)(fsize - hbytes));
        goto fail;
    }
    if (!is_gz && fsize - hbytes > (uint64_t)numel) {
        st = nl_set_error(NL_EFORMAT, "file %s: trailing data after the %lld bytes of %s", path, (long long)numel,
                          what);
        goto fail;
    }
    if (is_gz && (uint64_t)numel + hbytes > fsize * GZ_MAX_RATIO) {
        st = nl_set_error(NL_EFORMAT, "file %s: truncated: %lld bytes of %s cannot come from %llu bytes of gzip "
                                      "(deflate expands at most %d times)",
                          path, (long long)numel, what, (unsigned long long)fsize, GZ_MAX_RATIO);
        goto fail;
    }
    out->data = malloc((size_t)numel);
    if (!out->data) {
        st = nl_set_error(NL_ENOMEM, "file %s: out of memory (%lld bytes)", path, (long long)numel);
        goto fail;
    }
    got = src_read(&s, out->data, numel);
    if (got < 0) goto fail_set;
    if (got < numel) {
        st = nl_set_error(NL_EFORMAT, "file %s: truncated: expected %lld bytes of %s, got %lld", path,
                          (long long)numel, what, (long long)got);
        goto fail;
    }
    unsigned char extra[64];
    got = src_read(&s, extra, sizeof extra);
    if (got < 0) goto fail_set;
    if (got > 0) {
        st = nl_set_error(NL_EFORMAT, "file %s: trailing data after the %lld bytes of %s", path, (long long)numel,
                          what);
        goto fail;
    }
    st = src_check_end(&s);
    if (st) goto fail;
    src_close(&s);
    return NL_OK;
fail_set:
    st = nl_last_status();
fail:
    src_close(&s);
    nl_idx_free(out);
    return st;
}
