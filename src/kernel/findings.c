/*
 * Findings: rule breaks a real kernel would bug-check or hang on, counted and
 * reported instead so a test run (or a later verifier) can fail on them.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#include "kernel/kernel.h"
#include "verify/verify.h"

static atomic_ulong findings;
static atomic_bool quiet;
static pthread_mutex_t last_mu = PTHREAD_MUTEX_INITIALIZER;
static char last[256];

void owfp_kernel_finding(const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    atomic_fetch_add(&findings, 1);
    pthread_mutex_lock(&last_mu);
    memcpy(last, msg, sizeof(last));
    pthread_mutex_unlock(&last_mu);
    if (!atomic_load(&quiet))
        fprintf(stderr, "openwfp: %s\n", msg);
    /* The verifier sees it too (IRQL misuse as rule C4); counted as before. */
    if (OWFP_VERIFY_ON())
        owfp_verify_kernel_finding(msg);
}

unsigned long owfp_kernel_findings(void)
{
    return atomic_load(&findings);
}

void owfp_kernel_findings_reset(void)
{
    atomic_store(&findings, 0);
    pthread_mutex_lock(&last_mu);
    last[0] = '\0';
    pthread_mutex_unlock(&last_mu);
}

size_t owfp_kernel_last_finding(char *buf, size_t size)
{
    pthread_mutex_lock(&last_mu);
    size_t n = strlen(last);
    if (size) {
        size_t c = n < size ? n : size - 1;
        memcpy(buf, last, c);
        buf[c] = '\0';
    }
    pthread_mutex_unlock(&last_mu);
    return n;
}

void owfp_kernel_set_quiet(bool q)
{
    atomic_store(&quiet, q);
}

void owfp_kernel_assert_failed(const char *expr, const char *file, int line)
{
    owfp_kernel_finding("assertion failed: %s (%s:%d)", expr, file, line);
}

void owfp_kernel_list_corrupt(const char *api)
{
    /* Windows fails fast here too: going on would corrupt memory further. */
    fprintf(stderr, "openwfp: %s: corrupted LIST_ENTRY\n", api);
    abort();
}
