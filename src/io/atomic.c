/* Atomic file replacement: write a temp file next to the target, fsync it, rename it over the target. */
#include "nnlab/safetensors.h"
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void atomic_release(nl_atomic_file *af) {
    free(af->path);
    free(af->tmp);
    af->path = af->tmp = NULL;
    af->f = NULL;
}

nl_status nl_atomic_open(nl_atomic_file *af, const char *path) {
    memset(af, 0, sizeof *af);
    if (!path || !*path) return nl_set_error(NL_EINVAL, "atomic write: empty path");
    size_t n = strlen(path);
    af->path = malloc(n + 1);
    af->tmp = malloc(n + 16);
    if (!af->path || !af->tmp) {
        atomic_release(af);
        return nl_set_error(NL_ENOMEM, "atomic write %s: out of memory", path);
    }
    memcpy(af->path, path, n + 1);
    snprintf(af->tmp, n + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(af->tmp);
    if (fd < 0) {
        int e = errno;
        nl_status s = nl_set_error(NL_EIO, "cannot create temporary file %s: %s", af->tmp, strerror(e));
        atomic_release(af);
        return s;
    }
    struct stat st;
    mode_t mode = 0644;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) mode = st.st_mode & 07777;
    (void)fchmod(fd, mode);
    af->f = fdopen(fd, "wb");
    if (!af->f) {
        int e = errno;
        close(fd);
        unlink(af->tmp);
        nl_status s = nl_set_error(NL_EIO, "cannot open temporary file %s: %s", af->tmp, strerror(e));
        atomic_release(af);
        return s;
    }
    return NL_OK;
}

nl_status nl_atomic_write(nl_atomic_file *af, const void *p, size_t n) {
    if (!af->f) return nl_set_error(NL_ESTATE, "atomic write: file is not open");
    if (n && fwrite(p, 1, n, af->f) != n) {
        int e = errno;
        return nl_set_error(NL_EIO, "write to %s failed: %s", af->tmp, strerror(e));
    }
    return NL_OK;
}

void nl_atomic_abort(nl_atomic_file *af) {
    if (af->f) fclose(af->f);
    if (af->tmp) unlink(af->tmp);
    atomic_release(af);
}

nl_status nl_atomic_commit(nl_atomic_file *af) {
    if (!af->f) {
        atomic_release(af);
        return nl_set_error(NL_ESTATE, "atomic write: file is not open");
    }
    const char *step = NULL;
    int e = 0;
    if (ferror(af->f)) step = "write", e = EIO;
    else if (fflush(af->f) != 0) step = "write", e = errno;
    else if (fsync(fileno(af->f)) != 0) step = "fsync", e = errno;
    FILE *f = af->f;
    af->f = NULL;
    if (fclose(f) != 0 && !step) step = "close", e = errno;
    if (!step && rename(af->tmp, af->path) != 0) step = "rename", e = errno;
    if (step) {
        nl_status s = nl_set_error(NL_EIO, "saving %s failed (%s of %s: %s); the previous file, if any, is unchanged",
                                   af->path, step, af->tmp, strerror(e));
        unlink(af->tmp);
        atomic_release(af);
        return s;
    }
    /* make the rename durable: fsync the directory (best effort) */
    char *dcopy = strdup(af->path);
    if (dcopy) {
        int dfd = open(dirname(dcopy), O_RDONLY | O_DIRECTORY);
        if (dfd >= 0) {
            (void)fsync(dfd);
            close(dfd);
        }
        free(dcopy);
    }
    atomic_release(af);
    return NL_OK;
}

nl_status nl_mkdir_p(const char *dir) {
    if (!dir || !*dir) return nl_set_error(NL_EINVAL, "mkdir: empty directory path");
    size_t n = strlen(dir);
    char *p = malloc(n + 1);
    if (!p) return nl_set_error(NL_ENOMEM, "mkdir %s: out of memory", dir);
    memcpy(p, dir, n + 1);
    nl_status st = NL_OK;
    for (char *q = p + 1;; q++) {
        if (*q == '/' || *q == 0) {
            char c = *q;
            *q = 0;
            if (q[-1] != '/' && mkdir(p, 0755) && errno != EEXIST) {
                st = nl_set_error(NL_EIO, "cannot create directory %s: %s", p, strerror(errno));
                break;
            }
            *q = c;
            if (!c) break;
        }
    }
    free(p);
    if (st) return st;
    struct stat sb;
    if (stat(dir, &sb)) return nl_set_error(NL_EIO, "cannot create directory %s: %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode)) return nl_set_error(NL_EIO, "cannot create directory %s: it exists and is not a directory", dir);
    return NL_OK;
}
