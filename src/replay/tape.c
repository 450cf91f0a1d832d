/* Fuzz tapes played as frames (tape.h). */
#include "replay/tape.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "replay/decode.h"
#include "replay/pcap_build.h"

#define SLOTS 8
#define MSS 1460
/* The longest frame a tape makes: IPv6 and TCP headers, no link layer, one
 * segment of payload. */
#define FRAME_MAX (40 + 20 + MSS)
#define T0_US (1700000000ull * 1000000u) /* a plausible capture clock */
#define FRAME_STEP_US 10
#define CLIENT_PORT_BASE 40000

static const uint16_t g_ports[15] = {80, 443, 8080, 25, 21, 22, 53, 110,
                                     143, 445, 3389, 8443, 1433, 5432, 6379};

/* One side of a connection. */
struct side {
    uint32_t next;     /* the sequence number of its next byte */
    uint8_t hold;      /* 0, 1: hold the next segment back, 2: and send it twice */
    uint32_t held_len; /* a frame held back (player.held), and */
    bool held_twice;   /* whether it goes out twice */
};

struct conn {
    bool used; /* opened before: a new connection takes the next client port */
    bool open;
    bool v6;
    uint8_t gen; /* how many connections the slot opened: picks the client port */
    uint16_t server_port;
    struct side s[2];
};

struct player {
    const uint8_t *p, *end;
    struct owfp_tape_sink *sink;
    uint64_t now_us;
    uint32_t opens; /* connections opened: each gets initial sequence numbers of its own */
    struct conn c[SLOTS];
    uint8_t frame[FRAME_MAX];
    uint8_t held[SLOTS][2][FRAME_MAX];
};

static bool more(const struct player *pl)
{
    return pl->p < pl->end;
}

static uint8_t byte(struct player *pl)
{
    return more(pl) ? *pl->p++ : 0;
}

static void emit(struct player *pl, const uint8_t *frame, uint32_t len)
{
    pl->now_us += FRAME_STEP_US;
    pl->sink->frame(pl->sink->arg, frame, len, pl->now_us);
}

static void tmpl(const struct player *pl, int slot, int side, struct owfp_seg_tmpl *t)
{
    const struct conn *c = &pl->c[slot];
    memset(t, 0, sizeof(*t));
    t->ip_version = c->v6 ? 6 : 4;
    t->ttl = 64;
    t->window = 65535;
    uint8_t hi = (uint8_t)(pl->sink->index >> 8), lo = (uint8_t)pl->sink->index;
    uint8_t client[16] = {10, hi, lo, 1}, server[16] = {10, 0, 0, 2};
    if (c->v6) {
        static const uint8_t net[16] = {0x20, 0x01, 0x0d, 0xb8};
        memcpy(client, net, 16);
        memcpy(server, net, 16);
        client[13] = hi;
        client[14] = lo;
        client[15] = 1;
        server[15] = 2;
    }
    uint16_t cport = (uint16_t)(CLIENT_PORT_BASE + slot * 256 + c->gen);
    memcpy(t->src, side ? server : client, 16);
    memcpy(t->dst, side ? client : server, 16);
    t->sport = side ? c->server_port : cport;
    t->dport = side ? cport : c->server_port;
}

/* Builds and sends one segment of `side` (or keeps it back, HOLD). */
static void segment(struct player *pl, int slot, int side, uint8_t flags, const uint8_t *data,
                    size_t len)
{
    struct conn *c = &pl->c[slot];
    struct side *me = &c->s[side];
    struct owfp_seg_tmpl t;
    tmpl(pl, slot, side, &t);
    struct owfp_build_seg s = {
        .seq = me->next,
        .ack = (flags & OWFP_TCP_ACK) ? c->s[1 - side].next : 0,
        .flags = flags,
        .payload = data,
        .len = len,
    };
    uint8_t *held = pl->held[slot][side];
    bool keep = me->hold && !me->held_len;
    uint8_t *buf = keep ? held : pl->frame;
    uint32_t n = (uint32_t)owfp_build_segment(buf, OWFP_TAPE_DLT, &t, &s);
    me->next += (uint32_t)len + ((flags & (OWFP_TCP_SYN | OWFP_TCP_FIN)) ? 1 : 0);
    if (keep) {
        me->held_len = n;
        me->held_twice = me->hold == 2;
        me->hold = 0;
        return;
    }
    emit(pl, buf, n);
    if (me->held_len) { /* the held one arrives after this one */
        emit(pl, held, me->held_len);
        if (me->held_twice)
            emit(pl, held, me->held_len);
        me->held_len = 0;
    }
}

static void release_held(struct player *pl, int slot)
{
    for (int side = 0; side < 2; side++) {
        struct side *me = &pl->c[slot].s[side];
        if (me->held_len)
            emit(pl, pl->held[slot][side], me->held_len);
        me->held_len = 0;
        me->hold = 0;
    }
}

static void open_conn(struct player *pl, int slot, uint8_t how, uint16_t port)
{
    struct conn *c = &pl->c[slot];
    release_held(pl, slot);
    uint8_t gen = c->used ? (uint8_t)(c->gen + !(how & 4)) : 0;
    memset(c, 0, sizeof(*c));
    c->used = c->open = true;
    c->v6 = how & 1;
    c->gen = gen;
    c->server_port = port;
    uint32_t n = pl->opens++;
    c->s[0].next = 0x10000000u * (uint32_t)(slot + 1) + n * 0x10000u;
    c->s[1].next = 0x80000000u + 0x01000000u * (uint32_t)slot + n * 0x10000u;
    if (how & 2)
        return; /* picked up mid-stream */
    segment(pl, slot, 0, OWFP_TCP_SYN, NULL, 0);
    segment(pl, slot, 1, OWFP_TCP_SYN | OWFP_TCP_ACK, NULL, 0);
    segment(pl, slot, 0, OWFP_TCP_ACK, NULL, 0);
}

/* A slot used before it was opened (or after its RST) opens as IPv4 to
 * port 80 with a handshake. */
static struct conn *conn_of(struct player *pl, int slot)
{
    if (!pl->c[slot].open)
        open_conn(pl, slot, 0, g_ports[0]);
    return &pl->c[slot];
}

static void data(struct player *pl, int slot, int side, bool wide, bool urgent)
{
    size_t len = byte(pl);
    if (wide)
        len |= (size_t)byte(pl) << 8;
    size_t avail = (size_t)(pl->end - pl->p);
    if (len > avail)
        len = avail;
    conn_of(pl, slot);
    const uint8_t *d = pl->p;
    pl->p += len;
    uint8_t flags = OWFP_TCP_ACK | (urgent ? OWFP_TCP_URG : 0);
    do { /* an empty DATA still sends a bare segment: a keep-alive of sorts */
        size_t n = len > MSS ? MSS : len;
        segment(pl, slot, side, flags | (n == len ? OWFP_TCP_PSH : 0), d, n);
        d += n;
        len -= n;
    } while (len);
}

/* CTRL: the slot bits say what; a slot, when needed, follows. */
static void ctrl(struct player *pl, int sub, int side, bool mod)
{
    switch (sub) {
    case OWFP_TAPE_OPEN: {
        uint8_t how = byte(pl), pi = byte(pl) & 15;
        uint16_t port = pi < 15 ? g_ports[pi] : byte(pl);
        if (pi == 15) /* a statement of its own: the two reads must be in order */
            port |= (uint16_t)(byte(pl) << 8);
        open_conn(pl, how & 7, how >> 3, port);
        break;
    }
    case OWFP_TAPE_TIME:
        pl->now_us += (uint64_t)byte(pl) * (mod ? 10000000u : 100000u);
        break;
    case OWFP_TAPE_ACK: {
        int slot = byte(pl) & 7;
        conn_of(pl, slot);
        segment(pl, slot, side, OWFP_TCP_ACK, NULL, 0);
        break;
    }
    default: /* reserved: nothing */
        break;
    }
}

static void play_op(struct player *pl, uint8_t op)
{
    int kind = op & 7, slot = (op >> 3) & 7, side = (op >> 6) & 1;
    bool mod = op & 0x80;
    switch (kind) {
    case OWFP_TAPE_DATA:
    case OWFP_TAPE_URGENT:
        data(pl, slot, side, mod, kind == OWFP_TAPE_URGENT);
        break;
    case OWFP_TAPE_FIN:
        conn_of(pl, slot);
        segment(pl, slot, side, OWFP_TCP_FIN | OWFP_TCP_ACK, NULL, 0);
        break;
    case OWFP_TAPE_RST:
        conn_of(pl, slot);
        segment(pl, slot, side, OWFP_TCP_RST | OWFP_TCP_ACK, NULL, 0);
        release_held(pl, slot);
        pl->c[slot].open = false;
        break;
    case OWFP_TAPE_HOLD:
        conn_of(pl, slot)->s[side].hold = mod ? 2 : 1;
        break;
    case OWFP_TAPE_GAP:
        conn_of(pl, slot)->s[side].next += (uint32_t)byte(pl) + 1;
        break;
    case OWFP_TAPE_WORK:
        pl->sink->work(pl->sink->arg, mod ? -1 : byte(pl));
        break;
    default: /* OWFP_TAPE_CTRL */
        ctrl(pl, slot, side, mod);
        break;
    }
}

int owfp_tape_play(const uint8_t *tape, size_t len, struct owfp_tape_sink *sink)
{
    struct player *pl = calloc(1, sizeof(*pl));
    if (!pl)
        return -1;
    pl->p = tape;
    pl->end = tape + len;
    pl->sink = sink;
    pl->now_us = sink->clock_us ? sink->clock_us : T0_US;
    while (more(pl))
        play_op(pl, byte(pl));
    for (int s = 0; s < SLOTS; s++)
        release_held(pl, s);
    sink->clock_us = pl->now_us;
    free(pl);
    return 0;
}
