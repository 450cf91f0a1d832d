/*
 * IPv4 and IPv6 fragment reassembly; the policy is described in defrag.h.
 *
 * A datagram in progress keeps its bytes as a list of non-overlapping
 * pieces sorted by offset. A new fragment only fills the holes between the
 * pieces already held, which is what makes the first copy win and makes
 * "complete" simply "held bytes == total length".
 */
#include "replay/defrag.h"

#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_DATAGRAMS 4096u
#define DEFAULT_MAX_FRAG_BYTES (64ull << 20)
#define DEFAULT_TIMEOUT_US (30ull * 1000000u)
/* Hash buckets are sized from max_datagrams up to this; beyond it chains
 * just get longer. */
#define MAX_BUCKETS (1u << 20)

struct piece {
    struct piece *next;
    uint32_t off, len;
    uint8_t data[];
};

struct dgram {
    struct owfp_defrag_key key;
    uint64_t hash;
    struct dgram *chain;          /* next in the hash bucket */
    struct dgram *older, *newer;  /* age list */
    uint64_t expires;             /* first capture time at which it is gone */
    struct piece *head, *tail;
    uint64_t charged;             /* bytes counted against max_frag_bytes */
    uint32_t held;                /* bytes held (pieces never overlap) */
    uint32_t max_end;             /* highest end offset seen */
    uint32_t total;               /* valid when has_total */
    uint32_t nfrags;              /* fragments taken in */
    bool has_total;
    bool has_first;
    uint8_t next_hdr;
};

struct owfp_defrag {
    struct owfp_decode_stats *stats;
    struct dgram **buckets;
    uint32_t mask;
    uint32_t count, max_count;
    uint64_t used, max_bytes;
    uint64_t timeout;
    struct dgram *oldest, *newest;
    uint8_t out[OWFP_DEFRAG_MAX_DATAGRAM];
};

static uint32_t bucket_count(uint32_t max_datagrams)
{
    uint32_t n = 16;
    while (n < max_datagrams && n < MAX_BUCKETS)
        n <<= 1;
    return n;
}

struct owfp_defrag *owfp_defrag_new(const struct owfp_decoder_config *cfg,
                                    struct owfp_decode_stats *stats)
{
    struct owfp_defrag *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return NULL;
    f->stats = stats;
    f->max_count = cfg && cfg->max_datagrams ? cfg->max_datagrams : DEFAULT_MAX_DATAGRAMS;
    f->max_bytes = cfg && cfg->max_frag_bytes ? cfg->max_frag_bytes : DEFAULT_MAX_FRAG_BYTES;
    f->timeout = cfg && cfg->frag_timeout_us ? cfg->frag_timeout_us : DEFAULT_TIMEOUT_US;
    uint32_t n = bucket_count(f->max_count);
    f->buckets = calloc(n, sizeof(*f->buckets));
    if (f->buckets == NULL) {
        free(f);
        return NULL;
    }
    f->mask = n - 1;
    return f;
}

static void free_pieces(struct dgram *g)
{
    struct piece *p = g->head;
    while (p != NULL) {
        struct piece *next = p->next;
        free(p);
        p = next;
    }
}

void owfp_defrag_free(struct owfp_defrag *f)
{
    if (f == NULL)
        return;
    struct dgram *g = f->oldest;
    while (g != NULL) {
        struct dgram *newer = g->newer;
        free_pieces(g);
        free(g);
        g = newer;
    }
    free(f->buckets);
    free(f);
}

/* FNV-1a: the key is small and only fragments pay for it. */
static uint64_t key_hash(const struct owfp_defrag_key *k)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (unsigned i = 0; i < 16; i++)
        h = (h ^ k->src[i]) * 0x100000001b3ull;
    for (unsigned i = 0; i < 16; i++)
        h = (h ^ k->dst[i]) * 0x100000001b3ull;
    uint8_t tail[6] = {(uint8_t)k->id, (uint8_t)(k->id >> 8), (uint8_t)(k->id >> 16),
                       (uint8_t)(k->id >> 24), k->version, k->proto};
    for (unsigned i = 0; i < sizeof(tail); i++)
        h = (h ^ tail[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

static bool key_equal(const struct owfp_defrag_key *a, const struct owfp_defrag_key *b)
{
    return a->id == b->id && a->version == b->version && a->proto == b->proto &&
           memcmp(a->src, b->src, 16) == 0 && memcmp(a->dst, b->dst, 16) == 0;
}

static struct dgram *find(const struct owfp_defrag *f, const struct owfp_defrag_key *k, uint64_t h)
{
    for (struct dgram *g = f->buckets[h & f->mask]; g != NULL; g = g->chain)
        if (g->hash == h && key_equal(&g->key, k))
            return g;
    return NULL;
}

/* Unlinks and frees a datagram; `dropped` says whether its fragments count
 * as dropped (everything but a completed datagram). */
static void release(struct owfp_defrag *f, struct dgram *g, bool dropped)
{
    struct dgram **link = &f->buckets[g->hash & f->mask];
    while (*link != g)
        link = &(*link)->chain;
    *link = g->chain;

    if (g->older != NULL)
        g->older->newer = g->newer;
    else
        f->oldest = g->newer;
    if (g->newer != NULL)
        g->newer->older = g->older;
    else
        f->newest = g->older;

    if (dropped)
        f->stats->fragments_dropped += g->nfrags;
    f->used -= g->charged;
    f->count--;
    free_pieces(g);
    free(g);
}

void owfp_defrag_expire(struct owfp_defrag *f, uint64_t now_us)
{
    /* The age list is in arrival order; a capture whose clock steps back
     * can leave a younger deadline behind an older one, which only delays
     * that expiry until the one in front goes. */
    while (f->oldest != NULL && now_us >= f->oldest->expires)
        release(f, f->oldest, true);
}

uint64_t owfp_defrag_deadline(const struct owfp_defrag *f)
{
    return f->oldest != NULL ? f->oldest->expires : UINT64_MAX;
}

static struct dgram *create(struct owfp_defrag *f, const struct owfp_defrag_key *k, uint64_t h,
                            uint64_t ts_us)
{
    if (f->count >= f->max_count)
        release(f, f->oldest, true);
    struct dgram *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return NULL;
    g->key = *k;
    g->hash = h;
    /* Gone once more than `timeout` has passed since the first fragment. */
    uint64_t life = f->timeout < UINT64_MAX ? f->timeout + 1 : UINT64_MAX;
    g->expires = ts_us > UINT64_MAX - life ? UINT64_MAX : ts_us + life;
    g->chain = f->buckets[h & f->mask];
    f->buckets[h & f->mask] = g;
    g->older = f->newest;
    if (f->newest != NULL)
        f->newest->newer = g;
    else
        f->oldest = g;
    f->newest = g;
    f->count++;
    return g;
}

/* Where the walk over a datagram's pieces may start for a fragment that
 * begins at `start`: after the tail when it lies wholly before, which is
 * the common in-order case and makes it O(1). */
static struct piece **walk_start(struct dgram *g, uint32_t start)
{
    if (g->tail != NULL && g->tail->off + g->tail->len <= start)
        return &g->tail->next;
    return &g->head;
}

/* Counts the bytes of [start, end) not yet held and in how many pieces
 * they would be stored. */
static void count_new(struct dgram *g, uint32_t start, uint32_t end, uint32_t *bytes,
                      uint32_t *pieces)
{
    uint32_t pos = start;
    *bytes = 0;
    *pieces = 0;
    for (struct piece *cur = *walk_start(g, start); pos < end; cur = cur->next) {
        if (cur == NULL || cur->off >= end) {
            *bytes += end - pos;
            *pieces += 1;
            return;
        }
        if (cur->off > pos) {
            *bytes += cur->off - pos;
            *pieces += 1;
        }
        if (cur->off + cur->len > pos)
            pos = cur->off + cur->len;
    }
}

/* Stores the bytes of [start, end) that are not held yet; `src` holds
 * the fragment's bytes from `start`. */
static bool fill_holes(struct dgram *g, const uint8_t *src, uint32_t start, uint32_t end)
{
    uint32_t pos = start;
    struct piece **link = walk_start(g, start);
    while (pos < end) {
        struct piece *cur = *link;
        if (cur != NULL && cur->off <= pos) {
            if (cur->off + cur->len > pos)
                pos = cur->off + cur->len;
            link = &cur->next;
            continue;
        }
        uint32_t stop = (cur == NULL || cur->off >= end) ? end : cur->off;
        struct piece *p = malloc(sizeof(*p) + (stop - pos));
        if (p == NULL)
            return false;
        p->off = pos;
        p->len = stop - pos;
        memcpy(p->data, src + (pos - start), p->len);
        p->next = cur;
        *link = p;
        if (cur == NULL)
            g->tail = p;
        link = &p->next;
        pos = stop;
    }
    return true;
}

/* Evicts the oldest datagrams other than `keep` until `need` more bytes
 * fit the budget. */
static bool make_room(struct owfp_defrag *f, uint64_t need, const struct dgram *keep)
{
    while (f->used + need > f->max_bytes) {
        struct dgram *victim = f->oldest;
        if (victim == keep)
            victim = victim->newer;
        if (victim == NULL)
            return false;
        release(f, victim, true);
    }
    return true;
}

/* Whether a fragment contradicts what its datagram already knows about
 * where it ends. */
static bool conflicts(const struct dgram *g, const struct owfp_defrag_frag *fr, uint32_t end)
{
    if (!fr->more)
        return (g->has_total && g->total != end) || g->max_end > end;
    return g->has_total && end > g->total;
}

static void assemble(struct owfp_defrag *f, struct dgram *g, const uint8_t **data, uint32_t *len,
                     uint8_t *next_hdr)
{
    for (struct piece *p = g->head; p != NULL; p = p->next)
        memcpy(f->out + p->off, p->data, p->len);
    *data = f->out;
    *len = g->total;
    *next_hdr = g->key.version == 4 ? g->key.proto : g->next_hdr;
    f->stats->datagrams_reassembled++;
    release(f, g, false);
}

static enum owfp_defrag_result drop_with(struct owfp_defrag *f, struct dgram *g)
{
    release(f, g, true);
    f->stats->fragments_dropped++; /* the fragment that caused it */
    return OWFP_DEFRAG_DROPPED;
}

enum owfp_defrag_result owfp_defrag_add(struct owfp_defrag *f, const struct owfp_defrag_key *key,
                                        const struct owfp_defrag_frag *fr, uint64_t ts_us,
                                        const uint8_t **data, uint32_t *len, uint8_t *next_hdr)
{
    uint64_t end64 = (uint64_t)fr->offset + fr->len;
    /* Only the last fragment may end off an 8-byte boundary, and no
     * fragment may be empty unless it is the last one (offset = total). */
    if (end64 > OWFP_DEFRAG_MAX_DATAGRAM || (fr->more && (fr->len == 0 || fr->len % 8 != 0))) {
        f->stats->fragments_dropped++;
        return OWFP_DEFRAG_DROPPED;
    }
    uint32_t end = (uint32_t)end64;

    uint64_t h = key_hash(key);
    struct dgram *g = find(f, key, h);
    if (g == NULL) {
        g = create(f, key, h, ts_us);
        if (g == NULL) {
            f->stats->fragments_dropped++;
            return OWFP_DEFRAG_DROPPED;
        }
    }
    if (conflicts(g, fr, end))
        return drop_with(f, g);

    uint32_t bytes, pieces;
    count_new(g, fr->offset, end, &bytes, &pieces);
    uint64_t charge = bytes + (uint64_t)pieces * sizeof(struct piece);
    if (!make_room(f, charge, g) || !fill_holes(g, fr->data, fr->offset, end))
        return drop_with(f, g);

    g->charged += charge;
    f->used += charge;
    g->held += bytes;
    g->nfrags++;
    if (end > g->max_end)
        g->max_end = end;
    if (!fr->more) {
        g->has_total = true;
        g->total = end;
    }
    if (fr->offset == 0 && !g->has_first) {
        g->has_first = true;
        g->next_hdr = fr->next_hdr;
    }
    if (g->has_total && g->held == g->total) {
        assemble(f, g, data, len, next_hdr);
        return OWFP_DEFRAG_COMPLETE;
    }
    return OWFP_DEFRAG_HELD;
}
