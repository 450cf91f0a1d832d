/*
 * Shared pieces of the fuzz targets: reading the input as a "tape" of
 * bytes (0 once exhausted, so every program ends in benign defaults), the
 * invariant check that aborts (libFuzzer and the regression runner both
 * report an abort as a crash), and deterministic GUIDs.
 */
#ifndef OPENWFP_FUZZ_UTIL_H
#define OPENWFP_FUZZ_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <guiddef.h>

struct tape {
    const uint8_t *p;
    size_t n, i;
};

static inline uint8_t t8(struct tape *t)
{
    return t->i < t->n ? t->p[t->i++] : 0;
}

static inline uint16_t t16(struct tape *t)
{
    uint16_t lo = t8(t);
    return (uint16_t)(lo | (uint16_t)t8(t) << 8);
}

static inline bool tape_left(const struct tape *t)
{
    return t->i < t->n;
}

static void fuzz_fail(const char *file, int line, const char *what) __attribute__((noreturn));

static void fuzz_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "%s:%d: invariant violated: %s\n", file, line, what);
    fflush(stderr);
    abort();
}

#define CHECK(cond)                                   \
    do {                                              \
        if (!(cond))                                  \
            fuzz_fail(__FILE__, __LINE__, #cond);     \
    } while (0)

/* A status the call may answer; `st` must be one of the listed values. */
static inline bool status_in(int32_t st, const int32_t *set, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (set[i] == st)
            return true;
    return false;
}

#define CHECK_STATUS(st, ...)                                                             \
    do {                                                                                  \
        static const int32_t allowed_[] = {__VA_ARGS__};                                  \
        if (!status_in((st), allowed_, sizeof(allowed_) / sizeof(allowed_[0]))) {         \
            fprintf(stderr, "status 0x%08x not in the documented set\n", (unsigned)(st)); \
            fuzz_fail(__FILE__, __LINE__, "status in {" #__VA_ARGS__ "}");                \
        }                                                                                 \
    } while (0)

#define CHECK_EQ_STATUS(st, want)                                                          \
    do {                                                                                   \
        int32_t got_ = (st), want_ = (want);                                               \
        if (got_ != want_) {                                                               \
            fprintf(stderr, "status 0x%08x, want 0x%08x\n", (unsigned)got_, (unsigned)want_); \
            fuzz_fail(__FILE__, __LINE__, #st " == " #want);                               \
        }                                                                                  \
    } while (0)

static inline GUID fuzz_guid(uint32_t n)
{
    GUID g = {n, 0xf022, 0x4000, {0x80, 0x00, 0x0f, 0xfc, 0x00, 0x00, 0x00, 0x02}};
    return g;
}

#endif
