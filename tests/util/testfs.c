#include "testfs.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *tfs_mkdtemp(void)
{
	const char *base = getenv("TMPDIR");
	char *tmpl = NULL;
	if (!base || !*base)
		base = "/tmp";
	if (asprintf(&tmpl, "%s/rf-test-XXXXXX", base) < 0)
		return NULL;
	if (!mkdtemp(tmpl)) {
		free(tmpl);
		return NULL;
	}
	return tmpl;
}

char *tfs_path(const char *dir, const char *name)
{
	char *p = NULL;
	if (asprintf(&p, "%s/%s", dir, name) < 0)
		return NULL;
	return p;
}

static int make_parents(char *path)
{
	for (size_t i = 1; path[i]; i++) {
		if (path[i] != '/')
			continue;
		path[i] = '\0';
		int rc = mkdir(path, 0755);
		path[i] = '/';
		if (rc != 0 && errno != EEXIST)
			return -1;
	}
	return 0;
}

int tfs_write(const char *dir, const char *name, const void *data, size_t len)
{
	char *path = tfs_path(dir, name);
	if (!path || make_parents(path) != 0) {
		free(path);
		return -1;
	}
	FILE *f = fopen(path, "wb");
	free(path);
	if (!f)
		return -1;
	size_t put = len ? fwrite(data, 1, len, f) : 0;
	return (fclose(f) == 0 && put == len) ? 0 : -1;
}

uint8_t *tfs_read(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 1 << 16, n = 0;
	uint8_t *buf = malloc(cap);
	while (buf) {
		n += fread(buf + n, 1, cap - n, f);
		if (n < cap)
			break;
		uint8_t *grown = realloc(buf, cap *= 2);
		if (!grown)
			free(buf);
		buf = grown;
	}
	fclose(f);
	if (buf)
		*len = n;
	return buf;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	remove(path);
	return 0;
}

void tfs_rmtree(const char *dir)
{
	if (dir)
		nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}
