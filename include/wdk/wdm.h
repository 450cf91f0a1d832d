/*
 * Minimal kernel base for callout drivers: the basic types, GUIDs, NTDDI
 * levels and MDLs, plus the driver/device objects a driver hands to
 * FwpsCalloutRegisterN. The objects are opaque for now; drivers only pass
 * pointers to them around.
 */
#ifndef OPENWFP_WDK_WDM_H
#define OPENWFP_WDK_WDM_H

#include "sdkddkver.h"
#include "ntdef.h"
#include "guiddef.h"

/* MDLs come from the NDIS emulation; tolerate building before it exists. */
#if defined(__has_include)
#if __has_include("mdl.h")
#include "mdl.h"
#endif
#else
#include "mdl.h"
#endif

#ifndef OPENWFP_DRIVER_OBJECT_DEFINED
#define OPENWFP_DRIVER_OBJECT_DEFINED
typedef struct _DEVICE_OBJECT DEVICE_OBJECT, *PDEVICE_OBJECT;
typedef struct _DRIVER_OBJECT DRIVER_OBJECT, *PDRIVER_OBJECT;
#endif

#endif
