/* The add/delete steps providers, sublayers and callout objects share. */
#ifndef OPENWFP_ENGINE_OBJECT_OPS_H
#define OPENWFP_ENGINE_OBJECT_OPS_H

#include "session.h"

/* Links a freshly built object into the store inside the call's
 * transaction; frees it on failure. */
NTSTATUS owfp_object_add(struct owfp_mgmt_call *call, enum owfp_object_kind kind,
                         struct owfp_object *o);
/* Deletes an object found by key (NULL = not found -> `not_found`). */
NTSTATUS owfp_object_delete(struct owfp_mgmt_call *call, enum owfp_object_kind kind,
                            struct owfp_object *o, NTSTATUS not_found);
/* Fills in key (generated when zero) and dynamic owner. */
NTSTATUS owfp_object_init(struct owfp_mgmt_call *call, struct owfp_object *o, const GUID *key);

#endif
