#include "cli/callouts.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <openwfp/kernel.h>
#include <openwfp/verify.h>

#include "cli/example_callouts.h"

const char owfp_callout_usage[] =
    "  --example SPEC          built-in callout: noop | mask=WORD | block-port=N\n"
    "  --driver PATH.so        load a callout driver built as a shared object: its\n"
    "                          DriverEntry runs first, DriverUnload at the end, then\n"
    "                          what it left behind is reported (repeatable; loaded in\n"
    "                          order, unloaded in reverse; docs/porting.md)\n"
    "  --driver-param NAME=VALUE  a value in the driver's registry key (REG_DWORD for\n"
    "                          decimal or 0x-hex numbers, else REG_SZ), for the --driver\n"
    "                          before it, or for every driver when before any --driver\n"
    "  --strict                exit 3 when the kernel layer recorded findings or a\n"
    "                          driver left something behind\n"
    "  --verify[=strict]       check callouts and drivers against the spec's rules\n"
    "                          (docs/verifier.md): each finding on stderr when first\n"
    "                          seen, a summary at the end; =strict: exit 4 when there\n"
    "                          was any finding (unless the status is already non-zero)\n"
    "  --verify-log FILE       the findings as JSON Lines (implies --verify): each one\n"
    "                          when first seen, the file rewritten at exit with the\n"
    "                          final counts\n";

int owfp_cli_u64(const char *cmd, const char *opt, const char *s, uint64_t max, uint64_t *v)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || end == s || *end || *s == '-' || x > max) {
        fprintf(stderr, "openwfp %s: %s: bad number '%s'\n", cmd, opt, s);
        return -1;
    }
    *v = x;
    return 0;
}

int owfp_callout_option(struct owfp_callout_args *a, const char *cmd, int opt, char *arg)
{
    switch (opt) {
    case OWFP_OPT_EXAMPLE:
        if (a->nexamples == OWFP_MAX_LIST)
            return fprintf(stderr, "openwfp %s: too many --example\n", cmd), -1;
        a->examples[a->nexamples++] = arg;
        return 1;
    case OWFP_OPT_DRIVER:
        if (a->ndrivers == OWFP_MAX_LIST)
            return fprintf(stderr, "openwfp %s: too many --driver\n", cmd), -1;
        a->drivers[a->ndrivers++].path = arg;
        return 1;
    case OWFP_OPT_DRIVER_PARAM:
        if (a->nparams == OWFP_MAX_LIST)
            return fprintf(stderr, "openwfp %s: too many --driver-param\n", cmd), -1;
        if (!owfp_driver_param_parse(arg, &a->params[a->nparams]))
            return -1;
        a->param_owner[a->nparams++] = a->ndrivers;
        return 1;
    case OWFP_OPT_STRICT:
        a->strict = true;
        return 1;
    case OWFP_OPT_VERIFY:
        if (arg && strcmp(arg, "strict") != 0)
            return fprintf(stderr, "openwfp %s: --verify or --verify=strict, not '--verify=%s'\n",
                           cmd, arg),
                   -1;
        a->verify = arg ? 2 : (a->verify > 1 ? 2 : 1);
        return 1;
    case OWFP_OPT_VERIFY_LOG:
        a->verify_log = arg;
        if (!a->verify)
            a->verify = 1;
        return 1;
    default:
        return 0;
    }
}

void owfp_callout_args_done(struct owfp_callout_args *a)
{
    for (size_t d = 0; d < a->ndrivers; d++) {
        size_t n = 0;
        for (int pass = 0; pass < 2; pass++)
            for (size_t i = 0; i < a->nparams; i++)
                if (a->param_owner[i] == (pass ? d + 1 : 0))
                    a->driver_params[d][n++] = a->params[i];
        a->drivers[d].params = a->driver_params[d];
        a->drivers[d].nparams = n;
    }
}

/* ---- the verifier's output ---------------------------------------------------- */

static pthread_mutex_t verify_out_mu = PTHREAD_MUTEX_INITIALIZER;

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", f);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

/* One JSON Lines object per finding. */
static void verify_json(FILE *f, const struct owfp_verify_finding *v)
{
    fputs("{\"rule\":", f);
    json_string(f, v->rule);
    fputs(",\"check\":", f);
    json_string(f, v->check);
    fputs(",\"driver\":", f);
    json_string(f, v->driver);
    fputs(",\"callout_key\":", f);
    json_string(f, v->callout_key);
    fprintf(f, ",\"callout_id\":%" PRIu32 ",\"flow\":%" PRIu64 ",\"count\":%" PRIu64
               ",\"message\":",
            v->callout_id, v->flow, v->count);
    json_string(f, v->message);
    fputs(",\"backtrace\":[", f);
    for (size_t i = 0; i < v->nframes; i++) {
        if (i)
            fputc(',', f);
        json_string(f, v->backtrace[i]);
    }
    fputs("]}\n", f);
}

/* A new finding: one line on stderr with its backtrace, and the log. */
static void verify_sink(const struct owfp_verify_finding *v, void *ctx)
{
    struct owfp_callout_run *run = ctx;
    pthread_mutex_lock(&verify_out_mu);
    fprintf(stderr, "openwfp: verify %s %s driver=%s callout=%s flow=0x%" PRIx64 ": %s\n",
            v->rule, v->check, v->driver[0] ? v->driver : "-",
            v->callout_key[0] ? v->callout_key : "-", v->flow, v->message);
    for (size_t i = 0; i < v->nframes; i++)
        fprintf(stderr, "    %s\n", v->backtrace[i]);
    if (run->verify_log) {
        verify_json(run->verify_log, v);
        fflush(run->verify_log);
    }
    pthread_mutex_unlock(&verify_out_mu);
}

static void verify_summary_line(const struct owfp_verify_finding *v, void *ctx)
{
    (void)ctx;
    fprintf(stderr, "openwfp:   %s %s driver=%s callout=%s count=%" PRIu64 "\n", v->rule,
            v->check, v->driver[0] ? v->driver : "-", v->callout_key[0] ? v->callout_key : "-",
            v->count);
}

static void verify_log_line(const struct owfp_verify_finding *v, void *ctx)
{
    verify_json(ctx, v);
}

/* After the engine is gone: the summary, the log with final counts, the
 * status under --verify=strict. */
static int verify_finish(const struct owfp_callout_args *a, const char *cmd,
                         struct owfp_callout_run *run, int status)
{
    owfp_verify_enable(false);
    owfp_verify_set_sink(NULL, NULL);
    size_t n = owfp_verify_findings(NULL, NULL);
    if (n) {
        fprintf(stderr, "openwfp %s: verify: %zu finding(s), %" PRIu64 " occurrence(s):\n", cmd,
                n, owfp_verify_occurrences());
        owfp_verify_findings(verify_summary_line, NULL);
    } else {
        fprintf(stderr, "openwfp %s: verify: no findings\n", cmd);
    }
    if (run->verify_log) {
        fclose(run->verify_log);
        run->verify_log = NULL;
        FILE *f = fopen(a->verify_log, "w");
        bool written = f != NULL;
        if (f) {
            owfp_verify_findings(verify_log_line, f);
            written = fclose(f) == 0;
        }
        if (!written) {
            fprintf(stderr, "openwfp %s: --verify-log %s: cannot write\n", cmd, a->verify_log);
            if (!status)
                status = 2;
        }
    }
    if (a->verify > 1 && n && !status)
        status = OWFP_EXIT_VERIFY;
    return status;
}

int owfp_callouts_start(const struct owfp_callout_args *a, const char *cmd,
                        struct owfp_callout_run *run)
{
    run->engine = NULL;
    run->loaded = false;
    run->verify_log = NULL;
    if (a->verify_log) {
        run->verify_log = fopen(a->verify_log, "w");
        if (!run->verify_log) {
            fprintf(stderr, "openwfp %s: --verify-log %s: cannot open\n", cmd, a->verify_log);
            return 2;
        }
    }
    if (a->verify) {
        /* Before the engine and the drivers: resource checks compare with
         * what was live when each driver loaded. */
        owfp_verify_reset();
        owfp_verify_set_sink(verify_sink, run);
        owfp_verify_enable(true);
    }
    owfp_status st = owfp_engine_create(NULL, &run->engine);
    if (st < 0) {
        fprintf(stderr, "openwfp %s: cannot create the engine (0x%08" PRIx32 ")\n", cmd,
                (uint32_t)st);
        run->engine = NULL;
        return 2;
    }
    run->findings_before = owfp_kernel_findings();
    if (owfp_drivers_load(a->drivers, a->ndrivers) != 0)
        return 2;
    run->loaded = true;
    for (size_t i = 0; i < a->nexamples; i++)
        if (owfp_examples_add(a->examples[i]) != 0)
            return 2;
    return 0;
}

int owfp_callouts_stop(const struct owfp_callout_args *a, const char *cmd,
                       struct owfp_callout_run *run, int status)
{
    if (!run->engine)
        return a->verify ? verify_finish(a, cmd, run, status) : status;
    owfp_examples_remove();
    unsigned long problems = run->loaded ? owfp_drivers_unload(stderr) : 0;
    owfp_engine_destroy(run->engine);
    owfp_drivers_release();
    run->engine = NULL;
    unsigned long findings = owfp_kernel_findings() - run->findings_before;
    if (a->strict && run->loaded && (findings || problems)) {
        fprintf(stderr,
                "openwfp %s: --strict: %lu kernel finding(s), %lu problem(s) left by drivers\n",
                cmd, findings, problems);
        if (!status)
            status = 3;
    }
    if (a->verify)
        status = verify_finish(a, cmd, run, status);
    return status;
}
