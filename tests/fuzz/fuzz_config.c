/*
 * libFuzzer target for the config parser.
 *
 * The whole input is an INI file for rf_config_load (written to a memfd, read
 * back through /proc/self/fd/N); its first line, split at the first '=', is
 * also a key and value for rf_config_set. Whatever parses must then go
 * through rf_config_validate without trouble.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memfd_create */
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ringfeed/ringfeed.h"

enum { ERR_LEN = 256 };

static int memfd = -1;
static char memfd_path[64];

static void check(int ok, const char *what, int rc, const char *err)
{
	if (ok)
		return;
	fprintf(stderr, "fuzz_config: %s (rc %d %s, err '%.*s')\n", what, rc, rf_err_name(rc), ERR_LEN, err);
	abort();
}

/* No NUL anywhere in err: a message left unterminated is caught by check_message. */
static void poison(char *err)
{
	memset(err, 'X', ERR_LEN);
}

static void check_message(int rc, const char *err)
{
	check(memchr(err, '\0', ERR_LEN) != NULL, "message not NUL-terminated", rc, err);
	check(err[0] != '\0', "empty message on error", rc, err);
}

/* rf_config_validate on a config that the parser accepted: 0 or RF_ECONFIG. */
static void check_validate(const rf_config *cfg)
{
	char err[ERR_LEN];
	int rc;

	poison(err);
	rc = rf_config_validate(cfg, err, sizeof(err));
	check(rc == 0 || rc == RF_ECONFIG, "rf_config_validate: unexpected return code", rc, err);
	if (rc != 0)
		check_message(rc, err);
}

static const char *write_file(const uint8_t *data, size_t size)
{
	if (memfd < 0) {
		memfd = memfd_create("fuzz_config.ini", MFD_CLOEXEC);
		check(memfd >= 0, "memfd_create failed", 0, "");
		snprintf(memfd_path, sizeof(memfd_path), "/proc/self/fd/%d", memfd);
		/* Otherwise every load would fail the same way and the target would fuzz nothing. */
		check(access(memfd_path, R_OK) == 0, "cannot open the memfd through /proc/self/fd", 0, "");
	}
	check(ftruncate(memfd, 0) == 0, "ftruncate failed", 0, "");
	for (size_t done = 0; done < size;) {
		ssize_t n = pwrite(memfd, data + done, size - done, (off_t)done);

		check(n > 0, "pwrite failed", 0, "");
		done += (size_t)n;
	}
	return memfd_path;
}

static void fuzz_load(const uint8_t *data, size_t size)
{
	char err[ERR_LEN];
	rf_config cfg;
	int rc;

	rf_config_init(&cfg);
	poison(err);
	rc = rf_config_load(&cfg, write_file(data, size), err, sizeof(err));
	check(rc == 0 || rc == RF_ECONFIG, "rf_config_load: unexpected return code", rc, err);
	if (rc != 0)
		check_message(rc, err);
	else
		check_validate(&cfg);
}

/* A NUL-terminated copy in a buffer of exactly its size, so over-reads are ASan reports. */
static char *copy_string(const uint8_t *p, size_t n)
{
	char *s = malloc(n + 1);

	check(s != NULL, "out of memory", 0, "");
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

static void fuzz_set(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t line = nl ? (size_t)(nl - data) : size;
	const uint8_t *eq = memchr(data, '=', line);
	size_t klen = eq ? (size_t)(eq - data) : line;
	char *key = copy_string(data, klen);
	char *value = eq ? copy_string(eq + 1, line - klen - 1) : copy_string(data, 0);
	char err[ERR_LEN];
	rf_config cfg, before;
	int rc;

	rf_config_init(&cfg);
	memcpy(&before, &cfg, sizeof(cfg)); /* padding included */
	poison(err);
	rc = rf_config_set(&cfg, key, value, err, sizeof(err));
	check(rc == 0 || rc == RF_ECONFIG, "rf_config_set: unexpected return code", rc, err);
	if (rc != 0) {
		check_message(rc, err);
		check(memcmp(&cfg, &before, sizeof(cfg)) == 0, "rf_config_set changed cfg on error", rc, err);
	} else {
		check_validate(&cfg);
	}
	free(key);
	free(value);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_load(data, size);
	fuzz_set(data, size);
	return 0;
}
