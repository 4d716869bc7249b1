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

/* The runner -- the process `make run-tests` starts, which never enters a test body -- runs no code of bnni, only
 * Criterion's and BoxFort's, and BoxFort leaks there now and then: bxfi_push_timeout (timeout-posix.c, linked into
 * libcriterion.so) callocs a 48-byte request for each test that has a timeout, and its cancellation and timeout
 * thread do not always free it. libcriterion.so is stripped, so that frame has no name to suppress it by: in the
 * runner only, LeakSanitizer's built-in suppressions take the leaks whose stack passes through libcriterion. A
 * test's worker, where every leak of bnni's code would be, suppresses nothing. LeakSanitizer asks for these
 * suppressions at its first leak check: in a worker, inside the first test body (ran_a_test is then set); in the
 * runner, at its exit. (Telling them apart by BXFI_MAP in the environment let the runner's leak through once in
 * CI.) */
static int ran_a_test;
#if defined(__SANITIZE_ADDRESS__)
/* Default visibility: the build hides every symbol (-fvisibility=hidden), and the sanitizer runtime, a shared
 * library, finds this function only in the executable's dynamic symbol table. */
__attribute__((visibility("default"))) const char *__lsan_default_suppressions(void);
__attribute__((visibility("default"))) const char *__lsan_default_suppressions(void)
{
    return ran_a_test ? "" : "leak:libcriterion.so\n";
}
#endif

void __wrap_criterion_internal_test_main(void (*fn)(void))
{
    ran_a_test = 1;
#if defined(__SANITIZE_ADDRESS__)
    test_body = fn;
    __real_criterion_internal_test_main(body_then_leak_check);
#else
    __real_criterion_internal_test_main(fn);
#endif
}
