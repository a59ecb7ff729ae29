#include "source.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "ringfeed/ringfeed.h"

#define WALK_DEPTH_MAX 64

/* Directories on the current walk path, to break symlink loops. */
struct walk_stack {
	dev_t dev[WALK_DEPTH_MAX];
	ino_t ino[WALK_DEPTH_MAX];
	int depth;
};

void rf__source_init(rf__source *s, const char *extensions)
{
	memset(s, 0, sizeof(*s));
	if (extensions)
		snprintf(s->extensions, sizeof(s->extensions), "%s", extensions);
}

void rf__source_destroy(rf__source *s)
{
	for (size_t i = 0; i < s->count; i++)
		free(s->paths[i]);
	free(s->paths);
	s->paths = NULL;
	s->count = s->cap = 0;
}

static int push_path(rf__source *s, const char *path)
{
	if (s->count == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 256;
		char **grown = realloc(s->paths, cap * sizeof(*grown));
		if (!grown)
			return RF_ENOMEM;
		s->paths = grown;
		s->cap = cap;
	}
	char *copy = strdup(path);
	if (!copy)
		return RF_ENOMEM;
	s->paths[s->count++] = copy;
	return 0;
}

/* Whether name's extension is in the comma list (case-insensitive). */
static bool extension_allowed(const char *list, const char *name)
{
	if (!list[0])
		return true;
	const char *dot = strrchr(name, '.');
	if (!dot)
		return false;
	size_t elen = strlen(dot + 1);
	for (const char *p = list; *p;) {
		while (*p == ',' || *p == ' ' || *p == '.')
			p++;
		size_t n = strcspn(p, ", ");
		if (n && n == elen && strncasecmp(p, dot + 1, n) == 0)
			return true;
		p += n;
	}
	return false;
}

static int compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int walk(rf__source *s, const char *dir, struct walk_stack *stack);

/* One directory entry: recurse into directories, add everything else. */
static int walk_entry(rf__source *s, const char *path, const char *name, struct walk_stack *stack)
{
	struct stat st;
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		for (int i = 0; i < stack->depth; i++)
			if (stack->dev[i] == st.st_dev && stack->ino[i] == st.st_ino)
				return 0; /* a symlink back to an ancestor: walked already */
		if (stack->depth == WALK_DEPTH_MAX) {
			snprintf(s->error, sizeof(s->error), "%s: directory tree deeper than %d levels", path,
				 WALK_DEPTH_MAX);
			return RF_EIO;
		}
		stack->dev[stack->depth] = st.st_dev;
		stack->ino[stack->depth++] = st.st_ino;
		int rc = walk(s, path, stack);
		stack->depth--;
		return rc;
	}
	/* Files, dangling links, devices, FIFOs: each an item; the loader judges. */
	return extension_allowed(s->extensions, name) ? push_path(s, path) : 0;
}

static int walk(rf__source *s, const char *dir, struct walk_stack *stack)
{
	DIR *d = opendir(dir);
	if (!d) {
		snprintf(s->error, sizeof(s->error), "%s: cannot read directory: %s", dir, strerror(errno));
		return RF_EIO;
	}
	char **names = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	while (rc == 0) {
		errno = 0; /* readdir's NULL is the end, or an error (EIO on a network file system) */
		struct dirent *e = readdir(d);
		if (!e) {
			if (errno) {
				snprintf(s->error, sizeof(s->error), "%s: cannot read directory: %s", dir,
					 strerror(errno));
				rc = RF_EIO;
			}
			break;
		}
		if (e->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			char **grown = realloc(names, cap * sizeof(*grown));
			if (!grown) {
				rc = RF_ENOMEM;
				break;
			}
			names = grown;
		}
		if (!(names[n] = strdup(e->d_name)))
			rc = RF_ENOMEM;
		else
			n++;
	}
	closedir(d);
	if (rc == 0 && n > 1)
		qsort(names, n, sizeof(*names), compare_names);
	size_t dlen = strlen(dir);
	bool slash = dlen > 0 && dir[dlen - 1] == '/';
	for (size_t i = 0; i < n && rc == 0; i++) {
		char *path = malloc(dlen + strlen(names[i]) + 2);
		if (!path) {
			rc = RF_ENOMEM;
			break;
		}
		sprintf(path, slash ? "%s%s" : "%s/%s", dir, names[i]);
		rc = walk_entry(s, path, names[i], stack);
		free(path);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

static int add_list(rf__source *s, const char *list)
{
	FILE *f = fopen(list, "r");
	if (!f) {
		snprintf(s->error, sizeof(s->error), "%s: cannot read list file: %s", list, strerror(errno));
		return RF_EIO;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int rc = 0;
	while (rc == 0 && (len = getline(&line, &cap, f)) >= 0) {
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (len > 0 && line[0] != '#')
			rc = push_path(s, line);
	}
	if (rc == 0 && ferror(f)) {
		snprintf(s->error, sizeof(s->error), "%s: read error", list);
		rc = RF_EIO;
	}
	free(line);
	fclose(f);
	return rc;
}

static int add(rf__source *s, const char *input)
{
	if (input[0] == '@')
		return add_list(s, input + 1);
	struct stat st;
	if (stat(input, &st) == 0 && S_ISDIR(st.st_mode)) {
		struct walk_stack stack = {.dev = {st.st_dev}, .ino = {st.st_ino}, .depth = 1};
		return walk(s, input, &stack);
	}
	return push_path(s, input);
}

int rf__source_add(rf__source *s, const char *input)
{
	if (!input || !input[0])
		return RF_EINVAL;
	size_t before = s->count;
	s->error[0] = '\0';
	int rc = add(s, input);
	/* All or nothing: a retry after a failure must not add the first part twice. */
	while (rc != 0 && s->count > before)
		free(s->paths[--s->count]);
	return rc;
}

int rf__source_add_file(rf__source *s, const char *path)
{
	if (!path || !path[0])
		return RF_EINVAL;
	s->error[0] = '\0';
	return push_path(s, path);
}
