/* The replay loop (replay.h): capture -> decode -> tracker -> engine -> outputs. */
#include "replay/replay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pcap/pcap.h>
#include <stdlib.h>
#include <string.h>

#include <openwfp/kernel.h>

#include "replay/decode.h"
#include "replay/progress.h"
#include "replay/replay_conn.h"
#include "replay/report.h"
#include "replay/tape.h"
#include "replay/tracker.h"

#define EXPIRE_EVERY 4096 /* packets between timeout scans */
/* A fuzz tape is a program, not a recording: what it may hold is bounded
 * here rather than by a disk. */
#define TAPE_MAX (16u << 20)
/* How long one work item a tape runs may take before the replay goes on. */
#define TAPE_WORK_MS 5000u

static int replay_file(struct owfp_replay *r, const char *name)
{
    char err[PCAP_ERRBUF_SIZE] = "";
    pcap_t *p = pcap_open_offline(name, err);
    if (!p) {
        fprintf(stderr, "openwfp replay: %s: %s\n", name, err);
        return 1;
    }
    int dlt = pcap_datalink(p);
    if (!owfp_decode_link_supported(dlt)) {
        fprintf(stderr, "openwfp replay: %s: link type %s (%d) is not supported\n", name,
                pcap_datalink_val_to_name(dlt) ? pcap_datalink_val_to_name(dlt) : "?", dlt);
        pcap_close(p);
        return 1;
    }
    owfp_progress_file(&r->progress, name, pcap_file(p));
    struct pcap_pkthdr *h;
    const u_char *frame;
    int ret, status = 0;
    while ((ret = pcap_next_ex(p, &h, &frame)) == 1) {
        uint64_t ts = (uint64_t)h->ts.tv_sec * 1000000 + (uint64_t)h->ts.tv_usec;
        owfp_replay_frame(r, dlt, frame, h->caplen, h->len, ts);
        if (++r->packets % EXPIRE_EVERY == 0) {
            owfp_tracker_expire(r->tracker, ts);
            owfp_progress_update(&r->progress, r->packets);
        }
    }
    if (ret == PCAP_ERROR) {
        fprintf(stderr, "openwfp replay: %s: %s (after %llu packets)\n", name, pcap_geterr(p),
                (unsigned long long)r->packets);
        status = 1;
    }
    pcap_close(p);
    return status;
}

/* A tape's frames run as a capture's would, with a timeout scan after
 * each: tapes are short and their clock jumps. */
static void tape_frame(void *arg, const uint8_t *frame, uint32_t len, uint64_t ts_us)
{
    struct owfp_replay *r = arg;
    owfp_replay_frame(r, OWFP_TAPE_DLT, frame, len, len, ts_us);
    r->packets++;
    owfp_tracker_expire(r->tracker, ts_us);
}

static void tape_work(void *arg, int pick)
{
    struct owfp_replay *r = arg;
    if (pick < 0) {
        owfp_replay_settle(r);
        return;
    }
    owfp_workitems_run_one((unsigned)pick, TAPE_WORK_MS);
    owfp_replay_poll(r);
}

int owfp_replay_tape(struct owfp_replay *r, const uint8_t *tape, size_t len)
{
    struct owfp_tape_sink sink = {tape_frame, tape_work, r, r->tapes, r->tape_clock_us};
    r->in_tape = true;
    int failed = owfp_tape_play(tape, len, &sink);
    r->in_tape = false;
    if (failed) {
        fprintf(stderr, "openwfp replay: out of memory\n");
        return 1;
    }
    r->tapes++;
    r->tape_clock_us = sink.clock_us;
    return 0;
}

static int replay_tape_file(struct owfp_replay *r, const char *name)
{
    FILE *f = strcmp(name, "-") == 0 ? stdin : fopen(name, "rb");
    uint8_t *buf = malloc(TAPE_MAX + 1);
    size_t n = f && buf ? fread(buf, 1, TAPE_MAX + 1, f) : 0;
    int status = 1;
    if (!f || !buf || ferror(f))
        fprintf(stderr, "openwfp replay: %s: %s\n", name, buf ? strerror(errno) : "out of memory");
    else if (n > TAPE_MAX)
        fprintf(stderr, "openwfp replay: %s: a fuzz input is at most %u bytes\n", name, TAPE_MAX);
    else
        status = owfp_replay_tape(r, buf, n);
    if (f && f != stdin)
        fclose(f);
    free(buf);
    return status;
}

int owfp_replay_run(const struct owfp_replay_options *opt)
{
    struct owfp_replay *r = owfp_replay_new(opt);
    if (!r)
        return 2;
    /* A tape says when the drivers' work items run: they wait for it. */
    if (opt->tapes)
        owfp_workitems_set_scheduled(true);
    int status = 0;
    for (size_t i = 0; i < opt->ncaptures; i++)
        if ((opt->tapes ? replay_tape_file : replay_file)(r, opt->captures[i]))
            status = 1;
    int fst = owfp_replay_finish(r);
    if (opt->tapes)
        owfp_workitems_set_scheduled(false);
    return fst ? fst : status;
}

int owfp_net_parse(const char *text, struct owfp_net *net)
{
    char buf[64];
    const char *slash = strchr(text, '/');
    size_t alen = slash ? (size_t)(slash - text) : strlen(text);
    if (alen == 0 || alen >= sizeof(buf))
        return -EINVAL;
    memcpy(buf, text, alen);
    buf[alen] = 0;
    memset(net, 0, sizeof(*net));
    if (inet_pton(AF_INET, buf, net->addr) == 1)
        net->ip_version = 4;
    else if (inet_pton(AF_INET6, buf, net->addr) == 1)
        net->ip_version = 6;
    else
        return -EINVAL;
    unsigned max = net->ip_version == 4 ? 32 : 128;
    unsigned long prefix = max;
    if (slash) {
        char *end;
        prefix = strtoul(slash + 1, &end, 10);
        if (end == slash + 1 || *end || prefix > max)
            return -EINVAL;
    }
    net->prefix = (uint8_t)prefix;
    return 0;
}
