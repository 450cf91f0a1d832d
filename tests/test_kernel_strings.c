/*
 * Counted-string conversions and editing (src/kernel/rtl_string.c): ANSI
 * (Latin-1 here) to Unicode and back, allocated or into the caller's buffer,
 * appending, integers to text, case, and the ANSI string helpers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <ntddk.h>
#include <openwfp/kernel.h>

static int quiet_setup(void **state)
{
    (void)state;
    owfp_kernel_set_quiet(true);
    return 0;
}

/* Outstanding pool under the conversions' tag ("Strg"). */
static void count_strg(uint32_t tag, uint64_t n, uint64_t bytes, void *ctx)
{
    (void)bytes;
    char name[5];
    owfp_pool_tag_string(tag, name);
    if (strcmp(name, "Strg") == 0)
        *(uint64_t *)ctx = n;
}

static uint64_t strg_blocks(void)
{
    uint64_t n = 0;
    owfp_pool_outstanding(count_strg, &n);
    return n;
}

static void test_ansi_to_unicode_allocated(void **state)
{
    (void)state;
    ANSI_STRING a;
    RtlInitAnsiString(&a, "caf\xe9 \x80!");
    UNICODE_STRING u = {0, 0, NULL};
    assert_int_equal(RtlAnsiStringToUnicodeString(&u, &a, TRUE), STATUS_SUCCESS);
    assert_int_equal(u.Length, 7 * sizeof(WCHAR));
    assert_int_equal(u.MaximumLength, 8 * sizeof(WCHAR));
    assert_int_equal(strg_blocks(), 1);
    /* Latin-1: every byte becomes the unit of the same value. */
    const WCHAR want[] = {'c', 'a', 'f', 0xe9, ' ', 0x80, '!', 0};
    assert_memory_equal(u.Buffer, want, sizeof(want));
    assert_int_equal(RtlxAnsiStringToUnicodeSize(&a), 8 * sizeof(WCHAR));

    /* And back: the same bytes. */
    ANSI_STRING back = {0, 0, NULL};
    assert_int_equal(RtlUnicodeStringToAnsiString(&back, &u, TRUE), STATUS_SUCCESS);
    assert_int_equal(back.Length, 7);
    assert_int_equal(back.MaximumLength, 8);
    assert_memory_equal(back.Buffer, "caf\xe9 \x80!", 8);
    assert_int_equal(strg_blocks(), 2);
    RtlFreeAnsiString(&back);
    RtlFreeUnicodeString(&u);
    assert_null(u.Buffer);
    assert_int_equal(u.Length, 0);
    assert_int_equal(u.MaximumLength, 0);
    assert_int_equal(strg_blocks(), 0);
}

static void test_unicode_to_ansi_replaces_beyond_latin1(void **state)
{
    (void)state;
    /* "é€😀x": U+20AC and both halves of the surrogate pair have no byte. */
    WCHAR text[] = {0xe9, 0x20ac, 0xd83d, 0xde00, 'x'};
    UNICODE_STRING u = {sizeof(text), sizeof(text), text};
    char out[8];
    memset(out, 'Z', sizeof(out));
    ANSI_STRING a = {0, sizeof(out), out};
    assert_int_equal(RtlUnicodeStringToAnsiString(&a, &u, FALSE), STATUS_SUCCESS);
    assert_int_equal(a.Length, 5);
    assert_memory_equal(out, "\xe9???x", 6); /* terminated: there was room */
    assert_int_equal(RtlxUnicodeStringToAnsiSize(&u), 6);

    /* Exactly the characters, no room for the terminator: not written. */
    memset(out, 'Z', sizeof(out));
    a.MaximumLength = 5;
    assert_int_equal(RtlUnicodeStringToAnsiString(&a, &u, FALSE), STATUS_SUCCESS);
    assert_int_equal(out[5], 'Z');
    /* Too small: nothing converted. */
    memset(out, 'Z', sizeof(out));
    a.MaximumLength = 4;
    a.Length = 0;
    assert_int_equal(RtlUnicodeStringToAnsiString(&a, &u, FALSE), STATUS_BUFFER_OVERFLOW);
    assert_int_equal(out[0], 'Z');
    assert_int_equal(a.Length, 0);
}

static void test_ansi_to_unicode_into_buffer(void **state)
{
    (void)state;
    ANSI_STRING a;
    RtlInitAnsiString(&a, "abc");
    WCHAR buf[4];
    memset(buf, 0x55, sizeof(buf));
    UNICODE_STRING u = {0, 3 * sizeof(WCHAR), buf};
    assert_int_equal(RtlAnsiStringToUnicodeString(&u, &a, FALSE), STATUS_SUCCESS);
    assert_int_equal(u.Length, 6);
    assert_int_equal(buf[2], 'c');
    assert_int_equal(buf[3], 0x5555); /* no room for a terminator */
    u.MaximumLength = 4;
    assert_int_equal(RtlAnsiStringToUnicodeString(&u, &a, FALSE), STATUS_BUFFER_OVERFLOW);
    /* Longer than a UNICODE_STRING can count. */
    static char big[40000];
    memset(big, 'x', sizeof(big));
    ANSI_STRING huge = {(USHORT)sizeof(big), (USHORT)sizeof(big), big};
    UNICODE_STRING none = {0, 0, NULL};
    assert_int_equal(RtlAnsiStringToUnicodeString(&none, &huge, TRUE),
                     STATUS_INVALID_PARAMETER_2);
    assert_null(none.Buffer);
    assert_int_equal(strg_blocks(), 0);
}

static void test_conversion_at_dispatch_is_a_finding(void **state)
{
    (void)state;
    owfp_kernel_findings_reset();
    ANSI_STRING a;
    RtlInitAnsiString(&a, "x");
    WCHAR buf[2];
    UNICODE_STRING u = {0, sizeof(buf), buf};
    KIRQL old = KeRaiseIrqlToDpcLevel();
    assert_int_equal(RtlAnsiStringToUnicodeString(&u, &a, FALSE), STATUS_SUCCESS);
    KeLowerIrql(old);
    assert_int_equal(owfp_kernel_findings(), 1);
    char msg[128];
    owfp_kernel_last_finding(msg, sizeof(msg));
    assert_string_equal(msg, "IRQL violation: RtlAnsiStringToUnicodeString at DISPATCH_LEVEL");
    owfp_kernel_findings_reset();
}

static void test_append(void **state)
{
    (void)state;
    WCHAR buf[8];
    UNICODE_STRING d = {0, sizeof(buf), buf};
    assert_int_equal(RtlAppendUnicodeToString(&d, L"ab"), STATUS_SUCCESS);
    assert_int_equal(d.Length, 4);
    assert_int_equal(buf[2], 0);
    UNICODE_STRING cd = RTL_CONSTANT_STRING(L"cdef");
    assert_int_equal(RtlAppendUnicodeStringToString(&d, &cd), STATUS_SUCCESS);
    assert_int_equal(d.Length, 12);
    assert_memory_equal(buf, L"abcdef", 7 * sizeof(WCHAR));
    /* All or nothing. */
    assert_int_equal(RtlAppendUnicodeToString(&d, L"xyz"), STATUS_BUFFER_TOO_SMALL);
    assert_int_equal(d.Length, 12);
    assert_int_equal(RtlAppendUnicodeToString(&d, L"gh"), STATUS_SUCCESS);
    assert_int_equal(d.Length, 16); /* full: no terminator */
    assert_int_equal(RtlAppendUnicodeToString(&d, NULL), STATUS_SUCCESS);
    UNICODE_STRING empty = {0, 0, NULL};
    assert_int_equal(RtlAppendUnicodeStringToString(&d, &empty), STATUS_SUCCESS);
    UNICODE_STRING one = RTL_CONSTANT_STRING(L"i");
    assert_int_equal(RtlAppendUnicodeStringToString(&d, &one), STATUS_BUFFER_TOO_SMALL);
}

static void test_integer_to_text(void **state)
{
    (void)state;
    WCHAR buf[40];
    UNICODE_STRING u = {0, sizeof(buf), buf};
    assert_int_equal(RtlIntegerToUnicodeString(4294967295u, 0, &u), STATUS_SUCCESS);
    assert_int_equal(u.Length, 10 * sizeof(WCHAR));
    assert_memory_equal(buf, L"4294967295", 11 * sizeof(WCHAR));
    assert_int_equal(RtlIntegerToUnicodeString(0xBEEF, 16, &u), STATUS_SUCCESS);
    assert_memory_equal(buf, L"BEEF", 5 * sizeof(WCHAR));
    assert_int_equal(RtlIntegerToUnicodeString(5, 2, &u), STATUS_SUCCESS);
    assert_memory_equal(buf, L"101", 4 * sizeof(WCHAR));
    assert_int_equal(RtlIntegerToUnicodeString(0, 8, &u), STATUS_SUCCESS);
    assert_memory_equal(buf, L"0", 2 * sizeof(WCHAR));
    assert_int_equal(RtlInt64ToUnicodeString(18446744073709551615ull, 10, &u), STATUS_SUCCESS);
    assert_memory_equal(buf, L"18446744073709551615", 21 * sizeof(WCHAR));
    assert_int_equal(RtlIntegerToUnicodeString(1, 7, &u), STATUS_INVALID_PARAMETER);
    UNICODE_STRING small = {0, 2 * sizeof(WCHAR), buf};
    assert_int_equal(RtlIntegerToUnicodeString(123, 10, &small), STATUS_BUFFER_OVERFLOW);
    assert_int_equal(RtlIntegerToUnicodeString(12, 10, &small), STATUS_SUCCESS);
    assert_int_equal(small.Length, 4);
}

static void test_case_and_compare(void **state)
{
    (void)state;
    assert_int_equal(RtlUpcaseUnicodeChar('q'), 'Q');
    assert_int_equal(RtlDowncaseUnicodeChar('Q'), 'q');
    assert_int_equal(RtlDowncaseUnicodeChar(0xC9), 0xE9); /* É -> é */
    assert_int_equal(RtlDowncaseUnicodeChar(0xD7), 0xD7); /* × has no case */
    assert_int_equal(RtlDowncaseUnicodeChar(0x178), 0xFF);
    assert_int_equal(RtlDowncaseUnicodeChar(0x3A3), 0x3A3); /* outside Latin-1: as written */

    UNICODE_STRING src = RTL_CONSTANT_STRING(L"Tcp\xe9x");
    UNICODE_STRING up = {0, 0, NULL};
    assert_int_equal(RtlUpcaseUnicodeString(&up, &src, TRUE), STATUS_SUCCESS);
    assert_memory_equal(up.Buffer, L"TCP\xc9X", 6 * sizeof(WCHAR));
    UNICODE_STRING tcp = RTL_CONSTANT_STRING(L"tcp\xc9X");
    assert_true(RtlEqualUnicodeString(&up, &tcp, TRUE));
    assert_false(RtlEqualUnicodeString(&up, &tcp, FALSE));
    assert_true(RtlCompareUnicodeString(&tcp, &up, FALSE) > 0);
    RtlFreeUnicodeString(&up);

    STRING a, b;
    RtlInitString(&a, "Filter");
    RtlInitAnsiString(&b, "FILTER");
    assert_true(RtlEqualString(&a, &b, TRUE));
    assert_false(RtlEqualString(&a, &b, FALSE));
    assert_true(RtlCompareString(&a, &b, FALSE) > 0);
    assert_int_equal(RtlCompareString(&a, &b, TRUE), 0);
    RtlInitString(&b, "Filte");
    assert_true(RtlCompareString(&a, &b, TRUE) > 0);
    char buf[4];
    STRING copy = {0, sizeof(buf), buf};
    RtlCopyString(&copy, &a);
    assert_int_equal(copy.Length, 4);
    assert_memory_equal(buf, "Filt", 4);
    RtlCopyString(&copy, NULL);
    assert_int_equal(copy.Length, 0);
    assert_int_equal(strg_blocks(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ansi_to_unicode_allocated),
        cmocka_unit_test(test_unicode_to_ansi_replaces_beyond_latin1),
        cmocka_unit_test(test_ansi_to_unicode_into_buffer),
        cmocka_unit_test(test_conversion_at_dispatch_is_a_finding),
        cmocka_unit_test(test_append),
        cmocka_unit_test(test_integer_to_text),
        cmocka_unit_test(test_case_and_compare),
    };
    return cmocka_run_group_tests(tests, quiet_setup, NULL);
}
