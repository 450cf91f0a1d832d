/*
 * The kernel's printf dialect, for DbgPrint and the ntstrsafe printf family.
 *
 * Differences from C99 printf that drivers rely on:
 *  - %s / %c take the width of the calling function (char for the A forms,
 *    WCHAR for W), %S / %C the other width; %hs/%hc are always narrow,
 *    %ls/%ws/%lc/%wc always 16-bit wide;
 *  - %Z prints an ANSI_STRING*, %wZ a UNICODE_STRING* (counted, not
 *    NUL-terminated);
 *  - "l" means 32 bits (LONG/ULONG); %I64, %ll and %L mean 64, %I, %z, %t
 *    and %j pointer size;
 *  - %p prints all 16 hex digits in upper case;
 *  - %n writes nothing.
 * Wide text written to a narrow buffer keeps ASCII and turns anything else
 * into '?'; narrow text widens byte for byte.
 */
#include <limits.h>
#include <stdio.h>

#include "kernel/kernel.h"

struct sink {
    void *buf;
    bool wide;
    size_t room; /* units for the text: cap, less one for a terminator */
    size_t len;  /* units the full result needs, terminator excluded */
};

/* `c` is one unit of the source text; `from_wide` says which width. */
static void put_from(struct sink *k, unsigned c, bool from_wide)
{
    if (k->len < k->room) {
        if (k->wide)
            ((WCHAR *)k->buf)[k->len] = (WCHAR)c;
        else
            ((char *)k->buf)[k->len] = (char)(from_wide && c >= 0x80 ? '?' : c);
    }
    k->len++;
}

static void put(struct sink *k, unsigned c)
{
    put_from(k, c, false);
}

static void pad(struct sink *k, unsigned c, long n)
{
    while (n-- > 0)
        put(k, c);
}

struct spec {
    bool left, plus, space, alt, zero;
    long width;
    long prec; /* -1: none */
};

/* A string argument: narrow or wide units, NUL-terminated or counted. */
static void emit_string(struct sink *k, const struct spec *sp, const void *s, bool wide,
                        size_t count)
{
    static const char null_text[] = "(null)";
    if (!s) {
        s = null_text;
        wide = false;
        count = sizeof(null_text) - 1;
    }
    size_t n = 0;
    size_t limit = sp->prec >= 0 ? (size_t)sp->prec : SIZE_MAX;
    if (count != SIZE_MAX) {
        n = count < limit ? count : limit;
    } else {
        while (n < limit && owfp_unit_at(s, wide, n))
            n++;
    }
    long fill = sp->width > (long)n ? sp->width - (long)n : 0;
    if (!sp->left)
        pad(k, ' ', fill);
    for (size_t i = 0; i < n; i++)
        put_from(k, owfp_unit_at(s, wide, i), wide);
    if (sp->left)
        pad(k, ' ', fill);
}

static void emit_integer(struct sink *k, const struct spec *sp, unsigned long long v,
                         bool negative, bool is_signed, unsigned base, bool upper)
{
    char digits[72];
    int n = 0;
    const char *set = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    while (v) {
        digits[n++] = set[v % base];
        v /= base;
    }
    long prec = sp->prec >= 0 ? sp->prec : 1;
    long zeros = prec > n ? prec - n : 0;
    if (sp->alt && base == 8 && zeros == 0 && (n == 0 || digits[n - 1] != '0'))
        zeros = 1;
    const char *prefix = "";
    if (is_signed)
        prefix = negative ? "-" : sp->plus ? "+" : sp->space ? " " : "";
    else if (sp->alt && base == 16 && n > 0)
        prefix = upper ? "0X" : "0x";
    long body = (long)strlen(prefix) + zeros + n;
    long fill = sp->width > body ? sp->width - body : 0;
    if (sp->zero && !sp->left && sp->prec < 0) {
        zeros += fill;
        fill = 0;
    }
    if (!sp->left)
        pad(k, ' ', fill);
    for (const char *p = prefix; *p; p++)
        put(k, (unsigned char)*p);
    pad(k, '0', zeros);
    while (n > 0)
        put(k, (unsigned char)digits[--n]);
    if (sp->left)
        pad(k, ' ', fill);
}

enum length { LEN_NONE, LEN_HH, LEN_H, LEN_L, LEN_64, LEN_PTR, LEN_W, LEN_LD };

/* Whether %c/%s (`lower`) or %C/%S text with that length prefix is wide. */
static bool text_is_wide(enum length len, bool lower, bool fmt_wide)
{
    if (len == LEN_L || len == LEN_W)
        return true;
    if (len == LEN_H)
        return false;
    return lower == fmt_wide;
}

static long read_number(const void *fmt, bool wide, size_t *i)
{
    long v = 0;
    unsigned c;
    while ((c = owfp_unit_at(fmt, wide, *i)) >= '0' && c <= '9') {
        if (v < 100000000)
            v = v * 10 + (long)(c - '0');
        (*i)++;
    }
    return v;
}

/* Floating point goes through the C library with a rebuilt narrow spec. */
static void emit_float(struct sink *k, const struct spec *sp, unsigned conv, enum length len,
                       va_list *ap)
{
    char f[32], out[512];
    int n = 0;
    f[n++] = '%';
    if (sp->left)
        f[n++] = '-';
    if (sp->plus)
        f[n++] = '+';
    if (sp->space)
        f[n++] = ' ';
    if (sp->alt)
        f[n++] = '#';
    if (sp->zero)
        f[n++] = '0';
    f[n++] = '*';
    f[n++] = '.';
    f[n++] = '*';
    if (len == LEN_LD)
        f[n++] = 'L';
    f[n++] = (char)conv;
    f[n] = '\0';
    int width = (int)sp->width, prec = sp->prec >= 0 ? (int)sp->prec : 6;
    if (len == LEN_LD)
        snprintf(out, sizeof(out), f, width, prec, va_arg(*ap, long double));
    else
        snprintf(out, sizeof(out), f, width, prec, va_arg(*ap, double));
    for (const char *p = out; *p; p++)
        put(k, (unsigned char)*p);
}

size_t owfp_format(void *out, bool out_wide, size_t cap, bool terminate, const void *fmt,
                   bool fmt_wide, va_list ap_in)
{
    struct sink k = {out, out_wide, terminate && cap ? cap - 1 : cap, 0};
    va_list ap;
    va_copy(ap, ap_in);
    size_t i = 0;
    unsigned c;
    while ((c = owfp_unit_at(fmt, fmt_wide, i++)) != 0) {
        if (c != '%') {
            put_from(&k, c, fmt_wide);
            continue;
        }
        size_t spec_start = i - 1;
        struct spec sp = {false, false, false, false, false, 0, -1};
        for (;; i++) {
            unsigned f = owfp_unit_at(fmt, fmt_wide, i);
            if (f == '-')
                sp.left = true;
            else if (f == '+')
                sp.plus = true;
            else if (f == ' ')
                sp.space = true;
            else if (f == '#')
                sp.alt = true;
            else if (f == '0')
                sp.zero = true;
            else
                break;
        }
        if (owfp_unit_at(fmt, fmt_wide, i) == '*') {
            i++;
            int w = va_arg(ap, int);
            if (w < 0) {
                sp.left = true;
                w = w == INT_MIN ? INT_MAX : -w;
            }
            sp.width = w;
        } else {
            sp.width = read_number(fmt, fmt_wide, &i);
        }
        if (owfp_unit_at(fmt, fmt_wide, i) == '.') {
            i++;
            if (owfp_unit_at(fmt, fmt_wide, i) == '*') {
                i++;
                int p = va_arg(ap, int);
                sp.prec = p < 0 ? -1 : p;
            } else {
                sp.prec = read_number(fmt, fmt_wide, &i);
            }
        }
        enum length len = LEN_NONE;
        unsigned l = owfp_unit_at(fmt, fmt_wide, i);
        if (l == 'h') {
            len = owfp_unit_at(fmt, fmt_wide, ++i) == 'h' ? (i++, LEN_HH) : LEN_H;
        } else if (l == 'l') {
            len = owfp_unit_at(fmt, fmt_wide, ++i) == 'l' ? (i++, LEN_64) : LEN_L;
        } else if (l == 'w') {
            i++;
            len = LEN_W;
        } else if (l == 'L') {
            i++;
            len = LEN_LD;
        } else if (l == 'z' || l == 't' || l == 'j') {
            i++;
            len = LEN_PTR;
        } else if (l == 'I') {
            i++;
            unsigned a = owfp_unit_at(fmt, fmt_wide, i);
            unsigned b = a ? owfp_unit_at(fmt, fmt_wide, i + 1) : 0;
            if (a == '6' && b == '4') {
                i += 2;
                len = LEN_64;
            } else if (a == '3' && b == '2') {
                i += 2;
                len = LEN_L;
            } else {
                len = LEN_PTR;
            }
        }
        unsigned conv = owfp_unit_at(fmt, fmt_wide, i);
        if (conv == 0)
            break; /* a lone '%' at the end prints nothing */
        i++;
        switch (conv) {
        case 'd':
        case 'i': {
            long long v;
            if (len == LEN_64 || len == LEN_LD)
                v = va_arg(ap, long long);
            else if (len == LEN_PTR)
                v = va_arg(ap, intptr_t);
            else
                v = va_arg(ap, int);
            if (len == LEN_HH)
                v = (signed char)v;
            else if (len == LEN_H)
                v = (short)v;
            unsigned long long mag = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
            emit_integer(&k, &sp, mag, v < 0, true, 10, false);
            break;
        }
        case 'u':
        case 'o':
        case 'x':
        case 'X': {
            unsigned long long v;
            if (len == LEN_64 || len == LEN_LD)
                v = va_arg(ap, unsigned long long);
            else if (len == LEN_PTR)
                v = va_arg(ap, uintptr_t);
            else
                v = va_arg(ap, unsigned);
            if (len == LEN_HH)
                v = (unsigned char)v;
            else if (len == LEN_H)
                v = (unsigned short)v;
            unsigned base = conv == 'u' ? 10 : conv == 'o' ? 8 : 16;
            emit_integer(&k, &sp, v, false, false, base, conv == 'X');
            break;
        }
        case 'p': {
            struct spec p = {sp.left, false, false, false, false, sp.width, 16};
            emit_integer(&k, &p, (uintptr_t)va_arg(ap, void *), false, false, 16, true);
            break;
        }
        case 'c':
        case 'C': {
            unsigned ch = (unsigned)va_arg(ap, int);
            bool wide = text_is_wide(len, conv == 'c', fmt_wide);
            ch = wide ? (WCHAR)ch : (unsigned char)ch;
            struct spec cs = sp;
            cs.prec = -1;
            if (wide) {
                WCHAR w[1] = {(WCHAR)ch};
                emit_string(&k, &cs, w, true, 1);
            } else {
                char n[1] = {(char)ch};
                emit_string(&k, &cs, n, false, 1);
            }
            break;
        }
        case 's':
        case 'S': {
            const void *s = va_arg(ap, const void *);
            bool wide = text_is_wide(len, conv == 's', fmt_wide);
            emit_string(&k, &sp, s, wide, SIZE_MAX);
            break;
        }
        case 'Z': {
            if (len == LEN_W || len == LEN_L) {
                PCUNICODE_STRING u = va_arg(ap, PCUNICODE_STRING);
                if (u && u->Buffer)
                    emit_string(&k, &sp, u->Buffer, true, u->Length / sizeof(WCHAR));
                else
                    emit_string(&k, &sp, NULL, false, 0);
            } else {
                const ANSI_STRING *a = va_arg(ap, const ANSI_STRING *);
                if (a && a->Buffer)
                    emit_string(&k, &sp, a->Buffer, false, a->Length);
                else
                    emit_string(&k, &sp, NULL, false, 0);
            }
            break;
        }
        case 'e':
        case 'E':
        case 'f':
        case 'F':
        case 'g':
        case 'G':
        case 'a':
        case 'A':
            emit_float(&k, &sp, conv, len, &ap);
            break;
        case 'n':
            (void)va_arg(ap, void *);
            break;
        case '%':
            put(&k, '%');
            break;
        default:
            /* Not a conversion: print it as written. */
            for (size_t j = spec_start; j < i; j++)
                put_from(&k, owfp_unit_at(fmt, fmt_wide, j), fmt_wide);
            break;
        }
    }
    va_end(ap);
    if (terminate && cap) {
        size_t end = k.len < k.room ? k.len : k.room;
        if (out_wide)
            ((WCHAR *)out)[end] = 0;
        else
            ((char *)out)[end] = '\0';
    }
    return k.len;
}
