/*
 * Fuzz target: the replay's packet decoder and IP defragmenter
 * (src/replay/decode.h, defrag.h) on arbitrary frames. One decoder takes
 * every frame of an input, so fragments of one frame meet those of later
 * ones, and the fragment limits are small so that eviction, timeout and
 * over-budget paths run.
 *
 * Input (a tape: bytes read as 0 once it is exhausted):
 *   c0: bits0-3 link type (fuzz_links[] in fuzz_frames.h, modulo its
 *       size; the last is one the decoder does not support); bit4 the
 *       default fragment limits (NULL config) instead of small ones; bit5
 *       free the decoder with its datagrams still in progress (no final
 *       expiry, so the end-of-input checks below are skipped);
 *   c1: max_datagrams = 1 + (c1 & 7); max_frag_bytes = 64 << ((c1 >> 3) & 7);
 *       timeout = (1 + c2) << (4 * (c1 >> 6)) microseconds;
 *   c2: see c1.
 * Then frame records (fuzz_frames.h), at most MAX_FRAMES; per-frame flag
 * bit0 (f0 bit5): a byte follows that switches the link type from this
 * frame on. After the last frame (unless c0 bit5), one empty frame at the
 * end of time expires every datagram still in progress.
 *
 * Checked after every frame: the result is one of the enum; frames grew by
 * one and exactly the counter of that result class by one (none for
 * FRAGMENT, which counts in `fragments`); fragments and reassembled
 * datagrams grow by at most one, a reassembled datagram never answers
 * FRAGMENT; payload_cut counts cut segments; fragments >= dropped +
 * reassembled. For TCP: version 4 or 6 (IPv4 addresses zero-padded), flags
 * within 6 bits, the frame's timestamp, both addresses present in the
 * frame; a segment from one frame has its payload inside the frame, behind
 * at least a link, IP and TCP header, and a TCP header right before it
 * whose fields are those reported; payload + payload_cut never exceed what
 * the frame held on the wire, and a cut payload runs to the end of the
 * capture; a reassembled segment is never cut and lies outside the frame;
 * every payload byte is readable (ASan). With ASan, the heap the decoder
 * holds stays within the configured fragment budget plus a per-datagram
 * allowance, and returns exactly to where it started once every datagram
 * expired; with no datagram reassembled, every fragment was then dropped.
 * owfp_decode_peek (the replay's look-ahead) reads only the frame and, for
 * a frame decoded as one TCP segment on its own, names the same endpoints.
 *
 * FUZZ_TRACE=1 in the environment logs every frame's result.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_frames.h"
#include "fuzz_util.h"
#include "replay/decode.h"

#define MAX_FRAMES 1024
/* Upper bound on what one datagram in progress costs besides its charged
 * fragment bytes (its descriptor). */
#define DGRAM_ALLOWANCE 256

/* Heap in use (ASan, LSan); absent (NULL) in plain builds. */
size_t __sanitizer_get_current_allocated_bytes(void) __attribute__((weak));

static struct {
    struct tape t;
    struct owfp_decoder *d;
    struct owfp_decoder_config cfg;
    bool small;      /* cfg applies (else the defaults) */
    bool no_expiry;  /* free with datagrams in progress */
    bool trace;
    int dlt;
    size_t heap_base;
} g;

static size_t heap_now(void)
{
    return __sanitizer_get_current_allocated_bytes ? __sanitizer_get_current_allocated_bytes()
                                                   : 0;
}

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static bool contains(const uint8_t *hay, size_t n, const uint8_t *needle, size_t k)
{
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(hay + i, needle, k) == 0)
            return true;
    return false;
}

/* Whether the `hdr` bytes before the payload end with a TCP header whose
 * data offset reaches exactly the payload and whose fields are `p`'s. */
static bool tcp_header_before(const struct owfp_pkt *p, uint32_t hdr)
{
    for (uint32_t h = 20; h <= 60 && h <= hdr; h += 4) {
        const uint8_t *t = p->payload - h;
        if ((uint32_t)(t[12] >> 4) * 4 == h && be16(t) == p->sport && be16(t + 2) == p->dport &&
            be32(t + 4) == p->seq && be32(t + 8) == p->ack && (t[13] & 0x3F) == p->tcp_flags &&
            be16(t + 14) == p->window && be16(t + 18) == p->urgent_ptr)
            return true;
    }
    return false;
}

static void check_payload_readable(const struct owfp_pkt *p)
{
    volatile uint8_t sum = 0;
    for (uint32_t i = 0; i < p->payload_len; i++)
        sum = (uint8_t)(sum + p->payload[i]);
    (void)sum;
}

static void check_tcp(const struct fuzz_frame *f, const struct owfp_pkt *p, bool rebuilt)
{
    static const uint8_t zero[12];
    CHECK(p->ip_version == 4 || p->ip_version == 6);
    size_t alen = p->ip_version == 4 ? 4 : 16;
    if (p->ip_version == 4)
        CHECK(memcmp(p->src + 4, zero, 12) == 0 && memcmp(p->dst + 4, zero, 12) == 0);
    CHECK((p->tcp_flags & ~0x3F) == 0);
    CHECK(p->ts_us == f->ts_us);
    CHECK(contains(f->data, f->caplen, p->src, alen));
    CHECK(contains(f->data, f->caplen, p->dst, alen));
    CHECK(p->payload != NULL || p->payload_len == 0);
    check_payload_readable(p);

    uintptr_t lo = (uintptr_t)f->data, hi = lo + f->caplen, at = (uintptr_t)p->payload;
    bool in_frame = at >= lo && at <= hi && p->payload_len <= hi - at;
    if (rebuilt) {
        CHECK(!in_frame || p->payload_len == 0);
        CHECK(p->payload_cut == 0);
        CHECK(p->payload_len <= 65535 - 20);
        return;
    }
    CHECK(in_frame);
    uint32_t hdr = (uint32_t)(at - lo);
    CHECK(hdr >= fuzz_link_header(g.dlt) + (p->ip_version == 4 ? 20u : 40u) + 20u);
    CHECK(tcp_header_before(p, hdr));
    uint64_t wire = f->wirelen > f->caplen ? f->wirelen : f->caplen;
    CHECK((uint64_t)hdr + p->payload_len + p->payload_cut <= wire);
    if (p->payload_cut != 0)
        CHECK(hdr + p->payload_len == f->caplen && f->caplen < f->wirelen);
}

/* The counter of a result class, or NULL for FRAGMENT. */
static const uint64_t *class_counter(const struct owfp_decode_stats *s, enum owfp_decode_result r)
{
    switch (r) {
    case OWFP_DECODE_TCP:
        return &s->tcp;
    case OWFP_DECODE_NOT_TCP:
        return &s->not_tcp;
    case OWFP_DECODE_TRUNCATED:
        return &s->truncated;
    case OWFP_DECODE_MALFORMED:
        return &s->malformed;
    case OWFP_DECODE_UNSUPPORTED:
        return &s->unsupported;
    default:
        return NULL;
    }
}

static uint64_t classes_sum(const struct owfp_decode_stats *s)
{
    return s->tcp + s->not_tcp + s->truncated + s->malformed + s->unsupported;
}

static void check_stats(const struct owfp_decode_stats *b, const struct owfp_decode_stats *a,
                        enum owfp_decode_result r, const struct owfp_pkt *p)
{
    CHECK(r >= OWFP_DECODE_TCP && r <= OWFP_DECODE_UNSUPPORTED);
    CHECK(a->frames == b->frames + 1);
    const uint64_t *ca = class_counter(a, r), *cb = class_counter(b, r);
    CHECK(classes_sum(a) == classes_sum(b) + (ca != NULL));
    if (ca)
        CHECK(*ca == *cb + 1);
    uint64_t frag = a->fragments - b->fragments;
    uint64_t rebuilt = a->datagrams_reassembled - b->datagrams_reassembled;
    CHECK(frag <= 1 && rebuilt <= 1);
    CHECK(r != OWFP_DECODE_FRAGMENT || frag == 1);
    CHECK(!rebuilt || (frag == 1 && r != OWFP_DECODE_FRAGMENT));
    bool cut = r == OWFP_DECODE_TCP && p->payload_cut != 0;
    CHECK(a->payload_cut == b->payload_cut + cut);
    CHECK(a->fragments_dropped >= b->fragments_dropped);
    CHECK(a->fragments >= a->fragments_dropped + a->datagrams_reassembled);
}

static void check_heap(uint32_t frame_bytes)
{
    if (!__sanitizer_get_current_allocated_bytes || !g.small)
        return;
    size_t now = heap_now() - frame_bytes;
    CHECK(now >= g.heap_base);
    CHECK(now - g.heap_base <= g.cfg.max_frag_bytes + (size_t)g.cfg.max_datagrams * DGRAM_ALLOWANCE);
}

/* The look-ahead's peek stays inside the frame and, where it answers for
 * a frame the decoder took as one TCP segment, names the same endpoints. */
static void check_peek(const struct fuzz_frame *f, const struct owfp_pkt *p)
{
    struct owfp_pkt q;
    if (!owfp_decode_peek(g.dlt, f->data, f->caplen, &q) || !p)
        return;
    CHECK(q.ip_version == p->ip_version);
    CHECK(memcmp(q.src, p->src, 16) == 0 && memcmp(q.dst, p->dst, 16) == 0);
    CHECK(q.sport == p->sport && q.dport == p->dport);
}

static void decode_frame(const struct fuzz_frame *f)
{
    struct owfp_decode_stats before = *owfp_decoder_stats(g.d);
    struct owfp_pkt p;
    memset(&p, 0xA5, sizeof(p));
    enum owfp_decode_result r =
        owfp_decode(g.d, g.dlt, f->data, f->caplen, f->wirelen, f->ts_us, &p);
    const struct owfp_decode_stats *after = owfp_decoder_stats(g.d);
    if (g.trace)
        fprintf(stderr, "frame dlt %d caplen %u wire %u ts %llu: result %d payload %u cut %u\n",
                g.dlt, f->caplen, f->wirelen, (unsigned long long)f->ts_us, (int)r,
                r == OWFP_DECODE_TCP ? p.payload_len : 0, r == OWFP_DECODE_TCP ? p.payload_cut : 0);
    check_stats(&before, after, r, &p);
    bool rebuilt = after->datagrams_reassembled != before.datagrams_reassembled;
    if (r == OWFP_DECODE_TCP)
        check_tcp(f, &p, rebuilt);
    check_peek(f, r == OWFP_DECODE_TCP && !rebuilt ? &p : NULL);
    check_heap(f->caplen ? f->caplen : 1);
}

static void setup(void)
{
    uint8_t c0 = t8(&g.t), c1 = t8(&g.t), c2 = t8(&g.t);
    g.dlt = fuzz_links[(c0 & 15) % FUZZ_NLINKS];
    g.small = !(c0 & 0x10);
    g.no_expiry = (c0 & 0x20) != 0;
    g.cfg.max_datagrams = 1u + (c1 & 7);
    g.cfg.max_frag_bytes = 64u << ((c1 >> 3) & 7);
    g.cfg.frag_timeout_us = (uint64_t)(1u + c2) << (4 * (c1 >> 6));
    g.heap_base = heap_now();
    g.d = owfp_decoder_new(g.small ? &g.cfg : NULL);
    CHECK(g.d != NULL);
    g.heap_base = heap_now();
}

static void finish(void)
{
    if (g.no_expiry) {
        owfp_decoder_free(g.d); /* LeakSanitizer: frees what is in progress */
        return;
    }
    /* The end of time: every datagram still in progress expires. */
    struct fuzz_frame end = {malloc(1), 0, 0, UINT64_MAX, 0};
    CHECK(end.data != NULL);
    decode_frame(&end);
    free(end.data);
    const struct owfp_decode_stats *s = owfp_decoder_stats(g.d);
    if (s->datagrams_reassembled == 0)
        CHECK(s->fragments == s->fragments_dropped);
    if (__sanitizer_get_current_allocated_bytes)
        CHECK(heap_now() == g.heap_base);
    if (g.trace)
        fprintf(stderr, "fragments %llu dropped %llu reassembled %llu\n",
                (unsigned long long)s->fragments, (unsigned long long)s->fragments_dropped,
                (unsigned long long)s->datagrams_reassembled);
    owfp_decoder_free(g.d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    memset(&g, 0, sizeof(g));
    g.t = (struct tape){data, size, 0};
    g.trace = getenv("FUZZ_TRACE") != NULL;
    setup();
    uint64_t ts = 0;
    struct fuzz_frame f;
    for (unsigned i = 0; i < MAX_FRAMES && fuzz_frame_next(&g.t, &ts, &f); i++) {
        if (f.flags & 1)
            g.dlt = fuzz_links[t8(&g.t) % FUZZ_NLINKS];
        decode_frame(&f);
        free(f.data);
    }
    finish();
    return 0;
}
