/* --write-streams: each direction of each connection as the callouts left
 * it (edited, injected, blocked bytes gone), one file per direction. */
#ifndef OPENWFP_REPLAY_STREAM_FILES_H
#define OPENWFP_REPLAY_STREAM_FILES_H

#include <stddef.h>
#include <stdint.h>

#include "replay/replay_conn.h"

struct owfp_stream_files;

/* NULL (after a message on stderr) when `dir` cannot be created or used. */
struct owfp_stream_files *owfp_stream_files_new(const char *dir);
/* 0, or 2 when a write failed. */
int owfp_stream_files_free(struct owfp_stream_files *sf);

void owfp_stream_files_open(struct owfp_stream_files *sf, struct owfp_rconn *rc);
void owfp_stream_files_write(struct owfp_stream_files *sf, struct owfp_rconn *rc, int side,
                             const uint8_t *p, size_t n);
void owfp_stream_files_close(struct owfp_stream_files *sf, struct owfp_rconn *rc);

/* "000001_10.0.0.1_43210-10.0.0.2_80.send": the file name of a direction. */
void owfp_stream_file_name(const struct owfp_rconn *rc, int side, char *buf, size_t n);

#endif
