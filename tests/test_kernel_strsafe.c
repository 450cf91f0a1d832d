/*
 * ntstrsafe and the kernel printf dialect: copy/cat/length/printf in their
 * A/W and Cch/Cb forms with the documented statuses (truncation is
 * STATUS_BUFFER_OVERFLOW with a terminated, truncated result), 16-bit WCHAR
 * strings through %ws / %S / %wZ / %ls, 32-bit %lu, and DbgPrint's prefix.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <ntddk.h>
#include <ntstrsafe.h>
#include <openwfp/kernel.h>

/* Compares a WCHAR string against an ASCII expectation. */
static void assert_wide(const WCHAR *w, const char *expect)
{
    size_t i = 0;
    for (; expect[i]; i++) {
        if (w[i] != (WCHAR)(unsigned char)expect[i])
            fail_msg("unit %zu: got 0x%x, want '%c'", i, (unsigned)w[i], expect[i]);
    }
    assert_int_equal(w[i], 0);
}

static void test_copy(void **state)
{
    (void)state;
    char a[8];
    assert_int_equal(RtlStringCchCopyA(a, sizeof(a), "hello"), STATUS_SUCCESS);
    assert_string_equal(a, "hello");
    assert_int_equal(RtlStringCchCopyA(a, sizeof(a), "truncated"), STATUS_BUFFER_OVERFLOW);
    assert_string_equal(a, "truncat");
    assert_int_equal(RtlStringCchCopyA(a, 0, "x"), STATUS_INVALID_PARAMETER);
    assert_int_equal(RtlStringCchCopyA(a, (size_t)NTSTRSAFE_MAX_CCH + 1, "x"),
                     STATUS_INVALID_PARAMETER);
    assert_int_equal(RtlStringCbCopyA(a, 4, "abcdef"), STATUS_BUFFER_OVERFLOW);
    assert_string_equal(a, "abc");
    assert_int_equal(RtlStringCchCopyNA(a, sizeof(a), "abcdef", 2), STATUS_SUCCESS);
    assert_string_equal(a, "ab");

    WCHAR w[6];
    assert_int_equal(RtlStringCchCopyW(w, ARRAYSIZE(w), L"wide"), STATUS_SUCCESS);
    assert_wide(w, "wide");
    assert_int_equal(RtlStringCbCopyW(w, sizeof(w), L"widestring"), STATUS_BUFFER_OVERFLOW);
    assert_wide(w, "wides");
    assert_int_equal(RtlStringCbCopyW(w, 1, L"x"), STATUS_INVALID_PARAMETER); /* < one WCHAR */
    assert_int_equal(RtlStringCbCopyNW(w, sizeof(w), L"abcdef", 3 * sizeof(WCHAR)),
                     STATUS_SUCCESS);
    assert_wide(w, "abc");
}

static void test_cat_and_length(void **state)
{
    (void)state;
    char a[10] = "abc";
    assert_int_equal(RtlStringCchCatA(a, sizeof(a), "def"), STATUS_SUCCESS);
    assert_string_equal(a, "abcdef");
    assert_int_equal(RtlStringCchCatA(a, sizeof(a), "ghijk"), STATUS_BUFFER_OVERFLOW);
    assert_string_equal(a, "abcdefghi");
    char unterminated[4] = {'x', 'y', 'z', 'w'};
    assert_int_equal(RtlStringCchCatA(unterminated, sizeof(unterminated), "a"),
                     STATUS_INVALID_PARAMETER);
    WCHAR w[8] = L"ab";
    assert_int_equal(RtlStringCbCatW(w, sizeof(w), L"cd"), STATUS_SUCCESS);
    assert_wide(w, "abcd");
    assert_int_equal(RtlStringCchCatW(w, ARRAYSIZE(w), L"efghij"), STATUS_BUFFER_OVERFLOW);
    assert_wide(w, "abcdefg");

    size_t n = 99;
    assert_int_equal(RtlStringCchLengthA("hello", 10, &n), STATUS_SUCCESS);
    assert_int_equal(n, 5);
    assert_int_equal(RtlStringCchLengthA("hello", 5, &n), STATUS_INVALID_PARAMETER);
    assert_int_equal(n, 0);
    assert_int_equal(RtlStringCbLengthW(L"hey", 100, &n), STATUS_SUCCESS);
    assert_int_equal(n, 3 * sizeof(WCHAR));
    assert_int_equal(RtlStringCchLengthW(L"hey", 3, &n), STATUS_INVALID_PARAMETER);
    assert_int_equal(RtlStringCchLengthA(NULL, 3, &n), STATUS_INVALID_PARAMETER);
    assert_int_equal(RtlStringCbLengthA("ab", 3, &n), STATUS_SUCCESS);
    assert_int_equal(n, 2);
}

static void test_printf_narrow(void **state)
{
    (void)state;
    char b[128];
    UNICODE_STRING u = RTL_CONSTANT_STRING(L"\\Device\\Wfp");
    ANSI_STRING as;
    RtlInitAnsiString(&as, "ansi");
    ULONG ul = 0xFFFFFFFFu;
    assert_int_equal(RtlStringCchPrintfA(b, sizeof(b), "%d|%u|%lu|%lx|%I64u|%llx|%X", -5, 7u, ul,
                                         ul, (ULONG64)1 << 40, 0xabcULL, 0xbeefu),
                     STATUS_SUCCESS);
    assert_string_equal(b, "-5|7|4294967295|ffffffff|1099511627776|abc|BEEF");
    assert_int_equal(RtlStringCchPrintfA(b, sizeof(b), "[%s][%S][%ws][%ls][%wZ][%Z]", "n",
                                         L"wS", L"ws", L"ls", &u, &as),
                     STATUS_SUCCESS);
    assert_string_equal(b, "[n][wS][ws][ls][\\Device\\Wfp][ansi]");
    assert_int_equal(RtlStringCchPrintfA(b, sizeof(b), "%5d|%-4s|%04x|%.3s|%c%C|%+d|%%|%#x", 42,
                                         "ab", 0x1f, "abcdef", 'q', (int)L'W', 3, 255),
                     STATUS_SUCCESS);
    assert_string_equal(b, "   42|ab  |001f|abc|qW|+3|%|0xff");
    assert_int_equal(RtlStringCchPrintfA(b, sizeof(b), "%p", (void *)0x1234), STATUS_SUCCESS);
    assert_string_equal(b, "0000000000001234");
    assert_int_equal(RtlStringCchPrintfA(b, sizeof(b), "%s|%wZ|%*d|%.*s|%zu|%Iu|%hd", (char *)NULL,
                                         (UNICODE_STRING *)NULL, 4, 7, 2, "xyz", (size_t)9,
                                         (SIZE_T)10, 65537),
                     STATUS_SUCCESS);
    assert_string_equal(b, "(null)|(null)|   7|xy|9|10|1");
    assert_int_equal(RtlStringCchPrintfA(b, sizeof(b), "%.2f", 3.14159), STATUS_SUCCESS);
    assert_string_equal(b, "3.14");
    /* Wide characters that are not ASCII become '?' in narrow output. */
    WCHAR nonascii[] = {'a', 0x263A, 'b', 0};
    assert_int_equal(RtlStringCchPrintfA(b, sizeof(b), "%ws", nonascii), STATUS_SUCCESS);
    assert_string_equal(b, "a?b");

    char small[6];
    assert_int_equal(RtlStringCchPrintfA(small, sizeof(small), "%s", "overflowing"),
                     STATUS_BUFFER_OVERFLOW);
    assert_string_equal(small, "overf");
    assert_int_equal(RtlStringCbPrintfA(small, 3, "%d", 12345), STATUS_BUFFER_OVERFLOW);
    assert_string_equal(small, "12");
    assert_int_equal(RtlStringCchPrintfA(small, sizeof(small), "%d", 12345), STATUS_SUCCESS);
    assert_int_equal(RtlStringCchPrintfA(small, 0, "x"), STATUS_INVALID_PARAMETER);
}

static void test_printf_wide(void **state)
{
    (void)state;
    WCHAR w[96];
    UNICODE_STRING u = RTL_CONSTANT_STRING(L"name");
    assert_int_equal(RtlStringCchPrintfW(w, ARRAYSIZE(w), L"%s|%S|%ws|%ls|%hs|%wZ|%c|%C|%u",
                                         L"wide", "narrow", L"ws", L"ls", "hs", &u, (int)L'x',
                                         'y', 12u),
                     STATUS_SUCCESS);
    assert_wide(w, "wide|narrow|ws|ls|hs|name|x|y|12");
    assert_int_equal(RtlStringCbPrintfW(w, sizeof(w), L"%08lX-%04hx", 0xabcdu, 0x12),
                     STATUS_SUCCESS);
    assert_wide(w, "0000ABCD-0012");
    WCHAR small[4];
    assert_int_equal(RtlStringCchPrintfW(small, ARRAYSIZE(small), L"%ws", L"toolong"),
                     STATUS_BUFFER_OVERFLOW);
    assert_wide(small, "too");
    /* Non-ASCII 16-bit units pass through a wide-to-wide format untouched. */
    WCHAR smile[] = {0x263A, 0};
    assert_int_equal(RtlStringCchPrintfW(w, ARRAYSIZE(w), L"<%ws>", smile), STATUS_SUCCESS);
    assert_int_equal(w[1], 0x263A);
    assert_int_equal(sizeof(WCHAR), 2);

    WCHAR ubuf[8];
    UNICODE_STRING dst = {0, sizeof(ubuf), ubuf};
    assert_int_equal(RtlUnicodeStringPrintf(&dst, L"%d-%ws", 42, L"ab"), STATUS_SUCCESS);
    assert_int_equal(dst.Length, 5 * sizeof(WCHAR));
    assert_memory_equal(ubuf, L"42-ab", 5 * sizeof(WCHAR));
    assert_int_equal(RtlUnicodeStringPrintf(&dst, L"%ws", L"0123456789"), STATUS_BUFFER_OVERFLOW);
    assert_int_equal(dst.Length, sizeof(ubuf)); /* full, not terminated */
    assert_int_equal(RtlUnicodeStringCopyString(&dst, L"xy"), STATUS_SUCCESS);
    assert_int_equal(dst.Length, 2 * sizeof(WCHAR));
}

/* DbgPrint goes to stderr; capture it through a pipe. */
static void capture(void (*fn)(void), char *out, size_t size)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fds[1], 2);
    fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fds[1]);
    ssize_t n = read(fds[0], out, size - 1);
    out[n > 0 ? n : 0] = '\0';
    close(fds[0]);
}

static void print_some(void)
{
    UNICODE_STRING u = RTL_CONSTANT_STRING(L"svc");
    DbgPrint("flow %I64u %wZ\n", (ULONG64)7, &u);
    DbgPrintEx(DPFLTR_IHVNETWORK_ID, DPFLTR_ERROR_LEVEL, "err %lu\n", 3u);
}

static void test_dbgprint_prefix(void **state)
{
    (void)state;
    char out[256];
    owfp_kernel_set_driver_name("stmedit");
    capture(print_some, out, sizeof(out));
    assert_string_equal(out, "[stmedit] flow 7 svc\n[stmedit] err 3\n");
    owfp_kernel_set_thread_driver_name("mine");
    capture(print_some, out, sizeof(out));
    assert_string_equal(out, "[mine] flow 7 svc\n[mine] err 3\n");
    owfp_kernel_set_thread_driver_name(NULL);
    owfp_kernel_set_driver_name(NULL);
    capture(print_some, out, sizeof(out));
    assert_string_equal(out, "flow 7 svc\nerr 3\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_copy),
        cmocka_unit_test(test_cat_and_length),
        cmocka_unit_test(test_printf_narrow),
        cmocka_unit_test(test_printf_wide),
        cmocka_unit_test(test_dbgprint_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
