/*
 * A second translation unit that instantiates GUIDs the way callout drivers
 * do: include the WFP headers normally, then define INITGUID, re-include
 * guiddef.h and declare the driver's own GUIDs. Re-including fwpmk.h after
 * INITGUID also gives this unit weak copies of the WDK GUIDs, which must
 * link alongside the copies in libopenwfp (src/wdk/guids.c).
 */
#include <fwpsk.h>
#include <fwpmk.h>

#define INITGUID
#include <guiddef.h>

/* {6c0a5e3d-2b1f-4c8e-9a7d-3f5b1e2c4d60}: arbitrary, only this test uses it. */
DEFINE_GUID(OWFP_TEST_LAYOUT_GUID, 0x6c0a5e3d, 0x2b1f, 0x4c8e, 0x9a, 0x7d, 0x3f, 0x5b, 0x1e, 0x2c,
            0x4d, 0x60);

#include <fwpmk.h>

/* Lets the test see which definition of a WDK GUID the linker picked. */
const GUID *layout_guid_tu_stream_v4(void);
const GUID *layout_guid_tu_stream_v4(void)
{
    return &FWPM_LAYER_STREAM_V4;
}
