/*
 * The framework driver object: WdfDriverCreate, the framework's own
 * DriverUnload (EvtDriverUnload, then every framework object of the driver
 * goes), and what the host learns about objects a driver left behind
 * (owfp_wdf_driver_gone in <openwfp/kernel.h>).
 *
 * Several drivers share the process, so WdfGetDriver finds the caller's
 * driver by the module its code is in: each driver is a shared object, and
 * WdfDriverCreate notes the module it was called from.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <string.h>

#include "common/alloc.h"
#include "kernel/wdf_object.h"

struct wdf_driver {
    struct owfp_wdf_object h;
    PDRIVER_OBJECT wdm;
    PFN_WDF_DRIVER_UNLOAD unload;
    const void *module; /* base address of the module that created it */
    WCHAR *registry_path;
};

/* What the framework deleted on a driver's behalf, kept for the host's
 * report after the driver object itself is gone. */
struct ledger {
    struct ledger *next;
    const void *driver_object;
    unsigned long left[OWFP_WDF_TYPES];
};

static pthread_mutex_t ledger_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ledger *ledgers; /* under ledger_mu */

static const void *module_of(const void *code)
{
    Dl_info info;
    return dladdr(code, &info) ? info.dli_fbase : NULL;
}

static bool has_wdm(const struct owfp_wdf_object *o, const void *arg)
{
    return ((const struct wdf_driver *)o)->wdm == arg;
}

static bool in_module(const struct owfp_wdf_object *o, const void *arg)
{
    return ((const struct wdf_driver *)o)->module == arg;
}

static bool any_driver(const struct owfp_wdf_object *o, const void *arg)
{
    (void)o;
    (void)arg;
    return true;
}

static bool other_than(const struct owfp_wdf_object *o, const void *arg)
{
    return o != arg;
}

void owfp_wdf_driver_release(struct owfp_wdf_object *o)
{
    struct wdf_driver *d = (struct wdf_driver *)o;
    owfp_free(d->registry_path);
    d->registry_path = NULL;
}

/* Deletes the driver and everything under it. What the driver should have
 * deleted itself is noted for owfp_wdf_driver_gone: objects directly under
 * the driver other than control devices, which KMDF deletes for non-PnP
 * drivers after EvtDriverUnload. */
static void tear_down(struct wdf_driver *d)
{
    struct ledger *l = owfp_calloc(1, sizeof(*l));
    unsigned long left[OWFP_WDF_TYPES] = {0};
    owfp_wdf_count_children(&d->h, left);
    left[OWFP_WDF_DEVICE] = 0;
    const void *wdm = d->wdm;
    owfp_wdf_delete(&d->h);
    if (!l)
        return; /* the report is lost, the objects are not */
    l->driver_object = wdm;
    memcpy(l->left, left, sizeof(left));
    pthread_mutex_lock(&ledger_mu);
    l->next = ledgers;
    ledgers = l;
    pthread_mutex_unlock(&ledger_mu);
}

/* The framework's DriverUnload, installed by WdfDriverCreate. */
static VOID framework_unload(PDRIVER_OBJECT DriverObject)
{
    struct wdf_driver *d = (struct wdf_driver *)owfp_wdf_find(OWFP_WDF_DRIVER, has_wdm,
                                                             DriverObject);
    if (!d)
        return;
    if (d->unload)
        d->unload((WDFDRIVER)d);
    tear_down(d);
}

unsigned long owfp_wdf_driver_gone(void *driver_object, owfp_wdf_leak_fn fn, void *ctx)
{
    /* After a failed DriverEntry, or when the driver replaced the
     * framework's DriverUnload, its objects are still there. */
    struct wdf_driver *d = (struct wdf_driver *)owfp_wdf_find(OWFP_WDF_DRIVER, has_wdm,
                                                             driver_object);
    if (d)
        tear_down(d);
    pthread_mutex_lock(&ledger_mu);
    struct ledger **q = &ledgers;
    while (*q && (*q)->driver_object != driver_object)
        q = &(*q)->next;
    struct ledger *l = *q;
    if (l)
        *q = l->next;
    pthread_mutex_unlock(&ledger_mu);
    if (!l)
        return 0;
    static const char *const how[OWFP_WDF_TYPES] = {"", "WdfObjectDelete", "WdfDeviceInitFree",
                                                    "WdfRegistryClose", "WdfObjectDelete"};
    unsigned long total = 0;
    for (int t = 0; t < OWFP_WDF_TYPES; t++) {
        if (!l->left[t])
            continue;
        total += l->left[t];
        if (fn)
            fn(owfp_wdf_type_name((enum owfp_wdf_type)t), how[t], l->left[t], ctx);
    }
    owfp_free(l);
    return total;
}

static NTSTATUS check_config(PDRIVER_OBJECT DriverObject, PCUNICODE_STRING RegistryPath,
                             const WDF_DRIVER_CONFIG *config)
{
    if (!owfp_irql_check_max(PASSIVE_LEVEL, "WdfDriverCreate"))
        return STATUS_INVALID_DEVICE_REQUEST;
    if (!DriverObject || !RegistryPath || !config ||
        (RegistryPath->Length && !RegistryPath->Buffer))
        return STATUS_INVALID_PARAMETER;
    if (config->Size != sizeof(WDF_DRIVER_CONFIG))
        return STATUS_INFO_LENGTH_MISMATCH;
    if (!(config->DriverInitFlags & WdfDriverInitNonPnpDriver)) {
        /* Nothing would ever call EvtDriverDeviceAdd: fail loudly instead. */
        owfp_kernel_finding("WdfDriverCreate: only non-PnP drivers (WdfDriverInitNonPnpDriver) "
                            "are supported; there is no PnP manager to call EvtDriverDeviceAdd");
        return STATUS_NOT_SUPPORTED;
    }
    if (owfp_wdf_find(OWFP_WDF_DRIVER, has_wdm, DriverObject)) {
        owfp_kernel_finding("WdfDriverCreate: called twice for one driver");
        return STATUS_INVALID_DEVICE_REQUEST;
    }
    return STATUS_SUCCESS;
}

NTSTATUS WdfDriverCreate(PDRIVER_OBJECT DriverObject, PCUNICODE_STRING RegistryPath,
                         PWDF_OBJECT_ATTRIBUTES DriverAttributes, PWDF_DRIVER_CONFIG DriverConfig,
                         WDFDRIVER *Driver)
{
    const void *caller = __builtin_return_address(0);
    if (Driver)
        *Driver = NULL;
    NTSTATUS st = check_config(DriverObject, RegistryPath, DriverConfig);
    if (!NT_SUCCESS(st))
        return st;
    if (DriverAttributes && DriverAttributes->ParentObject)
        return STATUS_INVALID_PARAMETER; /* a driver has no parent */
    struct owfp_wdf_object *o;
    st = owfp_wdf_create(OWFP_WDF_DRIVER, sizeof(struct wdf_driver), NULL, DriverAttributes, &o);
    if (!NT_SUCCESS(st))
        return st;
    struct wdf_driver *d = (struct wdf_driver *)o;
    d->wdm = DriverObject;
    d->unload = DriverConfig->EvtDriverUnload;
    d->module = module_of(caller);
    d->registry_path = owfp_wdf_wcsdup(RegistryPath->Buffer, RegistryPath->Length / sizeof(WCHAR));
    if (!d->registry_path) {
        owfp_wdf_discard(o);
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    owfp_wdf_publish(o);
    /* KMDF leaves a non-PnP driver without EvtDriverUnload unloadable. */
    if (d->unload)
        DriverObject->DriverUnload = framework_unload;
    if (Driver)
        *Driver = (WDFDRIVER)d;
    return STATUS_SUCCESS;
}

struct owfp_wdf_object *owfp_wdf_driver_for(const void *code)
{
    const void *module = module_of(code);
    struct owfp_wdf_object *o = module ? owfp_wdf_find(OWFP_WDF_DRIVER, in_module, module) : NULL;
    if (!o) {
        /* Code dladdr cannot place: the only driver there is, if one. */
        o = owfp_wdf_find(OWFP_WDF_DRIVER, any_driver, NULL);
        if (o && owfp_wdf_find(OWFP_WDF_DRIVER, other_than, o))
            o = NULL;
    }
    return o;
}

WDFDRIVER WdfGetDriver(VOID)
{
    return (WDFDRIVER)owfp_wdf_driver_for(__builtin_return_address(0));
}

PDRIVER_OBJECT WdfDriverWdmGetDriverObject(WDFDRIVER Driver)
{
    struct wdf_driver *d = (struct wdf_driver *)owfp_wdf_lookup(Driver, OWFP_WDF_DRIVER,
                                                               "WdfDriverWdmGetDriverObject");
    return d ? d->wdm : NULL;
}

PWSTR WdfDriverGetRegistryPath(WDFDRIVER Driver)
{
    struct wdf_driver *d = (struct wdf_driver *)owfp_wdf_lookup(Driver, OWFP_WDF_DRIVER,
                                                               "WdfDriverGetRegistryPath");
    return d ? d->registry_path : NULL;
}
