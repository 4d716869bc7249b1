/* Leak checking inside every test of the sanitizer build (SANITIZE=1).
 *
 * Criterion 2.4 runs each test in a worker of its own: BoxFort forks the runner and execs this same binary
 * ("boxfort-worker", BXFI_MAP in its environment), which runs the test's init, body and fini, reports each phase
 * to the runner, and exits. LeakSanitizer's own check runs at that exit and sets the exit status to 23, but by
 * then the worker has reported the test's end, and the runner (client.c, handle_death) records the status
 * without judging the test again: a leak never failed a test, whatever the suppressions said.
 *
 * So run_tests is linked with -Wl,--wrap=criterion_internal_test_main (Makefile): every Test() calls this
 * wrapper, which runs the test's body and then __lsan_do_recoverable_leak_check while the test is still in its
 * main phase. A leak is a failed assertion of the test that leaked, with LeakSanitizer's report (stack of the
 * allocation) on stderr or in the log_path the Makefile sets. A body that fails an assertion leaves through
 * Criterion's longjmp and skips the check: that test fails anyway. Without ASan the wrapper only forwards. */
#include <criterion/criterion.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

void __real_criterion_internal_test_main(void (*fn)(void));
void __wrap_criterion_internal_test_main(void (*fn)(void));

#if defined(__SANITIZE_ADDRESS__)
static void (*test_body)(void);

static void body_then_leak_check(void)
{
    test_body();
    cr_assert(__lsan_do_recoverable_leak_check() == 0,
              "LeakSanitizer: the test leaked memory (its report, with each allocation's stack, is on stderr or in "
              "the build's sanitizer/ directory)");
}
#endif

void __wrap_criterion_internal_test_main(void (*fn)(void))
{
#if defined(__SANITIZE_ADDRESS__)
    test_body = fn;
    __real_criterion_internal_test_main(body_then_leak_check);
#else
    __real_criterion_internal_test_main(fn);
#endif
}
