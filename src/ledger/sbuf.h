/* Growable string buffer used by the ledger writers (internal). */
#ifndef NL_LEDGER_SBUF_H
#define NL_LEDGER_SBUF_H
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *s;
    size_t len, cap;
    int oom;
} nl_sbuf;

static inline void sb_reserve(nl_sbuf *b, size_t extra) {
    if (b->oom || b->len + extra + 1 <= b->cap) return;
    size_t nc = b->cap ? b->cap : 4096;
    while (nc < b->len + extra + 1) nc *= 2;
    char *p = realloc(b->s, nc);
    if (!p) { b->oom = 1; return; }
    b->s = p;
    b->cap = nc;
}

static inline void sb_printf(nl_sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void sb_printf(nl_sbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    sb_reserve(b, (size_t)n);
    if (b->oom) return;
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static inline void sb_puts(nl_sbuf *b, const char *s) { sb_printf(b, "%s", s); }

/* Text with &, <, >, " escaped for HTML/SVG. */
static inline void sb_esc(nl_sbuf *b, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '&': sb_puts(b, "&amp;"); break;
        case '<': sb_puts(b, "&lt;"); break;
        case '>': sb_puts(b, "&gt;"); break;
        case '"': sb_puts(b, "&quot;"); break;
        default: sb_printf(b, "%c", *s);
        }
    }
}
#endif
