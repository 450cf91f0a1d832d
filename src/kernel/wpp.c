/*
 * The run-time side of WPP tracing (openwfp_wpp.h): off unless
 * OPENWFP_WPP_DBGPRINT is set to something other than "0", then each trace
 * message is one debug-output line. WPP's %!NAME! conversions are rewritten
 * into kernel printf ones before the message goes through vDbgPrintEx.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openwfp_wpp.h>

#include "kernel/kernel.h"

#define FORMAT_MAX 512 /* DbgPrint's own message limit */

static BOOLEAN enabled;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void read_env(void)
{
    const char *v = getenv("OPENWFP_WPP_DBGPRINT");
    enabled = v && *v && strcmp(v, "0") != 0;
}

BOOLEAN owfp_wpp_enabled(void)
{
    pthread_once(&once, read_env);
    return enabled;
}

struct out {
    char *buf;
    size_t len, cap; /* cap includes the terminator */
    bool full;
};

/* Appends all of s[0..n) or, when it does not fit, nothing (so the format
 * is only ever cut between conversions) and stops the output. */
static void put(struct out *o, const char *s, size_t n, bool escape)
{
    size_t need = n;
    for (size_t i = 0; escape && i < n; i++)
        need += s[i] == '%';
    if (o->full || o->len + need >= o->cap) {
        o->full = true;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (escape && s[i] == '%')
            o->buf[o->len++] = '%';
        o->buf[o->len++] = s[i];
    }
    o->buf[o->len] = '\0';
}

static void put_text(struct out *o, const char *s)
{
    put(o, s, strlen(s), true);
}

struct site {
    const char *file, *function, *flags;
    int line, level;
};

/* Appends what %!name! stands for; false for a conversion not known here. */
static bool put_conversion(struct out *o, const char *name, size_t n, const struct site *at)
{
    static const struct {
        const char *name, *format;
    } formats[] = {
        {"STATUS", "0x%08X"},  {"NTSTATUS", "0x%08X"}, {"HRESULT", "0x%08X"},
        {"WINERROR", "%u"},    {"NDIS_STATUS", "0x%08X"}, {"bool", "%d"},
        {"BOOLEAN", "%d"},     {"IPADDR", "0x%08X"},    {"PORT", "%u"},
    };
    char num[16];
    const char *text = NULL;
    if (n == 4 && memcmp(name, "FUNC", 4) == 0) {
        text = at->function;
    } else if (n == 4 && memcmp(name, "FILE", 4) == 0) {
        const char *slash = strrchr(at->file, '/');
        text = slash ? slash + 1 : at->file;
    } else if (n == 4 && memcmp(name, "LINE", 4) == 0) {
        snprintf(num, sizeof(num), "%d", at->line);
        text = num;
    } else if (n == 5 && memcmp(name, "LEVEL", 5) == 0) {
        snprintf(num, sizeof(num), "%d", at->level);
        text = num;
    } else if ((n == 5 && memcmp(name, "FLAGS", 5) == 0) ||
               (n == 4 && memcmp(name, "FLAG", 4) == 0)) {
        text = at->flags;
    }
    if (text) {
        put_text(o, text);
        return true;
    }
    for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
        if (strlen(formats[i].name) == n && memcmp(formats[i].name, name, n) == 0) {
            put(o, formats[i].format, strlen(formats[i].format), false);
            return true;
        }
    return false;
}

/* Length of the printf conversion at p ("%-08I64u"): flags, width,
 * precision and size prefixes up to and including its letter. */
static size_t conversion_length(const char *p)
{
    size_t n = 1;
    while (p[n] && strchr("-+ #0123456789.*hlLwIzjtq", p[n]))
        n++;
    return p[n] ? n + 1 : n;
}

/* The kernel printf format for `format`: a "FLAGS function: " prefix (no
 * FLAGS for a trace function without flags), the message with its WPP
 * conversions rewritten, a newline. */
static void rewrite(char *buf, size_t cap, const char *format, const struct site *at)
{
    struct out o = {buf, 0, cap - 1, false}; /* room kept for the newline */
    buf[0] = '\0';
    if (at->flags[0]) {
        put_text(&o, at->flags);
        put_text(&o, " ");
    }
    put_text(&o, at->function);
    put_text(&o, ": ");
    const char *p = format;
    while (*p && !o.full) {
        const char *end;
        if (p[0] == '%' && p[1] == '!' && (end = strchr(p + 2, '!')) != NULL) {
            if (!put_conversion(&o, p + 2, (size_t)(end - (p + 2)), at)) {
                /* Its argument's size is unknown: nothing after it can be read. */
                put_text(&o, "...");
                break;
            }
            p = end + 1;
        } else if (p[0] == '%') {
            size_t n = conversion_length(p);
            put(&o, p, n, false);
            p += n;
        } else {
            put(&o, p, 1, false);
            p++;
        }
    }
    buf[o.len++] = '\n';
    buf[o.len] = '\0';
}

/* WPP levels (TRACE_LEVEL_*) to DbgPrintEx levels, so OPENWFP_DBGPRINT_LEVEL
 * filters both alike. */
static ULONG debug_level(int level)
{
    if (level == TRACE_LEVEL_CRITICAL || level == TRACE_LEVEL_ERROR)
        return DPFLTR_ERROR_LEVEL;
    if (level == TRACE_LEVEL_WARNING)
        return DPFLTR_WARNING_LEVEL;
    if (level == TRACE_LEVEL_INFORMATION)
        return DPFLTR_TRACE_LEVEL;
    return DPFLTR_INFO_LEVEL;
}

void owfp_wpp_trace(const char *file, int line, const char *function, const char *flags,
                    int level, const char *format, ...)
{
    if (!owfp_wpp_enabled() || !format)
        return;
    struct site at = {file ? file : "?", function ? function : "?", flags ? flags : "", line,
                      level};
    char buf[FORMAT_MAX];
    rewrite(buf, sizeof(buf), format, &at);
    va_list ap;
    va_start(ap, format);
    vDbgPrintEx(DPFLTR_IHVDRIVER_ID, debug_level(level), buf, ap);
    va_end(ap);
}
