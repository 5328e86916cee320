/* Atomic file replacement: write a temp file next to the target, fsync it, rename it over the target; stale
 * temp files of killed saves are removed. Also nl_open_regular: open an input file that must be a regular file. */
#include "nnlab/safetensors.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *file_kind(mode_t m) {
    return S_ISDIR(m) ? "a directory" : S_ISFIFO(m) ? "a FIFO" : S_ISCHR(m) ? "a character device" :
           S_ISBLK(m) ? "a block device" : S_ISSOCK(m) ? "a socket" : "not a regular file";
}

nl_status nl_open_regular(const char *path, uint64_t max_bytes, FILE **fp, uint64_t *size) {
    *fp = NULL;
    if (size) *size = 0;
    if (!path || !*path) return nl_set_error(NL_EINVAL, "open: empty path");
    struct stat sb;
    if (stat(path, &sb) != 0) { /* stat first: opening a FIFO for reading would block */
        int e = errno;
        return nl_set_error(e == ENOENT ? NL_ENOTFOUND : NL_EIO, "cannot open %s: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode))
        return nl_set_error(NL_EIO, "file %s: not a regular file (it is %s)", path, file_kind(sb.st_mode));
    if (max_bytes && (uint64_t)sb.st_size > max_bytes)
        return nl_set_error(NL_EFORMAT, "file %s: %llu bytes, more than the limit of %llu bytes", path,
                            (unsigned long long)sb.st_size, (unsigned long long)max_bytes);
    /* O_NONBLOCK: should the path be swapped for a FIFO after the stat, the open still returns at once and the
     * fstat below refuses it */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return nl_set_error(e == ENOENT ? NL_ENOTFOUND : NL_EIO, "cannot open %s: %s", path, strerror(e));
    }
    struct stat fb;
    if (fstat(fd, &fb) != 0 || !S_ISREG(fb.st_mode) || fb.st_dev != sb.st_dev || fb.st_ino != sb.st_ino) {
        close(fd);
        return nl_set_error(NL_EIO, "file %s: not a regular file (or replaced while opening)", path);
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        int e = errno;
        close(fd);
        return nl_set_error(NL_EIO, "cannot open %s: %s", path, strerror(e));
    }
    *fp = f;
    if (size) *size = (uint64_t)fb.st_size;
    return NL_OK;
}

static void atomic_release(nl_atomic_file *af) {
    free(af->path);
    free(af->tmp);
    af->path = af->tmp = NULL;
    af->f = NULL;
}

/* The temp name: <path>.tmp.XXXXXX, six characters of [A-Za-z0-9] (the pattern mkstemp used before). */
#define TMP_SUFFIX ".tmp."
#define TMP_RAND 6
static const char g_tmp_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

static int is_temp_of(const char *name, const char *base, size_t bl) {
    if (strncmp(name, base, bl) || strncmp(name + bl, TMP_SUFFIX, sizeof TMP_SUFFIX - 1)) return 0;
    const char *r = name + bl + sizeof TMP_SUFFIX - 1;
    size_t k = 0;
    for (; r[k]; k++)
        if (!memchr(g_tmp_chars, r[k], sizeof g_tmp_chars - 1)) return 0;
    return k == TMP_RAND;
}

/* Remove <path>.tmp.XXXXXX files left by killed saves. A save in progress holds an flock on its temp file, so a
 * file whose lock can be taken belongs to no live writer; only regular files are touched (never followed). */
static void remove_stale_temps(const char *path) {
    char *dcopy = strdup(path), *bcopy = strdup(path);
    if (!dcopy || !bcopy) goto out;
    const char *dir = dirname(dcopy), *base = basename(bcopy);
    size_t bl = strlen(base), dl = strlen(dir);
    DIR *d = opendir(dir);
    if (!d) goto out;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!is_temp_of(e->d_name, base, bl)) continue;
        size_t nl = dl + 1 + strlen(e->d_name) + 1;
        char *full = malloc(nl);
        if (!full) break;
        snprintf(full, nl, "%s/%s", dir, e->d_name);
        struct stat sb;
        int fd = -1;
        if (lstat(full, &sb) == 0 && S_ISREG(sb.st_mode) &&
            (fd = open(full, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0)
            (void)unlink(full);
        if (fd >= 0) close(fd); /* releases the lock */
        free(full);
    }
    closedir(d);
out:
    free(dcopy);
    free(bcopy);
}

/* Create a fresh temp file with mode 0666 minus the umask, as open(2) gives any new file. */
static int create_temp(char *tmp, size_t n) {
    static unsigned long counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 16) ^
                 (uint64_t)(uintptr_t)tmp ^ (uint64_t)(++counter * 0x9E3779B97F4A7C15ULL);
    for (int attempt = 0; attempt < 100; attempt++) {
        char *r = tmp + n - TMP_RAND;
        for (int i = 0; i < TMP_RAND; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            r[i] = g_tmp_chars[x % (sizeof g_tmp_chars - 1)];
        }
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0666);
        if (fd >= 0 || errno != EEXIST) return fd;
    }
    errno = EEXIST;
    return -1;
}

nl_status nl_atomic_open(nl_atomic_file *af, const char *path) {
    memset(af, 0, sizeof *af);
    if (!path || !*path) return nl_set_error(NL_EINVAL, "atomic write: empty path");
    size_t n = strlen(path);
    size_t tn = n + sizeof TMP_SUFFIX - 1 + TMP_RAND;
    af->path = malloc(n + 1);
    af->tmp = malloc(tn + 1);
    if (!af->path || !af->tmp) {
        atomic_release(af);
        return nl_set_error(NL_ENOMEM, "atomic write %s: out of memory", path);
    }
    memcpy(af->path, path, n + 1);
    snprintf(af->tmp, tn + 1, "%s" TMP_SUFFIX "XXXXXX", path);
    remove_stale_temps(path);
    int fd = create_temp(af->tmp, tn);
    if (fd < 0) {
        int e = errno;
        nl_status s = nl_set_error(NL_EIO, "cannot create temporary file %s: %s", af->tmp, strerror(e));
        atomic_release(af);
        return s;
    }
    (void)flock(fd, LOCK_EX | LOCK_NB); /* marks the temp file as in use (see remove_stale_temps) */
    /* replacing a regular file keeps its permission bits; a new file (or one replacing a symlink) keeps the
     * 0666 & ~umask it was created with */
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISREG(st.st_mode)) (void)fchmod(fd, st.st_mode & 07777);
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
    /* rename while the file is still open, so its lock keeps remove_stale_temps of another save away */
    if (!step && rename(af->tmp, af->path) != 0) step = "rename", e = errno;
    FILE *f = af->f;
    af->f = NULL;
    (void)fclose(f); /* everything was flushed and synced above: nothing left to fail */
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
