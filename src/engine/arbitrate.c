#include "arbitrate.h"

#include "callout_registry.h"
#include "filter_index.h"
#include "layers.h"
#include "store.h"
#include "view.h"

/* What one filter contributes inside its sublayer. */
enum outcome {
    O_SKIP,     /* not applicable: continue with the next filter */
    O_CONTINUE, /* evaluated, no decision */
    O_PERMIT,
    O_BLOCK,
};

struct decision {
    enum outcome outcome;
    bool hard;
    bool callout_block; /* a BLOCK written by a callout (may veto, A5) */
    bool absorb;
    uint64_t filter_id;
};

/* Spec A9: a callout's answer as the filter's action type lets it count. */
static enum outcome interpret(uint32_t filter_action, uint32_t answer)
{
    switch (filter_action) {
    case FWP_ACTION_CALLOUT_TERMINATING:
        return answer == FWP_ACTION_PERMIT ? O_PERMIT : O_BLOCK;
    case FWP_ACTION_CALLOUT_INSPECTION:
        return O_CONTINUE;
    default: /* CALLOUT_UNKNOWN; anything but PERMIT/BLOCK continues (Q10) */
        return answer == FWP_ACTION_PERMIT ? O_PERMIT
               : answer == FWP_ACTION_BLOCK ? O_BLOCK
                                             : O_CONTINUE;
    }
}

/* Spec R5: a filter whose callout is not registered. */
static enum outcome unregistered(const struct owfp_filter *f)
{
    if (f->rt.action.type == FWP_ACTION_CALLOUT_INSPECTION)
        return O_SKIP;
    return f->rt.flags & FWPS_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED ? O_PERMIT : O_BLOCK;
}

static void call_callout(struct owfp_engine *e, const struct owfp_classify_args *a,
                         const struct owfp_filter *f, bool right, struct decision *d)
{
    struct owfp_callout *c = owfp_callout_get(e, f->rt.action.calloutId);
    if (!c) {
        d->outcome = unregistered(f);
        return;
    }
    const struct owfp_layer_desc *layer = owfp_layer_by_id(a->layer_id);
    uint64_t flow_ctx = 0;
    bool has_ctx = a->flow && layer->flow_capable &&
                   owfp_flow_context(a->flow, a->layer_id, c->id, &flow_ctx);
    /* Spec F9: without a context the filter does not apply (not a BLOCK). */
    if ((c->flags & FWP_CALLOUT_FLAG_CONDITIONAL_ON_FLOW) && a->flow && layer->flow_capable &&
        !has_ctx) {
        d->outcome = O_SKIP;
        return;
    }
    /* Spec C3, Q11: rights as in force, action 0 as observed on Windows. */
    FWPS_CLASSIFY_OUT0 out = {
        .actionType = 0,
        .filterId = f->rt.filterId,
        .rights = right ? FWPS_RIGHT_ACTION_WRITE : 0,
    };
    atomic_fetch_add_explicit(&e->classifies, 1, memory_order_relaxed);
    /* Spec C2: classifyFn1+ get an opaque, non-NULL classifyContext, as on
     * Windows; the classify's own arguments serve as that token. */
    owfp_callout_call_classify(c, a->in, a->meta, a->layer_data, a, &f->rt, flow_ctx, &out);
    d->outcome = interpret(f->rt.action.type, out.actionType);
    /* Spec A6: the callout clears the right to make its decision hard. */
    d->hard = !(out.rights & FWPS_RIGHT_ACTION_WRITE) ||
              (f->rt.flags & FWPS_FILTER_FLAG_CLEAR_ACTION_RIGHT);
    d->callout_block = d->outcome == O_BLOCK && out.actionType == FWP_ACTION_BLOCK;
    d->absorb = d->outcome == O_BLOCK && (out.flags & FWPS_CLASSIFY_OUT_FLAG_ABSORB);
}

static void evaluate(struct owfp_engine *e, const struct owfp_classify_args *a,
                     const struct owfp_filter *f, bool right, struct decision *d)
{
    *d = (struct decision){.filter_id = f->rt.filterId};
    switch (f->rt.action.type) {
    case FWP_ACTION_PERMIT:
        d->outcome = O_PERMIT;
        d->hard = f->rt.flags & FWPS_FILTER_FLAG_CLEAR_ACTION_RIGHT;
        return;
    case FWP_ACTION_BLOCK:
        d->outcome = O_BLOCK;
        d->hard = true; /* spec A4: a static BLOCK is hard */
        return;
    case FWP_ACTION_CONTINUE:
        d->outcome = O_CONTINUE;
        return;
    default:
        call_callout(e, a, f, right, d);
        return;
    }
}

/* Spec A3, A4, A5: fold one sublayer's decision into the running verdict. */
static void combine(struct owfp_verdict *v, bool *decided, const struct decision *d)
{
    uint32_t action = d->outcome == O_PERMIT ? FWP_ACTION_PERMIT : FWP_ACTION_BLOCK;
    if (!*decided || !v->hard) {
        /* No decision yet, or a soft one: BLOCK overrides PERMIT; a PERMIT
         * only replaces a soft BLOCK. */
        if (*decided && v->action == FWP_ACTION_PERMIT && action == FWP_ACTION_PERMIT)
            v->hard = v->hard || d->hard;
        else
            *v = (struct owfp_verdict){action, d->hard, false, d->absorb, d->filter_id};
        *decided = true;
        return;
    }
    if (v->action == FWP_ACTION_PERMIT && d->callout_block)
        *v = (struct owfp_verdict){FWP_ACTION_BLOCK, true, true, d->absorb, d->filter_id};
}

void owfp_arbitrate(struct owfp_engine *e, const struct owfp_classify_args *a,
                    struct owfp_verdict *v)
{
    /* Spec A11: with no decision anywhere, traffic is permitted. */
    *v = (struct owfp_verdict){.action = FWP_ACTION_PERMIT};
    bool decided = false;
    const struct owfp_layer_view *view = owfp_view_current(e, a->layer_id);
    if (!view)
        return;
    if (a->flow)
        owfp_flow_classify_begin(a->flow);
    uint32_t nsub = owfp_view_sublayer_count(view);
    for (uint32_t s = 0; s < nsub; s++) {
        struct owfp_view_iter it;
        owfp_view_iter_init(&it, view, s, a->in);
        bool right = !decided || !v->hard;
        struct owfp_filter *f;
        while ((f = owfp_view_iter_next(&it))) {
            struct decision d;
            evaluate(e, a, f, right, &d);
            if (d.outcome == O_PERMIT || d.outcome == O_BLOCK) {
                combine(v, &decided, &d);
                break;
            }
        }
    }
    if (a->flow)
        owfp_flow_classify_end(a->flow);
}
