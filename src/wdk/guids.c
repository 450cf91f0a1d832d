/*
 * The one translation unit that gives every WDK GUID storage inside
 * libopenwfp. Callout drivers may still instantiate GUIDs themselves with
 * INITGUID: the definitions are weak, so the copies merge at link time.
 */
#include <initguid.h>

#include <fwpmk.h>
#include <fwpsk.h>
