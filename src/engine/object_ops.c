#include "object_ops.h"

#include "common/alloc.h"

NTSTATUS owfp_object_init(struct owfp_mgmt_call *call, struct owfp_object *o, const GUID *key)
{
    if (owfp_guid_is_zero(key)) {
        NTSTATUS st = owfp_guid_generate(&o->key);
        if (st != STATUS_SUCCESS)
            return st;
    } else {
        o->key = *key;
    }
    if (call->session->flags & FWPM_SESSION_FLAG_DYNAMIC)
        o->dynamic_owner = call->session;
    return STATUS_SUCCESS;
}

static struct owfp_provider *provider_of(enum owfp_object_kind kind, struct owfp_object *o)
{
    if (kind == OWFP_K_SUBLAYER)
        return ((struct owfp_sublayer *)o)->provider;
    if (kind == OWFP_K_CALLOUT)
        return ((struct owfp_mgmt_callout *)o)->provider;
    return NULL;
}

NTSTATUS owfp_object_add(struct owfp_mgmt_call *call, enum owfp_object_kind kind,
                         struct owfp_object *o)
{
    struct owfp_store *st = call->e->store;
    if (!owfp_journal_reserve(st) || !owfp_store_link(st, kind, o)) {
        owfp_object_free(kind, o);
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    struct owfp_provider *p = provider_of(kind, o);
    if (p)
        p->obj.refs++;
    owfp_journal_record(st, OWFP_J_ADD, kind, o);
    return STATUS_SUCCESS;
}

NTSTATUS owfp_object_delete(struct owfp_mgmt_call *call, enum owfp_object_kind kind,
                            struct owfp_object *o, NTSTATUS not_found)
{
    if (!o)
        return not_found;
    NTSTATUS st = owfp_mgmt_may_delete(call->session, o);
    if (st != STATUS_SUCCESS)
        return st;
    if (o->refs)
        return STATUS_FWP_IN_USE; /* spec M6 */
    if (!owfp_journal_reserve(call->e->store))
        return STATUS_INSUFFICIENT_RESOURCES;
    owfp_store_unlink(call->e->store, kind, o);
    struct owfp_provider *p = provider_of(kind, o);
    if (p)
        p->obj.refs--;
    owfp_journal_record(call->e->store, OWFP_J_DELETE, kind, o);
    return STATUS_SUCCESS;
}
