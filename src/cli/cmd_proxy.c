/* `openwfp proxy`: options, engine and callouts, the run. */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/callouts.h"
#include "cli/commands.h"
#include "proxy/log.h"
#include "proxy/proxy.h"

static void usage(FILE *out)
{
    fputs("usage: openwfp proxy (--listen ADDR:PORT --upstream ADDR:PORT | --tproxy ADDR:PORT)...\n"
          "                     [options]\n"
          "\n"
          "Relays live TCP connections through the filter engine: each client connection\n"
          "and its upstream connection are one WFP flow. ALE_FLOW_ESTABLISHED runs when\n"
          "both legs are up; client-to-server bytes are SEND and server-to-client bytes\n"
          "RECEIVE indications (the client is the local side); FIN and RST become\n"
          "DISCONNECT and ABORT; flowDeleteFn runs when both legs are gone.\n"
          "Addresses: 127.0.0.1:8080, [::1]:8080, 0.0.0.0:8080, [::]:8080.\n"
          "\n"
          "  --listen ADDR:PORT      accept clients here (repeatable; each needs an --upstream)\n"
          "  --upstream ADDR:PORT    where the --listen before it connects to\n"
          "  --tproxy ADDR:PORT      transparent mode: accept what nftables TPROXY sends here\n"
          "                          and connect to each connection's original destination\n"
          "                          (needs CAP_NET_ADMIN; examples/tproxy.nft, docs/proxy.md)\n"
          "  --spoof-source          transparent mode: connect upstream from the client's\n"
          "                          address (needs the routing recipe in docs/proxy.md)\n",
          out);
    fputs(owfp_callout_usage, out);
    fputs("  --workers N             worker threads, one epoll loop each (default: one per CPU)\n"
          "  --offload splice|none   where flows go once no callout inspects them (spec O4):\n"
          "                          splice(2), zero copy (default), or stay on the engine path\n"
          "  --max-connections N     connections at once; more are reset at accept (default\n"
          "                          unlimited)\n"
          "  --max-buffered BYTES    bytes waiting for a slow socket per flow direction before\n"
          "                          the flow is reset (default 16 MiB)\n"
          "  --max-buffered-total BYTES  bytes waiting in all; past it no connection is read\n"
          "                          until writes catch up (default 1 GiB)\n"
          "  --connect-timeout SECONDS  upstream connect time limit (default 10)\n"
          "  --idle-timeout SECONDS  reset connections with no bytes for this long (default\n"
          "                          300; 0: never)\n"
          "  --grace SECONDS         after SIGTERM or SIGINT: time for open connections to\n"
          "                          finish before they are reset (default 10)\n"
          "  --metrics ADDR:PORT     Prometheus text endpoint (GET /metrics)\n"
          "  --log-format text|json  log lines as key=value (default) or JSON\n"
          "  --log-level LEVEL       error | warn | info (default) | debug (one line per\n"
          "                          connection event)\n"
          "  -h, --help\n"
          "\n"
          "Signals: SIGUSR1 prints the statistics line; SIGTERM and SIGINT stop accepting,\n"
          "let connections finish for --grace seconds, then unload the drivers.\n",
          out);
}

static int parse_seconds(const char *opt, const char *s, uint64_t *ms)
{
    uint64_t v;
    if (owfp_cli_u64("proxy", opt, s, UINT64_MAX / 1000, &v))
        return -1;
    *ms = v * 1000;
    return 0;
}

struct args {
    struct owfp_proxy_options o;
    struct owfp_proxy_route routes[OWFP_MAX_LIST];
    struct owfp_endpoint metrics;
    struct owfp_callout_args callouts;
    bool pending_upstream; /* the last --listen has no --upstream yet */
    bool json_logs;
    int log_level;
};

static int endpoint(const char *opt, const char *s, struct owfp_endpoint *ep)
{
    if (owfp_endpoint_parse(s, ep) == 0)
        return 0;
    fprintf(stderr, "openwfp proxy: %s: bad address '%s' (e.g. 127.0.0.1:8080, [::1]:8080)\n",
            opt, s);
    return -1;
}

static int add_route(struct args *a, const char *opt, const char *s, bool transparent)
{
    struct owfp_proxy_options *o = &a->o;
    if (a->pending_upstream)
        return fprintf(stderr, "openwfp proxy: --listen needs an --upstream after it\n"), -1;
    if (o->nroutes == OWFP_MAX_LIST)
        return fprintf(stderr, "openwfp proxy: too many listening addresses\n"), -1;
    struct owfp_proxy_route *r = &a->routes[o->nroutes];
    if (endpoint(opt, s, &r->listen))
        return -1;
    r->transparent = transparent;
    a->pending_upstream = !transparent;
    o->nroutes++;
    return 0;
}

static int parse(int argc, char **argv, struct args *a)
{
    enum { O_LISTEN = 256, O_UPSTREAM, O_TPROXY, O_SPOOF, O_WORKERS, O_OFFLOAD, O_MAXCONN,
           O_MAXBUF, O_MAXTOTAL, O_CONNECT, O_IDLE, O_GRACE, O_METRICS, O_LOGFMT, O_LOGLEVEL };
    static const struct option opts[] = {
        OWFP_CALLOUT_OPTIONS,
        {"listen", required_argument, 0, O_LISTEN},
        {"upstream", required_argument, 0, O_UPSTREAM},
        {"tproxy", required_argument, 0, O_TPROXY},
        {"spoof-source", no_argument, 0, O_SPOOF},
        {"workers", required_argument, 0, O_WORKERS},
        {"offload", required_argument, 0, O_OFFLOAD},
        {"max-connections", required_argument, 0, O_MAXCONN},
        {"max-buffered", required_argument, 0, O_MAXBUF},
        {"max-buffered-total", required_argument, 0, O_MAXTOTAL},
        {"connect-timeout", required_argument, 0, O_CONNECT},
        {"idle-timeout", required_argument, 0, O_IDLE},
        {"grace", required_argument, 0, O_GRACE},
        {"metrics", required_argument, 0, O_METRICS},
        {"log-format", required_argument, 0, O_LOGFMT},
        {"log-level", required_argument, 0, O_LOGLEVEL},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    struct owfp_proxy_options *o = &a->o;
    o->max_buffered = 16u << 20;
    o->max_buffered_total = 1ull << 30;
    o->connect_timeout_ms = 10000;
    o->idle_timeout_ms = 300000;
    o->grace_ms = 10000;
    a->log_level = OWFP_LOG_INFO;
    uint64_t v;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int mine = owfp_callout_option(&a->callouts, "proxy", c, optarg);
        if (mine < 0)
            return -1;
        if (mine)
            continue;
        switch (c) {
        case O_LISTEN:
            if (add_route(a, "--listen", optarg, false))
                return -1;
            break;
        case O_TPROXY:
            if (add_route(a, "--tproxy", optarg, true))
                return -1;
            break;
        case O_UPSTREAM:
            if (!a->pending_upstream)
                return fprintf(stderr, "openwfp proxy: --upstream must follow a --listen\n"), -1;
            if (endpoint("--upstream", optarg, &a->routes[o->nroutes - 1].upstream))
                return -1;
            a->pending_upstream = false;
            break;
        case O_SPOOF: o->spoof_source = true; break;
        case O_WORKERS:
            if (owfp_cli_u64("proxy", "--workers", optarg, 256, &v) || !v)
                return fprintf(stderr, "openwfp proxy: --workers: 1 to 256\n"), -1;
            o->workers = (unsigned)v;
            break;
        case O_OFFLOAD:
            if (strcmp(optarg, "splice") == 0)
                o->offload = OWFP_OFFLOAD_SPLICE;
            else if (strcmp(optarg, "none") == 0)
                o->offload = OWFP_OFFLOAD_NONE;
            else
                return fprintf(stderr, "openwfp proxy: --offload splice|none\n"), -1;
            break;
        case O_MAXCONN:
            if (owfp_cli_u64("proxy", "--max-connections", optarg, UINT64_MAX, &o->max_conns))
                return -1;
            break;
        case O_MAXBUF:
            if (owfp_cli_u64("proxy", "--max-buffered", optarg, UINT64_MAX, &o->max_buffered))
                return -1;
            if (!o->max_buffered)
                return fprintf(stderr, "openwfp proxy: --max-buffered: at least 1\n"), -1;
            break;
        case O_MAXTOTAL:
            if (owfp_cli_u64("proxy", "--max-buffered-total", optarg, UINT64_MAX, &o->max_buffered_total))
                return -1;
            if (!o->max_buffered_total)
                return fprintf(stderr, "openwfp proxy: --max-buffered-total: at least 1\n"), -1;
            break;
        case O_CONNECT:
            if (parse_seconds("--connect-timeout", optarg, &o->connect_timeout_ms))
                return -1;
            if (!o->connect_timeout_ms)
                return fprintf(stderr, "openwfp proxy: --connect-timeout: at least 1\n"), -1;
            break;
        case O_IDLE:
            if (parse_seconds("--idle-timeout", optarg, &o->idle_timeout_ms))
                return -1;
            break;
        case O_GRACE:
            if (parse_seconds("--grace", optarg, &o->grace_ms))
                return -1;
            break;
        case O_METRICS:
            if (endpoint("--metrics", optarg, &a->metrics))
                return -1;
            o->metrics = &a->metrics;
            break;
        case O_LOGFMT:
            if (strcmp(optarg, "json") != 0 && strcmp(optarg, "text") != 0)
                return fprintf(stderr, "openwfp proxy: --log-format text|json\n"), -1;
            a->json_logs = strcmp(optarg, "json") == 0;
            break;
        case O_LOGLEVEL:
            a->log_level = owfp_log_level_parse(optarg);
            if (a->log_level < 0)
                return fprintf(stderr, "openwfp proxy: --log-level error|warn|info|debug\n"), -1;
            break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
    }
    if (optind < argc)
        return fprintf(stderr, "openwfp proxy: unexpected argument '%s'\n", argv[optind]), -1;
    if (a->pending_upstream)
        return fprintf(stderr, "openwfp proxy: --listen needs an --upstream after it\n"), -1;
    if (!o->nroutes) {
        usage(stderr);
        return -1;
    }
    o->routes = a->routes;
    owfp_callout_args_done(&a->callouts);
    return 0;
}

int owfp_cmd_proxy(int argc, char **argv)
{
    static struct args a;
    if (parse(argc, argv, &a) != 0)
        return 2;
    owfp_log_setup(a.json_logs, (enum owfp_log_level)a.log_level);
    /* Drivers print from DriverEntry on: their lines join the JSON log. */
    if (a.json_logs && owfp_log_wrap_stderr() != 0)
        owfp_log_msg(OWFP_LOG_WARN, "log", "stderr lines stay plain text");
    /* The signals owfp_proxy_run reads from a signalfd are blocked before
     * any DriverEntry runs: a thread a driver starts there (a system
     * thread, the kernel layer's work item, DPC or timer threads) inherits
     * the mask. Left unblocked in such a thread, SIGUSR1 or SIGTERM would
     * be delivered to it and kill the process (the default action). */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    struct owfp_callout_run run;
    int status = owfp_callouts_start(&a.callouts, "proxy", &run);
    if (!status)
        status = owfp_proxy_run(&a.o);
    return owfp_callouts_stop(&a.callouts, "proxy", &run, status);
}
