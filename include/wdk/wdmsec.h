/*
 * Security descriptors for device objects, as SDDL strings. openwfp has no
 * object security: the strings are accepted where an API takes one
 * (WdfControlDeviceInitAllocate) and otherwise not interpreted.
 *
 * The constants are data of the openwfp executable (src/kernel/wdf_device.c),
 * as they are data of the wdmsec library on Windows, so every driver sees one
 * object of each.
 */
#ifndef OPENWFP_WDK_WDMSEC_H
#define OPENWFP_WDK_WDMSEC_H

#include "wdm.h"

#ifdef __cplusplus
extern "C" {
#endif

extern const UNICODE_STRING SDDL_DEVOBJ_KERNEL_ONLY;                 /* "D:P" */
extern const UNICODE_STRING SDDL_DEVOBJ_SYS_ALL;                     /* SYSTEM: all */
extern const UNICODE_STRING SDDL_DEVOBJ_SYS_ALL_ADM_ALL;             /* + administrators */
extern const UNICODE_STRING SDDL_DEVOBJ_SYS_ALL_ADM_RWX_WORLD_RW_RES_R;

#ifdef __cplusplus
}
#endif

#endif
