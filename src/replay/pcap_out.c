/* --write-pcap (pcap_out.h). Policies are in docs/semantics.md, "Replay:
 * --write-pcap". */
#include "replay/pcap_out.h"

#include <errno.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replay/pcap_build.h"
#include "replay/pcap_conn.h"

#define SNAPLEN 262144

/* The frame between frame_begin and frame_end; its pointers are borrowed. */
struct cur_frame {
    const uint8_t *frame;
    uint32_t caplen, wirelen;
    const struct owfp_pkt *p;
    bool foreign; /* another link type than the output's */
    bool done;    /* already written (a SYN goes out ahead of its data) */
};

struct owfp_pcap_out {
    char *path;
    FILE *fp;              /* until the dumper owns it */
    pcap_t *dead;
    pcap_dumper_t *dumper;
    int dlt;               /* the output's: the first frame's */
    bool failed;
    uint64_t now_us;       /* the latest frame's time: rebuilt segments get it */
    uint64_t frames;
    struct cur_frame cur;
    uint64_t foreign;      /* frames of another link type, not written */
    uint64_t headless;     /* segments with no link header to borrow, not written */
    uint8_t buf[OWFP_BUILD_FRAME_MAX];
};

/* ---- the file ------------------------------------------------------------------ */

static void fail(struct owfp_pcap_out *po, const char *why)
{
    if (po->failed)
        return;
    po->failed = true;
    fprintf(stderr, "openwfp replay: --write-pcap %s: %s\n", po->path, why);
}

struct owfp_pcap_out *owfp_pcap_out_new(const char *path)
{
    struct owfp_pcap_out *po = calloc(1, sizeof(*po));
    if (!po || !(po->path = strdup(path))) {
        fprintf(stderr, "openwfp replay: --write-pcap %s: %s\n", path, strerror(ENOMEM));
        free(po);
        return NULL;
    }
    po->fp = fopen(path, "wb");
    if (!po->fp) {
        fprintf(stderr, "openwfp replay: --write-pcap %s: %s\n", path, strerror(errno));
        free(po->path);
        free(po);
        return NULL;
    }
    return po;
}

/* The link type a savefile can carry for frames of `dlt`: raw IP that
 * OpenBSD labels 14 is written as DLT_RAW, the same frames under the value
 * libpcap can store (found by fuzz/fuzz_replay.c). */
static int file_dlt(int dlt)
{
    return dlt == 14 ? DLT_RAW : dlt;
}

/* The file header can only be written once the link type is known. */
static void open_dumper(struct owfp_pcap_out *po, int dlt)
{
    po->dlt = dlt;
    po->dead = pcap_open_dead(file_dlt(dlt), SNAPLEN);
    if (!po->dead) {
        fail(po, strerror(ENOMEM));
        return;
    }
    po->dumper = pcap_dump_fopen(po->dead, po->fp);
    if (!po->dumper) {
        fail(po, pcap_geterr(po->dead));
        return;
    }
    po->fp = NULL;
}

static void dump(struct owfp_pcap_out *po, const uint8_t *data, uint32_t caplen, uint32_t wirelen)
{
    if (!po->dumper || po->failed)
        return;
    struct pcap_pkthdr h = {
        .ts = {.tv_sec = (time_t)(po->now_us / 1000000),
               .tv_usec = (suseconds_t)(po->now_us % 1000000)},
        .caplen = caplen < SNAPLEN ? caplen : SNAPLEN,
        .len = wirelen,
    };
    pcap_dump((u_char *)po->dumper, &h, data);
    if (ferror(pcap_dump_file(po->dumper)))
        fail(po, strerror(errno));
}

static void warn_unwritten(const struct owfp_pcap_out *po)
{
    if (!po->foreign && !po->headless)
        return;
    const char *name = pcap_datalink_val_to_name(po->dlt);
    fprintf(stderr,
            "openwfp replay: --write-pcap %s: not written: %llu frames of another link type "
            "than the first frame's (%s) and %llu segments rebuilt for connections seen only "
            "in such frames\n",
            po->path, (unsigned long long)po->foreign, name ? name : "?",
            (unsigned long long)po->headless);
}

int owfp_pcap_out_free(struct owfp_pcap_out *po)
{
    if (!po)
        return 0;
    if (!po->dumper && !po->failed)
        open_dumper(po, DLT_EN10MB); /* no frame at all: still a valid, empty capture */
    if (po->dumper) {
        if (pcap_dump_flush(po->dumper) != 0)
            fail(po, strerror(errno));
        pcap_dump_close(po->dumper);
    } else if (po->fp && fclose(po->fp) != 0) {
        fail(po, strerror(errno));
    }
    if (po->dead)
        pcap_close(po->dead);
    warn_unwritten(po);
    int st = po->failed ? 2 : 0;
    free(po->path);
    free(po);
    return st;
}

/* ---- segments ------------------------------------------------------------------ */

static void put_segment(struct owfp_pcap_out *po, const struct owfp_seg_tmpl *t,
                        const struct owfp_build_seg *s)
{
    size_t n = owfp_build_segment(po->buf, po->dlt, t, s);
    dump(po, po->buf, (uint32_t)n, (uint32_t)n);
}

/* A rebuilt segment of `side`, with the side's headers, or the other
 * side's turned around when no frame of this side was seen yet. */
static void emit(struct owfp_pcap_out *po, struct owfp_pcap_conn *pc, int side,
                 const struct owfp_build_seg *s)
{
    struct owfp_pcap_side *ps = &pc->s[side], *other = &pc->s[1 - side];
    if (ps->have_tmpl) {
        ps->tmpl.ip_id++;
        put_segment(po, &ps->tmpl, s);
    } else if (other->have_tmpl) {
        struct owfp_seg_tmpl t;
        owfp_tmpl_mirror(&t, &other->tmpl, po->dlt);
        put_segment(po, &t, s);
    } else {
        po->headless++;
    }
}

/* The side of `c` the current frame comes from, or -1. */
static int current_side(const struct owfp_pcap_out *po, const struct owfp_conn *c)
{
    if (!po->cur.p || po->cur.foreign)
        return -1;
    return owfp_pcap_conn_side(c, po->cur.p);
}

/* The current frame, when it is the connection's, is the freshest source
 * of its side's headers (window, TTL, ...). */
static void refresh_tmpl(struct owfp_pcap_out *po, const struct owfp_conn *c,
                         struct owfp_pcap_conn *pc)
{
    int side = current_side(po, c);
    if (side < 0 || pc->s[side].tmpl_frame == po->frames)
        return;
    struct owfp_pcap_side *ps = &pc->s[side];
    const struct owfp_pkt *p = po->cur.p;
    ps->tmpl_frame = po->frames;
    uint64_t seen = (uint64_t)p->payload_len + p->payload_cut;
    if (seen > ps->max_seen)
        ps->max_seen = seen;
    if (owfp_tmpl_from_frame(&ps->tmpl, po->cur.frame, po->cur.caplen, p))
        ps->have_tmpl = true;
}

/* A captured control frame, rebuilt in the output's sequence space. */
static void write_control(struct owfp_pcap_out *po, const struct owfp_conn *c,
                          const struct owfp_pcap_conn *pc, int side)
{
    const struct owfp_pkt *p = po->cur.p;
    uint8_t f = p->tcp_flags;
    struct owfp_seg_tmpl t;
    po->cur.done = true;
    if (!owfp_tmpl_from_frame(&t, po->cur.frame, po->cur.caplen, p)) {
        po->headless++;
        return;
    }
    struct owfp_build_seg s = {.flags = f & (OWFP_TCP_SYN | OWFP_TCP_ACK | OWFP_TCP_RST)};
    /* A SYN's number is the ISN itself, outside either stream. */
    s.seq = f & OWFP_TCP_SYN ? p->seq : owfp_pcap_to_out(c, pc, side, p->seq);
    if (f & OWFP_TCP_ACK)
        s.ack = owfp_pcap_to_out(c, pc, 1 - side, p->ack);
    /* Only a SYN's options are kept: they negotiate (window scale, MSS);
     * later ones (SACK, timestamps) speak of segments that are gone. */
    if (f & OWFP_TCP_SYN)
        s.opts_len = owfp_tmpl_tcp_options(po->cur.frame, po->cur.caplen, p, &s.opts);
    put_segment(po, &t, &s);
}

/* The current frame, when it is a SYN of `c` from `side` (-1: either
 * side), goes out before what it makes that side release: a SYN's own data
 * (TCP Fast Open) follows it. Data of the other side that a SYN/ACK
 * acknowledges goes out before it, as any acknowledged data does. */
static void flush_syn(struct owfp_pcap_out *po, const struct owfp_conn *c,
                      const struct owfp_pcap_conn *pc, int side)
{
    int from = current_side(po, c);
    if (from >= 0 && (side < 0 || side == from) && !po->cur.done &&
        (po->cur.p->tcp_flags & OWFP_TCP_SYN))
        write_control(po, c, pc, from);
}

/* Before writing anything of `c` for `side` (-1: both): the connection's
 * state, with what the current frame says taken in first. */
static struct owfp_pcap_conn *prepare(struct owfp_pcap_out *po, const struct owfp_conn *c,
                                      int side)
{
    struct owfp_pcap_conn *pc = c->out;
    if (!pc || pc->reset)
        return NULL;
    refresh_tmpl(po, c, pc);
    flush_syn(po, c, pc, side);
    return pc;
}

/* ---- frames -------------------------------------------------------------------- */

void owfp_pcap_out_frame_begin(struct owfp_pcap_out *po, int dlt, const uint8_t *frame,
                               uint32_t caplen, uint32_t wirelen, uint64_t ts_us,
                               const struct owfp_pkt *p)
{
    po->frames++;
    po->now_us = ts_us;
    if (!po->dumper && !po->failed)
        open_dumper(po, dlt);
    po->cur = (struct cur_frame){frame, caplen, wirelen, p, dlt != po->dlt, false};
    if (po->cur.foreign)
        po->foreign++;
}

/* Payload and FINs come back through bytes and fin, as the callouts left
 * them; everything else the connection sends is kept. */
static bool is_control(const struct owfp_pkt *p)
{
    if (p->tcp_flags & (OWFP_TCP_SYN | OWFP_TCP_RST))
        return true;
    return !(p->tcp_flags & OWFP_TCP_FIN) && p->payload_len == 0 && p->payload_cut == 0;
}

/* A segment rebuilt from fragments, as it was but in one piece: its frame
 * is only the last fragment. Its TCP options are not kept (they are not in
 * that frame), and a payload longer than one datagram without them is cut. */
static void write_whole(struct owfp_pcap_out *po)
{
    const struct owfp_pkt *p = po->cur.p;
    struct owfp_seg_tmpl t;
    if (!owfp_tmpl_from_frame(&t, po->cur.frame, po->cur.caplen, p)) {
        po->headless++;
        return;
    }
    size_t max = owfp_build_max_payload(p->ip_version);
    struct owfp_build_seg s = {
        .seq = p->seq,
        .ack = p->ack,
        .flags = p->tcp_flags,
        .payload = p->payload,
        .len = p->payload_len < max ? p->payload_len : max,
    };
    put_segment(po, &t, &s);
}

/* Frames of no flow: as they were. */
static void copy_frame(struct owfp_pcap_out *po)
{
    const struct cur_frame *f = &po->cur;
    if (f->p && !owfp_tmpl_holds_tcp(f->frame, f->caplen, f->p))
        write_whole(po);
    else
        dump(po, f->frame, f->caplen, f->wirelen);
}

static void write_frame(struct owfp_pcap_out *po, struct owfp_conn *c)
{
    const struct cur_frame *f = &po->cur;
    if (!f->p || !c || !c->opened) {
        copy_frame(po);
        return;
    }
    /* An opened connection without state (out of memory) is not written:
     * copying its frames would show bytes the callouts may have edited. */
    struct owfp_pcap_conn *pc = prepare(po, c, -1);
    int side = owfp_pcap_conn_side(c, f->p);
    if (pc && side >= 0 && !po->cur.done && is_control(f->p))
        write_control(po, c, pc, side);
}

void owfp_pcap_out_frame_end(struct owfp_pcap_out *po, struct owfp_conn *c)
{
    if (po->cur.frame && !po->cur.foreign && !po->cur.done)
        write_frame(po, c);
    po->cur = (struct cur_frame){0};
}

/* ---- connection events ---------------------------------------------------------- */

void owfp_pcap_out_open(struct owfp_pcap_out *po, struct owfp_conn *c)
{
    struct owfp_pcap_conn *pc = owfp_pcap_conn_new();
    c->out = pc;
    if (!pc) {
        fail(po, strerror(ENOMEM));
        return;
    }
    refresh_tmpl(po, c, pc);
}

void owfp_pcap_out_bytes(struct owfp_pcap_out *po, struct owfp_conn *c, int side,
                         const uint8_t *p, size_t n)
{
    struct owfp_pcap_conn *pc = c->out;
    if (n == 0 || !pc || pc->s[side].fin || !(pc = prepare(po, c, side)))
        return;
    struct owfp_pcap_side *ps = &pc->s[side];
    size_t max = owfp_pcap_seg_size(ps, c->key.ip_version);
    uint32_t first = 0, ack = 0;
    owfp_pcap_next_seq(c, pc, side, &first);
    bool acks = owfp_pcap_ack_of(c, pc, side, &ack);
    for (size_t off = 0; off < n;) {
        size_t k = n - off < max ? n - off : max;
        struct owfp_build_seg s = {
            .seq = first + (uint32_t)off,
            .ack = ack,
            .flags = (uint8_t)((acks ? OWFP_TCP_ACK : 0) | (off + k == n ? OWFP_TCP_PSH : 0)),
            .payload = p + off,
            .len = k,
        };
        emit(po, pc, side, &s);
        off += k;
    }
    ps->out += n;
    owfp_pcap_note(c, pc, side);
}

void owfp_pcap_out_fin(struct owfp_pcap_out *po, struct owfp_conn *c, int side)
{
    struct owfp_pcap_conn *pc = c->out;
    if (!pc || pc->s[side].fin || !(pc = prepare(po, c, side)))
        return;
    struct owfp_build_seg s = {.flags = OWFP_TCP_FIN};
    owfp_pcap_next_seq(c, pc, side, &s.seq);
    if (owfp_pcap_ack_of(c, pc, side, &s.ack))
        s.flags |= OWFP_TCP_ACK;
    emit(po, pc, side, &s);
    pc->s[side].fin = true;
    owfp_pcap_note_fin(c, pc, side);
}

void owfp_pcap_out_reset(struct owfp_pcap_out *po, struct owfp_conn *c)
{
    /* The engine reports the abort of a connection the capture reset as a
     * drop: the captured RST is the truth, and is written at its frame. */
    if (c->d[0].rst || c->d[1].rst)
        return;
    struct owfp_pcap_conn *pc = prepare(po, c, -1);
    if (!pc)
        return;
    for (int side = 0; side < 2; side++) {
        struct owfp_build_seg s = {.flags = OWFP_TCP_RST};
        owfp_pcap_next_seq(c, pc, side, &s.seq);
        if (owfp_pcap_ack_of(c, pc, side, &s.ack))
            s.flags |= OWFP_TCP_ACK;
        emit(po, pc, side, &s);
    }
    pc->reset = true;
}

void owfp_pcap_out_forget(struct owfp_pcap_out *po, struct owfp_conn *c)
{
    (void)po;
    free(c->out);
    c->out = NULL;
}
