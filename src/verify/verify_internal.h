/* What the files of src/verify share among themselves. */
#ifndef OPENWFP_VERIFY_INTERNAL_H
#define OPENWFP_VERIFY_INTERNAL_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <guiddef.h>

#include "verify/verify.h"

/* What the verifier remembers of a callout id. */
struct owfp_verify_callout {
    bool used;
    GUID key;
    char driver[64];
    atomic_llong pending; /* contexts FwpsFlowRemoveContext0 answered PENDING for */
};

/* The entry for `id` (NULL for 0 or ids past 65535); `create` allocates
 * its part of the table. */
struct owfp_verify_callout *owfp_verify_callout(uint32_t id, bool create);

/* "classifyFn", "notifyFn", "flowDeleteFn" for the callout function running
 * on this thread; NULL outside callouts. */
const char *owfp_verify_where(void);

/* verify_classify.c, from the classify frame: a stream classify of `f` has
 * begun (C4 re-entry, S10); a stream answer (S15-S24); another layer's
 * answer (A5, A6). */
void owfp_verify_stream_start(struct owfp_flow *f, uint32_t callout_id, uint32_t stream_flags);
void owfp_verify_stream_answer(const struct owfp_verify_frame *fr);
void owfp_verify_generic_answer(const struct owfp_verify_frame *fr);

void owfp_verify_report_v(const char *rule, const char *check, uint32_t callout_id,
                          uint64_t flow, const char *driver, const void *fn,
                          enum owfp_verify_bt bt, uint64_t n, const char *fmt, va_list ap);
/* A finding of `n` occurrences at once, without callout or backtrace
 * (resources left at unload). */
void owfp_verify_report_n(const char *rule, const char *check, const char *driver, uint64_t n,
                          const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* What is live when a driver loads (verify_resources.c). */
struct owfp_verify_tag {
    uint32_t tag;
    uint64_t n, bytes;
};
struct owfp_verify_snapshot {
    struct owfp_verify_tag *tags;
    size_t ntags, captags;
    long long live[OWFP_VERIFY_RES_COUNT];
    unsigned long workitems;
    uint64_t handles, pending;
};
void owfp_verify_snapshot_take(struct owfp_verify_snapshot *s);
void owfp_verify_snapshot_free(struct owfp_verify_snapshot *s);
/* Reports what appeared since `base` as the unloading driver's leaks. */
void owfp_verify_snapshot_compare(const char *driver, const struct owfp_verify_snapshot *base,
                                  uintptr_t module_base, size_t module_size);

#endif
