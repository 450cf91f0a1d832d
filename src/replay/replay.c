/* The replay loop (replay.h): capture -> decode -> tracker -> engine -> outputs. */
#include "replay/replay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pcap/pcap.h>
#include <stdlib.h>
#include <string.h>

#include "replay/capture.h"
#include "replay/decode.h"
#include "replay/progress.h"
#include "replay/replay_conn.h"
#include "replay/report.h"
#include "replay/tracker.h"

#define EXPIRE_EVERY 4096 /* packets between timeout scans */

static int replay_file(struct owfp_replay *r, const char *name)
{
    char err[PCAP_ERRBUF_SIZE] = "";
    struct owfp_capture *cap = owfp_capture_open(name, true, err, sizeof(err));
    if (!cap) {
        fprintf(stderr, "openwfp replay: %s: %s\n", name, err);
        return 1;
    }
    int dlt = owfp_capture_dlt(cap);
    if (!owfp_decode_link_supported(dlt)) {
        fprintf(stderr, "openwfp replay: %s: link type %s (%d) is not supported\n", name,
                pcap_datalink_val_to_name(dlt) ? pcap_datalink_val_to_name(dlt) : "?", dlt);
        owfp_capture_close(cap);
        return 1;
    }
    owfp_progress_file(&r->progress, name);
    struct owfp_capture_rec rec;
    int ret, status = 0;
    while ((ret = owfp_capture_next(cap, &rec)) == 1) {
        owfp_replay_frame(r, dlt, rec.data, rec.caplen, rec.len, rec.ts_us);
        if (++r->packets % EXPIRE_EVERY == 0) {
            owfp_tracker_expire(r->tracker, rec.ts_us);
            owfp_progress_update(&r->progress, r->packets, owfp_capture_pos(cap));
        }
    }
    if (ret < 0) {
        fprintf(stderr, "openwfp replay: %s: %s (after %llu packets)\n", name,
                owfp_capture_error(cap), (unsigned long long)r->packets);
        status = 1;
    }
    owfp_capture_close(cap);
    return status;
}

int owfp_replay_run(const struct owfp_replay_options *opt)
{
    struct owfp_replay *r = owfp_replay_new(opt);
    if (!r)
        return 2;
    int status = 0;
    for (size_t i = 0; i < opt->ncaptures; i++)
        if (replay_file(r, opt->captures[i]))
            status = 1;
    int fst = owfp_replay_finish(r);
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
