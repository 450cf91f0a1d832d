/*
 * bench_libnids: libnids, the classic C TCP-reassembly library, over a
 * capture, as the replay benchmark's reference (bench/replay.sh).
 *
 *   bench_libnids [--streams N] CAPTURE
 *
 * Reassembles both directions of every TCP connection (collect and
 * collect_urg on both half-streams) and reads each new byte once (a running
 * sum over count_new bytes, printed so it cannot be optimised away). It
 * prints the connections seen, the stream payload bytes and wall seconds.
 *
 * Settings, chosen to give libnids the least work the comparison allows:
 * checksums are not verified for any address (the replay does not verify
 * them either), port-scan detection is off, warnings go nowhere. libnids
 * handles IPv4 only: IPv6 connections are read from the file and skipped.
 * --streams sets n_tcp_streams, the size of its connection hash table;
 * it keeps at most 3/4 of that many connections (default 2^18 -> 196,608).
 */
#include <inttypes.h>
#include <nids.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t g_bytes, g_sum, g_est, g_closed, g_reset, g_timed_out, g_exiting;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void read_new(const struct half_stream *h)
{
    const unsigned char *p = (const unsigned char *)h->data;
    uint64_t s = 0;
    for (int i = 0; i < h->count_new; i++)
        s += p[i];
    g_sum += s;
    g_bytes += (uint64_t)h->count_new;
    if (h->count_new_urg) {
        g_sum += h->urgdata;
        g_bytes++;
    }
}

static void on_tcp(struct tcp_stream *t, void **param)
{
    (void)param;
    switch (t->nids_state) {
    case NIDS_JUST_EST:
        t->client.collect++;
        t->server.collect++;
        t->client.collect_urg++;
        t->server.collect_urg++;
        g_est++;
        break;
    case NIDS_DATA:
        /* Nothing kept (no nids_discard): data holds just the new bytes. */
        if (t->client.count_new || t->client.count_new_urg)
            read_new(&t->client);
        if (t->server.count_new || t->server.count_new_urg)
            read_new(&t->server);
        break;
    case NIDS_CLOSE: g_closed++; break;
    case NIDS_RESET: g_reset++; break;
    case NIDS_TIMED_OUT: g_timed_out++; break;
    case NIDS_EXITING: g_exiting++; break;
    default: break;
    }
}

static void quiet(int type, int err, struct ip *iph, void *data)
{
    (void)type, (void)err, (void)iph, (void)data;
}

int main(int argc, char **argv)
{
    int streams = 1 << 18, a = 1;
    if (argc == 4 && strcmp(argv[1], "--streams") == 0) {
        streams = atoi(argv[2]);
        a = 3;
    }
    if (argc != a + 1 || streams <= 0) {
        fputs("usage: bench_libnids [--streams N] CAPTURE\n", stderr);
        return 2;
    }
    double t0 = now();
    nids_params.filename = argv[a];
    nids_params.device = NULL;
    nids_params.n_tcp_streams = streams;
    nids_params.n_hosts = 4096;
    nids_params.scan_num_hosts = 0;
    nids_params.syslog = quiet;
    nids_params.pcap_filter = NULL;
    nids_params.multiproc = 0;
    static struct nids_chksum_ctl none = {0, 0, NIDS_DONT_CHKSUM, 0};
    nids_register_chksum_ctl(&none, 1);
    if (!nids_init()) {
        fprintf(stderr, "bench_libnids: %s\n", nids_errbuf);
        return 1;
    }
    nids_register_tcp(on_tcp);
    nids_run();
    nids_exit(); /* connections still open reach the callback as NIDS_EXITING */
    double s = now() - t0;
    printf("libnids established=%" PRIu64 " closed=%" PRIu64 " reset=%" PRIu64
           " timed_out=%" PRIu64 " exiting=%" PRIu64 " stream_bytes=%" PRIu64
           " checksum=%" PRIu64 " seconds=%.3f\n",
           g_est, g_closed, g_reset, g_timed_out, g_exiting, g_bytes, g_sum, s);
    return 0;
}
