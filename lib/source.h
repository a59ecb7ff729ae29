/*
 * The list of inputs: every file becomes exactly one item, numbered in the
 * order it was added. Paths are owned here and live as long as the source.
 */
#ifndef RF_LIB_SOURCE_H
#define RF_LIB_SOURCE_H

#include <stddef.h>

typedef struct rf__source {
	char **paths;
	size_t count, cap;
	char extensions[128]; /* comma list for directory walks; "" = all */
	char error[512];
} rf__source;

void rf__source_init(rf__source *s, const char *extensions);
void rf__source_destroy(rf__source *s);

/*
 * Adds a file, a directory (recursive, sorted by name, hidden entries and
 * symlink loops skipped) or "@LIST" (one path per line; blank lines and lines
 * starting with '#' skipped). A path that does not exist is added as is: it
 * becomes an item that fails with a reason. RF_EIO with s->error set when a
 * list file or a directory cannot be read, RF_ENOMEM; then nothing of input
 * is added.
 */
int rf__source_add(rf__source *s, const char *input);
/* Adds path as one item, as it is: not walked, not read as a list, not filtered. */
int rf__source_add_file(rf__source *s, const char *path);

#endif
