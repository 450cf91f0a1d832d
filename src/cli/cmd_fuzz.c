/* `openwfp fuzz`: seeds a corpus with fuzz tapes and runs openwfp-fuzz (the
 * libFuzzer host, fuzz_host.c) over the drivers; what it finds is kept as
 * inputs that `openwfp replay --fuzz-input` plays again. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/callouts.h"
#include "cli/commands.h"
#include "replay/tape.h"

#define MAX_SEEDS 256         /* tapes one capture gives at most */
#define SEED_BYTES (64u << 10) /* and each tape's length */
#define DEFAULT_MAX_LEN 65536

static void usage(FILE *out)
{
    fputs("usage: openwfp fuzz --driver MODULE.so [options] [-- LIBFUZZER-OPTION...]\n"
          "       openwfp fuzz --seed-from CAPTURE --corpus DIR\n"
          "\n"
          "Fuzzes callout drivers: libFuzzer mutates fuzz inputs (connections, segments,\n"
          "directions, FIN/RST, urgent data, holes, and when the drivers' work items run)\n"
          "that are replayed through the engine into the drivers under ASan, UBSan and\n"
          "the verifier. A crash or a verifier finding stops it and is saved as an input\n"
          "that `openwfp replay --fuzz-input FILE` replays. Needs openwfp-fuzz, built by\n"
          "a clang build with -Dfuzz=true (docs/fuzzing.md).\n"
          "\n",
          out);
    fputs(owfp_callout_usage, out);
    fputs("  --corpus DIR            inputs to start from and keep\n"
          "                          (default openwfp-fuzz/NAME/corpus)\n"
          "  --artifacts DIR         where crashes and findings go (default openwfp-fuzz/NAME)\n"
          "  --seed-from CAPTURE     each TCP connection of CAPTURE as an input in the\n"
          "                          corpus (repeatable); without --driver, only that.\n"
          "                          An empty corpus is seeded from the bundled sample\n"
          "  --time SECONDS          stop after this long (default: at the first failure)\n"
          "  --max-len BYTES         longest input (default 65536)\n"
          "  -h, --help\n",
          out);
}

struct args {
    struct owfp_callout_args callouts;
    char *forward;  /* the callout options again, one argument per line */
    const char *corpus, *artifacts;
    const char *seeds[OWFP_MAX_LIST];
    size_t nseeds;
    uint64_t seconds, max_len;
    char **fuzzer_argv; /* after "--" */
    int fuzzer_argc;
};

/* Appends an option for openwfp-fuzz: "--name\nvalue\n", or "--name=value\n"
 * for an optional value. */
static int forward(struct args *a, const struct option *o, const char *value)
{
    size_t old = a->forward ? strlen(a->forward) : 0;
    size_t add = strlen(o->name) + 4 + (value ? strlen(value) : 0);
    char *f = realloc(a->forward, old + add + 1);
    if (!f)
        return -1;
    char sep = o->has_arg == optional_argument ? '=' : '\n';
    if (value)
        snprintf(f + old, add + 1, "--%s%c%s\n", o->name, sep, value);
    else
        snprintf(f + old, add + 1, "--%s\n", o->name);
    a->forward = f;
    return 0;
}

static int parse(int argc, char **argv, struct args *a)
{
    enum { O_CORPUS = 256, O_ARTIFACTS, O_SEED, O_TIME, O_MAXLEN };
    static const struct option opts[] = {
        OWFP_CALLOUT_OPTIONS,
        {"corpus", required_argument, 0, O_CORPUS},
        {"artifacts", required_argument, 0, O_ARTIFACTS},
        {"seed-from", required_argument, 0, O_SEED},
        {"time", required_argument, 0, O_TIME},
        {"max-len", required_argument, 0, O_MAXLEN},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    a->max_len = DEFAULT_MAX_LEN;
    int c, li;
    /* "+": stop at the first argument that is not an option (after --). */
    while ((c = getopt_long(argc, argv, "+h", opts, &li)) != -1) {
        /* Forwarded as given: parsing a --driver-param cuts its text. */
        if (c >= OWFP_OPT_EXAMPLE && c <= OWFP_OPT_VERIFY_LOG && forward(a, &opts[li], optarg))
            return fprintf(stderr, "openwfp fuzz: out of memory\n"), -1;
        int mine = owfp_callout_option(&a->callouts, "fuzz", c, optarg);
        if (mine < 0)
            return -1;
        if (mine)
            continue;
        switch (c) {
        case O_CORPUS: a->corpus = optarg; break;
        case O_ARTIFACTS: a->artifacts = optarg; break;
        case O_SEED:
            if (a->nseeds == OWFP_MAX_LIST)
                return fprintf(stderr, "openwfp fuzz: too many --seed-from\n"), -1;
            a->seeds[a->nseeds++] = optarg;
            break;
        case O_TIME:
            if (owfp_cli_u64("fuzz", "--time", optarg, INT_MAX, &a->seconds) || !a->seconds)
                return -1;
            break;
        case O_MAXLEN:
            if (owfp_cli_u64("fuzz", "--max-len", optarg, 16u << 20, &a->max_len) || !a->max_len)
                return -1;
            break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
    }
    a->fuzzer_argv = argv + optind;
    a->fuzzer_argc = argc - optind;
    if (a->fuzzer_argc && strcmp(argv[optind - 1], "--") != 0)
        return fprintf(stderr, "openwfp fuzz: '%s'? (libFuzzer options go after --)\n",
                       argv[optind]), -1;
    owfp_callout_args_done(&a->callouts);
    return 0;
}

/* mkdir -p */
static int make_dir(const char *path)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return -1;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(buf, 0777) != 0 && errno != EEXIST ? -1 : 0;
}

static bool dir_empty(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return true;
    struct dirent *e;
    bool empty = true;
    while (empty && (e = readdir(d)))
        empty = e->d_name[0] == '.';
    closedir(d);
    return empty;
}

/* What the defaults are named after: the first driver's base name, or the
 * first example's. */
static void target_name(const struct owfp_callout_args *ca, char out[64])
{
    const char *s = ca->ndrivers ? ca->drivers[0].path : ca->examples[0];
    const char *slash = strrchr(s, '/');
    s = slash ? slash + 1 : s;
    snprintf(out, 64, "%.*s", (int)strcspn(s, ".="), s);
}

static int seed(const char *capture, const char *corpus)
{
    long n = owfp_tape_seeds_from_capture(capture, corpus, MAX_SEEDS, SEED_BYTES);
    if (n < 0)
        return -1;
    fprintf(stderr, "openwfp fuzz: %ld input(s) from %s in %s\n", n, capture, corpus);
    return 0;
}

/* openwfp-fuzz beside this executable, or $OPENWFP_FUZZ_HOST. */
static int host_path(char *out, size_t size)
{
    const char *env = getenv("OPENWFP_FUZZ_HOST");
    if (env) {
        snprintf(out, size, "%s", env);
    } else {
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n <= 0)
            return -1;
        self[n] = '\0';
        *strrchr(self, '/') = '\0'; /* the kernel gives an absolute path */
        if (snprintf(out, size, "%s/openwfp-fuzz", self) >= (int)size)
            return -1;
    }
    return access(out, X_OK);
}

static pid_t g_child;

static void pass_on(int sig)
{
    if (g_child > 0)
        kill(g_child, sig);
}

/* Runs libFuzzer and waits; its exit status (128 + signal when killed). */
static int run_host(const char *host, const struct args *a, const char *corpus,
                    const char *artifacts)
{
    char prefix[PATH_MAX + 32], maxlen[64], total[64];
    snprintf(prefix, sizeof(prefix), "-artifact_prefix=%s/", artifacts);
    snprintf(maxlen, sizeof(maxlen), "-max_len=%llu", (unsigned long long)a->max_len);
    snprintf(total, sizeof(total), "-max_total_time=%llu", (unsigned long long)a->seconds);
    char *argv[16 + OWFP_MAX_LIST];
    int n = 0;
    argv[n++] = (char *)host;
    argv[n++] = prefix;
    argv[n++] = maxlen;
    argv[n++] = "-timeout=60";
    argv[n++] = "-rss_limit_mb=4096";
    if (a->seconds)
        argv[n++] = total;
    for (int i = 0; i < a->fuzzer_argc && n < 14 + OWFP_MAX_LIST; i++) /* room: corpus, NULL */
        argv[n++] = a->fuzzer_argv[i];
    argv[n++] = (char *)corpus;
    argv[n] = NULL;
    fflush(NULL);
    g_child = fork();
    if (g_child < 0)
        return fprintf(stderr, "openwfp fuzz: fork: %s\n", strerror(errno)), -1;
    if (g_child == 0) {
        setenv("OPENWFP_FUZZ_OPTIONS", a->forward, 1);
        execv(host, argv);
        fprintf(stderr, "openwfp fuzz: %s: %s\n", host, strerror(errno));
        _exit(127);
    }
    /* Ctrl-C reaches both: the fuzzer prints its summary and exits. */
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, pass_on);
    int st;
    while (waitpid(g_child, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* The inputs libFuzzer saved since `since`, and how to replay each. */
static int report_artifacts(const struct args *a, const char *artifacts, time_t since)
{
    DIR *d = opendir(artifacts);
    int found = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        static const char *const kinds[] = {"crash-", "leak-", "timeout-", "oom-", "slow-unit-"};
        bool artifact = false;
        for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
            artifact |= strncmp(e->d_name, kinds[i], strlen(kinds[i])) == 0;
        char path[PATH_MAX];
        struct stat st;
        if (!artifact || snprintf(path, sizeof(path), "%s/%s", artifacts, e->d_name) >= PATH_MAX ||
            stat(path, &st) != 0 || st.st_mtime < since)
            continue;
        if (!found++)
            fprintf(stderr, "openwfp fuzz: found; replay with:\n");
        fprintf(stderr, "  openwfp replay --fuzz-input %s --verify", path);
        for (const char *p = a->forward; *p;) {
            size_t n = strcspn(p, "\n");
            fprintf(stderr, " %.*s", (int)n, p);
            p += n + (p[n] == '\n');
        }
        fputc('\n', stderr);
    }
    if (d)
        closedir(d);
    return found;
}

int owfp_cmd_fuzz(int argc, char **argv)
{
    static struct args a;
    if (parse(argc, argv, &a) != 0)
        return 2;
    bool fuzzing = a.callouts.ndrivers || a.callouts.nexamples;
    if (!fuzzing && !a.nseeds) {
        fprintf(stderr, "openwfp fuzz: which driver? (--driver MODULE.so)\n");
        usage(stderr);
        return 2;
    }
    if (!fuzzing && !a.corpus)
        return fprintf(stderr, "openwfp fuzz: --seed-from without --driver needs --corpus\n"), 2;
    char name[64] = "", corpus[PATH_MAX], artifacts[PATH_MAX];
    if (fuzzing)
        target_name(&a.callouts, name);
    snprintf(corpus, sizeof(corpus), "%s", a.corpus ? a.corpus : "");
    if (!a.corpus)
        snprintf(corpus, sizeof(corpus), "openwfp-fuzz/%s/corpus", name);
    snprintf(artifacts, sizeof(artifacts), "%s", a.artifacts ? a.artifacts : "");
    if (!a.artifacts)
        snprintf(artifacts, sizeof(artifacts), "openwfp-fuzz/%s", name);
    if (make_dir(corpus) != 0 || (fuzzing && make_dir(artifacts) != 0))
        return fprintf(stderr, "openwfp fuzz: cannot create %s or %s: %s\n", corpus, artifacts,
                       strerror(errno)), 2;
    if (a.nseeds == 0 && fuzzing && dir_empty(corpus) && seed(OWFP_SAMPLE_CAPTURE, corpus))
        return 2;
    for (size_t i = 0; i < a.nseeds; i++)
        if (seed(a.seeds[i], corpus) != 0)
            return 2;
    if (!fuzzing)
        return 0;
    char host[PATH_MAX];
    if (host_path(host, sizeof(host)) != 0) {
        fprintf(stderr, "openwfp fuzz: %s is missing: it is built by a clang build with "
                        "-Dfuzz=true:\n  CC=clang meson setup build-fuzz -Dfuzz=true && "
                        "meson compile -C build-fuzz\n(see docs/fuzzing.md)\n", host);
        return 2;
    }
    time_t start = time(NULL);
    int st = run_host(host, &a, corpus, artifacts);
    int found = report_artifacts(&a, artifacts, start);
    free(a.forward);
    if (st < 0 || st == 2) /* openwfp-fuzz exits 2 when the callouts cannot be set up */
        return 2;
    return st == 0 && !found ? 0 : 1;
}
