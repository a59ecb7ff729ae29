/* The ringfeed command: exit codes, JSON keys, error file, interruption. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testfs.h"

/* Runs the CLI with args through sh; returns the exit status; stderr into *err (malloc'd). */
static int run_cli(const char *args, char **err)
{
	char *errfile = tfs_path("/tmp", "rf-cli-stderr-XXXXXX");
	int fd = mkstemp(errfile);
	cr_assert_geq(fd, 0);
	close(fd);
	char *cmd = NULL;
	cr_assert_gt(asprintf(&cmd, "'%s' %s >/dev/null 2>'%s'", RF_CLI_PATH, args, errfile), 0);
	int status = system(cmd);
	free(cmd);
	size_t len = 0;
	uint8_t *text = tfs_read(errfile, &len);
	unlink(errfile);
	free(errfile);
	if (err) {
		*err = calloc(1, len + 1);
		memcpy(*err, text, len);
	}
	free(text);
	cr_assert(WIFEXITED(status), "the CLI did not exit normally");
	return WEXITSTATUS(status);
}

static char *make_samples(int n)
{
	char *dir = tfs_mkdtemp();
	char *cmd = NULL;
	cr_assert_gt(asprintf(&cmd, "'%s' '%s/img' %d 7", RF_SAMPLES_PATH, dir, n), 0);
	cr_assert_eq(system(cmd), 0);
	free(cmd);
	return dir;
}

Test(cli, usage_errors_exit_2, .timeout = 60)
{
	char *err = NULL;
	cr_assert_eq(run_cli("", NULL), 2);
	cr_assert_eq(run_cli("run", &err), 2);
	cr_assert_not_null(strstr(err, "no input paths"), "%s", err);
	free(err);
	cr_assert_eq(run_cli("run --consumer bogus /tmp", &err), 2);
	cr_assert_not_null(strstr(err, "unknown consumer"), "%s", err);
	free(err);
	cr_assert_eq(run_cli("run --frobnicate /tmp", NULL), 2);
	cr_assert_eq(run_cli("run /tmp --frobnicate", &err), 2); /* last: unknown, not "needs a value" */
	cr_assert_not_null(strstr(err, "unknown option --frobnicate"), "%s", err);
	free(err);
	cr_assert_eq(run_cli("run /tmp --set", &err), 2);
	cr_assert_not_null(strstr(err, "--set needs a value"), "%s", err);
	free(err);
	/* An unordered run has no resume point: said before the run, not after it */
	cr_assert_eq(run_cli("run --set batch.ordered=false --save-state /tmp/rf-never-written /tmp/nonexistent-input",
			     &err),
		     2);
	cr_assert_not_null(strstr(err, "--save-state needs batch.ordered"), "%s", err);
	free(err);
	cr_assert_eq(run_cli("run --set decoder.bogus=1 /tmp", &err), 2);
	cr_assert_not_null(strstr(err, "decoder.bogus"), "%s", err);
	free(err);
	cr_assert_eq(run_cli("run --set decoder.threads=0 /tmp", &err), 2);
	cr_assert_not_null(strstr(err, "decoder.threads"), "%s", err);
	free(err);
	cr_assert_eq(run_cli("run @/nonexistent/list.txt", &err), 2);
	cr_assert_not_null(strstr(err, "/nonexistent/list.txt"), "%s", err);
	free(err);
	/* NaN would pass "not below 0" and then sleep for ever, deaf to Ctrl-C */
	static const char *const costs[] = {"nan", "inf", "1e300", "-1"};
	for (size_t i = 0; i < sizeof(costs) / sizeof(costs[0]); i++) {
		char *args = NULL;
		cr_assert_gt(asprintf(&args, "run --consumer sleep --cost-ms %s /tmp/nonexistent-input", costs[i]), 0);
		cr_assert_eq(run_cli(args, &err), 2, "--cost-ms %s", costs[i]);
		cr_assert_not_null(strstr(err, "--cost-ms"), "%s", err);
		free(err);
		free(args);
	}
	/* A config error only start can see (no launcher rank for shard_index = auto) is a config error too. */
	unsetenv("OMPI_COMM_WORLD_RANK");
	unsetenv("PMI_RANK");
	unsetenv("RANK");
	cr_assert_eq(run_cli("run --set source.shard_index=auto /tmp/nonexistent-input", &err), 2);
	cr_assert_not_null(strstr(err, "shard_index"), "%s", err);
	free(err);
	cr_assert_eq(run_cli("--version", NULL), 0);
}

Test(cli, bad_config_file_names_file_line_and_key)
{
	char *dir = tfs_mkdtemp();
	const char ini[] = "[loader]\nthreads = 1\n\n[output]\nwidth = 224\nheigth = 10\n";
	cr_assert_eq(tfs_write(dir, "bad.ini", ini, strlen(ini)), 0);
	char *args = NULL, *err = NULL;
	cr_assert_gt(asprintf(&args, "run --config '%s/bad.ini' '%s'", dir, dir), 0);
	cr_assert_eq(run_cli(args, &err), 2);
	cr_assert_not_null(strstr(err, "bad.ini:6"), "%s", err);
	cr_assert_not_null(strstr(err, "output.heigth"), "%s", err);
	free(err);
	free(args);
	tfs_rmtree(dir);
	free(dir);
}

static cJSON *read_json(const char *path)
{
	size_t len = 0;
	uint8_t *text = tfs_read(path, &len);
	cr_assert_not_null(text, "no JSON written to %s", path);
	cJSON *root = cJSON_ParseWithLength((const char *)text, len);
	free(text);
	cr_assert_not_null(root, "invalid JSON in %s", path);
	return root;
}

static double number(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	cr_assert(cJSON_IsNumber(v), "key %s missing or not a number", key);
	return v->valuedouble;
}

Test(cli, run_writes_json_and_error_records, .timeout = 120)
{
	char *dir = make_samples(40);
	cr_assert_eq(tfs_write(dir, "img/zz-empty.jpg", "", 0), 0);
	cr_assert_eq(tfs_write(dir, "img/zz-text.png", "hello, not a png", 16), 0);
	char *args = NULL, *err = NULL;
	cr_assert_gt(asprintf(&args, "run --set batch.size=8 --stats-json '%s/s.json' --errors '%s/e.tsv' '%s/img'",
			      dir, dir, dir),
		     0);
	int status = run_cli(args, &err);
	cr_assert_eq(status, 0, "stderr: %s", err);
	free(err);
	free(args);

	char *json_path = tfs_path(dir, "s.json");
	cJSON *root = read_json(json_path);
	cr_assert_eq(number(root, "items"), 42);
	cr_assert_eq(number(root, "ok"), 40);
	cr_assert_eq(number(root, "failed"), 2);
	cr_assert_gt(number(root, "wall_seconds"), 0);
	cr_assert_gt(number(root, "items_per_second"), 0);
	double starved = number(root, "starved_fraction");
	cr_assert(starved >= 0 && starved <= 1);
	cr_assert(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(root, "loader_backend")));
	const cJSON *stages = cJSON_GetObjectItemCaseSensitive(root, "stages");
	const char *stage_names[] = {"loader", "decoder", "infer"};
	for (int i = 0; i < 3; i++) {
		const cJSON *st = cJSON_GetObjectItemCaseSensitive(stages, stage_names[i]);
		cr_assert_not_null(st, "stage %s missing", stage_names[i]);
		const char *keys[] = {"threads", "items", "busy_seconds", "starved_seconds", "blocked_seconds"};
		for (int k = 0; k < 5; k++)
			number(st, keys[k]);
	}
	const cJSON *queues = cJSON_GetObjectItemCaseSensitive(root, "queues");
	cr_assert(cJSON_IsObject(queues));
	const cJSON *q;
	int nq = 0;
	cJSON_ArrayForEach(q, queues)
	{
		cr_assert_gt(number(q, "capacity"), 0);
		number(q, "peak_depth");
		nq++;
	}
	cr_assert_geq(nq, 2);
	const char *arrays[] = {"channel_mean", "channel_std"};
	for (int i = 0; i < 2; i++) {
		const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, arrays[i]);
		cr_assert(cJSON_IsArray(a) && cJSON_GetArraySize(a) == 3, "%s", arrays[i]);
		for (int c = 0; c < 3; c++) {
			double v = cJSON_GetArrayItem(a, c)->valuedouble;
			cr_assert(v > 0 && v < 255, "%s[%d] = %f", arrays[i], c, v);
		}
	}
	cJSON_Delete(root);
	free(json_path);

	char *errors_path = tfs_path(dir, "e.tsv");
	size_t len = 0;
	char *errors = (char *)tfs_read(errors_path, &len);
	errors = realloc(errors, len + 1);
	errors[len] = '\0';
	int lines = 0;
	for (char *line = strtok(errors, "\n"); line; line = strtok(NULL, "\n")) {
		char *tab = strchr(line, '\t');
		cr_assert_not_null(tab, "line without a tab: %s", line);
		cr_assert(strstr(line, "zz-empty.jpg") || strstr(line, "zz-text.png"), "%s", line);
		cr_assert_gt(strlen(tab + 1), 0);
		lines++;
	}
	cr_assert_eq(lines, 2);
	free(errors);
	free(errors_path);
	tfs_rmtree(dir);
	free(dir);
}

/*
 * --trace writes a CSV row every 100 ms and one at the end; with a consumer
 * far slower than loading, the summary names the inference stage as the bottleneck.
 */
Test(cli, trace_samples_the_run_and_summary_names_the_bottleneck, .timeout = 120)
{
	char *dir = make_samples(60);
	char *args = NULL, *err = NULL;
	cr_assert_gt(asprintf(&args,
			      "run --quiet --consumer sleep --cost-ms 60 --set batch.size=2 --set output.width=32 "
			      "--set output.height=32 --trace '%s/t.csv' --stats-json '%s/s.json' '%s/img'",
			      dir, dir, dir),
		     0);
	int status = run_cli(args, &err);
	cr_assert_eq(status, 0, "stderr: %s", err);
	free(err);
	free(args);

	char *trace_path = tfs_path(dir, "t.csv");
	size_t len = 0;
	char *text = (char *)tfs_read(trace_path, &len);
	cr_assert_not_null(text);
	text = realloc(text, len + 1);
	text[len] = '\0';
	int rows = 0, columns = -1;
	double last_seconds = -1;
	unsigned long long last_items = 0;
	for (char *save, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		int n = 1;
		for (char *c = line; *c; c++)
			n += *c == ',';
		if (columns < 0) {
			cr_assert_eq(strncmp(line, "seconds,items,", 14), 0, "header: %s", line);
			columns = n;
			continue;
		}
		cr_assert_eq(n, columns, "row %d has %d fields, the header %d: %s", rows, n, columns, line);
		double seconds;
		unsigned long long items;
		cr_assert_eq(sscanf(line, "%lf,%llu,", &seconds, &items), 2, "%s", line);
		cr_assert_geq(seconds, last_seconds);
		cr_assert_geq(items, last_items);
		/*
		 * Columns 13-17 (loader_busy .. consumer_starved) are shares of the
		 * interval, 0 to 1 uncapped (a snapshot never sees time go back);
		 * column 18, decoder_on_cpu, is capped at 1 by the trace itself.
		 */
		char *field = line;
		for (int col = 1; col < 13; col++)
			field = strchr(field, ',') + 1;
		for (int col = 13; col <= 18; col++, field = strchr(field, ',') + 1) {
			double x = strtod(field, NULL);
			cr_assert(x >= -1e-9 && x <= 1 + 1e-9, "column %d is %g: %s", col, x, line);
		}
		last_seconds = seconds;
		last_items = items;
		rows++;
	}
	/*
	 * 30 batches at 60 ms: about 1.8 s, so well over 5 samples; the last row is the end of the run.
	 * A 32x32 output decodes these 500x375 JPEGs at 1/8 scale, cheap enough even under TSan for
	 * the sleeping consumer to be the slowest stage.
	 */
	cr_assert_geq(rows, 5, "%d rows", rows);
	cr_assert_eq(last_items, 60);
	free(text);
	free(trace_path);

	char *json_path = tfs_path(dir, "s.json");
	cJSON *root = read_json(json_path);
	const cJSON *b = cJSON_GetObjectItemCaseSensitive(root, "bottleneck");
	cr_assert(cJSON_IsObject(b), "no bottleneck in the JSON");
	const cJSON *stage = cJSON_GetObjectItemCaseSensitive(b, "stage");
	const cJSON *advice = cJSON_GetObjectItemCaseSensitive(b, "advice");
	cr_assert(cJSON_IsString(stage) && cJSON_IsString(advice));
	cr_assert_str_eq(stage->valuestring, "infer", "advice: %s", advice->valuestring);
	cJSON_Delete(root);
	free(json_path);
	tfs_rmtree(dir);
	free(dir);
}

Test(cli, on_error_fail_exits_1, .timeout = 120)
{
	char *dir = make_samples(10);
	cr_assert_eq(tfs_write(dir, "img/bad.jpg", "\xff\xd8\xff garbage", 12), 0);
	char *args = NULL, *err = NULL;
	cr_assert_gt(asprintf(&args,
			      "run --quiet --set pipeline.on_error=fail --errors '%s/e.tsv' --stats-json '%s/s.json' "
			      "'%s/img'",
			      dir, dir, dir),
		     0);
	cr_assert_eq(run_cli(args, &err), 1);
	cr_assert_not_null(strstr(err, "bad.jpg"), "%s", err);
	/* The failure that stopped the run is in the error list and the counts, as any other. */
	char *errors = tfs_path(dir, "e.tsv"), *json = tfs_path(dir, "s.json");
	size_t len = 0;
	char *text = (char *)tfs_read(errors, &len);
	cr_assert(text && strstr(text, "bad.jpg"), "--errors: %s", text ? text : "(none)");
	cJSON *root = read_json(json);
	cr_assert_eq(number(root, "failed"), 1);
	cJSON_Delete(root);
	/* Without --errors the failure is said once, as the run's error, not also as "skipped". */
	free(args);
	free(err);
	cr_assert_gt(asprintf(&args, "run --set pipeline.on_error=fail '%s/img'", dir), 0);
	cr_assert_eq(run_cli(args, &err), 1);
	cr_assert_not_null(strstr(err, "error: "), "%s", err);
	cr_assert_not_null(strstr(err, "bad.jpg"), "%s", err);
	cr_assert_null(strstr(err, "skipped"), "%s", err);
	free(text);
	free(errors);
	free(json);
	free(err);
	free(args);
	tfs_rmtree(dir);
	free(dir);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

Test(cli, sigint_stops_promptly_with_partial_stats, .timeout = 120)
{
	char *dir = make_samples(30);
	char *json = tfs_path(dir, "partial.json"), *img = tfs_path(dir, "img"), *state = tfs_path(dir, "state");
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		freopen("/dev/null", "w", stdout);
		freopen("/dev/null", "w", stderr);
		/* A slow consumer: 30 batches of 1 at 200 ms each would take 6 s. */
		execl(RF_CLI_PATH, RF_CLI_PATH, "run", "--consumer", "sleep", "--cost-ms", "200", "--set",
		      "batch.size=1", "--stats-json", json, "--save-state", state, img, (char *)NULL);
		_exit(127);
	}
	usleep(500000);
	double t0 = now_s();
	kill(pid, SIGINT);
	int status;
	waitpid(pid, &status, 0);
	double elapsed = now_s() - t0;
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 130, "status %d", status);
	cr_assert_lt(elapsed, 1.0, "took %.3f s to stop", elapsed);
	cJSON *root = read_json(json);
	double done = number(root, "items");
	cr_assert_lt(done, 30);
	cJSON_Delete(root);

	/* The saved state resumes after what was consumed: the two runs together cover the set once. */
	size_t len = 0;
	char *text = (char *)tfs_read(state, &len);
	cr_assert_not_null(text, "no state saved on interrupt");
	unsigned long long position = 0;
	cr_assert_not_null(strstr(text, "position="));
	sscanf(strstr(text, "position="), "position=%llu", &position);
	free(text);
	cr_assert_leq(position, 30);
	/* Batches of 1, no failures: the summary counts what was consumed, as the state does. */
	cr_assert_eq(done, (double)position, "%.0f items counted, %llu consumed", done, position);
	char *args = NULL;
	cr_assert_gt(asprintf(&args, "run --quiet --consumer null --resume '%s' --stats-json '%s' '%s'", state, json, img), 0);
	cr_assert_eq(run_cli(args, NULL), 0);
	free(args);
	root = read_json(json);
	cr_assert_eq(number(root, "items"), 30 - (double)position, "resumed at %llu", position);
	cr_assert_eq(number(root, "total"), 30 - (double)position, "the total of a resumed run is what it had left");
	cJSON_Delete(root);
	free(state);
	free(json);
	free(img);
	tfs_rmtree(dir);
	free(dir);
}

/* A signal cuts a sleeping or spinning consumer's batch short: an hour per batch still stops at once. */
Test(cli, a_signal_stops_a_long_consumer_batch, .timeout = 60)
{
	char *dir = make_samples(4);
	char *img = tfs_path(dir, "img");
	static const char *const kinds[] = {"sleep", "spin"};
	static const int signals[] = {SIGINT, SIGTERM};
	for (int i = 0; i < 2; i++) {
		pid_t pid = fork();
		cr_assert_geq(pid, 0);
		if (pid == 0) {
			freopen("/dev/null", "w", stdout);
			freopen("/dev/null", "w", stderr);
			execl(RF_CLI_PATH, RF_CLI_PATH, "run", "--quiet", "--consumer", kinds[i], "--cost-ms", "3600000",
			      img, (char *)NULL);
			_exit(127);
		}
		usleep(500000);
		double t0 = now_s();
		kill(pid, signals[i]);
		int status;
		waitpid(pid, &status, 0);
		double elapsed = now_s() - t0;
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 130, "%s: status %d", kinds[i], status);
		cr_assert_lt(elapsed, 1.0, "%s: took %.3f s to stop", kinds[i], elapsed);
	}
	free(img);
	tfs_rmtree(dir);
	free(dir);
}

/* Reads a --list file: marks each listed index in seen[], returns the line count. */
static int read_list(const char *path, int *seen, int n)
{
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f, "no list at %s", path);
	unsigned long long index;
	unsigned epoch;
	char file[4096];
	int lines = 0;
	while (fscanf(f, "%llu\t%u\t%4095[^\n]\n", &index, &epoch, file) == 3) {
		cr_assert_lt(index, (unsigned long long)n);
		seen[index]++;
		lines++;
	}
	fclose(f);
	return lines;
}

Test(cli, mpirun_ranks_get_disjoint_complete_shards, .timeout = 120)
{
	if (system("command -v mpirun >/dev/null 2>&1") != 0)
		cr_skip_test("mpirun is not installed (Debian: openmpi-bin)");
	char *dir = make_samples(21);
	char *cmd = NULL;
	/* Root needs Open MPI's consent; --oversubscribe: two ranks even on a one-core runner. */
	cr_assert_gt(asprintf(&cmd,
			      "cd '%s' && OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "
			      "mpirun -np 2 --oversubscribe sh -c \"'%s' run --quiet --consumer null "
			      "--set source.shard_index=auto --set source.equal_shards=none "
			      "--list rank\\$OMPI_COMM_WORLD_RANK.tsv img\" >/dev/null 2>&1",
			      dir, RF_CLI_PATH),
		     0);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
	free(cmd);
	int seen[21] = {0};
	char *rank0 = tfs_path(dir, "rank0.tsv"), *rank1 = tfs_path(dir, "rank1.tsv");
	int n0 = read_list(rank0, seen, 21), n1 = read_list(rank1, seen, 21);
	cr_assert_eq(n0, 11, "rank 0 takes positions 0, 2, ..., 20");
	cr_assert_eq(n1, 10);
	for (int i = 0; i < 21; i++)
		cr_assert_eq(seen[i], 1, "input %d seen by %d ranks", i, seen[i]);
	free(rank0);
	free(rank1);
	tfs_rmtree(dir);
	free(dir);
}

/*
 * ringfeed-bench times its systems on the inputs ringfeed itself takes: links
 * followed (a link to an ancestor not, a link to a sibling directory walked
 * again), list comments skipped, a FIFO failed rather than waited on (in the
 * warm-up and in the hand loop), a dangling link failed, and only the
 * source.extensions of the config in a directory.
 */
Test(cli, bench_takes_the_inputs_ringfeed_takes, .timeout = 120)
{
	char *dir = make_samples(3);
	char *cmd = NULL;
	cr_assert_gt(asprintf(&cmd,
			      "cd '%s' && mkdir -p img/sub && ln -s ../sample-00001.jpg img/sub/link.jpg && ln -s .. img/sub/up "
			      "&& ln -s sub img/twin && ln -s nowhere img/dangling.jpg && mkfifo img/fifo.jpg && echo hi > img/notes.txt && "
			      "printf '# photos\\n%s/img/sample-00000.jpg\\n' > list.txt",
			      dir, dir),
		     0);
	cr_assert_eq(system(cmd), 0);
	free(cmd);
	const char *inputs[] = {"img", "@list.txt", "--set source.extensions=jpg img"};
	/* 3 samples, sub/link.jpg and twin/link.jpg; failed: the link, the FIFO and (unless filtered) notes.txt */
	const int images[] = {5, 1, 5}, failed[] = {3, 0, 2};
	for (int i = 0; i < 3; i++) {
		cr_assert_gt(asprintf(&cmd, "cd '%s' && timeout 30 '%s' --system ringfeed,hand --repeat 1 --threads 1 %s",
				      dir, RF_BENCH_PATH, inputs[i]),
			     0);
		FILE *out = popen(cmd, "r");
		cr_assert_not_null(out);
		char line[4096];
		int rows = 0;
		while (fgets(line, sizeof(line), out)) {
			char *n = strstr(line, "\"images\":"), *f = strstr(line, "\"failed\":");
			cr_assert(n && f, "%s", line);
			cr_assert_eq(atoi(n + 9), images[i], "%s: %s", inputs[i], line);
			cr_assert_eq(atoi(f + 9), failed[i], "%s: %s", inputs[i], line);
			rows++;
		}
		cr_assert_eq(WEXITSTATUS(pclose(out)), 0, "%s", cmd);
		cr_assert_eq(rows, 2, "%s: a row each for ringfeed and the hand loop", inputs[i]);
		free(cmd);
	}
	tfs_rmtree(dir);
	free(dir);
}

/* A state that cannot be written fails the run (exit 1) but costs the stats JSON nothing. */
Test(cli, an_unwritable_state_still_leaves_the_stats, .timeout = 60)
{
	char *dir = make_samples(4);
	char *args = NULL, *err = NULL;
	cr_assert_gt(asprintf(&args, "run --quiet --consumer null --save-state '%s/no/such/dir/state' --stats-json "
				     "'%s/s.json' '%s/img'",
			      dir, dir, dir),
		     0);
	cr_assert_eq(run_cli(args, &err), 1);
	cr_assert_not_null(strstr(err, "state"), "%s", err);
	char *json = tfs_path(dir, "s.json");
	cJSON *root = read_json(json);
	cr_assert_eq(number(root, "ok"), 4);
	cJSON_Delete(root);
	free(json);
	free(err);
	free(args);
	tfs_rmtree(dir);
	free(dir);
}

/* Checks a file of TAB-separated lines whose first field counts up (--list: INDEX, --errors: PATH). */
static void assert_in_order(const char *path, int expect_lines, bool by_path)
{
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f, "%s", path);
	char line[4096], last[4096] = "";
	long long prev = -1;
	int n = 0;
	while (fgets(line, sizeof(line), f)) {
		*strchr(line, '\t') = '\0';
		if (by_path)
			cr_assert_gt(strcmp(line, last), 0, "%s line %d: %s after %s", path, n + 1, line, last);
		else
			cr_assert_gt(atoll(line), prev, "%s line %d: index %s after %lld", path, n + 1, line, prev);
		prev = atoll(line);
		snprintf(last, sizeof(last), "%s", line);
		n++;
	}
	fclose(f);
	cr_assert_eq(n, expect_lines, "%s", path);
}

/* With several infer threads, --list and --errors still follow delivery order. */
Test(cli, list_and_errors_in_delivery_order_with_infer_threads, .timeout = 120)
{
	char *dir = make_samples(150);
	for (int i = 0; i < 30; i++) {
		char name[32];
		snprintf(name, sizeof(name), "img/sample-%05d.bad.jpg", i * 5);
		cr_assert_eq(tfs_write(dir, name, "\xff\xd8\xff garbage", 12), 0);
	}
	char *args = NULL, *err = NULL;
	cr_assert_gt(asprintf(&args,
			      "run --quiet --consumer null --set infer.threads=8 --set batch.size=1 --set "
			      "output.width=16 --set output.height=16 --list '%s/l.tsv' --errors '%s/e.tsv' '%s/img'",
			      dir, dir, dir),
		     0);
	char *list = tfs_path(dir, "l.tsv"), *errors = tfs_path(dir, "e.tsv");
	for (int round = 0; round < 3; round++) {
		cr_assert_eq(run_cli(args, &err), 0, "%s", err);
		free(err);
		assert_in_order(list, 150, false);
		assert_in_order(errors, 30, true);
	}
	free(list);
	free(errors);
	free(args);
	tfs_rmtree(dir);
	free(dir);
}

/* --list and --errors keep one record per line whatever the file names hold: \t, \n, \r, \\ escaped. */
Test(cli, list_and_errors_escape_paths, .timeout = 60)
{
	char *dir = make_samples(1);
	char *cmd = NULL;
	cr_assert_gt(asprintf(&cmd,
			      "cd '%s/img' && cp sample-00000.jpg \"$(printf 'new\\nline\\tand\\\\slash.jpg')\" && "
			      "printf 'x' > \"$(printf 'bad\\tname.jpg')\"",
			      dir),
		     0);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
	free(cmd);
	char *args = NULL;
	cr_assert_gt(asprintf(&args, "run --quiet --consumer null --list '%s/l.tsv' --errors '%s/e.tsv' '%s/img'", dir,
			      dir, dir),
		     0);
	cr_assert_eq(run_cli(args, NULL), 0);
	free(args);
	char *list = tfs_path(dir, "l.tsv"), *errors = tfs_path(dir, "e.tsv");
	size_t len = 0;
	char *text = (char *)tfs_read(list, &len);
	cr_assert_not_null(text);
	int lines = 0;
	for (size_t i = 0; i < len; i++)
		lines += text[i] == '\n';
	cr_assert_eq(lines, 2, "two images, two lines: %s", text);
	cr_assert_not_null(strstr(text, "/new\\nline\\tand\\\\slash.jpg\n"), "%s", text);
	free(text);
	text = (char *)tfs_read(errors, &len);
	cr_assert_not_null(text);
	cr_assert_not_null(strstr(text, "/bad\\tname.jpg\t"), "%s", text);
	cr_assert_eq(strchr(text, '\n'), text + len - 1, "one error, one line: %s", text);
	free(text);
	free(list);
	free(errors);
	tfs_rmtree(dir);
	free(dir);
}

/* ringfeed-samples --help prints its usage and makes nothing; an option is not taken for DIR. */
Test(cli, samples_help_makes_no_directory)
{
	char *dir = tfs_mkdtemp();
	static const char *const args[] = {"--help", "-n"};
	static const int status_of[] = {0, 2};
	for (int i = 0; i < 2; i++) {
		char *cmd = NULL;
		cr_assert_gt(asprintf(&cmd, "cd '%s' && '%s' %s >out 2>&1", dir, RF_SAMPLES_PATH, args[i]), 0);
		int status = system(cmd);
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == status_of[i], "%s: exit %d", args[i],
			  WEXITSTATUS(status));
		char *made = tfs_path(dir, args[i]), *out = tfs_path(dir, "out");
		struct stat st;
		cr_assert_neq(stat(made, &st), 0, "%s made a directory", args[i]);
		FILE *f = fopen(out, "r");
		char line[256] = "";
		cr_assert(f && fgets(line, sizeof(line), f));
		cr_assert(strstr(line, "usage: ringfeed-samples"), "%s printed %s", args[i], line);
		fclose(f);
		free(made);
		free(out);
		free(cmd);
	}
	tfs_rmtree(dir);
	free(dir);
}

/* ringfeed-samples refuses a COUNT or SEED that is not a whole number, rather than reading part of it. */
Test(cli, samples_refuse_bad_numbers)
{
	char *dir = tfs_mkdtemp();
	static const char *const bad[] = {"3x", "0", "3 x", "3 -1", "3 7 extra"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *cmd = NULL;
		cr_assert_gt(asprintf(&cmd, "'%s' '%s/s' %s 2>/dev/null", RF_SAMPLES_PATH, dir, bad[i]), 0);
		int status = system(cmd);
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 2, "'%s' exit %d", bad[i], WEXITSTATUS(status));
		free(cmd);
	}
	tfs_rmtree(dir);
	free(dir);
}
