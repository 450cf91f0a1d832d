/*
 * Shared set-up for engine tests: a fresh engine per test, a session, and
 * short ways to add sublayers, callout objects, filters and flows.
 */
#ifndef OPENWFP_TESTS_HARNESS_H
#define OPENWFP_TESTS_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fwpmk.h>
#include <fwpsk.h>
#include <openwfp/openwfp.h>

extern owfp_engine *h_engine;
extern HANDLE h_session;

/* cmocka group setup/teardown: engine + one static session. */
int h_setup(void **state);
int h_teardown(void **state);

/* A GUID unique to `n` (deterministic, for keys in tests). */
GUID h_guid(uint32_t n);

/* Adds a sublayer with that weight; returns its key. */
GUID h_sublayer(uint32_t n, uint16_t weight);
/* FwpmCalloutAdd0 for `key` at `layer`; returns the status. */
NTSTATUS h_callout_object(const GUID *key, const GUID *layer);

/* Filter description for h_filter(). */
struct h_filter_spec {
    const GUID *layer;
    const GUID *sublayer;   /* NULL = FWPM_SUBLAYER_UNIVERSAL */
    uint32_t action;        /* FWP_ACTION_* */
    const GUID *callout;    /* for CALLOUT_* actions */
    uint64_t weight;        /* used when has_weight */
    int has_weight;
    uint32_t flags;         /* FWPM_FILTER_FLAG_* */
    uint64_t raw_context;
    const FWPM_FILTER_CONDITION0 *conds;
    uint32_t nconds;
};
NTSTATUS h_filter_in(HANDLE session, const struct h_filter_spec *spec, UINT64 *id);
NTSTATUS h_filter(const struct h_filter_spec *spec, UINT64 *id);

/* A TCP/IPv4 endpoint 10.0.0.1:local_port -> 10.0.0.2:remote_port. */
struct owfp_flow_params h_params4(uint16_t local_port, uint16_t remote_port, uint8_t direction);
struct owfp_flow_params h_params6(uint16_t local_port, uint16_t remote_port, uint8_t direction);

/* Opens a flow, asserting success; returns it and its verdict. */
owfp_flow *h_open(const struct owfp_flow_params *p, enum owfp_flow_verdict *verdict);

/* Registers a FWPS_CALLOUT0 with the given functions at key n. */
NTSTATUS h_register0(const GUID *key, uint32_t flags, FWPS_CALLOUT_CLASSIFY_FN0 classify,
                     FWPS_CALLOUT_NOTIFY_FN0 notify, FWPS_CALLOUT_FLOW_DELETE_NOTIFY_FN0 del,
                     UINT32 *id);

/* Notify function that accepts everything. */
NTSTATUS NTAPI h_notify_ok(FWPS_CALLOUT_NOTIFY_TYPE type, const GUID *key, FWPS_FILTER0 *filter);

#endif
