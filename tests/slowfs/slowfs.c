/*
 * slowfs: a read-only passthrough FUSE file system that sleeps in getattr,
 * open and read. Local storage here answers in microseconds; a network file
 * system or an object store behind a FUSE adapter answers in milliseconds,
 * and that latency is what a loader has to hide. slowfs puts it in front of
 * any directory, for tests and for scripts/bench_storage.sh.
 *
 *   slowfs SOURCE MOUNTPOINT [--delay-ms MS] [--getattr-ms MS] [--open-ms MS]
 *          [--read-ms MS] [--cache] [--threads N] [--size-lie BYTES] [FUSE options, e.g. -f]
 *
 * --delay-ms sets all three delays; the others override one each (fractions
 * allowed). Requests are served concurrently by up to --threads threads
 * (default 256). Without --cache the kernel caches nothing (no attribute,
 * entry or page cache; every read goes to slowfs), so every lookup, getattr,
 * open and read pays its delay, as on storage with no client cache.
 * --size-lie adds BYTES to every regular file's size in getattr, so every
 * file seems to shrink between stat and read (reads end early at the real
 * end). Unmount with `fusermount3 -u MOUNTPOINT`.
 *
 * One artefact to know: the first lookup of each name after mounting is
 * served one at a time (the kernel creates the inode), so a first pass over N
 * files takes at least N x getattr delay whatever the concurrency; later
 * passes look names up in parallel. Benchmarks warm the names first
 * (scripts/bench_storage.sh stats every file once after mounting).
 */
#define FUSE_USE_VERSION 31

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

static struct {
	int source; /* directory fd every path is resolved against */
	double getattr_ms, open_ms, read_ms;
	long long size_lie;
	bool cache;
} fs = {.source = -1};

static void pause_ms(double ms)
{
	if (ms <= 0)
		return;
	struct timespec t = {(time_t)(ms / 1000), (long)((ms - (double)(time_t)(ms / 1000) * 1000) * 1e6)};
	while (nanosleep(&t, &t) != 0 && errno == EINTR)
		;
}

/* FUSE paths start with '/'; the source directory fd wants them relative. */
static const char *rel(const char *path)
{
	return path[1] ? path + 1 : ".";
}

static void *slow_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	/*
	 * Reads submitted asynchronously (io_uring, AIO) travel as FUSE
	 * "background" requests, of which the kernel lets max_background
	 * (default 12) be outstanding: far fewer than a loader keeps in flight.
	 * A network file system has no such limit of its own.
	 */
	conn->max_background = 1024;
	conn->congestion_threshold = 768;
	double timeout = fs.cache ? 1.0 : 0.0;
	cfg->entry_timeout = timeout;
	cfg->attr_timeout = timeout;
	cfg->negative_timeout = timeout;
	cfg->kernel_cache = fs.cache;
	cfg->direct_io = !fs.cache;
	return NULL;
}

static int slow_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	pause_ms(fs.getattr_ms);
	int rc = fi ? fstat((int)fi->fh, st) : fstatat(fs.source, rel(path), st, AT_SYMLINK_NOFOLLOW);
	if (rc != 0)
		return -errno;
	if (S_ISREG(st->st_mode))
		st->st_size += fs.size_lie;
	return 0;
}

static int slow_readlink(const char *path, char *buf, size_t size)
{
	ssize_t n = readlinkat(fs.source, rel(path), buf, size - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

static int slow_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t offset,
			struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	(void)offset, (void)fi, (void)flags;
	int fd = openat(fs.source, rel(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		int err = errno;
		close(fd);
		return -err;
	}
	for (struct dirent *e; (e = readdir(d));) {
		struct stat st = {.st_ino = e->d_ino, .st_mode = (mode_t)DTTOIF(e->d_type)};
		if (fill(buf, e->d_name, &st, 0, 0))
			break;
	}
	closedir(d);
	return 0;
}

static int slow_open(const char *path, struct fuse_file_info *fi)
{
	if ((fi->flags & O_ACCMODE) != O_RDONLY)
		return -EROFS;
	pause_ms(fs.open_ms);
	int fd = openat(fs.source, rel(path), O_RDONLY | O_CLOEXEC | (fi->flags & O_NOFOLLOW));
	if (fd < 0)
		return -errno;
	fi->fh = (uint64_t)fd;
	fi->direct_io = !fs.cache;
	fi->keep_cache = fs.cache;
	return 0;
}

static int slow_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)path;
	pause_ms(fs.read_ms);
	ssize_t n = pread((int)fi->fh, buf, size, off);
	return n < 0 ? -errno : (int)n;
}

static int slow_release(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	close((int)fi->fh);
	return 0;
}

static int slow_statfs(const char *path, struct statvfs *st)
{
	(void)path;
	return fstatvfs(fs.source, st) == 0 ? 0 : -errno;
}

static const struct fuse_operations slow_ops = {
	.init = slow_init,
	.getattr = slow_getattr,
	.readlink = slow_readlink,
	.readdir = slow_readdir,
	.open = slow_open,
	.read = slow_read,
	.release = slow_release,
	.statfs = slow_statfs,
};

static int usage(void)
{
	fprintf(stderr, "usage: slowfs SOURCE MOUNTPOINT [--delay-ms MS] [--getattr-ms MS] [--open-ms MS] "
			"[--read-ms MS] [--cache] [--threads N] [--size-lie BYTES] [FUSE options]\n");
	return 2;
}

static bool parse_ms(const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = s ? strtod(s, &end) : -1;
	if (!s || errno || end == s || *end || !(v >= 0 && v <= 60000))
		return false;
	*out = v;
	return true;
}

int main(int argc, char **argv)
{
	/* FUSE gets: program, MOUNTPOINT, -o options, then whatever we do not know. */
	char **fargv = calloc((size_t)argc + 4, sizeof(char *));
	int fargc = 0, threads = 256;
	const char *source = NULL;
	static char threads_opt[64];
	if (!fargv)
		return 1;
	fargv[fargc++] = argv[0];
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		double ms;
		if (!strcmp(a, "--delay-ms") && parse_ms(argv[i + 1], &ms)) {
			fs.getattr_ms = fs.open_ms = fs.read_ms = ms;
			i++;
		} else if (!strcmp(a, "--getattr-ms") && parse_ms(argv[i + 1], &fs.getattr_ms)) {
			i++;
		} else if (!strcmp(a, "--open-ms") && parse_ms(argv[i + 1], &fs.open_ms)) {
			i++;
		} else if (!strcmp(a, "--read-ms") && parse_ms(argv[i + 1], &fs.read_ms)) {
			i++;
		} else if (!strcmp(a, "--threads") && argv[i + 1] && (threads = atoi(argv[i + 1])) > 0) {
			i++;
		} else if (!strcmp(a, "--size-lie") && argv[i + 1] &&
			   (fs.size_lie = atoll(argv[i + 1])) > 0) {
			i++;
		} else if (!strcmp(a, "--cache")) {
			fs.cache = true;
		} else if (!strncmp(a, "--", 2)) {
			free(fargv);
			return usage();
		} else if (!source && a[0] != '-') {
			source = a;
		} else {
			fargv[fargc++] = argv[i];
		}
	}
	if (!source || fargc < 2) {
		free(fargv);
		return usage();
	}
	fs.source = open(source, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fs.source < 0) {
		fprintf(stderr, "slowfs: %s: %s\n", source, strerror(errno));
		free(fargv);
		return 1;
	}
	snprintf(threads_opt, sizeof(threads_opt),
		 "max_threads=%d,max_idle_threads=%d,ro,default_permissions", threads, threads);
	fargv[fargc++] = "-o";
	fargv[fargc++] = threads_opt;
	int rc = fuse_main(fargc, fargv, &slow_ops, NULL);
	close(fs.source);
	free(fargv);
	return rc;
}
