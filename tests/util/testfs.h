/* Scratch files for tests: a private temporary directory per test. */
#ifndef RF_TESTFS_H
#define RF_TESTFS_H

#include <stddef.h>
#include <stdint.h>

/* Creates a fresh directory under $TMPDIR (or /tmp); malloc'd path. */
char *tfs_mkdtemp(void);
/* dir + "/" + name, malloc'd. */
char *tfs_path(const char *dir, const char *name);
/* Writes len bytes to dir/name (creating subdirectories); returns 0 or -1. */
int tfs_write(const char *dir, const char *name, const void *data, size_t len);
/* Whole file, malloc'd; NULL on error. */
uint8_t *tfs_read(const char *path, size_t *len);
/* rm -rf dir (best effort). */
void tfs_rmtree(const char *dir);

#endif
