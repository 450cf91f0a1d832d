/*
 * Base types of the Windows kernel, mapped to the LP64 Linux ABI.
 *
 * Windows is LLP64: LONG and ULONG are 32 bits there, so they are fixed-width
 * types here, never `long`. WCHAR is 16 bits; L"..." literals only have that
 * width with -fshort-wchar, which `pkg-config --cflags openwfp-wdk` supplies.
 */
#ifndef OPENWFP_WDK_NTDEF_H
#define OPENWFP_WDK_NTDEF_H

#include <stddef.h>
#include <stdint.h>

#include "sal.h"

/*
 * Pool tags are written as multi-character constants ('gaT1'), which MSVC
 * takes silently and GCC warns about by default; a driver built with -Werror
 * would not compile unchanged. The diagnostic is off from here to the end of
 * the translation unit unless the driver asks to keep it.
 */
#if defined(__GNUC__) && !defined(__clang__) && !defined(OPENWFP_KEEP_MULTICHAR_WARNING)
#pragma GCC diagnostic ignored "-Wmultichar"
#endif

#if defined(__SIZEOF_WCHAR_T__) && __SIZEOF_WCHAR_T__ != 2
#error "openwfp's WDK headers need a 16-bit wchar_t: compile with -fshort-wchar (pkg-config --cflags openwfp-wdk)"
#endif

#ifdef __cplusplus
#define EXTERN_C extern "C"
#else
#define EXTERN_C extern
#endif

/* Calling conventions are no-ops on x86-64 System V; callouts are ported as source. */
#define NTAPI
#define WINAPI
#define NTSYSAPI
#define NTKERNELAPI
#define FASTCALL
#define FORCEINLINE static inline
#define DECLSPEC_SELECTANY __attribute__((weak))
#define DECLSPEC_ALIGN(x) __attribute__((aligned(x)))
#define DECLSPEC_NOINLINE __attribute__((noinline))

#define VOID void
#define CONST const
#ifndef IN
#define IN
#endif
#ifndef OUT
#define OUT
#endif
#ifndef OPTIONAL
#define OPTIONAL
#endif

typedef void *PVOID, *LPVOID;
typedef const void *PCVOID, *LPCVOID;
typedef void *HANDLE, **PHANDLE;

typedef char CHAR, *PCHAR, *PSTR, *LPSTR;
typedef const char *PCSTR, *LPCSTR, *PCSZ, *PCCH;
typedef uint8_t UCHAR, *PUCHAR, BYTE, *PBYTE, UINT8, *PUINT8;
typedef int8_t INT8, *PINT8;
typedef int16_t SHORT, *PSHORT, INT16, *PINT16;
typedef uint16_t USHORT, *PUSHORT, WORD, *PWORD, UINT16, *PUINT16;
typedef int32_t INT, *PINT, LONG, *PLONG, INT32, *PINT32, LONG32, *PLONG32, BOOL, *PBOOL;
typedef uint32_t UINT, *PUINT, ULONG, *PULONG, DWORD, *PDWORD, UINT32, *PUINT32, ULONG32,
    *PULONG32, DWORD32, *PDWORD32;
typedef int64_t LONGLONG, *PLONGLONG, INT64, *PINT64, LONG64, *PLONG64;
typedef uint64_t ULONGLONG, *PULONGLONG, UINT64, *PUINT64, ULONG64, *PULONG64, DWORD64,
    *PDWORD64;
typedef intptr_t LONG_PTR, *PLONG_PTR, INT_PTR, *PINT_PTR, SSIZE_T, *PSSIZE_T;
typedef uintptr_t ULONG_PTR, *PULONG_PTR, UINT_PTR, *PUINT_PTR, DWORD_PTR, *PDWORD_PTR;
typedef size_t SIZE_T, *PSIZE_T;
typedef uint8_t BOOLEAN, *PBOOLEAN;
typedef float FLOAT;
typedef double DOUBLE;

#if defined(__SIZEOF_WCHAR_T__) && __SIZEOF_WCHAR_T__ == 2
typedef wchar_t WCHAR;
#else
typedef uint16_t WCHAR;
#endif
typedef WCHAR *PWCHAR, *PWCH, *PWSTR, *LPWSTR, *NWPSTR;
typedef const WCHAR *PCWCH, *PCWSTR, *LPCWSTR;

typedef LONG NTSTATUS, *PNTSTATUS;
#define NT_SUCCESS(Status) (((NTSTATUS)(Status)) >= 0)
#define NT_INFORMATION(Status) ((((ULONG)(Status)) >> 30) == 1)
#define NT_WARNING(Status) ((((ULONG)(Status)) >> 30) == 2)
#define NT_ERROR(Status) ((((ULONG)(Status)) >> 30) == 3)

#ifndef TRUE
#define TRUE 1
#endif
#ifndef FALSE
#define FALSE 0
#endif
#ifndef NULL
#define NULL ((void *)0)
#endif

typedef union _LARGE_INTEGER {
    struct {
        ULONG LowPart;
        LONG HighPart;
    };
    struct {
        ULONG LowPart;
        LONG HighPart;
    } u;
    LONGLONG QuadPart;
} LARGE_INTEGER, *PLARGE_INTEGER;

typedef union _ULARGE_INTEGER {
    struct {
        ULONG LowPart;
        ULONG HighPart;
    };
    struct {
        ULONG LowPart;
        ULONG HighPart;
    } u;
    ULONGLONG QuadPart;
} ULARGE_INTEGER, *PULARGE_INTEGER;

typedef struct _LUID {
    ULONG LowPart;
    LONG HighPart;
} LUID, *PLUID;

typedef struct _UNICODE_STRING {
    USHORT Length;        /* bytes, without terminator */
    USHORT MaximumLength; /* bytes */
    PWCH Buffer;
} UNICODE_STRING, *PUNICODE_STRING;
typedef const UNICODE_STRING *PCUNICODE_STRING;

typedef struct _STRING {
    USHORT Length;
    USHORT MaximumLength;
    PCHAR Buffer;
} STRING, *PSTRING, ANSI_STRING, *PANSI_STRING;

typedef struct _LIST_ENTRY {
    struct _LIST_ENTRY *Flink;
    struct _LIST_ENTRY *Blink;
} LIST_ENTRY, *PLIST_ENTRY;

typedef struct _SINGLE_LIST_ENTRY {
    struct _SINGLE_LIST_ENTRY *Next;
} SINGLE_LIST_ENTRY, *PSINGLE_LIST_ENTRY;

/* Pool blocks, and so SLIST entries, are 16-byte aligned as on 64-bit Windows. */
#ifndef MEMORY_ALLOCATION_ALIGNMENT
#define MEMORY_ALLOCATION_ALIGNMENT 16
#endif

/* Interlocked singly linked lists (the calls are in wdm.h; ndis.h embeds the
 * header): the Windows x64 layout, under the Windows headers' own guard. */
#ifndef _SLIST_HEADER_
#define _SLIST_HEADER_
typedef struct DECLSPEC_ALIGN(16) _SLIST_ENTRY {
    struct _SLIST_ENTRY *Next;
} SLIST_ENTRY, *PSLIST_ENTRY;

typedef union DECLSPEC_ALIGN(16) _SLIST_HEADER {
    struct {
        ULONGLONG Alignment;
        ULONGLONG Region;
    };
    struct {
        ULONGLONG Depth : 16;
        ULONGLONG Sequence : 48;
        ULONGLONG Reserved : 4;
        ULONGLONG NextEntry : 60;
    } HeaderX64;
} SLIST_HEADER, *PSLIST_HEADER;
#endif

typedef UCHAR KIRQL, *PKIRQL;
#define PASSIVE_LEVEL 0
#define LOW_LEVEL 0
#define APC_LEVEL 1
#define DISPATCH_LEVEL 2

typedef struct _SID SID, *PSID;
typedef struct _SECURITY_DESCRIPTOR SECURITY_DESCRIPTOR;
typedef PVOID PSECURITY_DESCRIPTOR;

#define FIELD_OFFSET(type, field) ((LONG)offsetof(type, field))
#define RTL_FIELD_SIZE(type, field) (sizeof(((type *)0)->field))
#define RTL_NUMBER_OF(a) (sizeof(a) / sizeof((a)[0]))
#define ARRAYSIZE(a) RTL_NUMBER_OF(a)
#define CONTAINING_RECORD(address, type, field) \
    ((type *)((PCHAR)(address) - (ULONG_PTR)offsetof(type, field)))
#define UNREFERENCED_PARAMETER(P) ((void)(P))
#define DBG_UNREFERENCED_PARAMETER(P) ((void)(P))
#define DBG_UNREFERENCED_LOCAL_VARIABLE(V) ((void)(V))
#define C_ASSERT(e) _Static_assert(e, #e)

/* As in the WDK: C only, not with NOMINMAX, never over an existing macro. */
#if !defined(__cplusplus) && !defined(NOMINMAX)
#ifndef max
#define max(a, b) (((a) > (b)) ? (a) : (b))
#endif
#ifndef min
#define min(a, b) (((a) < (b)) ? (a) : (b))
#endif
#endif

typedef CHAR CCHAR;
typedef ULONG LOGICAL, *PLOGICAL;
typedef ULONG ACCESS_MASK, *PACCESS_MASK;
typedef LONG KPRIORITY;
typedef ULONG_PTR KAFFINITY, *PKAFFINITY;

#include "ntstatus.h"

#endif
