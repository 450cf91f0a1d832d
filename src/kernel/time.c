/*
 * Clocks and processors. System time is the wall clock in the NT epoch
 * (1601); interrupt time and the performance counter run on the monotonic
 * clock, so they never go back when the wall clock is stepped.
 */
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include "kernel/kernel.h"

#define SECONDS_1601_TO_1970 11644473600LL
#define TIME_INCREMENT 156250 /* the documented 15.625 ms clock tick */

static int64_t to_100ns(const struct timespec *ts)
{
    return (int64_t)ts->tv_sec * 10000000 + ts->tv_nsec / 100;
}

int64_t owfp_time_interrupt(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return to_100ns(&ts);
}

int64_t owfp_time_system(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return to_100ns(&ts) + SECONDS_1601_TO_1970 * 10000000;
}

struct timespec owfp_realtime_after_ms(unsigned ms)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

VOID NTAPI KeQuerySystemTime(PLARGE_INTEGER CurrentTime)
{
    CurrentTime->QuadPart = owfp_time_system();
}

VOID NTAPI KeQuerySystemTimePrecise(PLARGE_INTEGER CurrentTime)
{
    CurrentTime->QuadPart = owfp_time_system();
}

ULONGLONG NTAPI KeQueryInterruptTime(void)
{
    return (ULONGLONG)owfp_time_interrupt();
}

ULONGLONG NTAPI KeQueryInterruptTimePrecise(PULONG64 QpcTimeStamp)
{
    ULONGLONG t = (ULONGLONG)owfp_time_interrupt();
    if (QpcTimeStamp)
        *QpcTimeStamp = t; /* the counter below runs in the same units */
    return t;
}

LARGE_INTEGER NTAPI KeQueryPerformanceCounter(PLARGE_INTEGER PerformanceFrequency)
{
    if (PerformanceFrequency)
        PerformanceFrequency->QuadPart = 10000000;
    LARGE_INTEGER now;
    now.QuadPart = owfp_time_interrupt();
    return now;
}

VOID NTAPI KeQueryTickCount(PLARGE_INTEGER CurrentCount)
{
    CurrentCount->QuadPart = owfp_time_interrupt() / TIME_INCREMENT;
}

ULONG NTAPI KeQueryTimeIncrement(void)
{
    return TIME_INCREMENT;
}

/* ---- processors: one group of up to 64, as the ids below assume ---------- */

/* Read once: sysconf reads a file each time, and drivers ask for the
 * current processor on their hot paths. */
static ULONG online(void)
{
    static _Atomic ULONG cached;
    ULONG n = cached;
    if (!n) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c < 1 ? 1 : c > 64 ? 64 : (ULONG)c;
        cached = n;
    }
    return n;
}

static ULONG current_cpu(void)
{
    int c = sched_getcpu();
    ULONG n = online();
    return c < 0 ? 0 : (ULONG)c % n;
}

ULONG NTAPI KeGetCurrentProcessorNumber(void)
{
    return current_cpu();
}

ULONG NTAPI KeGetCurrentProcessorIndex(void)
{
    return current_cpu();
}

ULONG NTAPI KeGetCurrentProcessorNumberEx(PPROCESSOR_NUMBER ProcNumber)
{
    ULONG c = current_cpu();
    if (ProcNumber) {
        ProcNumber->Group = 0;
        ProcNumber->Number = (UCHAR)c;
        ProcNumber->Reserved = 0;
    }
    return c;
}

ULONG NTAPI KeQueryActiveProcessorCount(PKAFFINITY ActiveProcessors)
{
    ULONG n = online();
    if (ActiveProcessors)
        *ActiveProcessors = n >= 64 ? ~(KAFFINITY)0 : (((KAFFINITY)1 << n) - 1);
    return n;
}

ULONG NTAPI KeQueryActiveProcessorCountEx(USHORT GroupNumber)
{
    return GroupNumber == 0 || GroupNumber == ALL_PROCESSOR_GROUPS ? online() : 0;
}

ULONG NTAPI KeQueryMaximumProcessorCount(void)
{
    return online();
}

ULONG NTAPI KeQueryMaximumProcessorCountEx(USHORT GroupNumber)
{
    return KeQueryActiveProcessorCountEx(GroupNumber);
}

/* ---- busy waiting ---------------------------------------------------------- */

VOID NTAPI KeStallExecutionProcessor(ULONG MicroSeconds)
{
    /* Spins rather than sleeps: the caller may hold a spin lock. */
    int64_t until = owfp_time_interrupt() + (int64_t)MicroSeconds * 10;
    while (owfp_time_interrupt() < until)
        ;
}
