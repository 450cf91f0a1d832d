/*
 * Shared scaffolding of test_stream.c and test_stream_actions.c.
 *
 * NCO recording stream callouts: each classify is written down (flags,
 * lengths, the bytes via FwpsCopyStreamDataToBuffer0, classifyOut on
 * entry, metadata, incoming values) and answered from a per-callout
 * script, optionally refined by a hook. The data plane side concatenates
 * the spans of every result per direction, so output is compared byte for
 * byte. All state lives in `g`; reset() clears it at the start of a test,
 * done() checks and releases it at the end.
 */
#ifndef OPENWFP_TESTS_STREAM_HARNESS_H
#define OPENWFP_TESTS_STREAM_HARNESS_H

#include "harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#define SEND OWFP_STREAM_SEND
#define RECV OWFP_STREAM_RECEIVE
#define NCO 4
#define MAXREC 48
#define RECBYTES 96
#define MAXNBL 8

/* ---- recording callouts --------------------------------------------------- */

struct rec {
    int seq; /* global classify order */
    UINT16 layer;
    UINT32 nvalues;
    UINT32 dir_value;
    UINT32 compartment_value;
    UINT32 meta_fields, meta_flags;
    UINT64 flow;
    UINT32 compartment;
    UINT64 filter_id; /* filter->filterId */
    UINT32 flags;     /* streamData->flags */
    SIZE_T len, missed;
    UINT32 in_required;
    SIZE_T in_enforced;
    UINT32 in_stream_action;
    UINT32 in_action, in_rights, in_flags;
    UINT64 in_filter_id; /* classifyOut->filterId */
    uint8_t bytes[RECBYTES];
    SIZE_T copied;
    UINT32 nnbl;
    SIZE_T nbl_len[MAXNBL];
    const void *nbl_va[MAXNBL];
    bool chain_ok; /* one NB and one MDL per NBL, lengths add up, offset at byte 0 */
};

struct ans {
    UINT32 action;
    SIZE_T enforced;
    UINT32 stream_action;
    UINT32 required;
    bool raw; /* write only actionType, leave the io packet alone */
};

struct co;
typedef void (*hook_fn)(struct co *c, int call, const FWPS_INCOMING_VALUES0 *in,
                        const FWPS_INCOMING_METADATA_VALUES0 *meta,
                        FWPS_STREAM_CALLOUT_IO_PACKET0 *io, FWPS_CLASSIFY_OUT0 *out);

struct co {
    UINT32 id;
    GUID key;
    int n; /* classifies */
    struct rec rec[MAXREC];
    struct ans script[MAXREC];
    int nscript;
    struct ans dflt;
    hook_fn hook;
};

struct outdir {
    uint8_t *buf;
    size_t n, cap;
    size_t nspans, ninjected;
    bool fin;
    uint32_t state; /* of the last result */
    uint64_t held;  /* of the last result */
};

struct stream_test_state {
    struct co co[NCO];
    bool object_added[NCO];
    int seq;
    atomic_int in_classify;
    atomic_bool reentered;
    atomic_bool foreign_classify;
    pthread_t owner;
    struct owfp_stream_result res;
    struct outdir out[2];
    uint32_t flow_state;
    HANDLE inj;
    NDIS_HANDLE pool;
    atomic_int completions;
    atomic_int cancelled;
    NTSTATUS last_completion;
    atomic_bool completion_foreign;
    atomic_int wakeups;
    atomic_bool wakeup_foreign;
    /* per-test scratch for hooks */
    NTSTATUS hook_status[8];
    int nhook_status;
    UINT64 flow_id;
};

extern struct stream_test_state g;

#define ANS(a) ((struct ans){.action = (a)})
#define ANSN(a, n) ((struct ans){.action = (a), .enforced = (n)})
#define NMD(req) ((struct ans){.stream_action = FWPS_STREAM_ACTION_NEED_MORE_DATA, .required = (req)})

/* Registers slot's callout (FWPS_CALLOUT0, or CALLOUT3 for newer flags). */
UINT32 reg(int slot, UINT32 flags);

/* A stream filter; slot < 0 for a static action. */
UINT64 filter_at(const GUID *layer, int slot, const GUID *sublayer, UINT32 action,
                 UINT64 weight, UINT32 flags, const FWPM_FILTER_CONDITION0 *conds,
                 uint32_t nconds);
/* filter_at at STREAM_V4 without conditions. */
UINT64 sf(int slot, const GUID *sublayer, UINT32 action, UINT64 weight);

/* ---- the data plane side ------------------------------------------------ */

/* Adds a result's spans to g.out and its flow state to g.flow_state. */
void take(const struct owfp_stream_result *r);
/* owfp_stream_indicate into g.res (taken when it succeeds); returns the status. */
NTSTATUS indm(owfp_flow *f, int d, const void *p, size_t n, uint32_t mods);
void ind(owfp_flow *f, int d, const char *s);
void fin(owfp_flow *f, int d);
void poll_flow(owfp_flow *f);
/* All output of direction d so far is exactly `want`. */
void assert_out(int d, const char *want);
/* The callout was shown exactly `want`. */
void assert_rec(const struct rec *r, const char *want);
/* An outbound TCP/IPv4 flow to port 80; its id goes to g.flow_id. */
owfp_flow *open4(void);

/* ---- injection helpers --------------------------------------------------- */

/* inj_done's context for a clone from FwpsCloneStreamData0. */
#define CTX_CLONE ((void *)(uintptr_t)1)

/* Creates g.inj and g.pool if not there yet. */
void inj_setup(void);
/* Completion: counts into g, frees a copy made by inject() or a clone. */
void NTAPI inj_done(void *ctx, NET_BUFFER_LIST *nbl, BOOLEAN dispatchLevel);
/* Injects a copy of `data` for slot's callout into the flow g.flow_id. */
NTSTATUS inject(int slot, UINT32 sflags, const void *data, size_t len);
/* Flow wake-up function: counts into g.wakeups. */
void NTAPI wakeup(void *arg, owfp_flow *flow);

/* ---- per-test state ----------------------------------------------------- */

void reset(void);
void done(void);
int group_teardown(void **state);

extern GUID g_hi, g_lo; /* sublayers 0x40 and 0x20, as stmedit's OOB and inline sets */

void sublayers(void);

#endif
