/* Loading and unloading callout drivers built as shared objects (driver_host.h). */
#include "cli/driver_host.h"

#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ntddk.h>
#include <wdm.h>
#include <openwfp/kernel.h>
#include <openwfp/openwfp.h>
#include <openwfp/verify.h>

#include "cli/crash_report.h"

#define NAME_MAX_CHARS 63
#define SERVICES_KEY "\\REGISTRY\\MACHINE\\SYSTEM\\CurrentControlSet\\Services\\"
#define UNLOAD_WAIT_MS 5000u

/* Live pool by tag, as owfp_pool_outstanding reports it. */
struct tag_use {
    uint32_t tag;
    uint64_t n, bytes;
};
struct tag_table {
    struct tag_use *v;
    size_t n, cap;
    bool incomplete; /* an allocation failed while taking it */
};

struct driver {
    struct driver *next; /* loaded: newest first; kept: any order */
    char name[NAME_MAX_CHARS + 1];
    char *path;
    void *module;
    DRIVER_OBJECT object;
    DRIVER_EXTENSION extension;
    WCHAR driver_name[sizeof("\\Driver\\") + NAME_MAX_CHARS];
    WCHAR registry_path[sizeof(SERVICES_KEY) + NAME_MAX_CHARS];
    UNICODE_STRING registry;
    /* What was there before DriverEntry, so the unload reports only what
     * appeared since. */
    struct tag_table pool_at_load;
    unsigned long threads_at_load, workitems_at_load, handles_at_load, resources_at_load;
    /* Where the module is mapped: timers and DPCs found there are the
     * driver's, and crash reports name it. */
    uintptr_t base;
    size_t size;
    uint64_t callouts_at_load;
};

static struct driver *loaded; /* newest first */
static struct driver *kept;   /* unloaded, still mapped until owfp_drivers_release */
static struct tag_table accounted; /* pool already reported, by tag */

/* ---- pool snapshots ------------------------------------------------------------ */

static void table_put(struct tag_table *t, uint32_t tag, uint64_t n, uint64_t bytes)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->v[i].tag == tag) {
            t->v[i].n = n;
            t->v[i].bytes = bytes;
            return;
        }
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        struct tag_use *v = realloc(t->v, cap * sizeof(*v));
        if (!v) {
            t->incomplete = true;
            return;
        }
        t->v = v;
        t->cap = cap;
    }
    t->v[t->n++] = (struct tag_use){tag, n, bytes};
}

static struct tag_use table_get(const struct tag_table *t, uint32_t tag)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->v[i].tag == tag)
            return t->v[i];
    return (struct tag_use){tag, 0, 0};
}

static void snapshot_one(uint32_t tag, uint64_t n, uint64_t bytes, void *ctx)
{
    table_put(ctx, tag, n, bytes);
}

static void snapshot(struct tag_table *t)
{
    t->n = 0;
    t->incomplete = false;
    owfp_pool_outstanding(snapshot_one, t);
}

static void table_free(struct tag_table *t)
{
    free(t->v);
    *t = (struct tag_table){0};
}

/* ---- names ------------------------------------------------------------------------ */

/* The name DbgPrint shows while no driver code runs for load or unload:
 * the loaded drivers' names joined by '+'. */
static void set_run_name(void)
{
    char buf[128];
    size_t len = 0;
    buf[0] = '\0';
    for (const struct driver *d = loaded; d; d = d->next) {
        int w = snprintf(buf + len, sizeof(buf) - len, "%s%s", len ? "+" : "", d->name);
        if (w < 0 || (size_t)w >= sizeof(buf) - len)
            break;
        len += (size_t)w;
    }
    owfp_kernel_set_driver_name(len ? buf : NULL);
}

static void enter_driver(const struct driver *d)
{
    owfp_kernel_set_driver_name(d->name);
    owfp_kernel_set_thread_driver_name(d->name);
}

static void leave_driver(void)
{
    owfp_kernel_set_thread_driver_name(NULL);
    set_run_name();
}

static void widen(WCHAR *out, const char *a, const char *b)
{
    size_t n = 0;
    for (; *a; a++)
        out[n++] = (WCHAR)(unsigned char)*a;
    for (; *b; b++)
        out[n++] = (WCHAR)(unsigned char)*b;
    out[n] = 0;
}

/* <base>: the file name up to its first dot; printable ASCII only. */
static bool base_name(const char *path, char out[NAME_MAX_CHARS + 1])
{
    const char *slash = strrchr(path, '/');
    const char *s = slash ? slash + 1 : path;
    size_t n = strcspn(s, ".");
    if (n == 0 || n > NAME_MAX_CHARS)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] > 0x7e || s[i] == '\\')
            return false;
    memcpy(out, s, n);
    out[n] = '\0';
    return true;
}

/* ---- parameters --------------------------------------------------------------------- */

bool owfp_driver_param_parse(char *text, struct owfp_driver_param *out)
{
    char *eq = strchr(text, '=');
    if (!eq || eq == text) {
        fprintf(stderr, "openwfp: --driver-param: expected NAME=VALUE, got '%s'\n", text);
        return false;
    }
    *eq = '\0';
    out->name = text;
    out->value = eq + 1;
    return true;
}

static bool parse_dword(const char *s, uint32_t *v)
{
    int base = 10;
    const char *digits = s;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        digits = s + 2;
    }
    if (!*digits)
        return false;
    for (const char *p = digits; *p; p++)
        if (base == 10 ? !(*p >= '0' && *p <= '9')
                       : !((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') ||
                           (*p >= 'A' && *p <= 'F')))
            return false;
    errno = 0;
    unsigned long long x = strtoull(digits, NULL, base);
    if (errno || x > UINT32_MAX)
        return false;
    *v = (uint32_t)x;
    return true;
}

/* The service key and its Parameters subkey, each with every parameter
 * (drivers read from either). */
static bool make_registry(const struct driver *d, const struct owfp_driver_spec *spec)
{
    char key[sizeof(SERVICES_KEY) + NAME_MAX_CHARS + sizeof("\\Parameters")];
    for (int sub = 0; sub < 2; sub++) {
        snprintf(key, sizeof(key), "%s%s%s", SERVICES_KEY, d->name, sub ? "\\Parameters" : "");
        int rc = owfp_registry_create_key(key);
        for (size_t i = 0; i < spec->nparams && !rc; i++) {
            const struct owfp_driver_param *p = &spec->params[i];
            uint32_t v;
            rc = parse_dword(p->value, &v) ? owfp_registry_set_dword(key, p->name, v)
                                           : owfp_registry_set_string(key, p->name, p->value);
            if (rc)
                fprintf(stderr,
                        "openwfp: driver %s: --driver-param %s: %s\n", d->name, p->name,
                        rc == -EINVAL ? "bad name or value (names are printable ASCII, values UTF-8)"
                                      : "out of memory");
        }
        if (rc)
            return false;
    }
    return true;
}

/* ---- unloading ---------------------------------------------------------------------- */

static uint64_t callouts_registered(void)
{
    struct owfp_engine_stats s = {0};
    owfp_engine *e = owfp_engine_current();
    if (e)
        owfp_engine_get_stats(e, &s);
    return s.callouts_registered;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void free_driver(struct driver *d)
{
    table_free(&d->pool_at_load);
    free(d->path);
    free(d);
}

static void release_module(struct driver *d)
{
    if (d->size)
        owfp_crash_report_remove_module(d->base);
    /* A framework driver that was never unloaded still has its objects. */
    owfp_wdf_driver_gone(&d->object, NULL, NULL);
    if (d->module)
        dlclose(d->module);
    free_driver(d);
}

/* Timers and DPCs of the module that are still armed or queued: taken out
 * so nothing fires into it once it is unmapped. */
struct deferred {
    unsigned long timers, dpcs;
};

static void cancel_deferred(const struct driver *d, struct deferred *left)
{
    left->timers += owfp_timers_cancel_range((const void *)d->base, d->size);
    left->dpcs += owfp_dpcs_remove_range((const void *)d->base, d->size);
}

/* One line per type of framework (KMDF) object the driver left behind. */
struct wdf_leaks {
    FILE *out;
    const char *name;
    unsigned long lines;
};

static void report_wdf_leak(const char *type, const char *release, unsigned long count, void *ctx)
{
    struct wdf_leaks *w = ctx;
    fprintf(w->out, "openwfp: driver %s: leak: %lu %s object(s) not deleted (%s)\n", w->name,
            count, type, release);
    w->lines++;
}

/* After DriverUnload (or a failed DriverEntry): waits for the driver's work
 * items and threads, reports what is left, unmaps the module when nothing
 * can call into it any more (else keeps it for owfp_drivers_release).
 * Returns the number of problems reported. */
static unsigned long finish_unload(struct driver *d, FILE *out)
{
    unsigned long problems = 0;
    struct deferred left = {0, 0};
    cancel_deferred(d, &left);
    uint64_t deadline = now_ms() + UNLOAD_WAIT_MS;
    bool busy_items = !owfp_workitems_wait_idle(UNLOAD_WAIT_MS);
    while (owfp_system_threads_running() > d->threads_at_load && now_ms() < deadline) {
        struct timespec ms5 = {0, 5000000};
        nanosleep(&ms5, NULL);
    }
    unsigned long threads = owfp_system_threads_running();
    bool busy_threads = threads > d->threads_at_load;
    if (busy_threads) {
        fprintf(out, "openwfp: driver %s: %lu system thread(s) still running %u s after unload\n",
                d->name, threads - d->threads_at_load, UNLOAD_WAIT_MS / 1000);
        problems++;
    }
    if (busy_items) {
        fprintf(out, "openwfp: driver %s: %lu work item(s) still queued or running %u s after "
                     "unload\n",
                d->name, owfp_workitems_pending(), UNLOAD_WAIT_MS / 1000);
        problems++;
    }
    /* A DPC routine of the module may be running: it may arm or queue again. */
    bool busy_dpcs = !owfp_dpcs_wait_range((const void *)d->base, d->size, UNLOAD_WAIT_MS);
    cancel_deferred(d, &left);
    if (left.timers) {
        fprintf(out, "openwfp: driver %s: leak: %lu timer(s) still set at unload (KeCancelTimer); "
                     "cancelled\n",
                d->name, left.timers);
        problems++;
    }
    if (left.dpcs) {
        fprintf(out, "openwfp: driver %s: leak: %lu DPC(s) still queued at unload "
                     "(KeRemoveQueueDpc, KeFlushQueuedDpcs); removed\n",
                d->name, left.dpcs);
        problems++;
    }
    if (busy_dpcs) {
        fprintf(out, "openwfp: driver %s: a DPC routine still running %u s after unload\n",
                d->name, UNLOAD_WAIT_MS / 1000);
        problems++;
    }
    unsigned long resources = owfp_resources_live();
    if (resources > d->resources_at_load) {
        fprintf(out, "openwfp: driver %s: leak: %lu ERESOURCE(s) not deleted "
                     "(ExDeleteResourceLite)\n",
                d->name, resources - d->resources_at_load);
        problems++;
    }
    /* Framework objects first: deleting them closes the keys and devices
     * counted below. */
    struct wdf_leaks wdf = {out, d->name, 0};
    owfp_wdf_driver_gone(&d->object, report_wdf_leak, &wdf);
    problems += wdf.lines;
    unsigned long items = owfp_workitems_outstanding();
    if (items > d->workitems_at_load) {
        fprintf(out, "openwfp: driver %s: leak: %lu work item(s) not freed (IoFreeWorkItem)\n",
                d->name, items - d->workitems_at_load);
        problems++;
    }
    unsigned long handles = owfp_registry_open_handles();
    if (handles > d->handles_at_load) {
        fprintf(out, "openwfp: driver %s: leak: %lu registry key handle(s) not closed (ZwClose)\n",
                d->name, handles - d->handles_at_load);
        problems++;
    }
    unsigned long devices = 0;
    for (PDEVICE_OBJECT dev = d->object.DeviceObject; dev; dev = dev->NextDevice)
        devices++;
    if (devices) {
        fprintf(out, "openwfp: driver %s: leak: %lu device object(s) not deleted (IoDeleteDevice)\n",
                d->name, devices);
        problems++;
    }
    uint64_t callouts = callouts_registered();
    bool busy_callouts = callouts > d->callouts_at_load;
    if (busy_callouts) {
        fprintf(out, "openwfp: driver %s: leak: %" PRIu64 " callout(s) still registered "
                     "(FwpsCalloutUnregister*)\n",
                d->name, callouts - d->callouts_at_load);
        problems++;
    }

    /* Pool by tag: what is above both the level before DriverEntry and what
     * an earlier unload already reported. */
    struct tag_table now = {0};
    snapshot(&now);
    for (size_t i = 0; i < now.n; i++) {
        struct tag_use cur = now.v[i];
        struct tag_use base = table_get(&d->pool_at_load, cur.tag);
        struct tag_use seen = table_get(&accounted, cur.tag);
        if (seen.n > base.n)
            base = seen;
        if (cur.n <= base.n)
            continue;
        char tag[5];
        owfp_pool_tag_string(cur.tag, tag);
        uint64_t n = cur.n - base.n;
        uint64_t bytes = cur.bytes > base.bytes ? cur.bytes - base.bytes : 0;
        fprintf(out, "openwfp: driver %s: leak: pool tag '%s': %" PRIu64 " allocation%s, %" PRIu64
                     " bytes\n",
                d->name, tag, n, n == 1 ? "" : "s", bytes);
        table_put(&accounted, cur.tag, cur.n, cur.bytes);
        problems++;
    }
    if (now.incomplete || d->pool_at_load.incomplete)
        fprintf(out, "openwfp: driver %s: out of memory: the pool report may be incomplete\n",
                d->name);
    table_free(&now);

    if (busy_threads || busy_items || busy_callouts || busy_dpcs) {
        /* Something may still call into the module: keep it mapped. */
        fprintf(out, "openwfp: driver %s: kept mapped until the engine is gone\n", d->name);
        d->next = kept;
        kept = d;
    } else {
        release_module(d);
    }
    fflush(out);
    return problems;
}

static unsigned long unload_one(struct driver *d, FILE *out)
{
    if (!d->object.DriverUnload) {
        /* Windows cannot unload such a driver either: it stays as it is. */
        fprintf(out, "openwfp: driver %s: no DriverUnload routine; not unloaded\n", d->name);
        d->next = kept;
        kept = d;
        return 0;
    }
    enter_driver(d);
    d->object.DriverUnload(&d->object);
    KIRQL irql = KeGetCurrentIrql();
    leave_driver();
    owfp_verify_driver_unloaded(d->name); /* verifier: calls into it are findings now */
    unsigned long problems = 0;
    if (irql != PASSIVE_LEVEL) {
        fprintf(out, "openwfp: driver %s: DriverUnload returned at IRQL %u\n", d->name,
                (unsigned)irql);
        problems++;
    }
    char name[sizeof(d->name)];
    memcpy(name, d->name, sizeof(name));
    problems += finish_unload(d, out); /* may free d */
    owfp_verify_driver_leaks(name);
    return problems;
}

unsigned long owfp_drivers_unload(FILE *out)
{
    unsigned long problems = 0;
    while (loaded) {
        struct driver *d = loaded;
        loaded = d->next;
        d->next = NULL;
        set_run_name();
        problems += unload_one(d, out);
    }
    owfp_kernel_set_driver_name(NULL);
    return problems;
}

void owfp_drivers_release(void)
{
    while (kept) {
        struct driver *d = kept;
        kept = d->next;
        release_module(d);
    }
    table_free(&accounted);
    owfp_registry_clear();
}

/* ---- loading ------------------------------------------------------------------------ */

struct extent_query {
    uintptr_t addr;
    uintptr_t lo, hi;
};

/* dl_iterate_phdr callback: the loaded segments' span of the object that
 * holds q->addr. */
static int find_extent(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct extent_query *q = data;
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    bool holds = false;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t start = info->dlpi_addr + ph->p_vaddr, end = start + ph->p_memsz;
        holds = holds || (q->addr >= start && q->addr < end);
        lo = start < lo ? start : lo;
        hi = end > hi ? end : hi;
    }
    if (!holds)
        return 0;
    q->lo = lo;
    q->hi = hi;
    return 1;
}

/* Code and data of the module that defines `symbol`. */
static bool module_extent(const void *symbol, uintptr_t *base, size_t *size)
{
    struct extent_query q = {(uintptr_t)symbol, 0, 0};
    if (!dl_iterate_phdr(find_extent, &q))
        return false;
    *base = q.lo;
    *size = q.hi - q.lo;
    return true;
}

static int load_one(const struct owfp_driver_spec *spec)
{
    struct driver *d = calloc(1, sizeof(*d));
    if (!d) {
        fprintf(stderr, "openwfp: --driver %s: out of memory\n", spec->path);
        return 2;
    }
    if (!base_name(spec->path, d->name)) {
        fprintf(stderr, "openwfp: --driver %s: the file name must start with 1 to %d "
                        "printable ASCII characters before its first dot\n",
                spec->path, NAME_MAX_CHARS);
        free_driver(d);
        return 2;
    }
    /* A bare file name is a file in the current directory, not a library
     * to look for on the search path. */
    size_t plen = strlen(spec->path);
    d->path = malloc(plen + 3);
    if (!d->path) {
        free_driver(d);
        return 2;
    }
    snprintf(d->path, plen + 3, "%s%s", strchr(spec->path, '/') ? "" : "./", spec->path);
    if (!make_registry(d, spec)) {
        free_driver(d);
        return 2;
    }

    dlerror();
    d->module = dlopen(d->path, RTLD_NOW | RTLD_LOCAL);
    if (!d->module) {
        /* dlerror names the file and, for an API openwfp does not have,
         * the missing symbol. */
        const char *err = dlerror();
        fprintf(stderr, "openwfp: driver %s: cannot load: %s\n", d->name,
                err ? err : "unknown error");
        if (err && strstr(err, "undefined symbol"))
            fprintf(stderr, "openwfp: driver %s: the driver calls a kernel function "
                            "openwfp does not provide (see docs/porting.md)\n",
                    d->name);
        free_driver(d);
        return 2;
    }
    dlerror();
    void *sym = dlsym(d->module, "DriverEntry");
    if (!sym) {
        fprintf(stderr, "openwfp: driver %s (%s): no DriverEntry function\n", d->name,
                d->path);
        release_module(d);
        return 2;
    }
    PDRIVER_INITIALIZE entry;
    memcpy(&entry, &sym, sizeof(entry)); /* object pointer to function pointer, as POSIX allows */
    if (module_extent(sym, &d->base, &d->size)) {
        owfp_crash_report_install();
        owfp_crash_report_add_module(d->name, d->path, d->base, d->size);
    }

    widen(d->driver_name, "\\Driver\\", d->name);
    widen(d->registry_path, SERVICES_KEY, d->name);
    d->object.Type = IO_TYPE_DRIVER;
    d->object.Size = (CSHORT)sizeof(DRIVER_OBJECT);
    d->object.DriverExtension = &d->extension;
    d->object.DriverInit = entry;
    RtlInitUnicodeString(&d->object.DriverName, d->driver_name);
    RtlInitUnicodeString(&d->registry, d->registry_path);
    d->extension.DriverObject = &d->object;
    /* ServiceKeyName: the last component of the registry path. */
    RtlInitUnicodeString(&d->extension.ServiceKeyName,
                         d->registry_path + (sizeof(SERVICES_KEY) - 1));

    snapshot(&d->pool_at_load);
    d->threads_at_load = owfp_system_threads_running();
    d->resources_at_load = owfp_resources_live();
    d->workitems_at_load = owfp_workitems_outstanding();
    d->handles_at_load = owfp_registry_open_handles();
    d->callouts_at_load = callouts_registered();
    owfp_verify_driver_loaded(d->name, (const void *)d->base, d->size);

    enter_driver(d);
    NTSTATUS st = entry(&d->object, &d->registry);
    KIRQL irql = KeGetCurrentIrql();
    leave_driver();
    if (irql != PASSIVE_LEVEL)
        fprintf(stderr, "openwfp: driver %s: DriverEntry returned at IRQL %u\n", d->name,
                (unsigned)irql);
    if (!NT_SUCCESS(st)) {
        fprintf(stderr, "openwfp: driver %s (%s): DriverEntry failed with status "
                        "0x%08" PRIX32 "\n",
                d->name, d->path, (uint32_t)st);
        /* As on Windows: no DriverUnload; whatever it left is reported. */
        finish_unload(d, stderr);
        return 2;
    }
    d->next = loaded;
    loaded = d;
    set_run_name();
    return 0;
}

int owfp_drivers_load(const struct owfp_driver_spec *specs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (load_one(&specs[i]) != 0) {
            owfp_drivers_unload(stderr);
            return 2;
        }
    }
    return 0;
}
