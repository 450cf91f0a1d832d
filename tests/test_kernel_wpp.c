/*
 * WPP tracing (openwfp_wpp.h, src/kernel/wpp.c): off, a trace call evaluates
 * none of its arguments; with OPENWFP_WPP_DBGPRINT=1 it prints one debug
 * line, with WPP's %!NAME! conversions rewritten and the message cut at one
 * it does not know. The switch is read once per process, so the "off" case
 * runs in a child.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <openwfp_wpp.h>
#include <openwfp/kernel.h>

static int evaluated;

static int side_effect(void)
{
    return ++evaluated;
}

static void test_off_evaluates_nothing(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        unsetenv("OPENWFP_WPP_DBGPRINT");
        DoTraceMessage(SOME_FLAG, "%d %d", side_effect(), side_effect());
        DoTraceLevelMessage(TRACE_LEVEL_ERROR, SOME_FLAG, "%d", side_effect());
        WPP_INIT_TRACING(side_effect(), side_effect());
        WPP_CLEANUP(side_effect());
        _exit(evaluated == 0 && !WPP_LEVEL_ENABLED(SOME_FLAG) ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* stderr goes to a temporary file between these two; capture_end returns its text. */
static char captured[4096];

static void capture_begin(FILE **file, int *saved)
{
    fflush(stderr);
    *file = tmpfile();
    assert_non_null(*file);
    *saved = dup(2);
    assert_true(*saved >= 0);
    assert_true(dup2(fileno(*file), 2) >= 0);
}

static const char *capture_end(FILE *file, int saved)
{
    fflush(stderr);
    assert_true(dup2(saved, 2) >= 0);
    close(saved);
    rewind(file);
    size_t n = fread(captured, 1, sizeof(captured) - 1, file);
    captured[n] = '\0';
    fclose(file);
    return captured;
}

static void test_on_prints_and_rewrites(void **state)
{
    (void)state;
    setenv("OPENWFP_WPP_DBGPRINT", "1", 1);
    owfp_kernel_set_driver_name("wppdrv");
    FILE *file;
    int saved;
    capture_begin(&file, &saved);
    evaluated = 0;
    DoTraceMessage(TRACE_INIT, "plain %d, %s", side_effect(), "text");
    DoTraceLevelMessage(TRACE_LEVEL_ERROR, TRACE_IO, "status %!STATUS! in %!FUNC! (%!bool!)",
                        (NTSTATUS)0xC000009A, 1);
    DoTraceMessage(TRACE_IO, "%!HRESULT! 100%% %!LEVEL!/%!FLAGS!", 0x80004005u);
    DoTraceMessage(TRACE_IO, "before %d %!GUID! after %d", 7, (void *)NULL, 8);
    owfp_wpp_trace("dir/file.c", 42, "fn", "", TRACE_LEVEL_INFORMATION, "%!FILE!:%!LINE! %!PORT!",
                   80);
    const char *out = capture_end(file, saved);
    owfp_kernel_set_driver_name(NULL);

    assert_int_equal(evaluated, 1);
    assert_true(WPP_LEVEL_ENABLED(TRACE_IO));
    assert_non_null(
        strstr(out, "[wppdrv] TRACE_INIT test_on_prints_and_rewrites: plain 1, text\n"));
    assert_non_null(strstr(out, "[wppdrv] TRACE_IO test_on_prints_and_rewrites: status "
                                "0xC000009A in test_on_prints_and_rewrites (1)\n"));
    assert_non_null(strstr(out, ": 0x80004005 100% 0/TRACE_IO\n"));
    assert_non_null(strstr(out, ": before 7 ...\n"));
    assert_null(strstr(out, "after"));
    assert_non_null(strstr(out, "[wppdrv] fn: file.c:42 80\n"));
}

/* A message longer than the debug output takes is cut between conversions,
 * never inside one, and still ends its line. */
static void test_long_message_is_cut_cleanly(void **state)
{
    (void)state;
    char format[1200];
    size_t n = 0;
    format[n++] = 'x';
    while (n + 3 < sizeof(format)) {
        memcpy(format + n, "%%", 2);
        n += 2;
    }
    memcpy(format + n, "E", 2);
    FILE *file;
    int saved;
    capture_begin(&file, &saved);
    owfp_wpp_trace("f.c", 1, "fn", "F", TRACE_LEVEL_VERBOSE, format);
    const char *out = capture_end(file, saved);
    assert_true(strncmp(out, "F fn: x%", 8) == 0);
    size_t len = strlen(out);
    assert_true(len > 200 && len < 512);
    assert_int_equal(out[len - 1], '\n');
    assert_int_equal(strspn(out + 7, "%"), len - 8); /* every %% became one %, none is left over */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_off_evaluates_nothing),
        cmocka_unit_test(test_on_prints_and_rewrites),
        cmocka_unit_test(test_long_message_is_cut_cleanly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
