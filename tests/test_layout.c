/*
 * ABI checks for the WDK-compatible headers: every size and offset of spec
 * section 3 and a sample of every constant table of section 2, evaluated at
 * run time so a regression shows up as a named failing test rather than only
 * as a broken build.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <ntddk.h>
#include <fwpsk.h>
#include <fwpmk.h>

/* Defined with INITGUID in layout_guid_tu.c; here it is only declared. */
DEFINE_GUID(OWFP_TEST_LAYOUT_GUID, 0x6c0a5e3d, 0x2b1f, 0x4c8e, 0x9a, 0x7d, 0x3f, 0x5b, 0x1e, 0x2c,
            0x4d, 0x60);
const GUID *layout_guid_tu_stream_v4(void);

#define SIZE_IS(type, n) assert_int_equal(sizeof(type), (n))
#define ALIGN_IS(type, n) assert_int_equal(_Alignof(type), (n))
#define OFFSET_IS(type, member, n) assert_int_equal(offsetof(type, member), (n))

static void guid_string(const GUID *g, char out[37])
{
    snprintf(out, 37, "%08x-%04x-%04x-%02x%02x-%02x%02x%02x%02x%02x%02x", (unsigned)g->Data1,
             g->Data2, g->Data3, g->Data4[0], g->Data4[1], g->Data4[2], g->Data4[3], g->Data4[4],
             g->Data4[5], g->Data4[6], g->Data4[7]);
}

#define GUID_IS(g, text)                  \
    do {                                  \
        char buf_[37];                    \
        guid_string(&(g), buf_);          \
        assert_string_equal(buf_, (text)); \
    } while (0)

/* ---- basic types ------------------------------------------------------- */

static void test_layout_guid(void **state)
{
    (void)state;
    SIZE_IS(GUID, 16);
    ALIGN_IS(GUID, 4);
    OFFSET_IS(GUID, Data2, 4);
    OFFSET_IS(GUID, Data4, 8);
}

static void test_layout_wfp_enums_are_32_bit(void **state)
{
    (void)state;
    SIZE_IS(FWP_DATA_TYPE, 4);
    SIZE_IS(FWP_MATCH_TYPE, 4);
    SIZE_IS(FWP_DIRECTION, 4);
    SIZE_IS(FWPS_CALLOUT_NOTIFY_TYPE, 4);
    SIZE_IS(FWPS_STREAM_ACTION_TYPE, 4);
    SIZE_IS(FWPS_DISCARD_MODULE0, 4);
}

static void test_layout_fwp_byte_blob(void **state)
{
    (void)state;
    SIZE_IS(FWP_BYTE_BLOB, 16);
    OFFSET_IS(FWP_BYTE_BLOB, data, 8);
    SIZE_IS(FWP_BYTE_ARRAY16, 16);
    SIZE_IS(FWP_BYTE_ARRAY6, 6);
}

static void test_layout_fwp_value0(void **state)
{
    (void)state;
    SIZE_IS(FWP_VALUE0, 16);
    ALIGN_IS(FWP_VALUE0, 8);
    OFFSET_IS(FWP_VALUE0, uint8, 8);
    OFFSET_IS(FWP_VALUE0, uint64, 8);
    OFFSET_IS(FWP_VALUE0, byteArray16, 8);
    OFFSET_IS(FWP_VALUE0, unicodeString, 8);
    OFFSET_IS(FWP_VALUE0, byteArray6, 8);
}

static void test_layout_fwp_condition_value0(void **state)
{
    (void)state;
    SIZE_IS(FWP_CONDITION_VALUE0, 16);
    ALIGN_IS(FWP_CONDITION_VALUE0, 8);
    OFFSET_IS(FWP_CONDITION_VALUE0, v4AddrMask, 8);
    OFFSET_IS(FWP_CONDITION_VALUE0, v6AddrMask, 8);
    OFFSET_IS(FWP_CONDITION_VALUE0, rangeValue, 8);
}

static void test_layout_fwp_range0_and_masks(void **state)
{
    (void)state;
    SIZE_IS(FWP_RANGE0, 32);
    OFFSET_IS(FWP_RANGE0, valueHigh, 16);
    SIZE_IS(FWP_V4_ADDR_AND_MASK, 8);
    OFFSET_IS(FWP_V4_ADDR_AND_MASK, mask, 4);
    SIZE_IS(FWP_V6_ADDR_AND_MASK, 17);
    OFFSET_IS(FWP_V6_ADDR_AND_MASK, prefixLength, 16);
}

/* ---- run-time structures ------------------------------------------------ */

static void test_layout_fwps_incoming_values0(void **state)
{
    (void)state;
    SIZE_IS(FWPS_INCOMING_VALUE0, 16);
    SIZE_IS(FWPS_INCOMING_VALUES0, 16);
    OFFSET_IS(FWPS_INCOMING_VALUES0, layerId, 0);
    OFFSET_IS(FWPS_INCOMING_VALUES0, valueCount, 4);
    OFFSET_IS(FWPS_INCOMING_VALUES0, incomingValue, 8);
}

static void test_layout_fwps_filter_condition0(void **state)
{
    (void)state;
    SIZE_IS(FWPS_FILTER_CONDITION0, 24);
    OFFSET_IS(FWPS_FILTER_CONDITION0, reserved, 2);
    OFFSET_IS(FWPS_FILTER_CONDITION0, matchType, 4);
    OFFSET_IS(FWPS_FILTER_CONDITION0, conditionValue, 8);
}

static void test_layout_fwps_action0(void **state)
{
    (void)state;
    SIZE_IS(FWPS_ACTION0, 8);
    OFFSET_IS(FWPS_ACTION0, calloutId, 4);
}

#define CHECK_FWPS_FILTER(T)                 \
    do {                                     \
        SIZE_IS(T, 64);                      \
        OFFSET_IS(T, filterId, 0);           \
        OFFSET_IS(T, weight, 8);             \
        OFFSET_IS(T, subLayerWeight, 24);    \
        OFFSET_IS(T, flags, 26);             \
        OFFSET_IS(T, numFilterConditions, 28); \
        OFFSET_IS(T, filterCondition, 32);   \
        OFFSET_IS(T, action, 40);            \
        OFFSET_IS(T, context, 48);           \
        OFFSET_IS(T, providerContext, 56);   \
    } while (0)

static void test_layout_fwps_filter0_to_3(void **state)
{
    (void)state;
    CHECK_FWPS_FILTER(FWPS_FILTER0);
    CHECK_FWPS_FILTER(FWPS_FILTER1);
    CHECK_FWPS_FILTER(FWPS_FILTER2);
    CHECK_FWPS_FILTER(FWPS_FILTER3);
}

static void test_layout_fwps_classify_out0(void **state)
{
    (void)state;
    SIZE_IS(FWPS_CLASSIFY_OUT0, 40);
    OFFSET_IS(FWPS_CLASSIFY_OUT0, actionType, 0);
    OFFSET_IS(FWPS_CLASSIFY_OUT0, outContext, 8);
    OFFSET_IS(FWPS_CLASSIFY_OUT0, filterId, 16);
    OFFSET_IS(FWPS_CLASSIFY_OUT0, rights, 24);
    OFFSET_IS(FWPS_CLASSIFY_OUT0, flags, 28);
    OFFSET_IS(FWPS_CLASSIFY_OUT0, reserved, 32);
}

static void test_layout_fwps_discard_and_fragment_metadata0(void **state)
{
    (void)state;
    SIZE_IS(FWPS_DISCARD_METADATA0, 16);
    OFFSET_IS(FWPS_DISCARD_METADATA0, discardReason, 4);
    OFFSET_IS(FWPS_DISCARD_METADATA0, filterId, 8);
    SIZE_IS(FWPS_INBOUND_FRAGMENT_METADATA0, 12);
    OFFSET_IS(FWPS_INBOUND_FRAGMENT_METADATA0, fragmentOffset, 4);
    OFFSET_IS(FWPS_INBOUND_FRAGMENT_METADATA0, fragmentLength, 8);
}

#define CHECK_FWPS_CALLOUT(T)            \
    do {                                 \
        SIZE_IS(T, 48);                  \
        OFFSET_IS(T, calloutKey, 0);     \
        OFFSET_IS(T, flags, 16);         \
        OFFSET_IS(T, classifyFn, 24);    \
        OFFSET_IS(T, notifyFn, 32);      \
        OFFSET_IS(T, flowDeleteFn, 40);  \
    } while (0)

static void test_layout_fwps_callout0_to_3(void **state)
{
    (void)state;
    CHECK_FWPS_CALLOUT(FWPS_CALLOUT0);
    CHECK_FWPS_CALLOUT(FWPS_CALLOUT1);
    CHECK_FWPS_CALLOUT(FWPS_CALLOUT2);
    CHECK_FWPS_CALLOUT(FWPS_CALLOUT3);
}

static void test_layout_fwps_stream_data_offset0(void **state)
{
    (void)state;
    SIZE_IS(FWPS_STREAM_DATA_OFFSET0, 40);
    OFFSET_IS(FWPS_STREAM_DATA_OFFSET0, netBufferList, 0);
    OFFSET_IS(FWPS_STREAM_DATA_OFFSET0, netBuffer, 8);
    OFFSET_IS(FWPS_STREAM_DATA_OFFSET0, mdl, 16);
    OFFSET_IS(FWPS_STREAM_DATA_OFFSET0, mdlOffset, 24);
    OFFSET_IS(FWPS_STREAM_DATA_OFFSET0, netBufferOffset, 28);
    OFFSET_IS(FWPS_STREAM_DATA_OFFSET0, streamDataOffset, 32);
}

static void test_layout_fwps_stream_data0(void **state)
{
    (void)state;
    SIZE_IS(FWPS_STREAM_DATA0, 64);
    OFFSET_IS(FWPS_STREAM_DATA0, flags, 0);
    OFFSET_IS(FWPS_STREAM_DATA0, dataOffset, 8);
    OFFSET_IS(FWPS_STREAM_DATA0, dataLength, 48);
    OFFSET_IS(FWPS_STREAM_DATA0, netBufferListChain, 56);
}

static void test_layout_fwps_stream_callout_io_packet0(void **state)
{
    (void)state;
    SIZE_IS(FWPS_STREAM_CALLOUT_IO_PACKET0, 40);
    OFFSET_IS(FWPS_STREAM_CALLOUT_IO_PACKET0, streamData, 0);
    OFFSET_IS(FWPS_STREAM_CALLOUT_IO_PACKET0, missedBytes, 8);
    OFFSET_IS(FWPS_STREAM_CALLOUT_IO_PACKET0, countBytesRequired, 16);
    /* A 32-bit field: bytes 20..23 are padding the engine must not read. */
    SIZE_IS(((FWPS_STREAM_CALLOUT_IO_PACKET0 *)0)->countBytesRequired, 4);
    OFFSET_IS(FWPS_STREAM_CALLOUT_IO_PACKET0, countBytesEnforced, 24);
    OFFSET_IS(FWPS_STREAM_CALLOUT_IO_PACKET0, streamAction, 32);
}

static void test_layout_fwps_incoming_metadata_values0(void **state)
{
    (void)state;
    typedef FWPS_INCOMING_METADATA_VALUES0 M;
    SIZE_IS(M, 280);
    ALIGN_IS(M, 8);
    OFFSET_IS(M, currentMetadataValues, 0);
    OFFSET_IS(M, flags, 4);
    OFFSET_IS(M, reserved, 8);
    OFFSET_IS(M, discardMetadata, 16);
    SIZE_IS(((M *)0)->discardMetadata, 16);
    OFFSET_IS(M, flowHandle, 32);
    OFFSET_IS(M, ipHeaderSize, 40);
    OFFSET_IS(M, transportHeaderSize, 44);
    OFFSET_IS(M, processPath, 48);
    OFFSET_IS(M, token, 56);
    OFFSET_IS(M, processId, 64);
    OFFSET_IS(M, sourceInterfaceIndex, 72);
    OFFSET_IS(M, destinationInterfaceIndex, 76);
    OFFSET_IS(M, compartmentId, 80);
    OFFSET_IS(M, fragmentMetadata, 84);
    SIZE_IS(((M *)0)->fragmentMetadata, 12);
    OFFSET_IS(M, pathMtu, 96);
    OFFSET_IS(M, completionHandle, 104);
    OFFSET_IS(M, transportEndpointHandle, 112);
    OFFSET_IS(M, remoteScopeId, 120);
    SIZE_IS(((M *)0)->remoteScopeId, 4);
    OFFSET_IS(M, controlData, 128);
    OFFSET_IS(M, controlDataLength, 136);
    OFFSET_IS(M, packetDirection, 140);
    OFFSET_IS(M, headerIncludeHeader, 144);
    OFFSET_IS(M, headerIncludeHeaderLength, 152);
    OFFSET_IS(M, destinationPrefix, 156);
    SIZE_IS(((M *)0)->destinationPrefix, 32);
    OFFSET_IS(M, frameLength, 188);
    OFFSET_IS(M, parentEndpointHandle, 192);
    OFFSET_IS(M, icmpIdAndSequence, 200);
    OFFSET_IS(M, localRedirectTargetPID, 204);
    OFFSET_IS(M, originalDestination, 208);
    OFFSET_IS(M, redirectRecords, 216);
    OFFSET_IS(M, currentL2MetadataValues, 224);
    OFFSET_IS(M, l2Flags, 228);
    OFFSET_IS(M, ethernetMacHeaderSize, 232);
    OFFSET_IS(M, wiFiOperationMode, 236);
    OFFSET_IS(M, vSwitchSourcePortId, 240);
    OFFSET_IS(M, vSwitchSourceNicIndex, 244);
    SIZE_IS(((M *)0)->vSwitchSourceNicIndex, 2);
    OFFSET_IS(M, vSwitchDestinationPortId, 248);
    OFFSET_IS(M, vSwitchPacketContext, 256);
    OFFSET_IS(M, subProcessTag, 264);
    OFFSET_IS(M, reserved1, 272);
}

static void test_layout_socket_address_types(void **state)
{
    (void)state;
    SIZE_IS(ADDRESS_FAMILY, 2);
    SIZE_IS(SOCKADDR, 16);
    OFFSET_IS(SOCKADDR, sa_data, 2);
    SIZE_IS(SCOPE_ID, 4);
    SIZE_IS(IN_ADDR, 4);
    SIZE_IS(IN6_ADDR, 16);
    SIZE_IS(SOCKADDR_IN, 16);
    OFFSET_IS(SOCKADDR_IN, sin_addr, 4);
    SIZE_IS(SOCKADDR_IN6, 28);
    OFFSET_IS(SOCKADDR_IN6, sin6_flowinfo, 4);
    OFFSET_IS(SOCKADDR_IN6, sin6_addr, 8);
    OFFSET_IS(SOCKADDR_IN6, sin6_scope_id, 24);
    SIZE_IS(SOCKADDR_INET, 28);
    ALIGN_IS(SOCKADDR_INET, 4);
    SIZE_IS(IP_ADDRESS_PREFIX, 32);
    ALIGN_IS(IP_ADDRESS_PREFIX, 4);
    OFFSET_IS(IP_ADDRESS_PREFIX, PrefixLength, 28);
    SIZE_IS(WSACMSGHDR, 16);

    /* Zone is the low 28 bits and Level the top 4, as on Windows. */
    SCOPE_ID id = {0};
    id.Value = 0xA0000005u;
    assert_int_equal(id.Zone, 5);
    assert_int_equal(id.Level, 0xA);
}

/* ---- management structures --------------------------------------------- */

static void test_layout_fwpm_display_data0(void **state)
{
    (void)state;
    SIZE_IS(FWPM_DISPLAY_DATA0, 16);
    OFFSET_IS(FWPM_DISPLAY_DATA0, description, 8);
    SIZE_IS(WCHAR, 2);
}

static void test_layout_fwpm_session0(void **state)
{
    (void)state;
    SIZE_IS(FWPM_SESSION0, 72);
    ALIGN_IS(FWPM_SESSION0, 8);
    OFFSET_IS(FWPM_SESSION0, displayData, 16);
    OFFSET_IS(FWPM_SESSION0, flags, 32);
    OFFSET_IS(FWPM_SESSION0, txnWaitTimeoutInMSec, 36);
    OFFSET_IS(FWPM_SESSION0, processId, 40);
    OFFSET_IS(FWPM_SESSION0, sid, 48);
    OFFSET_IS(FWPM_SESSION0, username, 56);
    OFFSET_IS(FWPM_SESSION0, kernelMode, 64);
}

static void test_layout_fwpm_provider0(void **state)
{
    (void)state;
    SIZE_IS(FWPM_PROVIDER0, 64);
    OFFSET_IS(FWPM_PROVIDER0, flags, 32);
    OFFSET_IS(FWPM_PROVIDER0, providerData, 40);
    OFFSET_IS(FWPM_PROVIDER0, serviceName, 56);
}

static void test_layout_fwpm_sublayer0(void **state)
{
    (void)state;
    SIZE_IS(FWPM_SUBLAYER0, 72);
    ALIGN_IS(FWPM_SUBLAYER0, 8);
    OFFSET_IS(FWPM_SUBLAYER0, flags, 32);
    SIZE_IS(((FWPM_SUBLAYER0 *)0)->flags, 4);
    OFFSET_IS(FWPM_SUBLAYER0, providerKey, 40);
    OFFSET_IS(FWPM_SUBLAYER0, providerData, 48);
    OFFSET_IS(FWPM_SUBLAYER0, weight, 64);
}

static void test_layout_fwpm_callout0(void **state)
{
    (void)state;
    SIZE_IS(FWPM_CALLOUT0, 88);
    ALIGN_IS(FWPM_CALLOUT0, 8);
    OFFSET_IS(FWPM_CALLOUT0, flags, 32);
    OFFSET_IS(FWPM_CALLOUT0, providerKey, 40);
    OFFSET_IS(FWPM_CALLOUT0, providerData, 48);
    OFFSET_IS(FWPM_CALLOUT0, applicableLayer, 64);
    OFFSET_IS(FWPM_CALLOUT0, calloutId, 80);
}

static void test_layout_fwpm_action0(void **state)
{
    (void)state;
    SIZE_IS(FWPM_ACTION0, 20);
    ALIGN_IS(FWPM_ACTION0, 4);
    OFFSET_IS(FWPM_ACTION0, filterType, 4);
    OFFSET_IS(FWPM_ACTION0, calloutKey, 4);
}

static void test_layout_fwpm_filter_condition0(void **state)
{
    (void)state;
    SIZE_IS(FWPM_FILTER_CONDITION0, 40);
    ALIGN_IS(FWPM_FILTER_CONDITION0, 8);
    OFFSET_IS(FWPM_FILTER_CONDITION0, matchType, 16);
    OFFSET_IS(FWPM_FILTER_CONDITION0, conditionValue, 24);
}

static void test_layout_fwpm_filter0(void **state)
{
    (void)state;
    SIZE_IS(FWPM_FILTER0, 200);
    ALIGN_IS(FWPM_FILTER0, 8);
    OFFSET_IS(FWPM_FILTER0, filterKey, 0);
    OFFSET_IS(FWPM_FILTER0, displayData, 16);
    OFFSET_IS(FWPM_FILTER0, flags, 32);
    OFFSET_IS(FWPM_FILTER0, providerKey, 40);
    OFFSET_IS(FWPM_FILTER0, providerData, 48);
    OFFSET_IS(FWPM_FILTER0, layerKey, 64);
    OFFSET_IS(FWPM_FILTER0, subLayerKey, 80);
    OFFSET_IS(FWPM_FILTER0, weight, 96);
    OFFSET_IS(FWPM_FILTER0, numFilterConditions, 112);
    OFFSET_IS(FWPM_FILTER0, filterCondition, 120);
    OFFSET_IS(FWPM_FILTER0, action, 128);
    OFFSET_IS(FWPM_FILTER0, rawContext, 152);
    OFFSET_IS(FWPM_FILTER0, providerContextKey, 152);
    OFFSET_IS(FWPM_FILTER0, reserved, 168);
    OFFSET_IS(FWPM_FILTER0, filterId, 176);
    OFFSET_IS(FWPM_FILTER0, effectiveWeight, 184);
}

/* ---- constant tables (spec section 2) ------------------------------------ */

static void test_const_ntstatus_sample(void **state)
{
    (void)state;
    assert_int_equal((ULONG)STATUS_SUCCESS, 0x00000000u);
    assert_int_equal((ULONG)STATUS_PENDING, 0x00000103u);
    assert_int_equal((ULONG)STATUS_OBJECT_NAME_EXISTS, 0x40000000u);
    assert_true(NT_SUCCESS(STATUS_OBJECT_NAME_EXISTS));
    assert_int_equal((ULONG)STATUS_DEVICE_BUSY, 0x80000011u);
    assert_false(NT_SUCCESS(STATUS_DEVICE_BUSY));
    assert_int_equal((ULONG)STATUS_FWP_CALLOUT_NOT_FOUND, 0xC0220001u);
    assert_int_equal((ULONG)STATUS_FWP_ALREADY_EXISTS, 0xC0220009u);
    assert_int_equal((ULONG)STATUS_FWP_CALLOUT_NOTIFICATION_FAILED, 0xC0220037u);
    assert_int_equal((ULONG)STATUS_FWP_CANNOT_PEND, 0xC0220103u);
}

static void test_const_action_types(void **state)
{
    (void)state;
    assert_int_equal(FWP_ACTION_FLAG_TERMINATING, 0x1000);
    assert_int_equal(FWP_ACTION_FLAG_NON_TERMINATING, 0x2000);
    assert_int_equal(FWP_ACTION_FLAG_CALLOUT, 0x4000);
    assert_int_equal(FWP_ACTION_BLOCK, 0x1001);
    assert_int_equal(FWP_ACTION_PERMIT, 0x1002);
    assert_int_equal(FWP_ACTION_CALLOUT_TERMINATING, 0x5003);
    assert_int_equal(FWP_ACTION_CALLOUT_INSPECTION, 0x6004);
    assert_int_equal(FWP_ACTION_CALLOUT_UNKNOWN, 0x4005);
    assert_int_equal(FWP_ACTION_CONTINUE, 0x2006);
    assert_int_equal(FWP_ACTION_NONE, 7);
    assert_int_equal(FWP_ACTION_NONE_NO_MATCH, 8);
    SIZE_IS(FWP_ACTION_TYPE, 4);
}

static void test_const_data_types(void **state)
{
    (void)state;
    assert_int_equal(FWP_EMPTY, 0);
    assert_int_equal(FWP_UINT64, 4);
    assert_int_equal(FWP_DOUBLE, 10);
    assert_int_equal(FWP_BYTE_ARRAY16_TYPE, 11);
    assert_int_equal(FWP_BYTE_BLOB_TYPE, 12);
    assert_int_equal(FWP_SID, 13);
    assert_int_equal(FWP_UNICODE_STRING_TYPE, 17);
    assert_int_equal(FWP_BYTE_ARRAY6_TYPE, 18);
    assert_int_equal(FWP_SINGLE_DATA_TYPE_MAX, 0xff);
    assert_int_equal(FWP_V4_ADDR_MASK, 0x100);
    assert_int_equal(FWP_V6_ADDR_MASK, 0x101);
    assert_int_equal(FWP_RANGE_TYPE, 0x102);
    assert_int_equal(FWP_DATA_TYPE_MAX, 0x103);
    assert_int_equal(FWP_V6_ADDR_SIZE, 16);
}

static void test_const_match_types(void **state)
{
    (void)state;
    assert_int_equal(FWP_MATCH_EQUAL, 0);
    assert_int_equal(FWP_MATCH_RANGE, 5);
    assert_int_equal(FWP_MATCH_FLAGS_NONE_SET, 8);
    assert_int_equal(FWP_MATCH_EQUAL_CASE_INSENSITIVE, 9);
    assert_int_equal(FWP_MATCH_NOT_EQUAL, 10);
    assert_int_equal(FWP_MATCH_PREFIX, 11);
    assert_int_equal(FWP_MATCH_NOT_PREFIX, 12);
    assert_int_equal(FWP_MATCH_TYPE_MAX, 13);
}

static void test_const_misc_enums(void **state)
{
    (void)state;
    assert_int_equal(FWP_DIRECTION_OUTBOUND, 0);
    assert_int_equal(FWP_DIRECTION_INBOUND, 1);
    assert_int_equal(FWP_DIRECTION_MAX, 2);
    assert_int_equal(FWP_IP_VERSION_V4, 0);
    assert_int_equal(FWP_IP_VERSION_V6, 1);
    assert_int_equal(FWP_IP_VERSION_NONE, 2);
    assert_int_equal(FWP_IP_VERSION_MAX, 3);
    assert_int_equal(FWPS_CALLOUT_NOTIFY_ADD_FILTER, 0);
    assert_int_equal(FWPS_CALLOUT_NOTIFY_DELETE_FILTER, 1);
    assert_int_equal(FWPS_CALLOUT_NOTIFY_ADD_FILTER_POST_COMMIT, 2);
    assert_int_equal(FWPS_CALLOUT_NOTIFY_TYPE_MAX, 3);
    assert_int_equal(FWPS_DISCARD_MODULE_NETWORK, 0);
    assert_int_equal(FWPS_DISCARD_MODULE_GENERAL, 2);
    assert_int_equal(FWPS_DISCARD_MODULE_MAX, 3);
}

static void test_const_callout_flags(void **state)
{
    (void)state;
    assert_int_equal(FWP_CALLOUT_FLAG_CONDITIONAL_ON_FLOW, 0x001);
    assert_int_equal(FWP_CALLOUT_FLAG_ALLOW_OFFLOAD, 0x002);
    assert_int_equal(FWP_CALLOUT_FLAG_ENABLE_COMMIT_ADD_NOTIFY, 0x004);
    assert_int_equal(FWP_CALLOUT_FLAG_ALLOW_MID_STREAM_INSPECTION, 0x008);
    assert_int_equal(FWP_CALLOUT_FLAG_ALLOW_RECLASSIFY, 0x010);
    assert_int_equal(FWP_CALLOUT_FLAG_RESERVED1, 0x020);
    assert_int_equal(FWP_CALLOUT_FLAG_ALLOW_RSC, 0x040);
    assert_int_equal(FWP_CALLOUT_FLAG_ALLOW_L2_BATCH_CLASSIFY, 0x080);
    assert_int_equal(FWP_CALLOUT_FLAG_ALLOW_USO, 0x100);
    assert_int_equal(FWP_CALLOUT_FLAG_ALLOW_URO, 0x200);
    assert_int_equal(FWP_CALLOUT_FLAG_RESERVED2, 0x400);
}

static void test_const_fwps_rights_and_flags(void **state)
{
    (void)state;
    assert_int_equal(FWPS_RIGHT_ACTION_WRITE, 1);
    assert_int_equal(FWPS_CLASSIFY_OUT_FLAG_ABSORB, 0x01);
    assert_int_equal(FWPS_CLASSIFY_OUT_FLAG_BUFFER_LIMIT_REACHED, 0x02);
    assert_int_equal(FWPS_CLASSIFY_OUT_FLAG_NO_MORE_DATA, 0x04);
    assert_int_equal(FWPS_CLASSIFY_OUT_FLAG_ALE_FAST_CACHE_POSSIBLE, 0x10);
    assert_int_equal(FWPS_FILTER_FLAG_CLEAR_ACTION_RIGHT, 0x0001);
    assert_int_equal(FWPS_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED, 0x0002);
    assert_int_equal(FWPS_FILTER_FLAG_OR_CONDITIONS, 0x0004);
    assert_int_equal(FWPS_FILTER_FLAG_SILENT_MODE, 0x0010);
    assert_int_equal(FWPS_FILTER_FLAG_RESERVED2, 0x0100);
    assert_int_equal(FWPS_INCOMING_FLAG_CACHE_SAFE, 0x01);
    assert_int_equal(FWPS_INCOMING_FLAG_CONNECTION_FAILING_INDICATION, 0x08);
    assert_int_equal(FWPS_INCOMING_FLAG_MID_STREAM_INSPECTION, 0x10);
    assert_int_equal(FWPS_INCOMING_FLAG_RECLASSIFY, 0x20);
    assert_int_equal(FWPS_INCOMING_FLAG_IS_LOCAL_ONLY_FLOW, 0x80);
    assert_int_equal(FWPS_INCOMING_FLAG_RESERVED0, 0x100);
}

static void test_const_fwpm_filter_flags(void **state)
{
    (void)state;
    assert_int_equal(FWPM_FILTER_FLAG_NONE, 0x0000);
    assert_int_equal(FWPM_FILTER_FLAG_PERSISTENT, 0x0001);
    assert_int_equal(FWPM_FILTER_FLAG_BOOTTIME, 0x0002);
    assert_int_equal(FWPM_FILTER_FLAG_HAS_PROVIDER_CONTEXT, 0x0004);
    assert_int_equal(FWPM_FILTER_FLAG_CLEAR_ACTION_RIGHT, 0x0008);
    assert_int_equal(FWPM_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED, 0x0010);
    assert_int_equal(FWPM_FILTER_FLAG_DISABLED, 0x0020);
    assert_int_equal(FWPM_FILTER_FLAG_INDEXED, 0x0040);
    assert_int_equal(FWPM_FILTER_FLAG_HAS_SECURITY_REALM_PROVIDER_CONTEXT, 0x0080);
    assert_int_equal(FWPM_FILTER_FLAG_SYSTEMOS_ONLY, 0x0100);
    assert_int_equal(FWPM_FILTER_FLAG_GAMEOS_ONLY, 0x0200);
    assert_int_equal(FWPM_FILTER_FLAG_SILENT_MODE, 0x0400);
    assert_int_equal(FWPM_FILTER_FLAG_IPSEC_NO_ACQUIRE_INITIATE, 0x0800);
    assert_int_equal(FWPM_FILTER_FLAG_RESERVED0, 0x1000);
    assert_int_equal(FWPM_FILTER_FLAG_RESERVED1, 0x2000);
}

static void test_const_management_constants(void **state)
{
    (void)state;
    assert_int_equal(FWPM_SESSION_FLAG_DYNAMIC, 0x1);
    assert_int_equal(FWPM_TXN_READ_ONLY, 0x1);
    assert_int_equal(FWPM_SUBLAYER_FLAG_PERSISTENT, 0x1);
    assert_int_equal(FWPM_PROVIDER_FLAG_PERSISTENT, 0x1);
    assert_int_equal(FWPM_CALLOUT_FLAG_PERSISTENT, 0x10000);
    assert_int_equal(FWPM_CALLOUT_FLAG_USES_PROVIDER_CONTEXT, 0x20000);
    assert_int_equal(FWPM_CALLOUT_FLAG_REGISTERED, 0x40000);
    assert_int_equal(FWPM_AUTO_WEIGHT_BITS, 60);
    assert_true(FWPM_AUTO_WEIGHT_MAX == UINT64_C(0x0FFFFFFFFFFFFFFF));
    assert_true(FWPM_WEIGHT_RANGE_MAX == 15);
    assert_int_equal(FWPM_WEIGHT_RANGE_IPSEC, 0x0);
    assert_int_equal(FWPM_WEIGHT_RANGE_IKE_EXEMPTIONS, 0xC);
    assert_int_equal(RPC_C_AUTHN_WINNT, 10);
    assert_true(RPC_C_AUTHN_DEFAULT == 0xFFFFFFFFu);
    assert_true(INFINITE == 0xFFFFFFFFu);
    assert_int_equal(FWPS_INJECTION_TYPE_STREAM, 0x01);
    assert_int_equal(FWPS_INJECTION_TYPE_TRANSPORT, 0x02);
    assert_int_equal(FWPS_INJECTION_TYPE_NETWORK, 0x04);
    assert_int_equal(FWPS_INJECTION_TYPE_FORWARD, 0x08);
    assert_int_equal(FWPS_INJECTION_TYPE_L2, 0x10);
    assert_int_equal(FWPS_INJECTION_TYPE_VSWITCH_TRANSPORT, 0x20);
}

static void test_const_metadata_fields(void **state)
{
    (void)state;
    assert_int_equal(FWPS_METADATA_FIELD_DISCARD_REASON, 0x00000001);
    assert_int_equal(FWPS_METADATA_FIELD_FLOW_HANDLE, 0x00000002);
    assert_int_equal(FWPS_METADATA_FIELD_SYSTEM_FLAGS, 0x00000040);
    assert_int_equal(FWPS_METADATA_FIELD_COMPARTMENT_ID, 0x00000800);
    assert_int_equal(FWPS_METADATA_FIELD_TRANSPORT_ENDPOINT_HANDLE, 0x00008000);
    assert_int_equal(FWPS_METADATA_FIELD_PACKET_DIRECTION, 0x00040000);
    assert_int_equal(FWPS_METADATA_FIELD_PACKET_SYSTEM_CRITICAL, 0x00080000);
    assert_int_equal(FWPS_METADATA_FIELD_TRANSPORT_HEADER_INCLUDE_HEADER, 0x00800000);
    assert_int_equal(FWPS_METADATA_FIELD_DESTINATION_PREFIX, 0x01000000);
    assert_int_equal(FWPS_METADATA_FIELD_ORIGINAL_DESTINATION, 0x20000000);
    assert_int_equal(FWPS_METADATA_FIELD_REDIRECT_RECORD_HANDLE, 0x40000000);
    assert_true(FWPS_METADATA_FIELD_SUB_PROCESS_TAG == 0x80000000u);
    assert_int_equal(FWPS_L2_METADATA_FIELD_ETHERNET_MAC_HEADER_SIZE, 0x1);
    assert_int_equal(FWPS_L2_METADATA_FIELD_VSWITCH_DESTINATION_PORT_ID, 0x20);

    FWPS_INCOMING_METADATA_VALUES0 md;
    memset(&md, 0, sizeof md);
    md.currentMetadataValues = FWPS_METADATA_FIELD_FLOW_HANDLE | FWPS_METADATA_FIELD_SYSTEM_FLAGS;
    assert_true(FWPS_IS_METADATA_FIELD_PRESENT(&md, FWPS_METADATA_FIELD_FLOW_HANDLE));
    assert_false(FWPS_IS_METADATA_FIELD_PRESENT(&md, FWPS_METADATA_FIELD_PROCESS_ID));
    assert_false(FWPS_IS_METADATA_FIELD_PRESENT(
        &md, FWPS_METADATA_FIELD_FLOW_HANDLE | FWPS_METADATA_FIELD_PROCESS_ID));
}

static void test_const_layer_ids(void **state)
{
    (void)state;
    assert_int_equal(FWPS_LAYER_INBOUND_IPPACKET_V4, 0);
    assert_int_equal(FWPS_LAYER_INBOUND_TRANSPORT_V4, 12);
    assert_int_equal(FWPS_LAYER_OUTBOUND_TRANSPORT_V4, 16);
    assert_int_equal(FWPS_LAYER_STREAM_V4, 20);
    assert_int_equal(FWPS_LAYER_STREAM_V4_DISCARD, 21);
    assert_int_equal(FWPS_LAYER_STREAM_V6, 22);
    assert_int_equal(FWPS_LAYER_STREAM_V6_DISCARD, 23);
    assert_int_equal(FWPS_LAYER_DATAGRAM_DATA_V4, 24);
    assert_int_equal(FWPS_LAYER_DATAGRAM_DATA_V6_DISCARD, 27);
    assert_int_equal(FWPS_LAYER_ALE_AUTH_CONNECT_V4, 48);
    assert_int_equal(FWPS_LAYER_ALE_FLOW_ESTABLISHED_V4, 52);
    assert_int_equal(FWPS_LAYER_ALE_FLOW_ESTABLISHED_V6_DISCARD, 55);
    assert_int_equal(FWPS_LAYER_INBOUND_MAC_FRAME_NATIVE, 58);
    assert_int_equal(FWPS_LAYER_ALE_ENDPOINT_CLOSURE_V4, 64);
    assert_int_equal(FWPS_LAYER_ALE_ENDPOINT_CLOSURE_V6, 65);
    assert_int_equal(FWPS_LAYER_STREAM_PACKET_V4, 70);
    assert_int_equal(FWPS_LAYER_STREAM_PACKET_V6, 71);
    assert_int_equal(FWPS_LAYER_INGRESS_VSWITCH_ETHERNET, 72);
    assert_int_equal(FWPS_LAYER_INBOUND_TRANSPORT_FAST, 78);
    assert_int_equal(FWPS_LAYER_INBOUND_RESERVED2, 82);
    assert_int_equal(FWPS_LAYER_RESERVED_LAYER_9, 83);
    assert_int_equal(FWPS_LAYER_OUTBOUND_NETWORK_CONNECTION_POLICY_V4, 85);
    assert_int_equal(FWPS_LAYER_OUTBOUND_NETWORK_CONNECTION_POLICY_V6, 86);
    assert_int_equal(FWPS_BUILTIN_LAYER_MAX, 87);
}

static void test_const_stream_fields(void **state)
{
    (void)state;
    assert_int_equal(FWPS_FIELD_STREAM_V4_IP_LOCAL_ADDRESS, 0);
    assert_int_equal(FWPS_FIELD_STREAM_V4_IP_LOCAL_ADDRESS_TYPE, 1);
    assert_int_equal(FWPS_FIELD_STREAM_V4_IP_REMOTE_ADDRESS, 2);
    assert_int_equal(FWPS_FIELD_STREAM_V4_IP_LOCAL_PORT, 3);
    assert_int_equal(FWPS_FIELD_STREAM_V4_IP_REMOTE_PORT, 4);
    assert_int_equal(FWPS_FIELD_STREAM_V4_DIRECTION, 5);
    assert_int_equal(FWPS_FIELD_STREAM_V4_FLAGS, 6);
    assert_int_equal(FWPS_FIELD_STREAM_V4_COMPARTMENT_ID, 7);
    assert_int_equal(FWPS_FIELD_STREAM_V4_MAX, 8);
    assert_int_equal(FWPS_FIELD_STREAM_V6_DIRECTION, 5);
    assert_int_equal(FWPS_FIELD_STREAM_V6_MAX, 8);
}

static void test_const_condition_flags(void **state)
{
    (void)state;
    assert_int_equal(FWP_CONDITION_FLAG_IS_LOOPBACK, 0x1);
    assert_int_equal(FWP_CONDITION_FLAG_IS_REAUTHORIZE, 0x4);
    assert_int_equal(FWP_CONDITION_FLAG_REQUIRES_ALE_CLASSIFY, 0x100);
    assert_int_equal(FWP_CONDITION_FLAG_IS_REASSEMBLED, 0x400);
    assert_int_equal(FWP_CONDITION_FLAG_IS_NAME_APP_SPECIFIED, 0x4000);
    assert_int_equal(FWP_CONDITION_FLAG_IS_RECLASSIFY, 0x20000);
    assert_int_equal(FWP_CONDITION_FLAG_IS_CONNECTION_REDIRECTED, 0x100000);
    assert_int_equal(FWP_CONDITION_FLAG_IS_NON_APPCONTAINER_LOOPBACK, 0x800000);
    assert_int_equal(FWP_CONDITION_FLAG_IS_RESERVED, 0x01000000);
    assert_int_equal(FWP_CONDITION_FLAG_IS_HONORING_POLICY_AUTHORIZE, 0x02000000);
    assert_int_equal(FWP_CONDITION_REAUTHORIZE_REASON_MID_STREAM_INSPECTION, 0x40);
}

static void test_const_ale_flow_established_fields(void **state)
{
    (void)state;
    assert_int_equal(FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_ALE_APP_ID, 0);
    assert_int_equal(FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_PROTOCOL, 5);
    assert_int_equal(FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_REMOTE_PORT, 7);
    assert_int_equal(FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_DESTINATION_ADDRESS_TYPE, 10);
    assert_int_equal(FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_DIRECTION, 12);
    assert_int_equal(FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_FLAGS, 15);
    assert_int_equal(FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_ALE_ORIGINAL_APP_ID, 16);
    assert_int_equal(FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_ALE_PACKAGE_ID, 17);
    assert_int_equal(FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_ALE_SECURITY_ATTRIBUTE_FQBN_VALUE, 18);
    assert_int_equal(FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_COMPARTMENT_ID, 19);
    assert_int_equal(FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_RESERVED_0, 20);
    assert_int_equal(FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_RESERVED_3, 23);
    assert_int_equal(FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_MAX, 24);
    assert_int_equal(FWPS_FIELD_ALE_FLOW_ESTABLISHED_V6_COMPARTMENT_ID, 19);
    assert_int_equal(FWPS_FIELD_ALE_FLOW_ESTABLISHED_V6_MAX, 24);
}

static void test_const_other_layer_fields(void **state)
{
    (void)state;
    assert_int_equal(FWPS_FIELD_DATAGRAM_DATA_V4_DIRECTION, 9);
    assert_int_equal(FWPS_FIELD_DATAGRAM_DATA_V4_MAX, 14);
    assert_int_equal(FWPS_FIELD_STREAM_PACKET_V4_DIRECTION, 7);
    assert_int_equal(FWPS_FIELD_STREAM_PACKET_V6_MAX, 12);
    assert_int_equal(FWPS_FIELD_ALE_ENDPOINT_CLOSURE_V4_FLAGS, 9);
    assert_int_equal(FWPS_FIELD_ALE_ENDPOINT_CLOSURE_V6_MAX, 13);
    assert_int_equal(FWPS_FIELD_INBOUND_TRANSPORT_V4_IP_LOCAL_ADDRESS_TYPE, 3);
    assert_int_equal(FWPS_FIELD_INBOUND_TRANSPORT_V4_MAX, 15);
    assert_int_equal(FWPS_FIELD_OUTBOUND_TRANSPORT_V4_IP_LOCAL_ADDRESS_TYPE, 2);
    assert_int_equal(FWPS_FIELD_OUTBOUND_TRANSPORT_V6_IP_DESTINATION_ADDRESS_TYPE, 9);
    assert_int_equal(FWPS_FIELD_OUTBOUND_TRANSPORT_V6_MAX, 16);
    assert_int_equal(FWPS_FIELD_ALE_AUTH_CONNECT_V4_MAX, 41);
    assert_int_equal(FWPS_FIELD_ALE_AUTH_RECV_ACCEPT_V4_MAX, 39);
}

static void test_const_stream_flags(void **state)
{
    (void)state;
    assert_int_equal(FWPS_STREAM_FLAG_RECEIVE, 0x00000001);
    assert_int_equal(FWPS_STREAM_FLAG_RECEIVE_EXPEDITED, 0x00000002);
    assert_int_equal(FWPS_STREAM_FLAG_RECEIVE_DISCONNECT, 0x00000004);
    assert_int_equal(FWPS_STREAM_FLAG_RECEIVE_ABORT, 0x00000008);
    assert_int_equal(FWPS_STREAM_FLAG_RECEIVE_PUSH, 0x00000010);
    assert_int_equal(FWPS_STREAM_FLAG_SEND, 0x00010000);
    assert_int_equal(FWPS_STREAM_FLAG_SEND_EXPEDITED, 0x00020000);
    assert_int_equal(FWPS_STREAM_FLAG_SEND_NODELAY, 0x00040000);
    assert_int_equal(FWPS_STREAM_FLAG_SEND_DISCONNECT, 0x00080000);
    assert_int_equal(FWPS_STREAM_FLAG_SEND_ABORT, 0x00100000);
}

static void test_const_stream_action_type(void **state)
{
    (void)state;
    assert_int_equal(FWPS_STREAM_ACTION_NONE, 0);
    assert_int_equal(FWPS_STREAM_ACTION_NEED_MORE_DATA, 1);
    assert_int_equal(FWPS_STREAM_ACTION_DROP_CONNECTION, 2);
    assert_int_equal(FWPS_STREAM_ACTION_DEFER, 3);
    assert_int_equal(FWPS_STREAM_ACTION_ALLOW_CONNECTION, 4);
    assert_int_equal(FWPS_STREAM_ACTION_TYPE_MAX, 5);
}

static void test_const_ntddi_default_is_newest(void **state)
{
    (void)state;
    assert_int_equal(NTDDI_VISTA, 0x06000000);
    assert_int_equal(NTDDI_VISTASP1, 0x06000100);
    assert_int_equal(NTDDI_WIN7, 0x06010000);
    assert_int_equal(NTDDI_WIN8, 0x06020000);
    assert_int_equal(NTDDI_WINBLUE, 0x06030000);
    assert_int_equal(NTDDI_WIN10, 0x0A000000);
    assert_int_equal(NTDDI_WIN10_RS3, 0x0A000004);
    assert_int_equal(NTDDI_WIN10_RS5, 0x0A000006);
    assert_int_equal(NTDDI_WIN10_CO, 0x0A00000B);
    assert_int_equal(NTDDI_WIN10_NI, 0x0A00000C);
    assert_true(NTDDI_VERSION >= NTDDI_WIN10_NI);
}

static void test_const_address_families(void **state)
{
    (void)state;
    assert_int_equal(AF_UNSPEC, 0);
    assert_int_equal(AF_INET, 2);
    /* Linux numbering on Linux; the engine also accepts the Windows 23. */
    assert_true(AF_INET6 == 10 || AF_INET6 == 23);
    assert_int_equal(OPENWFP_AF_INET6_WINDOWS, 23);
}

/* ---- unversioned names and callout function types ----------------------- */

static void NTAPI sample_classify3(const FWPS_INCOMING_VALUES0 *inFixedValues,
                                   const FWPS_INCOMING_METADATA_VALUES0 *inMetaValues,
                                   void *layerData, const void *classifyContext,
                                   const FWPS_FILTER3 *filter, UINT64 flowContext,
                                   FWPS_CLASSIFY_OUT0 *classifyOut)
{
    (void)inFixedValues;
    (void)inMetaValues;
    (void)layerData;
    (void)classifyContext;
    (void)filter;
    (void)flowContext;
    classifyOut->actionType = FWP_ACTION_PERMIT;
}

static NTSTATUS NTAPI sample_notify3(FWPS_CALLOUT_NOTIFY_TYPE notifyType, const GUID *filterKey,
                                     FWPS_FILTER3 *filter)
{
    (void)notifyType;
    (void)filterKey;
    (void)filter;
    return STATUS_SUCCESS;
}

static void NTAPI sample_flow_delete(UINT16 layerId, UINT32 calloutId, UINT64 flowContext)
{
    (void)layerId;
    (void)calloutId;
    (void)flowContext;
}

static void test_unversioned_names_map_to_version_3(void **state)
{
    (void)state;
    assert_true(_Generic((FWPS_CALLOUT *)0, FWPS_CALLOUT3 *: 1, default: 0));
    assert_true(_Generic((FWPS_FILTER *)0, FWPS_FILTER3 *: 1, default: 0));
    assert_true(_Generic((FWPS_CALLOUT_CLASSIFY_FN)0, FWPS_CALLOUT_CLASSIFY_FN3: 1, default: 0));
    assert_true(_Generic((FWPS_CALLOUT_NOTIFY_FN)0, FWPS_CALLOUT_NOTIFY_FN3: 1, default: 0));
    assert_true(_Generic(&FwpsCalloutRegister, __typeof__(&FwpsCalloutRegister3): 1, default: 0));
    assert_true(_Generic((FWPM_FILTER *)0, FWPM_FILTER0 *: 1, default: 0));
    assert_true(_Generic((FWP_VALUE *)0, FWP_VALUE0 *: 1, default: 0));

    /* A driver fills the callout struct straight from its functions. */
    FWPS_CALLOUT callout = {0};
    callout.classifyFn = sample_classify3;
    callout.notifyFn = sample_notify3;
    callout.flowDeleteFn = sample_flow_delete;

    FWPS_CLASSIFY_OUT0 out = {0};
    callout.classifyFn(NULL, NULL, NULL, NULL, NULL, 0, &out);
    assert_int_equal(out.actionType, FWP_ACTION_PERMIT);
    assert_int_equal(callout.notifyFn(FWPS_CALLOUT_NOTIFY_ADD_FILTER, NULL, NULL), STATUS_SUCCESS);
}

/* ---- GUIDs --------------------------------------------------------------- */

static void test_guid_values_of_spec_layers_and_conditions(void **state)
{
    (void)state;
    GUID_IS(FWPM_LAYER_STREAM_V4, "3b89653c-c170-49e4-b1cd-e0eeeee19a3e");
    GUID_IS(FWPM_LAYER_STREAM_V4_DISCARD, "25c4c2c2-25ff-4352-82f9-c54a4a4726dc");
    GUID_IS(FWPM_LAYER_STREAM_V6, "47c9137a-7ec4-46b3-b6e4-48e926b1eda4");
    GUID_IS(FWPM_LAYER_STREAM_V6_DISCARD, "10a59fc7-b628-4c41-9eb8-cf37d55103cf");
    GUID_IS(FWPM_LAYER_DATAGRAM_DATA_V4, "3d08bf4e-45f6-4930-a922-417098e20027");
    GUID_IS(FWPM_LAYER_DATAGRAM_DATA_V4_DISCARD, "18e330c6-7248-4e52-aaab-472ed67704fd");
    GUID_IS(FWPM_LAYER_DATAGRAM_DATA_V6, "fa45fe2f-3cba-4427-87fc-57b9a4b10d00");
    GUID_IS(FWPM_LAYER_DATAGRAM_DATA_V6_DISCARD, "09d1dfe1-9b86-4a42-be9d-8c315b92a5d0");
    GUID_IS(FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4, "af80470a-5596-4c13-9992-539e6fe57967");
    GUID_IS(FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4_DISCARD, "146ae4a9-a1d2-4d43-a31a-4c42682b8e4f");
    GUID_IS(FWPM_LAYER_ALE_FLOW_ESTABLISHED_V6, "7021d2b3-dfa4-406e-afeb-6afaf7e70efd");
    GUID_IS(FWPM_LAYER_ALE_FLOW_ESTABLISHED_V6_DISCARD, "46928636-bbca-4b76-941d-0fa7f5d7d372");
    GUID_IS(FWPM_LAYER_ALE_ENDPOINT_CLOSURE_V4, "b4766427-e2a2-467a-bd7e-dbcd1bd85a09");
    GUID_IS(FWPM_LAYER_ALE_ENDPOINT_CLOSURE_V6, "bb536ccd-4755-4ba9-9ff7-f9edf8699c7b");
    GUID_IS(FWPM_LAYER_STREAM_PACKET_V4, "af52d8ec-cb2d-44e5-ad92-f8dc38d2eb29");
    GUID_IS(FWPM_LAYER_STREAM_PACKET_V6, "779a8ca3-f099-468f-b5d4-83535c461c02");
    GUID_IS(FWPM_SUBLAYER_UNIVERSAL, "eebecc03-ced4-4380-819a-2734397b2b74");
    GUID_IS(FWPM_CONDITION_IP_LOCAL_ADDRESS, "d9ee00de-c1ef-4617-bfe3-ffd8f5a08957");
    GUID_IS(FWPM_CONDITION_IP_REMOTE_ADDRESS, "b235ae9a-1d64-49b8-a44c-5ff3d9095045");
    GUID_IS(FWPM_CONDITION_IP_LOCAL_ADDRESS_TYPE, "6ec7f6c4-376b-45d7-9e9c-d337cedcd237");
    GUID_IS(FWPM_CONDITION_IP_LOCAL_PORT, "0c1ba1af-5765-453f-af22-a8f791ac775b");
    GUID_IS(FWPM_CONDITION_IP_REMOTE_PORT, "c35a604d-d22b-4e1a-91b4-68f674ee674b");
    GUID_IS(FWPM_CONDITION_DIRECTION, "8784c146-ca97-44d6-9fd1-19fb1840cbf7");
    GUID_IS(FWPM_CONDITION_FLAGS, "632ce23b-5167-435c-86d7-e903684aa80c");
    GUID_IS(FWPM_CONDITION_IP_PROTOCOL, "3971ef2b-623e-4f9a-8cb1-6e79b806b9a7");
}

static void test_guid_initguid_in_second_translation_unit(void **state)
{
    (void)state;
    GUID_IS(OWFP_TEST_LAYOUT_GUID, "6c0a5e3d-2b1f-4c8e-9a7d-3f5b1e2c4d60");
    /* Weak copies from both units merge: both see one and the same object. */
    assert_ptr_equal(layout_guid_tu_stream_v4(), &FWPM_LAYER_STREAM_V4);
    assert_true(IsEqualGUID(layout_guid_tu_stream_v4(), &FWPM_LAYER_STREAM_V4));
    assert_false(IsEqualGUID(&FWPM_LAYER_STREAM_V4, &FWPM_LAYER_STREAM_V6));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_guid),
        cmocka_unit_test(test_layout_wfp_enums_are_32_bit),
        cmocka_unit_test(test_layout_fwp_byte_blob),
        cmocka_unit_test(test_layout_fwp_value0),
        cmocka_unit_test(test_layout_fwp_condition_value0),
        cmocka_unit_test(test_layout_fwp_range0_and_masks),
        cmocka_unit_test(test_layout_fwps_incoming_values0),
        cmocka_unit_test(test_layout_fwps_filter_condition0),
        cmocka_unit_test(test_layout_fwps_action0),
        cmocka_unit_test(test_layout_fwps_filter0_to_3),
        cmocka_unit_test(test_layout_fwps_classify_out0),
        cmocka_unit_test(test_layout_fwps_discard_and_fragment_metadata0),
        cmocka_unit_test(test_layout_fwps_callout0_to_3),
        cmocka_unit_test(test_layout_fwps_stream_data_offset0),
        cmocka_unit_test(test_layout_fwps_stream_data0),
        cmocka_unit_test(test_layout_fwps_stream_callout_io_packet0),
        cmocka_unit_test(test_layout_fwps_incoming_metadata_values0),
        cmocka_unit_test(test_layout_socket_address_types),
        cmocka_unit_test(test_layout_fwpm_display_data0),
        cmocka_unit_test(test_layout_fwpm_session0),
        cmocka_unit_test(test_layout_fwpm_provider0),
        cmocka_unit_test(test_layout_fwpm_sublayer0),
        cmocka_unit_test(test_layout_fwpm_callout0),
        cmocka_unit_test(test_layout_fwpm_action0),
        cmocka_unit_test(test_layout_fwpm_filter_condition0),
        cmocka_unit_test(test_layout_fwpm_filter0),
        cmocka_unit_test(test_const_ntstatus_sample),
        cmocka_unit_test(test_const_action_types),
        cmocka_unit_test(test_const_data_types),
        cmocka_unit_test(test_const_match_types),
        cmocka_unit_test(test_const_misc_enums),
        cmocka_unit_test(test_const_callout_flags),
        cmocka_unit_test(test_const_fwps_rights_and_flags),
        cmocka_unit_test(test_const_fwpm_filter_flags),
        cmocka_unit_test(test_const_management_constants),
        cmocka_unit_test(test_const_metadata_fields),
        cmocka_unit_test(test_const_layer_ids),
        cmocka_unit_test(test_const_stream_fields),
        cmocka_unit_test(test_const_condition_flags),
        cmocka_unit_test(test_const_ale_flow_established_fields),
        cmocka_unit_test(test_const_other_layer_fields),
        cmocka_unit_test(test_const_stream_flags),
        cmocka_unit_test(test_const_stream_action_type),
        cmocka_unit_test(test_const_ntddi_default_is_newest),
        cmocka_unit_test(test_const_address_families),
        cmocka_unit_test(test_unversioned_names_map_to_version_3),
        cmocka_unit_test(test_guid_values_of_spec_layers_and_conditions),
        cmocka_unit_test(test_guid_initguid_in_second_translation_unit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
