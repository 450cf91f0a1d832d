/* The replay's progress line (progress.h). */
#include "replay/progress.h"

#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Short replays finish before a progress line would help. */
#define SHOW_AFTER_S 2.0
#define REDRAW_EVERY_S 0.25

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t size_of(const char *name)
{
    struct stat st;
    if (strcmp(name, "-") == 0 || stat(name, &st) != 0 || !S_ISREG(st.st_mode))
        return 0;
    return (uint64_t)st.st_size;
}

void owfp_progress_init(struct owfp_progress *p, bool wanted, const char *const *names, size_t n)
{
    memset(p, 0, sizeof(*p));
    p->enabled = wanted && isatty(STDERR_FILENO) && isatty(STDOUT_FILENO);
    for (size_t i = 0; i < n; i++) {
        uint64_t s = size_of(names[i]);
        if (!s) {
            p->total_size = 0;
            break;
        }
        p->total_size += s;
    }
    p->start = p->last = now_s();
}

void owfp_progress_file(struct owfp_progress *p, const char *name)
{
    p->done_before += p->file_size;
    p->file_size = size_of(name);
}

static void human(double v, const char *unit, char *buf, size_t n)
{
    static const char *const pre[] = {"", "k", "M", "G", "T"};
    int i = 0;
    while (v >= 1000 && i < 4) {
        v /= 1000;
        i++;
    }
    snprintf(buf, n, "%.1f %s%s", v, pre[i], unit);
}

void owfp_progress_update(struct owfp_progress *p, uint64_t packets, long long pos)
{
    if (!p->enabled)
        return;
    double t = now_s();
    if (t - p->start < SHOW_AFTER_S || t - p->last < REDRAW_EVERY_S)
        return;
    p->last = t;
    uint64_t done = p->done_before + (pos > 0 ? (uint64_t)pos : 0);
    double el = t - p->start, rate = (double)done / el;
    char b[32], r[32], eta[32] = "?";
    human((double)done, "B", b, sizeof(b));
    human(rate * 8, "bit/s", r, sizeof(r));
    if (p->total_size && rate > 0 && done <= p->total_size)
        snprintf(eta, sizeof(eta), "%.0f s", (double)(p->total_size - done) / rate);
    int pct = p->total_size ? (int)(100.0 * (double)done / (double)p->total_size) : -1;
    if (pct >= 0)
        fprintf(stderr, "\r\033[Kreplay %3d%%  %s  %llu packets  %s  ETA %s", pct, b,
                (unsigned long long)packets, r, eta);
    else
        fprintf(stderr, "\r\033[Kreplay %s  %llu packets  %s", b, (unsigned long long)packets, r);
    p->shown = true;
}

void owfp_progress_end(struct owfp_progress *p)
{
    if (p->shown)
        fprintf(stderr, "\r\033[K");
    p->shown = false;
}
