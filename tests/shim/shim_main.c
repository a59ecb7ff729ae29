/* Runner for the Criterion stand-in (see criterion/criterion.h in this folder). */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_TESTS 512
#define SKIP_STATUS 77

struct test {
	const char *suite, *name;
	void (*fn)(void);
	struct rf_shim_opts opts;
};

static struct test tests[MAX_TESTS];
static int test_count;
static struct test suites[MAX_TESTS]; /* suite-wide options: init, fini, timeout */
static int suite_count;

void rf_shim_register_suite(const char *suite, struct rf_shim_opts opts)
{
	if (suite_count < MAX_TESTS)
		suites[suite_count++] = (struct test){suite, NULL, NULL, opts};
}

/* A test's options, with its suite's filling what the test leaves unset. */
static struct rf_shim_opts effective_opts(const struct test *t)
{
	struct rf_shim_opts o = t->opts;
	for (int i = 0; i < suite_count; i++) {
		if (strcmp(suites[i].suite, t->suite) != 0)
			continue;
		if (!o.init)
			o.init = suites[i].opts.init;
		if (!o.fini)
			o.fini = suites[i].opts.fini;
		if (o.timeout <= 0)
			o.timeout = suites[i].opts.timeout;
	}
	return o;
}

void rf_shim_register(const char *suite, const char *name, void (*fn)(void), struct rf_shim_opts opts)
{
	if (test_count == MAX_TESTS) {
		fprintf(stderr, "too many tests\n");
		exit(2);
	}
	tests[test_count++] = (struct test){suite, name, fn, opts};
}

void rf_shim_check(bool ok, const char *file, int line, const char *expr, const char *fmt, ...)
{
	if (ok)
		return;
	fprintf(stderr, "%s:%d: assertion failed: %s", file, line, expr);
	if (fmt[1]) { /* fmt is " " followed by the caller's format */
		va_list ap;
		va_start(ap, fmt);
		fprintf(stderr, ":");
		vfprintf(stderr, fmt, ap);
		va_end(ap);
	}
	fprintf(stderr, "\n");
	exit(1);
}

void rf_shim_skip(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "skipped:");
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(SKIP_STATUS);
}

/* Runs one test in a child; returns 0 pass, 1 fail, 2 skip. */
static int run_one(const struct test *t)
{
	struct rf_shim_opts opts = effective_opts(t);
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		if (opts.timeout > 0)
			alarm((unsigned)opts.timeout + 1);
		if (opts.init)
			opts.init();
		t->fn();
		if (opts.fini)
			opts.fini();
		exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
	if (t->opts.signal)
		return WIFSIGNALED(status) && WTERMSIG(status) == t->opts.signal ? 0 : 1;
	if (WIFEXITED(status) && WEXITSTATUS(status) == SKIP_STATUS)
		return 2;
	if (WIFEXITED(status) && WEXITSTATUS(status) == t->opts.exit_code)
		return 0;
	if (WIFSIGNALED(status))
		fprintf(stderr, "%s::%s: killed by signal %d%s\n", t->suite, t->name, WTERMSIG(status),
			WTERMSIG(status) == SIGALRM ? " (timeout)" : "");
	return 1;
}

int main(void)
{
	int passed = 0, failed = 0, skipped = 0;
	for (int i = 0; i < test_count; i++) {
		if (tests[i].opts.disabled)
			continue;
		int r = run_one(&tests[i]);
		const char *verdict = r == 0 ? "PASS" : r == 1 ? "FAIL" : "SKIP";
		printf("[%s] %s::%s\n", verdict, tests[i].suite, tests[i].name);
		passed += r == 0;
		failed += r == 1;
		skipped += r == 2;
	}
	printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
	return failed ? 1 : 0;
}
