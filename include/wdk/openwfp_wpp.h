/*
 * WPP software tracing as no-ops. On Windows the WPP preprocessor turns each
 * trace call into ETW code and writes it to NAME.tmh, which the driver
 * includes. Here scripts/wpp-tmh.sh writes a NAME.tmh that includes this
 * header and defines the driver's own trace functions (the FUNC lines of its
 * "begin_wpp config" blocks) over the same macro; docs/porting.md shows the
 * build lines. Drivers never include this file themselves, hence a name no
 * WDK header or driver header has.
 *
 * By default a trace call does nothing and its arguments are not evaluated,
 * as on Windows with no trace session listening; the arguments still count
 * as used, so -Wall -Wextra stays quiet. With OPENWFP_WPP_DBGPRINT=1 in the
 * environment the messages go to the debug output (DbgPrint, stderr) as
 * "FLAGS function: message"; WPP's own conversions %!FUNC!, %!FILE!,
 * %!LINE!, %!FLAGS!, %!LEVEL!, %!STATUS!, %!HRESULT!, %!WINERROR!,
 * %!NDIS_STATUS!, %!bool!, %!BOOLEAN!, %!IPADDR! and %!PORT! are understood;
 * a message is cut at any other one, whose argument size is not known.
 */
#ifndef OPENWFP_WDK_OPENWFP_WPP_H
#define OPENWFP_WDK_OPENWFP_WPP_H

#include "wdm.h"
#include "evntrace.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Whether trace messages are printed (OPENWFP_WPP_DBGPRINT, read once). */
BOOLEAN owfp_wpp_enabled(void);
/* No format attribute on purpose: WPP formats are not printf formats. */
void owfp_wpp_trace(const char *file, int line, const char *function, const char *flags,
                    int level, const char *format, ...);

#define OWFP_WPP_TRACE(flags_text, level, ...)                                            \
    do {                                                                                  \
        if (owfp_wpp_enabled())                                                           \
            owfp_wpp_trace(__FILE__, __LINE__, __func__, flags_text, (int)(level),       \
                           __VA_ARGS__);                                                  \
    } while (0)

/* Start and stop need nothing; sizeof uses the arguments without evaluating them. */
#define WPP_INIT_TRACING(DriverObject, RegistryPath) \
    ((void)sizeof(DriverObject), (void)sizeof(RegistryPath))
#define WPP_CLEANUP(DriverObject) ((void)sizeof(DriverObject))

/* The flags and levels are WPP names, not C: only their text is kept. */
#define DoTraceMessage(FLAG, ...) OWFP_WPP_TRACE(#FLAG, TRACE_LEVEL_NONE, __VA_ARGS__)
#ifndef DoTraceLevelMessage
#define DoTraceLevelMessage(LEVEL, FLAGS, ...) OWFP_WPP_TRACE(#FLAGS, (LEVEL), __VA_ARGS__)
#endif

#define WPP_LEVEL_ENABLED(FLAG) (owfp_wpp_enabled() != FALSE)
#define WPP_FLAG_ENABLED(FLAG) (owfp_wpp_enabled() != FALSE)

/* WPP_CONTROL_GUIDS, expanded by the .tmh, yields WPP_BIT_<flag> constants
 * as WPP does; the GUID itself is dropped. */
#define WPP_DEFINE_CONTROL_GUID(Name, Guid, ...) __VA_ARGS__
#define WPP_DEFINE_BIT(Name) WPP_BIT_##Name,

#ifdef __cplusplus
}
#endif

#endif
