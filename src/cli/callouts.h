/* What every traffic command shares: the callouts it runs (--example,
 * --driver, --driver-param, --strict), the verifier (--verify, --verify-log)
 * and the engine's life around them. */
#ifndef OPENWFP_CLI_CALLOUTS_H
#define OPENWFP_CLI_CALLOUTS_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <openwfp/openwfp.h>

#include "cli/driver_host.h"

#define OWFP_MAX_LIST 64

struct owfp_callout_args {
    const char *examples[OWFP_MAX_LIST];
    size_t nexamples;
    struct owfp_driver_spec drivers[OWFP_MAX_LIST];
    size_t ndrivers;
    struct owfp_driver_param params[OWFP_MAX_LIST]; /* in command-line order */
    size_t param_owner[OWFP_MAX_LIST];              /* index into drivers + 1; 0 = every driver */
    size_t nparams;
    struct owfp_driver_param driver_params[OWFP_MAX_LIST][OWFP_MAX_LIST];
    bool strict;
    int verify;             /* 0 off, 1 --verify, 2 --verify=strict */
    const char *verify_log; /* --verify-log FILE */
};

enum { OWFP_OPT_EXAMPLE = 0x400, OWFP_OPT_DRIVER, OWFP_OPT_DRIVER_PARAM, OWFP_OPT_STRICT,
       OWFP_OPT_VERIFY, OWFP_OPT_VERIFY_LOG };

/* Exit status of --verify=strict when the verifier recorded findings. */
#define OWFP_EXIT_VERIFY 4

#define OWFP_CALLOUT_OPTIONS                                           \
    {"example", required_argument, 0, OWFP_OPT_EXAMPLE},               \
    {"driver", required_argument, 0, OWFP_OPT_DRIVER},                 \
    {"driver-param", required_argument, 0, OWFP_OPT_DRIVER_PARAM},     \
    {"strict", no_argument, 0, OWFP_OPT_STRICT},                       \
    {"verify", optional_argument, 0, OWFP_OPT_VERIFY},                 \
    {"verify-log", required_argument, 0, OWFP_OPT_VERIFY_LOG}

/* A decimal option value up to `max`; -1 after "openwfp CMD: OPT: bad
 * number" on stderr. */
int owfp_cli_u64(const char *cmd, const char *opt, const char *s, uint64_t max, uint64_t *v);

/* The --help lines for these options. */
extern const char owfp_callout_usage[];

/* 1: the option was one of these and is recorded; 0: not one of these;
 * -1: an error, printed with `cmd` as prefix. */
int owfp_callout_option(struct owfp_callout_args *a, const char *cmd, int opt, char *arg);

/* Call after the last option: gives each driver its parameters (those before
 * any --driver, then its own; a later value of a name wins). */
void owfp_callout_args_done(struct owfp_callout_args *a);

struct owfp_callout_run {
    owfp_engine *engine;
    unsigned long findings_before;
    bool loaded; /* the drivers' DriverEntry ran: unload them */
    FILE *verify_log;
};

/* Creates the engine, loads the drivers, adds the examples. 0, or the exit
 * status 2 after a message. owfp_callouts_stop is due either way. */
int owfp_callouts_start(const struct owfp_callout_args *a, const char *cmd,
                        struct owfp_callout_run *run);

/* Removes the examples, unloads the drivers (leak reports on stderr),
 * destroys the engine. Returns `status`, or 3 under --strict when the
 * kernel layer recorded findings or a driver left something behind, or
 * OWFP_EXIT_VERIFY under --verify=strict when the verifier recorded
 * findings (each only when the status was 0). */
int owfp_callouts_stop(const struct owfp_callout_args *a, const char *cmd,
                       struct owfp_callout_run *run, int status);

#endif
