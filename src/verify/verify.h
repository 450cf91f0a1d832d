/*
 * The callout verifier's hooks (engine side; the host API is
 * include/openwfp/verify.h, the checks docs/verifier.md).
 *
 * Every hook sits behind OWFP_VERIFY_ON(): one relaxed load of a global
 * atomic bool, predicted false. With the verifier off nothing else runs.
 * Hooks only look and record; they never change what the engine does.
 *
 * Kept free of WDK headers so src/kernel can include it: WDK types appear
 * as their struct tags.
 */
#ifndef OPENWFP_VERIFY_VERIFY_H
#define OPENWFP_VERIFY_VERIFY_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openwfp/verify.h>

extern atomic_bool owfp_verify_on;

#define OWFP_VERIFY_ON() \
    __builtin_expect(atomic_load_explicit(&owfp_verify_on, memory_order_relaxed), 0)

struct owfp_flow;
struct _GUID;
struct FWPS_CLASSIFY_OUT0_;
struct FWPS_INCOMING_VALUES0_;
struct FWPS_INCOMING_METADATA_VALUES0_;

/* ---- recording (verify.c) ---------------------------------------------------- */

/* How a finding's backtrace is taken. */
enum owfp_verify_bt {
    OWFP_VERIFY_BT_STACK, /* the current stack: the driver's call into the API */
    OWFP_VERIFY_BT_FN,    /* one line naming `fn`: the callout function whose answer broke it */
    OWFP_VERIFY_BT_NONE,  /* none (resources left at unload) */
};

/* Records one occurrence. `driver` may be NULL: it is then the module of
 * the callout `callout_id`, else of the first frame in a loaded driver,
 * else of `fn`. `fn`: a code address in the driver (BT_FN) or NULL. The
 * message is only formatted for a new finding. */
void owfp_verify_report(const char *rule, const char *check, uint32_t callout_id, uint64_t flow,
                        const char *driver, const void *fn, enum owfp_verify_bt bt,
                        const char *fmt, ...) __attribute__((format(printf, 8, 9)));

/* ---- callouts (verify.c) ------------------------------------------------------- */

/* A callout registered: its key, and the module of its classifyFn, name
 * later findings. */
void owfp_verify_callout_registered(uint32_t id, const struct _GUID *key, const void *classify);

enum owfp_verify_fn_kind { OWFP_VERIFY_CLASSIFY, OWFP_VERIFY_NOTIFY, OWFP_VERIFY_FLOW_DELETE };

/* The callout function running on this thread, innermost first. */
struct owfp_verify_frame {
    struct owfp_verify_frame *prev;
    uint32_t callout_id;
    uint8_t kind;          /* enum owfp_verify_fn_kind */
    bool stream;           /* a stream-layer classify */
    uint32_t stream_flags; /* its indication's FWPS_STREAM_FLAG_* */
    uint64_t flow;
    const void *fn;
    /* classify only: what the answer is checked against when it returns */
    struct owfp_flow *flowp;
    const void *layer_data, *filter;
    const struct FWPS_CLASSIFY_OUT0_ *out;
    uint32_t out_flags_in, rights_in; /* classifyOut on entry */
};
extern _Thread_local struct owfp_verify_frame *owfp_verify_top;

/* Around a call into a callout: pushes the frame, checks R8 (a module whose
 * DriverUnload ran). */
void owfp_verify_enter(struct owfp_verify_frame *fr, uint32_t callout_id, int kind,
                       const void *fn, uint64_t flow);
void owfp_verify_leave(struct owfp_verify_frame *fr);
/* The same around classifyFn (callout_registry.c), which also checks its
 * answer when it returns: `in` and `meta` give the layer and flow, the
 * others are classifyFn's arguments. A stream classify is checked for
 * re-entry (C4, S12) on entry and its answer for S15-S24; other layers' for
 * the rights (A5, A6). */
void owfp_verify_enter_classify(struct owfp_verify_frame *fr, uint32_t callout_id,
                                const void *fn, const struct FWPS_INCOMING_VALUES0_ *in,
                                const struct FWPS_INCOMING_METADATA_VALUES0_ *meta,
                                const void *layer_data, const void *filter,
                                const struct FWPS_CLASSIFY_OUT0_ *out);
void owfp_verify_leave_classify(struct owfp_verify_frame *fr);

/* C4: a PASSIVE_LEVEL-only WFP function called from inside a callout
 * function; the engine refuses it with STATUS_INVALID_DEVICE_STATE
 * (owfp_passive_refused, engine/engine.h). */
void owfp_verify_passive_in_callout(const char *api);

/* A kernel-layer finding (src/kernel/findings.c): IRQL misuse becomes C4,
 * the rest rule "K". */
void owfp_verify_kernel_finding(const char *message);

/* ---- injection (verify_classify.c) ------------------------------------------------ */

/* FwpsStreamInjectAsync0 accepted for flow `f` (inside a read section):
 * `inline_call` when from the callout's own classify of the flow;
 * `deferred`: the callout's stage holds the direction deferred (read under
 * the flow lock). */
void owfp_verify_inject(struct owfp_flow *f, uint32_t callout_id, int dir, uint32_t stream_flags,
                        bool inline_call, bool deferred);
/* FwpsStreamContinue0 from inside a callout function. */
void owfp_verify_continue_in_callout(uint32_t callout_id, uint64_t flow);
/* Frees a flow's verifier state (with the flow's memory). */
void owfp_verify_flow_free(void *state);

/* ---- flow contexts and registration (verify_flow.c) -------------------------------- */

void owfp_verify_associate_no_flow_delete(uint32_t callout_id, uint64_t flow);
void owfp_verify_remove_missing(uint32_t callout_id, uint64_t flow, uint16_t layer);
/* FwpsFlowRemoveContext0 answered PENDING; its flowDeleteFn was delivered. */
void owfp_verify_remove_pending(uint32_t callout_id);
void owfp_verify_pending_delivered(uint32_t callout_id);
/* Unregister answered STATUS_DEVICE_BUSY with `contexts` still associated. */
void owfp_verify_unregister_busy(uint32_t callout_id, int64_t contexts);

/* ---- resources (verify_resources.c) ------------------------------------------------ */

enum owfp_verify_res {
    OWFP_VERIFY_RES_NBL,   /* NBLs from an NDIS pool */
    OWFP_VERIFY_RES_NB,    /* NBs from an NDIS pool */
    OWFP_VERIFY_RES_MDL,   /* IoAllocateMdl / NdisAllocateMdl */
    OWFP_VERIFY_RES_CLONE, /* FwpsCloneStreamData0 */
    OWFP_VERIFY_RES_COUNT
};
extern atomic_llong owfp_verify_live[OWFP_VERIFY_RES_COUNT];
/* Counts an allocation (+1) or free (-1), only while the verifier is on. */
#define OWFP_VERIFY_COUNT(res, delta)                                                     \
    do {                                                                                  \
        if (OWFP_VERIFY_ON())                                                             \
            atomic_fetch_add_explicit(&owfp_verify_live[res], (delta),                    \
                                      memory_order_relaxed);                              \
    } while (0)

/* inject.c: injection handles not destroyed, and their injections still
 * pending. */
void owfp_injection_handles_open(uint64_t *open, uint64_t *pending);

#endif
