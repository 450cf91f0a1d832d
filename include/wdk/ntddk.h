/* Drivers include ntddk.h or wdm.h interchangeably; both give the same base. */
#ifndef OPENWFP_WDK_NTDDK_H
#define OPENWFP_WDK_NTDDK_H

#include "wdm.h"

#endif
