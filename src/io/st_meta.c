/* safetensors __metadata__: a small builder for the writers (strings, integers, numbers and integer lists as
 * strings under the key scheme in include/nnlab/safetensors.h) and the strict string / list readers. */
#include "nnlab/safetensors.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

nl_status nl_st_meta_init(nl_st_meta *m) {
    m->status = NL_OK;
    m->json = cJSON_CreateObject();
    if (!m->json) return m->status = nl_set_error(NL_ENOMEM, "checkpoint metadata: out of memory");
    return NL_OK;
}

void nl_st_meta_free(nl_st_meta *m) {
    cJSON_Delete((cJSON *)m->json);
    m->json = NULL;
}

nl_status nl_st_meta_put_str(nl_st_meta *m, const char *key, const char *val) {
    if (m->status) return m->status;
    if (!m->json) return m->status = nl_set_error(NL_ESTATE, "checkpoint metadata: builder not initialised");
    if (!key || !*key || !val)
        return m->status = nl_set_error(NL_EINVAL, "checkpoint metadata: %s", !val ? "NULL value" : "empty key");
    cJSON *o = m->json;
    cJSON_DeleteItemFromObjectCaseSensitive(o, key);
    cJSON *s = cJSON_CreateString(val);
    if (!s || !cJSON_AddItemToObject(o, key, s)) {
        cJSON_Delete(s);
        return m->status = nl_set_error(NL_ENOMEM, "checkpoint metadata \"%s\": out of memory", key);
    }
    return NL_OK;
}

nl_status nl_st_meta_put_int(nl_st_meta *m, const char *key, long long v) {
    char b[32];
    snprintf(b, sizeof b, "%lld", v);
    return nl_st_meta_put_str(m, key, b);
}

nl_status nl_st_meta_put_num(nl_st_meta *m, const char *key, double v) {
    if (m->status) return m->status;
    if (!isfinite(v))
        return m->status = nl_set_error(NL_EINVAL, "checkpoint metadata \"%s\": value %g is not finite", key ? key : "(null)", v);
    char b[40];
    snprintf(b, sizeof b, "%.17g", v); /* 17 significant digits: strtod gives back the same double */
    return nl_st_meta_put_str(m, key, b);
}

nl_status nl_st_meta_put_ints(nl_st_meta *m, const char *key, int n, const int64_t *v) {
    if (m->status) return m->status;
    if (n < 0 || (n > 0 && !v)) return m->status = nl_set_error(NL_EINVAL, "checkpoint metadata \"%s\": bad list", key ? key : "(null)");
    char *b = malloc((size_t)n * 21 + 1);
    if (!b) return m->status = nl_set_error(NL_ENOMEM, "checkpoint metadata: out of memory");
    size_t len = 0;
    b[0] = 0;
    for (int i = 0; i < n; i++) len += (size_t)sprintf(b + len, i ? ",%lld" : "%lld", (long long)v[i]);
    nl_status st = nl_st_meta_put_str(m, key, b);
    free(b);
    return st;
}

char *nl_st_meta_json(nl_st_meta *m) {
    if (m->status) return NULL; /* the error of the failed put is still the last error */
    if (!m->json) {
        m->status = nl_set_error(NL_ESTATE, "checkpoint metadata: builder not initialised");
        return NULL;
    }
    char *s = cJSON_PrintUnformatted((cJSON *)m->json);
    if (!s) m->status = nl_set_error(NL_ENOMEM, "checkpoint metadata: out of memory");
    return s;
}

nl_status nl_safetensors_metadata_str(const nl_st_file *f, const char *key, const char **out) {
    *out = nl_safetensors_get_metadata(f, key);
    if (!*out) return nl_set_error(NL_EFORMAT, "%s: checkpoint metadata lacks \"%s\"", f->path, key);
    return NL_OK;
}

nl_status nl_safetensors_metadata_ints(const nl_st_file *f, const char *key, long long lo, long long hi, int maxn,
                                       int64_t *v, int *n) {
    const char *s;
    nl_status st = nl_safetensors_metadata_str(f, key, &s);
    if (st) return st;
    *n = 0;
    const char *p = s;
    for (;;) {
        char *end;
        errno = 0;
        long long x = strtoll(p, &end, 10);
        if (errno || end == p || x < lo || x > hi || *n >= maxn)
            return nl_set_error(NL_EFORMAT, "%s: metadata \"%s\" = \"%s\" is not a list of at most %d integers in [%lld, %lld]",
                                f->path, key, s, maxn, lo, hi);
        v[(*n)++] = x;
        if (!*end) break;
        if (*end != ',')
            return nl_set_error(NL_EFORMAT, "%s: metadata \"%s\" = \"%s\" is not a comma-separated list", f->path, key, s);
        p = end + 1;
    }
    return NL_OK;
}
