/*
 * openwfp-fuzz: libFuzzer's entry points around callout drivers. Each input
 * is a fuzz tape (src/replay/tape.h) replayed through the engine into the
 * drivers, exactly as `openwfp replay --fuzz-input` plays it, with the
 * verifier on and the drivers' work items run when the tape says.
 *
 * `openwfp fuzz` starts it. Teams with their own fuzzing infrastructure run
 * it (or link this file with their engine's main) directly and name the
 * callouts in OPENWFP_FUZZ_OPTIONS: the callout options of `openwfp
 * replay`, one argument per line ("--driver\nbuild/x.so\n--driver-param\n
 * Mode=oob"). See docs/fuzzing.md.
 *
 * An input fails (abort, so the fuzzer keeps it as a crash) when the
 * verifier or the kernel layer recorded anything while it ran; memory
 * errors and undefined behaviour fail it through the sanitizers.
 */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openwfp/kernel.h>
#include <openwfp/verify.h>

#include "cli/callouts.h"
#include "common/rcu.h"
#include "replay/replay_conn.h"

#define MAX_ARGS 256

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct {
    struct owfp_callout_args callouts;
    struct owfp_callout_run run;
    FILE *devnull;
} g;

/* OPENWFP_FUZZ_OPTIONS as an argv, parsed like replay's callout options. */
static int parse_options(void)
{
    const char *env = getenv("OPENWFP_FUZZ_OPTIONS");
    static char *text, *argv[MAX_ARGS + 2];
    int argc = 0;
    argv[argc++] = "openwfp-fuzz";
    if (env && !(text = strdup(env)))
        return -1;
    for (char *save, *tok = text ? strtok_r(text, "\n", &save) : NULL; tok;
         tok = strtok_r(NULL, "\n", &save)) {
        if (argc == MAX_ARGS + 1)
            return fprintf(stderr, "openwfp-fuzz: OPENWFP_FUZZ_OPTIONS: too many\n"), -1;
        argv[argc++] = tok;
    }
    static const struct option opts[] = {OWFP_CALLOUT_OPTIONS, {0, 0, 0, 0}};
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1)
        if (owfp_callout_option(&g.callouts, "fuzz", c, optarg) != 1)
            return fprintf(stderr, "openwfp-fuzz: OPENWFP_FUZZ_OPTIONS: callout options "
                                   "of openwfp replay only\n"), -1;
    if (optind < argc)
        return fprintf(stderr, "openwfp-fuzz: OPENWFP_FUZZ_OPTIONS: '%s'?\n", argv[optind]), -1;
    if (!g.callouts.ndrivers && !g.callouts.nexamples)
        return fprintf(stderr, "openwfp-fuzz: OPENWFP_FUZZ_OPTIONS names no --driver "
                               "(or --example)\n"), -1;
    owfp_callout_args_done(&g.callouts);
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (parse_options() != 0)
        exit(2);
    if (!g.callouts.verify)
        g.callouts.verify = 1;
    g.devnull = fopen("/dev/null", "w");
    if (!g.devnull || owfp_callouts_start(&g.callouts, "fuzz", &g.run) != 0)
        exit(2);
    /* The tape decides when work items run: a replayed input repeats. */
    owfp_workitems_set_scheduled(true);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t occurrences = owfp_verify_occurrences();
    unsigned long findings = owfp_kernel_findings();
    struct owfp_replay_options o = {.quiet = true, .out = g.devnull};
    struct owfp_replay *r = owfp_replay_new(&o);
    if (!r)
        return 0; /* out of memory is not the input's fault */
    owfp_replay_tape(r, data, size);
    owfp_replay_finish(r);
    /* Closed flows are freed once no reader can hold them: now, so that an
     * input frees what it allocated and libFuzzer's leak check stays off. */
    owfp_rcu_reclaim(true);
    if (owfp_verify_occurrences() != occurrences || owfp_kernel_findings() != findings) {
        /* The finding's own line, with its backtrace, is already on stderr. */
        fprintf(stderr, "openwfp-fuzz: this input broke a rule of the callout contract "
                        "(see the finding above)\n");
        abort();
    }
    return 0;
}
