/* Reading one capture (capture.h). */
#include "replay/capture.h"

#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC_USEC 0xa1b2c3d4u
#define MAGIC_NSEC 0xa1b23c4du
#define FILE_HEADER 24
#define RECORD_HEADER 16
/* libpcap's sanity limit on a record (MAXIMUM_SNAPLEN) for every link type
 * the decoder knows; larger records go to libpcap, which refuses them. */
#define MAX_CAPLEN 262144u
/* Mapped at a time: large enough that remapping costs nothing per record,
 * small enough that the mapped pages add little to the resident size. */
#define WINDOW (1u << 20)

struct owfp_capture {
    pcap_t *p;
    bool mapped;      /* records come from the mapping, not libpcap */
    bool nsec;        /* the file's time stamps are in nanoseconds */
    uint32_t max_caplen;
    uint64_t size;    /* of the file */
    uint64_t off;     /* of the next record */
    uint64_t woff;    /* where the window starts in the file (page aligned) */
    size_t wlen;
    const uint8_t *win;
    char err[64];     /* an error of our own, else libpcap's */
};

static uint32_t host32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static uint16_t host16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static void unmap(struct owfp_capture *c)
{
    if (c->win)
        munmap((void *)c->win, c->wlen);
    c->win = NULL;
    c->wlen = 0;
}

/* Whether the file is one the mapping path reads as libpcap would: a
 * regular file, the classic format, version 2.4, this machine's byte order
 * (libpcap rewrites some link-layer headers of swapped files), and the
 * usual microsecond view of its time stamps. */
static bool mappable(struct owfp_capture *c, FILE *f)
{
    struct stat st;
    uint8_t h[FILE_HEADER];
    int fd = fileno(f);
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || ftello(f) != FILE_HEADER ||
        pread(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h))
        return false;
    uint32_t magic = host32(h);
    if ((magic != MAGIC_USEC && magic != MAGIC_NSEC) || host16(h + 4) != 2 ||
        host16(h + 6) != 4 || pcap_is_swapped(c->p) ||
        pcap_get_tstamp_precision(c->p) != PCAP_TSTAMP_PRECISION_MICRO)
        return false;
    int snap = pcap_snapshot(c->p);
    if (snap <= 0)
        return false;
    c->nsec = magic == MAGIC_NSEC;
    c->max_caplen = (uint32_t)snap < MAX_CAPLEN ? (uint32_t)snap : MAX_CAPLEN;
    c->size = (uint64_t)st.st_size;
    c->off = FILE_HEADER;
    return true;
}

struct owfp_capture *owfp_capture_open(const char *name, bool mapped, char *err, size_t errlen)
{
    char perr[PCAP_ERRBUF_SIZE] = "";
    struct owfp_capture *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->p = pcap_open_offline(name, perr);
    if (!c->p) {
        snprintf(err, errlen, "%s", perr);
        free(c);
        return NULL;
    }
    /* Standard input may be a regular file positioned anywhere: libpcap's
     * own reading is the safe choice. */
    c->mapped = mapped && strcmp(name, "-") != 0 && mappable(c, pcap_file(c->p));
    return c;
}

void owfp_capture_close(struct owfp_capture *c)
{
    if (!c)
        return;
    unmap(c);
    pcap_close(c->p);
    free(c);
}

int owfp_capture_dlt(const struct owfp_capture *c)
{
    return pcap_datalink(c->p);
}

const char *owfp_capture_error(const struct owfp_capture *c)
{
    return c->err[0] ? c->err : pcap_geterr(c->p);
}

long long owfp_capture_pos(const struct owfp_capture *c)
{
    if (c->mapped)
        return (long long)c->off;
    FILE *f = pcap_file(c->p);
    return f ? (long long)ftello(f) : -1;
}

bool owfp_capture_is_mapped(const struct owfp_capture *c)
{
    return c->mapped;
}

bool owfp_capture_peek(const struct owfp_capture *c, uint64_t *cursor, uint64_t *off,
                       const uint8_t **frame, uint32_t *caplen)
{
    uint64_t at = *cursor > c->off ? *cursor : c->off;
    uint64_t wend = c->woff + c->wlen;
    if (!c->mapped || at < c->woff || at + RECORD_HEADER > wend)
        return false;
    const uint8_t *h = c->win + (at - c->woff);
    uint32_t len = host32(h + 8);
    if (len > c->max_caplen)
        return false;
    uint64_t held = wend - (at + RECORD_HEADER);
    *off = at;
    *frame = h + RECORD_HEADER;
    *caplen = len < held ? len : (uint32_t)held;
    *cursor = at + RECORD_HEADER + len;
    /* The record after it is the next to be looked at. */
    if (*cursor + 128 <= wend) {
        __builtin_prefetch(c->win + (*cursor - c->woff));
        __builtin_prefetch(c->win + (*cursor - c->woff) + 64);
    }
    return true;
}

/* The rest of the file goes through libpcap, from the record at c->off. */
static bool hand_over(struct owfp_capture *c)
{
    unmap(c);
    c->mapped = false;
    if (fseeko(pcap_file(c->p), (off_t)c->off, SEEK_SET) == 0)
        return true;
    snprintf(c->err, sizeof(c->err), "cannot seek to record at offset %llu",
             (unsigned long long)c->off);
    return false;
}

/* A pointer to [off, off + n) of the file, moving the window if needed;
 * NULL when the file does not hold those bytes or cannot be mapped. */
static const uint8_t *bytes_at(struct owfp_capture *c, uint64_t off, uint64_t n)
{
    if (off + n > c->size)
        return NULL;
    if (off < c->woff || off + n > c->woff + c->wlen) {
        unmap(c);
        uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
        uint64_t woff = off - off % page;
        size_t wlen = (size_t)(c->size - woff < WINDOW ? c->size - woff : WINDOW);
        if (off + n > woff + wlen)
            return NULL; /* longer than a window: never for a record we take */
        void *m = mmap(NULL, wlen, PROT_READ, MAP_PRIVATE, fileno(pcap_file(c->p)), (off_t)woff);
        if (m == MAP_FAILED)
            return NULL;
        c->win = m;
        c->woff = woff;
        c->wlen = wlen;
    }
    return c->win + (off - c->woff);
}

/* The record at c->off from the mapping, if libpcap would return it as it
 * stands in the file. */
static bool mapped_record(struct owfp_capture *c, struct owfp_capture_rec *rec)
{
    const uint8_t *h = bytes_at(c, c->off, RECORD_HEADER);
    if (!h)
        return false;
    uint32_t sec = host32(h), sub = host32(h + 4), caplen = host32(h + 8);
    /* libpcap reads the time stamp fields as signed: only values that read
     * the same either way are taken here. */
    if (caplen > c->max_caplen || sec > INT32_MAX || sub > INT32_MAX)
        return false;
    /* Header and data together: the window may move to take them. */
    if (!(h = bytes_at(c, c->off, RECORD_HEADER + (uint64_t)caplen)))
        return false;
    rec->data = h + RECORD_HEADER;
    rec->caplen = caplen;
    rec->len = host32(h + 12);
    rec->ts_us = (uint64_t)sec * 1000000 + (c->nsec ? sub / 1000 : sub);
    c->off += RECORD_HEADER + (uint64_t)caplen;
    /* The next record's header and the packet headers after it (when no
     * one looks ahead with owfp_capture_peek): records are too far apart
     * for the hardware to see the stream. */
    if (c->off + 128 <= c->woff + c->wlen) {
        __builtin_prefetch(c->win + (c->off - c->woff));
        __builtin_prefetch(c->win + (c->off - c->woff) + 64);
    }
    return true;
}

int owfp_capture_next(struct owfp_capture *c, struct owfp_capture_rec *rec)
{
    if (c->mapped) {
        if (c->off == c->size) {
            unmap(c);
            return 0;
        }
        if (mapped_record(c, rec))
            return 1;
        if (!hand_over(c))
            return -1;
    }
    struct pcap_pkthdr *h;
    const u_char *data;
    int ret = pcap_next_ex(c->p, &h, &data);
    if (ret == 1) {
        rec->data = data;
        rec->caplen = h->caplen;
        rec->len = h->len;
        rec->ts_us = (uint64_t)h->ts.tv_sec * 1000000 + (uint64_t)h->ts.tv_usec;
        return 1;
    }
    return ret == PCAP_ERROR_BREAK ? 0 : -1;
}
