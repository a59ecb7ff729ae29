/* Resize geometry and filtering, channel conversion, and the final layout pass. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "resize.h"
#include "testimg.h"

static const uint8_t red[3] = {255, 0, 0}, green[3] = {0, 255, 0}, blue[3] = {0, 0, 255};

/* Resizes w x h x c px to out_w x out_h with a fresh resizer; malloc'd result. */
static uint8_t *resize(const uint8_t *px, int w, int h, int c, int out_w, int out_h, rf_fit fit)
{
	rf__image img = {px, w, h, c, (size_t)w * c};
	uint8_t *out = malloc((size_t)out_w * out_h * c);
	rf__resizer r;
	rf__box box;

	cr_assert_not_null(out);
	rf__resizer_init(&r);
	rf__fit_box(w, h, out_w, out_h, fit, &box);
	cr_assert_eq(rf__resize(&r, &img, &box, out, out_w, out_h), 0);
	rf__resizer_free(&r);
	return out;
}

static const uint8_t *band(int x, int w)
{
	if (x < w / 3)
		return red;
	return x < 2 * w / 3 ? green : blue;
}

/* RGB image in three vertical bands: red, green, blue. */
static uint8_t *bands(int w, int h)
{
	uint8_t *px = malloc((size_t)w * h * 3);

	cr_assert_not_null(px);
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++)
			memcpy(px + ((size_t)y * w + x) * 3, band(x, w), 3);
	return px;
}

static const uint8_t *at(const uint8_t *px, int w, int c, int x, int y)
{
	return px + ((size_t)y * w + x) * c;
}

Test(resize, cover_whole_pixel_crop_is_the_middle_band)
{
	uint8_t *src = bands(300, 100), *out = resize(src, 300, 100, 3, 100, 100, RF_FIT_COVER);

	for (int y = 0; y < 100; y++)
		for (int x = 0; x < 100; x++)
			cr_assert_arr_eq(at(out, 100, 3, x, y), green, 3, "pixel %d,%d", x, y);
	free(src);
	free(out);
}

Test(resize, cover_downscale_is_green_but_for_the_edges)
{
	uint8_t *src = bands(600, 200), *out = resize(src, 600, 200, 3, 100, 100, RF_FIT_COVER);

	/* The 2x filter reaches one source pixel past the window on each side. */
	for (int y = 0; y < 100; y++) {
		for (int x = 1; x < 99; x++)
			cr_assert_arr_eq(at(out, 100, 3, x, y), green, 3, "pixel %d,%d", x, y);
		cr_assert_geq(at(out, 100, 3, 0, y)[1], 200);
		cr_assert_geq(at(out, 100, 3, 99, y)[1], 200);
	}
	free(src);
	free(out);
}

Test(resize, stretch_keeps_the_three_bands)
{
	uint8_t *src = bands(300, 100), *out = resize(src, 300, 100, 3, 30, 10, RF_FIT_STRETCH);

	for (int y = 0; y < 10; y++) {
		for (int x = 0; x < 9; x++)
			cr_assert_arr_eq(at(out, 30, 3, x, y), red, 3, "pixel %d,%d", x, y);
		for (int x = 11; x < 19; x++)
			cr_assert_arr_eq(at(out, 30, 3, x, y), green, 3, "pixel %d,%d", x, y);
		for (int x = 21; x < 30; x++)
			cr_assert_arr_eq(at(out, 30, 3, x, y), blue, 3, "pixel %d,%d", x, y);
	}
	free(src);
	free(out);
}

Test(resize, constant_image_stays_exactly_constant)
{
	static const int sizes[][4] = {
		{64, 48, 32, 24}, {97, 61, 13, 7}, {500, 375, 224, 224}, {7, 5, 224, 224},
		{1, 1, 16, 9},	  {1000, 3, 1, 1}, {33, 33, 32, 32},	 {300, 10, 299, 11},
	};
	static const uint8_t value[4] = {17, 200, 99, 255};

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		for (int c = 1; c <= 4; c++) {
			int w = sizes[i][0], h = sizes[i][1], ow = sizes[i][2], oh = sizes[i][3];
			uint8_t *src = malloc((size_t)w * h * c), *out;

			for (int p = 0; p < w * h; p++)
				memcpy(src + (size_t)p * c, value, (size_t)c);
			for (int fit = RF_FIT_COVER; fit <= RF_FIT_STRETCH; fit++) {
				out = resize(src, w, h, c, ow, oh, fit);
				for (int p = 0; p < ow * oh; p++)
					cr_assert_arr_eq(out + (size_t)p * c, value, (size_t)c,
							 "%dx%d -> %dx%d c=%d fit=%d pixel %d", w, h, ow, oh,
							 c, fit, p);
				free(out);
			}
			free(src);
		}
	}
}

/*
 * Downscales of tens of thousands to one: a white row with one black pixel
 * stays near white everywhere (weights rounded one by one used to go negative
 * there and wrap the result: 3 instead of ~255 at 100000 -> 16).
 */
Test(resize, extreme_downscale_stays_within_the_input)
{
	static const int widths[] = {100000, 700000};
	for (size_t i = 0; i < sizeof(widths) / sizeof(widths[0]); i++) {
		int w = widths[i];
		uint8_t *src = malloc((size_t)w);
		memset(src, 255, (size_t)w);
		src[2090] = 0;
		uint8_t *out = resize(src, w, 1, 1, 16, 1, RF_FIT_STRETCH);
		for (int x = 0; x < 16; x++)
			cr_assert_geq(out[x], 250, "%d -> 16: pixel %d is %d", w, x, out[x]);
		free(out);
		free(src);
	}
}

Test(resize, upscale_2x2_is_bilinear)
{
	static const uint8_t src[] = {0, 128, 128, 0};
	static const uint8_t want[] = {
		0,   32, 96, 128, /* row 0 */
		32,  48, 80, 96,  /* 3/4 row 0 + 1/4 row 1 */
		96,  80, 48, 32,  /* 1/4 row 0 + 3/4 row 1 */
		128, 96, 32, 0,
	};
	uint8_t *out = resize(src, 2, 2, 1, 4, 4, RF_FIT_STRETCH);

	cr_assert_arr_eq(out, want, sizeof(want));
	free(out);
}

Test(resize, identity_is_exact)
{
	static const int sizes[][2] = {{1, 1}, {37, 23}, {224, 224}, {640, 3}};

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		int w = sizes[i][0], h = sizes[i][1];

		for (int c = 1; c <= 4; c++) {
			uint8_t *src = timg_pattern(w, h, c, 7);

			for (int fit = RF_FIT_COVER; fit <= RF_FIT_STRETCH; fit++) {
				uint8_t *out = resize(src, w, h, c, w, h, fit);

				cr_assert_arr_eq(out, src, (size_t)w * h * c, "%dx%d c=%d", w, h, c);
				free(out);
			}
			free(src);
		}
	}
}

Test(resize, cover_crop_at_scale_one_is_a_copy_of_the_middle_rows)
{
	uint8_t *src = timg_pattern(224, 300, 3, 3);
	uint8_t *out = resize(src, 224, 300, 3, 224, 224, RF_FIT_COVER);

	cr_assert_arr_eq(out, src + (size_t)38 * 224 * 3, (size_t)224 * 224 * 3);
	free(src);
	free(out);
}

Test(resize, half_pixel_crop_averages_neighbours)
{
	/* 3 x 1 covered into 2 x 1: the window is [0.5, 2.5), so output centres sit on borders. */
	static const uint8_t src[] = {0, 100, 200};
	uint8_t *out = resize(src, 3, 1, 1, 2, 1, RF_FIT_COVER);

	/* window [0.5, 2.5): output centres fall on pixel borders 1.0 and 2.0 */
	cr_assert_eq(out[0], 50);
	cr_assert_eq(out[1], 150);
	free(out);
}

Test(resize, downscale_of_a_gradient_stays_monotonic)
{
	uint8_t *src = timg_pattern(1000, 1, 1, 0), *out;

	/* noisy, so compare each output with the average of its block */
	out = resize(src, 1000, 1, 1, 10, 1, RF_FIT_STRETCH);
	for (int x = 0; x < 10; x++) {
		long sum = 0;

		for (int i = x * 100; i < x * 100 + 100; i++)
			sum += src[i];
		cr_assert_leq(abs(out[x] - (int)(sum / 100)), 3, "block %d: %d vs %ld", x, out[x], sum / 100);
	}
	free(src);
	free(out);
}

Test(resize, reused_resizer_matches_a_fresh_one)
{
	/* More geometries than the resizer keeps plans for: hits, evictions and rebuilds all agree. */
	static const int sizes[][2] = {{500, 375}, {120, 80}, {500, 375}, {375, 500}, {64, 48}, {300, 200},
				       {90, 300}, {500, 333}, {120, 80}, {500, 375}, {375, 500}};
	rf__resizer r;

	rf__resizer_init(&r);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		int w = sizes[i][0], h = sizes[i][1];
		uint8_t *src = timg_pattern(w, h, 3, (unsigned)i);
		uint8_t *want = resize(src, w, h, 3, 224, 224, RF_FIT_COVER);
		uint8_t out[224 * 224 * 3];
		rf__image img = {src, w, h, 3, (size_t)w * 3};
		rf__box box;

		rf__fit_box(w, h, 224, 224, RF_FIT_COVER, &box);
		cr_assert_eq(rf__resize(&r, &img, &box, out, 224, 224), 0);
		cr_assert_arr_eq(out, want, sizeof(out), "image %zu", i);
		free(src);
		free(want);
	}
	rf__resizer_free(&r);
}

Test(resize, strided_source)
{
	uint8_t *src = timg_pattern(40, 30, 3, 5), *wide = calloc(30, 64 * 3);
	uint8_t out1[20 * 15 * 3], out2[20 * 15 * 3];
	rf__image img = {wide, 40, 30, 3, 64 * 3};
	rf__box box = {0, 0, 40, 30};
	rf__resizer r;
	uint8_t *want;

	for (int y = 0; y < 30; y++)
		memcpy(wide + (size_t)y * 64 * 3, src + (size_t)y * 40 * 3, 40 * 3);
	rf__resizer_init(&r);
	cr_assert_eq(rf__resize(&r, &img, &box, out1, 20, 15), 0);
	want = resize(src, 40, 30, 3, 20, 15, RF_FIT_STRETCH);
	memcpy(out2, want, sizeof(out2));
	cr_assert_arr_eq(out1, out2, sizeof(out1));
	rf__resizer_free(&r);
	free(want);
	free(src);
	free(wide);
}

/* Weights of the triangle filter for one output, in double, as the plan defines them. */
static int ref_weights(int in_size, double in0, double in1, int out_size, int o, double *w)
{
	double scale = (in1 - in0) / out_size, support = scale > 1 ? scale : 1;
	double center = in0 + (o + 0.5) * scale, total = 0;
	int first = (int)floor(center - support + 0.5), last = (int)floor(center + support + 0.5);

	if (first < 0)
		first = 0;
	if (last > in_size)
		last = in_size;
	for (int x = 0; x < in_size; x++) {
		double d = fabs((x + 0.5 - center) / support);

		w[x] = x >= first && x < last && d < 1 ? 1 - d : 0;
		total += w[x];
	}
	for (int x = 0; x < in_size; x++)
		w[x] /= total;
	return 0;
}

/* The resize done in double precision with no intermediate rounding. */
static double ref_sample(const uint8_t *px, int w, int h, int c, const rf__box *box, int ow, int oh, int ox,
			 int oy, int ch)
{
	double *wx = malloc(sizeof(double) * w), *wy = malloc(sizeof(double) * h), sum = 0;

	ref_weights(w, box->x0, box->x1, ow, ox, wx);
	ref_weights(h, box->y0, box->y1, oh, oy, wy);
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++)
			sum += wy[y] * wx[x] * px[((size_t)y * w + x) * c + ch];
	free(wx);
	free(wy);
	return sum;
}

/* Every sample of resizing src is within rounding of the double-precision result. */
static void assert_near_reference(const uint8_t *src, int w, int h, int c, int ow, int oh, rf_fit fit)
{
	uint8_t *out = resize(src, w, h, c, ow, oh, fit);
	rf__box box;

	rf__fit_box(w, h, ow, oh, fit, &box);
	for (int y = 0; y < oh; y++)
		for (int x = 0; x < ow; x++)
			for (int ch = 0; ch < c; ch++) {
				double want = ref_sample(src, w, h, c, &box, ow, oh, x, y, ch);
				int got = at(out, ow, c, x, y)[ch];

				/* a rounding after each pass, 14-bit weights */
				cr_assert_lt(fabs(got - want), 1.05,
					     "%dx%d -> %dx%d c=%d fit=%d at %d,%d,%d: %d vs %.2f", w, h, ow,
					     oh, c, fit, x, y, ch, got, want);
			}
	free(out);
}

Test(resize, matches_a_double_precision_reference)
{
	static const int sizes[][4] = {
		{61, 47, 13, 11}, {47, 61, 20, 20}, {200, 9, 7, 9},	{9, 200, 9, 5},
		{30, 20, 45, 50}, {17, 3, 16, 3},   {3, 17, 3, 16},	{100, 1, 33, 1},
		{2, 2, 3, 5},	  {23, 41, 23, 40}, {160, 120, 37, 29},
	};

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		int w = sizes[i][0], h = sizes[i][1];

		for (int c = 1; c <= 4; c++) {
			/* exactly sized: ASan sees any read past the image */
			uint8_t *src = timg_pattern(w, h, c, (unsigned)i * 7 + c);

			for (int p = 0; p < w * h * c; p += 5)
				src[p] = (uint8_t)(p * 37); /* sharp detail: errors show */
			assert_near_reference(src, w, h, c, sizes[i][2], sizes[i][3], RF_FIT_COVER);
			assert_near_reference(src, w, h, c, sizes[i][2], sizes[i][3], RF_FIT_STRETCH);
			free(src);
		}
	}
}

Test(resize, fit_geometry)
{
	rf__box box;
	int nw, nh;

	rf__fit_box(600, 200, 100, 100, RF_FIT_COVER, &box);
	cr_assert(box.x0 == 200 && box.x1 == 400 && box.y0 == 0 && box.y1 == 200);
	rf__fit_box(200, 600, 100, 50, RF_FIT_COVER, &box);
	cr_assert(box.x0 == 0 && box.x1 == 200 && box.y0 == 250 && box.y1 == 350);
	rf__fit_box(600, 200, 100, 100, RF_FIT_STRETCH, &box);
	cr_assert(box.x0 == 0 && box.x1 == 600 && box.y0 == 0 && box.y1 == 200);

	rf__fit_need(500, 375, 224, 224, RF_FIT_COVER, &nw, &nh);
	cr_assert(nw == 299 && nh == 224, "%dx%d", nw, nh);
	rf__fit_need(375, 500, 224, 224, RF_FIT_COVER, &nw, &nh);
	cr_assert(nw == 224 && nh == 299, "%dx%d", nw, nh);
	rf__fit_need(500, 375, 224, 224, RF_FIT_STRETCH, &nw, &nh);
	cr_assert(nw == 224 && nh == 224, "%dx%d", nw, nh);
}

/* ---- channel conversion (done by the codecs, seen through the decoder) ---- */

/* Decodes a PNG of px at its own size into c channels; malloc'd result. */
static uint8_t *png_as(const uint8_t *px, int w, int h, int src_c, int c)
{
	size_t len;
	uint8_t *png = timg_encode("png", w, h, src_c, px, &len), *out = malloc((size_t)w * h * c);
	rf__decoder *d;
	rf_config cfg;
	char reason[256];

	cr_assert_not_null(png);
	rf_config_init(&cfg);
	cfg.output.width = w;
	cfg.output.height = h;
	cfg.output.channels = c;
	cfg.output.fit = RF_FIT_STRETCH;
	cr_assert_eq(rf__decoder_create(&d, &cfg), 0);
	cr_assert_eq(rf__decode_image(d, png, len, out, reason, sizeof(reason)), 0, "%s", reason);
	rf__decoder_destroy(d);
	free(png);
	return out;
}

Test(channels, gray_to_rgb_replicates)
{
	uint8_t *gray = timg_pattern(16, 8, 1, 1), *rgb = png_as(gray, 16, 8, 1, 3);

	for (int i = 0; i < 16 * 8; i++)
		for (int ch = 0; ch < 3; ch++)
			cr_assert_eq(rgb[i * 3 + ch], gray[i]);
	free(gray);
	free(rgb);
}

Test(channels, rgb_to_rgba_adds_opaque_alpha)
{
	uint8_t *rgb = timg_pattern(16, 8, 3, 1), *rgba = png_as(rgb, 16, 8, 3, 4);

	for (int i = 0; i < 16 * 8; i++) {
		cr_assert_arr_eq(rgba + i * 4, rgb + i * 3, 3);
		cr_assert_eq(rgba[i * 4 + 3], 255);
	}
	free(rgb);
	free(rgba);
}

Test(channels, rgba_to_rgb_drops_alpha)
{
	uint8_t *rgba = timg_pattern(16, 8, 4, 1), *rgb = png_as(rgba, 16, 8, 4, 3);

	for (int i = 0; i < 16 * 8; i++)
		cr_assert_arr_eq(rgb + i * 3, rgba + i * 4, 3);
	free(rgba);
	free(rgb);
}

Test(channels, rgb_to_gray_is_luma)
{
	uint8_t *rgb = timg_pattern(16, 8, 3, 1), *gray = png_as(rgb, 16, 8, 3, 1);

	for (int i = 0; i < 16 * 8; i++) {
		const uint8_t *p = rgb + i * 3;

		cr_assert_eq(gray[i], (p[0] * 77 + p[1] * 150 + p[2] * 29) >> 8);
	}
	free(rgb);
	free(gray);
}

/* ---- layout pass ---- */

static rf_config shape(int w, int h, int c, rf_layout layout)
{
	rf_config cfg;

	rf_config_init(&cfg);
	cfg.output.width = w;
	cfg.output.height = h;
	cfg.output.channels = c;
	cfg.output.layout = layout;
	return cfg;
}

Test(convert, slot_bytes)
{
	rf_config a = shape(224, 224, 3, RF_LAYOUT_NHWC_U8), b = shape(224, 224, 3, RF_LAYOUT_NCHW_F32);
	rf_config g = shape(32, 16, 1, RF_LAYOUT_NCHW_F32), r = shape(5, 7, 4, RF_LAYOUT_NHWC_U8);

	cr_assert_eq(rf__slot_bytes(&a), 150528);
	cr_assert_eq(rf__slot_bytes(&b), 602112);
	cr_assert_eq(rf__slot_bytes(&g), 32 * 16 * 4);
	cr_assert_eq(rf__slot_bytes(&r), 5 * 7 * 4);
}

Test(convert, nhwc_is_a_copy)
{
	rf_config cfg = shape(13, 7, 3, RF_LAYOUT_NHWC_U8);
	uint8_t *px = timg_pattern(13, 7, 3, 2), slot[13 * 7 * 3];
	rf__converter cv;

	cfg.output.mean[0] = 100; /* ignored by the u8 layout */
	rf__converter_init(&cv, &cfg);
	rf__convert(&cv, px, slot);
	cr_assert_arr_eq(slot, px, sizeof(slot));
	free(px);
}

Test(convert, nchw_normalises_per_channel)
{
	rf_config cfg = shape(2, 2, 3, RF_LAYOUT_NCHW_F32);
	static const uint8_t hwc[] = {12, 20, 30, 10, 0, 46, 255, 24, 38, 0, 28, 255};
	static const float want[] = {
		1.0f, 0.0f,  122.5f, -5.0f,   /* R: (x - 10) / 2 */
		0.0f, -5.0f, 1.0f,   2.0f,    /* G: (x - 20) / 4 */
		0.0f, 2.0f,  1.0f,   28.125f, /* B: (x - 30) / 8 */
	};
	float slot[12];
	rf__converter cv;

	cfg.output.mean[0] = 10;
	cfg.output.mean[1] = 20;
	cfg.output.mean[2] = 30;
	cfg.output.std[0] = 2;
	cfg.output.std[1] = 4;
	cfg.output.std[2] = 8;
	rf__converter_init(&cv, &cfg);
	rf__convert(&cv, hwc, slot);
	for (int i = 0; i < 12; i++)
		cr_assert(slot[i] == want[i], "slot[%d] = %g, want %g", i, slot[i], want[i]);
}

Test(convert, nchw_matches_the_formula_for_every_byte)
{
	rf_config cfg = shape(256, 1, 4, RF_LAYOUT_NCHW_F32);
	static const float mean[4] = {123.675f, 116.28f, 103.53f, 0.5f};
	static const float std[4] = {58.395f, 57.12f, 57.375f, 255.0f};
	uint8_t hwc[256 * 4];
	float slot[256 * 4];
	rf__converter cv;

	memcpy(cfg.output.mean, mean, sizeof(mean));
	memcpy(cfg.output.std, std, sizeof(std));
	for (int x = 0; x < 256; x++)
		for (int c = 0; c < 4; c++)
			hwc[x * 4 + c] = (uint8_t)(c % 2 ? 255 - x : x);
	rf__converter_init(&cv, &cfg);
	rf__convert(&cv, hwc, slot);
	for (int c = 0; c < 4; c++)
		for (int x = 0; x < 256; x++) {
			float want = ((float)hwc[x * 4 + c] - mean[c]) / std[c];

			cr_assert(slot[c * 256 + x] == want, "c=%d x=%d", c, x);
		}
}

/* Eight pixels at a time (AVX2) and the table for the rest: every byte, every plane, the tail too. */
Test(convert, nchw_rgb_and_gray_match_the_formula_for_every_byte)
{
	static const float mean[3] = {123.675f, 116.28f, 103.53f};
	static const float std[3] = {58.395f, 57.12f, 57.375f};
	enum { W = 259 }; /* 32 runs of eight and a tail of three */

	for (int c = 1; c <= 3; c += 2) {
		rf_config cfg = shape(W, 1, c, RF_LAYOUT_NCHW_F32);
		uint8_t hwc[W * 3];
		float slot[W * 3];
		rf__converter cv;

		memcpy(cfg.output.mean, mean, sizeof(mean));
		memcpy(cfg.output.std, std, sizeof(std));
		for (int x = 0; x < W; x++)
			for (int k = 0; k < c; k++)
				hwc[x * c + k] = (uint8_t)(k == 1 ? 255 - x : x * 7 + k);
		rf__converter_init(&cv, &cfg);
		rf__convert(&cv, hwc, slot);
		for (int k = 0; k < c; k++)
			for (int x = 0; x < W; x++) {
				float want = ((float)hwc[x * c + k] - mean[k]) / std[k];

				cr_assert(slot[k * W + x] == want, "c=%d plane %d x=%d: %g, want %g", c, k, x,
					  slot[k * W + x], want);
			}
	}
}

Test(convert, gray_nchw)
{
	rf_config cfg = shape(3, 1, 1, RF_LAYOUT_NCHW_F32);
	static const uint8_t hwc[] = {0, 128, 255};
	float slot[3];
	rf__converter cv;

	cfg.output.mean[0] = 128;
	cfg.output.std[0] = 0.5f;
	rf__converter_init(&cv, &cfg);
	rf__convert(&cv, hwc, slot);
	cr_assert(slot[0] == -256.0f && slot[1] == 0.0f && slot[2] == 254.0f);
}
