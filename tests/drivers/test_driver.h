/*
 * What the callout drivers of tests/drivers/ have in common, written as
 * they are (for Windows, WDK names only): the device, the dynamic session,
 * a stream callout registered for IPv4 and IPv6 with a filter each, and
 * taking all that down again.
 *
 * Each test driver is one source file that includes this header once, so
 * the two globals below are that driver's own, and the helpers are static
 * (__inline: a driver need not use every one of them). What a driver does
 * on purpose (a crash, a fault, a leak) stays in its own file, where a
 * backtrace names it.
 *
 * The example drivers of drivers/ do not use this header: each of them is
 * one file a user can copy.
 */
#ifndef TEST_DRIVER_H
#define TEST_DRIVER_H

#include <ntddk.h>
#include <wdm.h>
#include <ndis.h>
#include <fwpsk.h>
#include <fwpmk.h>

#define TEST_SUBLAYER_WEIGHT 0x100

static PDEVICE_OBJECT g_device; /* the callouts are registered for it */
static HANDLE g_engine;         /* the dynamic session; its objects go when it closes */

/* A stream callout, the same at STREAM_V4 and STREAM_V6, with one filter
 * at each. */
typedef struct TEST_STREAM_CALLOUT_ {
    const GUID *calloutKeys[2]; /* at STREAM_V4, at STREAM_V6 */
    FWPS_CALLOUT_CLASSIFY_FN0 classifyFn;
    FWPS_CALLOUT_FLOW_DELETE_NOTIFY_FN0 flowDeleteFn; /* NULL: none */
    PWSTR calloutName;
    PWSTR filterName;
    FWP_ACTION_TYPE filterAction; /* FWP_ACTION_CALLOUT_INSPECTION or _TERMINATING */
    /* A sublayer of TEST_SUBLAYER_WEIGHT added for the filters; NULL: the
     * filters go to the default sublayer. */
    const GUID *sublayerKey;
    PWSTR sublayerName;
} TEST_STREAM_CALLOUT;

static __inline NTSTATUS TestCreateDevice(_In_ PDRIVER_OBJECT DriverObject)
{
    return IoCreateDevice(DriverObject, 0, NULL, FILE_DEVICE_NETWORK, FILE_DEVICE_SECURE_OPEN,
                          FALSE, &g_device);
}

static __inline void TestDeleteDevice(void)
{
    if (g_device != NULL) {
        IoDeleteDevice(g_device);
        g_device = NULL;
    }
}

static __inline NTSTATUS TestOpenSession(void)
{
    FWPM_SESSION0 session = {0};

    session.flags = FWPM_SESSION_FLAG_DYNAMIC;
    return FwpmEngineOpen0(NULL, RPC_C_AUTHN_WINNT, NULL, &session, &g_engine);
}

/* Closing the dynamic session deletes its sublayers, callouts and filters:
 * no classify comes after it. */
static __inline void TestCloseSession(void)
{
    if (g_engine != NULL) {
        FwpmEngineClose0(g_engine);
        g_engine = NULL;
    }
}

/* Ends the transaction begun on g_engine: committed after a success,
 * aborted after a failure, whose status it returns. */
static __inline NTSTATUS TestEndTransaction(_In_ NTSTATUS status)
{
    if (!NT_SUCCESS(status)) {
        FwpmTransactionAbort0(g_engine);
        return status;
    }
    return FwpmTransactionCommit0(g_engine);
}

static __inline NTSTATUS NTAPI TestNotify(_In_ FWPS_CALLOUT_NOTIFY_TYPE notifyType,
                                          _In_ const GUID *filterKey,
                                          _Inout_ FWPS_FILTER0 *filter)
{
    UNREFERENCED_PARAMETER(notifyType);
    UNREFERENCED_PARAMETER(filterKey);
    UNREFERENCED_PARAMETER(filter);
    return STATUS_SUCCESS;
}

/* At one layer: FwpsCalloutRegister0, FwpmCalloutAdd0 and FwpmFilterAdd0. */
static __inline NTSTATUS TestAddStreamCalloutAt(_In_ const TEST_STREAM_CALLOUT *callout,
                                                _In_ const GUID *calloutKey,
                                                _In_ const GUID *layerKey,
                                                _Out_ UINT32 *calloutId)
{
    FWPS_CALLOUT0 sCallout = {0};
    FWPM_CALLOUT0 mCallout = {0};
    FWPM_FILTER0 filter = {0};
    NTSTATUS status;

    sCallout.calloutKey = *calloutKey;
    sCallout.classifyFn = callout->classifyFn;
    sCallout.notifyFn = TestNotify;
    sCallout.flowDeleteFn = callout->flowDeleteFn;
    status = FwpsCalloutRegister0(g_device, &sCallout, calloutId);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    mCallout.calloutKey = *calloutKey;
    mCallout.displayData.name = callout->calloutName;
    mCallout.applicableLayer = *layerKey;
    status = FwpmCalloutAdd0(g_engine, &mCallout, NULL, NULL);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    filter.displayData.name = callout->filterName;
    filter.layerKey = *layerKey;
    if (callout->sublayerKey != NULL) {
        filter.subLayerKey = *callout->sublayerKey;
    }
    filter.action.type = callout->filterAction;
    filter.action.calloutKey = *calloutKey;
    filter.weight.type = FWP_EMPTY;
    return FwpmFilterAdd0(g_engine, &filter, NULL, NULL);
}

/* Opens the dynamic session (g_device must exist) and, in one transaction,
 * adds the sublayer and, at STREAM_V4 then STREAM_V6, registers the callout
 * (calloutIds[0], [1]; 0 where none) and adds it and its filter. After a
 * failure the caller takes down what was done (TestCloseSession,
 * TestUnregisterCallouts). */
static __inline NTSTATUS TestAddStreamCallout(_In_ const TEST_STREAM_CALLOUT *callout,
                                              _Out_writes_(2) UINT32 *calloutIds)
{
    FWPM_SUBLAYER0 sublayer = {0};
    NTSTATUS status;

    status = TestOpenSession();
    if (NT_SUCCESS(status)) {
        status = FwpmTransactionBegin0(g_engine, 0);
    }
    if (!NT_SUCCESS(status)) {
        return status;
    }
    if (callout->sublayerKey != NULL) {
        sublayer.subLayerKey = *callout->sublayerKey;
        sublayer.displayData.name = callout->sublayerName;
        sublayer.weight = TEST_SUBLAYER_WEIGHT;
        status = FwpmSubLayerAdd0(g_engine, &sublayer, NULL);
    }
    if (NT_SUCCESS(status)) {
        status = TestAddStreamCalloutAt(callout, callout->calloutKeys[0], &FWPM_LAYER_STREAM_V4,
                                        &calloutIds[0]);
    }
    if (NT_SUCCESS(status)) {
        status = TestAddStreamCalloutAt(callout, callout->calloutKeys[1], &FWPM_LAYER_STREAM_V6,
                                        &calloutIds[1]);
    }
    return TestEndTransaction(status);
}

static __inline void TestUnregisterCallouts(_Inout_updates_(count) UINT32 *calloutIds,
                                            _In_ ULONG count)
{
    for (ULONG i = 0; i < count; i++) {
        if (calloutIds[i] != 0) {
            FwpsCalloutUnregisterById0(calloutIds[i]);
            calloutIds[i] = 0;
        }
    }
}

/* The whole clean-up of a driver with nothing more than the callout of
 * TestAddStreamCallout and the device. */
static __inline void TestCleanup(_Inout_updates_(2) UINT32 *calloutIds)
{
    TestCloseSession();
    TestUnregisterCallouts(calloutIds, 2);
    TestDeleteDevice();
}

/* A stream injection handle and an NBL pool (with NET_BUFFERs) of poolTag.
 * After a failure the caller frees what it got. */
static __inline NTSTATUS TestCreateInjection(_In_ ULONG poolTag, _Out_ HANDLE *injection,
                                             _Out_ NDIS_HANDLE *nblPool)
{
    NET_BUFFER_LIST_POOL_PARAMETERS poolParameters = {0};
    NTSTATUS status;

    *nblPool = NULL;
    status = FwpsInjectionHandleCreate0(AF_UNSPEC, FWPS_INJECTION_TYPE_STREAM, injection);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    poolParameters.Header.Type = NDIS_OBJECT_TYPE_DEFAULT;
    poolParameters.Header.Revision = NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1;
    poolParameters.Header.Size = NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1;
    poolParameters.ProtocolId = NDIS_PROTOCOL_ID_DEFAULT;
    poolParameters.fAllocateNetBuffer = TRUE;
    poolParameters.PoolTag = poolTag;
    *nblPool = NdisAllocateNetBufferListPool(NULL, &poolParameters);
    return *nblPool != NULL ? STATUS_SUCCESS : STATUS_INSUFFICIENT_RESOURCES;
}

/* Destroys what TestCreateInjection made (what of it is not NULL). */
static __inline void TestDestroyInjection(_Inout_ HANDLE *injection, _Inout_ NDIS_HANDLE *nblPool)
{
    if (*injection != NULL) {
        FwpsInjectionHandleDestroy0(*injection);
        *injection = NULL;
    }
    if (*nblPool != NULL) {
        NdisFreeNetBufferListPool(*nblPool);
        *nblPool = NULL;
    }
}

/* Opens the Parameters subkey of the driver's service key. */
static __inline NTSTATUS TestOpenParametersKey(_In_ PUNICODE_STRING RegistryPath,
                                               _Out_ HANDLE *parametersKey)
{
    OBJECT_ATTRIBUTES attributes;
    UNICODE_STRING parameters = RTL_CONSTANT_STRING(L"Parameters");
    HANDLE serviceKey = NULL;
    NTSTATUS status;

    *parametersKey = NULL;
    InitializeObjectAttributes(&attributes, RegistryPath, OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE,
                               NULL, NULL);
    status = ZwOpenKey(&serviceKey, KEY_READ, &attributes);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    InitializeObjectAttributes(&attributes, &parameters, OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE,
                               serviceKey, NULL);
    status = ZwOpenKey(parametersKey, KEY_READ, &attributes);
    ZwClose(serviceKey);
    return status;
}

/* Waits, 10 ms at a time, until *count is 0 (PASSIVE_LEVEL). */
static __inline void TestWaitForZero(_In_ LONG volatile *count)
{
    LARGE_INTEGER interval;

    interval.QuadPart = -10 * 1000 * 10; /* 10 ms, relative */
    while (InterlockedCompareExchange(count, 0, 0) != 0) {
        KeDelayExecutionThread(KernelMode, FALSE, &interval);
    }
}

#endif /* TEST_DRIVER_H */
