/*
 * Filter conditions (spec §2.3, §2.4, §3, M5): validation of the management
 * form, the compiled run-time form, and the exact semantics of every match
 * type on every operand type that allows it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/alloc.h"
#include "engine/condition.h"
#include "engine/layers.h"

#define N(a) (uint32_t)(sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------- helpers */

static const struct owfp_layer_desc *stream4(void)
{
    return owfp_layer_by_id(FWPS_LAYER_STREAM_V4);
}

static const struct owfp_layer_desc *stream6(void)
{
    return owfp_layer_by_id(FWPS_LAYER_STREAM_V6);
}

static const struct owfp_layer_desc *ale4(void)
{
    return owfp_layer_by_id(FWPS_LAYER_ALE_FLOW_ESTABLISHED_V4);
}

static FWP_CONDITION_VALUE0 cv_of(FWP_VALUE0 v)
{
    FWP_CONDITION_VALUE0 c;
    memset(&c, 0, sizeof(c));
    c.type = v.type;
    memcpy((char *)&c + offsetof(FWP_CONDITION_VALUE0, uint8),
           (const char *)&v + offsetof(FWP_VALUE0, uint8), 8);
    return c;
}

static FWP_VALUE0 v_u8(uint8_t x)
{
    FWP_VALUE0 v = {.type = FWP_UINT8};
    v.uint8 = x;
    return v;
}

static FWP_VALUE0 v_u16(uint16_t x)
{
    FWP_VALUE0 v = {.type = FWP_UINT16};
    v.uint16 = x;
    return v;
}

static FWP_VALUE0 v_u32(uint32_t x)
{
    FWP_VALUE0 v = {.type = FWP_UINT32};
    v.uint32 = x;
    return v;
}

static FWP_VALUE0 v_empty(void)
{
    FWP_VALUE0 v = {.type = FWP_EMPTY};
    return v;
}

static FWP_VALUE0 v_blob(FWP_BYTE_BLOB *b)
{
    FWP_VALUE0 v = {.type = FWP_BYTE_BLOB_TYPE};
    v.byteBlob = b;
    return v;
}

static FWP_VALUE0 v_str(const WCHAR *s)
{
    FWP_VALUE0 v = {.type = FWP_UNICODE_STRING_TYPE};
    v.unicodeString = (WCHAR *)s;
    return v;
}

static FWP_VALUE0 v_ba16(FWP_BYTE_ARRAY16 *a)
{
    FWP_VALUE0 v = {.type = FWP_BYTE_ARRAY16_TYPE};
    v.byteArray16 = a;
    return v;
}

static FWPS_FILTER_CONDITION0 scond(uint32_t match, FWP_CONDITION_VALUE0 v)
{
    FWPS_FILTER_CONDITION0 c;
    memset(&c, 0, sizeof(c));
    c.matchType = match;
    c.conditionValue = v;
    return c;
}

static bool matches(uint32_t match, FWP_VALUE0 cond, FWP_VALUE0 value)
{
    FWPS_FILTER_CONDITION0 c = scond(match, cv_of(cond));
    return owfp_condition_match(&c, &value);
}

static FWPM_FILTER_CONDITION0 mcond(const GUID *key, uint32_t match, FWP_CONDITION_VALUE0 v)
{
    FWPM_FILTER_CONDITION0 c;
    memset(&c, 0, sizeof(c));
    c.fieldKey = *key;
    c.matchType = match;
    c.conditionValue = v;
    return c;
}

static FWPM_FILTER_CONDITION0 port_cond(const GUID *key, uint32_t match, uint16_t port)
{
    return mcond(key, match, cv_of(v_u16(port)));
}

static NTSTATUS compile_status(const struct owfp_layer_desc *layer,
                               const FWPM_FILTER_CONDITION0 *conds, uint32_t n)
{
    FWPS_FILTER_CONDITION0 *out = NULL;
    bool or_groups;
    NTSTATUS st = owfp_conditions_compile(layer, conds, n, &out, &or_groups);
    if (NT_SUCCESS(st))
        owfp_conditions_free(out);
    else
        assert_null(out);
    return st;
}

static NTSTATUS compile_one(const struct owfp_layer_desc *layer, FWPM_FILTER_CONDITION0 c)
{
    return compile_status(layer, &c, 1);
}

/* Incoming values for STREAM_V4 with every field FWP_EMPTY. */
struct stream_in {
    FWPS_INCOMING_VALUE0 v[FWPS_FIELD_STREAM_V4_MAX];
    FWPS_INCOMING_VALUES0 in;
};

static void stream_in_init(struct stream_in *s)
{
    memset(s, 0, sizeof(*s));
    s->in.layerId = FWPS_LAYER_STREAM_V4;
    s->in.valueCount = FWPS_FIELD_STREAM_V4_MAX;
    s->in.incomingValue = s->v;
}

static void set_ports(struct stream_in *s, uint16_t local, uint16_t remote)
{
    s->v[FWPS_FIELD_STREAM_V4_IP_LOCAL_PORT].value = v_u16(local);
    s->v[FWPS_FIELD_STREAM_V4_IP_REMOTE_PORT].value = v_u16(remote);
}

/* ---------------------------------------------- integers, all match types */

struct int_case {
    uint32_t type;
    int is_signed;
    int64_t samples[5];
};

static const struct int_case int_cases[] = {
    {FWP_UINT8, 0, {0, 1, 2, 254, 255}},
    {FWP_UINT16, 0, {0, 1, 80, 65534, 65535}},
    {FWP_UINT32, 0, {0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF}},
    {FWP_UINT64, 0, {0, 1, INT64_MAX, (int64_t)UINT64_C(0x8000000000000000), -1}},
    {FWP_INT8, 1, {-128, -1, 0, 1, 127}},
    {FWP_INT16, 1, {-32768, -1, 0, 1, 32767}},
    {FWP_INT32, 1, {INT32_MIN, -1, 0, 1, INT32_MAX}},
    {FWP_INT64, 1, {INT64_MIN, -1, 0, 1, INT64_MAX}},
};

static FWP_VALUE0 int_value(uint32_t type, int64_t x, uint64_t *u64, int64_t *i64)
{
    FWP_VALUE0 v = {.type = type};
    switch (type) {
    case FWP_UINT8:
        v.uint8 = (uint8_t)x;
        break;
    case FWP_UINT16:
        v.uint16 = (uint16_t)x;
        break;
    case FWP_UINT32:
        v.uint32 = (uint32_t)x;
        break;
    case FWP_UINT64:
        *u64 = (uint64_t)x;
        v.uint64 = u64;
        break;
    case FWP_INT8:
        v.int8 = (int8_t)x;
        break;
    case FWP_INT16:
        v.int16 = (int16_t)x;
        break;
    case FWP_INT32:
        v.int32 = (int32_t)x;
        break;
    default:
        *i64 = x;
        v.int64 = i64;
        break;
    }
    return v;
}

/* The C comparison the match must reproduce: signed types compare signed. */
static int int_order(const struct int_case *ic, int64_t a, int64_t b)
{
    if (ic->is_signed)
        return (a > b) - (a < b);
    return ((uint64_t)a > (uint64_t)b) - ((uint64_t)a < (uint64_t)b);
}

static void test_integer_orderings_every_type(void **state)
{
    (void)state;
    for (uint32_t t = 0; t < N(int_cases); t++) {
        const struct int_case *ic = &int_cases[t];
        for (int i = 0; i < 5; i++) {
            for (int j = 0; j < 5; j++) {
                uint64_t cu, vu;
                int64_t ci, vi;
                FWP_VALUE0 c = int_value(ic->type, ic->samples[i], &cu, &ci);
                FWP_VALUE0 v = int_value(ic->type, ic->samples[j], &vu, &vi);
                int o = int_order(ic, ic->samples[j], ic->samples[i]); /* value vs condition */
                assert_int_equal(matches(FWP_MATCH_EQUAL, c, v), o == 0);
                assert_int_equal(matches(FWP_MATCH_NOT_EQUAL, c, v), o != 0);
                assert_int_equal(matches(FWP_MATCH_GREATER, c, v), o > 0);
                assert_int_equal(matches(FWP_MATCH_LESS, c, v), o < 0);
                assert_int_equal(matches(FWP_MATCH_GREATER_OR_EQUAL, c, v), o >= 0);
                assert_int_equal(matches(FWP_MATCH_LESS_OR_EQUAL, c, v), o <= 0);
            }
        }
    }
}

static void test_range_is_inclusive_every_integer_type(void **state)
{
    (void)state;
    for (uint32_t t = 0; t < N(int_cases); t++) {
        const struct int_case *ic = &int_cases[t];
        for (int lo = 0; lo < 5; lo++) {
            for (int hi = lo; hi < 5; hi++) {
                uint64_t lu, hu, vu;
                int64_t li, hi64, vi;
                FWP_RANGE0 r;
                r.valueLow = int_value(ic->type, ic->samples[lo], &lu, &li);
                r.valueHigh = int_value(ic->type, ic->samples[hi], &hu, &hi64);
                FWP_CONDITION_VALUE0 cv = {.type = FWP_RANGE_TYPE};
                cv.rangeValue = &r;
                FWPS_FILTER_CONDITION0 c = scond(FWP_MATCH_RANGE, cv);
                for (int k = 0; k < 5; k++) {
                    FWP_VALUE0 v = int_value(ic->type, ic->samples[k], &vu, &vi);
                    bool want = k >= lo && k <= hi; /* samples are sorted */
                    assert_int_equal(owfp_condition_match(&c, &v), want);
                }
            }
        }
    }
}

static void test_flags_on_every_unsigned_type(void **state)
{
    (void)state;
    static const uint32_t types[] = {FWP_UINT8, FWP_UINT16, FWP_UINT32, FWP_UINT64};
    static const uint64_t masks[] = {0, 0x1, 0x3, 0x81, 0xF0};
    for (uint32_t t = 0; t < N(types); t++) {
        for (uint32_t m = 0; m < N(masks); m++) {
            for (uint64_t x = 0; x < 256; x += 7) {
                uint64_t cu, vu;
                int64_t ci, vi;
                FWP_VALUE0 c = int_value(types[t], (int64_t)masks[m], &cu, &ci);
                FWP_VALUE0 v = int_value(types[t], (int64_t)x, &vu, &vi);
                uint64_t cm = masks[m], xv = x;
                if (types[t] == FWP_UINT8)
                    xv &= 0xFF;
                assert_int_equal(matches(FWP_MATCH_FLAGS_ALL_SET, c, v), (xv & cm) == cm);
                assert_int_equal(matches(FWP_MATCH_FLAGS_ANY_SET, c, v), (xv & cm) != 0);
                assert_int_equal(matches(FWP_MATCH_FLAGS_NONE_SET, c, v), (xv & cm) == 0);
            }
        }
    }
}

static void test_flags_not_allowed_on_signed_operands(void **state)
{
    (void)state;
    FWP_VALUE0 c = {.type = FWP_INT32}, v = {.type = FWP_INT32};
    c.int32 = 1;
    v.int32 = 1;
    assert_false(matches(FWP_MATCH_FLAGS_ALL_SET, c, v));
    assert_false(matches(FWP_MATCH_FLAGS_ANY_SET, c, v));
    assert_true(matches(FWP_MATCH_EQUAL, c, v));
}

static void test_float_and_double_equal_only(void **state)
{
    (void)state;
    FWP_VALUE0 f1 = {.type = FWP_FLOAT}, f2 = {.type = FWP_FLOAT};
    f1.float32 = 1.5f;
    f2.float32 = 1.5f;
    assert_true(matches(FWP_MATCH_EQUAL, f1, f2));
    f2.float32 = 2.5f;
    assert_false(matches(FWP_MATCH_EQUAL, f1, f2));
    assert_false(matches(FWP_MATCH_LESS, f1, f2)); /* FLOAT is not sortable */

    double a = 3.25, b = 3.25;
    FWP_VALUE0 d1 = {.type = FWP_DOUBLE}, d2 = {.type = FWP_DOUBLE};
    d1.double64 = &a;
    d2.double64 = &b;
    assert_true(matches(FWP_MATCH_EQUAL, d1, d2));
    b = -3.25;
    assert_false(matches(FWP_MATCH_EQUAL, d1, d2));
    assert_false(matches(FWP_MATCH_NOT_EQUAL, d1, d2));
}

/* ----------------------------------------------------- byte-ish operands */

static void test_byte_array16_orders_like_memcmp(void **state)
{
    (void)state;
    FWP_BYTE_ARRAY16 a, b;
    memset(&a, 0x20, sizeof(a));
    memset(&b, 0x20, sizeof(b));
    b.byteArray16[15] = 0x21;
    assert_true(matches(FWP_MATCH_LESS, v_ba16(&b), v_ba16(&a)));
    assert_true(matches(FWP_MATCH_GREATER, v_ba16(&a), v_ba16(&b)));
    assert_true(matches(FWP_MATCH_NOT_EQUAL, v_ba16(&a), v_ba16(&b)));
    a.byteArray16[0] = 0x80; /* unsigned bytes: 0x80 > 0x20 */
    assert_true(matches(FWP_MATCH_GREATER, v_ba16(&b), v_ba16(&a)));
    assert_true(matches(FWP_MATCH_EQUAL, v_ba16(&a), v_ba16(&a)));
    assert_true(matches(FWP_MATCH_LESS_OR_EQUAL, v_ba16(&a), v_ba16(&a)));
    assert_true(matches(FWP_MATCH_GREATER_OR_EQUAL, v_ba16(&a), v_ba16(&a)));

    FWP_RANGE0 r;
    r.valueLow = v_ba16(&b);
    r.valueHigh = v_ba16(&a);
    FWP_CONDITION_VALUE0 cv = {.type = FWP_RANGE_TYPE};
    cv.rangeValue = &r;
    FWPS_FILTER_CONDITION0 c = scond(FWP_MATCH_RANGE, cv);
    FWP_VALUE0 v = v_ba16(&a);
    assert_true(owfp_condition_match(&c, &v));
    v = v_ba16(&b);
    assert_true(owfp_condition_match(&c, &v));
}

static void test_blob_orders_lexicographically_shorter_is_less(void **state)
{
    (void)state;
    uint8_t ab[] = {'a', 'b'}, abc[] = {'a', 'b', 'c'}, b_[] = {'b'};
    FWP_BYTE_BLOB x = {2, ab}, y = {3, abc}, z = {1, b_}, empty = {0, NULL};
    assert_true(matches(FWP_MATCH_LESS, v_blob(&y), v_blob(&x)));    /* "ab" < "abc" */
    assert_true(matches(FWP_MATCH_GREATER, v_blob(&y), v_blob(&z))); /* "b" > "abc" */
    assert_true(matches(FWP_MATCH_LESS, v_blob(&x), v_blob(&empty)));
    assert_true(matches(FWP_MATCH_EQUAL, v_blob(&empty), v_blob(&empty)));
    assert_true(matches(FWP_MATCH_NOT_EQUAL, v_blob(&x), v_blob(&y)));
    assert_true(matches(FWP_MATCH_GREATER_OR_EQUAL, v_blob(&x), v_blob(&y)));
    assert_false(matches(FWP_MATCH_LESS_OR_EQUAL, v_blob(&x), v_blob(&y)));

    FWP_RANGE0 r = {v_blob(&x), v_blob(&z)};
    FWP_CONDITION_VALUE0 cv = {.type = FWP_RANGE_TYPE};
    cv.rangeValue = &r;
    FWPS_FILTER_CONDITION0 c = scond(FWP_MATCH_RANGE, cv);
    FWP_VALUE0 v = v_blob(&y);
    assert_true(owfp_condition_match(&c, &v));
    v = v_blob(&empty);
    assert_false(owfp_condition_match(&c, &v));
}

static void test_unicode_orders_by_code_unit_shorter_is_less(void **state)
{
    (void)state;
    assert_true(matches(FWP_MATCH_LESS, v_str(L"abc"), v_str(L"ab")));
    assert_true(matches(FWP_MATCH_GREATER, v_str(L"abc"), v_str(L"abd")));
    assert_true(matches(FWP_MATCH_GREATER, v_str(L"a"), v_str(L"\u00e9")));
    assert_true(matches(FWP_MATCH_EQUAL, v_str(L""), v_str(L"")));
    assert_false(matches(FWP_MATCH_EQUAL, v_str(L"ABC"), v_str(L"abc")));
    assert_true(matches(FWP_MATCH_NOT_EQUAL, v_str(L"ABC"), v_str(L"abc")));
    assert_true(matches(FWP_MATCH_LESS_OR_EQUAL, v_str(L"abc"), v_str(L"abc")));
    assert_true(matches(FWP_MATCH_GREATER_OR_EQUAL, v_str(L"abc"), v_str(L"abc")));

    FWP_RANGE0 r = {v_str(L"b"), v_str(L"d")};
    FWP_CONDITION_VALUE0 cv = {.type = FWP_RANGE_TYPE};
    cv.rangeValue = &r;
    FWPS_FILTER_CONDITION0 c = scond(FWP_MATCH_RANGE, cv);
    FWP_VALUE0 v = v_str(L"c");
    assert_true(owfp_condition_match(&c, &v));
    v = v_str(L"d");
    assert_true(owfp_condition_match(&c, &v));
    v = v_str(L"da");
    assert_false(owfp_condition_match(&c, &v));
}

static void test_equal_case_insensitive_folds_ascii_only(void **state)
{
    (void)state;
    assert_true(
        matches(FWP_MATCH_EQUAL_CASE_INSENSITIVE, v_str(L"HeLLo.EXE"), v_str(L"hello.exe")));
    assert_false(matches(FWP_MATCH_EQUAL_CASE_INSENSITIVE, v_str(L"hello"), v_str(L"hello!")));
    assert_false(matches(FWP_MATCH_EQUAL_CASE_INSENSITIVE, v_str(L"\u00c9"), v_str(L"\u00e9")));
    assert_true(matches(FWP_MATCH_EQUAL_CASE_INSENSITIVE, v_str(L""), v_str(L"")));
    uint8_t b[] = {'a'};
    FWP_BYTE_BLOB blob = {1, b};
    assert_false(matches(FWP_MATCH_EQUAL_CASE_INSENSITIVE, v_blob(&blob), v_blob(&blob)));
}

static void test_prefix_is_a_suffix_test_on_unicode(void **state)
{
    (void)state;
    const WCHAR *path = L"c:\\windows\\system32\\svchost.exe";
    assert_true(matches(FWP_MATCH_PREFIX, v_str(L"svchost.exe"), v_str(path)));
    assert_false(matches(FWP_MATCH_PREFIX, v_str(L"c:\\windows"), v_str(path)));
    assert_true(matches(FWP_MATCH_PREFIX, v_str(L""), v_str(path)));
    assert_true(matches(FWP_MATCH_PREFIX, v_str(path), v_str(path)));
    assert_false(matches(FWP_MATCH_PREFIX, v_str(L"xsvchost.exe"), v_str(L"svchost.exe")));
    assert_false(matches(FWP_MATCH_NOT_PREFIX, v_str(L"svchost.exe"), v_str(path)));
    assert_true(matches(FWP_MATCH_NOT_PREFIX, v_str(L"c:\\windows"), v_str(path)));
}

/* UTF-16LE bytes of `s`, with or without the terminator. */
static FWP_BYTE_BLOB utf16_blob(const WCHAR *s, uint8_t *buf, bool terminator)
{
    size_t n = 0;
    while (s[n])
        n++;
    n += terminator;
    for (size_t i = 0; i < n; i++) {
        buf[2 * i] = (uint8_t)(s[i] & 0xFF);
        buf[2 * i + 1] = (uint8_t)(s[i] >> 8);
    }
    FWP_BYTE_BLOB b = {(UINT32)(2 * n), buf};
    return b;
}

static void test_prefix_on_app_id_blob_ignores_utf16_terminator(void **state)
{
    (void)state;
    uint8_t vb[128], cb[64], cb2[64];
    FWP_BYTE_BLOB value = utf16_blob(L"\\device\\harddiskvolume1\\app.exe", vb, true);
    FWP_BYTE_BLOB with_nul = utf16_blob(L"app.exe", cb, true);
    FWP_BYTE_BLOB without_nul = utf16_blob(L"app.exe", cb2, false);
    assert_true(matches(FWP_MATCH_PREFIX, v_blob(&with_nul), v_blob(&value)));
    assert_true(matches(FWP_MATCH_PREFIX, v_blob(&without_nul), v_blob(&value)));
    assert_false(matches(FWP_MATCH_NOT_PREFIX, v_blob(&without_nul), v_blob(&value)));
    FWP_BYTE_BLOB other = utf16_blob(L"other.exe", cb2, true);
    assert_false(matches(FWP_MATCH_PREFIX, v_blob(&other), v_blob(&value)));
    assert_true(matches(FWP_MATCH_NOT_PREFIX, v_blob(&other), v_blob(&value)));
    /* A value without terminator matches a condition with one. */
    FWP_BYTE_BLOB bare = utf16_blob(L"\\x\\app.exe", vb, false);
    assert_true(matches(FWP_MATCH_PREFIX, v_blob(&with_nul), v_blob(&bare)));
    /* EQUAL stays exact on the raw bytes. */
    assert_false(matches(FWP_MATCH_EQUAL, v_blob(&with_nul), v_blob(&without_nul)));
}

static void test_prefix_on_plain_blob_compares_bytes(void **state)
{
    (void)state;
    uint8_t v[] = {1, 2, 3, 4}, c1[] = {3, 4}, c2[] = {2, 3};
    FWP_BYTE_BLOB value = {4, v}, suffix = {2, c1}, inner = {2, c2};
    assert_true(matches(FWP_MATCH_PREFIX, v_blob(&suffix), v_blob(&value)));
    assert_false(matches(FWP_MATCH_PREFIX, v_blob(&inner), v_blob(&value)));
    assert_true(matches(FWP_MATCH_NOT_PREFIX, v_blob(&inner), v_blob(&value)));
    assert_false(matches(FWP_MATCH_PREFIX, v_blob(&value), v_blob(&suffix)));
}

static void test_v4_addr_mask_compares_masked_host_order(void **state)
{
    (void)state;
    FWP_V4_ADDR_AND_MASK m = {0xC0A80100u, 0xFFFFFF00u}; /* 192.168.1.0/24 */
    FWP_CONDITION_VALUE0 cv = {.type = FWP_V4_ADDR_MASK};
    cv.v4AddrMask = &m;
    FWPS_FILTER_CONDITION0 c = scond(FWP_MATCH_EQUAL, cv);
    FWP_VALUE0 v = v_u32(0xC0A80105u);
    assert_true(owfp_condition_match(&c, &v));
    v = v_u32(0xC0A80205u);
    assert_false(owfp_condition_match(&c, &v));
    v = v_u32(0x0501A8C0u); /* the same address in network order does not match */
    assert_false(owfp_condition_match(&c, &v));
    m.mask = 0; /* /0 matches every address */
    assert_true(owfp_condition_match(&c, &v));
    m.mask = 0xFFFFFFFFu;
    m.addr = 0x0501A8C0u;
    assert_true(owfp_condition_match(&c, &v));
    v = v_u16(5); /* wrong incoming type */
    assert_false(owfp_condition_match(&c, &v));
    c.matchType = FWP_MATCH_NOT_EQUAL; /* masks only support EQUAL */
    v = v_u32(0x0501A8C0u);
    assert_false(owfp_condition_match(&c, &v));
}

static void test_v6_addr_mask_compares_leading_bits(void **state)
{
    (void)state;
    FWP_V6_ADDR_AND_MASK m;
    memset(&m, 0, sizeof(m));
    m.addr[0] = 0x20;
    m.addr[1] = 0x01;
    m.addr[2] = 0x0d;
    m.addr[3] = 0xb8;
    FWP_CONDITION_VALUE0 cv = {.type = FWP_V6_ADDR_MASK};
    cv.v6AddrMask = &m;
    FWPS_FILTER_CONDITION0 c = scond(FWP_MATCH_EQUAL, cv);
    FWP_BYTE_ARRAY16 a;
    memcpy(a.byteArray16, m.addr, 16);
    a.byteArray16[15] = 1;
    FWP_VALUE0 v = v_ba16(&a);

    static const struct {
        uint8_t plen;
        uint8_t flip_byte, flip_bit;
        bool match_after_flip;
    } cases[] = {
        {0, 0, 0x80, true},     {7, 0, 0x01, true},     {7, 0, 0x02, false},  {8, 1, 0x80, true},
        {32, 3, 0x01, false},   {32, 4, 0x80, true},    {64, 7, 0x01, false}, {127, 15, 0x01, true},
        {127, 15, 0x02, false}, {128, 15, 0x01, false},
    };
    for (uint32_t i = 0; i < N(cases); i++) {
        m.prefixLength = cases[i].plen;
        memcpy(a.byteArray16, m.addr, 16);
        assert_true(owfp_condition_match(&c, &v));
        a.byteArray16[cases[i].flip_byte] ^= cases[i].flip_bit;
        assert_int_equal(owfp_condition_match(&c, &v), cases[i].match_after_flip);
    }
    v = v_u32(1);
    assert_false(owfp_condition_match(&c, &v));
}

static void test_sid_and_byte_array6_equal(void **state)
{
    (void)state;
    uint8_t s1[16] = {1, 2, 0, 0, 0, 0, 0, 5, 21, 0, 0, 0, 7, 0, 0, 0};
    uint8_t s2[16];
    memcpy(s2, s1, sizeof(s1));
    FWP_VALUE0 a = {.type = FWP_SID}, b = {.type = FWP_SID};
    a.sid = (SID *)s1;
    b.sid = (SID *)s2;
    assert_true(matches(FWP_MATCH_EQUAL, a, b));
    s2[12] = 8;
    assert_false(matches(FWP_MATCH_EQUAL, a, b));
    assert_false(matches(FWP_MATCH_NOT_EQUAL, a, b)); /* SID is not sortable */

    FWP_BYTE_ARRAY6 m1 = {{1, 2, 3, 4, 5, 6}}, m2 = {{1, 2, 3, 4, 5, 6}};
    FWP_VALUE0 x = {.type = FWP_BYTE_ARRAY6_TYPE}, y = {.type = FWP_BYTE_ARRAY6_TYPE};
    x.byteArray6 = &m1;
    y.byteArray6 = &m2;
    assert_true(matches(FWP_MATCH_EQUAL, x, y));
    m2.byteArray6[5] = 7;
    assert_false(matches(FWP_MATCH_EQUAL, x, y));
}

static void test_security_descriptor_never_matches_a_token(void **state)
{
    (void)state;
    uint8_t sd[] = {1, 0, 4, 0x80};
    FWP_BYTE_BLOB sdb = {sizeof(sd), sd};
    FWP_VALUE0 c = {.type = FWP_SECURITY_DESCRIPTOR_TYPE};
    c.sd = &sdb;
    FWP_VALUE0 token = {.type = FWP_TOKEN_ACCESS_INFORMATION_TYPE};
    token.tokenAccessInformation = &sdb;
    assert_false(matches(FWP_MATCH_EQUAL, c, token));
}

static void test_other_value_type_never_matches(void **state)
{
    (void)state;
    uint8_t b[] = {'x'};
    FWP_BYTE_BLOB blob = {1, b};
    assert_false(matches(FWP_MATCH_EQUAL, v_u16(80), v_u32(80)));
    assert_false(matches(FWP_MATCH_EQUAL, v_u16(80), v_empty()));
    assert_false(matches(FWP_MATCH_NOT_EQUAL, v_u16(80), v_empty()));
    assert_false(matches(FWP_MATCH_NOT_EQUAL, v_u16(80), v_u8(81)));
    assert_false(matches(FWP_MATCH_NOT_PREFIX, v_blob(&blob), v_empty()));
    assert_false(matches(FWP_MATCH_NOT_PREFIX, v_str(L"x"), v_blob(&blob)));
    assert_false(matches(FWP_MATCH_FLAGS_NONE_SET, v_u32(1), v_empty()));

    FWP_RANGE0 r = {v_u16(1), v_u16(100)};
    FWP_CONDITION_VALUE0 cv = {.type = FWP_RANGE_TYPE};
    cv.rangeValue = &r;
    FWPS_FILTER_CONDITION0 c = scond(FWP_MATCH_RANGE, cv);
    FWP_VALUE0 v = v_u32(50);
    assert_false(owfp_condition_match(&c, &v));
    v = v_empty();
    assert_false(owfp_condition_match(&c, &v));
    assert_false(owfp_condition_match(&c, NULL));
    /* A value whose pointer is NULL is not data. */
    FWP_VALUE0 null64 = {.type = FWP_UINT64};
    uint64_t one = 1;
    FWP_VALUE0 c64 = {.type = FWP_UINT64};
    c64.uint64 = &one;
    assert_false(matches(FWP_MATCH_NOT_EQUAL, c64, null64));
}

/* ------------------------------------------------------------- compile */

static void test_compile_sorts_stably_by_field_id(void **state)
{
    (void)state;
    FWP_V4_ADDR_AND_MASK m = {0x0A000000u, 0xFF000000u};
    FWP_CONDITION_VALUE0 mask = {.type = FWP_V4_ADDR_MASK};
    mask.v4AddrMask = &m;
    FWPM_FILTER_CONDITION0 in[] = {
        port_cond(&FWPM_CONDITION_IP_REMOTE_PORT, FWP_MATCH_EQUAL, 1),
        mcond(&FWPM_CONDITION_IP_LOCAL_ADDRESS, FWP_MATCH_EQUAL, mask),
        port_cond(&FWPM_CONDITION_IP_REMOTE_PORT, FWP_MATCH_EQUAL, 2),
        port_cond(&FWPM_CONDITION_IP_REMOTE_PORT, FWP_MATCH_EQUAL, 3),
        port_cond(&FWPM_CONDITION_IP_LOCAL_PORT, FWP_MATCH_EQUAL, 4),
    };
    FWPS_FILTER_CONDITION0 *out;
    bool or_groups;
    assert_int_equal(owfp_conditions_compile(stream4(), in, N(in), &out, &or_groups),
                     STATUS_SUCCESS);
    assert_true(or_groups); /* 2 and 3 are consecutive */
    assert_int_equal(out[0].fieldId, FWPS_FIELD_STREAM_V4_IP_LOCAL_ADDRESS);
    assert_int_equal(out[1].fieldId, FWPS_FIELD_STREAM_V4_IP_LOCAL_PORT);
    assert_int_equal(out[1].conditionValue.uint16, 4);
    for (int i = 2; i < 5; i++) {
        assert_int_equal(out[i].fieldId, FWPS_FIELD_STREAM_V4_IP_REMOTE_PORT);
        assert_int_equal(out[i].conditionValue.uint16, i - 1); /* input order kept */
    }
    /* Port 1 forms its own run; 2 and 3 form an OR group. */
    assert_false(owfp_condition_same_group(&out[2], &out[3]));
    assert_true(owfp_condition_same_group(&out[3], &out[4]));
    assert_int_equal(owfp_condition_group_end(out, 5, 2), 3);
    assert_int_equal(owfp_condition_group_end(out, 5, 3), 5);
    assert_ptr_not_equal(out[0].conditionValue.v4AddrMask, &m);
    assert_int_equal(out[0].conditionValue.v4AddrMask->mask, 0xFF000000u);
    owfp_conditions_free(out);
}

static void test_compile_without_repeats_has_no_or_groups(void **state)
{
    (void)state;
    FWPM_FILTER_CONDITION0 in[] = {
        port_cond(&FWPM_CONDITION_IP_REMOTE_PORT, FWP_MATCH_EQUAL, 1),
        port_cond(&FWPM_CONDITION_IP_LOCAL_PORT, FWP_MATCH_EQUAL, 2),
        port_cond(&FWPM_CONDITION_IP_REMOTE_PORT, FWP_MATCH_EQUAL, 3),
    };
    FWPS_FILTER_CONDITION0 *out;
    bool or_groups = true;
    assert_int_equal(owfp_conditions_compile(stream4(), in, N(in), &out, &or_groups),
                     STATUS_SUCCESS);
    assert_false(or_groups);
    owfp_conditions_free(out);
}

static void test_M5_same_field_conditions_are_ored(void **state)
{
    (void)state;
    FWPM_FILTER_CONDITION0 in[] = {
        port_cond(&FWPM_CONDITION_IP_REMOTE_PORT, FWP_MATCH_EQUAL, 80),
        port_cond(&FWPM_CONDITION_IP_REMOTE_PORT, FWP_MATCH_EQUAL, 443),
        port_cond(&FWPM_CONDITION_IP_LOCAL_PORT, FWP_MATCH_EQUAL, 1000),
    };
    FWPS_FILTER_CONDITION0 *out;
    bool or_groups;
    assert_int_equal(owfp_conditions_compile(stream4(), in, N(in), &out, &or_groups),
                     STATUS_SUCCESS);
    assert_true(or_groups);
    struct stream_in s;
    stream_in_init(&s);
    set_ports(&s, 1000, 80);
    assert_true(owfp_conditions_match(out, N(in), &s.in));
    set_ports(&s, 1000, 443);
    assert_true(owfp_conditions_match(out, N(in), &s.in));
    set_ports(&s, 1000, 22);
    assert_false(owfp_conditions_match(out, N(in), &s.in));
    set_ports(&s, 1001, 443); /* groups are ANDed */
    assert_false(owfp_conditions_match(out, N(in), &s.in));
    owfp_conditions_free(out);
}

/* FWPM_FILTER0 docs: only *consecutive* same-field conditions are ORed. */
static void test_M5_non_consecutive_same_field_conditions_are_anded(void **state)
{
    (void)state;
    FWPM_FILTER_CONDITION0 in[] = {
        port_cond(&FWPM_CONDITION_IP_REMOTE_PORT, FWP_MATCH_GREATER_OR_EQUAL, 80),
        port_cond(&FWPM_CONDITION_IP_LOCAL_PORT, FWP_MATCH_EQUAL, 1000),
        port_cond(&FWPM_CONDITION_IP_REMOTE_PORT, FWP_MATCH_LESS_OR_EQUAL, 443),
    };
    FWPS_FILTER_CONDITION0 *out;
    bool or_groups;
    assert_int_equal(owfp_conditions_compile(stream4(), in, N(in), &out, &or_groups),
                     STATUS_SUCCESS);
    struct stream_in s;
    stream_in_init(&s);
    set_ports(&s, 1000, 100);
    assert_true(owfp_conditions_match(out, N(in), &s.in));
    set_ports(&s, 1000, 22);
    assert_false(owfp_conditions_match(out, N(in), &s.in));
    set_ports(&s, 1000, 8080);
    assert_false(owfp_conditions_match(out, N(in), &s.in));
    owfp_conditions_free(out);
}

static void test_M5_zero_conditions_always_match(void **state)
{
    (void)state;
    FWPS_FILTER_CONDITION0 *out = (FWPS_FILTER_CONDITION0 *)&out;
    bool or_groups = true;
    FWPM_FILTER_CONDITION0 ignored = port_cond(&FWPM_CONDITION_IP_REMOTE_PORT, 0, 1);
    /* A non-NULL array with n == 0 is common in real callers (spec M5 a). */
    assert_int_equal(owfp_conditions_compile(stream4(), &ignored, 0, &out, &or_groups),
                     STATUS_SUCCESS);
    assert_null(out);
    assert_false(or_groups);
    struct stream_in s;
    stream_in_init(&s);
    assert_true(owfp_conditions_match(NULL, 0, &s.in));
    assert_true(owfp_conditions_match(NULL, 0, NULL));
}

static void test_M5_conditions_on_empty_values_do_not_match(void **state)
{
    (void)state;
    FWPM_FILTER_CONDITION0 in = port_cond(&FWPM_CONDITION_IP_REMOTE_PORT, FWP_MATCH_NOT_EQUAL, 1);
    FWPS_FILTER_CONDITION0 *out;
    bool or_groups;
    assert_int_equal(owfp_conditions_compile(stream4(), &in, 1, &out, &or_groups), STATUS_SUCCESS);
    struct stream_in s;
    stream_in_init(&s); /* every value FWP_EMPTY */
    assert_false(owfp_conditions_match(out, 1, &s.in));
    s.in.valueCount = FWPS_FIELD_STREAM_V4_IP_REMOTE_PORT; /* field beyond valueCount */
    s.v[FWPS_FIELD_STREAM_V4_IP_REMOTE_PORT].value = v_u16(2);
    assert_false(owfp_conditions_match(out, 1, &s.in));
    s.in.valueCount = FWPS_FIELD_STREAM_V4_MAX;
    assert_true(owfp_conditions_match(out, 1, &s.in));
    owfp_conditions_free(out);
}

/* Everything the compiled form points to lives in its own allocation. */
static void test_compile_deep_copies_every_pointer(void **state)
{
    (void)state;
    FWP_BYTE_BLOB *blob = malloc(sizeof(*blob));
    blob->size = 4;
    blob->data = malloc(4);
    memcpy(blob->data, "abcd", 4);
    uint64_t *ifidx = malloc(sizeof(*ifidx));
    *ifidx = 7;
    FWP_RANGE0 *r = malloc(sizeof(*r));
    r->valueLow = v_u16(10);
    r->valueHigh = v_u16(20);
    uint8_t *sid = calloc(1, 12);
    sid[0] = 1;
    sid[1] = 1;
    sid[7] = 5;
    sid[8] = 18;

    FWP_CONDITION_VALUE0 cb = {.type = FWP_BYTE_BLOB_TYPE}, c64 = {.type = FWP_UINT64},
                         cr = {.type = FWP_RANGE_TYPE}, cs = {.type = FWP_SID};
    cb.byteBlob = blob;
    c64.uint64 = ifidx;
    cr.rangeValue = r;
    cs.sid = (SID *)sid;
    FWPM_FILTER_CONDITION0 in[] = {
        mcond(&FWPM_CONDITION_ALE_APP_ID, FWP_MATCH_EQUAL, cb),
        mcond(&FWPM_CONDITION_IP_LOCAL_INTERFACE, FWP_MATCH_EQUAL, c64),
        mcond(&FWPM_CONDITION_IP_REMOTE_PORT, FWP_MATCH_RANGE, cr),
        mcond(&FWPM_CONDITION_ALE_PACKAGE_ID, FWP_MATCH_EQUAL, cs),
    };
    FWPS_FILTER_CONDITION0 *out;
    bool or_groups;
    assert_int_equal(owfp_conditions_compile(ale4(), in, N(in), &out, &or_groups), STATUS_SUCCESS);
    free(blob->data);
    free(blob);
    free(ifidx);
    free(r);
    free(sid);

    uint8_t vb[] = {'a', 'b', 'c', 'd'};
    FWP_BYTE_BLOB vblob = {4, vb};
    uint64_t vif = 7;
    uint8_t vsid[12] = {1, 1, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0};
    FWPS_INCOMING_VALUE0 vals[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_MAX];
    memset(vals, 0, sizeof(vals));
    vals[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_ALE_APP_ID].value = v_blob(&vblob);
    vals[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_LOCAL_INTERFACE].value.type = FWP_UINT64;
    vals[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_LOCAL_INTERFACE].value.uint64 = &vif;
    vals[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_REMOTE_PORT].value = v_u16(15);
    vals[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_ALE_PACKAGE_ID].value.type = FWP_SID;
    vals[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_ALE_PACKAGE_ID].value.sid = (SID *)vsid;
    FWPS_INCOMING_VALUES0 inv = {FWPS_LAYER_ALE_FLOW_ESTABLISHED_V4,
                                 FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_MAX, vals};
    assert_true(owfp_conditions_match(out, N(in), &inv));
    vals[FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_REMOTE_PORT].value = v_u16(21);
    assert_false(owfp_conditions_match(out, N(in), &inv));
    owfp_conditions_free(out);
}

/* ----------------------------------------------------------- validation */

static void test_unknown_field_is_condition_not_found(void **state)
{
    (void)state;
    GUID bogus = {0x12345678, 1, 2, {3, 4, 5, 6, 7, 8, 9, 10}};
    assert_int_equal(compile_one(stream4(), port_cond(&bogus, FWP_MATCH_EQUAL, 1)),
                     STATUS_FWP_CONDITION_NOT_FOUND);
    /* A real field of another layer. */
    FWPM_FILTER_CONDITION0 c = mcond(&FWPM_CONDITION_IP_PROTOCOL, FWP_MATCH_EQUAL, cv_of(v_u8(6)));
    assert_int_equal(compile_one(stream4(), c), STATUS_FWP_CONDITION_NOT_FOUND);
    assert_int_equal(compile_one(ale4(), c), STATUS_SUCCESS);
}

static void test_type_mismatches(void **state)
{
    (void)state;
    const GUID *rport = &FWPM_CONDITION_IP_REMOTE_PORT;
    /* No implicit conversion. */
    assert_int_equal(compile_one(stream4(), mcond(rport, FWP_MATCH_EQUAL, cv_of(v_u32(80)))),
                     STATUS_FWP_TYPE_MISMATCH);
    assert_int_equal(compile_one(stream4(), mcond(rport, FWP_MATCH_EQUAL, cv_of(v_empty()))),
                     STATUS_FWP_TYPE_MISMATCH);
    /* V4 masks only on address fields, V6 masks only on V6 address fields. */
    FWP_V4_ADDR_AND_MASK m4 = {0x0A000000u, 0xFF000000u};
    FWP_CONDITION_VALUE0 c4 = {.type = FWP_V4_ADDR_MASK};
    c4.v4AddrMask = &m4;
    assert_int_equal(compile_one(stream4(), mcond(&FWPM_CONDITION_DIRECTION, FWP_MATCH_EQUAL, c4)),
                     STATUS_FWP_TYPE_MISMATCH);
    assert_int_equal(
        compile_one(stream6(), mcond(&FWPM_CONDITION_IP_LOCAL_ADDRESS, FWP_MATCH_EQUAL, c4)),
        STATUS_FWP_TYPE_MISMATCH);
    FWP_V6_ADDR_AND_MASK m6;
    memset(&m6, 0, sizeof(m6));
    FWP_CONDITION_VALUE0 c6 = {.type = FWP_V6_ADDR_MASK};
    c6.v6AddrMask = &m6;
    assert_int_equal(
        compile_one(stream4(), mcond(&FWPM_CONDITION_IP_LOCAL_ADDRESS, FWP_MATCH_EQUAL, c6)),
        STATUS_FWP_TYPE_MISMATCH);
    assert_int_equal(
        compile_one(stream6(), mcond(&FWPM_CONDITION_IP_LOCAL_ADDRESS, FWP_MATCH_EQUAL, c6)),
        STATUS_SUCCESS);
    /* Range bounds must have the field's type. */
    FWP_RANGE0 r = {v_u16(1), v_u32(2)};
    FWP_CONDITION_VALUE0 cr = {.type = FWP_RANGE_TYPE};
    cr.rangeValue = &r;
    assert_int_equal(compile_one(stream4(), mcond(rport, FWP_MATCH_RANGE, cr)),
                     STATUS_FWP_TYPE_MISMATCH);
    r.valueLow = v_u32(1);
    assert_int_equal(compile_one(stream4(), mcond(rport, FWP_MATCH_RANGE, cr)),
                     STATUS_FWP_TYPE_MISMATCH);
    /* A range on a field that has no order. */
    FWP_RANGE0 rs = {{.type = FWP_SID}, {.type = FWP_SID}};
    cr.rangeValue = &rs;
    assert_int_equal(
        compile_one(ale4(), mcond(&FWPM_CONDITION_ALE_PACKAGE_ID, FWP_MATCH_RANGE, cr)),
        STATUS_FWP_TYPE_MISMATCH);
    /* Security descriptors only on token fields; token info is never a condition. */
    uint8_t sd[] = {1, 0, 4, 0x80};
    FWP_BYTE_BLOB sdb = {sizeof(sd), sd};
    FWP_CONDITION_VALUE0 csd = {.type = FWP_SECURITY_DESCRIPTOR_TYPE};
    csd.sd = &sdb;
    assert_int_equal(compile_one(ale4(), mcond(&FWPM_CONDITION_ALE_APP_ID, FWP_MATCH_EQUAL, csd)),
                     STATUS_FWP_TYPE_MISMATCH);
    assert_int_equal(compile_one(ale4(), mcond(&FWPM_CONDITION_ALE_USER_ID, FWP_MATCH_EQUAL, csd)),
                     STATUS_SUCCESS);
    FWP_CONDITION_VALUE0 cti = {.type = FWP_TOKEN_INFORMATION_TYPE};
    assert_int_equal(compile_one(ale4(), mcond(&FWPM_CONDITION_ALE_USER_ID, FWP_MATCH_EQUAL, cti)),
                     STATUS_FWP_TYPE_MISMATCH);
    /* FWP_SID fields take FWP_SID. */
    uint8_t sid[12] = {1, 1, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0};
    FWP_CONDITION_VALUE0 csid = {.type = FWP_SID};
    csid.sid = (SID *)sid;
    assert_int_equal(
        compile_one(ale4(), mcond(&FWPM_CONDITION_ALE_PACKAGE_ID, FWP_MATCH_EQUAL, csid)),
        STATUS_SUCCESS);
}

static void test_match_type_mismatches(void **state)
{
    (void)state;
    const GUID *rport = &FWPM_CONDITION_IP_REMOTE_PORT;
    FWP_CONDITION_VALUE0 p = cv_of(v_u16(80));
    assert_int_equal(compile_one(stream4(), mcond(rport, FWP_MATCH_RANGE, p)),
                     STATUS_FWP_MATCH_TYPE_MISMATCH);
    assert_int_equal(compile_one(stream4(), mcond(rport, FWP_MATCH_TYPE_MAX, p)),
                     STATUS_FWP_MATCH_TYPE_MISMATCH);
    assert_int_equal(compile_one(stream4(), mcond(rport, 0x7FFFFFFF, p)),
                     STATUS_FWP_MATCH_TYPE_MISMATCH);
    assert_int_equal(compile_one(stream4(), mcond(rport, FWP_MATCH_PREFIX, p)),
                     STATUS_FWP_MATCH_TYPE_MISMATCH);
    assert_int_equal(compile_one(stream4(), mcond(rport, FWP_MATCH_EQUAL_CASE_INSENSITIVE, p)),
                     STATUS_FWP_MATCH_TYPE_MISMATCH);
    FWP_RANGE0 r = {v_u16(1), v_u16(2)};
    FWP_CONDITION_VALUE0 cr = {.type = FWP_RANGE_TYPE};
    cr.rangeValue = &r;
    assert_int_equal(compile_one(stream4(), mcond(rport, FWP_MATCH_EQUAL, cr)),
                     STATUS_FWP_MATCH_TYPE_MISMATCH);
    assert_int_equal(compile_one(stream4(), mcond(rport, FWP_MATCH_RANGE, cr)), STATUS_SUCCESS);
    /* Masks: EQUAL only. */
    FWP_V4_ADDR_AND_MASK m4 = {0x0A000000u, 0xFF000000u};
    FWP_CONDITION_VALUE0 c4 = {.type = FWP_V4_ADDR_MASK};
    c4.v4AddrMask = &m4;
    static const uint32_t not_for_masks[] = {FWP_MATCH_NOT_EQUAL, FWP_MATCH_GREATER,
                                             FWP_MATCH_FLAGS_ANY_SET, FWP_MATCH_PREFIX};
    for (uint32_t i = 0; i < N(not_for_masks); i++)
        assert_int_equal(
            compile_one(stream4(), mcond(&FWPM_CONDITION_IP_REMOTE_ADDRESS, not_for_masks[i], c4)),
            STATUS_FWP_MATCH_TYPE_MISMATCH);
    /* Blobs: no FLAGS, no case-insensitive match; PREFIX allowed. */
    uint8_t b[] = {'a', 0};
    FWP_BYTE_BLOB blob = {2, b};
    FWP_CONDITION_VALUE0 cb = cv_of(v_blob(&blob));
    const GUID *app = &FWPM_CONDITION_ALE_APP_ID;
    assert_int_equal(compile_one(ale4(), mcond(app, FWP_MATCH_FLAGS_ALL_SET, cb)),
                     STATUS_FWP_MATCH_TYPE_MISMATCH);
    assert_int_equal(compile_one(ale4(), mcond(app, FWP_MATCH_EQUAL_CASE_INSENSITIVE, cb)),
                     STATUS_FWP_MATCH_TYPE_MISMATCH);
    assert_int_equal(compile_one(ale4(), mcond(app, FWP_MATCH_PREFIX, cb)), STATUS_SUCCESS);
    assert_int_equal(compile_one(ale4(), mcond(app, FWP_MATCH_NOT_PREFIX, cb)), STATUS_SUCCESS);
    assert_int_equal(compile_one(ale4(), mcond(app, FWP_MATCH_LESS, cb)), STATUS_SUCCESS);
    /* SIDs and SDs are not sortable. */
    uint8_t sid[12] = {1, 1, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0};
    FWP_CONDITION_VALUE0 csid = {.type = FWP_SID};
    csid.sid = (SID *)sid;
    assert_int_equal(
        compile_one(ale4(), mcond(&FWPM_CONDITION_ALE_PACKAGE_ID, FWP_MATCH_GREATER, csid)),
        STATUS_FWP_MATCH_TYPE_MISMATCH);
    assert_int_equal(
        compile_one(ale4(), mcond(&FWPM_CONDITION_ALE_PACKAGE_ID, FWP_MATCH_NOT_EQUAL, csid)),
        STATUS_FWP_MATCH_TYPE_MISMATCH);
    /* FLAGS on the unsigned FLAGS field. */
    assert_int_equal(compile_one(stream4(), mcond(&FWPM_CONDITION_FLAGS, FWP_MATCH_FLAGS_ANY_SET,
                                                  cv_of(v_u32(FWP_CONDITION_FLAG_IS_LOOPBACK)))),
                     STATUS_SUCCESS);
}

static void test_invalid_range(void **state)
{
    (void)state;
    FWP_RANGE0 r = {v_u16(20), v_u16(10)};
    FWP_CONDITION_VALUE0 cr = {.type = FWP_RANGE_TYPE};
    cr.rangeValue = &r;
    assert_int_equal(
        compile_one(stream4(), mcond(&FWPM_CONDITION_IP_REMOTE_PORT, FWP_MATCH_RANGE, cr)),
        STATUS_FWP_INVALID_RANGE);
    r.valueHigh = v_u16(20);
    assert_int_equal(
        compile_one(stream4(), mcond(&FWPM_CONDITION_IP_REMOTE_PORT, FWP_MATCH_RANGE, cr)),
        STATUS_SUCCESS);
}

static void test_v6_prefix_beyond_128_is_out_of_bounds(void **state)
{
    (void)state;
    FWP_V6_ADDR_AND_MASK m6;
    memset(&m6, 0, sizeof(m6));
    FWP_CONDITION_VALUE0 c6 = {.type = FWP_V6_ADDR_MASK};
    c6.v6AddrMask = &m6;
    m6.prefixLength = 129;
    assert_int_equal(
        compile_one(stream6(), mcond(&FWPM_CONDITION_IP_REMOTE_ADDRESS, FWP_MATCH_EQUAL, c6)),
        STATUS_FWP_OUT_OF_BOUNDS);
    m6.prefixLength = 128;
    assert_int_equal(
        compile_one(stream6(), mcond(&FWPM_CONDITION_IP_REMOTE_ADDRESS, FWP_MATCH_EQUAL, c6)),
        STATUS_SUCCESS);
}

static void test_v4_mask_must_be_a_prefix(void **state)
{
    (void)state;
    static const struct {
        uint32_t mask;
        NTSTATUS st;
    } cases[] = {
        {0, STATUS_SUCCESS},
        {0xFFFFFFFFu, STATUS_SUCCESS},
        {0xFFFFFF00u, STATUS_SUCCESS},
        {0x80000000u, STATUS_SUCCESS},
        {0xFF00FF00u, STATUS_FWP_INVALID_NET_MASK},
        {0x000000FFu, STATUS_FWP_INVALID_NET_MASK},
        {0x00FFFFFFu, STATUS_FWP_INVALID_NET_MASK}, /* a network-order /24 */
        {0xFFFFFFFEu, STATUS_SUCCESS},
        {0x7FFFFFFFu, STATUS_FWP_INVALID_NET_MASK},
    };
    for (uint32_t i = 0; i < N(cases); i++) {
        FWP_V4_ADDR_AND_MASK m = {0x0A000000u, cases[i].mask};
        FWP_CONDITION_VALUE0 c4 = {.type = FWP_V4_ADDR_MASK};
        c4.v4AddrMask = &m;
        assert_int_equal(
            compile_one(stream4(), mcond(&FWPM_CONDITION_IP_REMOTE_ADDRESS, FWP_MATCH_EQUAL, c4)),
            cases[i].st);
    }
}

static void test_null_pointers(void **state)
{
    (void)state;
    FWPS_FILTER_CONDITION0 *out;
    bool or_groups;
    FWPM_FILTER_CONDITION0 ok = port_cond(&FWPM_CONDITION_IP_REMOTE_PORT, FWP_MATCH_EQUAL, 1);
    assert_int_equal(owfp_conditions_compile(stream4(), NULL, 1, &out, &or_groups),
                     STATUS_FWP_NULL_POINTER);
    assert_int_equal(owfp_conditions_compile(stream4(), &ok, 1, NULL, &or_groups),
                     STATUS_FWP_NULL_POINTER);

    FWP_CONDITION_VALUE0 c64 = {.type = FWP_UINT64};
    assert_int_equal(
        compile_one(ale4(), mcond(&FWPM_CONDITION_IP_LOCAL_INTERFACE, FWP_MATCH_EQUAL, c64)),
        STATUS_FWP_NULL_POINTER);
    FWP_CONDITION_VALUE0 cb = {.type = FWP_BYTE_BLOB_TYPE};
    assert_int_equal(compile_one(ale4(), mcond(&FWPM_CONDITION_ALE_APP_ID, FWP_MATCH_EQUAL, cb)),
                     STATUS_FWP_NULL_POINTER);
    FWP_BYTE_BLOB nodata = {4, NULL};
    cb.byteBlob = &nodata;
    assert_int_equal(compile_one(ale4(), mcond(&FWPM_CONDITION_ALE_APP_ID, FWP_MATCH_EQUAL, cb)),
                     STATUS_FWP_NULL_POINTER);
    FWP_BYTE_BLOB empty = {0, NULL};
    cb.byteBlob = &empty;
    assert_int_equal(compile_one(ale4(), mcond(&FWPM_CONDITION_ALE_APP_ID, FWP_MATCH_EQUAL, cb)),
                     STATUS_SUCCESS);
    FWP_CONDITION_VALUE0 c4 = {.type = FWP_V4_ADDR_MASK};
    assert_int_equal(
        compile_one(stream4(), mcond(&FWPM_CONDITION_IP_REMOTE_ADDRESS, FWP_MATCH_EQUAL, c4)),
        STATUS_FWP_NULL_POINTER);
    FWP_CONDITION_VALUE0 c6 = {.type = FWP_V6_ADDR_MASK};
    assert_int_equal(
        compile_one(stream6(), mcond(&FWPM_CONDITION_IP_REMOTE_ADDRESS, FWP_MATCH_EQUAL, c6)),
        STATUS_FWP_NULL_POINTER);
    FWP_CONDITION_VALUE0 cr = {.type = FWP_RANGE_TYPE};
    assert_int_equal(
        compile_one(stream4(), mcond(&FWPM_CONDITION_IP_REMOTE_PORT, FWP_MATCH_RANGE, cr)),
        STATUS_FWP_NULL_POINTER);
    uint64_t one = 1;
    FWP_RANGE0 r64 = {{.type = FWP_UINT64}, {.type = FWP_UINT64}};
    r64.valueHigh.uint64 = &one;
    cr.rangeValue = &r64;
    assert_int_equal(
        compile_one(ale4(), mcond(&FWPM_CONDITION_IP_LOCAL_INTERFACE, FWP_MATCH_RANGE, cr)),
        STATUS_FWP_NULL_POINTER);
    FWP_CONDITION_VALUE0 csid = {.type = FWP_SID};
    assert_int_equal(
        compile_one(ale4(), mcond(&FWPM_CONDITION_ALE_PACKAGE_ID, FWP_MATCH_EQUAL, csid)),
        STATUS_FWP_NULL_POINTER);
    FWP_CONDITION_VALUE0 csd = {.type = FWP_SECURITY_DESCRIPTOR_TYPE};
    assert_int_equal(compile_one(ale4(), mcond(&FWPM_CONDITION_ALE_USER_ID, FWP_MATCH_EQUAL, csd)),
                     STATUS_FWP_NULL_POINTER);
}

static void test_first_failing_condition_decides_and_nothing_is_returned(void **state)
{
    (void)state;
    FWPM_FILTER_CONDITION0 in[] = {
        port_cond(&FWPM_CONDITION_IP_REMOTE_PORT, FWP_MATCH_EQUAL, 1),
        mcond(&FWPM_CONDITION_IP_REMOTE_PORT, FWP_MATCH_EQUAL, cv_of(v_u32(1))),
    };
    FWPS_FILTER_CONDITION0 *out = (FWPS_FILTER_CONDITION0 *)&out;
    bool or_groups;
    assert_int_equal(owfp_conditions_compile(stream4(), in, N(in), &out, &or_groups),
                     STATUS_FWP_TYPE_MISMATCH);
    assert_null(out);
}

/* Every allocation of a compile fails in turn: each failure is reported as
 * STATUS_INSUFFICIENT_RESOURCES with no output; LeakSanitizer checks that
 * nothing is left behind. */
static void test_allocation_failure_reports_insufficient_resources(void **state)
{
    (void)state;
    uint8_t b[] = {'p', 0, 'a', 0, 0, 0};
    FWP_BYTE_BLOB blob = {sizeof(b), b};
    FWP_RANGE0 r = {v_u16(1), v_u16(1024)};
    FWP_V4_ADDR_AND_MASK m = {0x0A000000u, 0xFF000000u};
    FWP_CONDITION_VALUE0 cb = cv_of(v_blob(&blob)), cr = {.type = FWP_RANGE_TYPE},
                         c4 = {.type = FWP_V4_ADDR_MASK};
    cr.rangeValue = &r;
    c4.v4AddrMask = &m;
    FWPM_FILTER_CONDITION0 in[] = {
        mcond(&FWPM_CONDITION_ALE_APP_ID, FWP_MATCH_PREFIX, cb),
        mcond(&FWPM_CONDITION_IP_REMOTE_PORT, FWP_MATCH_RANGE, cr),
        mcond(&FWPM_CONDITION_IP_REMOTE_ADDRESS, FWP_MATCH_EQUAL, c4),
    };
    NTSTATUS st = STATUS_INSUFFICIENT_RESOURCES;
    long k;
    for (k = 0; k < 100 && st == STATUS_INSUFFICIENT_RESOURCES; k++) {
        FWPS_FILTER_CONDITION0 *out = (FWPS_FILTER_CONDITION0 *)&out;
        bool or_groups;
        owfp_alloc_fail_after(k);
        st = owfp_conditions_compile(ale4(), in, N(in), &out, &or_groups);
        owfp_alloc_fail_reset();
        if (st == STATUS_INSUFFICIENT_RESOURCES)
            assert_null(out);
        else
            owfp_conditions_free(out);
    }
    assert_int_equal(st, STATUS_SUCCESS);
    assert_int_equal(k, 2); /* one allocation for everything */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_integer_orderings_every_type),
        cmocka_unit_test(test_range_is_inclusive_every_integer_type),
        cmocka_unit_test(test_flags_on_every_unsigned_type),
        cmocka_unit_test(test_flags_not_allowed_on_signed_operands),
        cmocka_unit_test(test_float_and_double_equal_only),
        cmocka_unit_test(test_byte_array16_orders_like_memcmp),
        cmocka_unit_test(test_blob_orders_lexicographically_shorter_is_less),
        cmocka_unit_test(test_unicode_orders_by_code_unit_shorter_is_less),
        cmocka_unit_test(test_equal_case_insensitive_folds_ascii_only),
        cmocka_unit_test(test_prefix_is_a_suffix_test_on_unicode),
        cmocka_unit_test(test_prefix_on_app_id_blob_ignores_utf16_terminator),
        cmocka_unit_test(test_prefix_on_plain_blob_compares_bytes),
        cmocka_unit_test(test_v4_addr_mask_compares_masked_host_order),
        cmocka_unit_test(test_v6_addr_mask_compares_leading_bits),
        cmocka_unit_test(test_sid_and_byte_array6_equal),
        cmocka_unit_test(test_security_descriptor_never_matches_a_token),
        cmocka_unit_test(test_other_value_type_never_matches),
        cmocka_unit_test(test_compile_sorts_stably_by_field_id),
        cmocka_unit_test(test_compile_without_repeats_has_no_or_groups),
        cmocka_unit_test(test_M5_same_field_conditions_are_ored),
        cmocka_unit_test(test_M5_non_consecutive_same_field_conditions_are_anded),
        cmocka_unit_test(test_M5_zero_conditions_always_match),
        cmocka_unit_test(test_M5_conditions_on_empty_values_do_not_match),
        cmocka_unit_test(test_compile_deep_copies_every_pointer),
        cmocka_unit_test(test_unknown_field_is_condition_not_found),
        cmocka_unit_test(test_type_mismatches),
        cmocka_unit_test(test_match_type_mismatches),
        cmocka_unit_test(test_invalid_range),
        cmocka_unit_test(test_v6_prefix_beyond_128_is_out_of_bounds),
        cmocka_unit_test(test_v4_mask_must_be_a_prefix),
        cmocka_unit_test(test_null_pointers),
        cmocka_unit_test(test_first_failing_condition_decides_and_nothing_is_returned),
        cmocka_unit_test(test_allocation_failure_reports_insufficient_resources),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
