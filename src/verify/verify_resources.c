/*
 * What a driver leaves behind at unload, as findings: pool allocations by
 * tag, work items, NBLs, NBs and MDLs (rule "K": kernel and NDIS services,
 * no spec rule), stream clones (S30), injection handles and the injections
 * still pending on them (E3, S26), callouts still registered (E3).
 *
 * Each is compared with what was live when the driver was loaded, and with
 * what an earlier unload already reported, so drivers loaded one after the
 * other are each charged only with their own.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openwfp/kernel.h>

#include "engine/callout_registry.h"
#include "verify/verify_internal.h"

atomic_llong owfp_verify_live[OWFP_VERIFY_RES_COUNT];

/* Levels already reported by an unload (the same accounting driver_host.c
 * uses for its leak lines). */
static pthread_mutex_t reported_mu = PTHREAD_MUTEX_INITIALIZER;
static struct owfp_verify_snapshot reported;

static void put_tag(struct owfp_verify_snapshot *s, uint32_t tag, uint64_t n, uint64_t bytes)
{
    for (size_t i = 0; i < s->ntags; i++)
        if (s->tags[i].tag == tag) {
            s->tags[i].n = n;
            s->tags[i].bytes = bytes;
            return;
        }
    if (s->ntags == s->captags) {
        size_t cap = s->captags ? s->captags * 2 : 16;
        struct owfp_verify_tag *t = realloc(s->tags, cap * sizeof(*t));
        if (!t)
            return;
        s->tags = t;
        s->captags = cap;
    }
    s->tags[s->ntags++] = (struct owfp_verify_tag){tag, n, bytes};
}

static struct owfp_verify_tag get_tag(const struct owfp_verify_snapshot *s, uint32_t tag)
{
    for (size_t i = 0; i < s->ntags; i++)
        if (s->tags[i].tag == tag)
            return s->tags[i];
    return (struct owfp_verify_tag){tag, 0, 0};
}

static void snap_tag(uint32_t tag, uint64_t n, uint64_t bytes, void *ctx)
{
    put_tag(ctx, tag, n, bytes);
}

void owfp_verify_snapshot_take(struct owfp_verify_snapshot *s)
{
    memset(s, 0, sizeof(*s));
    owfp_pool_outstanding(snap_tag, s);
    for (int r = 0; r < OWFP_VERIFY_RES_COUNT; r++)
        s->live[r] = atomic_load(&owfp_verify_live[r]);
    s->workitems = owfp_workitems_outstanding();
    owfp_injection_handles_open(&s->handles, &s->pending);
}

void owfp_verify_snapshot_free(struct owfp_verify_snapshot *s)
{
    free(s->tags);
    s->tags = NULL;
    s->ntags = s->captags = 0;
}

static uint64_t above(long long now, long long base, long long seen)
{
    long long floor = base > seen ? base : seen;
    return now > floor ? (uint64_t)(now - floor) : 0;
}

void owfp_verify_snapshot_compare(const char *driver, const struct owfp_verify_snapshot *base,
                                  uintptr_t module_base, size_t module_size)
{
    struct owfp_verify_snapshot now;
    owfp_verify_snapshot_take(&now);
    pthread_mutex_lock(&reported_mu);

    /* Pool, one finding with every tag named. */
    char text[256] = "";
    size_t len = 0;
    uint64_t pool_n = 0, pool_bytes = 0;
    for (size_t i = 0; i < now.ntags; i++) {
        struct owfp_verify_tag cur = now.tags[i];
        struct owfp_verify_tag b = get_tag(base, cur.tag), seen = get_tag(&reported, cur.tag);
        if (seen.n > b.n)
            b = seen;
        if (cur.n <= b.n)
            continue;
        uint64_t n = cur.n - b.n, bytes = cur.bytes > b.bytes ? cur.bytes - b.bytes : 0;
        char tag[5];
        owfp_pool_tag_string(cur.tag, tag);
        if (len < sizeof(text)) {
            int w = snprintf(text + len, sizeof(text) - len, "%s'%s' %" PRIu64 " (%" PRIu64 " B)",
                             len ? ", " : "", tag, n, bytes);
            len += w > 0 ? (size_t)w : 0;
        }
        pool_n += n;
        pool_bytes += bytes;
        put_tag(&reported, cur.tag, cur.n, cur.bytes);
    }
    if (pool_n)
        owfp_verify_report_n("K", "leak-pool", driver, pool_n,
                             "%" PRIu64 " pool allocation(s), %" PRIu64
                             " bytes, not freed at unload (ExFreePoolWithTag), by tag: %s",
                             pool_n, pool_bytes, text);

    uint64_t items = above((long long)now.workitems, (long long)base->workitems,
                           (long long)reported.workitems);
    if (items)
        owfp_verify_report_n("K", "leak-workitem", driver, items,
                             "%" PRIu64 " work item(s) not freed at unload (IoFreeWorkItem)",
                             items);
    if (now.workitems > reported.workitems)
        reported.workitems = now.workitems;

    static const struct {
        const char *rule, *check, *what;
    } res[OWFP_VERIFY_RES_COUNT] = {
        [OWFP_VERIFY_RES_NBL] = {"K", "leak-nbl", "NET_BUFFER_LIST(s) from an NDIS pool not "
                                                  "freed (NdisFreeNetBufferList, "
                                                  "FwpsFreeNetBufferList0)"},
        [OWFP_VERIFY_RES_NB] = {"K", "leak-nb", "NET_BUFFER(s) from an NDIS pool not freed "
                                                "(NdisFreeNetBuffer)"},
        [OWFP_VERIFY_RES_MDL] = {"K", "leak-mdl", "MDL(s) not freed (IoFreeMdl, NdisFreeMdl)"},
        [OWFP_VERIFY_RES_CLONE] = {"S30", "leak-clone", "stream clone(s) not freed "
                                                        "(FwpsFreeCloneNetBufferList0 after the "
                                                        "injection completed, or "
                                                        "FwpsDiscardClonedStreamData0)"},
    };
    for (int r = 0; r < OWFP_VERIFY_RES_COUNT; r++) {
        uint64_t n = above(now.live[r], base->live[r], reported.live[r]);
        if (n)
            owfp_verify_report_n(res[r].rule, res[r].check, driver, n, "%" PRIu64 " %s at unload",
                                 n, res[r].what);
        if (now.live[r] > reported.live[r])
            reported.live[r] = now.live[r];
    }

    uint64_t handles = above((long long)now.handles, (long long)base->handles,
                             (long long)reported.handles);
    uint64_t pending = above((long long)now.pending, (long long)base->pending,
                             (long long)reported.pending);
    if (handles)
        owfp_verify_report_n("E3", "leak-injection-handle", driver, handles,
                             "%" PRIu64 " injection handle(s) still open at unload "
                             "(FwpsInjectionHandleDestroy0), %" PRIu64 " injection(s) pending",
                             handles, pending);
    if (pending)
        owfp_verify_report_n("S26", "injection-pending-at-unload", driver, pending,
                             "%" PRIu64 " injected NBL(s) not completed at unload: their "
                             "completion functions would run in an unloaded driver",
                             pending);
    if (now.handles > reported.handles)
        reported.handles = now.handles;
    if (now.pending > reported.pending)
        reported.pending = now.pending;
    pthread_mutex_unlock(&reported_mu);

    uint32_t first = 0;
    struct owfp_engine *e = owfp_engine_get();
    size_t callouts =
        e && module_size ? owfp_callouts_in(e, module_base, module_size, &first) : 0;
    if (callouts)
        owfp_verify_report_n("E3", "callout-registered-at-unload", driver, callouts,
                             "%zu callout(s) still registered at unload (one is id %" PRIu32
                             "): unregister every callout before DriverUnload returns",
                             callouts, first);
    owfp_verify_snapshot_free(&now);
}
