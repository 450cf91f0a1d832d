/*
 * Reading one capture, record by record.
 *
 * libpcap opens every capture and reads every format it knows. A classic
 * pcap file in this machine's byte order (the common case: what tcpdump and
 * the generator write) is then read straight from a read-only mapping of
 * the file, a small window at a time: libpcap would copy each record twice
 * (the kernel into stdio's buffer, stdio into its packet buffer), and for a
 * replay that mostly looks at headers those copies cost more than the rest
 * of the reading. Records come out exactly as libpcap would return them:
 * the mapping path takes only records that libpcap passes through
 * unchanged, and at the first one it does not (cut to the snapshot, too
 * long, truncated, odd time stamps) it hands the file back to libpcap at
 * that record, which reads the rest and reports any error in its words.
 *
 * The mapped file must not shrink while it is read (the process would get
 * SIGBUS), as for any reader of a mapped file.
 */
#ifndef OPENWFP_REPLAY_CAPTURE_H
#define OPENWFP_REPLAY_CAPTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct owfp_capture;

/* One record. `data` is valid until the next owfp_capture_next() or close. */
struct owfp_capture_rec {
    const uint8_t *data;
    uint32_t caplen, len;
    uint64_t ts_us;
};

/* Opens `name` ("-" for standard input). NULL on failure, with libpcap's
 * message in `err` (at least `errlen` bytes). `mapped` false: never map,
 * read every record through libpcap. */
struct owfp_capture *owfp_capture_open(const char *name, bool mapped, char *err, size_t errlen);
void owfp_capture_close(struct owfp_capture *c);

/* The link type, as pcap_datalink() gives it. */
int owfp_capture_dlt(const struct owfp_capture *c);

/* 1: *rec holds the next record; 0: the end of the capture; -1: an error
 * (owfp_capture_error() says which). */
int owfp_capture_next(struct owfp_capture *c, struct owfp_capture_rec *rec);
const char *owfp_capture_error(const struct owfp_capture *c);

/* Looking ahead without reading, for hints: the record at *cursor (a file
 * offset; 0, or any offset up to the next record's, means the next
 * record). Gives its offset, and as much of the start of its frame as the
 * window mapped by the last owfp_capture_next() holds; *cursor then moves
 * to the record after it. False when the file is not read from the
 * mapping (or nothing was read yet) or the record's header lies beyond the
 * window. */
bool owfp_capture_peek(const struct owfp_capture *c, uint64_t *cursor, uint64_t *off,
                       const uint8_t **frame, uint32_t *caplen);

/* Bytes of the file read so far, or -1 when unknown. */
long long owfp_capture_pos(const struct owfp_capture *c);
/* Whether records are being read from the mapping (for tests). */
bool owfp_capture_is_mapped(const struct owfp_capture *c);

#endif
