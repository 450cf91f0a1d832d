/*
 * A layer's filters compiled for classification: sublayers in priority order,
 * each with its filters in weight order, plus an index on the most selective
 * condition of every filter so a classify does not scan every filter.
 *
 * A view is immutable once built; the engine publishes a new one on every
 * committed change and frees the old one after the readers have left.
 */
#ifndef OPENWFP_ENGINE_FILTER_INDEX_H
#define OPENWFP_ENGINE_FILTER_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include <fwpsk.h>

/* One filter as the view sees it. `conds` are compiled by condition.c:
 * sorted by fieldId, OR groups marked as owfp_condition_same_group() says,
 * groups ANDed. */
struct owfp_view_entry {
    void *owner;              /* returned by the iterator */
    uint64_t filter_id;       /* tie-break: lower id first among equal weights (spec A8) */
    uint64_t weight;          /* effective weight, higher first */
    uint32_t sublayer_rank;   /* 0 = evaluated first; equal ranks share a sublayer */
    const FWPS_FILTER_CONDITION0 *conds;
    uint32_t nconds;
};

struct owfp_layer_view;

/* Builds a view over `n` entries (copied; `conds` must outlive the view).
 * Returns NULL when out of memory. n == 0 gives a valid empty view. */
struct owfp_layer_view *owfp_view_build(uint16_t layer_id, const struct owfp_view_entry *entries,
                                        size_t n);
void owfp_view_free(struct owfp_layer_view *view);

/* Number of sublayers that hold at least one filter, in evaluation order. */
uint32_t owfp_view_sublayer_count(const struct owfp_layer_view *view);
uint32_t owfp_view_sublayer_rank(const struct owfp_layer_view *view, uint32_t index);
size_t owfp_view_filter_count(const struct owfp_layer_view *view);

/* Walks the filters of one sublayer whose conditions all match `in`, in
 * evaluation order (weight desc, filter_id asc), each at most once.
 * The iterator lives on the caller's stack and needs no cleanup. */
#define OWFP_VIEW_ITER_MAX_CURSORS 48
struct owfp_view_iter {
    const struct owfp_layer_view *view;
    const FWPS_INCOMING_VALUES0 *in;
    uint32_t sublayer;
    uint32_t ncursors;
    uint64_t last_id;
    int have_last;
    struct {
        const uint32_t *pos; /* entry indexes, sorted in evaluation order */
        const uint32_t *end;
    } cursor[OWFP_VIEW_ITER_MAX_CURSORS];
};

void owfp_view_iter_init(struct owfp_view_iter *it, const struct owfp_layer_view *view,
                         uint32_t sublayer_index, const FWPS_INCOMING_VALUES0 *in);
/* Next matching filter's `owner`, or NULL at the end. */
void *owfp_view_iter_next(struct owfp_view_iter *it);

#endif
