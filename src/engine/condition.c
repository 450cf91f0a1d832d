/*
 * Filter conditions: validation, compilation into the run-time form, and
 * evaluation against the incoming values of a classify.
 *
 * OR groups. Evidence (Microsoft docs, read for this module):
 *   - FWPM_FILTER0.filterCondition: conditions are ANDed; "In Windows 7 ...,
 *     consecutive conditions with the same fieldKey" are ORed.
 *   - FWPS_FILTER0.flags: FWPS_FILTER_FLAG_OR_CONDITIONS = several conditions
 *     on one field, OR semantics; it does not say the conditions may be apart.
 * So only a run of consecutive same-field conditions forms an OR group; two
 * runs of one field separated by another field are ANDed like any two
 * conditions. Compiled conditions are sorted by fieldId, which would merge
 * such runs, so `reserved` (callouts must ignore it) holds the ordinal of the
 * run among the runs of its field; see owfp_condition_same_group().
 *
 * Values are compared without conversion (FWP_MATCH_TYPE remarks): a value
 * of another type than the condition's operand, FWP_EMPTY included, never
 * matches, whatever the match type (so NOT_EQUAL / NOT_PREFIX do not match
 * it either).
 *
 * FWP_MATCH_PREFIX is a suffix test (FWP_MATCH_TYPE docs). On byte blobs it
 * compares raw bytes after dropping one trailing UTF-16 NUL (two zero bytes
 * at the end of an even-sized blob) from each side: app-id blobs such as
 * FWPM_CONDITION_ALE_APP_ID carry their terminator, and a suffix of a path
 * would otherwise never match. The docs allow PREFIX on blobs only when they
 * hold strings, so nothing else is affected.
 *
 * Security descriptors (user-id conditions) are kept and copied but cannot
 * be evaluated: an SD condition never matches a token value.
 */
#include "condition.h"

#include <stddef.h>
#include <string.h>

#include "common/alloc.h"

/* The engine views a condition value as a plain value when its type allows;
 * that relies on the two unions having the same place and size. */
_Static_assert(offsetof(FWP_VALUE0, uint8) == offsetof(FWP_CONDITION_VALUE0, uint8),
               "value unions at the same offset");
_Static_assert(sizeof(FWP_VALUE0) == sizeof(FWP_CONDITION_VALUE0), "value unions of one size");

#define ALIGN8(x) (((size_t)(x) + 7u) & ~(size_t)7u)
#define CMP(a, b) (((a) > (b)) - ((a) < (b)))
#define SID_HEADER_BYTES 8u
#define SID_MAX_SUB_AUTHORITIES 15u

/* ------------------------------------------------------------------ types */

static bool is_unsigned_int(uint32_t t)
{
    return t >= FWP_UINT8 && t <= FWP_UINT64;
}

static bool is_integer(uint32_t t)
{
    return is_unsigned_int(t) || (t >= FWP_INT8 && t <= FWP_INT64);
}

/* "Sortable" in the FWP_MATCH_TYPE documentation. */
static bool is_sortable(uint32_t t)
{
    return is_integer(t) || t == FWP_BYTE_ARRAY16_TYPE || t == FWP_BYTE_BLOB_TYPE ||
           t == FWP_UNICODE_STRING_TYPE;
}

/* Address masks are only meaningful on fields that hold IP addresses; the
 * data type alone cannot tell (FLAGS, DIRECTION are UINT32 too). */
static bool is_address_field(const struct owfp_field_desc *f)
{
    static const GUID *const keys[] = {
        &FWPM_CONDITION_IP_LOCAL_ADDRESS,     &FWPM_CONDITION_IP_REMOTE_ADDRESS,
        &FWPM_CONDITION_IP_SOURCE_ADDRESS,    &FWPM_CONDITION_IP_DESTINATION_ADDRESS,
        &FWPM_CONDITION_IP_LOCAL_ADDRESS_V4,  &FWPM_CONDITION_IP_LOCAL_ADDRESS_V6,
        &FWPM_CONDITION_IP_REMOTE_ADDRESS_V4, &FWPM_CONDITION_IP_REMOTE_ADDRESS_V6,
    };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (IsEqualGUID(f->key, keys[i]))
            return true;
    return false;
}

/* The inverse of owfp_condition_value_plain(). */
static FWP_CONDITION_VALUE0 from_plain(const FWP_VALUE0 *v)
{
    FWP_CONDITION_VALUE0 c;
    c.type = v->type;
    memcpy((char *)&c + offsetof(FWP_CONDITION_VALUE0, uint8),
           (const char *)v + offsetof(FWP_VALUE0, uint8),
           sizeof(c) - offsetof(FWP_CONDITION_VALUE0, uint8));
    return c;
}

/* The type of the incoming value a condition can match; FWP_EMPTY when the
 * condition is malformed (a NULL range). */
static uint32_t operand_type(const FWP_CONDITION_VALUE0 *c)
{
    switch (c->type) {
    case FWP_V4_ADDR_MASK:
        return FWP_UINT32;
    case FWP_V6_ADDR_MASK:
        return FWP_BYTE_ARRAY16_TYPE;
    case FWP_RANGE_TYPE:
        return c->rangeValue ? c->rangeValue->valueLow.type : FWP_EMPTY;
    default:
        return c->type;
    }
}

/* The §2.4 table: which match types an operand type supports. */
static bool match_allowed(uint32_t match, uint32_t cond_type, uint32_t operand)
{
    if (match >= FWP_MATCH_TYPE_MAX)
        return false;
    if (cond_type == FWP_RANGE_TYPE || match == FWP_MATCH_RANGE)
        return cond_type == FWP_RANGE_TYPE && match == FWP_MATCH_RANGE && is_sortable(operand);
    /* No documentation allows anything but EQUAL on address masks. */
    if (cond_type == FWP_V4_ADDR_MASK || cond_type == FWP_V6_ADDR_MASK)
        return match == FWP_MATCH_EQUAL;
    switch (match) {
    case FWP_MATCH_EQUAL:
        return true;
    case FWP_MATCH_GREATER:
    case FWP_MATCH_LESS:
    case FWP_MATCH_GREATER_OR_EQUAL:
    case FWP_MATCH_LESS_OR_EQUAL:
    case FWP_MATCH_NOT_EQUAL:
        return is_sortable(cond_type);
    case FWP_MATCH_FLAGS_ALL_SET:
    case FWP_MATCH_FLAGS_ANY_SET:
    case FWP_MATCH_FLAGS_NONE_SET:
        return is_unsigned_int(cond_type);
    case FWP_MATCH_EQUAL_CASE_INSENSITIVE:
        return cond_type == FWP_UNICODE_STRING_TYPE;
    case FWP_MATCH_PREFIX:
    case FWP_MATCH_NOT_PREFIX:
        return cond_type == FWP_BYTE_BLOB_TYPE || cond_type == FWP_UNICODE_STRING_TYPE;
    default:
        return false;
    }
}

/* Which condition types a field accepts (FWP_MATCH_TYPE remarks). Token
 * fields are tested with security descriptors; an FWP_TOKEN_INFORMATION
 * condition has no meaning for a filter and is refused. */
static bool type_accepted(const struct owfp_field_desc *f, uint32_t t)
{
    uint32_t ft = f->value_type;
    switch (t) {
    case FWP_V4_ADDR_MASK:
        return ft == FWP_UINT32 && is_address_field(f);
    case FWP_V6_ADDR_MASK:
        return ft == FWP_BYTE_ARRAY16_TYPE && is_address_field(f);
    case FWP_RANGE_TYPE:
        return is_sortable(ft);
    case FWP_SECURITY_DESCRIPTOR_TYPE:
        return ft == FWP_TOKEN_ACCESS_INFORMATION_TYPE || ft == FWP_TOKEN_INFORMATION_TYPE ||
               ft == FWP_SECURITY_DESCRIPTOR_TYPE;
    case FWP_TOKEN_INFORMATION_TYPE:
    case FWP_EMPTY:
        return false;
    default:
        return t == ft && t < FWP_SINGLE_DATA_TYPE_MAX;
    }
}

/* ------------------------------------------------------- value primitives */

static size_t wstr_len(const WCHAR *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

static size_t sid_bytes(const SID *sid)
{
    return SID_HEADER_BYTES + 4u * ((const uint8_t *)sid)[1];
}

static int bytes_cmp(const uint8_t *a, size_t na, const uint8_t *b, size_t nb)
{
    size_t common = na < nb ? na : nb;
    int r = common ? memcmp(a, b, common) : 0;
    if (r)
        return r < 0 ? -1 : 1;
    return CMP(na, nb);
}

static int wstr_cmp(const WCHAR *a, const WCHAR *b)
{
    size_t i = 0;
    while (a[i] && a[i] == b[i])
        i++;
    return CMP((uint16_t)a[i], (uint16_t)b[i]);
}

static bool blob_ok(const FWP_BYTE_BLOB *b)
{
    return b && (b->size == 0 || b->data);
}

/* Orders two values of the same type; false when they cannot be compared
 * (NULL data, NaN, types without an order or equality). */
static bool value_cmp(const FWP_VALUE0 *a, const FWP_VALUE0 *b, int *out)
{
    switch (a->type) {
    case FWP_UINT8:
        *out = CMP(a->uint8, b->uint8);
        return true;
    case FWP_UINT16:
        *out = CMP(a->uint16, b->uint16);
        return true;
    case FWP_UINT32:
        *out = CMP(a->uint32, b->uint32);
        return true;
    case FWP_UINT64:
        if (!a->uint64 || !b->uint64)
            return false;
        *out = CMP(*a->uint64, *b->uint64);
        return true;
    case FWP_INT8:
        *out = CMP(a->int8, b->int8);
        return true;
    case FWP_INT16:
        *out = CMP(a->int16, b->int16);
        return true;
    case FWP_INT32:
        *out = CMP(a->int32, b->int32);
        return true;
    case FWP_INT64:
        if (!a->int64 || !b->int64)
            return false;
        *out = CMP(*a->int64, *b->int64);
        return true;
    case FWP_FLOAT:
        if (a->float32 != a->float32 || b->float32 != b->float32)
            return false;
        *out = CMP(a->float32, b->float32);
        return true;
    case FWP_DOUBLE:
        if (!a->double64 || !b->double64 || *a->double64 != *a->double64 ||
            *b->double64 != *b->double64)
            return false;
        *out = CMP(*a->double64, *b->double64);
        return true;
    case FWP_BYTE_ARRAY16_TYPE:
        if (!a->byteArray16 || !b->byteArray16)
            return false;
        *out = bytes_cmp(a->byteArray16->byteArray16, 16, b->byteArray16->byteArray16, 16);
        return true;
    case FWP_BYTE_ARRAY6_TYPE:
        if (!a->byteArray6 || !b->byteArray6)
            return false;
        *out = bytes_cmp(a->byteArray6->byteArray6, 6, b->byteArray6->byteArray6, 6);
        return true;
    case FWP_BYTE_BLOB_TYPE:
    case FWP_SECURITY_DESCRIPTOR_TYPE:
    case FWP_TOKEN_ACCESS_INFORMATION_TYPE:
        if (!blob_ok(a->byteBlob) || !blob_ok(b->byteBlob))
            return false;
        *out =
            bytes_cmp(a->byteBlob->data, a->byteBlob->size, b->byteBlob->data, b->byteBlob->size);
        return true;
    case FWP_UNICODE_STRING_TYPE:
        if (!a->unicodeString || !b->unicodeString)
            return false;
        *out = wstr_cmp(a->unicodeString, b->unicodeString);
        return true;
    case FWP_SID:
        if (!a->sid || !b->sid)
            return false;
        *out = bytes_cmp((const uint8_t *)a->sid, sid_bytes(a->sid), (const uint8_t *)b->sid,
                         sid_bytes(b->sid));
        return true;
    default:
        return false;
    }
}

static bool unsigned_of(const FWP_VALUE0 *v, uint64_t *out)
{
    switch (v->type) {
    case FWP_UINT8:
        *out = v->uint8;
        return true;
    case FWP_UINT16:
        *out = v->uint16;
        return true;
    case FWP_UINT32:
        *out = v->uint32;
        return true;
    case FWP_UINT64:
        if (!v->uint64)
            return false;
        *out = *v->uint64;
        return true;
    default:
        return false;
    }
}

/* ------------------------------------------------------------- validation */

/* Checks the data a plain value points to and adds the bytes its deep copy
 * needs to *size. */
static NTSTATUS value_payload(const FWP_VALUE0 *v, size_t *size)
{
    switch (v->type) {
    case FWP_UINT64:
    case FWP_INT64:
    case FWP_DOUBLE:
        if (!v->uint64)
            return STATUS_FWP_NULL_POINTER;
        *size += 8;
        return STATUS_SUCCESS;
    case FWP_BYTE_ARRAY16_TYPE:
        if (!v->byteArray16)
            return STATUS_FWP_NULL_POINTER;
        *size += ALIGN8(sizeof(FWP_BYTE_ARRAY16));
        return STATUS_SUCCESS;
    case FWP_BYTE_ARRAY6_TYPE:
        if (!v->byteArray6)
            return STATUS_FWP_NULL_POINTER;
        *size += ALIGN8(sizeof(FWP_BYTE_ARRAY6));
        return STATUS_SUCCESS;
    case FWP_BYTE_BLOB_TYPE:
    case FWP_SECURITY_DESCRIPTOR_TYPE:
    case FWP_TOKEN_ACCESS_INFORMATION_TYPE:
        if (!blob_ok(v->byteBlob))
            return STATUS_FWP_NULL_POINTER;
        *size += ALIGN8(sizeof(FWP_BYTE_BLOB)) + ALIGN8(v->byteBlob->size);
        return STATUS_SUCCESS;
    case FWP_UNICODE_STRING_TYPE:
        if (!v->unicodeString)
            return STATUS_FWP_NULL_POINTER;
        *size += ALIGN8(sizeof(WCHAR) * (wstr_len(v->unicodeString) + 1));
        return STATUS_SUCCESS;
    case FWP_SID:
        if (!v->sid)
            return STATUS_FWP_NULL_POINTER;
        /* The sub-authority count sizes the copy; a wild count would read
         * past the caller's SID. */
        if (((const uint8_t *)v->sid)[1] > SID_MAX_SUB_AUTHORITIES)
            return STATUS_FWP_INVALID_PARAMETER;
        *size += ALIGN8(sid_bytes(v->sid));
        return STATUS_SUCCESS;
    default:
        return STATUS_SUCCESS;
    }
}

static bool v4_mask_contiguous(uint32_t mask)
{
    uint32_t host = ~mask;
    return (host & (host + 1u)) == 0;
}

static NTSTATUS check_range(const struct owfp_field_desc *f, const FWP_RANGE0 *r, size_t *size)
{
    if (r->valueLow.type != f->value_type || r->valueHigh.type != f->value_type)
        return STATUS_FWP_TYPE_MISMATCH;
    *size += ALIGN8(sizeof(FWP_RANGE0));
    NTSTATUS st = value_payload(&r->valueLow, size);
    if (NT_SUCCESS(st))
        st = value_payload(&r->valueHigh, size);
    return st;
}

/* Pointer checks of the condition-only types, and the payload size. */
static NTSTATUS condition_payload(const struct owfp_field_desc *f, const FWP_CONDITION_VALUE0 *c,
                                  size_t *size)
{
    switch (c->type) {
    case FWP_V4_ADDR_MASK:
        if (!c->v4AddrMask)
            return STATUS_FWP_NULL_POINTER;
        *size += ALIGN8(sizeof(FWP_V4_ADDR_AND_MASK));
        return STATUS_SUCCESS;
    case FWP_V6_ADDR_MASK:
        if (!c->v6AddrMask)
            return STATUS_FWP_NULL_POINTER;
        *size += ALIGN8(sizeof(FWP_V6_ADDR_AND_MASK));
        return STATUS_SUCCESS;
    case FWP_RANGE_TYPE:
        if (!c->rangeValue)
            return STATUS_FWP_NULL_POINTER;
        return check_range(f, c->rangeValue, size);
    default: {
        FWP_VALUE0 v = owfp_condition_value_plain(c);
        return value_payload(&v, size);
    }
    }
}

/* Checks that need the data itself, once the pointers are known good. */
static NTSTATUS check_contents(const FWP_CONDITION_VALUE0 *c)
{
    int order;
    switch (c->type) {
    case FWP_V4_ADDR_MASK:
        return v4_mask_contiguous(c->v4AddrMask->mask) ? STATUS_SUCCESS
                                                       : STATUS_FWP_INVALID_NET_MASK;
    case FWP_V6_ADDR_MASK:
        return c->v6AddrMask->prefixLength <= 128 ? STATUS_SUCCESS : STATUS_FWP_OUT_OF_BOUNDS;
    case FWP_RANGE_TYPE:
        if (!value_cmp(&c->rangeValue->valueLow, &c->rangeValue->valueHigh, &order) || order > 0)
            return STATUS_FWP_INVALID_RANGE;
        return STATUS_SUCCESS;
    default:
        return STATUS_SUCCESS;
    }
}

static NTSTATUS validate(const struct owfp_layer_desc *layer, const FWPM_FILTER_CONDITION0 *src,
                         size_t *size)
{
    const struct owfp_field_desc *f = owfp_layer_field_by_key(layer, &src->fieldKey);
    if (!f)
        return STATUS_FWP_CONDITION_NOT_FOUND;
    if ((uint32_t)src->matchType >= FWP_MATCH_TYPE_MAX)
        return STATUS_FWP_MATCH_TYPE_MISMATCH;
    const FWP_CONDITION_VALUE0 *c = &src->conditionValue;
    if (!type_accepted(f, c->type))
        return STATUS_FWP_TYPE_MISMATCH;
    NTSTATUS st = condition_payload(f, c, size);
    if (!NT_SUCCESS(st))
        return st;
    if (!match_allowed(src->matchType, c->type, operand_type(c)))
        return STATUS_FWP_MATCH_TYPE_MISMATCH;
    return check_contents(c);
}

/* ------------------------------------------------------------ compilation */

static void *carve(uint8_t **cur, const void *src, size_t n)
{
    void *dst = *cur;
    if (n)
        memcpy(dst, src, n);
    *cur += ALIGN8(n);
    return dst;
}

static FWP_BYTE_BLOB *copy_blob(const FWP_BYTE_BLOB *src, uint8_t **cur)
{
    FWP_BYTE_BLOB *dst = carve(cur, src, sizeof(*src));
    dst->data = src->size ? carve(cur, src->data, src->size) : NULL;
    return dst;
}

static FWP_VALUE0 copy_value(const FWP_VALUE0 *v, uint8_t **cur)
{
    FWP_VALUE0 out = *v;
    switch (v->type) {
    case FWP_UINT64:
    case FWP_INT64:
    case FWP_DOUBLE:
        out.uint64 = carve(cur, v->uint64, 8);
        break;
    case FWP_BYTE_ARRAY16_TYPE:
        out.byteArray16 = carve(cur, v->byteArray16, sizeof(FWP_BYTE_ARRAY16));
        break;
    case FWP_BYTE_ARRAY6_TYPE:
        out.byteArray6 = carve(cur, v->byteArray6, sizeof(FWP_BYTE_ARRAY6));
        break;
    case FWP_BYTE_BLOB_TYPE:
    case FWP_SECURITY_DESCRIPTOR_TYPE:
    case FWP_TOKEN_ACCESS_INFORMATION_TYPE:
        out.byteBlob = copy_blob(v->byteBlob, cur);
        break;
    case FWP_UNICODE_STRING_TYPE:
        out.unicodeString =
            carve(cur, v->unicodeString, sizeof(WCHAR) * (wstr_len(v->unicodeString) + 1));
        break;
    case FWP_SID:
        out.sid = carve(cur, v->sid, sid_bytes(v->sid));
        break;
    default:
        break;
    }
    return out;
}

static FWP_CONDITION_VALUE0 copy_condition_value(const FWP_CONDITION_VALUE0 *c, uint8_t **cur)
{
    FWP_CONDITION_VALUE0 out = *c;
    switch (c->type) {
    case FWP_V4_ADDR_MASK:
        out.v4AddrMask = carve(cur, c->v4AddrMask, sizeof(FWP_V4_ADDR_AND_MASK));
        return out;
    case FWP_V6_ADDR_MASK:
        out.v6AddrMask = carve(cur, c->v6AddrMask, sizeof(FWP_V6_ADDR_AND_MASK));
        return out;
    case FWP_RANGE_TYPE: {
        FWP_RANGE0 *r = carve(cur, c->rangeValue, sizeof(FWP_RANGE0));
        r->valueLow = copy_value(&c->rangeValue->valueLow, cur);
        r->valueHigh = copy_value(&c->rangeValue->valueHigh, cur);
        out.rangeValue = r;
        return out;
    }
    default: {
        FWP_VALUE0 v = owfp_condition_value_plain(c);
        FWP_VALUE0 copy = copy_value(&v, cur);
        return from_plain(&copy);
    }
    }
}

/* The layer's field with the smallest id above `after` (-1: the first). */
static const struct owfp_field_desc *next_field(const struct owfp_layer_desc *layer, int32_t after)
{
    const struct owfp_field_desc *best = NULL;
    for (uint32_t i = 0; i < layer->field_count; i++) {
        const struct owfp_field_desc *f = &layer->fields[i];
        if ((int32_t)f->id > after && (!best || f->id < best->id))
            best = f;
    }
    return best;
}

/* Emits field f's conditions in input order; `reserved` counts f's runs.
 * The ordinal may wrap at 65536: adjacent runs still differ by one. */
static uint32_t emit_field(const struct owfp_layer_desc *layer, const struct owfp_field_desc *f,
                           const FWPM_FILTER_CONDITION0 *conds, uint32_t n,
                           FWPS_FILTER_CONDITION0 *out, uint8_t **cur)
{
    uint32_t k = 0;
    uint16_t run = 0;
    const struct owfp_field_desc *prev = NULL;
    for (uint32_t i = 0; i < n; i++) {
        const struct owfp_field_desc *fi = owfp_layer_field_by_key(layer, &conds[i].fieldKey);
        if (fi == f) {
            if (k > 0 && prev != f)
                run++;
            out[k].fieldId = f->id;
            out[k].reserved = run;
            out[k].matchType = conds[i].matchType;
            out[k].conditionValue = copy_condition_value(&conds[i].conditionValue, cur);
            k++;
        }
        prev = fi;
    }
    return k;
}

static bool has_or_group(const struct owfp_layer_desc *layer, const FWPM_FILTER_CONDITION0 *conds,
                         uint32_t n)
{
    for (uint32_t i = 1; i < n; i++)
        if (owfp_layer_field_by_key(layer, &conds[i].fieldKey) ==
            owfp_layer_field_by_key(layer, &conds[i - 1].fieldKey))
            return true;
    return false;
}

NTSTATUS owfp_conditions_compile(const struct owfp_layer_desc *layer,
                                 const FWPM_FILTER_CONDITION0 *conds, uint32_t n,
                                 FWPS_FILTER_CONDITION0 **out, bool *or_groups)
{
    if (!out || !or_groups || !layer)
        return STATUS_FWP_NULL_POINTER;
    *out = NULL;
    *or_groups = false;
    if (n == 0)
        return STATUS_SUCCESS;
    if (!conds)
        return STATUS_FWP_NULL_POINTER;

    size_t payload = 0;
    for (uint32_t i = 0; i < n; i++) {
        NTSTATUS st = validate(layer, &conds[i], &payload);
        if (!NT_SUCCESS(st))
            return st;
    }
    size_t head = ALIGN8(sizeof(FWPS_FILTER_CONDITION0) * (size_t)n);
    FWPS_FILTER_CONDITION0 *block = owfp_malloc(head + payload);
    if (!block)
        return STATUS_INSUFFICIENT_RESOURCES;
    memset(block, 0, head);

    uint8_t *cur = (uint8_t *)block + head;
    uint32_t k = 0;
    for (const struct owfp_field_desc *f = next_field(layer, -1); f; f = next_field(layer, f->id))
        k += emit_field(layer, f, conds, n, block + k, &cur);

    *out = block;
    *or_groups = has_or_group(layer, conds, n);
    return STATUS_SUCCESS;
}

void owfp_conditions_free(FWPS_FILTER_CONDITION0 *conds)
{
    owfp_free(conds);
}

/* --------------------------------------------------------------- matching */

static bool match_v4(const FWP_V4_ADDR_AND_MASK *m, uint32_t value)
{
    return (value & m->mask) == (m->addr & m->mask);
}

static bool match_v6(const FWP_V6_ADDR_AND_MASK *m, const FWP_BYTE_ARRAY16 *value)
{
    if (!value || m->prefixLength > 128)
        return false;
    unsigned whole = m->prefixLength / 8u, rest = m->prefixLength % 8u;
    if (whole && memcmp(m->addr, value->byteArray16, whole) != 0)
        return false;
    if (!rest)
        return true;
    uint8_t mask = (uint8_t)(0xFFu << (8u - rest));
    return ((m->addr[whole] ^ value->byteArray16[whole]) & mask) == 0;
}

static bool match_range(const FWP_RANGE0 *r, const FWP_VALUE0 *value)
{
    int lo, hi;
    if (r->valueHigh.type != value->type)
        return false;
    return value_cmp(&r->valueLow, value, &lo) && value_cmp(value, &r->valueHigh, &hi) && lo <= 0 &&
           hi <= 0;
}

static bool match_flags(uint32_t match, const FWP_VALUE0 *value, const FWP_VALUE0 *cond)
{
    uint64_t v, c;
    if (!unsigned_of(value, &v) || !unsigned_of(cond, &c))
        return false;
    switch (match) {
    case FWP_MATCH_FLAGS_ALL_SET:
        return (v & c) == c;
    case FWP_MATCH_FLAGS_ANY_SET:
        return (v & c) != 0;
    default:
        return (v & c) == 0;
    }
}

static WCHAR ascii_fold(WCHAR c)
{
    return (c >= 'A' && c <= 'Z') ? (WCHAR)(c + ('a' - 'A')) : c;
}

static bool match_case_insensitive(const FWP_VALUE0 *value, const FWP_VALUE0 *cond)
{
    const WCHAR *a = value->unicodeString, *b = cond->unicodeString;
    if (!a || !b)
        return false;
    size_t i = 0;
    while (a[i] && ascii_fold(a[i]) == ascii_fold(b[i]))
        i++;
    return a[i] == 0 && b[i] == 0;
}

static size_t strip_utf16_nul(const uint8_t *p, size_t n)
{
    return (n >= 2 && n % 2 == 0 && p[n - 1] == 0 && p[n - 2] == 0) ? n - 2 : n;
}

static bool ends_with(const uint8_t *v, size_t nv, const uint8_t *c, size_t nc)
{
    return nv >= nc && (nc == 0 || memcmp(v + (nv - nc), c, nc) == 0);
}

/* The suffix test behind FWP_MATCH_PREFIX; false in *ok on bad data. */
static bool has_suffix(const FWP_VALUE0 *value, const FWP_VALUE0 *cond, bool *ok)
{
    *ok = false;
    if (value->type == FWP_UNICODE_STRING_TYPE) {
        if (!value->unicodeString || !cond->unicodeString)
            return false;
        *ok = true;
        size_t nv = wstr_len(value->unicodeString), nc = wstr_len(cond->unicodeString);
        return ends_with((const uint8_t *)value->unicodeString, nv * sizeof(WCHAR),
                         (const uint8_t *)cond->unicodeString, nc * sizeof(WCHAR));
    }
    if (!blob_ok(value->byteBlob) || !blob_ok(cond->byteBlob))
        return false;
    *ok = true;
    const FWP_BYTE_BLOB *v = value->byteBlob, *c = cond->byteBlob;
    return ends_with(v->data, strip_utf16_nul(v->data, v->size), c->data,
                     strip_utf16_nul(c->data, c->size));
}

static bool match_plain(uint32_t match, const FWP_VALUE0 *value, const FWP_VALUE0 *cond)
{
    int order;
    bool ok, suffix;
    switch (match) {
    case FWP_MATCH_FLAGS_ALL_SET:
    case FWP_MATCH_FLAGS_ANY_SET:
    case FWP_MATCH_FLAGS_NONE_SET:
        return match_flags(match, value, cond);
    case FWP_MATCH_EQUAL_CASE_INSENSITIVE:
        return match_case_insensitive(value, cond);
    case FWP_MATCH_PREFIX:
    case FWP_MATCH_NOT_PREFIX:
        suffix = has_suffix(value, cond, &ok);
        return ok && (match == FWP_MATCH_PREFIX ? suffix : !suffix);
    default:
        break;
    }
    if (!value_cmp(value, cond, &order))
        return false;
    switch (match) {
    case FWP_MATCH_EQUAL:
        return order == 0;
    case FWP_MATCH_GREATER:
        return order > 0;
    case FWP_MATCH_LESS:
        return order < 0;
    case FWP_MATCH_GREATER_OR_EQUAL:
        return order >= 0;
    case FWP_MATCH_LESS_OR_EQUAL:
        return order <= 0;
    case FWP_MATCH_NOT_EQUAL:
        return order != 0;
    default:
        return false;
    }
}

bool owfp_condition_match(const FWPS_FILTER_CONDITION0 *cond, const FWP_VALUE0 *value)
{
    if (!cond || !value)
        return false;
    const FWP_CONDITION_VALUE0 *c = &cond->conditionValue;
    uint32_t operand = operand_type(c);
    if (operand == FWP_EMPTY || value->type != operand)
        return false;
    if (!match_allowed(cond->matchType, c->type, operand))
        return false;
    switch (c->type) {
    case FWP_V4_ADDR_MASK:
        return c->v4AddrMask && match_v4(c->v4AddrMask, value->uint32);
    case FWP_V6_ADDR_MASK:
        return c->v6AddrMask && match_v6(c->v6AddrMask, value->byteArray16);
    case FWP_RANGE_TYPE:
        return match_range(c->rangeValue, value);
    default: {
        FWP_VALUE0 pc = owfp_condition_value_plain(c);
        return match_plain(cond->matchType, value, &pc);
    }
    }
}

static const FWP_VALUE0 *incoming(const FWPS_INCOMING_VALUES0 *in, uint16_t field)
{
    if (!in->incomingValue || field >= in->valueCount)
        return NULL;
    return &in->incomingValue[field].value;
}

bool owfp_conditions_match(const FWPS_FILTER_CONDITION0 *conds, uint32_t n,
                           const FWPS_INCOMING_VALUES0 *in)
{
    if (n == 0)
        return true;
    if (!conds || !in)
        return false;
    for (uint32_t i = 0; i < n;) {
        uint32_t end = owfp_condition_group_end(conds, n, i);
        const FWP_VALUE0 *v = incoming(in, conds[i].fieldId);
        bool any = false;
        for (uint32_t j = i; j < end && !any; j++)
            any = owfp_condition_match(&conds[j], v);
        if (!any)
            return false;
        i = end;
    }
    return true;
}
