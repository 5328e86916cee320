/* nnlab repro -j N: independent experiments run concurrently, each in its own process (fork) with its share of the
 * threads (max(1, T / N)), its stdout/stderr kept in DIR/logs/<name>.log, its entry handed back as a one-entry
 * ledger.json and read into the parent's table, which is written in the order of the selection. An experiment
 * computes exactly what a sequential run with the same thread count computes (the processes share nothing), so
 * `-j N` with T threads equals `-j 1 --threads T/N` on every non-time metric. */
#include "ledger_internal.h"
#include "nnlab/safetensors.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static double jnum(const cJSON *v) { return cJSON_IsNumber(v) ? v->valuedouble : NAN; }
static void jstr(char *dst, size_t n, const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    snprintf(dst, n, "%s", cJSON_IsString(v) ? v->valuestring : "");
}

static nl_status read_metrics(nl_exp_result *r, const cJSON *m) {
    const cJSON *v;
    cJSON_ArrayForEach(v, m) {
        nl_status s = nl_exp_set(r, v->string, jnum(v));
        if (s) return s;
    }
    return NL_OK;
}

static nl_status read_parts(nl_exp_result *r, const cJSON *parts) {
    const cJSON *p;
    cJSON_ArrayForEach(p, parts) {
        char name[64], rule[256], meas[256], verdict[8];
        jstr(name, sizeof name, p, "name");
        jstr(rule, sizeof rule, p, "rule");
        jstr(meas, sizeof meas, p, "measured");
        jstr(verdict, sizeof verdict, p, "verdict");
        nl_status s = nl_exp_part_set(r, name, rule, !strcmp(verdict, "pass"), "%s", meas);
        if (s) return s;
    }
    return NL_OK;
}

nl_status nl__ledger_read_entry(const char *path, const nl_experiment *e, nl_repro_entry *x) {
    FILE *f = fopen(path, "rb");
    if (!f) return nl_set_error(NL_EIO, "cannot read %s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *txt = len >= 0 ? malloc((size_t)len + 1) : NULL;
    if (!txt) { fclose(f); return nl_set_error(NL_ENOMEM, "out of memory reading %s", path); }
    size_t got = fread(txt, 1, (size_t)len, f);
    fclose(f);
    txt[got] = 0;
    cJSON *root = cJSON_Parse(txt);
    free(txt);
    const cJSON *o = root ? cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "entries"), 0) : NULL;
    if (!o) { cJSON_Delete(root); return nl_set_error(NL_EFORMAT, "%s: no ledger entry", path); }
    nl_status s = NL_OK;
    x->e = e;
    nl_exp_result_init(&x->r);
    char verdict[8];
    jstr(verdict, sizeof verdict, o, "verdict");
    x->pass = !strcmp(verdict, "pass");
    jstr(x->measured, sizeof x->measured, o, "measured");
    jstr(x->error, sizeof x->error, o, "error");
    x->errored = x->error[0] != 0;
    jstr(x->machine, sizeof x->machine, o, "machine");
    jstr(x->r.note, sizeof x->r.note, o, "note");
    x->seconds = jnum(cJSON_GetObjectItemCaseSensitive(o, "seconds"));
    const cJSON *seeds = cJSON_GetObjectItemCaseSensitive(o, "seeds");
    x->r.seeds = cJSON_IsNumber(seeds) ? seeds->valueint : 0;
    x->r.deterministic = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "deterministic"));
    if (!s) s = read_metrics(&x->r, cJSON_GetObjectItemCaseSensitive(o, "metrics"));
    if (!s) s = read_parts(&x->r, cJSON_GetObjectItemCaseSensitive(o, "parts"));
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(o, "controls")) {
        if (s) break;
        char name[64], kind[16], what[256], v[8];
        jstr(name, sizeof name, c, "name");
        jstr(kind, sizeof kind, c, "kind");
        jstr(what, sizeof what, c, "what");
        nl_exp_result *cr = nl_exp_control_add(&x->r, name, kind, what);
        if (!cr) { s = NL_ENOMEM; break; }
        nl_exp_control *cc = &x->r.controls[x->r.n_controls - 1];
        jstr(v, sizeof v, c, "verdict");
        cc->verdict = !strcmp(v, "pass");
        jstr(cc->measured, sizeof cc->measured, c, "measured");
        if (!(s = read_metrics(cr, cJSON_GetObjectItemCaseSensitive(c, "metrics"))))
            s = read_parts(cr, cJSON_GetObjectItemCaseSensitive(c, "parts"));
    }
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(o, "curves")) {
        if (s) break;
        char plot[64], name[64], xl[48], yl[48];
        jstr(plot, sizeof plot, c, "plot");
        jstr(name, sizeof name, c, "name");
        jstr(xl, sizeof xl, c, "xlabel");
        jstr(yl, sizeof yl, c, "ylabel");
        nl_curve *cv = nl_exp_curve(&x->r, plot, name, xl, yl);
        if (!cv) { s = NL_ENOMEM; break; }
        const cJSON *xs = cJSON_GetObjectItemCaseSensitive(c, "x"), *ys = cJSON_GetObjectItemCaseSensitive(c, "y");
        for (int k = 0; !s && k < cJSON_GetArraySize(xs); k++)
            s = nl_curve_add(cv, jnum(cJSON_GetArrayItem(xs, k)), jnum(cJSON_GetArrayItem(ys, k)));
    }
    cJSON_Delete(root);
    return s;
}

/* The child: run one experiment with `share` threads, output to its log, entry to `entry_path`; never returns. */
static void child_run(const nl_experiment *e, const nl_repro_options *opt, int share, const char *log, const char *entry_path) {
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
    }
    nl_set_progress(NULL, NULL);
    nl_set_num_threads(share);
    nl_exp_options eo = {opt->full, share, opt->verbose, opt->out_dir};
    nl_repro_entry x;
    memset(&x, 0, sizeof x);
    nl__repro_run_one(&x, e, opt, &eo);
    nl_status s = nl_ledger_write_json(entry_path, &x, 1, nl_mode_name(opt->full));
    if (s) fprintf(stderr, "nnlab repro: writing %s: %s\n", entry_path, nl_last_error());
    fflush(NULL);
    _exit(s ? 3 : 0);   /* a forked child ends here: no atexit handlers, no second flush of the parent's buffers */
}

nl_status nl__repro_run_parallel(const nl_experiment *const *list, int n, const nl_repro_options *opt, nl_repro_entry *en,
                                 int *n_failed) {
    const int jobs = opt->jobs < n ? opt->jobs : n;
    const int total = opt->threads > 0 ? opt->threads : nl_get_num_threads();
    const int share = total / jobs > 1 ? total / jobs : 1;
    char dir[4096], logs[4200];
    if (opt->out_dir) snprintf(dir, sizeof dir, "%s/.jobs", opt->out_dir);
    else snprintf(dir, sizeof dir, "/tmp/nnlab-repro-%ld", (long)getpid());
    nl_status s = nl_mkdir_p(dir);
    if (s) return s;
    snprintf(logs, sizeof logs, "%s", dir);
    if (opt->out_dir) {
        snprintf(logs, sizeof logs, "%s/logs", opt->out_dir);
        if ((s = nl_mkdir_p(logs))) return s;
    }
    pid_t *pid = calloc((size_t)n, sizeof *pid);
    char *done = calloc((size_t)n, 1);
    if (!pid || !done) { free(pid); free(done); return nl_set_error(NL_ENOMEM, "repro: out of memory"); }
    fflush(NULL);   /* nothing buffered may be written twice by the children */
    int next = 0, running = 0, finished = 0;
    while (finished < n) {
        while (running < jobs && next < n) {
            char log[4400], entry[4400];
            snprintf(log, sizeof log, "%s/%s.log", logs, list[next]->name);
            snprintf(entry, sizeof entry, "%s/%d.json", dir, next);
            unlink(entry);
            if (opt->verbose)
                nl_progress("[%d/%d] %s (%s, %d thread%s, log %s): started", next + 1, n, list[next]->name,
                            nl_mode_name(opt->full), share, share > 1 ? "s" : "", log);
            pid_t p = fork();
            if (p < 0) { s = nl_set_error(NL_ESTATE, "repro: fork failed: %s", strerror(errno)); break; }
            if (p == 0) child_run(list[next], opt, share, log, entry);
            pid[next++] = p;
            running++;
        }
        if (s) break;
        int status;
        pid_t p = waitpid(-1, &status, 0);
        if (p < 0) {
            if (errno == EINTR) continue;
            s = nl_set_error(NL_ESTATE, "repro: waitpid: %s", strerror(errno));
            break;
        }
        int i = 0;
        while (i < n && pid[i] != p) i++;
        if (i == n) continue;
        running--;
        finished++;
        done[i] = 1;
        char entry[4400];
        snprintf(entry, sizeof entry, "%s/%d.json", dir, i);
        nl_repro_entry *x = &en[i];
        if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0) || nl__ledger_read_entry(entry, list[i], x)) {
            nl_exp_result_free(&x->r);
            memset(x, 0, sizeof *x);
            x->e = list[i];
            nl_exp_result_init(&x->r);
            x->errored = 1;
            if (WIFSIGNALED(status))
                snprintf(x->error, sizeof x->error, "the experiment's process died of signal %d (%s); see %.200s/%.60s.log",
                         WTERMSIG(status), strsignal(WTERMSIG(status)), logs, list[i]->name);
            else
                snprintf(x->error, sizeof x->error, "the experiment's process exited with status %d; see %.200s/%.60s.log",
                         WIFEXITED(status) ? WEXITSTATUS(status) : -1, logs, list[i]->name);
            snprintf(x->measured, sizeof x->measured, "error: %s", x->error);
        }
        unlink(entry);
        if (!x->pass) (*n_failed)++;
        if (opt->verbose)
            nl_progress("[%d/%d] %s: %s, %s (%.1f s)", i + 1, n, x->e->name, x->pass ? "pass" : "FAIL", x->measured, x->seconds);
        /* the files hold the finished prefix of the selection, in its order */
        int prefix = 0;
        while (prefix < n && done[prefix]) prefix++;
        if (prefix && (s = nl__repro_write_outputs(opt, en, prefix))) break;
    }
    if (s) /* stop the others: the run cannot be written */
        for (int i = 0; i < n; i++)
            if (pid[i] > 0 && !done[i]) { kill(pid[i], SIGTERM); waitpid(pid[i], NULL, 0); }
    for (int i = 0; i < n; i++)
        if (!en[i].e) en[i].e = list[i];
    rmdir(dir);
    free(pid);
    free(done);
    return s;
}
