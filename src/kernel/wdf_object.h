/*
 * What the files of the KMDF subset (wdf_*.c) share: every framework object
 * starts with this header, lives on one list while it exists (so a handle is
 * checked before it is used), belongs to one framework driver and has a
 * parent that takes it along when deleted.
 */
#ifndef OPENWFP_KERNEL_WDF_OBJECT_H
#define OPENWFP_KERNEL_WDF_OBJECT_H

#include <stdbool.h>

#include <wdf.h>

#include "kernel/kernel.h"

enum owfp_wdf_type {
    OWFP_WDF_DRIVER,
    OWFP_WDF_DEVICE,
    OWFP_WDF_DEVICE_INIT, /* not a WDFOBJECT, but tracked the same way */
    OWFP_WDF_KEY,
    OWFP_WDF_STRING,
    OWFP_WDF_TYPES,
    OWFP_WDF_ANY = OWFP_WDF_TYPES,
};

struct owfp_wdf_object {
    struct owfp_wdf_object *next; /* live objects, newest first */
    enum owfp_wdf_type type;
    struct owfp_wdf_object *driver; /* itself for a driver */
    struct owfp_wdf_object *parent; /* NULL for a driver */
    bool deleting;
    PFN_WDF_OBJECT_CONTEXT_CLEANUP cleanup;
    PFN_WDF_OBJECT_CONTEXT_DESTROY destroy;
    char *context_name; /* NULL without a context */
    void *context;
};

/* "WDFKEY" etc. */
const char *owfp_wdf_type_name(enum owfp_wdf_type type);

/* A zeroed object of `size` bytes (the header first) for `driver` (NULL when
 * creating the driver itself), with the callbacks, context and parent that
 * `attributes` ask for; the parent defaults to the driver. Not yet visible:
 * owfp_wdf_publish makes it so, owfp_wdf_discard undoes the creation.
 * STATUS_INFO_LENGTH_MISMATCH for a wrong attributes Size, INVALID_PARAMETER
 * for a parent that is not a live object of the same driver. */
NTSTATUS owfp_wdf_create(enum owfp_wdf_type type, size_t size, struct owfp_wdf_object *driver,
                         const WDF_OBJECT_ATTRIBUTES *attributes, struct owfp_wdf_object **out);
void owfp_wdf_publish(struct owfp_wdf_object *o);
void owfp_wdf_discard(struct owfp_wdf_object *o);

/* The live object `handle` of that type (or any type), or NULL after
 * recording "<api>: <handle> is not a live <TYPE> handle". No reference is
 * taken: as on Windows, a driver may not delete an object another of its
 * threads is using. */
struct owfp_wdf_object *owfp_wdf_lookup(const void *handle, enum owfp_wdf_type type,
                                        const char *api);

/* The newest live object of that type for which match(o, arg) holds. */
struct owfp_wdf_object *owfp_wdf_find(enum owfp_wdf_type type,
                                      bool (*match)(const struct owfp_wdf_object *o,
                                                    const void *arg),
                                      const void *arg);

/* The framework driver of the module `code` is in (wdf_driver.c); when that
 * cannot be told, the only framework driver there is; else NULL. */
struct owfp_wdf_object *owfp_wdf_driver_for(const void *code);

/* Deletes `o` and its children: children first, then o's EvtCleanupCallback,
 * the type's own release, EvtDestroyCallback. PASSIVE_LEVEL work (device
 * deletion, key closing) happens in the caller's context. */
void owfp_wdf_delete(struct owfp_wdf_object *o);

/* Counts the objects whose parent is `o`, by type, into counts[]. */
void owfp_wdf_count_children(const struct owfp_wdf_object *o,
                             unsigned long counts[OWFP_WDF_TYPES]);

/* The types' own release, called by owfp_wdf_delete (wdf_driver.c,
 * wdf_device.c, wdf_registry.c, wdf_string.c). */
void owfp_wdf_driver_release(struct owfp_wdf_object *o);
void owfp_wdf_device_release(struct owfp_wdf_object *o);
void owfp_wdf_device_init_release(struct owfp_wdf_object *o);
void owfp_wdf_key_release(struct owfp_wdf_object *o);
void owfp_wdf_string_release(struct owfp_wdf_object *o);

/* Strings the types share (wdf_string.c): a NUL-terminated copy of `n`
 * UTF-16 units at s (which need not be aligned) in one owfp_malloc block, or
 * NULL. */
WCHAR *owfp_wdf_wcsdup(const void *s, size_t n);
/* Replaces the framework string's text by a copy of n units at s, for `api`. */
NTSTATUS owfp_wdf_string_assign(WDFSTRING string, const void *s, size_t n, const char *api);

#endif
