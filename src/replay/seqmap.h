/*
 * Where the bytes of an edited direction went: a map from offsets in the
 * original stream (as the reassembly consumed it, holes included) to
 * offsets in the stream the callouts released, so that an acknowledgement
 * of original bytes can be rewritten to acknowledge their edited
 * counterpart.
 *
 * The map is a short list of checkpoints "once the original stream had
 * been consumed up to `in`, the output had reached `out`", taken whenever
 * output is written (one per `in`: the latest output). Between two
 * checkpoints the bytes are taken to have gone through unchanged at the end
 * of the interval (holes and removed bytes count at its start), which is
 * exact for a pass-through stream, for holes and for same-length edits; an
 * offset never maps beyond the output written. Checkpoints that add nothing
 * (same out - in as the one before) are merged, and past
 * OWFP_SEQMAP_POINTS the oldest are forgotten: older offsets are then
 * placed from the oldest kept checkpoint.
 */
#ifndef OPENWFP_REPLAY_SEQMAP_H
#define OPENWFP_REPLAY_SEQMAP_H

#include <stdint.h>

#define OWFP_SEQMAP_POINTS 16

struct owfp_seqmap_point {
    uint64_t in, out;
};

struct owfp_seqmap {
    struct owfp_seqmap_point pt[OWFP_SEQMAP_POINTS]; /* by `in`, then by `out` */
    unsigned n;
};

/* Starts with both streams at offset 0. */
void owfp_seqmap_init(struct owfp_seqmap *m);

/* Original bytes consumed up to `in` have produced output up to `out`
 * (neither goes down between calls). */
void owfp_seqmap_note(struct owfp_seqmap *m, uint64_t in, uint64_t out);

/* The output offset of original offset `in`; never beyond the output so far. */
uint64_t owfp_seqmap_out(const struct owfp_seqmap *m, uint64_t in);

#endif
