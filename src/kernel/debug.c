/*
 * DbgPrint and friends: the driver's debug output, on stderr, one call per
 * write so lines from many threads do not interleave. Windows truncates a
 * DbgPrint message at 512 bytes, and so does this. Every level is shown
 * unless OPENWFP_DBGPRINT_LEVEL=N limits DbgPrintEx to levels ≤ N (Windows
 * shows only errors until its debug filter is changed; a port usually wants
 * its traces).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "kernel/kernel.h"

#define MESSAGE_MAX 512
#define NAME_MAX_LEN 64

static pthread_mutex_t name_mu = PTHREAD_MUTEX_INITIALIZER;
static char global_name[NAME_MAX_LEN];
static _Thread_local char thread_name[NAME_MAX_LEN];

static void copy_name(char *dst, const char *src)
{
    dst[0] = '\0';
    if (src)
        snprintf(dst, NAME_MAX_LEN, "%s", src);
}

void owfp_kernel_set_driver_name(const char *name)
{
    pthread_mutex_lock(&name_mu);
    copy_name(global_name, name);
    pthread_mutex_unlock(&name_mu);
}

void owfp_kernel_set_thread_driver_name(const char *name)
{
    copy_name(thread_name, name);
}

static ULONG env_level = 0xFFFFFFFFu;
static pthread_once_t env_once = PTHREAD_ONCE_INIT;

static void read_env(void)
{
    const char *v = getenv("OPENWFP_DBGPRINT_LEVEL");
    if (v && *v)
        env_level = (ULONG)strtoul(v, NULL, 10);
}

static void emit(const char *fmt, va_list ap)
{
    char msg[MESSAGE_MAX];
    owfp_format(msg, false, sizeof(msg), true, fmt, false, ap);
    char name[NAME_MAX_LEN];
    if (thread_name[0]) {
        memcpy(name, thread_name, sizeof(name));
    } else {
        pthread_mutex_lock(&name_mu);
        memcpy(name, global_name, sizeof(name));
        pthread_mutex_unlock(&name_mu);
    }
    if (name[0])
        fprintf(stderr, "[%s] %s", name, msg);
    else
        fputs(msg, stderr);
}

ULONG DbgPrint(PCSTR Format, ...)
{
    va_list ap;
    va_start(ap, Format);
    emit(Format, ap);
    va_end(ap);
    return STATUS_SUCCESS;
}

ULONG NTAPI vDbgPrintEx(ULONG ComponentId, ULONG Level, PCCH Format, va_list arglist)
{
    (void)ComponentId;
    /* Levels above 31 are bit masks; bit n stands for level n. */
    ULONG level = Level;
    if (Level > 31) {
        level = 0;
        while (level < 31 && !(Level & (1u << level)))
            level++;
    }
    pthread_once(&env_once, read_env);
    if (level > env_level)
        return STATUS_SUCCESS;
    emit(Format, arglist);
    return STATUS_SUCCESS;
}

ULONG DbgPrintEx(ULONG ComponentId, ULONG Level, PCSTR Format, ...)
{
    va_list ap;
    va_start(ap, Format);
    ULONG st = vDbgPrintEx(ComponentId, Level, Format, ap);
    va_end(ap);
    return st;
}

VOID NTAPI DbgBreakPoint(void)
{
    owfp_kernel_finding("DbgBreakPoint reached (no debugger to break into)");
}
