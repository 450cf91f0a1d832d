/* `openwfp replay`: options, engine set-up, the run. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openwfp/openwfp.h>

#include "cli/callouts.h"
#include "cli/commands.h"
#include "cli/example_callouts.h"
#include "replay/replay.h"

/* The bundled default: a capture of our own HTTP test traffic, masked. */
static const char *const g_sample[] = {OWFP_SAMPLE_CAPTURE};
static const char *const g_sample_examples[] = {"mask=secret", "block-port=8023"};

static void usage(FILE *out)
{
    fputs("usage: openwfp replay [options] [CAPTURE...]\n"
          "\n"
          "Reads captures (every format libpcap reads; - for standard input), reassembles\n"
          "each TCP connection and runs it through the filter engine as Windows would:\n"
          "ALE_FLOW_ESTABLISHED once, then each direction's bytes at the stream layer.\n"
          "With no CAPTURE it replays the bundled sample with --example mask=secret\n"
          "and --example block-port=8023 (with --driver: the sample, no examples).\n"
          "\n",
          out);
    fputs(owfp_callout_usage, out);
    fputs("  --local NET/PREFIX      endpoints in NET are local (default: the initiator)\n"
          "  --overlap first|last    which copy of overlapping bytes wins (default first)\n"
          "  --json                  JSON Lines instead of key=value lines\n"
          "  --quiet                 only the totals line\n"
          "  --no-progress           no progress line on a terminal\n"
          "  --write-streams DIR     each direction as the callouts left it, one file each\n"
          "  --write-pcap FILE       a capture of the edited streams\n"
          "  --flow-timeout SECONDS  idle time before a connection ends (default 600)\n"
          "  --max-connections N     live connections kept at most (default unlimited)\n"
          "  --max-buffered BYTES    out-of-order bytes per direction (default 4 MiB)\n"
          "  --max-buffered-total BYTES  out-of-order bytes in all (default 1 GiB)\n"
          "  --fuzz-input FILE       play a fuzz input of `openwfp fuzz` (a crash or a\n"
          "                          finding it saved) instead of captures; repeatable\n"
          "  -h, --help\n",
          out);
}

struct args {
    struct owfp_replay_options o;
    struct owfp_net nets[OWFP_MAX_LIST];
    const char *tapes[OWFP_MAX_LIST];
    struct owfp_callout_args callouts;
};

static int parse(int argc, char **argv, struct args *a)
{
    enum { O_LOCAL = 256, O_OVERLAP, O_JSON, O_QUIET, O_NOPROG, O_STREAMS, O_PCAP, O_TIMEOUT,
           O_MAXCONN, O_MAXBUF, O_MAXTOTAL, O_FUZZ_INPUT };
    static const struct option opts[] = {
        OWFP_CALLOUT_OPTIONS,
        {"local", required_argument, 0, O_LOCAL},
        {"overlap", required_argument, 0, O_OVERLAP},
        {"json", no_argument, 0, O_JSON},
        {"quiet", no_argument, 0, O_QUIET},
        {"no-progress", no_argument, 0, O_NOPROG},
        {"write-streams", required_argument, 0, O_STREAMS},
        {"write-pcap", required_argument, 0, O_PCAP},
        {"flow-timeout", required_argument, 0, O_TIMEOUT},
        {"max-connections", required_argument, 0, O_MAXCONN},
        {"max-buffered", required_argument, 0, O_MAXBUF},
        {"max-buffered-total", required_argument, 0, O_MAXTOTAL},
        {"fuzz-input", required_argument, 0, O_FUZZ_INPUT},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    struct owfp_replay_options *o = &a->o;
    o->progress = true;
    uint64_t v;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int mine = owfp_callout_option(&a->callouts, "replay", c, optarg);
        if (mine < 0)
            return -1;
        if (mine)
            continue;
        switch (c) {
        case O_LOCAL:
            if (o->nlocal_nets == OWFP_MAX_LIST || owfp_net_parse(optarg, &a->nets[o->nlocal_nets]))
                return fprintf(stderr, "openwfp replay: --local: bad network '%s'\n", optarg), -1;
            o->nlocal_nets++;
            break;
        case O_OVERLAP:
            if (strcmp(optarg, "first") == 0)
                o->overlap = OWFP_OVERLAP_FIRST;
            else if (strcmp(optarg, "last") == 0)
                o->overlap = OWFP_OVERLAP_LAST;
            else
                return fprintf(stderr, "openwfp replay: --overlap first|last\n"), -1;
            break;
        case O_JSON: o->json = true; break;
        case O_QUIET: o->quiet = true; break;
        case O_NOPROG: o->progress = false; break;
        case O_STREAMS: o->write_streams = optarg; break;
        case O_PCAP: o->write_pcap = optarg; break;
        case O_TIMEOUT:
            if (owfp_cli_u64("replay", "--flow-timeout", optarg, UINT64_MAX / 1000000, &v) || !v)
                return -1;
            o->flow_timeout_us = v * 1000000;
            break;
        case O_MAXCONN:
            if (owfp_cli_u64("replay", "--max-connections", optarg, UINT64_MAX, &o->max_conns))
                return -1;
            break;
        case O_MAXBUF:
            if (owfp_cli_u64("replay", "--max-buffered", optarg, UINT32_MAX, &v))
                return -1;
            o->max_buffered = (uint32_t)v;
            break;
        case O_MAXTOTAL:
            if (owfp_cli_u64("replay", "--max-buffered-total", optarg, UINT64_MAX, &o->max_buffered_total))
                return -1;
            break;
        case O_FUZZ_INPUT:
            if (o->ncaptures == OWFP_MAX_LIST)
                return fprintf(stderr, "openwfp replay: too many --fuzz-input\n"), -1;
            a->tapes[o->ncaptures++] = optarg;
            break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
    }
    o->local_nets = a->nets;
    if (o->ncaptures) {
        if (optind < argc)
            return fprintf(stderr, "openwfp replay: captures and --fuzz-input do not mix\n"), -1;
        o->tapes = true;
        o->captures = a->tapes;
    } else {
        o->captures = (const char *const *)argv + optind;
        o->ncaptures = (size_t)(argc - optind);
    }
    if (!o->ncaptures) {
        o->captures = g_sample;
        o->ncaptures = 1;
        /* A driver is the callout: the sample alone, no built-in examples. */
        struct owfp_callout_args *ca = &a->callouts;
        for (size_t i = 0; !ca->ndrivers && i < sizeof(g_sample_examples) / sizeof(g_sample_examples[0]); i++)
            if (ca->nexamples < OWFP_MAX_LIST)
                ca->examples[ca->nexamples++] = g_sample_examples[i];
    }
    owfp_callout_args_done(&a->callouts);
    return 0;
}

int owfp_cmd_replay(int argc, char **argv)
{
    static struct args a;
    if (parse(argc, argv, &a) != 0)
        return 2;
    /* Drivers load into the engine and unload before it goes; the replay
     * has closed every flow (flowDeleteFn ran) by the time it returns. */
    struct owfp_callout_run run;
    int status = owfp_callouts_start(&a.callouts, "replay", &run);
    if (!status)
        status = owfp_replay_run(&a.o);
    if (run.loaded && !a.o.json)
        owfp_examples_report(a.o.out ? a.o.out : stdout);
    return owfp_callouts_stop(&a.callouts, "replay", &run, status);
}
