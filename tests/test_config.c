/* Config: defaults, rf_config_set per key type, error messages, INI loading, validation. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringfeed/ringfeed.h"
#include "testfs.h"

static char *tmp;
/* Strings a test allocates, freed by teardown so a failing assertion leaks nothing. */
static char *owned[8];
static size_t n_owned;

static char *own(char *p)
{
	cr_assert_not_null(p);
	cr_assert_lt(n_owned, sizeof(owned) / sizeof(owned[0]));
	return owned[n_owned++] = p;
}

static void setup(void)
{
	tmp = tfs_mkdtemp();
	cr_assert_not_null(tmp);
}

static void teardown(void)
{
	while (n_owned)
		free(owned[--n_owned]);
	tfs_rmtree(tmp);
	free(tmp);
	tmp = NULL;
}

TestSuite(config, .init = setup, .fini = teardown);

/* Writes text to tmp/name and returns the full path (freed by teardown). */
static char *write_file(const char *name, const char *text)
{
	cr_assert_eq(tfs_write(tmp, name, text, strlen(text)), 0);
	return own(tfs_path(tmp, name));
}

/* path + ":" + line, freed by teardown. */
static char *at_line(const char *path, const char *line)
{
	char *where = NULL;
	if (asprintf(&where, "%s:%s", path, line) < 0)
		where = NULL;
	return own(where);
}

static void assert_contains(const char *haystack, const char *needle)
{
	cr_assert_not_null(strstr(haystack, needle), "'%s' does not mention '%s'", haystack, needle);
}

Test(config, defaults)
{
	rf_config c;
	memset(&c, 0xa5, sizeof(c)); /* init must set every field, not rely on a zeroed struct */
	rf_config_init(&c);
	cr_assert_eq(c.output.width, 224);
	cr_assert_eq(c.output.height, 224);
	cr_assert_eq(c.output.channels, 3);
	cr_assert_eq(c.output.fit, RF_FIT_COVER);
	cr_assert_eq(c.output.layout, RF_LAYOUT_NHWC_U8);
	for (int i = 0; i < 4; i++) {
		cr_assert_float_eq(c.output.mean[i], 0.0f, 0.0f);
		cr_assert_float_eq(c.output.std[i], 1.0f, 0.0f);
	}
	cr_assert_eq(c.batch.size, 32);
	cr_assert(c.batch.ordered);
	cr_assert_not(c.batch.drop_last);
	cr_assert_eq(c.loader.threads, 0, "auto");
	cr_assert_eq(c.loader.io_depth, 0, "auto");
	cr_assert_eq(c.loader.backend, RF_BACKEND_AUTO);
	cr_assert_eq(c.decoder.threads, 0, "0 = auto");
	cr_assert_eq(c.infer.threads, 1);
	cr_assert_eq(c.limits.max_pixels, 100000000u);
	cr_assert_eq(c.limits.max_file_bytes, 256u << 20);
	cr_assert_eq(c.pipeline.on_error, RF_ON_ERROR_SKIP);
	cr_assert_eq(c.pipeline.prefetch_batches, 2);
	cr_assert_eq(c.pipeline.queue_depth, 0);
	cr_assert_str_eq(c.source.extensions, "");
	char err[256] = "";
	cr_assert_eq(rf_config_validate(&c, err, sizeof(err)), 0, "defaults are valid: %s", err);
}

/* Sets key = value and requires success. */
static void set_ok(rf_config *c, const char *key, const char *value)
{
	char err[256] = "";
	cr_assert_eq(rf_config_set(c, key, value, err, sizeof(err)), 0, "%s = '%s': %s", key, value, err);
}

Test(config, set_int_and_auto)
{
	rf_config c;
	rf_config_init(&c);
	set_ok(&c, "loader.threads", "4");
	cr_assert_eq(c.loader.threads, 4);
	set_ok(&c, "loader.io_depth", "4096");
	cr_assert_eq(c.loader.io_depth, 4096);
	set_ok(&c, "loader.io_depth", "auto");
	cr_assert_eq(c.loader.io_depth, 0);
	set_ok(&c, "loader.threads", "AUTO");
	cr_assert_eq(c.loader.threads, 0);
	set_ok(&c, "output.width", "1");
	cr_assert_eq(c.output.width, 1);
	set_ok(&c, "decoder.threads", "8");
	cr_assert_eq(c.decoder.threads, 8);
	set_ok(&c, "decoder.threads", "auto");
	cr_assert_eq(c.decoder.threads, 0);
	set_ok(&c, "pipeline.queue_depth", "100");
	cr_assert_eq(c.pipeline.queue_depth, 100);
	set_ok(&c, "pipeline.queue_depth", "AUTO");
	cr_assert_eq(c.pipeline.queue_depth, 0);
}

Test(config, set_bool_variants)
{
	static const char *const yes[] = {"true", "TRUE", "yes", "on", "1"};
	static const char *const no[] = {"false", "False", "no", "off", "0"};
	rf_config c;
	rf_config_init(&c);
	for (size_t i = 0; i < 5; i++) {
		set_ok(&c, "batch.drop_last", yes[i]);
		cr_assert(c.batch.drop_last, "'%s' is true", yes[i]);
		set_ok(&c, "batch.drop_last", no[i]);
		cr_assert_not(c.batch.drop_last, "'%s' is false", no[i]);
	}
	set_ok(&c, "batch.ordered", "off");
	cr_assert_not(c.batch.ordered);
}

Test(config, set_enums)
{
	rf_config c;
	rf_config_init(&c);
	set_ok(&c, "loader.backend", "pread");
	cr_assert_eq(c.loader.backend, RF_BACKEND_PREAD);
	set_ok(&c, "loader.backend", "io_uring");
	cr_assert_eq(c.loader.backend, RF_BACKEND_IO_URING);
	set_ok(&c, "loader.backend", "auto");
	cr_assert_eq(c.loader.backend, RF_BACKEND_AUTO);
	set_ok(&c, "output.fit", "stretch");
	cr_assert_eq(c.output.fit, RF_FIT_STRETCH);
	set_ok(&c, "output.layout", "nchw_f32");
	cr_assert_eq(c.output.layout, RF_LAYOUT_NCHW_F32);
	set_ok(&c, "pipeline.on_error", "fail");
	cr_assert_eq(c.pipeline.on_error, RF_ON_ERROR_FAIL);
	set_ok(&c, "pipeline.on_error", "skip");
	cr_assert_eq(c.pipeline.on_error, RF_ON_ERROR_SKIP);
}

Test(config, set_float_lists)
{
	rf_config c;
	rf_config_init(&c);
	set_ok(&c, "output.mean", "127.5");
	for (int i = 0; i < 4; i++)
		cr_assert_float_eq(c.output.mean[i], 127.5f, 1e-6f, "one value fills channel %d", i);
	set_ok(&c, "output.std", "58.4, 57.1,57.4");
	cr_assert_float_eq(c.output.std[0], 58.4f, 1e-4f);
	cr_assert_float_eq(c.output.std[1], 57.1f, 1e-4f);
	cr_assert_float_eq(c.output.std[2], 57.4f, 1e-4f);
	char err[256] = "";
	cr_assert_eq(rf_config_validate(&c, err, sizeof(err)), 0, "three std values leave no zero: %s", err);
	set_ok(&c, "output.mean", "1,2,3,4");
	for (int i = 0; i < 4; i++)
		cr_assert_float_eq(c.output.mean[i], (float)(i + 1), 1e-6f);
}

Test(config, set_u64_and_string)
{
	rf_config c;
	rf_config_init(&c);
	set_ok(&c, "limits.max_pixels", "5000000000"); /* past 32 bits */
	cr_assert_eq(c.limits.max_pixels, 5000000000ull);
	set_ok(&c, "limits.max_file_bytes", "18446744073709551615");
	cr_assert_eq(c.limits.max_file_bytes, UINT64_MAX);
	set_ok(&c, "source.extensions", "jpg,png");
	cr_assert_str_eq(c.source.extensions, "jpg,png");
	set_ok(&c, "source.extensions", "");
	cr_assert_str_eq(c.source.extensions, "", "an empty filter means all files");
}

Test(config, unknown_key)
{
	rf_config c, before;
	rf_config_init(&c);
	before = c;
	char err[256] = "";
	cr_assert_eq(rf_config_set(&c, "decoder.bogus", "1", err, sizeof(err)), RF_ECONFIG);
	assert_contains(err, "decoder.bogus");
	cr_assert_eq(rf_config_set(&c, "threads", "1", err, sizeof(err)), RF_ECONFIG, "keys need their section");
	assert_contains(err, "threads");
	cr_assert_eq(memcmp(&c, &before, sizeof(c)), 0);
	cr_assert_eq(rf_config_set(&c, "decoder.bogus", "1", NULL, 0), RF_ECONFIG, "err may be NULL");
}

Test(config, bad_values_fail_naming_the_key_and_leave_cfg_unchanged)
{
	static const struct {
		const char *key, *value;
	} bad[] = {
		{"decoder.threads", "0"},
		{"decoder.threads", "-2"},
		{"batch.size", "-1"},
		{"batch.size", "65537"},
		{"loader.io_depth", "abc"},
		{"loader.io_depth", "12x"},
		{"loader.io_depth", ""},
		{"loader.threads", "99999999999999999999"},
		{"output.channels", "5"},
		{"output.channels", "2"},
		{"limits.memory_mb", "1073741825"}, /* 1 PiB + 1 MiB: its byte count would near 2^64 */
		{"output.width", "1.5"},
		{"batch.ordered", "maybe"},
		{"loader.backend", "mmap"},
		{"output.mean", "1,x"},
		{"output.std", "1,2,"},
		{"limits.max_pixels", "0"},
		{"limits.max_pixels", "-1"},
		{"limits.max_pixels", " -5"}, /* strtoull would make it 2^64 - 5: no limit at all */
		{"limits.max_file_bytes", "+5"},
		{"output.std", "nan"},
		{"output.std", "inf"},
		{"output.mean", "1e39"}, /* past float's range: the conversion would be undefined */
		{"output.mean", "1,2"},  /* neither one for all channels nor one per colour */
		{"limits.max_file_bytes", "lots"},
		{"source.extensions",
		 "jpg,png,jpg,png,jpg,png,jpg,png,jpg,png,jpg,png,jpg,png,jpg,png,jpg,png,jpg,png,"
		 "jpg,png,jpg,png,jpg,png,jpg,png,jpg,png,jpg,png,jpg,png,jpg,png,jpg,png"},
	};
	rf_config c, before;
	rf_config_init(&c);
	set_ok(&c, "decoder.threads", "3"); /* something other than the default to keep */
	before = c;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char err[256] = "";
		cr_assert_eq(rf_config_set(&c, bad[i].key, bad[i].value, err, sizeof(err)), RF_ECONFIG,
			     "%s = '%s' accepted", bad[i].key, bad[i].value);
		assert_contains(err, bad[i].key);
		cr_assert_eq(memcmp(&c, &before, sizeof(c)), 0, "%s = '%s' changed cfg", bad[i].key,
			     bad[i].value);
	}
}

Test(config, float_list_rejects_more_than_four_values)
{
	static const char *const bad[] = {"1,2,3,4,5", "1,2,3,4,", "1,2,3,4,5,6"};
	rf_config c, before;
	rf_config_init(&c);
	before = c;
	for (size_t i = 0; i < 3; i++) {
		char err[256] = "";
		cr_assert_eq(rf_config_set(&c, "output.mean", bad[i], err, sizeof(err)), RF_ECONFIG,
			     "output.mean = '%s' accepted", bad[i]);
		assert_contains(err, "output.mean");
		cr_assert_eq(memcmp(&c, &before, sizeof(c)), 0);
	}
}

Test(config, validate_rejects_two_channels)
{
	rf_config c;
	rf_config_init(&c);
	c.output.channels = 2; /* set directly: rf_config_set refuses it too */
	char err[256] = "";
	cr_assert_eq(rf_config_validate(&c, err, sizeof(err)), RF_ECONFIG);
	assert_contains(err, "output.channels");
}

Test(config, validate_rejects_zero_std)
{
	rf_config c;
	rf_config_init(&c);
	c.output.std[1] = 0.0f;
	char err[256] = "";
	cr_assert_eq(rf_config_validate(&c, err, sizeof(err)), RF_ECONFIG);
	assert_contains(err, "output.std");
	cr_assert_eq(rf_config_validate(&c, NULL, 0), RF_ECONFIG, "err may be NULL");
}

Test(config, validate_rejects_non_finite_mean_and_std)
{
	rf_config c;
	char err[256] = "";
	rf_config_init(&c);
	c.output.std[2] = __builtin_nanf("");
	cr_assert_eq(rf_config_validate(&c, err, sizeof(err)), RF_ECONFIG, "a NaN std passes 'not zero'");
	assert_contains(err, "output.std");
	rf_config_init(&c);
	c.output.mean[0] = __builtin_inff();
	cr_assert_eq(rf_config_validate(&c, err, sizeof(err)), RF_ECONFIG);
	assert_contains(err, "output.mean");
}

Test(config, validate_checks_fields_set_directly)
{
	rf_config c;
	char err[256];

	rf_config_init(&c);
	c.batch.size = 0;
	cr_assert_eq(rf_config_validate(&c, err, sizeof(err)), RF_ECONFIG);
	assert_contains(err, "batch.size");

	rf_config_init(&c);
	c.decoder.threads = -1;
	cr_assert_eq(rf_config_validate(&c, err, sizeof(err)), RF_ECONFIG);
	assert_contains(err, "decoder.threads");

	rf_config_init(&c);
	c.loader.backend = (rf_backend)7;
	cr_assert_eq(rf_config_validate(&c, err, sizeof(err)), RF_ECONFIG);
	assert_contains(err, "loader.backend");

	rf_config_init(&c);
	c.limits.max_pixels = 0;
	cr_assert_eq(rf_config_validate(&c, err, sizeof(err)), RF_ECONFIG);
	assert_contains(err, "limits.max_pixels");

	rf_config_init(&c);
	c.output.width = c.output.height = 16384;
	c.output.channels = 4;
	c.output.layout = RF_LAYOUT_NCHW_F32; /* 4 GiB per slot */
	c.batch.size = 2;
	cr_assert_eq(rf_config_validate(&c, err, sizeof(err)), RF_ECONFIG);
	assert_contains(err, "batch.size");
}

Test(config, load_good_file)
{
	char *path = write_file("good.ini", "; ringfeed settings\n"
					    "# both comment styles\n"
					    "[loader]\n"
					    "threads = 4\n"
					    "backend = pread\n"
					    "\n"
					    "[decoder]\n"
					    "threads = auto ; inline comment\n"
					    "[output]\n"
					    "width = 320\n"
					    "height=240\n"
					    "layout = nchw_f32\n"
					    "mean = 123.7, 116.3, 103.5\n"
					    "[batch]\n"
					    "size = 16\n"
					    "ordered = no\n"
					    "[limits]\n"
					    "max_pixels = 5000000000\n"
					    "[source]\n"
					    "extensions = jpg,png\n");
	rf_config c;
	rf_config_init(&c);
	c.decoder.threads = 6;
	c.output.channels = 1; /* not in the file: must survive the load */
	char err[256] = "";
	cr_assert_eq(rf_config_load(&c, path, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(c.loader.threads, 4);
	cr_assert_eq(c.loader.backend, RF_BACKEND_PREAD);
	cr_assert_eq(c.decoder.threads, 0);
	cr_assert_eq(c.output.width, 320);
	cr_assert_eq(c.output.height, 240);
	cr_assert_eq(c.output.channels, 1);
	cr_assert_eq(c.output.layout, RF_LAYOUT_NCHW_F32);
	cr_assert_float_eq(c.output.mean[0], 123.7f, 1e-4f);
	cr_assert_float_eq(c.output.mean[1], 116.3f, 1e-4f);
	cr_assert_float_eq(c.output.mean[2], 103.5f, 1e-4f);
	cr_assert_eq(c.batch.size, 16);
	cr_assert_not(c.batch.ordered);
	cr_assert_eq(c.limits.max_pixels, 5000000000ull);
	cr_assert_str_eq(c.source.extensions, "jpg,png");
	cr_assert_eq(c.loader.io_depth, 0, "untouched keys keep their values (auto)");
}

/* Loads text from a file and expects RF_ECONFIG mentioning each of the needles. */
static void expect_load_error(const char *text, const char *line, const char *key)
{
	char *path = write_file("bad.ini", text);
	rf_config c, before;
	rf_config_init(&c);
	before = c;
	char err[512] = "";
	cr_assert_eq(rf_config_load(&c, path, err, sizeof(err)), RF_ECONFIG);
	assert_contains(err, at_line(path, line));
	if (key)
		assert_contains(err, key);
	cr_assert_eq(memcmp(&c, &before, sizeof(c)), 0, "a failed load leaves cfg alone");
}

Test(config, load_unknown_key_names_file_line_and_key)
{
	expect_load_error("[loader]\n"
			  "threads = 2\n"
			  "[decoder]\n"
			  "bogus = 1\n"
			  "threads = 4\n",
			  "4", "decoder.bogus");
}

Test(config, load_bad_value_names_file_line_and_key)
{
	expect_load_error("# comment\n"
			  "[loader]\n"
			  "io_depth = abc\n",
			  "3", "loader.io_depth");
}

Test(config, load_syntax_error_names_file_and_line)
{
	expect_load_error("[loader]\n"
			  "threads = 2\n"
			  "this line is not ini\n",
			  "3", NULL);
}

/* inih reads lines of up to 199 bytes: a longer one is an error at its own line, not two lines. */
Test(config, load_line_too_long_is_named_at_its_line)
{
	char text[600];
	snprintf(text, sizeof(text), "[source]\nextensions = %0250d\n[decoder]\nthreads = 2\n", 7);
	expect_load_error(text, "2", "longer than 199 bytes");
}

/* A long comment is still a comment, and the lines after it keep their numbers. */
Test(config, load_long_comment_is_skipped_whole)
{
	char text[600];
	snprintf(text, sizeof(text), "; %0250d\n[decoder]\nthreads = 2\nbogus = 1\n", 7);
	expect_load_error(text, "4", "decoder.bogus");
	/* and one of exactly 199 bytes is a line like any other */
	snprintf(text, sizeof(text), "[source]\nextensions = %0186d\n", 7);
	cr_assert_eq(strlen(strstr(text, "extensions")), 200, "the test's line is 199 bytes and a newline");
	char *path = write_file("edge.ini", text);
	rf_config c;
	rf_config_init(&c);
	char err[512] = "";
	cr_assert_eq(rf_config_load(&c, path, err, sizeof(err)), RF_ECONFIG, "extensions that long are refused");
	assert_contains(err, "source.extensions");
}

Test(config, load_key_outside_section)
{
	expect_load_error("threads = 2\n", "1", "threads");
}

Test(config, load_reports_the_first_error)
{
	/* Two mistakes: the message must describe the first one, not mix line 4 with line 6's key. */
	char *path = write_file("two.ini", "[loader]\n"
					   "threads = 2\n"
					   "[decoder]\n"
					   "bogus = 1\n"
					   "[output]\n"
					   "width = wide\n");
	rf_config c;
	rf_config_init(&c);
	char err[512] = "";
	cr_assert_eq(rf_config_load(&c, path, err, sizeof(err)), RF_ECONFIG);
	assert_contains(err, at_line(path, "4"));
	assert_contains(err, "decoder.bogus");
	cr_assert_null(strstr(err, "output.width"), "'%s' describes line 6, not line 4", err);
}

Test(config, load_missing_file)
{
	char *path = own(tfs_path(tmp, "nope.ini"));
	rf_config c, before;
	rf_config_init(&c);
	before = c;
	char err[512] = "";
	cr_assert_eq(rf_config_load(&c, path, err, sizeof(err)), RF_ECONFIG);
	assert_contains(err, path);
	cr_assert_eq(memcmp(&c, &before, sizeof(c)), 0);
}

Test(config, load_directory_is_unreadable)
{
	/* fopen succeeds on a directory; only the read fails (EISDIR). */
	rf_config c;
	rf_config_init(&c);
	char err[512] = "";
	cr_assert_eq(rf_config_load(&c, tmp, err, sizeof(err)), RF_ECONFIG);
	assert_contains(err, tmp);
}

Test(config, indented_keys_are_keys_not_continuations)
{
	char *path = write_file("indented.ini", "[loader]\n"
						"  threads = 3\n"
						"\tio_depth = 8\n"
						"  [batch]\n"
						"    size = 5\n");
	rf_config c;
	rf_config_init(&c);
	char err[512] = "";
	cr_assert_eq(rf_config_load(&c, path, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(c.loader.threads, 3);
	cr_assert_eq(c.loader.io_depth, 8);
	cr_assert_eq(c.batch.size, 5);
}

Test(config, syntax_error_before_a_bad_key_is_reported_as_syntax)
{
	char *path = write_file("mixed.ini", "[loader]\n"
					     "not ini at all\n"
					     "[decoder]\n"
					     "bogus = 1\n");
	rf_config c;
	rf_config_init(&c);
	char err[512] = "";
	cr_assert_eq(rf_config_load(&c, path, err, sizeof(err)), RF_ECONFIG);
	assert_contains(err, at_line(path, "2"));
	assert_contains(err, "syntax error");
	cr_assert_null(strstr(err, "decoder.bogus"), "'%s' pairs line 2 with line 4's key", err);
}

Test(config, set_pair_splits_at_the_first_equals)
{
	rf_config c, before;
	rf_config_init(&c);
	char err[256] = "";
	cr_assert_eq(rf_config_set_pair(&c, "output.mean=1,2,3", err, sizeof(err)), 0, "%s", err);
	cr_assert_float_eq(c.output.mean[2], 3.0f, 1e-6);
	cr_assert_eq(rf_config_set_pair(&c, "source.extensions=a=b", err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(c.source.extensions, "a=b");
	before = c;
	cr_assert_eq(rf_config_set_pair(&c, "decoder.threads", err, sizeof(err)), RF_ECONFIG);
	assert_contains(err, "SECTION.KEY=VALUE");
	cr_assert_eq(rf_config_set_pair(&c, "=4", err, sizeof(err)), RF_ECONFIG);
	cr_assert_eq(rf_config_set_pair(&c, "decoder.bogus=4", err, sizeof(err)), RF_ECONFIG);
	assert_contains(err, "decoder.bogus");
	cr_assert_eq(memcmp(&c, &before, sizeof(c)), 0, "failed sets leave cfg alone");
}
