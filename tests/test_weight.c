/*
 * Filter weights (spec A7, Q9): explicit, range-prefixed and automatic.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/condition.h"
#include "engine/layers.h"
#include "engine/weight.h"

#define N(a) (uint32_t)(sizeof(a) / sizeof((a)[0]))
#define AUTO_LIMIT (UINT64_C(1) << 60)

static FWPS_FILTER_CONDITION0 cond(uint16_t field, uint16_t run, uint32_t match)
{
    FWPS_FILTER_CONDITION0 c;
    memset(&c, 0, sizeof(c));
    c.fieldId = field;
    c.reserved = run;
    c.matchType = match;
    return c;
}

static FWPS_FILTER_CONDITION0 u16_cond(uint16_t field, uint32_t match, uint16_t x)
{
    FWPS_FILTER_CONDITION0 c = cond(field, 0, match);
    c.conditionValue.type = FWP_UINT16;
    c.conditionValue.uint16 = x;
    return c;
}

static FWPS_FILTER_CONDITION0 u32_cond(uint16_t field, uint32_t match, uint32_t x)
{
    FWPS_FILTER_CONDITION0 c = cond(field, 0, match);
    c.conditionValue.type = FWP_UINT32;
    c.conditionValue.uint32 = x;
    return c;
}

static FWPS_FILTER_CONDITION0 v4_cond(uint16_t field, FWP_V4_ADDR_AND_MASK *m)
{
    FWPS_FILTER_CONDITION0 c = cond(field, 0, FWP_MATCH_EQUAL);
    c.conditionValue.type = FWP_V4_ADDR_MASK;
    c.conditionValue.v4AddrMask = m;
    return c;
}

static FWPS_FILTER_CONDITION0 v6_cond(uint16_t field, FWP_V6_ADDR_AND_MASK *m)
{
    FWPS_FILTER_CONDITION0 c = cond(field, 0, FWP_MATCH_EQUAL);
    c.conditionValue.type = FWP_V6_ADDR_MASK;
    c.conditionValue.v6AddrMask = m;
    return c;
}

static FWPS_FILTER_CONDITION0 range_cond(uint16_t field, FWP_RANGE0 *r)
{
    FWPS_FILTER_CONDITION0 c = cond(field, 0, FWP_MATCH_RANGE);
    c.conditionValue.type = FWP_RANGE_TYPE;
    c.conditionValue.rangeValue = r;
    return c;
}

static FWP_RANGE0 u16_range(uint16_t lo, uint16_t hi)
{
    FWP_RANGE0 r;
    memset(&r, 0, sizeof(r));
    r.valueLow.type = r.valueHigh.type = FWP_UINT16;
    r.valueLow.uint16 = lo;
    r.valueHigh.uint16 = hi;
    return r;
}

static uint64_t w(const FWPS_FILTER_CONDITION0 *c, uint32_t n)
{
    uint64_t x = owfp_weight_auto(c, n);
    assert_true(x < AUTO_LIMIT);
    return x;
}

/* ------------------------------------------------------ requested forms */

static void test_A7_explicit_uint64_weight_is_used_verbatim(void **state)
{
    (void)state;
    static const uint64_t samples[] = {0, 1, AUTO_LIMIT, UINT64_MAX};
    for (uint32_t i = 0; i < N(samples); i++) {
        uint64_t x = samples[i], out = 0;
        FWP_VALUE0 req = {.type = FWP_UINT64};
        req.uint64 = &x;
        FWPS_FILTER_CONDITION0 c = u16_cond(3, FWP_MATCH_EQUAL, 80);
        assert_int_equal(owfp_weight_effective(&req, &c, 1, &out), STATUS_SUCCESS);
        assert_true(out == x);
    }
}

static void test_A7_explicit_uint64_weight_needs_a_pointer(void **state)
{
    (void)state;
    uint64_t out;
    FWP_VALUE0 req = {.type = FWP_UINT64};
    assert_int_equal(owfp_weight_effective(&req, NULL, 0, &out), STATUS_FWP_NULL_POINTER);
}

static void test_A7_range_identifier_sets_top_four_bits(void **state)
{
    (void)state;
    FWP_V4_ADDR_AND_MASK m = {0x0A000000u, 0xFFFF0000u};
    FWPS_FILTER_CONDITION0 c[] = {v4_cond(0, &m), u16_cond(4, FWP_MATCH_EQUAL, 443)};
    uint64_t auto_w = w(c, N(c));
    assert_true(auto_w > 0);
    for (uint8_t k = 0; k <= 15; k++) {
        uint64_t out;
        FWP_VALUE0 req = {.type = FWP_UINT8};
        req.uint8 = k;
        assert_int_equal(owfp_weight_effective(&req, c, N(c), &out), STATUS_SUCCESS);
        assert_int_equal(out >> 60, k);
        assert_true((out & (AUTO_LIMIT - 1)) == auto_w);
    }
}

static void test_A7_range_identifier_above_15_is_invalid(void **state)
{
    (void)state;
    static const uint8_t bad[] = {16, 17, 128, 255};
    for (uint32_t i = 0; i < N(bad); i++) {
        uint64_t out;
        FWP_VALUE0 req = {.type = FWP_UINT8};
        req.uint8 = bad[i];
        assert_int_equal(owfp_weight_effective(&req, NULL, 0, &out), STATUS_FWP_INVALID_WEIGHT);
    }
}

static void test_A7_other_weight_types_are_invalid(void **state)
{
    (void)state;
    static const uint32_t bad[] = {FWP_UINT16, FWP_UINT32,         FWP_INT8,       FWP_INT64,
                                   FWP_DOUBLE, FWP_BYTE_BLOB_TYPE, FWP_RANGE_TYPE, 0x7FFF};
    int64_t i64 = 5;
    for (uint32_t i = 0; i < N(bad); i++) {
        uint64_t out;
        FWP_VALUE0 req;
        memset(&req, 0, sizeof(req));
        req.type = bad[i];
        req.int64 = &i64;
        assert_int_equal(owfp_weight_effective(&req, NULL, 0, &out), STATUS_FWP_INVALID_WEIGHT);
    }
}

static void test_A7_empty_weight_is_automatic(void **state)
{
    (void)state;
    FWPS_FILTER_CONDITION0 c = u16_cond(4, FWP_MATCH_EQUAL, 443);
    uint64_t out;
    FWP_VALUE0 req = {.type = FWP_EMPTY};
    assert_int_equal(owfp_weight_effective(&req, &c, 1, &out), STATUS_SUCCESS);
    assert_true(out == owfp_weight_auto(&c, 1));
    assert_true(out < AUTO_LIMIT);
    assert_int_equal(owfp_weight_effective(&req, NULL, 0, &out), STATUS_SUCCESS);
    assert_true(out == 0);
}

/* -------------------------------------------------------- auto weights */

static void test_A7_auto_weight_more_specific_is_higher(void **state)
{
    (void)state;
    /* Exact port > narrow range > wide range > no condition. */
    FWPS_FILTER_CONDITION0 exact = u16_cond(4, FWP_MATCH_EQUAL, 443);
    FWP_RANGE0 narrow = u16_range(1000, 1015), wide = u16_range(1024, 65535);
    FWPS_FILTER_CONDITION0 rn = range_cond(4, &narrow), rw = range_cond(4, &wide);
    assert_true(w(&exact, 1) > w(&rn, 1));
    assert_true(w(&rn, 1) > w(&rw, 1));
    assert_true(w(&rw, 1) >= w(NULL, 0));
    assert_true(w(&exact, 1) > w(NULL, 0));

    /* Longer prefixes are more specific. */
    FWP_V4_ADDR_AND_MASK m32 = {0x0A000001u, 0xFFFFFFFFu}, m24 = {0x0A000000u, 0xFFFFFF00u},
                         m8 = {0x0A000000u, 0xFF000000u};
    FWPS_FILTER_CONDITION0 a32 = v4_cond(2, &m32), a24 = v4_cond(2, &m24), a8 = v4_cond(2, &m8);
    assert_true(w(&a32, 1) > w(&a24, 1));
    assert_true(w(&a24, 1) > w(&a8, 1));
    FWP_V6_ADDR_AND_MASK p128, p64;
    memset(&p128, 0, sizeof(p128));
    p64 = p128;
    p128.prefixLength = 128;
    p64.prefixLength = 64;
    FWPS_FILTER_CONDITION0 b128 = v6_cond(2, &p128), b64 = v6_cond(2, &p64);
    assert_true(w(&b128, 1) > w(&b64, 1));

    /* Testing more fields outranks precision on fewer fields. */
    FWPS_FILTER_CONDITION0 two[] = {v4_cond(2, &m8), rw};
    FWPS_FILTER_CONDITION0 one_exact = b128;
    assert_true(w(two, 2) > w(&one_exact, 1));

    /* An OR group counts as its least specific member. */
    FWPS_FILTER_CONDITION0 or_group[] = {exact, rw};
    assert_true(w(or_group, 2) == w(&rw, 1));

    /* Flags: more required bits, more specific; NOT_EQUAL pins nothing down. */
    FWPS_FILTER_CONDITION0 f1 = u32_cond(6, FWP_MATCH_FLAGS_ALL_SET, 0x1),
                           f3 = u32_cond(6, FWP_MATCH_FLAGS_ALL_SET, 0x7),
                           ne = u32_cond(6, FWP_MATCH_NOT_EQUAL, 0x7);
    assert_true(w(&f3, 1) > w(&f1, 1));
    assert_true(w(&f1, 1) > w(&ne, 1));
}

static void test_A7_auto_weight_ignores_condition_order(void **state)
{
    (void)state;
    const struct owfp_layer_desc *layer = owfp_layer_by_id(FWPS_LAYER_STREAM_V4);
    FWPM_FILTER_CONDITION0 in[3];
    memset(in, 0, sizeof(in));
    in[0].fieldKey = FWPM_CONDITION_IP_REMOTE_PORT;
    in[0].conditionValue.type = FWP_UINT16;
    in[0].conditionValue.uint16 = 80;
    in[1].fieldKey = FWPM_CONDITION_IP_LOCAL_PORT;
    in[1].matchType = FWP_MATCH_GREATER;
    in[1].conditionValue.type = FWP_UINT16;
    in[1].conditionValue.uint16 = 1023;
    in[2].fieldKey = FWPM_CONDITION_DIRECTION;
    in[2].conditionValue.type = FWP_UINT32;
    in[2].conditionValue.uint32 = FWP_DIRECTION_INBOUND;
    FWPM_FILTER_CONDITION0 rev[3] = {in[2], in[1], in[0]};
    FWPS_FILTER_CONDITION0 *a, *b;
    bool or_groups;
    assert_int_equal(owfp_conditions_compile(layer, in, 3, &a, &or_groups), STATUS_SUCCESS);
    assert_int_equal(owfp_conditions_compile(layer, rev, 3, &b, &or_groups), STATUS_SUCCESS);
    assert_true(w(a, 3) == w(b, 3));
    owfp_conditions_free(a);
    owfp_conditions_free(b);
}

static void test_A7_auto_weight_stays_below_2_pow_60(void **state)
{
    (void)state;
    enum { NF = 200 };
    static FWPS_FILTER_CONDITION0 c[NF];
    static FWP_BYTE_ARRAY16 a[NF];
    for (uint16_t i = 0; i < NF; i++) {
        memset(&a[i], 0xAB, sizeof(a[i]));
        c[i] = cond(i, 0, FWP_MATCH_EQUAL);
        c[i].conditionValue.type = FWP_BYTE_ARRAY16_TYPE;
        c[i].conditionValue.byteArray16 = &a[i];
    }
    uint64_t x = w(c, NF);
    assert_int_equal(x >> 54, 63); /* distinct fields saturate */
    uint64_t out;
    FWP_VALUE0 req = {.type = FWP_UINT8};
    req.uint8 = 15;
    assert_int_equal(owfp_weight_effective(&req, c, NF, &out), STATUS_SUCCESS);
    assert_true(out == ((UINT64_C(15) << 60) | x));
}

/* --------------------------------------------- monotonicity (properties) */

static uint64_t rng_state;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

struct gen {
    FWPS_FILTER_CONDITION0 c[16];
    FWP_V4_ADDR_AND_MASK m4[16];
    FWP_V6_ADDR_AND_MASK m6[16];
    FWP_RANGE0 r[16];
    uint32_t n;
};

/* A random condition on field `field`, run `run`, stored at g->c[g->n]. */
static void add_random(struct gen *g, uint16_t field, uint16_t run)
{
    uint32_t i = g->n++;
    switch (rnd() % 6) {
    case 0:
        g->c[i] = u16_cond(field, FWP_MATCH_EQUAL, (uint16_t)rnd());
        break;
    case 1: {
        uint16_t a = (uint16_t)rnd(), b = (uint16_t)rnd();
        g->r[i] = u16_range(a < b ? a : b, a < b ? b : a);
        g->c[i] = range_cond(field, &g->r[i]);
        break;
    }
    case 2: {
        unsigned p = (unsigned)(rnd() % 33);
        g->m4[i].mask = p ? 0xFFFFFFFFu << (32 - p) : 0;
        g->m4[i].addr = (uint32_t)rnd() & g->m4[i].mask;
        g->c[i] = v4_cond(field, &g->m4[i]);
        break;
    }
    case 3:
        memset(&g->m6[i], 0x11, sizeof(g->m6[i]));
        g->m6[i].prefixLength = (uint8_t)(rnd() % 129);
        g->c[i] = v6_cond(field, &g->m6[i]);
        break;
    case 4:
        g->c[i] = u32_cond(field, FWP_MATCH_FLAGS_ALL_SET, (uint32_t)rnd());
        break;
    default:
        g->c[i] = u32_cond(field, FWP_MATCH_NOT_EQUAL, (uint32_t)rnd());
        break;
    }
    g->c[i].reserved = run;
}

static void test_A7_adding_an_and_condition_never_lowers_auto_weight(void **state)
{
    (void)state;
    rng_state = UINT64_C(0x9E3779B97F4A7C15);
    for (int iter = 0; iter < 5000; iter++) {
        struct gen g;
        memset(&g, 0, sizeof(g));
        uint32_t groups = (uint32_t)(rnd() % 6);
        uint16_t field = 0;
        for (uint32_t k = 0; k < groups; k++) {
            field = (uint16_t)(field + rnd() % 2); /* same field again: a new run */
            add_random(&g, field, (uint16_t)k);
        }
        uint64_t before = w(g.c, g.n);
        /* A new AND group after the others keeps the conditions sorted. */
        add_random(&g, (uint16_t)(field + rnd() % 2), (uint16_t)groups);
        uint64_t after = w(g.c, g.n);
        if (after < before)
            fail_msg("iteration %d: %llu < %llu", iter, (unsigned long long)after,
                     (unsigned long long)before);
    }
}

static void test_A7_narrowing_a_mask_or_range_never_lowers_auto_weight(void **state)
{
    (void)state;
    uint64_t prev = 0;
    for (unsigned p = 0; p <= 32; p++) {
        FWP_V4_ADDR_AND_MASK m = {0, p ? 0xFFFFFFFFu << (32 - p) : 0};
        FWPS_FILTER_CONDITION0 c = v4_cond(2, &m);
        assert_true(w(&c, 1) >= prev);
        prev = w(&c, 1);
    }
    prev = 0;
    for (unsigned p = 0; p <= 128; p++) {
        FWP_V6_ADDR_AND_MASK m;
        memset(&m, 0, sizeof(m));
        m.prefixLength = (uint8_t)p;
        FWPS_FILTER_CONDITION0 c = v6_cond(2, &m);
        assert_true(w(&c, 1) >= prev);
        prev = w(&c, 1);
    }
    rng_state = UINT64_C(0xD1B54A32D192ED03);
    for (int iter = 0; iter < 5000; iter++) {
        uint16_t a = (uint16_t)rnd(), b = (uint16_t)rnd();
        uint16_t lo = a < b ? a : b, hi = a < b ? b : a;
        FWP_RANGE0 r = u16_range(lo, hi);
        FWPS_FILTER_CONDITION0 c = range_cond(4, &r);
        uint64_t wide = w(&c, 1);
        uint16_t span = (uint16_t)(hi - lo);
        uint16_t nlo = (uint16_t)(lo + (span ? rnd() % (span + 1u) : 0));
        uint16_t nhi = (uint16_t)(nlo + (hi > nlo ? rnd() % (hi - nlo + 1u) : 0));
        r = u16_range(nlo, nhi);
        assert_true(w(&c, 1) >= wide);
        /* A single value is as specific as EQUAL. */
        r = u16_range(nlo, nlo);
        FWPS_FILTER_CONDITION0 e = u16_cond(4, FWP_MATCH_EQUAL, nlo);
        assert_true(w(&c, 1) == w(&e, 1));
        /* GREATER c narrows as c grows. */
        FWPS_FILTER_CONDITION0 g1 = u16_cond(4, FWP_MATCH_GREATER, lo),
                               g2 = u16_cond(4, FWP_MATCH_GREATER, hi);
        assert_true(w(&g2, 1) >= w(&g1, 1));
        FWPS_FILTER_CONDITION0 l1 = u16_cond(4, FWP_MATCH_LESS_OR_EQUAL, hi),
                               l2 = u16_cond(4, FWP_MATCH_LESS_OR_EQUAL, lo);
        assert_true(w(&l2, 1) >= w(&l1, 1));
    }
    /* Requiring more flag bits narrows. */
    FWPS_FILTER_CONDITION0 f = u32_cond(6, FWP_MATCH_FLAGS_ALL_SET, 0);
    prev = w(&f, 1);
    for (unsigned bit = 0; bit < 32; bit++) {
        f.conditionValue.uint32 |= 1u << bit;
        assert_true(w(&f, 1) >= prev);
        prev = w(&f, 1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_A7_explicit_uint64_weight_is_used_verbatim),
        cmocka_unit_test(test_A7_explicit_uint64_weight_needs_a_pointer),
        cmocka_unit_test(test_A7_range_identifier_sets_top_four_bits),
        cmocka_unit_test(test_A7_range_identifier_above_15_is_invalid),
        cmocka_unit_test(test_A7_other_weight_types_are_invalid),
        cmocka_unit_test(test_A7_empty_weight_is_automatic),
        cmocka_unit_test(test_A7_auto_weight_more_specific_is_higher),
        cmocka_unit_test(test_A7_auto_weight_ignores_condition_order),
        cmocka_unit_test(test_A7_auto_weight_stays_below_2_pow_60),
        cmocka_unit_test(test_A7_adding_an_and_condition_never_lowers_auto_weight),
        cmocka_unit_test(test_A7_narrowing_a_mask_or_range_never_lowers_auto_weight),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
