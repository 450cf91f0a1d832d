/*
 * Framework objects (wdf_object.h): creation with attributes, handle checks,
 * contexts, and deletion of an object with its children. One list under one
 * lock holds every live object; drivers have few (a device, a key now and
 * then), so lookups walk it.
 */
#include <pthread.h>
#include <string.h>

#include "common/alloc.h"
#include "kernel/wdf_object.h"

static pthread_mutex_t objects_mu = PTHREAD_MUTEX_INITIALIZER;
static struct owfp_wdf_object *objects; /* under objects_mu */

const char *owfp_wdf_type_name(enum owfp_wdf_type type)
{
    static const char *const names[OWFP_WDF_TYPES] = {"WDFDRIVER", "WDFDEVICE", "WDFDEVICE_INIT",
                                                      "WDFKEY", "WDFSTRING"};
    return type < OWFP_WDF_TYPES ? names[type] : "framework object";
}

/* objects_mu held. An object stays on the list while it is being deleted:
 * its cleanup and destroy callbacks may still reach its context. */
static bool on_list(const void *o)
{
    for (const struct owfp_wdf_object *p = objects; p; p = p->next)
        if (p == o)
            return true;
    return false;
}

/* objects_mu held. */
static bool is_live(const struct owfp_wdf_object *o)
{
    return on_list(o) && !o->deleting;
}

static NTSTATUS attach_context(struct owfp_wdf_object *o, PCWDF_OBJECT_CONTEXT_TYPE_INFO info,
                               size_t size_override)
{
    if (!info)
        return STATUS_SUCCESS;
    if (info->Size != sizeof(WDF_OBJECT_CONTEXT_TYPE_INFO) || !info->ContextName)
        return STATUS_INVALID_PARAMETER;
    size_t size = size_override > info->ContextSize ? size_override : info->ContextSize;
    size_t name_len = strlen(info->ContextName);
    o->context = owfp_calloc(1, size ? size : 1);
    o->context_name = owfp_malloc(name_len + 1);
    if (!o->context || !o->context_name)
        return STATUS_INSUFFICIENT_RESOURCES;
    memcpy(o->context_name, info->ContextName, name_len + 1);
    return STATUS_SUCCESS;
}

NTSTATUS owfp_wdf_create(enum owfp_wdf_type type, size_t size, struct owfp_wdf_object *driver,
                         const WDF_OBJECT_ATTRIBUTES *attributes, struct owfp_wdf_object **out)
{
    *out = NULL;
    if (attributes && attributes->Size != sizeof(WDF_OBJECT_ATTRIBUTES))
        return STATUS_INFO_LENGTH_MISMATCH;
    struct owfp_wdf_object *parent = driver;
    if (attributes && attributes->ParentObject) {
        pthread_mutex_lock(&objects_mu);
        parent = attributes->ParentObject;
        bool ok = driver && is_live(parent) && parent->driver == driver &&
                  parent->type != OWFP_WDF_DEVICE_INIT;
        pthread_mutex_unlock(&objects_mu);
        if (!ok)
            return STATUS_INVALID_PARAMETER;
    }
    struct owfp_wdf_object *o = owfp_calloc(1, size);
    if (!o)
        return STATUS_INSUFFICIENT_RESOURCES;
    o->type = type;
    o->driver = driver ? driver : o;
    o->parent = driver ? parent : NULL;
    if (attributes) {
        o->cleanup = attributes->EvtCleanupCallback;
        o->destroy = attributes->EvtDestroyCallback;
        NTSTATUS st = attach_context(o, attributes->ContextTypeInfo,
                                     attributes->ContextSizeOverride);
        if (!NT_SUCCESS(st)) {
            owfp_wdf_discard(o);
            return st;
        }
    }
    *out = o;
    return STATUS_SUCCESS;
}

void owfp_wdf_publish(struct owfp_wdf_object *o)
{
    pthread_mutex_lock(&objects_mu);
    o->next = objects;
    objects = o;
    pthread_mutex_unlock(&objects_mu);
}

void owfp_wdf_discard(struct owfp_wdf_object *o)
{
    if (!o)
        return;
    owfp_free(o->context);
    owfp_free(o->context_name);
    owfp_free(o);
}

struct owfp_wdf_object *owfp_wdf_lookup(const void *handle, enum owfp_wdf_type type,
                                        const char *api)
{
    pthread_mutex_lock(&objects_mu);
    struct owfp_wdf_object *o = NULL;
    if (handle && on_list(handle)) {
        o = (struct owfp_wdf_object *)handle;
        if (type != OWFP_WDF_ANY && o->type != type)
            o = NULL;
    }
    pthread_mutex_unlock(&objects_mu);
    if (!o)
        owfp_kernel_finding("%s: %p is not a live %s handle", api, handle,
                            type == OWFP_WDF_ANY ? "framework object" : owfp_wdf_type_name(type));
    return o;
}

struct owfp_wdf_object *owfp_wdf_find(enum owfp_wdf_type type,
                                      bool (*match)(const struct owfp_wdf_object *o,
                                                    const void *arg),
                                      const void *arg)
{
    pthread_mutex_lock(&objects_mu);
    struct owfp_wdf_object *o = objects;
    while (o && (o->deleting || o->type != type || !match(o, arg)))
        o = o->next;
    pthread_mutex_unlock(&objects_mu);
    return o;
}

void owfp_wdf_count_children(const struct owfp_wdf_object *o, unsigned long counts[OWFP_WDF_TYPES])
{
    pthread_mutex_lock(&objects_mu);
    for (const struct owfp_wdf_object *p = objects; p; p = p->next)
        if (p->parent == o && !p->deleting)
            counts[p->type]++;
    pthread_mutex_unlock(&objects_mu);
}

/* A child of `o` not yet being deleted, marked as being deleted; NULL when
 * none is left. */
static struct owfp_wdf_object *claim_child(const struct owfp_wdf_object *o)
{
    pthread_mutex_lock(&objects_mu);
    struct owfp_wdf_object *p = objects;
    while (p && (p->parent != o || p->deleting))
        p = p->next;
    if (p)
        p->deleting = true;
    pthread_mutex_unlock(&objects_mu);
    return p;
}

static void release(struct owfp_wdf_object *o)
{
    switch (o->type) {
    case OWFP_WDF_DRIVER:
        owfp_wdf_driver_release(o);
        break;
    case OWFP_WDF_DEVICE:
        owfp_wdf_device_release(o);
        break;
    case OWFP_WDF_DEVICE_INIT:
        owfp_wdf_device_init_release(o);
        break;
    case OWFP_WDF_KEY:
        owfp_wdf_key_release(o);
        break;
    case OWFP_WDF_STRING:
        owfp_wdf_string_release(o);
        break;
    default:
        break;
    }
}

/* `o` is marked as being deleted by the caller. */
static void delete_claimed(struct owfp_wdf_object *o)
{
    for (struct owfp_wdf_object *child; (child = claim_child(o)) != NULL;)
        delete_claimed(child);
    if (o->cleanup)
        o->cleanup((WDFOBJECT)o);
    release(o);
    if (o->destroy)
        o->destroy((WDFOBJECT)o);
    pthread_mutex_lock(&objects_mu);
    struct owfp_wdf_object **q = &objects;
    while (*q && *q != o)
        q = &(*q)->next;
    if (*q)
        *q = o->next;
    pthread_mutex_unlock(&objects_mu);
    owfp_wdf_discard(o);
}

void owfp_wdf_delete(struct owfp_wdf_object *o)
{
    pthread_mutex_lock(&objects_mu);
    bool mine = is_live(o);
    if (mine)
        o->deleting = true;
    pthread_mutex_unlock(&objects_mu);
    if (mine)
        delete_claimed(o);
}

PVOID WdfObjectGetTypedContextWorker(WDFOBJECT Handle, PCWDF_OBJECT_CONTEXT_TYPE_INFO TypeInfo)
{
    struct owfp_wdf_object *o = owfp_wdf_lookup(Handle, OWFP_WDF_ANY, "WdfObjectGetTypedContext");
    if (!o || !TypeInfo || !TypeInfo->ContextName || !o->context_name)
        return NULL;
    return strcmp(o->context_name, TypeInfo->ContextName) == 0 ? o->context : NULL;
}

VOID WdfObjectDelete(WDFOBJECT Object)
{
    struct owfp_wdf_object *o = owfp_wdf_lookup(Object, OWFP_WDF_ANY, "WdfObjectDelete");
    if (!o)
        return;
    KIRQL max = o->type == OWFP_WDF_DEVICE ? PASSIVE_LEVEL : DISPATCH_LEVEL;
    if (!owfp_irql_check_max(max, "WdfObjectDelete"))
        return;
    if (o->type == OWFP_WDF_DRIVER || o->type == OWFP_WDF_DEVICE_INIT) {
        /* The framework deletes drivers itself; an init structure is freed
         * with WdfDeviceInitFree. Windows would bug-check. */
        owfp_kernel_finding("WdfObjectDelete: a %s cannot be deleted by the driver",
                            owfp_wdf_type_name(o->type));
        return;
    }
    owfp_wdf_delete(o);
}
