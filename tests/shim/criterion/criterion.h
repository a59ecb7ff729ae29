/*
 * A minimal stand-in for Criterion's test API, used only for ThreadSanitizer
 * builds: Criterion 2.4 cannot start under TSan (its inheritable arena mapping
 * collides with TSan's shadow memory, upstream issue #274). The same test
 * sources compile against this header; each test runs in a forked child with
 * its timeout, and the runner prints "N passed, N failed".
 */
#ifndef RF_SHIM_CRITERION_H
#define RF_SHIM_CRITERION_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

struct rf_shim_opts {
	double timeout;
	void (*init)(void);
	void (*fini)(void);
	bool disabled;
	const char *description;
	int exit_code;
	int signal;
};

void rf_shim_register(const char *suite, const char *name, void (*fn)(void), struct rf_shim_opts opts);
void rf_shim_register_suite(const char *suite, struct rf_shim_opts opts);
void rf_shim_check(bool ok, const char *file, int line, const char *expr, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
void rf_shim_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define Test(suite, name, ...)                                                                          \
	static void suite##_##name(void);                                                               \
	__attribute__((constructor)) static void rf_shim_reg_##suite##_##name(void)                     \
	{                                                                                               \
		rf_shim_register(#suite, #name, suite##_##name, (struct rf_shim_opts){__VA_ARGS__});    \
	}                                                                                               \
	static void suite##_##name(void)

#define TestSuite(suite, ...)                                                                           \
	__attribute__((constructor)) static void rf_shim_suite_##suite(void)                            \
	{                                                                                               \
		rf_shim_register_suite(#suite, (struct rf_shim_opts){__VA_ARGS__});                     \
	}                                                                                               \
	struct rf_shim_unused_##suite

#define cr_assert(cond, ...) rf_shim_check(!!(cond), __FILE__, __LINE__, #cond, " " __VA_ARGS__)
#define cr_expect cr_assert
#define cr_assert_not(cond, ...) cr_assert(!(cond), __VA_ARGS__)
#define cr_assert_fail(...) rf_shim_check(false, __FILE__, __LINE__, "cr_assert_fail", " " __VA_ARGS__)
#define cr_assert_eq(a, b, ...) cr_assert((a) == (b), __VA_ARGS__)
#define cr_assert_neq(a, b, ...) cr_assert((a) != (b), __VA_ARGS__)
#define cr_assert_lt(a, b, ...) cr_assert((a) < (b), __VA_ARGS__)
#define cr_assert_leq(a, b, ...) cr_assert((a) <= (b), __VA_ARGS__)
#define cr_assert_gt(a, b, ...) cr_assert((a) > (b), __VA_ARGS__)
#define cr_assert_geq(a, b, ...) cr_assert((a) >= (b), __VA_ARGS__)
#define cr_assert_null(p, ...) cr_assert((p) == NULL, __VA_ARGS__)
#define cr_assert_not_null(p, ...) cr_assert((p) != NULL, __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...) cr_assert(strcmp((a), (b)) == 0, __VA_ARGS__)
#define cr_assert_str_neq(a, b, ...) cr_assert(strcmp((a), (b)) != 0, __VA_ARGS__)
#define cr_assert_str_empty(s, ...) cr_assert((s)[0] == '\0', __VA_ARGS__)
#define cr_assert_str_not_empty(s, ...) cr_assert((s)[0] != '\0', __VA_ARGS__)
#define cr_assert_float_eq(a, b, eps, ...) cr_assert(fabs((double)(a) - (double)(b)) <= (eps), __VA_ARGS__)
#define cr_assert_arr_eq(a, b, size, ...) cr_assert(memcmp((a), (b), (size)) == 0, __VA_ARGS__)
#define cr_expect_eq cr_assert_eq
#define cr_expect_neq cr_assert_neq
#define cr_expect_lt cr_assert_lt
#define cr_expect_leq cr_assert_leq
#define cr_expect_gt cr_assert_gt
#define cr_expect_geq cr_assert_geq
#define cr_expect_null cr_assert_null
#define cr_expect_not_null cr_assert_not_null
#define cr_expect_str_eq cr_assert_str_eq
#define cr_expect_float_eq cr_assert_float_eq
#define cr_skip_test(...) rf_shim_skip(" " __VA_ARGS__)
#define cr_log_info(...) ((void)0)

#endif
