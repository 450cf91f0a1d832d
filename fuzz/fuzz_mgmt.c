/*
 * Fuzz target: the management layer (spec §4-§7: R, N, F, M rules) and
 * flow opens that classify ALE_FLOW_ESTABLISHED with whatever the
 * management calls built.
 *
 * The input is a program of operations, one opcode byte each (low 4 bits)
 * followed by argument bytes; 0 once the input is exhausted.
 *   0 FwpmEngineOpen0 (static / dynamic session; bad arguments)
 *   1 FwpmEngineClose0 (a session slot, or an unknown handle)
 *   2 FwpmTransactionBegin0 (read-write, read-only, bad flags)
 *   3 FwpmTransactionCommit0      4 FwpmTransactionAbort0
 *   5 FwpmProviderAdd0            6 FwpmProviderDeleteByKey0
 *   7 FwpmSubLayerAdd0            8 FwpmSubLayerDeleteByKey0 (incl. the built-in one)
 *   9 FwpmCalloutAdd0 (a layer, a provider, bad flags)
 *  10 FwpmCalloutDeleteById0 / ByKey0
 *  11 FwpmFilterAdd0: layer, sublayer, action, callout, flags, weight,
 *     provider, key and 0-3 conditions with random fields, match types and
 *     value types, each naming existing or missing objects
 *  12 FwpmFilterDeleteById0 / ByKey0
 *  13 FwpsCalloutRegister0..3 (flags, NULL functions, notify behaviour:
 *     veto ADD_FILTER, call PASSIVE-only functions from notifyFn)
 *  14 FwpsCalloutUnregisterById0 / ByKey0
 *  15 flows: owfp_flow_open (the ALE classify; callouts answer, associate
 *     contexts, remove them, abort the flow), owfp_flow_close,
 *     FwpsFlowRemoveContext0, FwpsFlowAbort0 from outside.
 * An opcode byte with bit 7 set is followed by n: that op runs with
 * allocations failing after n more (owfp_alloc_fail_after), so every call
 * may also answer STATUS_INSUFFICIENT_RESOURCES (and must leave the model's
 * invariants intact).
 * Every session waits at most 1 ms for the transaction lock, so a call
 * that would wait for another session's transaction answers
 * STATUS_FWP_TIMEOUT (a few per input at most); calls that would wait
 * forever by design (closing a dynamic session while another session holds
 * a transaction) are not made.
 *
 * Invariants (abort() on violation):
 * - every status is in the documented set of its call (the tables below);
 *   where the model knows the answer (registration, transactions, handles,
 *   flow contexts) it must be exactly that;
 * - no callout function runs for an unregistered callout (R8);
 * - ADD_FILTER carries the key, DELETE_FILTER none (N1, N3); a filter gets
 *   at most one ADD and one DELETE, never a DELETE after a vetoed ADD (N2),
 *   POST_COMMIT at most once, before its DELETE and only to a callout with
 *   ENABLE_COMMIT_ADD_NOTIFY (N7);
 * - every accepted ADD_FILTER is paired with exactly one DELETE_FILTER by
 *   the end (owfp_engine_destroy sends the rest), unless its callout was
 *   unregistered first (R8: then nothing more is sent);
 * - classifyFn sees actionType 0, filterId of its filter, rights WRITE or
 *   none (Q11), flowContext of its (flow, layer, callout) (F5) and is not
 *   called without one when CONDITIONAL_ON_FLOW (F9);
 * - every associated flow context gets exactly one flowDeleteFn, by flow
 *   close at the latest (F7);
 * - no crash, no leak (ASan, LSan).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <fwpmk.h>
#include <fwpsk.h>
#include <openwfp/openwfp.h>

#include "common/alloc.h"
#include "fuzz_util.h"

#define MAX_SESSIONS 4
#define MAX_KEYS 6
#define MAX_FLOWS 4
#define MAX_STEPS 200
#define MAX_TIMEOUTS 3
#define MAX_FILTER_IDS 4096
#define MAX_CTX 512
#define MAX_RECENT 16
#define CTX_BASE 0x20000u

struct session {
    HANDLE h;
    bool open;
    bool dynamic;
    int txn; /* 0 none, 1 read-write, 2 read-only */
};

struct callout {
    bool registered;
    bool draining; /* unregister answered STATUS_DEVICE_BUSY */
    UINT32 id;     /* 0 until known */
    uint32_t flags;
    bool has_delete_fn;
    uint8_t notify_mode; /* bit0 veto every ADD, bit1 veto every other ADD, bit2 PASSIVE calls */
    uint32_t adds_seen;
    uint8_t answer; /* ALE classify behaviour, set by each flow open */
};

struct filter_rec {
    uint8_t add_ok, add_veto, deletes, post;
    int8_t owed; /* callout slot owed a DELETE, or -1 */
};

struct ctx_rec {
    int flow;
    uint32_t gen;
    int callout;
    uint16_t layer;
    bool removed;
    int deletes;
};

struct flow {
    owfp_flow *f;
    UINT64 id;
    uint32_t gen;
    bool classifying;
    bool ipv6;
    UINT64 ctx[MAX_KEYS][2]; /* per callout: ALE layer, stream layer */
};

static struct {
    struct tape t;
    owfp_engine *engine;
    struct session s[MAX_SESSIONS];
    int writer;     /* session holding the write lock, or -1 */
    int readers;    /* sessions in read-only transactions */
    int timeouts;
    struct callout c[MAX_KEYS];
    struct filter_rec fr[MAX_FILTER_IDS];
    UINT64 recent[MAX_RECENT];
    uint32_t nrecent;
    struct flow fl[MAX_FLOWS];
    struct ctx_rec ctx[MAX_CTX];
    uint32_t nctx;
    unsigned in_callout;
    bool faulting; /* allocations may fail during this op */
} g;

static WCHAR fuzz_name[] = {'f', 'u', 'z', 'z', 0};

/* An op run with allocation failures injected (opcode bit 7) may also
 * answer STATUS_INSUFFICIENT_RESOURCES wherever the engine allocates. */
#undef CHECK_EQ_STATUS
#define CHECK_EQ_STATUS(st, want)                                                             \
    do {                                                                                      \
        int32_t got_ = (st), want_ = (want);                                                  \
        if (got_ != want_ && !(g.faulting && got_ == STATUS_INSUFFICIENT_RESOURCES)) {        \
            fprintf(stderr, "status 0x%08x, want 0x%08x\n", (unsigned)got_, (unsigned)want_); \
            fuzz_fail(__FILE__, __LINE__, #st " == " #want);                                  \
        }                                                                                     \
    } while (0)
#undef CHECK_STATUS
#define CHECK_STATUS(st, ...)                                                                 \
    do {                                                                                      \
        static const int32_t allowed_[] = {__VA_ARGS__};                                      \
        int32_t got_ = (st);                                                                  \
        if (!status_in(got_, allowed_, sizeof(allowed_) / sizeof(allowed_[0])) &&             \
            !(g.faulting && got_ == STATUS_INSUFFICIENT_RESOURCES)) {                         \
            fprintf(stderr, "status 0x%08x not in the documented set\n", (unsigned)got_);    \
            fuzz_fail(__FILE__, __LINE__, "status in {" #__VA_ARGS__ "}");                    \
        }                                                                                     \
    } while (0)

static GUID key_provider(uint32_t i) { return fuzz_guid(0x100 + i); }
static GUID key_sublayer(uint32_t i) { return fuzz_guid(0x200 + i); }
static GUID key_callout(uint32_t i) { return fuzz_guid(0x300 + i); }
static GUID key_filter(uint32_t i) { return fuzz_guid(0x400 + i); }

/* ---- the documented status sets (spec §2.1, §4, §6, §7 and the choices) -- */

#define COMMON_MGMT                                                                            \
    STATUS_INVALID_HANDLE, STATUS_FWP_TIMEOUT, STATUS_FWP_INCOMPATIBLE_TXN

static void check_provider_add(NTSTATUS st)
{
    CHECK_STATUS(st, STATUS_SUCCESS, STATUS_FWP_NULL_POINTER, STATUS_FWP_NULL_DISPLAY_NAME,
                 STATUS_FWP_INVALID_FLAGS, STATUS_FWP_ALREADY_EXISTS, COMMON_MGMT);
}

static void check_provider_delete(NTSTATUS st)
{
    CHECK_STATUS(st, STATUS_SUCCESS, STATUS_FWP_NULL_POINTER, STATUS_FWP_PROVIDER_NOT_FOUND,
                 STATUS_FWP_IN_USE, STATUS_FWP_WRONG_SESSION,
                 STATUS_FWP_DYNAMIC_SESSION_IN_PROGRESS, COMMON_MGMT);
}

static void check_sublayer_add(NTSTATUS st)
{
    CHECK_STATUS(st, STATUS_SUCCESS, STATUS_FWP_NULL_POINTER, STATUS_FWP_NULL_DISPLAY_NAME,
                 STATUS_FWP_INVALID_FLAGS, STATUS_FWP_ALREADY_EXISTS,
                 STATUS_FWP_PROVIDER_NOT_FOUND, STATUS_FWP_WRONG_SESSION, COMMON_MGMT);
}

static void check_sublayer_delete(NTSTATUS st)
{
    CHECK_STATUS(st, STATUS_SUCCESS, STATUS_FWP_NULL_POINTER, STATUS_FWP_SUBLAYER_NOT_FOUND,
                 STATUS_FWP_IN_USE, STATUS_FWP_WRONG_SESSION,
                 STATUS_FWP_DYNAMIC_SESSION_IN_PROGRESS, STATUS_FWP_BUILTIN_OBJECT, COMMON_MGMT);
}

static void check_callout_add(NTSTATUS st)
{
    CHECK_STATUS(st, STATUS_SUCCESS, STATUS_FWP_NULL_POINTER, STATUS_FWP_NULL_DISPLAY_NAME,
                 STATUS_FWP_INVALID_FLAGS, STATUS_FWP_ALREADY_EXISTS, STATUS_FWP_LAYER_NOT_FOUND,
                 STATUS_FWP_PROVIDER_NOT_FOUND, STATUS_FWP_WRONG_SESSION, COMMON_MGMT);
}

static void check_callout_delete(NTSTATUS st)
{
    CHECK_STATUS(st, STATUS_SUCCESS, STATUS_FWP_NULL_POINTER, STATUS_FWP_CALLOUT_NOT_FOUND,
                 STATUS_FWP_IN_USE, STATUS_FWP_WRONG_SESSION,
                 STATUS_FWP_DYNAMIC_SESSION_IN_PROGRESS, COMMON_MGMT);
}

static void check_filter_add(NTSTATUS st)
{
    CHECK_STATUS(st, STATUS_SUCCESS, STATUS_FWP_NULL_POINTER, STATUS_FWP_NULL_DISPLAY_NAME,
                 STATUS_FWP_INVALID_FLAGS, STATUS_FWP_PROVIDER_CONTEXT_NOT_FOUND,
                 STATUS_FWP_INVALID_ACTION_TYPE, STATUS_FWP_LAYER_NOT_FOUND,
                 STATUS_FWP_INCOMPATIBLE_LAYER, STATUS_FWP_ALREADY_EXISTS,
                 STATUS_FWP_SUBLAYER_NOT_FOUND, STATUS_FWP_PROVIDER_NOT_FOUND,
                 STATUS_FWP_CALLOUT_NOT_FOUND, STATUS_FWP_WRONG_SESSION,
                 STATUS_FWP_CONDITION_NOT_FOUND, STATUS_FWP_MATCH_TYPE_MISMATCH,
                 STATUS_FWP_TYPE_MISMATCH, STATUS_FWP_INVALID_RANGE, STATUS_FWP_INVALID_NET_MASK,
                 STATUS_FWP_OUT_OF_BOUNDS, STATUS_FWP_INVALID_PARAMETER,
                 STATUS_FWP_INVALID_WEIGHT, STATUS_FWP_CALLOUT_NOTIFICATION_FAILED, COMMON_MGMT);
}

static void check_filter_delete(NTSTATUS st)
{
    CHECK_STATUS(st, STATUS_SUCCESS, STATUS_FWP_NULL_POINTER, STATUS_FWP_FILTER_NOT_FOUND,
                 STATUS_FWP_WRONG_SESSION, STATUS_FWP_DYNAMIC_SESSION_IN_PROGRESS, COMMON_MGMT);
}

/* ---- the transaction lock model ------------------------------------------------ */

/* What a write call on session i must answer before it does anything:
 * STATUS_SUCCESS when it may go on. `would_wait` is set when the answer is
 * the 1 ms STATUS_FWP_TIMEOUT. */
static NTSTATUS lock_for_write(int i, bool *would_wait)
{
    *would_wait = false;
    struct session *s = &g.s[i];
    if (!s->open)
        return STATUS_INVALID_HANDLE;
    if (s->txn == 2)
        return STATUS_FWP_INCOMPATIBLE_TXN;
    if (s->txn == 1)
        return STATUS_SUCCESS;
    if (g.writer >= 0 || g.readers > 0) {
        *would_wait = true;
        return STATUS_FWP_TIMEOUT;
    }
    return STATUS_SUCCESS;
}

/* Returns false when the call must not be made (too many timeouts). */
static bool may_call(bool would_wait)
{
    if (!would_wait)
        return true;
    if (g.timeouts >= MAX_TIMEOUTS)
        return false;
    g.timeouts++;
    return true;
}

static HANDLE handle_of(uint8_t b)
{
    int i = b & 3;
    if ((b & 0x1c) == 0x1c)
        return (HANDLE)(uintptr_t)(0x7000 + b); /* never a session */
    return g.s[i].h;
}

/* A write call's lock answer; the caller then checks the call's own set. */
#define WRITE_PROLOGUE(b)                                                   \
    int si_ = (b) & 3;                                                      \
    bool bogus_ = ((b) & 0x1c) == 0x1c;                                     \
    bool wait_;                                                             \
    NTSTATUS lock_ = bogus_ ? STATUS_INVALID_HANDLE : lock_for_write(si_, &wait_); \
    if (!bogus_ && !may_call(wait_))                                        \
        return;                                                             \
    HANDLE h_ = handle_of(b)

#define CHECK_LOCK(st)                                                      \
    do {                                                                    \
        if (lock_ != STATUS_SUCCESS)                                        \
            CHECK_EQ_STATUS((st), lock_);                                   \
        else                                                                \
            CHECK((st) != STATUS_INVALID_HANDLE && (st) != STATUS_FWP_TIMEOUT && \
                  (st) != STATUS_FWP_INCOMPATIBLE_TXN);                     \
    } while (0)

/* ---- callout functions ------------------------------------------------------------ */

static int callout_by_id(UINT32 id)
{
    for (int i = 0; i < MAX_KEYS; i++)
        if (g.c[i].id == id)
            return i;
    return -1;
}

static struct filter_rec *frec(UINT64 id)
{
    CHECK(id < MAX_FILTER_IDS);
    return &g.fr[id];
}

/* PASSIVE-only functions from inside a callout are refused. */
static void passive_calls(void)
{
    FWPM_SUBLAYER0 sl;
    memset(&sl, 0, sizeof(sl));
    sl.displayData.name = fuzz_name;
    CHECK_EQ_STATUS(FwpmSubLayerAdd0(g.s[0].h, &sl, NULL), STATUS_INVALID_DEVICE_STATE);
    CHECK_EQ_STATUS(FwpmTransactionBegin0(g.s[0].h, 0), STATUS_INVALID_DEVICE_STATE);
    HANDLE h;
    CHECK_EQ_STATUS(FwpmEngineOpen0(NULL, RPC_C_AUTHN_WINNT, NULL, NULL, &h),
                    STATUS_INVALID_DEVICE_STATE);
    CHECK_EQ_STATUS(FwpsCalloutUnregisterById0(1), STATUS_INVALID_DEVICE_STATE);
    GUID k = key_callout(0);
    FWPS_CALLOUT0 c = {k, 0, NULL, NULL, NULL};
    CHECK_EQ_STATUS(FwpsCalloutRegister0(NULL, &c, NULL), STATUS_INVALID_DEVICE_STATE);
}

static NTSTATUS notify_common(FWPS_CALLOUT_NOTIFY_TYPE type, const GUID *key, FWPS_FILTER0 *filter)
{
    CHECK(filter);
    int ci = callout_by_id(filter->action.calloutId);
    CHECK(ci >= 0);
    struct callout *c = &g.c[ci];
    CHECK(c->registered); /* R8 */
    struct filter_rec *r = frec(filter->filterId);
    g.in_callout++;
    if (c->notify_mode & 4)
        passive_calls();
    g.in_callout--;
    switch (type) {
    case FWPS_CALLOUT_NOTIFY_ADD_FILTER: {
        CHECK(key); /* N1 */
        CHECK(!r->add_ok && !r->add_veto && !r->deletes);
        c->adds_seen++;
        bool veto = (c->notify_mode & 1) || ((c->notify_mode & 2) && (c->adds_seen & 1));
        if (veto) {
            r->add_veto = 1;
            return STATUS_UNSUCCESSFUL; /* N2 */
        }
        r->add_ok = 1;
        r->owed = (int8_t)ci;
        return STATUS_SUCCESS;
    }
    case FWPS_CALLOUT_NOTIFY_DELETE_FILTER:
        CHECK(!key); /* N3 */
        CHECK(!r->deletes && !r->add_veto);
        r->deletes = 1;
        r->owed = -1;
        return (c->notify_mode & 1) ? STATUS_UNSUCCESSFUL : STATUS_SUCCESS; /* ignored */
    case FWPS_CALLOUT_NOTIFY_ADD_FILTER_POST_COMMIT:
        CHECK(key);
        CHECK(c->flags & FWP_CALLOUT_FLAG_ENABLE_COMMIT_ADD_NOTIFY);
        CHECK(!r->post && !r->deletes && !r->add_veto);
        r->post = 1;
        return STATUS_SUCCESS;
    default:
        fuzz_fail(__FILE__, __LINE__, "unknown notification type");
    }
}

static UINT64 new_ctx(int fi, int ci, uint16_t layer)
{
    if (g.nctx == MAX_CTX)
        return 0;
    g.ctx[g.nctx] = (struct ctx_rec){fi, g.fl[fi].gen, ci, layer, false, 0};
    return CTX_BASE + g.nctx++;
}

static void NTAPI flow_delete(UINT16 layerId, UINT32 calloutId, UINT64 flowContext)
{
    CHECK(flowContext >= CTX_BASE && flowContext < CTX_BASE + g.nctx);
    struct ctx_rec *r = &g.ctx[flowContext - CTX_BASE];
    CHECK(r->deletes == 0); /* F7 */
    CHECK(r->layer == layerId);
    CHECK(g.c[r->callout].id == calloutId);
    CHECK(g.c[r->callout].registered); /* R8 */
    r->deletes++;
}


static void classify_common(const FWPS_INCOMING_VALUES0 *in,
                            const FWPS_INCOMING_METADATA_VALUES0 *meta, const FWPS_FILTER0 *filter,
                            UINT64 flowContext, FWPS_CLASSIFY_OUT0 *out)
{
    CHECK(in && meta && filter && out);
    int ci = callout_by_id(filter->action.calloutId);
    CHECK(ci >= 0);
    struct callout *c = &g.c[ci];
    CHECK(c->registered); /* R5, R8 */
    CHECK(in->layerId == FWPS_LAYER_ALE_FLOW_ESTABLISHED_V4 ||
          in->layerId == FWPS_LAYER_ALE_FLOW_ESTABLISHED_V6);
    CHECK(meta->currentMetadataValues & FWPS_METADATA_FIELD_FLOW_HANDLE);
    /* The flow being opened (its id is known from here on). */
    int fi = -1;
    for (int i = 0; i < MAX_FLOWS; i++)
        if (g.fl[i].classifying)
            fi = i;
    CHECK(fi >= 0);
    struct flow *fl = &g.fl[fi];
    if (!fl->id)
        fl->id = meta->flowHandle;
    CHECK(fl->id == meta->flowHandle);
    /* Q11 */
    CHECK(out->actionType == 0);
    CHECK(out->filterId == filter->filterId);
    CHECK(out->rights == FWPS_RIGHT_ACTION_WRITE || out->rights == 0);
    /* F5, F9 */
    CHECK(flowContext == fl->ctx[ci][0]);
    CHECK(!(c->flags & FWP_CALLOUT_FLAG_CONDITIONAL_ON_FLOW) || flowContext);
    uint8_t a = c->answer;
    g.in_callout++;
    if (a & 0x20)
        passive_calls();
    g.in_callout--;
    static const uint32_t answers[4] = {FWP_ACTION_PERMIT, FWP_ACTION_BLOCK, FWP_ACTION_CONTINUE,
                                        0x77};
    /* F4: contexts at this layer and at the stream layer. */
    for (int k = 0; k < 2; k++) {
        if (!(a & (4 << k)))
            continue;
        uint16_t layer = k == 0 ? in->layerId
                                : (fl->ipv6 ? FWPS_LAYER_STREAM_V6 : FWPS_LAYER_STREAM_V4);
        UINT64 v = new_ctx(fi, ci, layer);
        if (!v)
            continue;
        NTSTATUS st = FwpsFlowAssociateContext0(fl->id, layer, c->id, v);
        NTSTATUS want = !c->has_delete_fn ? STATUS_INVALID_PARAMETER
                        : c->draining     ? STATUS_INVALID_DEVICE_STATE
                        : fl->ctx[ci][k]  ? STATUS_OBJECT_NAME_EXISTS
                                          : STATUS_SUCCESS;
        CHECK_EQ_STATUS(st, want);
        if (st == STATUS_SUCCESS)
            fl->ctx[ci][k] = v;
        else
            g.nctx--;
    }
    if (a & 0x80) { /* F6: inside the flow's classify the delete waits */
        NTSTATUS st = FwpsFlowRemoveContext0(fl->id, in->layerId, c->id);
        if (fl->ctx[ci][0]) {
            CHECK_EQ_STATUS(st, STATUS_PENDING);
            g.ctx[fl->ctx[ci][0] - CTX_BASE].removed = true;
            fl->ctx[ci][0] = 0;
        } else {
            CHECK_EQ_STATUS(st, STATUS_UNSUCCESSFUL);
        }
    }
    if (a & 0x40)
        CHECK_EQ_STATUS(FwpsFlowAbort0(fl->id), STATUS_SUCCESS);
    out->actionType = answers[a & 3];
    if ((a & 0x10) || out->actionType == FWP_ACTION_BLOCK)
        out->rights &= ~FWPS_RIGHT_ACTION_WRITE;
}

static void NTAPI classify0(const FWPS_INCOMING_VALUES0 *in,
                            const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layerData,
                            const FWPS_FILTER0 *filter, UINT64 flowContext,
                            FWPS_CLASSIFY_OUT0 *out)
{
    (void)layerData;
    classify_common(in, meta, filter, flowContext, out);
}

static NTSTATUS NTAPI notify0(FWPS_CALLOUT_NOTIFY_TYPE type, const GUID *key, FWPS_FILTER0 *filter)
{
    return notify_common(type, key, filter);
}

#define CALLOUT_FNS(n)                                                                         \
    static void NTAPI classify##n(const FWPS_INCOMING_VALUES0 *in,                             \
                                  const FWPS_INCOMING_METADATA_VALUES0 *meta, void *layerData, \
                                  const void *classifyContext, const FWPS_FILTER##n *filter,  \
                                  UINT64 flowContext, FWPS_CLASSIFY_OUT0 *out)                \
    {                                                                                          \
        (void)layerData;                                                                       \
        (void)classifyContext;                                                                 \
        classify_common(in, meta, (const FWPS_FILTER0 *)filter, flowContext, out);             \
    }                                                                                          \
    static NTSTATUS NTAPI notify##n(FWPS_CALLOUT_NOTIFY_TYPE type, const GUID *key,           \
                                    FWPS_FILTER##n *filter)                                    \
    {                                                                                          \
        return notify_common(type, key, (FWPS_FILTER0 *)filter);                               \
    }
CALLOUT_FNS(1)
CALLOUT_FNS(2)
CALLOUT_FNS(3)

/* ---- operations -------------------------------------------------------------------- */

static void op_open(void)
{
    uint8_t a = t8(&g.t);
    FWPM_SESSION0 sess;
    memset(&sess, 0, sizeof(sess));
    sess.flags = a & 1 ? FWPM_SESSION_FLAG_DYNAMIC : 0;
    sess.txnWaitTimeoutInMSec = 1;
    HANDLE h = NULL;
    switch ((a >> 1) & 7) {
    case 1:
        CHECK_EQ_STATUS(FwpmEngineOpen0(NULL, RPC_C_AUTHN_WINNT, NULL, &sess, NULL),
                        STATUS_FWP_NULL_POINTER);
        return;
    case 2:
        sess.flags |= 0x10;
        CHECK_EQ_STATUS(FwpmEngineOpen0(NULL, RPC_C_AUTHN_WINNT, NULL, &sess, &h),
                        STATUS_FWP_INVALID_FLAGS);
        return;
    case 3:
        CHECK_EQ_STATUS(FwpmEngineOpen0(NULL, 7, NULL, &sess, &h), STATUS_INVALID_PARAMETER);
        return;
    case 4:
        CHECK_EQ_STATUS(FwpmEngineOpen0(fuzz_name, RPC_C_AUTHN_WINNT, NULL, &sess, &h),
                        STATUS_INVALID_PARAMETER);
        return;
    default:
        break;
    }
    int i = (a >> 4) & 3;
    if (g.s[i].open)
        return;
    NTSTATUS st = FwpmEngineOpen0(NULL, a & 0x80 ? RPC_C_AUTHN_DEFAULT : RPC_C_AUTHN_WINNT,
                                  NULL, &sess, &h);
    CHECK_EQ_STATUS(st, STATUS_SUCCESS);
    if (st == STATUS_SUCCESS)
        g.s[i] = (struct session){h, true, a & 1, 0};
}

static void end_txn_model(int i)
{
    if (g.s[i].txn == 1)
        g.writer = -1;
    else if (g.s[i].txn == 2)
        g.readers--;
    g.s[i].txn = 0;
}

static void op_close(void)
{
    uint8_t b = t8(&g.t);
    int i = b & 3;
    if ((b & 0x1c) == 0x1c) {
        CHECK_EQ_STATUS(FwpmEngineClose0(handle_of(b)), STATUS_INVALID_HANDLE);
        return;
    }
    struct session *s = &g.s[i];
    if (!s->open) {
        if (s->h)
            CHECK_EQ_STATUS(FwpmEngineClose0(s->h), STATUS_INVALID_HANDLE);
        return;
    }
    /* Closing a dynamic session waits for other sessions' transactions
     * without limit (its objects must go): not in a single thread. */
    bool others = (g.writer >= 0 && g.writer != i) || g.readers > (s->txn == 2);
    if (s->dynamic && others)
        return;
    NTSTATUS st = FwpmEngineClose0(s->h);
    CHECK_EQ_STATUS(st, STATUS_SUCCESS); /* M1, M2: aborts its txn */
    end_txn_model(i);
    /* For lack of memory a dynamic session stays open with its objects. */
    if (st == STATUS_SUCCESS)
        s->open = false;
    else
        CHECK(s->dynamic);
}

static void op_begin(void)
{
    uint8_t b = t8(&g.t), f = t8(&g.t);
    int i = b & 3;
    HANDLE h = handle_of(b);
    bool bogus = (b & 0x1c) == 0x1c;
    UINT32 flags = f & 3; /* 2 and 3 carry an unknown bit */
    NTSTATUS want;
    bool wait = false;
    if (flags & 2)
        want = STATUS_FWP_INVALID_FLAGS;
    else if (bogus || !g.s[i].open)
        want = STATUS_INVALID_HANDLE;
    else if (g.s[i].txn)
        want = STATUS_FWP_TXN_IN_PROGRESS; /* M2 */
    else if (flags & FWPM_TXN_READ_ONLY ? g.writer >= 0 : g.writer >= 0 || g.readers > 0)
        want = STATUS_FWP_TIMEOUT, wait = true;
    else
        want = STATUS_SUCCESS;
    if (!may_call(wait))
        return;
    CHECK_EQ_STATUS(FwpmTransactionBegin0(h, flags), want);
    if (want == STATUS_SUCCESS) {
        if (flags & FWPM_TXN_READ_ONLY) {
            g.s[i].txn = 2;
            g.readers++;
        } else {
            g.s[i].txn = 1;
            g.writer = i;
        }
    }
}

static void op_end(bool commit)
{
    uint8_t b = t8(&g.t);
    int i = b & 3;
    HANDLE h = handle_of(b);
    bool bogus = (b & 0x1c) == 0x1c;
    NTSTATUS want = bogus || !g.s[i].open ? STATUS_INVALID_HANDLE
                    : !g.s[i].txn        ? STATUS_FWP_NO_TXN_IN_PROGRESS
                                         : STATUS_SUCCESS;
    NTSTATUS st = commit ? FwpmTransactionCommit0(h) : FwpmTransactionAbort0(h);
    CHECK_EQ_STATUS(st, want);
    /* A commit that fails for memory rolls back and ends the transaction. */
    if (want == STATUS_SUCCESS)
        end_txn_model(i);
}

/* A provider key: one of four, or NULL (none). */
static GUID *provider_arg(uint8_t v, GUID *storage)
{
    if (!(v & 4))
        return NULL;
    *storage = key_provider(v & 3);
    return storage;
}

static void op_provider_add(void)
{
    uint8_t b = t8(&g.t), a = t8(&g.t);
    WRITE_PROLOGUE(b);
    FWPM_PROVIDER0 p;
    memset(&p, 0, sizeof(p));
    p.providerKey = key_provider(a & 3);
    p.displayData.name = a & 4 ? NULL : fuzz_name;
    p.flags = a & 8 ? 0x80 : (a >> 4) & 1;
    NTSTATUS st = FwpmProviderAdd0(h_, a & 0x40 ? NULL : &p, NULL);
    if (a & 0x40)
        CHECK_EQ_STATUS(st, STATUS_FWP_NULL_POINTER);
    else
        CHECK_LOCK(st);
    check_provider_add(st);
}

static void op_provider_delete(void)
{
    uint8_t b = t8(&g.t), a = t8(&g.t);
    WRITE_PROLOGUE(b);
    GUID k = key_provider(a & 3);
    NTSTATUS st = FwpmProviderDeleteByKey0(h_, a & 0x40 ? NULL : &k);
    if (a & 0x40)
        CHECK_EQ_STATUS(st, STATUS_FWP_NULL_POINTER);
    else
        CHECK_LOCK(st);
    check_provider_delete(st);
}

static void op_sublayer_add(void)
{
    uint8_t b = t8(&g.t), w = t8(&g.t), a = t8(&g.t);
    WRITE_PROLOGUE(b);
    GUID pk;
    FWPM_SUBLAYER0 sl;
    memset(&sl, 0, sizeof(sl));
    sl.subLayerKey = a & 8 ? (GUID){0} : key_sublayer(a & 3);
    sl.displayData.name = a & 0x40 && a & 1 ? NULL : fuzz_name;
    sl.flags = a & 0x40 && a & 2 ? 0x100 : 0;
    sl.providerKey = provider_arg((uint8_t)(a >> 4), &pk);
    sl.weight = (UINT16)(w << 8 | w);
    NTSTATUS st = FwpmSubLayerAdd0(h_, &sl, NULL);
    CHECK_LOCK(st);
    check_sublayer_add(st);
}

static void op_sublayer_delete(void)
{
    uint8_t b = t8(&g.t), a = t8(&g.t);
    WRITE_PROLOGUE(b);
    GUID k = (a & 0xf) == 0xf ? FWPM_SUBLAYER_UNIVERSAL : key_sublayer(a & 3);
    NTSTATUS st = FwpmSubLayerDeleteByKey0(h_, a & 0x40 ? NULL : &k);
    if (a & 0x40) {
        CHECK_EQ_STATUS(st, STATUS_FWP_NULL_POINTER);
    } else {
        CHECK_LOCK(st);
        if ((a & 0xf) == 0xf && lock_ == STATUS_SUCCESS)
            CHECK_EQ_STATUS(st, STATUS_FWP_BUILTIN_OBJECT);
    }
    check_sublayer_delete(st);
}

static const GUID *layer_arg(uint8_t v)
{
    static const GUID bogus = {0xdeadbeef, 1, 2, {3, 4, 5, 6, 7, 8, 9, 10}};
    switch (v & 7) {
    case 0:
    case 1:
        return &FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4;
    case 2:
        return &FWPM_LAYER_ALE_FLOW_ESTABLISHED_V6;
    case 3:
        return &FWPM_LAYER_STREAM_V4;
    case 4:
        return &FWPM_LAYER_STREAM_V6;
    case 5:
        return &FWPM_LAYER_DATAGRAM_DATA_V4; /* takes contexts, not filters */
    case 6:
        return &FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4;
    default:
        return &bogus;
    }
}

static void op_callout_add(void)
{
    uint8_t b = t8(&g.t), k = t8(&g.t), a = t8(&g.t);
    WRITE_PROLOGUE(b);
    GUID pk;
    FWPM_CALLOUT0 c;
    memset(&c, 0, sizeof(c));
    c.calloutKey = key_callout(k % MAX_KEYS);
    c.displayData.name = (a & 0x0f) == 0x0e ? NULL : fuzz_name;
    c.flags = (a & 0x0f) == 0x0d ? 0x8 : 0;
    c.applicableLayer = *layer_arg(a);
    c.providerKey = provider_arg((uint8_t)(a >> 4), &pk);
    UINT32 id = 0;
    NTSTATUS st = FwpmCalloutAdd0(h_, &c, NULL, &id);
    CHECK_LOCK(st);
    check_callout_add(st);
    if (st == STATUS_SUCCESS) {
        /* R3: one id per key, whoever asks first. */
        struct callout *co = &g.c[k % MAX_KEYS];
        CHECK(id != 0);
        CHECK(!co->id || co->id == id);
        co->id = id;
    }
}

static void op_callout_delete(void)
{
    uint8_t b = t8(&g.t), k = t8(&g.t);
    WRITE_PROLOGUE(b);
    GUID key = key_callout(k % MAX_KEYS);
    NTSTATUS st;
    if (k & 0x80) {
        st = FwpmCalloutDeleteByKey0(h_, k & 0x40 ? NULL : &key);
        if (k & 0x40) {
            CHECK_EQ_STATUS(st, STATUS_FWP_NULL_POINTER);
            return;
        }
    } else {
        UINT32 id = g.c[k % MAX_KEYS].id ? g.c[k % MAX_KEYS].id : 0x7777;
        st = FwpmCalloutDeleteById0(h_, id);
    }
    CHECK_LOCK(st);
    check_callout_delete(st);
}

/* Condition fields: valid ones of the ALE / stream layers and one that is
 * none. */
static const GUID *field_arg(uint8_t v)
{
    static const GUID bogus = {0xfeedface, 1, 2, {3, 4, 5, 6, 7, 8, 9, 10}};
    switch (v % 10) {
    case 0: return &FWPM_CONDITION_IP_REMOTE_PORT;
    case 1: return &FWPM_CONDITION_IP_LOCAL_PORT;
    case 2: return &FWPM_CONDITION_IP_PROTOCOL;
    case 3: return &FWPM_CONDITION_IP_REMOTE_ADDRESS;
    case 4: return &FWPM_CONDITION_ALE_APP_ID;
    case 5: return &FWPM_CONDITION_DIRECTION;
    case 6: return &FWPM_CONDITION_FLAGS;
    case 7: return &FWPM_CONDITION_COMPARTMENT_ID;
    case 8: return &FWPM_CONDITION_ALE_PACKAGE_ID;
    default: return &bogus;
    }
}

/* Storage the condition values point to, alive for the FwpmFilterAdd0 call. */
struct cond_store {
    UINT64 u64[2];
    FWP_BYTE_ARRAY16 a16;
    FWP_BYTE_BLOB blob;
    uint8_t blob_data[32];
    FWP_V4_ADDR_AND_MASK v4m;
    FWP_V6_ADDR_AND_MASK v6m;
    FWP_RANGE0 range;
    _Alignas(8) uint8_t sid[8 + 4 * 16];
    WCHAR wstr[4];
};

static void fill_value(FWP_VALUE0 *v, uint8_t type, struct tape *t, struct cond_store *cs, int k)
{
    uint8_t x = t8(t);
    v->type = (FWP_DATA_TYPE)type;
    switch (type) {
    case FWP_UINT8: v->uint8 = x; break;
    case FWP_UINT16: v->uint16 = (UINT16)(x * 257); break;
    case FWP_UINT32: v->uint32 = x * 0x01010101u; break;
    case FWP_UINT64:
        cs->u64[k] = x;
        v->uint64 = x == 0xff ? NULL : &cs->u64[k];
        break;
    case FWP_BYTE_ARRAY16_TYPE:
        memset(cs->a16.byteArray16, x, 16);
        v->byteArray16 = x == 0xff ? NULL : &cs->a16;
        break;
    default: v->uint32 = x; break;
    }
}

static void fill_condition(FWPM_FILTER_CONDITION0 *c, struct tape *t, struct cond_store *cs)
{
    c->fieldKey = *field_arg(t8(t));
    uint8_t m = t8(t);
    c->matchType = (FWP_MATCH_TYPE)(m < 0xf0 ? m % FWP_MATCH_TYPE_MAX : m); /* some invalid */
    uint8_t ty = t8(t), x = t8(t);
    FWP_CONDITION_VALUE0 *v = &c->conditionValue;
    switch (ty % 14) {
    case 0: v->type = FWP_UINT8; v->uint8 = x; break;
    case 1: v->type = FWP_UINT16; v->uint16 = (UINT16)(x * 257); break;
    case 2: v->type = FWP_UINT32; v->uint32 = x * 0x01010101u; break;
    case 3:
        v->type = FWP_UINT64;
        cs->u64[0] = x;
        v->uint64 = x == 0xff ? NULL : &cs->u64[0];
        break;
    case 4:
        v->type = FWP_BYTE_ARRAY16_TYPE;
        memset(cs->a16.byteArray16, x, 16);
        v->byteArray16 = x == 0xff ? NULL : &cs->a16;
        break;
    case 5:
        v->type = FWP_BYTE_BLOB_TYPE;
        cs->blob.size = x % 33;
        memset(cs->blob_data, 'a', sizeof(cs->blob_data));
        cs->blob.data = x == 0xfe ? NULL : cs->blob_data;
        v->byteBlob = x == 0xff ? NULL : &cs->blob;
        break;
    case 6:
        v->type = FWP_V4_ADDR_MASK;
        cs->v4m.addr = 0x0a000000u + x;
        cs->v4m.mask = x & 1 ? 0xffffff00u : (x & 2 ? 0xff00ff00u : 0);
        v->v4AddrMask = x == 0xff ? NULL : &cs->v4m;
        break;
    case 7:
        v->type = FWP_V6_ADDR_MASK;
        memset(cs->v6m.addr, x, 16);
        cs->v6m.prefixLength = x;
        v->v6AddrMask = x == 0xff ? NULL : &cs->v6m;
        break;
    case 8: {
        v->type = FWP_RANGE_TYPE;
        uint8_t lt = t8(t), ht = t8(t);
        static const uint8_t types[4] = {FWP_UINT16, FWP_UINT32, FWP_UINT8, FWP_UINT64};
        fill_value(&cs->range.valueLow, types[lt & 3], t, cs, 0);
        fill_value(&cs->range.valueHigh, types[ht & 3], t, cs, 1);
        v->rangeValue = x == 0xff ? NULL : &cs->range;
        break;
    }
    case 9:
        v->type = FWP_SID;
        memset(cs->sid, 0, sizeof(cs->sid));
        cs->sid[0] = 1;
        cs->sid[1] = x & 0x1f; /* sub-authority count, > 15 is invalid */
        v->sid = x == 0xff ? NULL : (SID *)(void *)cs->sid;
        break;
    case 10:
        v->type = FWP_UNICODE_STRING_TYPE;
        cs->wstr[0] = 'a';
        cs->wstr[1] = x;
        cs->wstr[2] = 0;
        v->unicodeString = x == 0xff ? NULL : cs->wstr;
        break;
    case 11: v->type = FWP_EMPTY; break;
    case 12: v->type = (FWP_DATA_TYPE)(0x103 + x); break; /* no such type */
    default: v->type = FWP_INT32; v->int32 = x; break;
    }
}

static void op_filter_add(void)
{
    uint8_t b = t8(&g.t), a = t8(&g.t), sub = t8(&g.t), act = t8(&g.t), fl = t8(&g.t),
            w = t8(&g.t);
    WRITE_PROLOGUE(b);
    FWPM_FILTER0 f;
    memset(&f, 0, sizeof(f));
    GUID pk;
    f.filterKey = a & 0x80 ? key_filter(a & 7) : (GUID){0};
    f.displayData.name = (a & 0x78) == 0x78 ? NULL : fuzz_name;
    f.layerKey = *layer_arg(a);
    if (sub & 8)
        f.subLayerKey = (sub & 0xf) == 0xf ? FWPM_SUBLAYER_UNIVERSAL : key_sublayer(sub & 3);
    f.providerKey = provider_arg((uint8_t)(sub >> 4), &pk);
    static const uint32_t actions[8] = {
        FWP_ACTION_PERMIT,
        FWP_ACTION_CALLOUT_TERMINATING,
        FWP_ACTION_CALLOUT_INSPECTION,
        FWP_ACTION_CALLOUT_UNKNOWN,
        FWP_ACTION_BLOCK,
        FWP_ACTION_CONTINUE,
        FWP_ACTION_CALLOUT_TERMINATING,
        0x5555, /* not an action */
    };
    f.action.type = actions[act & 7];
    f.action.calloutKey = key_callout((act >> 3) % MAX_KEYS);
    static const uint32_t flag_bits[8] = {
        0,
        FWPM_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED,
        FWPM_FILTER_FLAG_CLEAR_ACTION_RIGHT,
        FWPM_FILTER_FLAG_HAS_PROVIDER_CONTEXT,
        FWPM_FILTER_FLAG_PERSISTENT | FWPM_FILTER_FLAG_INDEXED,
        FWPM_FILTER_FLAG_DISABLED, /* output only */
        0x40000000,
        FWPM_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED | FWPM_FILTER_FLAG_CLEAR_ACTION_RIGHT,
    };
    f.flags = flag_bits[fl & 7];
    f.rawContext = fl;
    UINT64 w64 = (UINT64)w << 56 | w;
    switch ((w >> 5) & 7) {
    case 0: f.weight.type = FWP_EMPTY; break;
    case 1: f.weight.type = FWP_UINT8; f.weight.uint8 = w & 0x1f; break; /* > 15 invalid */
    case 2: f.weight.type = FWP_UINT64; f.weight.uint64 = &w64; break;
    case 3: f.weight.type = FWP_UINT64; f.weight.uint64 = NULL; break;
    case 4: f.weight.type = FWP_UINT32; f.weight.uint32 = w; break;
    default: f.weight.type = FWP_UINT64; f.weight.uint64 = &w64; break;
    }
    FWPM_FILTER_CONDITION0 conds[3];
    struct cond_store cs[3];
    memset(conds, 0, sizeof(conds));
    memset(cs, 0, sizeof(cs));
    uint32_t n = (fl >> 3) & 3;
    for (uint32_t i = 0; i < n; i++)
        fill_condition(&conds[i], &g.t, &cs[i]);
    f.numFilterConditions = n;
    f.filterCondition = n ? conds : (fl & 0x80 ? conds : NULL); /* stale pointer with 0 (M5 a) */
    if (n && (fl & 0x60) == 0x60)
        f.filterCondition = NULL; /* conditions announced, none given */
    UINT64 id = 0;
    NTSTATUS st = FwpmFilterAdd0(h_, &f, NULL, &id);
    CHECK_LOCK(st);
    check_filter_add(st);
    if (st == STATUS_SUCCESS) {
        CHECK(id != 0 && id < MAX_FILTER_IDS);
        g.recent[g.nrecent++ % MAX_RECENT] = id;
    }
}

static void op_filter_delete(void)
{
    uint8_t b = t8(&g.t), a = t8(&g.t);
    WRITE_PROLOGUE(b);
    NTSTATUS st;
    if (a & 0x80) {
        GUID k = key_filter(a & 7);
        st = FwpmFilterDeleteByKey0(h_, a & 0x40 ? NULL : &k);
        if (a & 0x40) {
            CHECK_EQ_STATUS(st, STATUS_FWP_NULL_POINTER);
            return;
        }
    } else {
        UINT64 id = g.nrecent && !(a & 0x40) ? g.recent[a % (g.nrecent < MAX_RECENT ? g.nrecent : MAX_RECENT)]
                                             : (UINT64)(a & 0x3f);
        st = FwpmFilterDeleteById0(h_, id);
    }
    CHECK_LOCK(st);
    check_filter_delete(st);
}

static const uint32_t version_flags[4] = {0x3, 0x1f, 0xff, 0x7ff};

static void op_register(void)
{
    uint8_t k = t8(&g.t), a = t8(&g.t), fl = t8(&g.t);
    int ci = k % MAX_KEYS;
    struct callout *c = &g.c[ci];
    unsigned version = a & 3;
    uint32_t flags = fl & 0x1f;
    if (fl & 0x80)
        flags |= 0x100; /* beyond CALLOUT2 */
    bool null_classify = (a & 0x1c) == 0x1c;
    bool null_notify = a & 0x20;
    bool no_delete = a & 0x40;
    FWPS_CALLOUT_FLOW_DELETE_NOTIFY_FN0 del = no_delete ? NULL : flow_delete;
    GUID key = key_callout((uint32_t)ci);
    UINT32 id = 0;
    NTSTATUS st;
    if ((k & 0xc0) == 0xc0) {
        CHECK_EQ_STATUS(FwpsCalloutRegister0(NULL, NULL, &id), STATUS_FWP_NULL_POINTER);
        return;
    }
    switch (version) {
    case 0: {
        FWPS_CALLOUT0 r = {key, flags, null_classify ? NULL : classify0, null_notify ? NULL : notify0, del};
        st = FwpsCalloutRegister0(NULL, &r, &id);
        break;
    }
    case 1: {
        FWPS_CALLOUT1 r = {key, flags, null_classify ? NULL : classify1, null_notify ? NULL : notify1, del};
        st = FwpsCalloutRegister1(NULL, &r, &id);
        break;
    }
    case 2: {
        FWPS_CALLOUT2 r = {key, flags, null_classify ? NULL : classify2, null_notify ? NULL : notify2, del};
        st = FwpsCalloutRegister2(NULL, &r, &id);
        break;
    }
    default: {
        FWPS_CALLOUT3 r = {key, flags, null_classify ? NULL : classify3, null_notify ? NULL : notify3, del};
        st = FwpsCalloutRegister3(NULL, &r, &id);
        break;
    }
    }
    /* R1, R2, Q1, Q2 in the order the engine checks them. */
    NTSTATUS want = null_classify                         ? STATUS_INVALID_PARAMETER
                    : flags & ~version_flags[version]     ? STATUS_FWP_INVALID_FLAGS
                    : c->registered                       ? STATUS_FWP_ALREADY_EXISTS
                                                          : STATUS_SUCCESS;
    CHECK_EQ_STATUS(st, want);
    if (st != STATUS_SUCCESS)
        return;
    CHECK(id != 0);
    CHECK(!c->id || c->id == id); /* R3 */
    c->id = id;
    c->registered = true;
    c->draining = false;
    c->flags = flags;
    c->has_delete_fn = !no_delete;
    /* NULL notifyFn: no notifications, so nothing to veto or owe. */
    c->notify_mode = null_notify ? 0 : (uint8_t)(a >> 7 | ((fl >> 5) & 6));
    if (null_notify)
        c->notify_mode = 0;
    c->adds_seen = 0;
}

static uint32_t live_contexts(int ci)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < g.nctx; i++)
        n += g.ctx[i].callout == ci && g.ctx[i].deletes == 0;
    return n;
}

static void op_unregister(void)
{
    uint8_t k = t8(&g.t), a = t8(&g.t);
    int ci = k % MAX_KEYS;
    struct callout *c = &g.c[ci];
    NTSTATUS st;
    if (a & 1) {
        GUID key = key_callout((uint32_t)ci);
        st = FwpsCalloutUnregisterByKey0(a & 2 ? NULL : &key);
        if (a & 2) {
            CHECK_EQ_STATUS(st, STATUS_FWP_NULL_POINTER);
            return;
        }
    } else {
        st = FwpsCalloutUnregisterById0(c->id ? c->id : 0x6666);
    }
    if (!c->registered) {
        CHECK_EQ_STATUS(st, STATUS_FWP_CALLOUT_NOT_FOUND);
    } else if (live_contexts(ci)) {
        CHECK_EQ_STATUS(st, STATUS_DEVICE_BUSY); /* R7, Q3 */
        c->draining = true;
    } else {
        CHECK_EQ_STATUS(st, STATUS_SUCCESS);
        c->registered = false;
        c->draining = false;
        /* R8: nothing more goes to it, so it is owed nothing. */
        for (uint32_t i = 0; i < MAX_FILTER_IDS; i++)
            if (g.fr[i].owed == ci)
                g.fr[i].owed = -1;
    }
}

static void check_flow_closed(int fi)
{
    for (uint32_t i = 0; i < g.nctx; i++)
        if (g.ctx[i].flow == fi && g.ctx[i].gen == g.fl[fi].gen)
            CHECK(g.ctx[i].deletes == 1); /* F7 */
}

static void op_flow(void)
{
    uint8_t a = t8(&g.t);
    int fi = a & 3;
    struct flow *fl = &g.fl[fi];
    switch ((a >> 2) & 3) {
    case 0:
    case 1: {
        if (fl->f) {
            owfp_flow_close(fl->f);
            fl->f = NULL;
            check_flow_closed(fi);
            return;
        }
        uint8_t ans = t8(&g.t);
        for (int i = 0; i < MAX_KEYS; i++)
            g.c[i].answer = (uint8_t)(ans + i * 0x31); /* each callout answers differently */
        struct owfp_flow_params p;
        memset(&p, 0, sizeof(p));
        p.ip_version = a & 0x10 ? 6 : 4;
        p.protocol = a & 0x20 ? 17 : 6;
        p.direction = a & 0x40 ? OWFP_INBOUND : OWFP_OUTBOUND;
        p.local_addr[0] = 10;
        p.remote_addr[0] = 10;
        p.remote_addr[3] = a & 0x80 ? 2 : 3;
        p.local_port = 40000;
        p.remote_port = (uint16_t)(ans * 257);
        p.compartment_id = 1;
        uint32_t gen = fl->gen + 1;
        memset(fl, 0, sizeof(*fl));
        fl->gen = gen;
        fl->ipv6 = p.ip_version == 6;
        /* The flow id is known only after the open: classify learns it
         * from meta->flowHandle. */
        fl->classifying = true;
        fl->id = 0;
        enum owfp_flow_verdict v;
        owfp_flow *f = NULL;
        NTSTATUS st = owfp_flow_open(g.engine, &p, &f, &v);
        fl->classifying = false;
        CHECK_EQ_STATUS(st, STATUS_SUCCESS);
        if (st != STATUS_SUCCESS) {
            CHECK(!f);
            check_flow_closed(fi); /* nothing it associated survives */
            return;
        }
        CHECK(v == OWFP_FLOW_PERMITTED || v == OWFP_FLOW_BLOCKED);
        fl->f = f;
        CHECK(!fl->id || fl->id == owfp_flow_id(f)); /* F1 */
        fl->id = owfp_flow_id(f);
        return;
    }
    case 2: { /* F6 from outside: synchronous */
        uint8_t c = t8(&g.t);
        int ci = c % MAX_KEYS;
        int k = (c >> 3) & 1;
        uint16_t layer = k == 0 ? (fl->ipv6 ? FWPS_LAYER_ALE_FLOW_ESTABLISHED_V6
                                            : FWPS_LAYER_ALE_FLOW_ESTABLISHED_V4)
                                : (fl->ipv6 ? FWPS_LAYER_STREAM_V6 : FWPS_LAYER_STREAM_V4);
        NTSTATUS st = FwpsFlowRemoveContext0(fl->id, layer, g.c[ci].id);
        if (fl->f && fl->ctx[ci][k]) {
            CHECK_EQ_STATUS(st, STATUS_SUCCESS);
            CHECK(g.ctx[fl->ctx[ci][k] - CTX_BASE].deletes == 1);
            fl->ctx[ci][k] = 0;
        } else {
            CHECK_EQ_STATUS(st, STATUS_UNSUCCESSFUL);
        }
        return;
    }
    default: /* F10 */
        CHECK_EQ_STATUS(FwpsFlowAbort0(fl->id), fl->f ? STATUS_SUCCESS : STATUS_NOT_FOUND);
        if (fl->f)
            CHECK(owfp_flow_aborted(fl->f));
        return;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    memset(&g, 0, sizeof(g));
    owfp_alloc_fail_reset();
    g.writer = -1;
    for (uint32_t i = 0; i < MAX_FILTER_IDS; i++)
        g.fr[i].owed = -1;
    g.t = (struct tape){data, size, 0};
    CHECK_EQ_STATUS(owfp_engine_create(NULL, &g.engine), STATUS_SUCCESS);
    FWPM_SESSION0 sess;
    memset(&sess, 0, sizeof(sess));
    sess.txnWaitTimeoutInMSec = 1;
    CHECK_EQ_STATUS(FwpmEngineOpen0(NULL, RPC_C_AUTHN_WINNT, NULL, &sess, &g.s[0].h),
                    STATUS_SUCCESS);
    g.s[0].open = true;
    for (int step = 0; step < MAX_STEPS && tape_left(&g.t); step++) {
        uint8_t op = t8(&g.t);
        if (op & 0x80) {
            owfp_alloc_fail_after(t8(&g.t) & 0x3f);
            g.faulting = true;
        }
        switch (op & 15) {
        case 0: op_open(); break;
        case 1: op_close(); break;
        case 2: op_begin(); break;
        case 3: op_end(true); break;
        case 4: op_end(false); break;
        case 5: op_provider_add(); break;
        case 6: op_provider_delete(); break;
        case 7: op_sublayer_add(); break;
        case 8: op_sublayer_delete(); break;
        case 9: op_callout_add(); break;
        case 10: op_callout_delete(); break;
        case 11: op_filter_add(); break;
        case 12: op_filter_delete(); break;
        case 13: op_register(); break;
        case 14: op_unregister(); break;
        default: op_flow(); break;
        }
        if (g.faulting) {
            owfp_alloc_fail_reset();
            g.faulting = false;
        }
        CHECK(g.in_callout == 0);
        /* F6: a delete a classify deferred ran when the classify ended. */
        uint64_t live = 0;
        for (uint32_t i = 0; i < g.nctx; i++) {
            if (g.ctx[i].removed)
                CHECK(g.ctx[i].deletes == 1);
            live += g.ctx[i].deletes == 0;
        }
        /* The engine's counters agree with the model. */
        struct owfp_engine_stats st;
        owfp_engine_get_stats(g.engine, &st);
        uint64_t open = 0, registered = 0;
        for (int i = 0; i < MAX_FLOWS; i++)
            open += g.fl[i].f != NULL;
        for (int i = 0; i < MAX_KEYS; i++)
            registered += g.c[i].registered;
        CHECK(st.flows_open == open);
        CHECK(st.flow_contexts == live);
        CHECK(st.callouts_registered == registered);
    }
    /* Teardown as a host does it: some flows and sessions may still be
     * open, with transactions; the engine closes them. */
    owfp_engine_destroy(g.engine);
    for (int fi = 0; fi < MAX_FLOWS; fi++)
        if (g.fl[fi].f)
            check_flow_closed(fi);
    for (uint32_t i = 0; i < g.nctx; i++)
        CHECK(g.ctx[i].deletes == 1);
    /* Every accepted ADD_FILTER got its DELETE_FILTER (N1, N3, engine
     * teardown), unless the callout was unregistered first. */
    for (uint32_t i = 0; i < MAX_FILTER_IDS; i++)
        CHECK(g.fr[i].owed < 0);
    return 0;
}
