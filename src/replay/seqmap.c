/* Original-to-output stream offsets of one direction (seqmap.h). */
#include "replay/seqmap.h"

#include <stdbool.h>
#include <string.h>

void owfp_seqmap_init(struct owfp_seqmap *m)
{
    m->pt[0] = (struct owfp_seqmap_point){0, 0};
    m->n = 1;
}

static int64_t shift(const struct owfp_seqmap_point *p)
{
    return (int64_t)(p->out - p->in);
}

/* Whether `next` replaces the last point rather than following it: at the
 * same `in` the later output wins (the bytes written before it at that
 * point came from the same input), and a point that moves by the same
 * amount as the last places every offset as the last did. */
static bool replaces_last(const struct owfp_seqmap *m, const struct owfp_seqmap_point *next)
{
    const struct owfp_seqmap_point *last = &m->pt[m->n - 1];
    return last->in == next->in || shift(last) == shift(next);
}

void owfp_seqmap_note(struct owfp_seqmap *m, uint64_t in, uint64_t out)
{
    struct owfp_seqmap_point p = {in, out};
    if (replaces_last(m, &p)) {
        m->pt[m->n - 1] = p;
        return;
    }
    if (m->n == OWFP_SEQMAP_POINTS) {
        memmove(m->pt, m->pt + 1, (OWFP_SEQMAP_POINTS - 1) * sizeof(m->pt[0]));
        m->n--;
    }
    m->pt[m->n++] = p;
}

/* `back` bytes before point p's output offset, not below 0. */
static uint64_t before(const struct owfp_seqmap_point *p, uint64_t back)
{
    return back < p->out ? p->out - back : 0;
}

uint64_t owfp_seqmap_out(const struct owfp_seqmap *m, uint64_t in)
{
    unsigned i = m->n;
    while (i > 0 && m->pt[i - 1].in > in)
        i--;
    if (i == 0)
        return before(&m->pt[0], m->pt[0].in - in);
    const struct owfp_seqmap_point *at = &m->pt[i - 1];
    if (at->in == in || i == m->n)
        return at->out;
    uint64_t aligned = before(&m->pt[i], m->pt[i].in - in);
    return aligned > at->out ? aligned : at->out;
}
