/* UTF-8-safe tokenisation (lib/text/text.h). */
#include "text/text.h"
#include <string.h>

/* Decode one code point at s[0..n); returns its byte length, or 0 when the bytes are not valid UTF-8 (overlong,
 * surrogate, > U+10FFFF, truncated, stray continuation). */
static int utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned char b = s[0];
    if (b < 0x80) return *cp = b, 1;
    int len;
    uint32_t c, min;
    if ((b & 0xE0) == 0xC0) len = 2, c = b & 0x1F, min = 0x80;
    else if ((b & 0xF0) == 0xE0) len = 3, c = b & 0x0F, min = 0x800;
    else if ((b & 0xF8) == 0xF0) len = 4, c = b & 0x07, min = 0x10000;
    else return 0;
    if ((size_t)len > n) return 0;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
    *cp = c;
    return len;
}

static int is_word_cp(uint32_t c) {
    if (c < 0x80) return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (c == 0xFFFD || c == 0xA0 || (c >= 0x2000 && c <= 0x206F) || c == 0x3000 || c == 0xFEFF) return 0;
    if (c >= 0x80 && c < 0xC0) return c == 0xAA || c == 0xB5 || c == 0xBA; /* Latin-1 punctuation block */
    return c != 0xD7 && c != 0xF7;
}

nl_status nl_text_tokenize(const char *str, size_t n, nl_text_utf8 policy, nl_text_token_fn fn, void *ud,
                           int64_t *n_bad) {
    const unsigned char *s = (const unsigned char *)str;
    char tok[NL_TEXT_MAX_TOKEN + 4];
    int len = 0, full = 0;
    int64_t bad = 0;
    nl_status st = NL_OK;
    if (n_bad) *n_bad = 0;
    if (!s && n) return nl_set_error(NL_EINVAL, "text: tokenize: NULL text");
    for (size_t i = 0; i <= n;) {
        uint32_t cp = ' ';
        int l = 1;
        if (i < n) {
            l = utf8_decode(s + i, n - i, &cp);
            if (l == 0) {
                bad++;
                if (policy == NL_TEXT_UTF8_STRICT)
                    return nl_set_error(NL_EFORMAT, "text: invalid UTF-8 byte 0x%02x at offset %zu", s[i], i);
                cp = 0xFFFD; /* SKIP and REPLACE: a separator, counted */
                l = 1;
            }
        }
        int word = i < n && is_word_cp(cp);
        /* an apostrophe between two word characters stays inside the token */
        if (!word && i < n && cp == '\'' && len > 0 && i + 1 < n) {
            uint32_t nx;
            int ln = utf8_decode(s + i + 1, n - i - 1, &nx);
            if (ln && is_word_cp(nx)) word = 1;
        }
        if (word) {
            if (!full && len + l <= NL_TEXT_MAX_TOKEN) {
                for (int j = 0; j < l; j++) {
                    unsigned char ch = s[i + j];
                    tok[len++] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
                }
            } else full = 1;
        } else if (len > 0) {
            st = fn(tok, len, ud);
            if (st != NL_OK) break;
            len = 0, full = 0;
        }
        if (i == n) break;
        i += (size_t)l;
    }
    if (n_bad) *n_bad = bad;
    return st;
}
