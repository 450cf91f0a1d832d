/* The TCP connection tracker (tracker.h). Policies are in docs/semantics.md,
 * "Replay: TCP reassembly". */
#include "replay/tracker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/hashmap.h"

#define DEFAULT_IDLE_US (600ull * 1000000)
#define DEFAULT_LINGER_US (60ull * 1000000)
/* About a minute of closed connections at 1,000 per second, 35 MB at most. */
#define DEFAULT_MAX_CLOSED 65536
/* How far a RST may sit from the next expected byte and still be believed:
 * wider than any real window, narrow enough to reject a blind seq-0 RST. */
#define RST_WINDOW (1u << 24)
/* An ACK from one side this far behind the other side's first byte still
 * marks the bytes between as sent but not captured (a leading hole). */
#define LEADING_GAP_MAX (1u << 20)

struct conn_list {
    struct owfp_conn *oldest, *newest;
};

struct owfp_tracker {
    struct owfp_tracker_config cfg;
    struct owfp_track_events ev;
    void *arg;
    struct owfp_hmap table;
    struct conn_list live, closed;
    uint64_t next_id;
    uint64_t now_us; /* the latest capture time seen */
    struct owfp_tracker_stats st;
    struct owfp_conn **due; /* connections about to end together */
    size_t due_cap;
    uint64_t added, removed; /* connections put in and taken out of the table */
};

/* ---- table and lists ------------------------------------------------------ */

static uint64_t key_hash(const struct owfp_conn_key *k)
{
    uint64_t w[5];
    memcpy(w, k->a, 16);
    memcpy(w + 2, k->b, 16);
    w[4] = (uint64_t)k->pa << 32 | (uint64_t)k->pb << 16 | k->ip_version;
    uint64_t h = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 5; i++) {
        h ^= w[i];
        h *= 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    return h;
}

/* The lines a segment uses besides the key's: its directions and the
 * user's bytes. */
static void fetch_conn(const struct owfp_conn *c)
{
    const char *p = (const char *)c;
    __builtin_prefetch(p + 64);
    __builtin_prefetch(p + 128);
    __builtin_prefetch(&c->d[1]);
    __builtin_prefetch((const char *)&c->d[1] + 64);
    __builtin_prefetch(c + 1);
    __builtin_prefetch((const char *)(c + 1) + 64);
}

static bool same_key(const struct owfp_conn_key *x, const struct owfp_conn_key *y)
{
    uint64_t a[sizeof(*x) / 8], b[sizeof(*y) / 8];
    memcpy(a, x, sizeof(a));
    memcpy(b, y, sizeof(b));
    uint64_t diff = 0;
    for (size_t i = 0; i < sizeof(a) / 8; i++)
        diff |= a[i] ^ b[i];
    return diff == 0;
}

/* Called for the slot whose hash matches, so nearly always for the
 * segment's connection: its other lines are asked for before the compare
 * waits for the first, so that they arrive together rather than one miss
 * after another. Keys compare as words: make_key() zeroes the padding. */
static bool key_eq(const void *value, const void *arg)
{
    fetch_conn(value);
    return same_key(&((const struct owfp_conn *)value)->key, arg);
}

/* A lookup without fetching ahead: the lines are already wanted or here. */
static bool key_eq_plain(const void *value, const void *arg)
{
    return same_key(&((const struct owfp_conn *)value)->key, arg);
}

static void list_unlink(struct conn_list *l, struct owfp_conn *c)
{
    if (c->older)
        c->older->newer = c->newer;
    else
        l->oldest = c->newer;
    if (c->newer)
        c->newer->older = c->older;
    else
        l->newest = c->older;
    c->older = c->newer = NULL;
}

static void list_append(struct conn_list *l, struct owfp_conn *c)
{
    c->older = l->newest;
    c->newer = NULL;
    if (l->newest)
        l->newest->newer = c;
    else
        l->oldest = c;
    l->newest = c;
}

static struct conn_list *list_of(struct owfp_tracker *t, const struct owfp_conn *c)
{
    return c->state == OWFP_CONN_CLOSED ? &t->closed : &t->live;
}

/* The segment's key, and whether its sender is endpoint a. */
static bool make_key(const struct owfp_pkt *p, struct owfp_conn_key *k)
{
    int cmp = memcmp(p->src, p->dst, 16);
    bool src_is_a = cmp < 0 || (cmp == 0 && p->sport <= p->dport);
    memset(k, 0, sizeof(*k));
    memcpy(k->a, src_is_a ? p->src : p->dst, 16);
    memcpy(k->b, src_is_a ? p->dst : p->src, 16);
    k->pa = src_is_a ? p->sport : p->dport;
    k->pb = src_is_a ? p->dport : p->sport;
    k->ip_version = p->ip_version;
    return src_is_a;
}

/* ---- reassembly sinks ----------------------------------------------------- */

struct sink_ctx {
    struct owfp_tracker *t;
    struct owfp_conn *c;
    int side;
};

static void sink_data(void *arg, const uint8_t *p, size_t n, uint32_t flags)
{
    struct sink_ctx *x = arg;
    x->t->ev.data(x->t->arg, x->c, x->side, p, n, flags);
}

static void sink_gap(void *arg, uint64_t n)
{
    struct sink_ctx *x = arg;
    x->t->ev.gap(x->t->arg, x->c, x->side, n);
}

static const struct owfp_reasm_sink g_sink = {sink_data, sink_gap};

static uint32_t reasm_flags(uint8_t tcp_flags)
{
    return (tcp_flags & OWFP_TCP_PSH ? OWFP_REASM_PUSH : 0) |
           (tcp_flags & OWFP_TCP_URG ? OWFP_REASM_URGENT : 0);
}

/* ---- connection life ------------------------------------------------------ */

static void open_conn(struct owfp_tracker *t, struct owfp_conn *c)
{
    if (c->opened)
        return;
    c->opened = true;
    c->state = OWFP_CONN_OPEN;
    /* A RST seen during the handshake did not end it after all. */
    c->d[0].rst = c->d[1].rst = false;
    t->st.opened++;
    if (!c->handshake)
        t->st.midstream++;
    t->ev.open(t->arg, c);
}

static void start_dir(struct owfp_conn *c, int side, uint32_t first_seq)
{
    struct owfp_conn_dir *d = &c->d[side];
    if (!d->started) {
        owfp_reasm_init(&d->r, first_seq);
        d->started = true;
    }
}

/* Reports the FINs that became reached; true once both were. */
static bool report_fins(struct owfp_tracker *t, struct owfp_conn *c)
{
    for (int s = 0; s < 2; s++) {
        struct owfp_conn_dir *d = &c->d[s];
        if (d->started && !d->fin_done && owfp_reasm_fin_reached(&d->r)) {
            d->fin_done = true;
            t->ev.fin(t->arg, c, s);
        }
    }
    return c->d[0].fin_done && c->d[1].fin_done;
}

static void flush_dir(struct owfp_tracker *t, struct owfp_conn *c, int side)
{
    struct owfp_conn_dir *d = &c->d[side];
    struct sink_ctx x = {t, c, side};
    if (d->started)
        owfp_reasm_flush(&d->r, &t->cfg.reasm, &g_sink, &x);
}

static void free_conn(struct owfp_tracker *t, struct owfp_conn *c)
{
    if (t->ev.forget)
        t->ev.forget(t->arg, c);
    owfp_hmap_remove(&t->table, key_hash(&c->key), c);
    t->removed++;
    if (c->state == OWFP_CONN_CLOSED)
        t->st.lingering--;
    list_unlink(list_of(t, c), c);
    for (int s = 0; s < 2; s++)
        if (c->d[s].started)
            owfp_reasm_free(&c->d[s].r, &t->cfg.reasm);
    owfp_free(c);
}

/* The connection stops carrying data: what it still holds is delivered
 * (bytes the capture shows were sent, acknowledged or not), the replay is
 * told, and it lingers closed to absorb stray packets. Past max_closed the
 * record closed longest goes: at a high enough connection rate memory
 * stays flat, at the price of strays that come later than that many
 * closes being taken for new connections. */
static void close_conn(struct owfp_tracker *t, struct owfp_conn *c, enum owfp_conn_end why)
{
    if (c->state == OWFP_CONN_CLOSED)
        return;
    if (c->opened && why != OWFP_END_FIN) {
        flush_dir(t, c, 0);
        flush_dir(t, c, 1);
        report_fins(t, c);
    }
    if (!c->opened && (c->d[0].rst || c->d[1].rst))
        why = OWFP_END_RST;
    for (int s = 0; s < 2; s++)
        if (c->d[s].started)
            owfp_reasm_release(&c->d[s].r, &t->cfg.reasm);
    list_unlink(&t->live, c);
    c->state = OWFP_CONN_CLOSED;
    c->end = (uint8_t)why;
    c->listed_us = t->now_us;
    t->st.live--;
    t->ev.end(t->arg, c);
    list_append(&t->closed, c);
    t->st.lingering++;
    while (t->st.lingering > t->cfg.max_closed && t->closed.oldest != c) {
        t->st.linger_cut++;
        free_conn(t, t->closed.oldest);
    }
}

/* Which endpoint started the connection, from its first packet. */
static bool initiator_is_sender(const struct owfp_pkt *p)
{
    uint8_t syn_ack = p->tcp_flags & (OWFP_TCP_SYN | OWFP_TCP_ACK);
    if (syn_ack == OWFP_TCP_SYN)
        return true;
    if (syn_ack == (OWFP_TCP_SYN | OWFP_TCP_ACK))
        return false;
    /* Picked up mid-stream: servers listen on the lower port. */
    return p->sport == p->dport || p->sport > p->dport;
}

static struct owfp_conn *new_conn(struct owfp_tracker *t, const struct owfp_conn_key *k,
                                  uint64_t h, bool src_is_a, const struct owfp_pkt *p)
{
    if (t->cfg.max_conns && t->st.live >= t->cfg.max_conns && t->live.oldest) {
        t->st.evicted++;
        close_conn(t, t->live.oldest, OWFP_END_EVICTED);
    }
    struct owfp_conn *c = owfp_calloc(1, sizeof(*c) + t->cfg.user_size);
    if (!c)
        return NULL;
    if (!owfp_hmap_insert(&t->table, h, c)) {
        owfp_free(c);
        return NULL;
    }
    t->added++;
    c->key = *k;
    c->id = ++t->next_id;
    c->first_us = c->last_us = c->listed_us = p->ts_us;
    c->touched = t->st.segments;
    c->initiator_is_a = src_is_a == initiator_is_sender(p);
    c->handshake = (p->tcp_flags & OWFP_TCP_SYN) != 0;
    list_append(&t->live, c);
    t->st.conns++;
    if (++t->st.live > t->st.peak_live)
        t->st.peak_live = t->st.live;
    if (!c->handshake)
        open_conn(t, c);
    return c;
}

/* A SYN that starts a new connection on a 4-tuple still in use, open or
 * closed and lingering: the initiator's own SYN seen again is not one. */
static bool new_attempt(const struct owfp_conn *c, int side, const struct owfp_pkt *p)
{
    if (c->state == OWFP_CONN_HANDSHAKE)
        return false; /* during the handshake a new ISN just replaces the old */
    const struct owfp_conn_dir *d = &c->d[side];
    return side != 0 || !d->isn_known || d->isn != p->seq;
}

/* The live list stays ordered by listed_us, and listed_us <= last_us <
 * listed_us + touch_step_us, which is what expiry relies on. */
static void touch(struct owfp_tracker *t, struct owfp_conn *c, uint64_t ts)
{
    if (ts > c->last_us)
        c->last_us = ts;
    c->touched = t->st.segments;
    if (c->state == OWFP_CONN_CLOSED || t->live.newest == c)
        return;
    if (c->last_us - c->listed_us < t->cfg.touch_step_us)
        return;
    c->listed_us = c->last_us;
    list_unlink(&t->live, c);
    list_append(&t->live, c);
}

/* ---- per segment ---------------------------------------------------------- */

/* Side `d` (peer `o`) sends a RST. Its next byte is known before it sends
 * any data too (ISN+1, or the peer's ACK when picked up mid-stream), and a
 * blind RST from a silent side must not pass just because it is silent. */
static bool rst_acceptable(const struct owfp_conn_dir *d, const struct owfp_conn_dir *o,
                           uint32_t seq)
{
    uint32_t next;
    if (d->started)
        next = d->r.base_seq + (uint32_t)d->r.next;
    else if (d->isn_known)
        next = d->isn + 1;
    else if (o->ack_known)
        next = o->last_ack;
    else
        return true; /* nothing tells where this side stands */
    uint32_t off = seq - next;
    return off <= RST_WINDOW || off >= 0u - RST_WINDOW;
}

static void on_rst(struct owfp_tracker *t, struct owfp_conn *c, int s, const struct owfp_pkt *p)
{
    t->st.rst_payload += p->payload_len;
    if (c->state == OWFP_CONN_HANDSHAKE) {
        /* Nothing is open yet: remember it, and let a handshake that goes
         * on regardless (a forged RST) win. */
        c->d[s].rst = true;
        return;
    }
    if (!rst_acceptable(&c->d[s], &c->d[1 - s], p->seq)) {
        t->st.rst_ignored++;
        return;
    }
    c->d[s].rst = true;
    flush_dir(t, c, 0);
    flush_dir(t, c, 1);
    report_fins(t, c);
    t->ev.rst(t->arg, c, s);
    close_conn(t, c, OWFP_END_RST);
}

/* Where a direction seen first mid-stream starts: at the peer's last ACK
 * when that lies shortly before, so the bytes between count as a hole. */
static uint32_t first_byte(const struct owfp_conn_dir *d, const struct owfp_conn_dir *o,
                           uint32_t seq)
{
    if (d->isn_known)
        return d->isn + 1;
    if (o->ack_known) {
        int64_t behind = (int32_t)(seq - o->last_ack);
        if (behind > 0 && behind <= LEADING_GAP_MAX)
            return o->last_ack;
    }
    return seq;
}

static void on_payload(struct owfp_tracker *t, struct owfp_conn *c, int s,
                       const struct owfp_pkt *p)
{
    struct owfp_conn_dir *d = &c->d[s], *o = &c->d[1 - s];
    uint8_t f = p->tcp_flags;
    uint32_t seq = p->seq + (f & OWFP_TCP_SYN ? 1 : 0);
    if (c->state == OWFP_CONN_HANDSHAKE) {
        if (!d->isn_known)
            return; /* e.g. a FIN forged before the SYN/ACK */
        open_conn(t, c);
    }
    start_dir(c, s, first_byte(d, o, seq));
    struct sink_ctx x = {t, c, s};
    if (p->payload_len)
        owfp_reasm_segment(&d->r, &t->cfg.reasm, seq, p->payload, p->payload_len,
                           reasm_flags(f), &g_sink, &x);
    if (f & OWFP_TCP_FIN)
        owfp_reasm_fin(&d->r, seq + p->payload_len + p->payload_cut);
}

static void on_ack(struct owfp_tracker *t, struct owfp_conn *c, int s, uint32_t ack)
{
    struct owfp_conn_dir *o = &c->d[1 - s];
    if (!o->started && o->isn_known)
        start_dir(c, 1 - s, o->isn + 1);
    struct sink_ctx x = {t, c, 1 - s};
    if (o->started)
        owfp_reasm_ack(&o->r, &t->cfg.reasm, ack, &g_sink, &x);
}

static void on_segment(struct owfp_tracker *t, struct owfp_conn *c, int s,
                       const struct owfp_pkt *p)
{
    struct owfp_conn_dir *d = &c->d[s], *o = &c->d[1 - s];
    uint8_t f = p->tcp_flags;
    d->packets++;
    d->payload += p->payload_len;
    if ((f & OWFP_TCP_SYN) && (!d->isn_known || c->state == OWFP_CONN_HANDSHAKE)) {
        d->isn = p->seq;
        d->isn_known = true;
    }
    if (f & OWFP_TCP_RST) {
        on_rst(t, c, s, p);
        return;
    }
    if (f & OWFP_TCP_ACK) {
        d->last_ack = p->ack;
        d->ack_known = true;
        /* The initiator acknowledges the responder's SYN: established. */
        if (c->state == OWFP_CONN_HANDSHAKE && s == 0 && o->isn_known && p->ack == o->isn + 1)
            open_conn(t, c);
    }
    if (p->payload_len || p->payload_cut || (f & OWFP_TCP_FIN))
        on_payload(t, c, s, p);
    if (!c->opened)
        return;
    if (f & OWFP_TCP_ACK)
        on_ack(t, c, s, p->ack);
    if (report_fins(t, c))
        close_conn(t, c, OWFP_END_FIN);
}

int owfp_tracker_segment(struct owfp_tracker *t, const struct owfp_pkt *p,
                         struct owfp_conn **conn)
{
    struct owfp_conn *dummy;
    if (!conn)
        conn = &dummy;
    *conn = NULL;
    t->st.segments++;
    if (p->ts_us > t->now_us)
        t->now_us = p->ts_us;
    struct owfp_conn_key k;
    bool src_is_a = make_key(p, &k);
    uint64_t h = key_hash(&k);
    struct owfp_conn *c = owfp_hmap_find(&t->table, h, key_eq, &k);
    bool syn_only = (p->tcp_flags & (OWFP_TCP_SYN | OWFP_TCP_ACK)) == OWFP_TCP_SYN;
    if (c) {
        int side = src_is_a == (c->initiator_is_a != 0) ? 0 : 1;
        bool fresh = syn_only && new_attempt(c, side, p);
        if (c->state == OWFP_CONN_CLOSED && !fresh) {
            *conn = c; /* a straggler of a finished connection */
            return 0;
        }
        if (fresh) {
            if (c->state != OWFP_CONN_CLOSED) {
                t->st.reused++;
                close_conn(t, c, OWFP_END_REUSED);
            }
            free_conn(t, c);
            c = NULL;
        }
    }
    if (!c) {
        if (p->tcp_flags & OWFP_TCP_RST) {
            t->st.strays++;
            t->st.rst_payload += p->payload_len;
            return 0;
        }
        c = new_conn(t, &k, h, src_is_a, p);
        if (!c)
            return -ENOMEM;
    }
    touch(t, c, p->ts_us);
    on_segment(t, c, src_is_a == (c->initiator_is_a != 0) ? 0 : 1, p);
    *conn = c;
    return 0;
}

/* ---- ending many at once ---------------------------------------------------- */

static bool due_push(struct owfp_tracker *t, size_t n, struct owfp_conn *c)
{
    if (n == t->due_cap) {
        size_t cap = t->due_cap ? t->due_cap * 2 : 64;
        struct owfp_conn **p = owfp_realloc(t->due, cap * sizeof(*p));
        if (!p)
            return false;
        t->due = p;
        t->due_cap = cap;
    }
    t->due[n] = c;
    return true;
}

static int by_touch(const void *a, const void *b)
{
    const struct owfp_conn *x = *(struct owfp_conn *const *)a, *y = *(struct owfp_conn *const *)b;
    return x->touched < y->touched ? -1 : x->touched > y->touched;
}

/* Ends the gathered connections in the order of their last packets, the
 * order an exactly kept list would give. */
static void end_due(struct owfp_tracker *t, size_t n, enum owfp_conn_end why)
{
    if (!n)
        return; /* t->due may still be NULL, which qsort must not see */
    qsort(t->due, n, sizeof(*t->due), by_touch);
    for (size_t i = 0; i < n; i++) {
        if (why == OWFP_END_TIMEOUT)
            t->st.timed_out++;
        close_conn(t, t->due[i], why);
    }
}

static bool idle_due(const struct owfp_tracker *t, const struct owfp_conn *c, uint64_t now_us)
{
    return c->last_us + t->cfg.idle_timeout_us <= now_us;
}

/* The live list is ordered by listed_us, and last_us runs up to a touch
 * step ahead of it: every connection due lies among those listed a
 * timeout ago, but not every one of those is due. */
static void expire_live(struct owfp_tracker *t, uint64_t now_us)
{
    size_t n = 0;
    struct owfp_conn *c = t->live.oldest;
    for (; c && c->listed_us + t->cfg.idle_timeout_us <= now_us; c = c->newer)
        if (idle_due(t, c, now_us) && !due_push(t, n++, c))
            break;
    if (c && c->listed_us + t->cfg.idle_timeout_us <= now_us) {
        /* Out of memory: end the due ones as listed, in order of listing. */
        for (c = t->live.oldest; c && idle_due(t, c, now_us); c = t->live.oldest) {
            t->st.timed_out++;
            close_conn(t, c, OWFP_END_TIMEOUT);
        }
        return;
    }
    end_due(t, n, OWFP_END_TIMEOUT);
}

void owfp_tracker_expire(struct owfp_tracker *t, uint64_t now_us)
{
    if (now_us > t->now_us)
        t->now_us = now_us;
    struct owfp_conn *c;
    while ((c = t->closed.oldest) && c->listed_us + t->cfg.closed_linger_us <= now_us)
        free_conn(t, c);
    expire_live(t, now_us);
}

struct owfp_tracker *owfp_tracker_new(const struct owfp_tracker_config *cfg,
                                      const struct owfp_track_events *ev, void *arg)
{
    struct owfp_tracker *t = owfp_calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->cfg = *cfg;
    if (!t->cfg.idle_timeout_us)
        t->cfg.idle_timeout_us = DEFAULT_IDLE_US;
    if (!t->cfg.closed_linger_us)
        t->cfg.closed_linger_us = DEFAULT_LINGER_US;
    if (!t->cfg.max_closed)
        t->cfg.max_closed = DEFAULT_MAX_CLOSED;
    /* Eviction takes the oldest listed, so it needs an exact list. */
    if (t->cfg.touch_step_us > t->cfg.idle_timeout_us / 8 || t->cfg.max_conns)
        t->cfg.touch_step_us = t->cfg.max_conns ? 0 : t->cfg.idle_timeout_us / 8;
    t->ev = *ev;
    t->arg = arg;
    return t;
}

void owfp_tracker_close_all(struct owfp_tracker *t)
{
    size_t n = 0;
    for (struct owfp_conn *c = t->live.oldest; c; c = c->newer) {
        if (!due_push(t, n++, c)) {
            n = 0; /* out of memory: in order of listing */
            break;
        }
    }
    end_due(t, n, OWFP_END_CAPTURE);
    while (t->live.oldest)
        close_conn(t, t->live.oldest, OWFP_END_CAPTURE);
}

void owfp_tracker_free(struct owfp_tracker *t)
{
    if (!t)
        return;
    owfp_tracker_close_all(t);
    while (t->closed.oldest)
        free_conn(t, t->closed.oldest);
    owfp_hmap_free(&t->table);
    owfp_free(t->due);
    owfp_free(t);
}

const struct owfp_tracker_stats *owfp_tracker_stats(const struct owfp_tracker *t)
{
    return &t->st;
}

/* ---- looking ahead ------------------------------------------------------------ */

void owfp_tracker_hint(const struct owfp_tracker *t, const struct owfp_pkt *p,
                       struct owfp_tracker_hint *h)
{
    make_key(p, &h->key);
    h->hash = key_hash(&h->key);
    h->conn = NULL;
    h->added = UINT64_MAX; /* not looked up yet */
    owfp_hmap_prefetch(&t->table, h->hash);
}

void owfp_tracker_hint_fetch(const struct owfp_tracker *t, const struct owfp_tracker_hint *h)
{
    const struct owfp_conn *c = owfp_hmap_peek(&t->table, h->hash);
    if (c) {
        __builtin_prefetch(c);
        fetch_conn(c);
    }
}

/* Looked up again only when the answer may have changed: a connection
 * found stays valid until one is removed from the table (none is freed
 * before), and one not found may be there once one was added. */
struct owfp_conn *owfp_tracker_hint_conn(const struct owfp_tracker *t, struct owfp_tracker_hint *h)
{
    if (h->conn ? h->removed != t->removed : h->added != t->added) {
        h->conn = owfp_hmap_find(&t->table, h->hash, key_eq_plain, &h->key);
        h->added = t->added;
        h->removed = t->removed;
    }
    return h->conn;
}
