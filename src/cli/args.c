/* Strict command-line parsing: every number is checked with an end pointer and a range. */
#include "nnlab/cli.h"
#include "nnlab/base.h"
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int nl_cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "nnlab%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see 'nnlab %s%s--help')\n", cmd ? cmd : "", cmd ? " " : "");
    return NL_CLI_USAGE;
}

int nl_cli_parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out, char *err, size_t n) {
    char *end;
    errno = 0;
    if (!s || !*s) { snprintf(err, n, "empty value (expected an integer)"); return -1; }
    long long v = strtoll(s, &end, 10);
    if (end == s || *end) { snprintf(err, n, "'%s' is not an integer", s); return -1; }
    if (errno == ERANGE || v < lo || v > hi) {
        snprintf(err, n, "%s is out of range [%lld, %lld]", s, (long long)lo, (long long)hi);
        return -1;
    }
    *out = v;
    return 0;
}

int nl_cli_parse_double(const char *s, double lo, double hi, int lo_open, double *out, char *err, size_t n) {
    char *end;
    errno = 0;
    if (!s || !*s) { snprintf(err, n, "empty value (expected a number)"); return -1; }
    double v = strtod(s, &end);
    if (end == s || *end) { snprintf(err, n, "'%s' is not a number", s); return -1; }
    if (!isfinite(v) || errno == ERANGE) { snprintf(err, n, "%s is not a finite number in range", s); return -1; }
    if (v > hi || v < lo || (lo_open && v == lo)) {
        snprintf(err, n, "%s is out of range %s%g, %g]", s, lo_open ? "(" : "[", lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int nl_cli_parse_list(const char *s, int64_t lo, int64_t hi, int max, int64_t *out, int *n, char *err, size_t errn) {
    *n = 0;
    if (!s || !*s) { snprintf(err, errn, "empty list"); return -1; }
    const char *p = s;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char item[64];
        if (len == 0 || len >= sizeof item) { snprintf(err, errn, "'%s' is not a comma-separated list of integers", s); return -1; }
        memcpy(item, p, len);
        item[len] = 0;
        if (*n >= max) { snprintf(err, errn, "'%s' has more than %d entries", s, max); return -1; }
        char e2[128];
        if (nl_cli_parse_int(item, lo, hi, &out[*n], e2, sizeof e2)) { snprintf(err, errn, "in '%s': %s", s, e2); return -1; }
        (*n)++;
        if (!comma) break;
        p = comma + 1;
    }
    return 0;
}

int nl_cli_parse(const char *cmd, int argc, char **argv, nl_cli_opt *opts, int n_opts, const char **pos, int max_pos, int *n_pos,
              int *help) {
    *n_pos = 0;
    *help = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            *help = 1;
            continue;
        }
        if (a[0] != '-' || !strcmp(a, "-")) {
            if (*n_pos >= max_pos) {
                if (max_pos == 0) return nl_cli_usage_error(cmd, "unexpected argument '%s'", a);
                return nl_cli_usage_error(cmd, "too many arguments ('%s')", a);
            }
            pos[(*n_pos)++] = a;
            continue;
        }
        if (a[1] != '-') return nl_cli_usage_error(cmd, "unknown option '%s' (options are spelled --name)", a);
        char name[64];
        const char *eq = strchr(a, '=');
        size_t nl = eq ? (size_t)(eq - a) : strlen(a);
        if (nl >= sizeof name) return nl_cli_usage_error(cmd, "unknown option '%.40s...'", a);
        memcpy(name, a, nl);
        name[nl] = 0;
        nl_cli_opt *o = NULL;
        for (int k = 0; k < n_opts; k++)
            if (!strcmp(opts[k].name, name)) o = &opts[k];
        if (!o) return nl_cli_usage_error(cmd, "unknown option '%s'", name);
        o->seen = 1;
        if (o->type == NL_OPT_FLAG) {
            if (eq) return nl_cli_usage_error(cmd, "option %s takes no value", name);
            *(int *)o->dst = 1;
            continue;
        }
        const char *val;
        if (eq) val = eq + 1;
        else {
            if (i + 1 >= argc || (argv[i + 1][0] == '-' && argv[i + 1][1] == '-'))
                return nl_cli_usage_error(cmd, "option %s needs a value (%s)", name, o->metavar ? o->metavar : "VALUE");
            val = argv[++i];
        }
        char err[256];
        switch (o->type) {
        case NL_OPT_INT:
            if (nl_cli_parse_int(val, (int64_t)o->lo, (int64_t)o->hi, (int64_t *)o->dst, err, sizeof err))
                return nl_cli_usage_error(cmd, "%s: %s", name, err);
            break;
        case NL_OPT_DOUBLE:
            if (nl_cli_parse_double(val, o->lo, o->hi, o->lo_open, (double *)o->dst, err, sizeof err))
                return nl_cli_usage_error(cmd, "%s: %s", name, err);
            break;
        case NL_OPT_STR:
            if (!*val) return nl_cli_usage_error(cmd, "%s: empty value", name);
            *(const char **)o->dst = val;
            break;
        default: break;
        }
    }
    return NL_CLI_OK;
}

void nl_cli_threads(int64_t threads, int seen) {
    if (seen) nl_set_num_threads((int)threads);
    else nl_threads_init();
}

int nl_cli_check_output_file(const char *cmd, const char *flag, const char *path) {
    const char *why = NULL;
    char dir[4096];
    struct stat st;
    if (!path || !*path) {
        why = "the file name is empty";
    } else if (strlen(path) >= sizeof dir) {
        why = "the path is too long";
    } else {
        const char *slash = strrchr(path, '/');
        if (!slash) snprintf(dir, sizeof dir, ".");
        else if (slash == path) snprintf(dir, sizeof dir, "/");
        else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
        if (slash && !slash[1]) why = "names a directory, not a file";
        else if (stat(dir, &st) != 0) why = errno == ENOTDIR ? "a component of its directory is not a directory" : "its directory does not exist";
        else if (!S_ISDIR(st.st_mode)) why = "its directory is not a directory";
        else if (access(dir, W_OK | X_OK) != 0) why = "its directory is not writable";
        else if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) why = "is a directory";
    }
    if (!why) return NL_CLI_OK;
    fprintf(stderr, "nnlab%s%s: %s%s'%s': %s (checked before any work starts)\n", cmd ? " " : "", cmd ? cmd : "",
            flag ? flag : "", flag ? " " : "", path ? path : "", why);
    return NL_CLI_FAIL;
}

int nl_cli_seen(const nl_cli_opt *opts, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(opts[i].name, name)) return opts[i].seen;
    return 0;
}

int nl_cli_subcommands(const char *cmd, int argc, char **argv, void (*help)(FILE *f), const nl_cli_sub *subs, int n) {
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h") || !strcmp(argv[0], "help")) {
        help(argc < 1 ? stderr : stdout);
        return argc < 1 ? NL_CLI_USAGE : NL_CLI_OK;
    }
    char names[256] = ""; /* "a, b" for the message */
    size_t used = 0;
    for (int i = 0; i < n; i++) {
        if (!strcmp(argv[0], subs[i].name)) return subs[i].run(argc - 1, argv + 1);
        int w = snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "", subs[i].name);
        if (w > 0) used = used + (size_t)w < sizeof names ? used + (size_t)w : sizeof names - 1;
    }
    return nl_cli_usage_error(cmd, "unknown subcommand '%s' (%s)", argv[0], names);
}
