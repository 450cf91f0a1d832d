/*
 * The registry, as far as drivers read their parameters: keys the host
 * creates (openwfp replay makes each driver's service key and its
 * Parameters subkey, with the --driver-param values), opened with ZwOpenKey,
 * read with ZwQueryValueKey or RtlQueryRegistryValues, closed with ZwClose.
 * Nothing a driver does changes it.
 *
 * Key paths and value names are looked up as lower-case ASCII ("\registry
 * \machine\system\..."); the registry compares names without case, and a
 * name with characters outside printable ASCII simply is not found. Each key
 * and value also keeps the spelling it was created with, which enumeration
 * and ZwQueryKey return. Values keep their registry type and bytes (REG_SZ as
 * NUL-terminated UTF-16) and the order they were created in.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/alloc.h"
#include "kernel/kernel.h"

#define SERVICES_ROOT "\\registry\\machine\\system\\currentcontrolset\\services\\"
#define PATH_MAX_LEN 1024

struct reg_value {
    struct reg_value *next;
    char *name;
    char *display; /* as first created */
    ULONG type;
    ULONG size;
    unsigned char *data;
};

struct reg_key {
    struct reg_key *next;
    char *path;
    char *display;             /* as first created */
    struct reg_value *values;  /* oldest first */
    LONGLONG written;          /* system time of the last change */
};

struct reg_handle {
    struct reg_handle *next;
    struct reg_key *key;
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct reg_key *keys;       /* under reg_mu */
static struct reg_handle *handles; /* open handles, under reg_mu */

/* ---- names ------------------------------------------------------------------ */

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Appends `n` narrow or UTF-16 units to out[*len] as lower-case ASCII;
 * false when a unit is not printable ASCII or the path gets too long. */
static bool append_units(char *out, size_t *len, const void *s, bool wide, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned c = owfp_unit_at(s, wide, i);
        if (c < 0x20 || c > 0x7e || *len + 1 >= PATH_MAX_LEN)
            return false;
        out[(*len)++] = lower((char)c);
    }
    out[*len] = '\0';
    return true;
}

static bool append_wide(char *out, size_t *len, const WCHAR *s, size_t n)
{
    return append_units(out, len, s, true, n);
}

static bool append_narrow(char *out, size_t *len, const char *s)
{
    return append_units(out, len, s, false, strlen(s));
}

static void trim_path(char *path, size_t *len)
{
    while (*len > 1 && path[*len - 1] == '\\')
        path[--*len] = '\0';
}

static struct reg_key *find_key(const char *path)
{
    for (struct reg_key *k = keys; k; k = k->next)
        if (strcmp(k->path, path) == 0)
            return k;
    return NULL;
}

/* `name` in any case: names are printable ASCII. */
static struct reg_value *find_value(struct reg_key *k, const char *name)
{
    for (struct reg_value *v = k->values; v; v = v->next)
        if (strcasecmp(v->name, name) == 0)
            return v;
    return NULL;
}

/* The open handle `h`, or NULL; reg_mu held. Compares addresses only. */
static struct reg_handle *find_handle(HANDLE h)
{
    for (struct reg_handle *p = handles; p; p = p->next)
        if ((HANDLE)p == h)
            return p;
    return NULL;
}

/* ---- host side ---------------------------------------------------------------- */

static int normalize(const char *in, char out[PATH_MAX_LEN])
{
    size_t len = 0;
    out[0] = '\0';
    if (!in || in[0] != '\\' || !append_narrow(out, &len, in))
        return -EINVAL;
    trim_path(out, &len);
    return 0;
}

static void free_value(struct reg_value *v)
{
    owfp_free(v->name);
    owfp_free(v->display);
    owfp_free(v->data);
    owfp_free(v);
}

/* A copy of the first `len` characters of `s`, or NULL. */
static char *copy_n(const char *s, size_t len)
{
    char *c = owfp_malloc(len + 1);
    if (c) {
        memcpy(c, s, len);
        c[len] = '\0';
    }
    return c;
}

/* The key at `path` (normalized; `display` is the same path as given),
 * created if missing; reg_mu held. */
static struct reg_key *make_key(const char *path, const char *display)
{
    struct reg_key *k = find_key(path);
    if (k)
        return k;
    k = owfp_calloc(1, sizeof(*k));
    char *copy = copy_n(path, strlen(path));
    char *shown = copy_n(display, strlen(path)); /* same length, trailing '\\' cut */
    if (!k || !copy || !shown) {
        owfp_free(k);
        owfp_free(copy);
        owfp_free(shown);
        return NULL;
    }
    k->path = copy;
    k->display = shown;
    k->written = owfp_time_system();
    k->next = keys;
    keys = k;
    return k;
}

int owfp_registry_create_key(const char *path)
{
    char p[PATH_MAX_LEN];
    if (normalize(path, p))
        return -EINVAL;
    pthread_mutex_lock(&reg_mu);
    struct reg_key *k = make_key(p, path);
    pthread_mutex_unlock(&reg_mu);
    return k ? 0 : -ENOMEM;
}

static int set_value(const char *path, const char *name, ULONG type, const void *data,
                     ULONG size)
{
    char p[PATH_MAX_LEN], n[PATH_MAX_LEN];
    size_t nlen = 0;
    n[0] = '\0';
    if (normalize(path, p) || !name || !append_narrow(n, &nlen, name))
        return -EINVAL;
    struct reg_value *v = owfp_calloc(1, sizeof(*v));
    char *ncopy = copy_n(n, nlen);
    char *shown = copy_n(name, nlen);
    unsigned char *dcopy = owfp_malloc(size ? size : 1);
    if (!v || !ncopy || !shown || !dcopy) {
        owfp_free(v);
        owfp_free(ncopy);
        owfp_free(shown);
        owfp_free(dcopy);
        return -ENOMEM;
    }
    if (size)
        memcpy(dcopy, data, size);
    v->name = ncopy;
    v->display = shown;
    v->type = type;
    v->size = size;
    v->data = dcopy;
    pthread_mutex_lock(&reg_mu);
    struct reg_key *k = make_key(p, path);
    struct reg_value *old = NULL;
    if (k) {
        /* A value set again takes the old one's place (and name, as the
         * registry keeps a name's first spelling). Readers copy under the
         * lock, so the old one can go at once. */
        struct reg_value **q = &k->values;
        while (*q && strcmp((*q)->name, n) != 0)
            q = &(*q)->next;
        if (*q) {
            old = *q;
            v->next = old->next;
            char *keep = v->display;
            v->display = old->display;
            old->display = keep;
        }
        *q = v;
        k->written = owfp_time_system();
    }
    pthread_mutex_unlock(&reg_mu);
    if (old)
        free_value(old);
    if (!k) {
        free_value(v);
        return -ENOMEM;
    }
    return 0;
}

int owfp_registry_set_dword(const char *path, const char *name, uint32_t value)
{
    unsigned char le[4] = {(unsigned char)value, (unsigned char)(value >> 8),
                           (unsigned char)(value >> 16), (unsigned char)(value >> 24)};
    return set_value(path, name, REG_DWORD, le, sizeof(le));
}

/* UTF-8 to NUL-terminated UTF-16 (little-endian units); the number of units
 * written including the NUL, or 0 for invalid UTF-8. `out` holds
 * strlen(s) + 1 units at least. */
static size_t utf8_to_utf16(const char *s, WCHAR *out)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = 0;
    while (*p) {
        uint32_t c;
        int more;
        if (*p < 0x80) {
            c = *p;
            more = 0;
        } else if ((*p & 0xe0) == 0xc0) {
            c = *p & 0x1fu;
            more = 1;
        } else if ((*p & 0xf0) == 0xe0) {
            c = *p & 0x0fu;
            more = 2;
        } else if ((*p & 0xf8) == 0xf0) {
            c = *p & 0x07u;
            more = 3;
        } else {
            return 0;
        }
        p++;
        for (int i = 0; i < more; i++, p++) {
            if ((*p & 0xc0) != 0x80)
                return 0;
            c = c << 6 | (*p & 0x3fu);
        }
        static const uint32_t min[4] = {0, 0x80, 0x800, 0x10000};
        if (c < min[more] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
            return 0;
        if (c >= 0x10000) {
            c -= 0x10000;
            out[n++] = (WCHAR)(0xd800 | c >> 10);
            out[n++] = (WCHAR)(0xdc00 | (c & 0x3ff));
        } else {
            out[n++] = (WCHAR)c;
        }
    }
    out[n++] = 0;
    return n;
}

int owfp_registry_set_string(const char *path, const char *name, const char *utf8)
{
    if (!utf8)
        return -EINVAL;
    size_t len = strlen(utf8);
    if (len > UNICODE_STRING_MAX_CHARS)
        return -EINVAL;
    WCHAR *w = owfp_malloc((len + 1) * sizeof(WCHAR));
    if (!w)
        return -ENOMEM;
    size_t units = utf8_to_utf16(utf8, w);
    int rc = units ? set_value(path, name, REG_SZ, w, (ULONG)(units * sizeof(WCHAR))) : -EINVAL;
    owfp_free(w);
    return rc;
}

unsigned long owfp_registry_open_handles(void)
{
    pthread_mutex_lock(&reg_mu);
    unsigned long n = 0;
    for (struct reg_handle *h = handles; h; h = h->next)
        n++;
    pthread_mutex_unlock(&reg_mu);
    return n;
}

void owfp_registry_clear(void)
{
    pthread_mutex_lock(&reg_mu);
    struct reg_key *k = keys;
    struct reg_handle *h = handles;
    keys = NULL;
    handles = NULL;
    pthread_mutex_unlock(&reg_mu);
    while (h) {
        struct reg_handle *next = h->next;
        owfp_free(h);
        h = next;
    }
    while (k) {
        struct reg_key *next = k->next;
        for (struct reg_value *v = k->values; v;) {
            struct reg_value *vn = v->next;
            free_value(v);
            v = vn;
        }
        owfp_free(k->path);
        owfp_free(k->display);
        owfp_free(k);
        k = next;
    }
}

bool owfp_registry_close(HANDLE handle, NTSTATUS *status)
{
    pthread_mutex_lock(&reg_mu);
    struct reg_handle **q = &handles;
    while (*q && (HANDLE)*q != handle)
        q = &(*q)->next;
    struct reg_handle *h = *q;
    if (h)
        *q = h->next;
    pthread_mutex_unlock(&reg_mu);
    if (!h)
        return false;
    owfp_free(h);
    *status = STATUS_SUCCESS;
    return true;
}

/* ---- driver side -------------------------------------------------------------- */

/* The normalized path `root` (a key handle, or NULL) + `name` names; reg_mu
 * held. */
static NTSTATUS resolve(HANDLE root, PCUNICODE_STRING name, char out[PATH_MAX_LEN])
{
    size_t len = 0;
    out[0] = '\0';
    if (root) {
        struct reg_handle *h = find_handle(root);
        if (!h)
            return STATUS_INVALID_HANDLE;
        if (!append_narrow(out, &len, h->key->path))
            return STATUS_OBJECT_NAME_NOT_FOUND;
    }
    if (name && name->Buffer && name->Length) {
        size_t n = name->Length / sizeof(WCHAR);
        if (root && name->Buffer[0] != L'\\' && !append_narrow(out, &len, "\\"))
            return STATUS_OBJECT_NAME_NOT_FOUND;
        if (!root && name->Buffer[0] != L'\\')
            return STATUS_OBJECT_NAME_NOT_FOUND; /* absolute names start at the root */
        if (!append_wide(out, &len, name->Buffer, n))
            return STATUS_OBJECT_NAME_NOT_FOUND;
    }
    if (!len)
        return STATUS_OBJECT_NAME_NOT_FOUND;
    trim_path(out, &len);
    return STATUS_SUCCESS;
}

/* A new handle to `k`; reg_mu held. */
static NTSTATUS open_handle(struct reg_key *k, PHANDLE out)
{
    struct reg_handle *h = owfp_calloc(1, sizeof(*h));
    if (!h)
        return STATUS_INSUFFICIENT_RESOURCES;
    h->key = k;
    h->next = handles;
    handles = h;
    *out = (HANDLE)h;
    return STATUS_SUCCESS;
}

NTSTATUS NTAPI ZwOpenKey(PHANDLE KeyHandle, ACCESS_MASK DesiredAccess,
                         POBJECT_ATTRIBUTES ObjectAttributes)
{
    if (!owfp_irql_check_max(PASSIVE_LEVEL, "ZwOpenKey"))
        return STATUS_INVALID_DEVICE_STATE;
    if (!KeyHandle || !ObjectAttributes)
        return STATUS_INVALID_PARAMETER;
    *KeyHandle = NULL;
    if (DesiredAccess & (KEY_SET_VALUE | KEY_CREATE_SUB_KEY | KEY_CREATE_LINK | DELETE |
                         WRITE_DAC | WRITE_OWNER | GENERIC_WRITE | GENERIC_ALL))
        return STATUS_ACCESS_DENIED; /* the registry is read-only here */
    char path[PATH_MAX_LEN];
    pthread_mutex_lock(&reg_mu);
    NTSTATUS st = resolve(ObjectAttributes->RootDirectory, ObjectAttributes->ObjectName, path);
    if (NT_SUCCESS(st)) {
        struct reg_key *k = find_key(path);
        st = k ? open_handle(k, KeyHandle) : STATUS_OBJECT_NAME_NOT_FOUND;
    }
    pthread_mutex_unlock(&reg_mu);
    return st;
}

/* Value name as normalized ASCII; NULL or empty is the key's default value. */
static bool value_name(PCUNICODE_STRING name, char out[PATH_MAX_LEN])
{
    size_t len = 0;
    out[0] = '\0';
    if (!name || !name->Buffer)
        return true;
    return append_wide(out, &len, name->Buffer, name->Length / sizeof(WCHAR));
}

/* Writes an information structure: `fixed_len` bytes of `fixed` (else
 * STATUS_BUFFER_TOO_SMALL), then, when the whole fits (else
 * STATUS_BUFFER_OVERFLOW), `name` as UTF-16 at `name_at` and `data_len`
 * bytes of `data` at `data_at`. *result is the size of the whole. */
struct info_parts {
    const void *fixed;
    ULONG fixed_len;
    const char *name; /* ASCII, or NULL */
    ULONG name_at;
    const void *data;
    ULONG data_len, data_at;
};

static NTSTATUS emit(const struct info_parts *p, PVOID out, ULONG length, PULONG result)
{
    ULONG name_units = p->name ? (ULONG)strlen(p->name) : 0;
    ULONG need = p->fixed_len;
    if (p->name && p->name_at + name_units * sizeof(WCHAR) > need)
        need = p->name_at + name_units * (ULONG)sizeof(WCHAR);
    if (p->data && p->data_at + p->data_len > need)
        need = p->data_at + p->data_len;
    *result = need;
    if (length < p->fixed_len)
        return STATUS_BUFFER_TOO_SMALL;
    unsigned char *o = out;
    memcpy(o, p->fixed, p->fixed_len);
    if (length < need)
        return STATUS_BUFFER_OVERFLOW;
    for (ULONG i = 0; i < name_units; i++) {
        WCHAR c = (WCHAR)(unsigned char)p->name[i];
        memcpy(o + p->name_at + i * sizeof(WCHAR), &c, sizeof(c));
    }
    if (p->data && p->data_len)
        memcpy(o + p->data_at, p->data, p->data_len);
    return STATUS_SUCCESS;
}

/* reg_mu held. */
static NTSTATUS value_info(const struct reg_value *v, KEY_VALUE_INFORMATION_CLASS cls, PVOID out,
                           ULONG length, PULONG result)
{
    ULONG name_bytes = (ULONG)(strlen(v->display) * sizeof(WCHAR));
    struct info_parts p = {0};
    switch (cls) {
    case KeyValueBasicInformation: {
        KEY_VALUE_BASIC_INFORMATION b = {0, v->type, name_bytes, {0}};
        p = (struct info_parts){&b, (ULONG)FIELD_OFFSET(KEY_VALUE_BASIC_INFORMATION, Name),
                                v->display, (ULONG)FIELD_OFFSET(KEY_VALUE_BASIC_INFORMATION, Name),
                                NULL, 0, 0};
        return emit(&p, out, length, result);
    }
    case KeyValueFullInformation: {
        ULONG name_at = (ULONG)FIELD_OFFSET(KEY_VALUE_FULL_INFORMATION, Name);
        ULONG data_at = (name_at + name_bytes + 3) & ~3u;
        KEY_VALUE_FULL_INFORMATION f = {0, v->type, data_at, v->size, name_bytes, {0}};
        p = (struct info_parts){&f, name_at, v->display, name_at, v->data, v->size, data_at};
        return emit(&p, out, length, result);
    }
    case KeyValuePartialInformation: {
        ULONG data_at = (ULONG)FIELD_OFFSET(KEY_VALUE_PARTIAL_INFORMATION, Data);
        KEY_VALUE_PARTIAL_INFORMATION i = {0, v->type, v->size, {0}};
        p = (struct info_parts){&i, data_at, NULL, 0, v->data, v->size, data_at};
        return emit(&p, out, length, result);
    }
    default:
        return STATUS_INVALID_PARAMETER;
    }
}

/* The checks ZwQueryValueKey and ZwEnumerateValueKey make before the key. */
static NTSTATUS value_query_args(const char *api, KEY_VALUE_INFORMATION_CLASS cls, PVOID out,
                                 ULONG length, PULONG result)
{
    if (!owfp_irql_check_max(PASSIVE_LEVEL, api))
        return STATUS_INVALID_DEVICE_STATE;
    if (!result || (length && !out) ||
        (cls != KeyValueBasicInformation && cls != KeyValueFullInformation &&
         cls != KeyValuePartialInformation))
        return STATUS_INVALID_PARAMETER;
    return STATUS_SUCCESS;
}

NTSTATUS NTAPI ZwQueryValueKey(HANDLE KeyHandle, PUNICODE_STRING ValueName,
                               KEY_VALUE_INFORMATION_CLASS KeyValueInformationClass,
                               PVOID KeyValueInformation, ULONG Length, PULONG ResultLength)
{
    NTSTATUS st = value_query_args("ZwQueryValueKey", KeyValueInformationClass, KeyValueInformation,
                                   Length, ResultLength);
    if (!NT_SUCCESS(st))
        return st;
    char name[PATH_MAX_LEN];
    bool name_ok = value_name(ValueName, name);
    pthread_mutex_lock(&reg_mu);
    struct reg_handle *h = find_handle(KeyHandle);
    struct reg_value *v = h && name_ok ? find_value(h->key, name) : NULL;
    if (!h)
        st = STATUS_INVALID_HANDLE;
    else if (!v)
        st = STATUS_OBJECT_NAME_NOT_FOUND;
    else
        st = value_info(v, KeyValueInformationClass, KeyValueInformation, Length, ResultLength);
    pthread_mutex_unlock(&reg_mu);
    return st;
}

NTSTATUS NTAPI ZwEnumerateValueKey(HANDLE KeyHandle, ULONG Index,
                                   KEY_VALUE_INFORMATION_CLASS KeyValueInformationClass,
                                   PVOID KeyValueInformation, ULONG Length, PULONG ResultLength)
{
    NTSTATUS st = value_query_args("ZwEnumerateValueKey", KeyValueInformationClass,
                                   KeyValueInformation, Length, ResultLength);
    if (!NT_SUCCESS(st))
        return st;
    pthread_mutex_lock(&reg_mu);
    struct reg_handle *h = find_handle(KeyHandle);
    struct reg_value *v = h ? h->key->values : NULL;
    for (ULONG i = 0; v && i < Index; i++)
        v = v->next;
    if (!h)
        st = STATUS_INVALID_HANDLE;
    else if (!v)
        st = STATUS_NO_MORE_ENTRIES;
    else
        st = value_info(v, KeyValueInformationClass, KeyValueInformation, Length, ResultLength);
    pthread_mutex_unlock(&reg_mu);
    return st;
}

/* The subkeys of `k`: keys one component below it. reg_mu held. */
static void count_subkeys(const struct reg_key *k, ULONG *count, ULONG *max_name_bytes)
{
    size_t len = strlen(k->path);
    *count = *max_name_bytes = 0;
    for (const struct reg_key *c = keys; c; c = c->next) {
        if (strncmp(c->path, k->path, len) != 0 || c->path[len] != '\\' ||
            strchr(c->path + len + 1, '\\'))
            continue;
        ULONG bytes = (ULONG)(strlen(c->path + len + 1) * sizeof(WCHAR));
        (*count)++;
        if (bytes > *max_name_bytes)
            *max_name_bytes = bytes;
    }
}

/* reg_mu held. */
static NTSTATUS key_info(const struct reg_key *k, KEY_INFORMATION_CLASS cls, PVOID out,
                         ULONG length, PULONG result)
{
    const char *last = strrchr(k->display, '\\');
    const char *own = last ? last + 1 : k->display;
    LARGE_INTEGER written = {.QuadPart = k->written};
    struct info_parts p = {0};
    switch (cls) {
    case KeyBasicInformation: {
        ULONG at = (ULONG)FIELD_OFFSET(KEY_BASIC_INFORMATION, Name);
        KEY_BASIC_INFORMATION b = {written, 0, (ULONG)(strlen(own) * sizeof(WCHAR)), {0}};
        p = (struct info_parts){&b, at, own, at, NULL, 0, 0};
        return emit(&p, out, length, result);
    }
    case KeyFullInformation: {
        KEY_FULL_INFORMATION f;
        memset(&f, 0, sizeof(f));
        f.LastWriteTime = written;
        f.ClassOffset = (ULONG)FIELD_OFFSET(KEY_FULL_INFORMATION, Class);
        count_subkeys(k, &f.SubKeys, &f.MaxNameLen);
        for (const struct reg_value *v = k->values; v; v = v->next) {
            ULONG name_bytes = (ULONG)(strlen(v->display) * sizeof(WCHAR));
            f.Values++;
            if (name_bytes > f.MaxValueNameLen)
                f.MaxValueNameLen = name_bytes;
            if (v->size > f.MaxValueDataLen)
                f.MaxValueDataLen = v->size;
        }
        p = (struct info_parts){&f, f.ClassOffset, NULL, 0, NULL, 0, 0};
        return emit(&p, out, length, result);
    }
    case KeyNameInformation: {
        ULONG at = (ULONG)FIELD_OFFSET(KEY_NAME_INFORMATION, Name);
        KEY_NAME_INFORMATION n = {(ULONG)(strlen(k->display) * sizeof(WCHAR)), {0}};
        p = (struct info_parts){&n, at, k->display, at, NULL, 0, 0};
        return emit(&p, out, length, result);
    }
    default:
        return STATUS_INVALID_PARAMETER;
    }
}

NTSTATUS NTAPI ZwQueryKey(HANDLE KeyHandle, KEY_INFORMATION_CLASS KeyInformationClass,
                          PVOID KeyInformation, ULONG Length, PULONG ResultLength)
{
    if (!owfp_irql_check_max(PASSIVE_LEVEL, "ZwQueryKey"))
        return STATUS_INVALID_DEVICE_STATE;
    if (!ResultLength || (Length && !KeyInformation))
        return STATUS_INVALID_PARAMETER;
    NTSTATUS st;
    pthread_mutex_lock(&reg_mu);
    struct reg_handle *h = find_handle(KeyHandle);
    st = h ? key_info(h->key, KeyInformationClass, KeyInformation, Length, ResultLength)
           : STATUS_INVALID_HANDLE;
    pthread_mutex_unlock(&reg_mu);
    return st;
}

/* A copy of a value's type and bytes (the caller frees data). */
struct value_copy {
    ULONG type;
    ULONG size;
    unsigned char *data;
};

static NTSTATUS copy_value(struct reg_key *k, const char *name, struct value_copy *out, bool *found)
{
    struct reg_value *v = find_value(k, name);
    *found = v != NULL;
    if (!v)
        return STATUS_SUCCESS;
    out->data = owfp_malloc(v->size ? v->size : 1);
    if (!out->data)
        return STATUS_INSUFFICIENT_RESOURCES;
    memcpy(out->data, v->data, v->size);
    out->type = v->type;
    out->size = v->size;
    return STATUS_SUCCESS;
}

static NTSTATUS store_direct(PRTL_QUERY_REGISTRY_TABLE e, ULONG type, const void *data,
                             ULONG size)
{
    if (!e->EntryContext)
        return STATUS_INVALID_PARAMETER;
    switch (type) {
    case REG_DWORD:
        if (size > sizeof(ULONG))
            return STATUS_BUFFER_TOO_SMALL;
        memcpy(e->EntryContext, data, size);
        return STATUS_SUCCESS;
    case REG_SZ:
    case REG_EXPAND_SZ: {
        PUNICODE_STRING u = e->EntryContext;
        size_t units = size / sizeof(WCHAR);
        const WCHAR *w = data;
        while (units && w[units - 1] == 0)
            units--;
        size_t bytes = units * sizeof(WCHAR);
        if (!u->Buffer)
            return STATUS_NOT_SUPPORTED; /* allocation by the call: not supported */
        if (bytes + sizeof(WCHAR) > u->MaximumLength)
            return STATUS_BUFFER_TOO_SMALL;
        memcpy(u->Buffer, w, bytes);
        u->Buffer[units] = 0;
        u->Length = (USHORT)bytes;
        return STATUS_SUCCESS;
    }
    default:
        return STATUS_NOT_SUPPORTED;
    }
}

/* One table entry's value (or default) to its destination. */
static NTSTATUS query_entry(PRTL_QUERY_REGISTRY_TABLE e, ULONG type, const void *data, ULONG size,
                            PWSTR name, PVOID Context)
{
    if (e->Flags & RTL_QUERY_REGISTRY_TYPECHECK) {
        ULONG want = e->DefaultType >> RTL_QUERY_REGISTRY_TYPECHECK_SHIFT;
        if (want != REG_NONE && want != type)
            return STATUS_OBJECT_TYPE_MISMATCH;
    }
    if (e->Flags & RTL_QUERY_REGISTRY_DIRECT) {
        /* Windows would write the value over EntryContext whatever its
         * type; when the default's type says what the driver expects, a
         * different type is refused and recorded instead. */
        ULONG dtype = e->DefaultType & ((1u << RTL_QUERY_REGISTRY_TYPECHECK_SHIFT) - 1);
        if (!(e->Flags & RTL_QUERY_REGISTRY_TYPECHECK) && dtype != REG_NONE && dtype != type) {
            owfp_kernel_finding("RtlQueryRegistryValues: RTL_QUERY_REGISTRY_DIRECT value of type "
                                "%lu where type %lu was expected, without "
                                "RTL_QUERY_REGISTRY_TYPECHECK",
                                (unsigned long)type, (unsigned long)dtype);
            return STATUS_OBJECT_TYPE_MISMATCH;
        }
        return store_direct(e, type, data, size);
    }
    return e->QueryRoutine(name, type, (PVOID)data, size, Context, e->EntryContext);
}

static PWSTR wide_name(const char *name)
{
    size_t n = strlen(name);
    PWSTR w = owfp_malloc((n + 1) * sizeof(WCHAR));
    if (w) {
        for (size_t i = 0; i <= n; i++)
            w[i] = (WCHAR)(unsigned char)name[i];
    }
    return w;
}

/* The key RtlQueryRegistryValues reads, as a normalized path; reg_mu held. */
static NTSTATUS query_path(ULONG RelativeTo, PCWSTR Path, char path[PATH_MAX_LEN])
{
    ULONG base = RelativeTo & ~(ULONG)(RTL_REGISTRY_OPTIONAL | RTL_REGISTRY_HANDLE);
    size_t len = 0;
    if (RelativeTo & RTL_REGISTRY_HANDLE) {
        NTSTATUS st = resolve((HANDLE)Path, NULL, path);
        if (!NT_SUCCESS(st))
            return st;
    } else if (!Path) {
        return STATUS_INVALID_PARAMETER;
    } else if (base == RTL_REGISTRY_ABSOLUTE || base == RTL_REGISTRY_SERVICES) {
        path[0] = '\0';
        if (base == RTL_REGISTRY_SERVICES)
            append_narrow(path, &len, SERVICES_ROOT);
        if (!append_wide(path, &len, Path, owfp_wcslen(Path)) || !len || path[0] != '\\')
            return STATUS_OBJECT_NAME_NOT_FOUND;
        trim_path(path, &len);
    } else {
        return STATUS_NOT_SUPPORTED;
    }
    return find_key(path) ? STATUS_SUCCESS : STATUS_OBJECT_NAME_NOT_FOUND;
}

/* A copy of the value `name` of the key at `path`, taken under the lock. */
static NTSTATUS read_value(const char *path, const char *name, struct value_copy *c,
                           bool *found)
{
    pthread_mutex_lock(&reg_mu);
    struct reg_key *k = find_key(path);
    NTSTATUS st = k ? copy_value(k, name, c, found) : STATUS_OBJECT_NAME_NOT_FOUND;
    pthread_mutex_unlock(&reg_mu);
    return st;
}

/* An entry without a Name: every value of the key, each through the
 * routine. The names are taken under the lock, each value read on its own. */
static NTSTATUS query_all(PRTL_QUERY_REGISTRY_TABLE e, const char *path, PVOID Context)
{
    if (e->Flags & RTL_QUERY_REGISTRY_DIRECT)
        return STATUS_INVALID_PARAMETER;
    size_t count = 0;
    pthread_mutex_lock(&reg_mu);
    struct reg_key *k = find_key(path);
    for (struct reg_value *v = k ? k->values : NULL; v; v = v->next)
        count++;
    char **names = owfp_calloc(count ? count : 1, sizeof(*names));
    size_t i = 0;
    for (struct reg_value *v = k ? k->values : NULL; names && v; v = v->next, i++)
        names[i] = copy_n(v->display, strlen(v->display));
    pthread_mutex_unlock(&reg_mu);
    if (!names)
        return STATUS_INSUFFICIENT_RESOURCES;
    NTSTATUS st = STATUS_SUCCESS;
    for (i = 0; i < count; i++) {
        struct value_copy c = {0};
        bool found = false;
        if (NT_SUCCESS(st))
            st = names[i] ? read_value(path, names[i], &c, &found)
                          : STATUS_INSUFFICIENT_RESOURCES;
        if (NT_SUCCESS(st) && found) {
            PWSTR w = wide_name(names[i]);
            st = w ? query_entry(e, c.type, c.data, c.size, w, Context)
                   : STATUS_INSUFFICIENT_RESOURCES;
            owfp_free(w);
        }
        owfp_free(c.data);
        owfp_free(names[i]);
    }
    owfp_free(names);
    return st;
}

/* A named entry whose value is missing: its default, if it has one. */
static NTSTATUS query_default(PRTL_QUERY_REGISTRY_TABLE e, PVOID Context)
{
    ULONG dtype = e->DefaultType & ((1u << RTL_QUERY_REGISTRY_TYPECHECK_SHIFT) - 1);
    if (dtype == REG_NONE || !e->DefaultData)
        return (e->Flags & RTL_QUERY_REGISTRY_REQUIRED) ? STATUS_OBJECT_NAME_NOT_FOUND
                                                         : STATUS_SUCCESS;
    ULONG size = e->DefaultLength;
    if (!size && (dtype == REG_SZ || dtype == REG_EXPAND_SZ))
        size = (ULONG)((owfp_wcslen(e->DefaultData) + 1) * sizeof(WCHAR));
    else if (!size && dtype == REG_DWORD)
        size = sizeof(ULONG);
    return query_entry(e, dtype, e->DefaultData, size, e->Name, Context);
}

/* An entry with a Name: that value, else its default. */
static NTSTATUS query_one(PRTL_QUERY_REGISTRY_TABLE e, const char *path, PVOID Context)
{
    char name[PATH_MAX_LEN];
    size_t nlen = 0;
    name[0] = '\0';
    struct value_copy c = {0};
    bool found = false;
    NTSTATUS st = STATUS_SUCCESS;
    if (append_wide(name, &nlen, e->Name, owfp_wcslen(e->Name)))
        st = read_value(path, name, &c, &found);
    if (NT_SUCCESS(st))
        st = found ? query_entry(e, c.type, c.data, c.size, e->Name, Context)
                   : query_default(e, Context);
    owfp_free(c.data);
    return st;
}

NTSTATUS NTAPI RtlQueryRegistryValues(ULONG RelativeTo, PCWSTR Path,
                                      PRTL_QUERY_REGISTRY_TABLE QueryTable, PVOID Context,
                                      PVOID Environment)
{
    if (!owfp_irql_check_max(PASSIVE_LEVEL, "RtlQueryRegistryValues"))
        return STATUS_INVALID_DEVICE_STATE;
    if (!QueryTable || Environment)
        return Environment ? STATUS_NOT_SUPPORTED : STATUS_INVALID_PARAMETER;
    char path[PATH_MAX_LEN];
    pthread_mutex_lock(&reg_mu);
    NTSTATUS st = query_path(RelativeTo, Path, path);
    pthread_mutex_unlock(&reg_mu);
    for (PRTL_QUERY_REGISTRY_TABLE e = QueryTable; NT_SUCCESS(st) && (e->QueryRoutine || e->Name);
         e++) {
        if (e->Flags & (RTL_QUERY_REGISTRY_SUBKEY | RTL_QUERY_REGISTRY_TOPKEY |
                        RTL_QUERY_REGISTRY_DELETE | RTL_QUERY_REGISTRY_NOVALUE))
            return STATUS_NOT_SUPPORTED;
        st = e->Name ? query_one(e, path, Context) : query_all(e, path, Context);
    }
    return st;
}
