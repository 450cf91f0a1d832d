/*
 * Captured frames read from a fuzz tape, shared by fuzz_decode and
 * fuzz_replay (and written by fuzz/gen_replay_corpus.py).
 *
 * One frame record:
 *   f0: bit0 the length is 2 bytes LE (else 1 byte);
 *       bits1-2 wire length: 0 = caplen; 1 = caplen + 1 byte (cut by a
 *       snapshot); 2 = caplen + 2 bytes (TSO/GSO: the IP length is
 *       believed up to it); 3 = 2 bytes as is (may lie below caplen);
 *       bits3-4 time step: 0 = +1 us; 1 = +2 bytes us; 2 = +2 bytes ms
 *       (past the fragment and flow timeouts); 3 = back by 2 bytes us;
 *       bits5-7 the target's own per-frame flags;
 *   the length, the wire-length and time bytes as f0 says, then the
 *   frame's bytes (fewer when the tape ends first: caplen says how many).
 * Each frame is copied into a buffer of exactly its length, so reading
 * past the captured bytes is a heap overflow ASan reports.
 */
#ifndef OPENWFP_FUZZ_FRAMES_H
#define OPENWFP_FUZZ_FRAMES_H

#include <pcap/dlt.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"

/* The link types the decoder supports (decode.c), as pcap_datalink()
 * reports them, then one it does not. Also pcap file header values:
 * libpcap maps 101 to DLT_RAW and keeps the others. */
static const int fuzz_links[] = {
    DLT_EN10MB, DLT_LINUX_SLL, DLT_LINUX_SLL2, DLT_RAW, 101, 14,
    DLT_IPV4,   DLT_IPV6,      DLT_NULL,      DLT_LOOP, 147 /* DLT_USER0 */,
};
#define FUZZ_NLINKS (sizeof(fuzz_links) / sizeof(fuzz_links[0]))

/* Bytes a link header takes before the IP header, at least. */
static inline uint32_t fuzz_link_header(int dlt)
{
    switch (dlt) {
    case DLT_EN10MB:
        return 14;
    case DLT_LINUX_SLL:
        return 16;
    case DLT_LINUX_SLL2:
        return 20;
    case DLT_NULL:
    case DLT_LOOP:
        return 4;
    default:
        return 0;
    }
}

struct fuzz_frame {
    uint8_t *data; /* malloc'd, exactly caplen bytes (1 if caplen is 0) */
    uint32_t caplen, wirelen;
    uint64_t ts_us;
    uint8_t flags; /* f0 bits5-7, shifted down */
};

/* Reads the next frame; `*ts` is the running capture clock. Returns 0 at
 * the end of the tape. */
static inline int fuzz_frame_next(struct tape *t, uint64_t *ts, struct fuzz_frame *f)
{
    if (!tape_left(t))
        return 0;
    uint8_t f0 = t8(t);
    uint32_t len = f0 & 1 ? t16(t) : t8(t);
    uint32_t wire;
    switch ((f0 >> 1) & 3) {
    case 0:
        wire = len;
        break;
    case 1:
        wire = len + t8(t);
        break;
    case 2:
        wire = len + t16(t);
        break;
    default:
        wire = t16(t);
        break;
    }
    switch ((f0 >> 3) & 3) {
    case 0:
        *ts += 1;
        break;
    case 1:
        *ts += t16(t);
        break;
    case 2:
        *ts += (uint64_t)t16(t) * 1000;
        break;
    default: {
        uint64_t back = t16(t);
        *ts = *ts > back ? *ts - back : 0;
        break;
    }
    }
    size_t left = t->n - t->i;
    if (len > left)
        len = (uint32_t)left;
    f->data = malloc(len ? len : 1);
    CHECK(f->data != NULL);
    if (len)
        memcpy(f->data, t->p + t->i, len);
    t->i += len;
    f->caplen = len;
    f->wirelen = wire;
    f->ts_us = *ts;
    f->flags = f0 >> 5;
    return 1;
}

#endif
