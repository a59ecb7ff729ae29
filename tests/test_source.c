/* The input list: files, sorted recursive directory walks, filters, symlink loops, @list files. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ringfeed/ringfeed.h"
#include "source.h"
#include "testfs.h"

static char *tmp;

static void setup(void)
{
	tmp = tfs_mkdtemp();
	cr_assert_not_null(tmp);
}

static void teardown(void)
{
	tfs_rmtree(tmp);
	free(tmp);
	tmp = NULL;
}

TestSuite(source, .init = setup, .fini = teardown);

/* An empty file at tmp/name (parents created). */
static void touch(const char *name)
{
	cr_assert_eq(tfs_write(tmp, name, "", 0), 0, "cannot create %s", name);
}

static void link_at(const char *target, const char *name)
{
	char *path = tfs_path(tmp, name);
	cr_assert_eq(symlink(target, path), 0, "symlink %s", path);
	free(path);
}

/* Checks s holds exactly tmp/want[0..n-1], in that order. */
static void expect_paths(const rf__source *s, const char *const *want, size_t n)
{
	cr_assert_eq(s->count, n, "expected %zu paths, got %zu", n, s->count);
	for (size_t i = 0; i < n; i++) {
		char *p = tfs_path(tmp, want[i]);
		cr_assert_str_eq(s->paths[i], p, "path %zu", i);
		free(p);
	}
}

Test(source, single_file)
{
	touch("one.jpg");
	char *path = tfs_path(tmp, "one.jpg");
	rf__source s;
	rf__source_init(&s, NULL);
	cr_assert_eq(rf__source_add(&s, path), 0);
	cr_assert_eq(s.count, 1);
	cr_assert_str_eq(s.paths[0], path);
	cr_assert_neq(s.paths[0], path, "the source keeps its own copy");
	rf__source_destroy(&s);
	free(path);
}

Test(source, missing_path_is_still_an_item)
{
	char *path = tfs_path(tmp, "does/not/exist.jpg");
	rf__source s;
	rf__source_init(&s, NULL);
	cr_assert_eq(rf__source_add(&s, path), 0);
	cr_assert_eq(s.count, 1);
	cr_assert_str_eq(s.paths[0], path);
	rf__source_destroy(&s);
	free(path);
}

Test(source, walk_is_recursive_and_sorted_per_level)
{
	touch("b.jpg");
	touch("a/2.png");
	touch("a/10.png");
	touch("a.jpg"); /* "a" < "a.jpg": directory a is walked before file a.jpg */
	touch("c/x.bmp");
	touch("c/d/deep.gif");
	touch("c/B.png"); /* byte order: upper case before lower case */
	touch("C.jpg");
	rf__source s;
	rf__source_init(&s, NULL);
	cr_assert_eq(rf__source_add(&s, tmp), 0);
	const char *want[] = {"C.jpg", "a/10.png", "a/2.png",      "a.jpg",
			      "b.jpg", "c/B.png",  "c/d/deep.gif", "c/x.bmp"};
	expect_paths(&s, want, sizeof(want) / sizeof(want[0]));
	rf__source_destroy(&s);
}

Test(source, hidden_entries_skipped)
{
	touch(".hidden.jpg");
	touch(".git/objects/x.jpg");
	touch("a/.DS_Store");
	touch("a/visible.jpg");
	touch("z.jpg");
	rf__source s;
	rf__source_init(&s, NULL);
	cr_assert_eq(rf__source_add(&s, tmp), 0);
	const char *want[] = {"a/visible.jpg", "z.jpg"};
	expect_paths(&s, want, 2);
	rf__source_destroy(&s);
}

Test(source, extension_filter_is_case_insensitive)
{
	touch("a.jpg");
	touch("b.PNG");
	touch("c.JpG");
	touch("d.bmp");
	touch("e.jpeg");
	touch("f.png.txt");
	touch("jpg"); /* no extension at all */
	touch("sub/g.png");
	touch("sub/h.gif");
	rf__source s;
	rf__source_init(&s, "jpg,png");
	cr_assert_eq(rf__source_add(&s, tmp), 0);
	const char *want[] = {"a.jpg", "b.PNG", "c.JpG", "sub/g.png"};
	expect_paths(&s, want, 4);
	rf__source_destroy(&s);
}

Test(source, extension_filter_applies_to_walks_only)
{
	touch("d.bmp");
	char *path = tfs_path(tmp, "d.bmp");
	rf__source s;
	rf__source_init(&s, "jpg,png");
	cr_assert_eq(rf__source_add(&s, path), 0, "a file named directly is always an item");
	cr_assert_eq(s.count, 1);
	cr_assert_str_eq(s.paths[0], path);
	rf__source_destroy(&s);
	free(path);
}

Test(source, symlink_loop_walked_once, .timeout = 30)
{
	touch("a/f.jpg");
	touch("top.jpg");
	link_at("..", "a/up");   /* back to the walk root */
	link_at(".", "a/self");  /* to its own directory */
	rf__source s;
	rf__source_init(&s, NULL);
	cr_assert_eq(rf__source_add(&s, tmp), 0);
	const char *want[] = {"a/f.jpg", "top.jpg"};
	expect_paths(&s, want, 2);
	rf__source_destroy(&s);
}

Test(source, list_file_skips_blanks_and_comments_and_strips_crlf)
{
	const char list[] = "first.jpg\r\n"
			    "\r\n"
			    "# a comment\r\n"
			    "\n"
			    "dir/second.png\n"
			    "#another.jpg\n"
			    "third.bmp"; /* no final newline */
	cr_assert_eq(tfs_write(tmp, "inputs.txt", list, sizeof(list) - 1), 0);
	char *arg = NULL;
	cr_assert_geq(asprintf(&arg, "@%s/inputs.txt", tmp), 0);
	rf__source s;
	rf__source_init(&s, NULL);
	cr_assert_eq(rf__source_add(&s, arg), 0);
	cr_assert_eq(s.count, 3);
	cr_assert_str_eq(s.paths[0], "first.jpg");
	cr_assert_str_eq(s.paths[1], "dir/second.png");
	cr_assert_str_eq(s.paths[2], "third.bmp");
	rf__source_destroy(&s);
	free(arg);
}

Test(source, missing_list_file_is_an_error)
{
	char *path = tfs_path(tmp, "no-such-list.txt");
	char *arg = NULL;
	cr_assert_geq(asprintf(&arg, "@%s", path), 0);
	rf__source s;
	rf__source_init(&s, NULL);
	cr_assert_eq(rf__source_add(&s, arg), RF_EIO);
	cr_assert_not_null(strstr(s.error, path), "error '%s' names the list file", s.error);
	cr_assert_eq(s.count, 0);
	rf__source_destroy(&s);
	free(arg);
	free(path);
}

Test(source, each_file_exactly_once_in_a_large_tree)
{
	/* More entries than the initial allocations (64 names per dir, 256 paths). */
	enum { DIRS = 5, FILES = 70 };
	char name[64];
	for (int d = 0; d < DIRS; d++)
		for (int f = 0; f < FILES; f++) {
			snprintf(name, sizeof(name), "d%d/f%03d.jpg", d, f);
			touch(name);
		}
	rf__source s;
	rf__source_init(&s, NULL);
	cr_assert_eq(rf__source_add(&s, tmp), 0);
	cr_assert_eq(s.count, DIRS * FILES);
	/* Sorted walk: the i-th path is known exactly, so no file is missing or repeated. */
	for (int d = 0; d < DIRS; d++)
		for (int f = 0; f < FILES; f++) {
			snprintf(name, sizeof(name), "d%d/f%03d.jpg", d, f);
			char *want = tfs_path(tmp, name);
			cr_assert_str_eq(s.paths[d * FILES + f], want);
			free(want);
		}
	rf__source_destroy(&s);
}

Test(source, inputs_keep_the_order_added)
{
	touch("w/b.jpg");
	touch("w/a.jpg");
	touch("single.png");
	cr_assert_eq(tfs_write(tmp, "l.txt", "x1\nx2\n", 6), 0);
	char *dir = tfs_path(tmp, "w");
	char *file = tfs_path(tmp, "single.png");
	char *list = NULL;
	cr_assert_geq(asprintf(&list, "@%s/l.txt", tmp), 0);
	rf__source s;
	rf__source_init(&s, NULL);
	cr_assert_eq(rf__source_add(&s, file), 0);
	cr_assert_eq(rf__source_add(&s, dir), 0);
	cr_assert_eq(rf__source_add(&s, list), 0);
	const char *want[] = {"single.png", "w/a.jpg", "w/b.jpg"};
	cr_assert_eq(s.count, 5);
	for (size_t i = 0; i < 3; i++) {
		char *p = tfs_path(tmp, want[i]);
		cr_assert_str_eq(s.paths[i], p);
		free(p);
	}
	cr_assert_str_eq(s.paths[3], "x1");
	cr_assert_str_eq(s.paths[4], "x2");
	rf__source_destroy(&s);
	free(dir);
	free(file);
	free(list);
}

Test(source, trailing_slash_gives_no_double_slash)
{
	touch("a.jpg");
	touch("sub/b.jpg");
	char *arg = NULL;
	cr_assert_geq(asprintf(&arg, "%s/", tmp), 0);
	rf__source s;
	rf__source_init(&s, NULL);
	cr_assert_eq(rf__source_add(&s, arg), 0);
	const char *want[] = {"a.jpg", "sub/b.jpg"};
	expect_paths(&s, want, 2);
	/* Past tmp itself (a TMPDIR ending in '/' is not ours to judge). */
	for (size_t i = 0; i < s.count; i++)
		cr_assert_null(strstr(s.paths[i] + strlen(tmp), "//"), "double slash in '%s'", s.paths[i]);
	rf__source_destroy(&s);
	free(arg);
}

Test(source, too_deep_a_tree_is_an_error_not_a_silent_skip)
{
	char name[4096] = "";
	for (int i = 0; i < 70; i++)
		strcat(name, "d/");
	strcat(name, "deep.jpg");
	touch(name);
	touch("a.jpg"); /* walked before d/ */
	touch("shallow.jpg");
	rf__source s;
	rf__source_init(&s, "");
	cr_assert_eq(rf__source_add(&s, tmp), RF_EIO);
	cr_assert_not_null(strstr(s.error, "deeper than"), "%s", s.error);
	/* All or nothing: a.jpg, listed before the walk failed, is not kept (a retry would add it twice). */
	cr_assert_eq(s.count, 0);
	cr_assert_eq(rf__source_add(&s, tmp), RF_EIO);
	cr_assert_eq(s.count, 0);
	/* And a later failure does not report the earlier one's message. */
	cr_assert_eq(rf__source_add(&s, "@/nonexistent/list"), RF_EIO);
	cr_assert_not_null(strstr(s.error, "cannot read list file"), "%s", s.error);
	rf__source_destroy(&s);
}
