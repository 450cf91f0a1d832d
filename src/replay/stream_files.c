/* --write-streams (stream_files.h). */
#include "replay/stream_files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "replay/addr.h"

/* Thousands of connections may be live at once: past this many open files a
 * direction's file is opened for each write instead of kept open. */
#define MAX_OPEN_FILES 256

struct owfp_stream_files {
    int dirfd;
    char *dir;
    unsigned open_files;
    int failed_errno; /* the first write error */
};

struct conn_files {
    int fd[2];
};

struct owfp_stream_files *owfp_stream_files_new(const char *dir)
{
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "openwfp replay: --write-streams %s: %s\n", dir, strerror(errno));
        return NULL;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "openwfp replay: --write-streams %s: %s\n", dir, strerror(errno));
        return NULL;
    }
    struct owfp_stream_files *sf = calloc(1, sizeof(*sf));
    if (!sf || !(sf->dir = strdup(dir))) {
        free(sf);
        close(fd);
        return NULL;
    }
    sf->dirfd = fd;
    return sf;
}

static void fail(struct owfp_stream_files *sf, int err, const char *name)
{
    if (sf->failed_errno)
        return;
    sf->failed_errno = err;
    fprintf(stderr, "openwfp replay: --write-streams %s/%s: %s\n", sf->dir, name, strerror(err));
}

int owfp_stream_files_free(struct owfp_stream_files *sf)
{
    if (!sf)
        return 0;
    int st = sf->failed_errno ? 2 : 0;
    close(sf->dirfd);
    free(sf->dir);
    free(sf);
    return st;
}

void owfp_stream_file_name(const struct owfp_rconn *rc, int side, char *buf, size_t n)
{
    const struct owfp_conn *c = owfp_rconn_conn(rc);
    int l = rc->send_side;
    char la[OWFP_ADDR_TEXT], ra[OWFP_ADDR_TEXT];
    owfp_addr_text(c->key.ip_version, owfp_conn_addr(c, l), la, sizeof(la));
    owfp_addr_text(c->key.ip_version, owfp_conn_addr(c, 1 - l), ra, sizeof(ra));
    snprintf(buf, n, "%06llu_%s_%u-%s_%u.%s", (unsigned long long)c->id, la,
             owfp_conn_port(c, l), ra, owfp_conn_port(c, 1 - l),
             side == l ? "send" : "recv");
}

static int open_file(struct owfp_stream_files *sf, const struct owfp_rconn *rc, int side,
                     int flags)
{
    char name[160];
    owfp_stream_file_name(rc, side, name, sizeof(name));
    int fd = openat(sf->dirfd, name, O_WRONLY | O_CREAT | O_CLOEXEC | flags, 0666);
    if (fd < 0)
        fail(sf, errno, name);
    return fd;
}

void owfp_stream_files_open(struct owfp_stream_files *sf, struct owfp_rconn *rc)
{
    struct conn_files *cf = malloc(sizeof(*cf));
    rc->files = cf;
    if (!cf) {
        fail(sf, ENOMEM, "(connection)");
        return;
    }
    for (int side = 0; side < 2; side++) {
        cf->fd[side] = open_file(sf, rc, side, O_TRUNC);
        if (cf->fd[side] >= 0 && ++sf->open_files > MAX_OPEN_FILES) {
            close(cf->fd[side]);
            cf->fd[side] = -1;
            sf->open_files--;
        }
    }
}

static void write_all(struct owfp_stream_files *sf, int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            fail(sf, w < 0 ? errno : EIO, "(stream)");
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

void owfp_stream_files_write(struct owfp_stream_files *sf, struct owfp_rconn *rc, int side,
                             const uint8_t *p, size_t n)
{
    struct conn_files *cf = rc->files;
    if (!cf)
        return;
    if (cf->fd[side] >= 0) {
        write_all(sf, cf->fd[side], p, n);
        return;
    }
    int fd = open_file(sf, rc, side, O_APPEND);
    if (fd >= 0) {
        write_all(sf, fd, p, n);
        close(fd);
    }
}

void owfp_stream_files_close(struct owfp_stream_files *sf, struct owfp_rconn *rc)
{
    struct conn_files *cf = rc->files;
    if (!cf)
        return;
    for (int side = 0; side < 2; side++) {
        if (cf->fd[side] >= 0) {
            if (close(cf->fd[side]) != 0)
                fail(sf, errno, "(stream)");
            sf->open_files--;
        }
    }
    free(cf);
    rc->files = NULL;
}
