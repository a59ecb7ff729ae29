/*
 * Storage with latency: both loader backends over slowfs (tests/slowfs), a
 * FUSE passthrough answering lookup, getattr, open and read late. Skipped,
 * with the reason, where FUSE cannot be used.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ringfeed/ringfeed.h"
#include "testfs.h"
#include "testimg.h"

enum { FILES = 12, SIDE = 8 };
#define DELAY_MS 20.0
#define FUSERMOUNT "/usr/bin/fusermount3"

struct mount {
	char *src, *mnt;
	pid_t pid;
};

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

/* NULL if slowfs can run here, else why not. */
static const char *fuse_missing(void)
{
	if (!RF_SLOWFS_PATH[0])
		return "slowfs was not built: fuse3 not found (Debian: libfuse3-dev)";
	if (access("/dev/fuse", R_OK | W_OK) != 0)
		return "/dev/fuse is not usable here";
	if (access(FUSERMOUNT, X_OK) != 0)
		return FUSERMOUNT " is missing (Debian: fuse3)";
	return NULL;
}

static dev_t device_of(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? st.st_dev : 0;
}

/*
 * files PNGs whose pixels are all their index (mod 256), served by slowfs at
 * m->mnt with the options in args (NULL-terminated).
 */
static void mount_slowfs_with(struct mount *m, int files, const char *const *args)
{
	const char *missing = fuse_missing();
	if (missing)
		cr_skip_test("%s", missing);
	m->src = tfs_mkdtemp();
	m->mnt = tfs_mkdtemp();
	char name[32];
	uint8_t px[SIDE * SIDE * 3];
	for (int i = 0; i < files; i++) {
		snprintf(name, sizeof(name), "f-%04d.png", i);
		memset(px, i, sizeof(px));
		char *path = tfs_path(m->src, name);
		cr_assert_eq(timg_write(path, "png", SIDE, SIDE, 3, px), 0);
		free(path);
	}
	dev_t before = device_of(m->mnt);
	const char *argv[32] = {"slowfs", m->src, m->mnt, "-f"};
	int argc = 4;
	for (int i = 0; args[i] && argc < 31; i++)
		argv[argc++] = args[i];
	fflush(NULL);
	m->pid = fork();
	cr_assert_geq(m->pid, 0);
	if (m->pid == 0) {
		execv(RF_SLOWFS_PATH, (char *const *)argv);
		_exit(127);
	}
	/* Mounted once the mount point's device changes. */
	for (int i = 0; i < 500 && device_of(m->mnt) == before; i++) {
		int status;
		cr_assert_eq(waitpid(m->pid, &status, WNOHANG), 0,
			     "slowfs exited before mounting (status %d)", status);
		usleep(10000);
	}
	cr_assert_neq(device_of(m->mnt), before, "slowfs did not mount %s within 5 s", m->mnt);
}

/* FILES PNGs with delay_ms per operation, and sizes size_lie bytes larger than the files. */
static void mount_slowfs(struct mount *m, double delay_ms, long size_lie)
{
	char delay[32], lie[32];
	snprintf(delay, sizeof(delay), "%g", delay_ms);
	snprintf(lie, sizeof(lie), "%ld", size_lie);
	const char *args[] = {"--delay-ms", delay, size_lie ? "--size-lie" : NULL, lie, NULL};
	mount_slowfs_with(m, FILES, args);
}

static void unmount_slowfs(struct mount *m)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		execl(FUSERMOUNT, "fusermount3", "-u", m->mnt, (char *)NULL);
		_exit(127);
	}
	int status;
	waitpid(pid, &status, 0);
	/* slowfs leaves its loop once unmounted; make sure it is gone either way. */
	for (int i = 0; i < 200 && waitpid(m->pid, &status, WNOHANG) == 0; i++)
		usleep(10000);
	if (waitpid(m->pid, &status, WNOHANG) == 0) {
		kill(m->pid, SIGKILL);
		waitpid(m->pid, &status, 0);
	}
	tfs_rmtree(m->src);
	rmdir(m->mnt);
	free(m->src);
	free(m->mnt);
}

/*
 * One run over the mount; checks every file came out as its own pixels.
 * Returns the seconds it took; *bytes_read (may be NULL) gets the stats' figure.
 */
static double run_over_counting(const struct mount *m, rf_backend backend, int loader_threads, int io_depth,
				uint64_t *bytes_read)
{
	rf_config cfg;
	rf_config_init(&cfg);
	cfg.output.width = cfg.output.height = SIDE;
	cfg.output.fit = RF_FIT_STRETCH;
	cfg.loader.backend = backend;
	cfg.loader.threads = loader_threads;
	cfg.loader.io_depth = io_depth;
	cfg.batch.size = 4;
	rf_pipeline *p;
	cr_assert_eq(rf_pipeline_create(&p, &cfg), 0);
	cr_assert_eq(rf_pipeline_add(p, m->mnt), 0, "%s", rf_pipeline_error(p));
	cr_assert_eq(rf_pipeline_item_count(p), FILES);
	double t0 = now_s();
	cr_assert_eq(rf_pipeline_start(p), 0, "%s", rf_pipeline_error(p));
	int seen[FILES] = {0}, rc;
	rf_batch *b;
	while ((rc = rf_pipeline_next(p, &b)) == 0) {
		for (size_t e = 0; e < rf_batch_error_count(b); e++)
			cr_assert_fail("%s: %s", rf_batch_error(b, e)->path, rf_batch_error(b, e)->reason);
		for (size_t i = 0; i < rf_batch_count(b); i++) {
			uint64_t index = rf_batch_index(b, i);
			const uint8_t *px = (const uint8_t *)rf_batch_data(b) + i * rf_batch_slot_bytes(b);
			cr_assert_lt(index, FILES);
			cr_assert_eq(px[0], index, "slot holds file %u's pixels, not file %llu's", px[0],
				     (unsigned long long)index);
			seen[index]++;
		}
		rf_batch_release(b);
	}
	double took = now_s() - t0;
	cr_assert_eq(rc, RF_EOF, "%s", rf_pipeline_error(p));
	for (int i = 0; i < FILES; i++)
		cr_assert_eq(seen[i], 1, "file %d delivered %d times", i, seen[i]);
	rf_stats s;
	rf_pipeline_stats(p, &s);
	if (bytes_read)
		*bytes_read = s.bytes_read;
	rf_pipeline_close(p);
	return took;
}

static double run_over(const struct mount *m, rf_backend backend, int loader_threads, int io_depth)
{
	return run_over_counting(m, backend, loader_threads, io_depth, NULL);
}

/*
 * Every file costs at least a lookup, an open, a statx and a read, each
 * DELAY_MS: one at a time that is over 3 x DELAY_MS per file (a bound that a
 * slow machine only makes safer). With every file in flight at once the
 * delays overlap, so the run takes a fraction of that.
 */
Test(storage, io_uring_overlaps_opens_and_reads_on_slow_storage, .timeout = 120)
{
	struct mount m;
	mount_slowfs(&m, DELAY_MS, 0);
	double serial = run_over(&m, RF_BACKEND_IO_URING, 1, 1);
	double overlapped = run_over(&m, RF_BACKEND_IO_URING, 1, FILES);
	unmount_slowfs(&m);
	cr_assert_geq(serial, FILES * 3 * DELAY_MS / 1000, "io_depth 1 took %.3f s: were the delays applied?",
		      serial);
	fprintf(stderr, "slowfs at %g ms: io_depth 1 took %.3f s, io_depth %d %.3f s\n", DELAY_MS, serial,
		FILES, overlapped);
	cr_assert_lt(overlapped, serial / 2, "io_depth %d took %.3f s, io_depth 1 %.3f s", FILES, overlapped,
		     serial);
}

Test(storage, pread_threads_read_slow_storage_correctly, .timeout = 120)
{
	struct mount m;
	mount_slowfs(&m, DELAY_MS, 0);
	double one = run_over(&m, RF_BACKEND_PREAD, 1, 1);
	run_over(&m, RF_BACKEND_PREAD, 4, 1);
	unmount_slowfs(&m);
	cr_assert_geq(one, FILES * 3 * DELAY_MS / 1000, "one pread thread took %.3f s", one);
}

/*
 * Every file reports 1000 bytes more than it has, as if it shrank between
 * stat and read: the loaders stop at the real end (no hang, no bytes made
 * up) and the decoders judge what is there, here whole PNGs.
 */
Test(storage, files_shrinking_after_stat_are_read_to_their_real_end, .timeout = 120)
{
	struct mount m;
	mount_slowfs(&m, 0, 1000);
	uint64_t real = 0;
	for (int i = 0; i < FILES; i++) {
		char name[32];
		snprintf(name, sizeof(name), "f-%04d.png", i);
		char *path = tfs_path(m.src, name), *seen = tfs_path(m.mnt, name);
		struct stat st, lie;
		cr_assert_eq(stat(path, &st), 0);
		cr_assert_eq(stat(seen, &lie), 0);
		cr_assert_eq(lie.st_size, st.st_size + 1000, "slowfs should report 1000 bytes more");
		real += (uint64_t)st.st_size;
		free(path);
		free(seen);
	}
	uint64_t uring = 0, pread_bytes = 0;
	run_over_counting(&m, RF_BACKEND_IO_URING, 1, FILES, &uring);
	run_over_counting(&m, RF_BACKEND_PREAD, 2, 1, &pread_bytes);
	unmount_slowfs(&m);
	cr_assert_eq(uring, real, "io_uring read %llu bytes, the files hold %llu", (unsigned long long)uring,
		     (unsigned long long)real);
	cr_assert_eq(pread_bytes, real, "pread read %llu bytes, the files hold %llu",
		     (unsigned long long)pread_bytes, (unsigned long long)real);
}

/*
 * Latency-bound: reads take 20 ms and the tiny PNGs decode in microseconds,
 * so with io_depth = auto (on FUSE starting at 64 files in flight) the decoders
 * starve while every allowed read is in flight: the autotuner must deepen the
 * loader, and not add decoder threads.
 */
Test(storage, autotuner_deepens_io_depth_when_storage_is_slow, .timeout = 120)
{
	enum { MANY = 2000 };
	struct mount m;
	const char *args[] = {"--delay-ms", "0", "--read-ms", "20", NULL};
	mount_slowfs_with(&m, MANY, args);
	rf_config cfg;
	rf_config_init(&cfg);
	cfg.output.width = cfg.output.height = SIDE;
	cfg.loader.backend = RF_BACKEND_IO_URING;
	cfg.batch.size = 8;
	rf_pipeline *p;
	cr_assert_eq(rf_pipeline_create(&p, &cfg), 0);
	cr_assert_eq(rf_pipeline_add(p, m.mnt), 0, "%s", rf_pipeline_error(p));
	cr_assert_eq(rf_pipeline_start(p), 0, "%s", rf_pipeline_error(p));
	rf_stats s;
	rf_pipeline_stats(p, &s);
	int start_depth = s.tuned.io_depth, start_decoders = s.tuned.decoder_threads;
	size_t images = 0;
	rf_batch *b;
	int rc;
	while ((rc = rf_pipeline_next(p, &b)) == 0) {
		images += rf_batch_count(b);
		rf_batch_release(b);
	}
	rf_pipeline_stats(p, &s);
	rf_pipeline_close(p);
	unmount_slowfs(&m);
	cr_assert_eq(rc, RF_EOF);
	cr_assert_eq(images, MANY);
	fprintf(stderr, "autotuner over 20 ms reads: io_depth %d -> %d, decoders %d -> %d, %llu changes, %.0f images/s\n",
		start_depth, s.tuned.io_depth, start_decoders, s.tuned.decoder_threads,
		(unsigned long long)s.tuned.changes, s.items_per_second);
	cr_assert(s.tuned.adaptive);
	cr_assert_gt(s.tuned.io_depth, start_depth, "io_depth stayed at %d", s.tuned.io_depth);
	cr_assert_leq(s.tuned.decoder_threads, start_decoders);
}

/* backend = auto over m: the backend's name and the io_depth the tuner ended at. */
static char *backend_over(const struct mount *m, int io_depth, int *depth_at_end)
{
	rf_config cfg;
	rf_config_init(&cfg);
	cfg.output.width = cfg.output.height = SIDE;
	cfg.loader.io_depth = io_depth;
	rf_pipeline *p;
	cr_assert_eq(rf_pipeline_create(&p, &cfg), 0);
	cr_assert_eq(rf_pipeline_add(p, m->mnt), 0, "%s", rf_pipeline_error(p));
	cr_assert_eq(rf_pipeline_start(p), 0, "%s", rf_pipeline_error(p));
	rf_batch *b;
	size_t images = 0;
	while (rf_pipeline_next(p, &b) == 0) {
		images += rf_batch_count(b);
		rf_batch_release(b);
	}
	rf_stats s;
	rf_pipeline_stats(p, &s);
	char *name = strdup(s.loader_backend);
	*depth_at_end = s.tuned.io_depth;
	rf_pipeline_close(p);
	cr_assert_eq(images, FILES);
	return name;
}

/*
 * On FUSE, backend = auto takes io_uring and io_depth = auto starts at and
 * keeps the blocking file systems' depth (tune.h); a set io_depth is kept.
 */
Test(storage, auto_backend_on_fuse_takes_io_uring_with_a_deep_floor, .timeout = 120)
{
	struct mount m;
	mount_slowfs(&m, 1, 0);
	int tuned = 0, fixed = 0;
	char *deep = backend_over(&m, 0, &tuned), *set = backend_over(&m, 8, &fixed);
	unmount_slowfs(&m);
	cr_assert_eq(strncmp(deep, "io_uring (FUSE", 14), 0, "loader backend: %s", deep);
	cr_assert_geq(tuned, 64, "io_depth ended at %d", tuned);
	cr_assert_str_eq(set, "io_uring", "with io_depth set: %s", set);
	cr_assert_eq(fixed, 8);
	free(deep);
	free(set);
}
