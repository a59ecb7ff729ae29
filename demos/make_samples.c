/*
 * ringfeed-samples DIR [COUNT] [SEED]: writes COUNT synthetic photo-like JPEGs
 * (500x375, 375x500 and 500x333, quality 90, with sensor-like grain) into DIR,
 * so the demo runs without any data set. Deterministic for a given seed.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <turbojpeg.h>

static uint32_t next_random(uint64_t *state)
{
	*state = *state * 6364136223846793005ull + 1442695040888963407ull;
	return (uint32_t)(*state >> 33);
}

static double uniform(uint64_t *state)
{
	return next_random(state) / 2147483648.0;
}

static unsigned char clamp_byte(double v)
{
	return v < 0 ? 0 : v > 255 ? 255 : (unsigned char)v;
}

/* A sky-to-ground gradient, a few soft blobs, then per-pixel grain. */
static void paint(unsigned char *px, int w, int h, uint64_t *rng)
{
	double top[3], bottom[3];
	for (int c = 0; c < 3; c++) {
		top[c] = 40 + 200 * uniform(rng);
		bottom[c] = 20 + 180 * uniform(rng);
	}
	struct { double x, y, r, col[3]; } blobs[6];
	for (int i = 0; i < 6; i++) {
		blobs[i].x = w * uniform(rng);
		blobs[i].y = h * uniform(rng);
		blobs[i].r = (0.05 + 0.25 * uniform(rng)) * w;
		for (int c = 0; c < 3; c++)
			blobs[i].col[c] = 255 * uniform(rng);
	}
	for (int y = 0; y < h; y++) {
		for (int x = 0; x < w; x++) {
			double t = (double)y / (h - 1), v[3];
			for (int c = 0; c < 3; c++)
				v[c] = top[c] * (1 - t) + bottom[c] * t;
			for (int i = 0; i < 6; i++) {
				double dx = x - blobs[i].x, dy = y - blobs[i].y;
				double a = exp(-(dx * dx + dy * dy) / (blobs[i].r * blobs[i].r));
				for (int c = 0; c < 3; c++)
					v[c] = v[c] * (1 - a) + blobs[i].col[c] * a;
			}
			double grain = (uniform(rng) + uniform(rng) - 1.0) * 24;
			for (int c = 0; c < 3; c++)
				px[((size_t)y * w + x) * 3 + c] = clamp_byte(v[c] + grain);
		}
	}
}

int main(int argc, char **argv)
{
	static const char usage[] = "usage: ringfeed-samples DIR [COUNT=200] [SEED=1]\n";
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		fputs(usage, stdout);
		return 0;
	}
	/* An option is not a directory name: "--help" or "-n" would otherwise become one. */
	if (argc < 2 || argc > 4 || argv[1][0] == '-') {
		fputs(usage, stderr);
		return 2;
	}
	const char *dir = argv[1];
	char *end = NULL;
	errno = 0;
	long count = argc > 2 ? strtol(argv[2], &end, 10) : 200;
	if (argc > 2 && (errno || end == argv[2] || *end || count <= 0 || count > 10000000)) {
		fprintf(stderr, "ringfeed-samples: COUNT must be a whole number from 1 to 10000000\n");
		return 2;
	}
	uint64_t rng = argc > 3 ? strtoull(argv[3], &end, 10) : 1;
	if (argc > 3 && (errno || end == argv[3] || *end || argv[3][0] == '-')) {
		fprintf(stderr, "ringfeed-samples: SEED must be a whole number\n");
		return 2;
	}
	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		fprintf(stderr, "ringfeed-samples: %s: %s\n", dir, strerror(errno));
		return 1;
	}
	static const int sizes[3][2] = {{500, 375}, {375, 500}, {500, 333}};
	tjhandle tj = tjInitCompress();
	unsigned char *px = malloc(500 * 500 * 3);
	if (!tj || !px) {
		fprintf(stderr, "ringfeed-samples: out of memory\n");
		return 1;
	}
	int status = 0;
	for (long i = 0; i < count && status == 0; i++) {
		int w = sizes[i % 3][0], h = sizes[i % 3][1];
		paint(px, w, h, &rng);
		unsigned char *jpeg = NULL;
		unsigned long size = 0;
		if (tjCompress2(tj, px, w, 0, h, TJPF_RGB, &jpeg, &size, TJSAMP_420, 90, 0) != 0) {
			fprintf(stderr, "ringfeed-samples: %s\n", tjGetErrorStr2(tj));
			status = 1;
			break;
		}
		char path[4096];
		snprintf(path, sizeof(path), "%s/sample-%05ld.jpg", dir, i);
		FILE *f = fopen(path, "wb");
		if (!f || fwrite(jpeg, 1, size, f) != size || fclose(f) != 0) {
			fprintf(stderr, "ringfeed-samples: cannot write %s\n", path);
			status = 1;
		}
		tjFree(jpeg);
	}
	free(px);
	tjDestroy(tj);
	return status;
}
