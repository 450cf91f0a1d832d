/* A progress line on stderr for long replays: bytes, packets, rate, ETA.
 * Silent unless asked for and stderr and stdout are terminals. */
#ifndef OPENWFP_REPLAY_PROGRESS_H
#define OPENWFP_REPLAY_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct owfp_progress {
    bool enabled;
    bool shown;
    uint64_t file_size;    /* 0 when unknown (a pipe) */
    uint64_t done_before;  /* bytes of earlier captures */
    uint64_t total_size;   /* of all captures, 0 when unknown */
    double start, last;    /* seconds, monotonic */
};

void owfp_progress_init(struct owfp_progress *p, bool wanted, const char *const *names, size_t n);
void owfp_progress_file(struct owfp_progress *p, const char *name);
/* `pos`: bytes of the current capture read so far, or -1 when unknown. */
void owfp_progress_update(struct owfp_progress *p, uint64_t packets, long long pos);
/* Erases the line if one was drawn. */
void owfp_progress_end(struct owfp_progress *p);

#endif
