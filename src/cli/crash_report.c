/* The crash report naming the driver (crash_report.h). Everything the signal
 * handler does is async-signal-safe: write(2), the module table read with
 * atomics, backtrace() (its unwinder is loaded at install time, not in the
 * handler) and backtrace_symbols_fd(). */
#include "cli/crash_report.h"

#include <execinfo.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZER_OWNS_SIGNALS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define SANITIZER_OWNS_SIGNALS 1
#endif
#endif

#define MAX_MODULES 64
#define MAX_FRAMES 64

struct module {
    atomic_bool used; /* set last when added, cleared first when removed */
    uintptr_t start;
    size_t size;
    char name[64];
    char path[256];
};

static struct module modules[MAX_MODULES];

/* ---- the module table ------------------------------------------------------------- */

static void copy_text(char *out, size_t cap, const char *in)
{
    size_t n = strlen(in);
    if (n >= cap)
        n = cap - 1;
    memcpy(out, in, n);
    out[n] = '\0';
}

void owfp_crash_report_add_module(const char *name, const char *path, uintptr_t start,
                                  size_t size)
{
    for (size_t i = 0; i < MAX_MODULES; i++) {
        struct module *m = &modules[i];
        if (atomic_load_explicit(&m->used, memory_order_relaxed))
            continue;
        m->start = start;
        m->size = size;
        copy_text(m->name, sizeof(m->name), name);
        copy_text(m->path, sizeof(m->path), path);
        atomic_store_explicit(&m->used, true, memory_order_release);
        return;
    }
}

void owfp_crash_report_remove_module(uintptr_t start)
{
    for (size_t i = 0; i < MAX_MODULES; i++)
        if (atomic_load_explicit(&modules[i].used, memory_order_acquire) &&
            modules[i].start == start)
            atomic_store_explicit(&modules[i].used, false, memory_order_release);
}

#ifndef SANITIZER_OWNS_SIGNALS

static const struct module *module_of(uintptr_t pc)
{
    for (size_t i = 0; i < MAX_MODULES; i++) {
        const struct module *m = &modules[i];
        if (atomic_load_explicit(&m->used, memory_order_acquire) && pc >= m->start &&
            pc - m->start < m->size)
            return m;
    }
    return NULL;
}

/* ---- async-signal-safe output -------------------------------------------------------- */

static void put(const char *s)
{
    size_t n = strlen(s);
    while (n) {
        ssize_t w = write(STDERR_FILENO, s, n);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

/* Base 10, or base 16 with a "0x" prefix. */
static void put_number(uintptr_t v, unsigned base)
{
    char buf[24]; /* "0x" and 16 digits, or 20 decimal digits */
    size_t i = sizeof(buf) - 1;
    buf[i] = '\0';
    do {
        buf[--i] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    if (base == 16) {
        buf[--i] = 'x';
        buf[--i] = '0';
    }
    put(buf + i);
}

static void put_hex(uintptr_t v)
{
    put_number(v, 16);
}

static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGSEGV:
        return "SIGSEGV";
    case SIGBUS:
        return "SIGBUS";
    case SIGFPE:
        return "SIGFPE";
    case SIGILL:
        return "SIGILL";
    case SIGABRT:
        return "SIGABRT";
    default:
        return "signal";
    }
}

/* ---- the report ------------------------------------------------------------------------ */

static uintptr_t faulting_pc(const void *context)
{
    const ucontext_t *uc = context;
    if (!uc)
        return 0;
#if defined(__x86_64__)
    return (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
    return (uintptr_t)uc->uc_mcontext.pc;
#else
    return 0;
#endif
}

static void put_location(const struct module *m, uintptr_t pc)
{
    put(m->name);
    put(" (");
    put(m->path);
    put("+");
    put_hex(pc - m->start);
    put(")");
}

static void report(int sig, const siginfo_t *info, const void *context)
{
    void *frames[MAX_FRAMES];
    int n = backtrace(frames, MAX_FRAMES);
    uintptr_t pc = faulting_pc(context);
    /* The handler's own frames come first: start at the faulting one. */
    int first = 0;
    for (int i = 0; i < n; i++)
        if ((uintptr_t)frames[i] == pc) {
            first = i;
            break;
        }

    put("openwfp: fatal signal ");
    put(signal_name(sig));
    put(" (");
    put_number((uintptr_t)sig, 10);
    put(")");
    if (sig != SIGABRT) {
        put(" at address ");
        put_hex((uintptr_t)info->si_addr);
    }
    if (pc) {
        put(", code at ");
        put_hex(pc);
    }
    put("\n");

    const struct module *m = pc ? module_of(pc) : NULL;
    if (m) {
        put("openwfp: the crash is in driver ");
        put_location(m, pc);
        put("\n");
    } else {
        int at = first;
        while (at < n && !(m = module_of((uintptr_t)frames[at])))
            at++;
        if (m) {
            put("openwfp: the crash is in code called by driver ");
            put_location(m, (uintptr_t)frames[at]);
            put("\n");
        } else {
            put("openwfp: no driver code is on the crashing thread's stack\n");
        }
    }
    put("openwfp: backtrace:\n");
    backtrace_symbols_fd(frames + first, n - first, STDERR_FILENO);
}

static atomic_flag reporting = ATOMIC_FLAG_INIT;

static void on_fatal_signal(int sig, siginfo_t *info, void *context)
{
    /* One report: a second thread crashing meanwhile just dies. */
    if (!atomic_flag_test_and_set(&reporting))
        report(sig, info, context);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    /* Pending until the handler returns (the signal is blocked in it); a
     * fault would also recur when the instruction is retried. */
    raise(sig);
}

#endif /* SANITIZER_OWNS_SIGNALS */

void owfp_crash_report_install(void)
{
#ifndef SANITIZER_OWNS_SIGNALS
    static bool installed;
    if (installed)
        return;
    installed = true;
    void *warm[1];
    backtrace(warm, 1); /* loads the unwinder (it allocates) outside any handler */

    static char alt_stack[64 * 1024];
    stack_t cur;
    if (sigaltstack(NULL, &cur) == 0 && (cur.ss_flags & SS_DISABLE)) {
        stack_t ss = {.ss_sp = alt_stack, .ss_size = sizeof(alt_stack), .ss_flags = 0};
        sigaltstack(&ss, NULL);
    }
    static const int signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
    for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++) {
        struct sigaction old;
        if (sigaction(signals[i], NULL, &old) != 0 || old.sa_handler != SIG_DFL)
            continue; /* someone else (a sanitizer runtime, an embedder) handles it */
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_sigaction = on_fatal_signal;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        sigaction(signals[i], &sa, NULL);
    }
#endif
}
