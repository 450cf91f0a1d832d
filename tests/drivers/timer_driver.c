/*
 * A driver with a periodic timer whose DPC counts ticks. DriverEntry waits
 * (on an event the DPC sets, together with the timer itself) until three
 * ticks have been seen; DriverUnload cancels the timer and flushes the DPCs,
 * unless told not to by its parameters:
 *   LeaveTimer=1     the timer stays set
 *   LeaveDpc=1       a slow DPC is running and another one is queued
 *   LeaveResource=1  its ERESOURCE is not deleted
 * so the host's unload report and its clean-up can be checked.
 */
#include <ntddk.h>
#include <wdm.h>

DRIVER_INITIALIZE DriverEntry;
DRIVER_UNLOAD TimerUnload;
KDEFERRED_ROUTINE TimerTick;
KDEFERRED_ROUTINE TimerSlowDpc;
KDEFERRED_ROUTINE TimerLateDpc;

static KTIMER g_timer;
static KDPC g_tickDpc, g_slowDpc, g_lateDpc;
static KEVENT g_threeTicks, g_slowStarted;
static ERESOURCE g_resource;
static LONG volatile g_ticks;
static ULONG g_leaveTimer, g_leaveDpc, g_leaveResource;

_Use_decl_annotations_
VOID TimerTick(PKDPC Dpc, PVOID DeferredContext, PVOID SystemArgument1, PVOID SystemArgument2)
{
    UNREFERENCED_PARAMETER(Dpc);
    UNREFERENCED_PARAMETER(DeferredContext);
    UNREFERENCED_PARAMETER(SystemArgument1);
    UNREFERENCED_PARAMETER(SystemArgument2);
    NT_ASSERT(KeGetCurrentIrql() == DISPATCH_LEVEL);
    if (InterlockedIncrement(&g_ticks) == 3) {
        KeSetEvent(&g_threeTicks, IO_NO_INCREMENT, FALSE);
    }
}

_Use_decl_annotations_
VOID TimerSlowDpc(PKDPC Dpc, PVOID DeferredContext, PVOID SystemArgument1, PVOID SystemArgument2)
{
    UNREFERENCED_PARAMETER(Dpc);
    UNREFERENCED_PARAMETER(DeferredContext);
    UNREFERENCED_PARAMETER(SystemArgument1);
    UNREFERENCED_PARAMETER(SystemArgument2);
    KeSetEvent(&g_slowStarted, IO_NO_INCREMENT, FALSE);
    /* Far longer than a DPC should take: the host must wait for it. */
    for (int i = 0; i < 300; i++) {
        KeStallExecutionProcessor(1000);
    }
    DbgPrint("TimerDriver: slow DPC done\n");
}

_Use_decl_annotations_
VOID TimerLateDpc(PKDPC Dpc, PVOID DeferredContext, PVOID SystemArgument1, PVOID SystemArgument2)
{
    UNREFERENCED_PARAMETER(Dpc);
    UNREFERENCED_PARAMETER(DeferredContext);
    UNREFERENCED_PARAMETER(SystemArgument1);
    UNREFERENCED_PARAMETER(SystemArgument2);
    DbgPrint("TimerDriver: late DPC ran\n");
}

_Use_decl_annotations_
VOID TimerUnload(PDRIVER_OBJECT DriverObject)
{
    UNREFERENCED_PARAMETER(DriverObject);
    if (!g_leaveTimer) {
        KeCancelTimer(&g_timer);
        KeFlushQueuedDpcs();
    }
    if (g_leaveDpc) {
        LARGE_INTEGER second;
        second.QuadPart = -10 * 1000 * 1000;
        KeInitializeDpc(&g_slowDpc, TimerSlowDpc, NULL);
        KeInitializeDpc(&g_lateDpc, TimerLateDpc, NULL);
        KeInsertQueueDpc(&g_slowDpc, NULL, NULL);
        KeWaitForSingleObject(&g_slowStarted, Executive, KernelMode, FALSE, &second);
        KeInsertQueueDpc(&g_lateDpc, NULL, NULL);
    }
    if (!g_leaveResource) {
        ExDeleteResourceLite(&g_resource);
    }
    DbgPrint("TimerDriver: unloaded, %s\n", g_ticks >= 3 ? "ticked" : "did not tick");
}

_Use_decl_annotations_
NTSTATUS DriverEntry(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath)
{
    RTL_QUERY_REGISTRY_TABLE table[4];
    LARGE_INTEGER due, fiveSeconds;
    PVOID objects[2];
    NTSTATUS status;

    UNREFERENCED_PARAMETER(RegistryPath);
    RtlZeroMemory(table, sizeof(table));
    table[0].Flags = RTL_QUERY_REGISTRY_DIRECT;
    table[0].Name = L"LeaveTimer";
    table[0].EntryContext = &g_leaveTimer;
    table[1].Flags = RTL_QUERY_REGISTRY_DIRECT;
    table[1].Name = L"LeaveDpc";
    table[1].EntryContext = &g_leaveDpc;
    table[2].Flags = RTL_QUERY_REGISTRY_DIRECT;
    table[2].Name = L"LeaveResource";
    table[2].EntryContext = &g_leaveResource;
    status = RtlQueryRegistryValues(RTL_REGISTRY_SERVICES, L"timer_driver\\Parameters", table,
                                    NULL, NULL);
    if (!NT_SUCCESS(status)) {
        return status;
    }

    status = ExInitializeResourceLite(&g_resource);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    KeInitializeEvent(&g_threeTicks, NotificationEvent, FALSE);
    KeInitializeEvent(&g_slowStarted, NotificationEvent, FALSE);
    KeInitializeTimerEx(&g_timer, NotificationTimer);
    KeInitializeDpc(&g_tickDpc, TimerTick, NULL);
    due.QuadPart = -10 * 10000; /* 10 ms */
    KeSetTimerEx(&g_timer, due, 10, &g_tickDpc);

    /* Both: the timer has expired (it is a notification timer) and the DPC
     * has counted three ticks. */
    objects[0] = &g_threeTicks;
    objects[1] = &g_timer;
    fiveSeconds.QuadPart = -5LL * 10 * 1000 * 1000;
    status = KeWaitForMultipleObjects(2, objects, WaitAll, Executive, KernelMode, FALSE,
                                      &fiveSeconds, NULL);
    DbgPrint("TimerDriver: three ticks: 0x%08X\n", status);
    if (status != STATUS_SUCCESS) {
        KeCancelTimer(&g_timer);
        KeFlushQueuedDpcs();
        ExDeleteResourceLite(&g_resource);
        return STATUS_UNSUCCESSFUL;
    }
    DriverObject->DriverUnload = TimerUnload;
    return STATUS_SUCCESS;
}
