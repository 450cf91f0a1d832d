/*
 * bench_pcap_floor: the least any libpcap-based reader of a capture can
 * cost, for the replay benchmark (bench/replay.sh): a pcap_next_ex loop that
 * sums each record's caplen and touches nothing else.
 *
 *   bench_pcap_floor [--mapped] CAPTURE
 *
 * --mapped: the same loop over the replay's own reader (src/replay/capture.c,
 * which reads classic pcap files from a mapping): what reading costs
 * `openwfp replay` itself.
 *
 * Prints one line: packets, captured bytes, record bytes (with the 16-byte
 * record headers, i.e. about the file size) and wall seconds.
 */
#include <inttypes.h>
#include <pcap/pcap.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "replay/capture.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* The --mapped loop; returns the exit status. */
static int mapped(const char *name, uint64_t *packets, uint64_t *bytes)
{
    char err[PCAP_ERRBUF_SIZE] = "";
    struct owfp_capture *c = owfp_capture_open(name, true, err, sizeof(err));
    if (!c) {
        fprintf(stderr, "bench_pcap_floor: %s: %s\n", name, err);
        return 1;
    }
    struct owfp_capture_rec rec;
    int ret;
    while ((ret = owfp_capture_next(c, &rec)) == 1) {
        ++*packets;
        *bytes += rec.caplen;
    }
    if (ret < 0)
        fprintf(stderr, "bench_pcap_floor: %s: %s\n", name, owfp_capture_error(c));
    owfp_capture_close(c);
    return ret < 0;
}

int main(int argc, char **argv)
{
    bool map = argc == 3 && strcmp(argv[1], "--mapped") == 0;
    if (argc != 2 && !map) {
        fputs("usage: bench_pcap_floor [--mapped] CAPTURE\n", stderr);
        return 2;
    }
    if (map) {
        uint64_t packets = 0, bytes = 0;
        double t0 = now();
        int st = mapped(argv[2], &packets, &bytes);
        printf("floor packets=%" PRIu64 " caplen_bytes=%" PRIu64 " record_bytes=%" PRIu64
               " seconds=%.3f\n",
               packets, bytes, bytes + 16 * packets + 24, now() - t0);
        return st;
    }
    char err[PCAP_ERRBUF_SIZE] = "";
    double t0 = now();
    pcap_t *p = pcap_open_offline(argv[1], err);
    if (!p) {
        fprintf(stderr, "bench_pcap_floor: %s: %s\n", argv[1], err);
        return 1;
    }
    struct pcap_pkthdr *h;
    const u_char *data;
    uint64_t packets = 0, bytes = 0;
    int ret;
    /* Summing caplen, and printing the sum, keeps the loop from being
     * optimised away without reading the packet bytes themselves. */
    while ((ret = pcap_next_ex(p, &h, &data)) == 1) {
        packets++;
        bytes += h->caplen;
    }
    if (ret == PCAP_ERROR)
        fprintf(stderr, "bench_pcap_floor: %s: %s\n", argv[1], pcap_geterr(p));
    pcap_close(p);
    double s = now() - t0;
    printf("floor packets=%" PRIu64 " caplen_bytes=%" PRIu64 " record_bytes=%" PRIu64
           " seconds=%.3f\n",
           packets, bytes, bytes + 16 * packets + 24, s);
    return ret == PCAP_ERROR;
}
