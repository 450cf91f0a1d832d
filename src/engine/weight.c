/*
 * Effective filter weights (spec A7) and the automatic weight.
 *
 * Windows documents only the range of the automatic weight, [0, 2^60), and
 * that it grows with how specific the conditions are (spec Q9). Ours:
 *
 *   auto = (F << 54) | min(S, 2^54 - 1)
 *
 *   F = number of distinct fieldIds the filter tests, capped at 63.
 *   S = sum, over the AND-ed groups, of the group's specificity in bits;
 *       an OR group counts as its least specific member.
 *
 * The specificity of one condition estimates how many bits of the field's
 * value space it pins down (w = 8/16/32/64 for integers, 128 for
 * FWP_BYTE_ARRAY16):
 *
 *   EQUAL                 integer: w; BYTE_ARRAY16: 128; BYTE_ARRAY6: 48;
 *                         FLOAT: 32; DOUBLE: 64; byte blob, unicode string,
 *                         SID, token blob: 128; security descriptor: 32
 *   EQUAL_CASE_INSENSITIVE 127
 *   V4_ADDR_MASK          prefix length (bits set in the mask)
 *   V6_ADDR_MASK          prefixLength
 *   RANGE, GREATER, LESS, GREATER_OR_EQUAL, LESS_OR_EQUAL
 *                         on integers and BYTE_ARRAY16: w - ceil(log2 s), s the
 *                         number of values in the matching interval (w if
 *                         s <= 1); on blobs and strings: 1
 *   FLAGS_ALL_SET, FLAGS_NONE_SET  number of bits in the condition value
 *   FLAGS_ANY_SET         1 if the condition value has one bit, else 0
 *   PREFIX (suffix test)  min(8 * L, 126), L = bytes of the condition without
 *                         a trailing UTF-16 NUL
 *   NOT_EQUAL, NOT_PREFIX 0
 *
 * Consequences: testing one more field always outranks any specificity on
 * fewer fields; adding a condition that forms its own AND group, narrowing a
 * mask, a range or an exact value set never lowers the weight; adding an
 * alternative to an OR group widens the filter and may lower it. Filters
 * left with equal weights are ordered by filterId (spec A8).
 */
#include "weight.h"

#include "condition.h"

#define AUTO_FIELD_SHIFT 54
#define AUTO_FIELD_MAX 63u
#define AUTO_SCORE_MAX ((UINT64_C(1) << AUTO_FIELD_SHIFT) - 1)
#define RANGE_ID_MAX 15u

__extension__ typedef unsigned __int128 u128;

static unsigned popcount64(uint64_t x)
{
    return (unsigned)__builtin_popcountll(x);
}

static unsigned bitlen128(u128 x)
{
    uint64_t hi = (uint64_t)(x >> 64), lo = (uint64_t)x;
    if (hi)
        return 128u - (unsigned)__builtin_clzll(hi);
    return lo ? 64u - (unsigned)__builtin_clzll(lo) : 0u;
}

static unsigned int_width(uint32_t t)
{
    switch (t) {
    case FWP_UINT8:
    case FWP_INT8:
        return 8;
    case FWP_UINT16:
    case FWP_INT16:
        return 16;
    case FWP_UINT32:
    case FWP_INT32:
        return 32;
    case FWP_UINT64:
    case FWP_INT64:
        return 64;
    default:
        return 0;
    }
}

/* The value's position in its type's order as an unsigned number of `width`
 * bits: signed integers are offset by 2^(w-1), byte arrays read big-endian. */
static bool ordinal(const FWP_VALUE0 *v, u128 *out, unsigned *width)
{
    int64_t s;
    switch (v->type) {
    case FWP_UINT8:
        *out = v->uint8;
        break;
    case FWP_UINT16:
        *out = v->uint16;
        break;
    case FWP_UINT32:
        *out = v->uint32;
        break;
    case FWP_UINT64:
        if (!v->uint64)
            return false;
        *out = *v->uint64;
        break;
    case FWP_INT8:
    case FWP_INT16:
    case FWP_INT32:
    case FWP_INT64:
        if (v->type == FWP_INT64 && !v->int64)
            return false;
        s = v->type == FWP_INT8    ? v->int8
            : v->type == FWP_INT16 ? v->int16
            : v->type == FWP_INT32 ? v->int32
                                   : *v->int64;
        *out = (u128)((uint64_t)s + (UINT64_C(1) << (int_width(v->type) - 1))) &
               (((u128)1 << int_width(v->type)) - 1);
        break;
    case FWP_BYTE_ARRAY16_TYPE:
        if (!v->byteArray16)
            return false;
        *out = 0;
        for (int i = 0; i < 16; i++)
            *out = (*out << 8) | v->byteArray16->byteArray16[i];
        *width = 128;
        return true;
    default:
        return false;
    }
    *width = int_width(v->type);
    return true;
}

static unsigned interval_bits(u128 lo, u128 hi, unsigned width)
{
    if (lo > hi)
        return width; /* matches nothing */
    unsigned used = bitlen128(hi - lo);
    return used >= width ? 0 : width - used;
}

/* Specificity of an interval-shaped condition (RANGE and the orderings). */
static unsigned ordering_bits(const FWPS_FILTER_CONDITION0 *c)
{
    const FWP_CONDITION_VALUE0 *cv = &c->conditionValue;
    u128 lo, hi, x, max;
    unsigned w;
    if (cv->type == FWP_RANGE_TYPE) {
        unsigned w2;
        if (!cv->rangeValue || !ordinal(&cv->rangeValue->valueLow, &lo, &w) ||
            !ordinal(&cv->rangeValue->valueHigh, &hi, &w2))
            return 1;
        return interval_bits(lo, hi, w);
    }
    FWP_VALUE0 v = owfp_condition_value_plain(cv);
    if (!ordinal(&v, &x, &w))
        return 1; /* blobs and strings: an open half-line */
    max = w == 128 ? ~(u128)0 : (((u128)1 << w) - 1);
    switch (c->matchType) {
    case FWP_MATCH_GREATER:
        return x == max ? w : interval_bits(x + 1, max, w);
    case FWP_MATCH_GREATER_OR_EQUAL:
        return interval_bits(x, max, w);
    case FWP_MATCH_LESS:
        return x == 0 ? w : interval_bits(0, x - 1, w);
    default:
        return interval_bits(0, x, w);
    }
}

static unsigned equal_bits(const FWP_CONDITION_VALUE0 *cv)
{
    unsigned w = int_width(cv->type);
    if (w)
        return w;
    switch (cv->type) {
    case FWP_FLOAT:
        return 32;
    case FWP_DOUBLE:
        return 64;
    case FWP_BYTE_ARRAY6_TYPE:
        return 48;
    case FWP_SECURITY_DESCRIPTOR_TYPE:
        return 32;
    default:
        return 128;
    }
}

static uint64_t flags_value(const FWP_CONDITION_VALUE0 *cv)
{
    switch (cv->type) {
    case FWP_UINT8:
        return cv->uint8;
    case FWP_UINT16:
        return cv->uint16;
    case FWP_UINT32:
        return cv->uint32;
    case FWP_UINT64:
        return cv->uint64 ? *cv->uint64 : 0;
    default:
        return 0;
    }
}

static unsigned suffix_bits(const FWP_CONDITION_VALUE0 *cv)
{
    size_t bytes = 0;
    if (cv->type == FWP_UNICODE_STRING_TYPE && cv->unicodeString) {
        while (cv->unicodeString[bytes / 2])
            bytes += 2;
    } else if (cv->type == FWP_BYTE_BLOB_TYPE && cv->byteBlob && cv->byteBlob->data) {
        const uint8_t *d = cv->byteBlob->data;
        bytes = cv->byteBlob->size;
        if (bytes >= 2 && bytes % 2 == 0 && d[bytes - 1] == 0 && d[bytes - 2] == 0)
            bytes -= 2;
    }
    return 8 * bytes >= 126 ? 126 : (unsigned)(8 * bytes);
}

static unsigned condition_bits(const FWPS_FILTER_CONDITION0 *c)
{
    const FWP_CONDITION_VALUE0 *cv = &c->conditionValue;
    if (cv->type == FWP_V4_ADDR_MASK)
        return cv->v4AddrMask ? popcount64(cv->v4AddrMask->mask) : 0;
    if (cv->type == FWP_V6_ADDR_MASK)
        return cv->v6AddrMask
                   ? (cv->v6AddrMask->prefixLength > 128 ? 128 : cv->v6AddrMask->prefixLength)
                   : 0;
    switch (c->matchType) {
    case FWP_MATCH_EQUAL:
        return equal_bits(cv);
    case FWP_MATCH_EQUAL_CASE_INSENSITIVE:
        return 127;
    case FWP_MATCH_GREATER:
    case FWP_MATCH_LESS:
    case FWP_MATCH_GREATER_OR_EQUAL:
    case FWP_MATCH_LESS_OR_EQUAL:
    case FWP_MATCH_RANGE:
        return ordering_bits(c);
    case FWP_MATCH_FLAGS_ALL_SET:
    case FWP_MATCH_FLAGS_NONE_SET:
        return popcount64(flags_value(cv));
    case FWP_MATCH_FLAGS_ANY_SET:
        return popcount64(flags_value(cv)) == 1 ? 1 : 0;
    case FWP_MATCH_PREFIX:
        return suffix_bits(cv);
    default:
        return 0;
    }
}

uint64_t owfp_weight_auto(const FWPS_FILTER_CONDITION0 *conds, uint32_t n)
{
    uint64_t fields = 0, score = 0;
    if (!conds)
        return 0;
    for (uint32_t i = 0; i < n;) {
        uint32_t end = owfp_condition_group_end(conds, n, i);
        unsigned group = condition_bits(&conds[i]);
        for (uint32_t j = i + 1; j < end; j++) {
            unsigned b = condition_bits(&conds[j]);
            group = b < group ? b : group;
        }
        if (i == 0 || conds[i].fieldId != conds[i - 1].fieldId)
            fields++;
        score += group;
        i = end;
    }
    if (fields > AUTO_FIELD_MAX)
        fields = AUTO_FIELD_MAX;
    if (score > AUTO_SCORE_MAX)
        score = AUTO_SCORE_MAX;
    return (fields << AUTO_FIELD_SHIFT) | score;
}

NTSTATUS owfp_weight_effective(const FWP_VALUE0 *requested, const FWPS_FILTER_CONDITION0 *conds,
                               uint32_t n, uint64_t *out)
{
    if (!requested || !out)
        return STATUS_FWP_NULL_POINTER;
    switch (requested->type) {
    case FWP_UINT64:
        if (!requested->uint64)
            return STATUS_FWP_NULL_POINTER;
        *out = *requested->uint64;
        return STATUS_SUCCESS;
    case FWP_EMPTY:
        *out = owfp_weight_auto(conds, n);
        return STATUS_SUCCESS;
    case FWP_UINT8:
        if (requested->uint8 > RANGE_ID_MAX)
            return STATUS_FWP_INVALID_WEIGHT;
        *out = ((uint64_t)requested->uint8 << 60) | owfp_weight_auto(conds, n);
        return STATUS_SUCCESS;
    default:
        return STATUS_FWP_INVALID_WEIGHT;
    }
}
