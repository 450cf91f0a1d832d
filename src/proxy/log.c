#include "proxy/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static bool g_json;
static enum owfp_log_level g_level = OWFP_LOG_INFO;
static const char *const g_names[] = {"error", "warn", "info", "debug"};

void owfp_log_setup(bool json, enum owfp_log_level level)
{
    g_json = json;
    g_level = level;
}

bool owfp_log_enabled(enum owfp_log_level level)
{
    return level <= g_level;
}

int owfp_log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, g_names[i]) == 0)
            return i;
    return -1;
}

static void add(struct owfp_log_line *l, const char *s, size_t n)
{
    size_t room = sizeof(l->buf) - 2 - l->len; /* keep space for "}\n" */
    if (n > room)
        n = room;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void add_c(struct owfp_log_line *l, const char *s)
{
    add(l, s, strlen(s));
}

/* Values are escaped for JSON, and quoted in text when they hold spaces or
 * quotes, so every line parses back. */
static void add_value(struct owfp_log_line *l, const char *v)
{
    bool quote = l->json || strpbrk(v, " \"=\\") || !*v;
    if (quote)
        add(l, "\"", 1);
    for (const char *p = v; *p; p++) {
        char esc[8];
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            add(l, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            add(l, esc, 6);
        } else {
            add(l, (const char *)p, 1);
        }
    }
    if (quote)
        add(l, "\"", 1);
}

static void add_key(struct owfp_log_line *l, const char *key)
{
    if (l->json) {
        add_c(l, ",\"");
        add_c(l, key);
        add_c(l, "\":");
    } else {
        add_c(l, " ");
        add_c(l, key);
        add_c(l, "=");
    }
}

void owfp_log_begin(struct owfp_log_line *l, enum owfp_log_level level, const char *event)
{
    l->len = 0;
    l->json = g_json;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[64];
    size_t k = strftime(when, sizeof(when) - 6, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + k, sizeof(when) - k, ".%03dZ", (int)(ts.tv_nsec / 1000000) % 1000);
    if (l->json) {
        add_c(l, "{\"ts\":\"");
        add_c(l, when);
        add_c(l, "\"");
    } else {
        add_c(l, "ts=");
        add_c(l, when);
    }
    owfp_log_str(l, "level", g_names[level]);
    owfp_log_str(l, "event", event);
}

void owfp_log_str(struct owfp_log_line *l, const char *key, const char *value)
{
    add_key(l, key);
    add_value(l, value);
}

void owfp_log_u64(struct owfp_log_line *l, const char *key, uint64_t value)
{
    char v[24];
    snprintf(v, sizeof(v), "%" PRIu64, value);
    add_key(l, key);
    add_c(l, v);
}

void owfp_log_end(struct owfp_log_line *l)
{
    if (l->json)
        l->buf[l->len++] = '}';
    l->buf[l->len++] = '\n';
    /* One write: lines from workers never interleave. */
    ssize_t r = write(STDERR_FILENO, l->buf, l->len);
    (void)r;
}

void owfp_log_msg(enum owfp_log_level level, const char *event, const char *msg)
{
    if (!owfp_log_enabled(level))
        return;
    struct owfp_log_line l;
    owfp_log_begin(&l, level, event);
    owfp_log_str(&l, "msg", msg);
    owfp_log_end(&l);
}

/* ---- stderr as log lines ---------------------------------------------------- */

struct wrap {
    char buf[2048];
    size_t len;
};

/* "[driver] text" is a driver's DbgPrint; "openwfp: text" the host's. */
static void wrap_line(struct wrap *w)
{
    w->buf[w->len] = 0;
    w->len = 0;
    char *msg = w->buf, *driver = NULL;
    char *close = msg[0] == '[' ? strstr(msg, "] ") : NULL;
    if (close) {
        *close = 0;
        driver = msg + 1;
        msg = close + 2;
    } else if (strncmp(msg, "openwfp: ", 9) == 0) {
        msg += 9;
    }
    struct owfp_log_line l;
    owfp_log_begin(&l, OWFP_LOG_INFO, driver ? "driver_output" : "host_output");
    if (driver)
        owfp_log_str(&l, "driver", driver);
    owfp_log_str(&l, "msg", msg);
    owfp_log_end(&l);
}

static ssize_t wrap_write(void *cookie, const char *data, size_t n)
{
    struct wrap *w = cookie;
    for (size_t i = 0; i < n; i++) {
        if (data[i] == '\n' || w->len == sizeof(w->buf) - 1)
            wrap_line(w);
        if (data[i] != '\n')
            w->buf[w->len++] = data[i];
    }
    return (ssize_t)n;
}

static int wrap_close(void *cookie)
{
    struct wrap *w = cookie;
    if (w->len)
        wrap_line(w);
    return 0;
}

/* Static: it lives as long as stderr does, to the last flush at exit. */
static struct wrap g_wrap;

int owfp_log_wrap_stderr(void)
{
    cookie_io_functions_t io = {.write = wrap_write, .close = wrap_close};
    FILE *f = fopencookie(&g_wrap, "w", io);
    if (!f)
        return -1;
    setvbuf(f, NULL, _IOLBF, 0);
    fflush(stderr);
    stderr = f;
    return 0;
}
