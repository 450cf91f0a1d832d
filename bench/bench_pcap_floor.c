/*
 * bench_pcap_floor: the least any libpcap-based reader of a capture can
 * cost, for the replay benchmark (bench/replay.sh): a pcap_next_ex loop that
 * sums each record's caplen and touches nothing else.
 *
 *   bench_pcap_floor CAPTURE
 *
 * Prints one line: packets, captured bytes, record bytes (with the 16-byte
 * record headers, i.e. about the file size) and wall seconds.
 */
#include <inttypes.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fputs("usage: bench_pcap_floor CAPTURE\n", stderr);
        return 2;
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
