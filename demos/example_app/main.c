/*
 * A user's program: built out of tree against the installed library, through
 * pkg-config or CMake's find_package(ringfeed). Prints how many images it got
 * and their mean pixel value.
 *
 *   example_app PATH...
 */
#include <ringfeed/ringfeed.h>
#include <stdio.h>

int main(int argc, char **argv)
{
	rf_config cfg;
	rf_config_init(&cfg);
	rf_config_set(&cfg, "output.width", "64", NULL, 0);
	rf_config_set(&cfg, "output.height", "64", NULL, 0);
	rf_pipeline *p;
	int rc = rf_pipeline_create(&p, &cfg);
	for (int i = 1; rc == 0 && i < argc; i++)
		rc = rf_pipeline_add(p, argv[i]);
	if (rc == 0)
		rc = rf_pipeline_start(p);
	unsigned long long images = 0, failed = 0;
	double sum = 0;
	rf_batch *b;
	while (rc == 0 && (rc = rf_pipeline_next(p, &b)) == 0) {
		const unsigned char *px = rf_batch_data(b);
		size_t bytes = rf_batch_count(b) * rf_batch_slot_bytes(b);
		for (size_t i = 0; i < bytes; i++)
			sum += px[i];
		images += rf_batch_count(b);
		failed += rf_batch_error_count(b);
		rf_batch_release(b);
	}
	if (rc != RF_EOF) {
		fprintf(stderr, "example_app: %s: %s\n", rf_err_name(rc), rf_pipeline_error(p));
		rf_pipeline_close(p);
		return 1;
	}
	printf("ringfeed %s: %llu images, %llu failed, mean pixel %.2f\n", rf_version(), images, failed,
	       images ? sum / ((double)images * 64 * 64 * 3) : 0.0);
	rf_pipeline_close(p);
	return 0;
}
