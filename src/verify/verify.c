/*
 * The callout verifier's finding table and what every check shares: the
 * enabled flag, callouts and driver modules by id and address, the callout
 * running on each thread, backtraces, and the kernel layer's findings
 * (docs/verifier.md).
 *
 * A finding is keyed by rule id + check name + callout id + driver. A new
 * key takes the message, the flow, the callout key and a backtrace; a known
 * one only counts. Findings live until owfp_verify_reset.
 */
#include "verify/verify.h"

#include <dlfcn.h>
#include <execinfo.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fwpsk.h>

#include "stream/stream.h"
#include "verify/verify_internal.h"

atomic_bool owfp_verify_on;
_Thread_local struct owfp_verify_frame *owfp_verify_top;

#define MAX_FINDINGS 4096
#define MAX_FRAMES 16
#define RAW_FRAMES 48

struct finding {
    char rule[8];
    char check[48];
    char driver[64];
    char key[40];
    uint32_t callout_id;
    uint64_t flow;
    uint64_t count;
    char message[320];
    char *frames[MAX_FRAMES];
    size_t nframes;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct finding *findings[MAX_FINDINGS];
static size_t nfindings;
/* Findings not kept (table full, out of memory): their occurrences count. */
static uint64_t occurrences, dropped;
static owfp_verify_fn sink;
static void *sink_ctx;

/* ---- callouts by id ------------------------------------------------------------ */

#define SEG_BITS 8
#define NSEGS 256 /* ids below 65536 */

static _Atomic(struct owfp_verify_callout *) segs[NSEGS];

struct owfp_verify_callout *owfp_verify_callout(uint32_t id, bool create)
{
    if (!id || (id >> SEG_BITS) >= NSEGS)
        return NULL;
    struct owfp_verify_callout *seg =
        atomic_load_explicit(&segs[id >> SEG_BITS], memory_order_acquire);
    if (!seg && create) {
        pthread_mutex_lock(&mu);
        seg = atomic_load_explicit(&segs[id >> SEG_BITS], memory_order_relaxed);
        if (!seg) {
            seg = calloc(1u << SEG_BITS, sizeof(*seg));
            atomic_store_explicit(&segs[id >> SEG_BITS], seg, memory_order_release);
        }
        pthread_mutex_unlock(&mu);
    }
    return seg ? &seg[id & ((1u << SEG_BITS) - 1)] : NULL;
}

/* The file name of the module holding `addr` (NULL when dladdr cannot
 * place it); *info gets the rest of what dladdr says. */
static const char *module_file(const void *addr, Dl_info *info)
{
    if (!addr || !dladdr(addr, info) || !info->dli_fname)
        return NULL;
    const char *slash = strrchr(info->dli_fname, '/');
    return slash ? slash + 1 : info->dli_fname;
}

/* Its base name up to the first dot, as driver_host.c names drivers; ""
 * when unknown. */
static void module_name(const void *addr, char out[64])
{
    Dl_info info;
    const char *s = module_file(addr, &info);
    snprintf(out, 64, "%.*s", s ? (int)strcspn(s, ".") : 0, s ? s : "");
}

/* ---- driver modules (the host tells) ---------------------------------------------- */

struct module {
    char name[64];
    uintptr_t base;
    size_t size;
    bool unloaded;
    struct owfp_verify_snapshot snap;
};

#define MAX_MODULES 64
static struct module modules[MAX_MODULES];
static size_t nmodules;
static atomic_uint unloaded_modules; /* read without the lock: any R8 check to do? */

/* With mu held. */
static struct module *module_at(uintptr_t pc)
{
    for (size_t i = 0; i < nmodules; i++)
        if (modules[i].size && pc - modules[i].base < modules[i].size)
            return &modules[i];
    return NULL;
}

static struct module *module_named(const char *name)
{
    for (size_t i = nmodules; i-- > 0;)
        if (strcmp(modules[i].name, name) == 0)
            return &modules[i];
    return NULL;
}

void owfp_verify_driver_loaded(const char *name, const void *base, size_t size)
{
    if (!name || !atomic_load(&owfp_verify_on))
        return;
    struct owfp_verify_snapshot snap;
    owfp_verify_snapshot_take(&snap);
    pthread_mutex_lock(&mu);
    /* A module mapped where an unloaded one was replaces it. */
    for (size_t i = 0; i < nmodules;) {
        struct module *m = &modules[i];
        bool overlaps = size && m->size && (uintptr_t)base < m->base + m->size &&
                        m->base < (uintptr_t)base + size;
        if (overlaps || strcmp(m->name, name) == 0) {
            if (m->unloaded)
                atomic_fetch_sub(&unloaded_modules, 1);
            owfp_verify_snapshot_free(&m->snap);
            *m = modules[--nmodules];
            continue;
        }
        i++;
    }
    if (nmodules < MAX_MODULES) {
        struct module *m = &modules[nmodules++];
        memset(m, 0, sizeof(*m));
        snprintf(m->name, sizeof(m->name), "%s", name);
        m->base = (uintptr_t)base;
        m->size = size;
        m->snap = snap;
    } else {
        owfp_verify_snapshot_free(&snap);
    }
    pthread_mutex_unlock(&mu);
}

void owfp_verify_driver_unloaded(const char *name)
{
    if (!name || !atomic_load(&owfp_verify_on))
        return;
    pthread_mutex_lock(&mu);
    struct module *m = module_named(name);
    if (m && !m->unloaded) {
        m->unloaded = true;
        atomic_fetch_add(&unloaded_modules, 1);
    }
    pthread_mutex_unlock(&mu);
}

void owfp_verify_driver_leaks(const char *name)
{
    if (!name || !atomic_load(&owfp_verify_on))
        return;
    struct owfp_verify_snapshot base = {0};
    uintptr_t lo = 0;
    size_t size = 0;
    pthread_mutex_lock(&mu);
    struct module *m = module_named(name);
    bool known = m != NULL;
    if (m) {
        base = m->snap;
        m->snap = (struct owfp_verify_snapshot){0};
        lo = m->base;
        size = m->size;
    }
    pthread_mutex_unlock(&mu);
    if (known)
        owfp_verify_snapshot_compare(name, &base, lo, size);
    owfp_verify_snapshot_free(&base);
}

/* ---- public switches ------------------------------------------------------------ */

void owfp_verify_enable(bool on)
{
    atomic_store(&owfp_verify_on, on);
}

bool owfp_verify_enabled(void)
{
    return atomic_load(&owfp_verify_on);
}

void owfp_verify_set_sink(owfp_verify_fn fn, void *ctx)
{
    pthread_mutex_lock(&mu);
    sink = fn;
    sink_ctx = ctx;
    pthread_mutex_unlock(&mu);
}

static void view(const struct finding *f, struct owfp_verify_finding *v)
{
    *v = (struct owfp_verify_finding){
        .rule = f->rule,
        .check = f->check,
        .driver = f->driver,
        .callout_key = f->key,
        .callout_id = f->callout_id,
        .flow = f->flow,
        .count = f->count,
        .message = f->message,
        .backtrace = (const char *const *)f->frames,
        .nframes = f->nframes,
    };
}

size_t owfp_verify_findings(owfp_verify_fn fn, void *ctx)
{
    pthread_mutex_lock(&mu);
    size_t n = nfindings;
    for (size_t i = 0; fn && i < n; i++) {
        struct owfp_verify_finding v;
        view(findings[i], &v);
        fn(&v, ctx);
    }
    pthread_mutex_unlock(&mu);
    return n;
}

uint64_t owfp_verify_occurrences(void)
{
    pthread_mutex_lock(&mu);
    uint64_t n = occurrences;
    pthread_mutex_unlock(&mu);
    return n;
}

static void free_finding(struct finding *f)
{
    for (size_t i = 0; i < f->nframes; i++)
        free(f->frames[i]);
    free(f);
}

void owfp_verify_reset(void)
{
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < nfindings; i++)
        free_finding(findings[i]);
    nfindings = 0;
    occurrences = dropped = 0;
    pthread_mutex_unlock(&mu);
}

/* ---- reporting ------------------------------------------------------------------ */

/* With mu held. */
static struct finding *find(const char *rule, const char *check, uint32_t callout_id,
                            const char *driver)
{
    for (size_t i = 0; i < nfindings; i++) {
        struct finding *f = findings[i];
        if (f->callout_id == callout_id && strcmp(f->check, check) == 0 &&
            strcmp(f->rule, rule) == 0 && strcmp(f->driver, driver) == 0)
            return f;
    }
    return NULL;
}

static void guid_text(const GUID *g, char out[40])
{
    snprintf(out, 40, "{%08" PRIx32 "-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x}",
             (uint32_t)g->Data1, g->Data2, g->Data3, g->Data4[0], g->Data4[1], g->Data4[2],
             g->Data4[3], g->Data4[4], g->Data4[5], g->Data4[6], g->Data4[7]);
}

/* "module.so(symbol+0xoff) [0xaddr]", as backtrace_symbols writes frames;
 * "module.so(+0xoff)" when the symbol is not exported. */
static char *frame_text(const void *pc)
{
    Dl_info info;
    char buf[320];
    const char *file = module_file(pc, &info);
    if (file) {
        if (info.dli_sname && info.dli_saddr)
            snprintf(buf, sizeof(buf), "%s(%s+0x%" PRIxPTR ") [%p]", file, info.dli_sname,
                     (uintptr_t)pc - (uintptr_t)info.dli_saddr, pc);
        else
            snprintf(buf, sizeof(buf), "%s(+0x%" PRIxPTR ") [%p]", file,
                     (uintptr_t)pc - (uintptr_t)info.dli_fbase, pc);
    } else {
        snprintf(buf, sizeof(buf), "[%p]", pc);
    }
    return strdup(buf);
}

/* Leading frames that are openwfp's own helpers (the verifier, the kernel
 * layer's finding and wait paths), not the call that broke the rule: the
 * backtrace starts at the WDK function the driver called. Recognised by
 * name where names are exported (the openwfp command exports them). */
static bool internal_frame(const void *pc)
{
    Dl_info info;
    if (!dladdr(pc, &info) || !info.dli_sname)
        return false;
    return strncmp(info.dli_sname, "owfp_", 5) == 0;
}

static const char *fn_kind_name(int kind)
{
    return kind == OWFP_VERIFY_NOTIFY        ? "notifyFn"
           : kind == OWFP_VERIFY_FLOW_DELETE ? "flowDeleteFn"
                                             : "classifyFn";
}

const char *owfp_verify_where(void)
{
    const struct owfp_verify_frame *fr = owfp_verify_top;
    return fr ? fn_kind_name(fr->kind) : NULL;
}

/* The driver of callout `id`, as named when it registered. */
static bool callout_driver(uint32_t id, char out[64])
{
    const struct owfp_verify_callout *vc = owfp_verify_callout(id, false);
    if (!vc || !vc->driver[0])
        return false;
    memcpy(out, vc->driver, 64);
    return true;
}

static void driver_of(uint32_t callout_id, const void *fn, void *const *pcs, int npcs,
                      char out[64])
{
    out[0] = '\0';
    if (callout_driver(callout_id, out))
        return;
    if (npcs > 0) {
        pthread_mutex_lock(&mu);
        for (int i = 0; i < npcs && !out[0]; i++) {
            const struct module *m = module_at((uintptr_t)pcs[i]);
            if (m)
                memcpy(out, m->name, 64);
        }
        pthread_mutex_unlock(&mu);
        if (out[0])
            return;
    }
    if (fn) {
        module_name(fn, out);
        return;
    }
    const struct owfp_verify_frame *fr = owfp_verify_top;
    if (fr && !callout_driver(fr->callout_id, out))
        module_name(fr->fn, out);
}

void owfp_verify_report_v(const char *rule, const char *check, uint32_t callout_id,
                          uint64_t flow, const char *driver, const void *fn,
                          enum owfp_verify_bt bt, uint64_t n, const char *fmt, va_list ap)
{
    void *pcs[RAW_FRAMES];
    int npcs = bt == OWFP_VERIFY_BT_STACK ? backtrace(pcs, RAW_FRAMES) : 0;
    char drv[64];
    if (driver)
        snprintf(drv, sizeof(drv), "%s", driver);
    else
        driver_of(callout_id, fn, pcs, npcs, drv);

    pthread_mutex_lock(&mu);
    struct finding *known = find(rule, check, callout_id, drv);
    if (known) {
        known->count += n;
        occurrences += n;
    }
    pthread_mutex_unlock(&mu);
    if (known)
        return;

    struct finding *f = calloc(1, sizeof(*f));
    if (!f) {
        pthread_mutex_lock(&mu);
        dropped++;
        occurrences += n;
        pthread_mutex_unlock(&mu);
        return;
    }
    snprintf(f->rule, sizeof(f->rule), "%s", rule);
    snprintf(f->check, sizeof(f->check), "%s", check);
    memcpy(f->driver, drv, sizeof(f->driver));
    f->callout_id = callout_id;
    f->flow = flow;
    f->count = n;
    const struct owfp_verify_callout *vc = owfp_verify_callout(callout_id, false);
    if (vc && vc->used)
        guid_text(&vc->key, f->key);
    vsnprintf(f->message, sizeof(f->message), fmt, ap);
    if (bt == OWFP_VERIFY_BT_FN && fn) {
        f->frames[0] = frame_text(fn);
        f->nframes = f->frames[0] != NULL;
    } else if (bt == OWFP_VERIFY_BT_STACK) {
        int i = 1; /* frame 0 is this function */
        while (i < npcs && internal_frame(pcs[i]))
            i++;
        for (; i < npcs && f->nframes < MAX_FRAMES; i++) {
            char *t = frame_text(pcs[i]);
            if (t)
                f->frames[f->nframes++] = t;
        }
    }

    pthread_mutex_lock(&mu);
    known = find(rule, check, callout_id, drv);
    bool added = false;
    if (known) {
        known->count += n; /* another thread was first */
    } else if (nfindings < MAX_FINDINGS) {
        findings[nfindings++] = f;
        added = true;
    } else {
        dropped++;
    }
    occurrences += n;
    owfp_verify_fn fn_sink = sink;
    void *ctx = sink_ctx;
    struct owfp_verify_finding v;
    if (added) {
        view(f, &v);
        v.count = n;
    }
    pthread_mutex_unlock(&mu);
    if (!added) {
        free_finding(f);
        return;
    }
    /* The finding stays until a reset, which does not run concurrently
     * with the checks it would clear. */
    if (fn_sink)
        fn_sink(&v, ctx);
}

void owfp_verify_report(const char *rule, const char *check, uint32_t callout_id, uint64_t flow,
                        const char *driver, const void *fn, enum owfp_verify_bt bt,
                        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    owfp_verify_report_v(rule, check, callout_id, flow, driver, fn, bt, 1, fmt, ap);
    va_end(ap);
}

void owfp_verify_report_n(const char *rule, const char *check, const char *driver, uint64_t n,
                          const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    owfp_verify_report_v(rule, check, 0, 0, driver, NULL, OWFP_VERIFY_BT_NONE, n, fmt, ap);
    va_end(ap);
}

/* ---- callouts ------------------------------------------------------------------- */

void owfp_verify_callout_registered(uint32_t id, const GUID *key, const void *classify)
{
    struct owfp_verify_callout *vc = owfp_verify_callout(id, true);
    if (!vc)
        return;
    char name[64];
    module_name(classify, name);
    pthread_mutex_lock(&mu);
    /* The host's name for the module wins (it is what --driver showed). */
    const struct module *m = module_at((uintptr_t)classify);
    if (m)
        memcpy(name, m->name, sizeof(name));
    vc->key = *key;
    memcpy(vc->driver, name, sizeof(vc->driver));
    vc->used = true;
    atomic_store(&vc->pending, 0);
    pthread_mutex_unlock(&mu);
}

/* R8: a module whose DriverUnload has run is being called. */
static void check_unloaded(const struct owfp_verify_frame *fr)
{
    if (!fr->fn || !atomic_load_explicit(&unloaded_modules, memory_order_relaxed))
        return;
    char name[64] = "";
    pthread_mutex_lock(&mu);
    const struct module *m = module_at((uintptr_t)fr->fn);
    if (m && m->unloaded)
        memcpy(name, m->name, sizeof(name));
    pthread_mutex_unlock(&mu);
    if (!name[0])
        return;
    owfp_verify_report("R8", "call-after-unload", fr->callout_id, fr->flow, name, fr->fn,
                       OWFP_VERIFY_BT_FN,
                       "%s of callout %" PRIu32 " called after %s's DriverUnload returned: "
                       "the callout was left registered (on Windows the module is gone)",
                       fn_kind_name(fr->kind), fr->callout_id, name);
}

void owfp_verify_enter(struct owfp_verify_frame *fr, uint32_t callout_id, int kind,
                       const void *fn, uint64_t flow)
{
    *fr = (struct owfp_verify_frame){.prev = owfp_verify_top, .callout_id = callout_id,
                                     .kind = (uint8_t)kind, .flow = flow, .fn = fn};
    check_unloaded(fr);
    owfp_verify_top = fr;
}

void owfp_verify_leave(struct owfp_verify_frame *fr)
{
    owfp_verify_top = fr->prev;
}

void owfp_verify_enter_classify(struct owfp_verify_frame *fr, uint32_t callout_id,
                                const void *fn, const FWPS_INCOMING_VALUES0 *in,
                                const FWPS_INCOMING_METADATA_VALUES0 *meta,
                                const void *layer_data, const void *filter,
                                const FWPS_CLASSIFY_OUT0 *out)
{
    uint64_t flow = meta && (meta->currentMetadataValues & FWPS_METADATA_FIELD_FLOW_HANDLE)
                        ? meta->flowHandle
                        : 0;
    *fr = (struct owfp_verify_frame){
        .prev = owfp_verify_top,
        .callout_id = callout_id,
        .kind = OWFP_VERIFY_CLASSIFY,
        .flow = flow,
        .fn = fn,
        .layer_data = layer_data,
        .filter = filter,
        .out = out,
        .out_flags_in = out ? out->flags : 0,
        .rights_in = out ? out->rights : 0,
    };
    if (in && layer_data &&
        (in->layerId == FWPS_LAYER_STREAM_V4 || in->layerId == FWPS_LAYER_STREAM_V6)) {
        const FWPS_STREAM_CALLOUT_IO_PACKET0 *io = layer_data;
        fr->stream = true;
        fr->stream_flags = io->streamData ? io->streamData->flags : 0;
        /* The stream classify that is calling (stream/classify.c). */
        fr->flowp = owfp_stream_current ? owfp_stream_current->stream->flow : NULL;
        if (fr->flowp)
            owfp_verify_stream_start(fr->flowp, callout_id, fr->stream_flags);
    }
    check_unloaded(fr);
    owfp_verify_top = fr;
}

void owfp_verify_leave_classify(struct owfp_verify_frame *fr)
{
    owfp_verify_top = fr->prev;
    if (!fr->out || !fr->filter)
        return;
    if (fr->stream)
        owfp_verify_stream_answer(fr);
    else
        owfp_verify_generic_answer(fr);
}

/* ---- API misuse shared by several files ----------------------------------------- */

void owfp_verify_passive_in_callout(const char *api)
{
    const struct owfp_verify_frame *fr = owfp_verify_top;
    owfp_verify_report("C4", "passive-api-in-callout", fr ? fr->callout_id : 0,
                       fr ? fr->flow : 0, NULL, NULL, OWFP_VERIFY_BT_STACK,
                       "%s (PASSIVE_LEVEL only) called from inside %s%s: refused with "
                       "STATUS_INVALID_DEVICE_STATE",
                       api, fr ? fn_kind_name(fr->kind) : "a callout function",
                       fr ? " (DISPATCH_LEVEL)" : "");
}

/* The kernel layer's finding, sorted by what it is about. */
static void kernel_check(const char *msg, const char **rule, const char **check)
{
    static const struct {
        const char *prefix, *check;
    } kinds[] = {
        {"pool violation", "pool"},       {"lock violation", "lock"},
        {"timer violation", "timer"},     {"work item violation", "workitem"},
        {"lookaside violation", "lookaside"}, {"assertion failed", "assert"},
    };
    const char *irql = "IRQL violation: ";
    if (strncmp(msg, irql, strlen(irql)) == 0) {
        const char *what = msg + strlen(irql);
        *rule = "C4";
        if (strstr(what, " returned at ") || strstr(what, " exited at "))
            *check = "irql-not-restored";
        else if (strncmp(what, "KeRaiseIrql", 11) == 0 || strncmp(what, "KeLowerIrql", 11) == 0)
            *check = "irql-raise-lower";
        else if (strstr(what, "Wait") || strstr(what, "Delay") || strstr(what, "Sleep"))
            *check = "wait-at-dispatch";
        else
            *check = "call-above-irql";
        return;
    }
    *rule = "K";
    *check = "kernel";
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (strncmp(msg, kinds[i].prefix, strlen(kinds[i].prefix)) == 0)
            *check = kinds[i].check;
}

void owfp_verify_kernel_finding(const char *message)
{
    const char *rule, *check;
    kernel_check(message, &rule, &check);
    const struct owfp_verify_frame *fr = owfp_verify_top;
    if (fr)
        owfp_verify_report(rule, check, fr->callout_id, fr->flow, NULL, NULL,
                           OWFP_VERIFY_BT_STACK, "%s (inside %s)", message,
                           fn_kind_name(fr->kind));
    else
        owfp_verify_report(rule, check, 0, 0, NULL, NULL, OWFP_VERIFY_BT_STACK, "%s%s", message,
                           rule[0] == 'C' ? " (outside callouts: the driver raised the IRQL, "
                                            "e.g. holds a spin lock)"
                                          : "");
}
