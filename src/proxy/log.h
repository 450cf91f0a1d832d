/* Structured log lines on stderr: key=value text or one JSON object per
 * line (--log-format json). A line is built in a buffer and written with
 * one call, so lines from different threads never interleave. */
#ifndef OPENWFP_PROXY_LOG_H
#define OPENWFP_PROXY_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum owfp_log_level { OWFP_LOG_ERROR, OWFP_LOG_WARN, OWFP_LOG_INFO, OWFP_LOG_DEBUG };

void owfp_log_setup(bool json, enum owfp_log_level level);
bool owfp_log_enabled(enum owfp_log_level level);
/* "error", "warn", "info", "debug"; -1 for another word. */
int owfp_log_level_parse(const char *s);

struct owfp_log_line {
    char buf[4096];
    size_t len;
    bool json;
};

void owfp_log_begin(struct owfp_log_line *l, enum owfp_log_level level, const char *event);
void owfp_log_str(struct owfp_log_line *l, const char *key, const char *value);
void owfp_log_u64(struct owfp_log_line *l, const char *key, uint64_t value);
void owfp_log_end(struct owfp_log_line *l);

/* With JSON logs: makes the stdio `stderr` (where drivers' DbgPrint, the
 * driver host's leak report and kernel findings write) turn each line into
 * a JSON log line too, so every line on fd 2 parses. Log lines themselves
 * go to fd 2 directly. Returns 0, or -1 when stderr stays as it was. */
int owfp_log_wrap_stderr(void);

/* A line with one message field, for the common case. */
void owfp_log_msg(enum owfp_log_level level, const char *event, const char *msg);

#endif
