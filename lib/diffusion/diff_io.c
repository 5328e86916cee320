/* lib/diffusion I/O: UNet checkpoints (safetensors with the architecture in the metadata), PNG sample grids (zlib),
 * image loading and bilinear resizing. */
#include "diffusion/diffusion.h"
#include "nnlab/data.h"
#include "nnlab/safetensors.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

nl_status nl__unet_layout(const nl_unet_config *cfg, nl_params *ps); /* unet.c */

/* ---- checkpoints ---- */
nl_status nl_unet_save(const nl_unet *u, const char *path) { return nl_unet_save_ex(u, NULL, path); }

nl_status nl_unet_save_ex(const nl_unet *u, const nl_diffusion *d, const char *path) {
    nl_st_meta m;
    nl_status s = nl_st_meta_init(&m);
    if (s) return s;
    const nl_unet_config *c = &u->cfg;
    int64_t mult[NL_UNET_MAX_LEVELS];
    for (int l = 0; l < c->levels; l++) mult[l] = c->ch_mult[l];
    nl_st_meta_put_str(&m, "nnlab.model", "unet");
    nl_st_meta_put_str(&m, "nnlab.format", "1");
    nl_st_meta_put_str(&m, "nnlab.dtype", "f32");
    nl_st_meta_put_int(&m, "nnlab.image_size", c->image_size);
    nl_st_meta_put_int(&m, "nnlab.in_channels", c->in_channels);
    nl_st_meta_put_int(&m, "nnlab.base_channels", c->base_channels);
    nl_st_meta_put_int(&m, "nnlab.levels", c->levels);
    nl_st_meta_put_ints(&m, "nnlab.ch_mult", c->levels, mult);
    nl_st_meta_put_int(&m, "nnlab.groups", c->groups);
    nl_st_meta_put_int(&m, "nnlab.attn", c->attn);
    if (d) {
        nl_st_meta_put_int(&m, "diffusion.T", d->T);
        nl_st_meta_put_str(&m, "diffusion.schedule", d->kind == NL_DIFF_COSINE ? "cosine" : "linear");
    }
    char *json = nl_st_meta_json(&m);
    nl_st_meta_free(&m);
    if (!json) return nl_last_status();
    s = nl_safetensors_save(path, &u->ps, json);
    free(json);
    return s;
}

/* Architecture of an open checkpoint. */
static nl_status read_config(const nl_st_file *f, nl_unet_config *c) {
    const char *kind;
    nl_status s = nl_safetensors_metadata_str(f, "nnlab.model", &kind);
    if (s) return nl_set_error(NL_EFORMAT, "unet checkpoint %s: not an nnlab checkpoint (no nnlab.model)", f->path);
    if (strcmp(kind, "unet"))
        return nl_set_error(NL_EFORMAT, "unet checkpoint %s: holds a '%s' model, not a unet", f->path, kind);
    long long v[6];
    const char *keys[6] = {"nnlab.image_size", "nnlab.in_channels", "nnlab.base_channels", "nnlab.levels", "nnlab.groups",
                           "nnlab.attn"};
    for (int k = 0; k < 6; k++)
        if ((s = nl_safetensors_metadata_int(f, keys[k], 0, 1 << 20, &v[k]))) return s;
    memset(c, 0, sizeof *c);
    c->image_size = (int)v[0], c->in_channels = (int)v[1], c->base_channels = (int)v[2], c->levels = (int)v[3];
    c->groups = (int)v[4], c->attn = (int)v[5];
    int64_t mult[NL_UNET_MAX_LEVELS];
    int n = 0;
    if ((s = nl_safetensors_metadata_ints(f, "nnlab.ch_mult", 1, 16, NL_UNET_MAX_LEVELS, mult, &n))) return s;
    if (n != c->levels)
        return nl_set_error(NL_EFORMAT, "unet checkpoint %s: nnlab.ch_mult has %d entries for %d levels", f->path, n, c->levels);
    for (int l = 0; l < n; l++) c->ch_mult[l] = (int)mult[l];
    if ((s = nl_unet_config_check(c))) return nl_set_error(NL_EFORMAT, "unet checkpoint %s: %s", f->path, nl_last_error());
    return NL_OK;
}

/* The first field where a and b differ, or NULL. */
static const char *config_diff(const nl_unet_config *a, const nl_unet_config *b, char *buf, size_t n) {
#define CMP(field)                                                                                                   \
    if (a->field != b->field) {                                                                                   \
        snprintf(buf, n, #field " %d in the file, %d in the model", a->field, b->field);                          \
        return buf;                                                                                               \
    }
    CMP(image_size) CMP(in_channels) CMP(base_channels) CMP(levels) CMP(groups) CMP(attn)
    for (int l = 0; l < a->levels; l++) CMP(ch_mult[l])
#undef CMP
    return NULL;
}

static nl_status load_into(nl_unet *u, const nl_st_file *f) {
    nl_status s = nl_safetensors_copy_params(f, &u->ps, 1, NULL);
    if (s) return s;
    return nl_params_check_finite(&u->ps, f->path);
}

nl_status nl_unet_load(nl_unet *u, const char *path) {
    nl_st_file f;
    nl_status s = nl_safetensors_open(path, &f);
    if (s) return s;
    nl_unet_config c;
    char why[160];
    if (!(s = read_config(&f, &c))) {
        const char *d = config_diff(&c, &u->cfg, why, sizeof why);
        if (d) s = nl_set_error(NL_EFORMAT, "unet checkpoint %s: another architecture (%s)", path, d);
        else s = load_into(u, &f);
    }
    nl_safetensors_close(&f);
    return s;
}

nl_status nl_unet_load_new(nl_unet *u, const char *path) {
    memset(u, 0, sizeof *u);
    nl_st_file f;
    nl_status s = nl_safetensors_open(path, &f);
    if (s) return s;
    nl_unet_config c;
    nl_params lay;
    if (!(s = read_config(&f, &c)) && !(s = nl__unet_layout(&c, &lay))) {
        s = nl_safetensors_check_params(&f, &lay, 1); /* header against the architecture before allocating */
        nl_params_free(&lay);
        if (!s && !(s = nl_unet_init(u, &c, 0)) && (s = load_into(u, &f))) nl_unet_free(u);
    }
    nl_safetensors_close(&f);
    return s;
}

nl_status nl_diffusion_from_file(nl_diffusion *d, const char *path) {
    memset(d, 0, sizeof *d);
    nl_st_file f;
    nl_status s = nl_safetensors_open(path, &f);
    if (s) return s;
    long long T = 0;
    const char *kind = NULL;
    nl_diff_schedule k;
    if (!nl_safetensors_get_metadata(&f, "diffusion.T"))
        s = nl_set_error(NL_EFORMAT, "checkpoint %s: no noise schedule (diffusion.T) in the metadata", path);
    else if (!(s = nl_safetensors_metadata_int(&f, "diffusion.T", 2, 100000, &T)) &&
             !(s = nl_safetensors_metadata_str(&f, "diffusion.schedule", &kind))) {
        if (nl_diff_schedule_parse(kind, &k)) s = nl_set_error(NL_EFORMAT, "checkpoint %s: %s", path, nl_last_error());
        else s = nl_diffusion_init(d, (int)T, k);
    }
    nl_safetensors_close(&f);
    return s;
}

/* ---- PNG ---- */
static void be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static int chunk(FILE *f, const char *type, const uint8_t *data, uint32_t n) {
    uint8_t hdr[8];
    be32(hdr, n);
    memcpy(hdr + 4, type, 4);
    uLong crc = crc32(0L, (const Bytef *)type, 4);
    if (n) crc = crc32(crc, data, n);
    uint8_t cb[4];
    be32(cb, (uint32_t)crc);
    return fwrite(hdr, 1, 8, f) == 8 && (!n || fwrite(data, 1, n, f) == n) && fwrite(cb, 1, 4, f) == 4;
}

nl_status nl_png_write_gray(const char *path, const uint8_t *pix, int w, int h) {
    if (w < 1 || h < 1 || w > 1 << 15 || h > 1 << 15) return nl_set_error(NL_EINVAL, "png: bad size %dx%d", w, h);
    const size_t raw_n = (size_t)h * (size_t)(w + 1);
    uint8_t *raw = malloc(raw_n);
    uLongf zn = compressBound((uLong)raw_n);
    uint8_t *z = malloc(zn);
    nl_status s = NL_OK;
    FILE *f = NULL;
    if (!raw || !z) {
        s = nl_set_error(NL_ENOMEM, "png: out of memory");
        goto done;
    }
    for (int y = 0; y < h; y++) {
        raw[(size_t)y * (w + 1)] = 0; /* filter: none */
        memcpy(raw + (size_t)y * (w + 1) + 1, pix + (size_t)y * w, (size_t)w);
    }
    if (compress2(z, &zn, raw, (uLong)raw_n, 9) != Z_OK) {
        s = nl_set_error(NL_EIO, "png %s: zlib compression failed", path);
        goto done;
    }
    f = fopen(path, "wb");
    if (!f) {
        s = nl_set_error(NL_EIO, "png %s: cannot open for writing", path);
        goto done;
    }
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    uint8_t ihdr[13];
    be32(ihdr, (uint32_t)w);
    be32(ihdr + 4, (uint32_t)h);
    ihdr[8] = 8, ihdr[9] = 0, ihdr[10] = 0, ihdr[11] = 0, ihdr[12] = 0; /* 8-bit grey, deflate, no interlace */
    int ok = fwrite(sig, 1, 8, f) == 8 && chunk(f, "IHDR", ihdr, 13) && chunk(f, "IDAT", z, (uint32_t)zn) &&
             chunk(f, "IEND", NULL, 0);
    if (fclose(f) != 0) ok = 0;
    if (!ok) s = nl_set_error(NL_EIO, "png %s: write failed", path);
done:
    free(raw);
    free(z);
    return s;
}

nl_status nl_png_write_grid(const char *path, const float *x, int64_t n, int S, int cols) {
    if (n < 1 || S < 1 || cols < 1) return nl_set_error(NL_EINVAL, "png grid: need n, S, cols >= 1");
    if (cols > n) cols = (int)n;
    const int rows = (int)((n + cols - 1) / cols), W = cols * (S + 1) + 1, H = rows * (S + 1) + 1;
    if ((int64_t)W * H > (int64_t)1 << 28) return nl_set_error(NL_EINVAL, "png grid: image too large");
    uint8_t *pix = calloc((size_t)W * H, 1);
    if (!pix) return nl_set_error(NL_ENOMEM, "png grid: out of memory");
    for (int64_t i = 0; i < n; i++) {
        const int r = (int)(i / cols), c = (int)(i % cols);
        for (int y = 0; y < S; y++)
            for (int xx = 0; xx < S; xx++) {
                double v = (x[(i * S + y) * S + xx] + 1.0) * 127.5;
                v = v < 0 ? 0 : v > 255 ? 255 : v;
                pix[(size_t)(1 + r * (S + 1) + y) * W + 1 + c * (S + 1) + xx] = (uint8_t)lround(v);
            }
    }
    nl_status s = nl_png_write_gray(path, pix, W, H);
    free(pix);
    return s;
}

/* ---- images ---- */
void nl_image_resize(const float *src, int64_t n, int hs, int ws, float *dst, int hd, int wd) {
    const double sy = (double)hs / hd, sx = (double)ws / wd;
    for (int64_t i = 0; i < n; i++) {
        const float *s = src + i * hs * ws;
        float *d = dst + i * hd * wd;
        for (int y = 0; y < hd; y++) {
            double fy = (y + 0.5) * sy - 0.5;
            if (fy < 0) fy = 0;
            int y0 = (int)fy;
            if (y0 > hs - 1) y0 = hs - 1;
            const int y1 = y0 + 1 < hs ? y0 + 1 : hs - 1;
            const double wy = fy - y0;
            for (int x = 0; x < wd; x++) {
                double fx = (x + 0.5) * sx - 0.5;
                if (fx < 0) fx = 0;
                int x0 = (int)fx;
                if (x0 > ws - 1) x0 = ws - 1;
                const int x1 = x0 + 1 < ws ? x0 + 1 : ws - 1;
                const double wx = fx - x0;
                d[y * wd + x] = (float)((1 - wy) * ((1 - wx) * s[y0 * ws + x0] + wx * s[y0 * ws + x1]) +
                                        wy * ((1 - wx) * s[y1 * ws + x0] + wx * s[y1 * ws + x1]));
            }
        }
    }
}

nl_status nl_diffusion_load_images(const char *name, const char *split, unsigned class_mask, int size, int64_t at_most,
                                   float **x, int32_t **y, int64_t *n) {
    *x = NULL;
    if (y) *y = NULL;
    *n = 0;
    if (size < 4 || size > 256) return nl_set_error(NL_EINVAL, "diffusion images: size must be in 4..256 (got %d)", size);
    nl_dataset ds;
    nl_status s = nl_dataset_load(&ds, name, split, NULL);
    if (s) return s;
    const int hs = ds.height, ws = ds.width;
    int64_t keep = 0;
    for (int64_t i = 0; i < ds.n; i++)
        if (!class_mask || (class_mask >> ds.y[i] & 1u)) keep++;
    if (at_most > 0 && keep > at_most) keep = at_most;
    const int64_t D = (int64_t)size * size;
    float *out = malloc((size_t)(keep ? keep : 1) * D * sizeof(float));
    int32_t *lab = malloc((size_t)(keep ? keep : 1) * sizeof(int32_t));
    float *tmp = malloc((size_t)hs * ws * sizeof(float));
    if (!out || !lab || !tmp) {
        free(out), free(lab), free(tmp);
        nl_dataset_free(&ds);
        return nl_set_error(NL_ENOMEM, "diffusion images: out of memory");
    }
    int64_t k = 0;
    for (int64_t i = 0; i < ds.n && k < keep; i++) {
        if (class_mask && !(class_mask >> ds.y[i] & 1u)) continue;
        for (int64_t p = 0; p < (int64_t)hs * ws; p++) tmp[p] = 2.0f * ds.x[i * ds.d + p] - 1.0f;
        if (hs == size && ws == size) memcpy(out + k * D, tmp, (size_t)D * sizeof(float));
        else nl_image_resize(tmp, 1, hs, ws, out + k * D, size, size);
        lab[k++] = ds.y[i];
    }
    free(tmp);
    nl_dataset_free(&ds);
    *x = out;
    *n = k;
    if (y) *y = lab;
    else free(lab);
    return NL_OK;
}
