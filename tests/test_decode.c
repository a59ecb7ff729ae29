/* Decoder stage: formats, channel counts, limits, and broken input. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <png.h>
#include <stb_image_write.h>
#include <turbojpeg.h>

#include "decode.h"
#include "resize.h"
#include "testfs.h"
#include "testfs.h"
#include "testimg.h"

typedef struct result {
	int code;
	char reason[256];
	uint8_t *px; /* cfg's output size, malloc'd */
} result;

static rf_config config(int w, int h, int c, rf_fit fit)
{
	rf_config cfg;

	rf_config_init(&cfg);
	cfg.output.width = w;
	cfg.output.height = h;
	cfg.output.channels = c;
	cfg.output.fit = fit;
	return cfg;
}

static result decode_with(rf__decoder *d, const rf_config *cfg, const uint8_t *data, size_t len)
{
	result r = {0};

	r.px = malloc((size_t)cfg->output.width * cfg->output.height * cfg->output.channels);
	cr_assert_not_null(r.px);
	r.code = rf__decode_image(d, data, len, r.px, r.reason, sizeof(r.reason));
	return r;
}

static result decode(const rf_config *cfg, const uint8_t *data, size_t len)
{
	rf__decoder *d;
	result r;

	cr_assert_eq(rf__decoder_create(&d, cfg), 0);
	r = decode_with(d, cfg, data, len);
	rf__decoder_destroy(d);
	return r;
}

static uint8_t *encode(const char *fmt, int w, int h, int c, const uint8_t *px, size_t *len)
{
	uint8_t *data = timg_encode(fmt, w, h, c, px, len);

	cr_assert_not_null(data, "encoding %s %dx%dx%d", fmt, w, h, c);
	return data;
}

static double mean_abs_error(const uint8_t *a, const uint8_t *b, size_t n)
{
	double sum = 0;

	for (size_t i = 0; i < n; i++)
		sum += abs(a[i] - b[i]);
	return sum / n;
}

/* Decoding src's encoding at its own size gives src back, byte for byte. */
static void assert_lossless(const char *fmt, int w, int h, int c, const uint8_t *src)
{
	rf_config cfg = config(w, h, c, RF_FIT_STRETCH);
	size_t len;
	uint8_t *data = encode(fmt, w, h, c, src, &len);
	result r = decode(&cfg, data, len);

	cr_assert_eq(r.code, 0, "%s c=%d: %s", fmt, c, r.reason);
	cr_assert_arr_eq(r.px, src, (size_t)w * h * c, "%s %dx%d c=%d differs", fmt, w, h, c);
	free(r.px);
	free(data);
}

Test(decode, lossless_formats_round_trip)
{
	static const char *fmts[] = {"png", "bmp", "tga"};

	for (size_t f = 0; f < 3; f++)
		for (int c = 1; c <= 4; c++) {
			uint8_t *px;

			if (c == 2)
				continue;
			px = timg_pattern(37, 23, c, (unsigned)(f * 4 + c));
			assert_lossless(fmts[f], 37, 23, c, px);
			free(px);
		}
}

Test(decode, gif_round_trips)
{
	uint8_t *gray = timg_pattern(41, 19, 1, 3), *rgb = timg_pattern(41, 19, 3, 4);

	/* a 3-3-2 colour cube has 256 colours: the GIF palette keeps them all */
	for (int i = 0; i < 41 * 19 * 3; i += 3) {
		rgb[i] &= 0xE0;
		rgb[i + 1] &= 0xE0;
		rgb[i + 2] &= 0xC0;
	}
	assert_lossless("gif", 41, 19, 1, gray);
	assert_lossless("gif", 41, 19, 3, rgb);
	free(gray);
	free(rgb);
}

/* 3 x 2 RGB pixels for the hand-made files below. */
static const uint8_t tiny[] = {1, 2, 3, 40, 50, 60, 70, 80, 90, 200, 210, 220, 250, 0, 7, 9, 8, 7};

static void assert_decodes_to_tiny(const uint8_t *file, size_t len)
{
	rf_config cfg = config(3, 2, 3, RF_FIT_STRETCH);
	result r = decode(&cfg, file, len);

	cr_assert_eq(r.code, 0, "%s", r.reason);
	cr_assert_arr_eq(r.px, tiny, sizeof(tiny));
	free(r.px);
}

Test(decode, pnm_round_trips)
{
	uint8_t file[128];
	size_t n = (size_t)sprintf((char *)file, "P6\n# a comment\n3 2\n255\n");

	memcpy(file + n, tiny, sizeof(tiny));
	assert_decodes_to_tiny(file, n + sizeof(tiny));
}

Test(decode, raw_tga_round_trips)
{
	uint8_t file[18 + sizeof(tiny)] = {0};

	/* uncompressed true-colour TGA, top-left origin, pixels stored BGR */
	file[2] = 2;
	file[12] = 3;
	file[14] = 2;
	file[16] = 24;
	file[17] = 0x20;
	for (size_t i = 0; i < sizeof(tiny); i += 3) {
		file[18 + i] = tiny[i + 2];
		file[18 + i + 1] = tiny[i + 1];
		file[18 + i + 2] = tiny[i];
	}
	assert_decodes_to_tiny(file, sizeof(file));
}

Test(decode, jpeg_is_close)
{
	for (int c = 1; c <= 4; c++) {
		rf_config cfg = config(64, 48, c, RF_FIT_STRETCH);
		uint8_t *px, *data;
		size_t len;
		result r;

		if (c == 2)
			continue;
		px = timg_pattern(64, 48, c, 11);
		data = encode("jpg", 64, 48, c, px, &len);
		r = decode(&cfg, data, len);
		cr_assert_eq(r.code, 0, "c=%d: %s", c, r.reason);
		if (c == 4) {
			/* JPEG has no alpha: the decoder fills it opaque */
			for (int i = 0; i < 64 * 48; i++) {
				cr_assert_eq(r.px[i * 4 + 3], 255);
				r.px[i * 4 + 3] = px[i * 4 + 3];
			}
		}
		cr_assert_lt(mean_abs_error(r.px, px, (size_t)64 * 48 * c), 3.0, "c=%d", c);
		free(r.px);
		free(data);
		free(px);
	}
}

Test(decode, gray_jpeg_to_rgb_replicates)
{
	rf_config cfg = config(32, 32, 3, RF_FIT_STRETCH);
	uint8_t *px = timg_pattern(32, 32, 1, 2), *data;
	size_t len;
	result r;

	data = encode("jpg", 32, 32, 1, px, &len);
	r = decode(&cfg, data, len);
	cr_assert_eq(r.code, 0, "%s", r.reason);
	for (int i = 0; i < 32 * 32; i++) {
		cr_assert_eq(r.px[i * 3], r.px[i * 3 + 1]);
		cr_assert_eq(r.px[i * 3], r.px[i * 3 + 2]);
	}
	free(r.px);
	free(data);
	free(px);
}

/* A JPEG decoded at a DCT scale and resized is close to resizing the original. */
static void assert_scaled_jpeg_close(int w, int h, int out_w, int out_h, rf_fit fit)
{
	rf_config cfg = config(out_w, out_h, 3, fit);
	uint8_t *px = timg_pattern(w, h, 3, 9), *data, *want = malloc((size_t)out_w * out_h * 3);
	rf__image img = {px, w, h, 3, (size_t)w * 3};
	rf__resizer rs;
	rf__box box;
	size_t len;
	result r;

	data = encode("jpg", w, h, 3, px, &len);
	r = decode(&cfg, data, len);
	cr_assert_eq(r.code, 0, "%s", r.reason);
	rf__resizer_init(&rs);
	rf__fit_box(w, h, out_w, out_h, fit, &box);
	cr_assert_eq(rf__resize(&rs, &img, &box, want, out_w, out_h), 0);
	cr_assert_lt(mean_abs_error(r.px, want, (size_t)out_w * out_h * 3), 2.0, "%dx%d -> %dx%d fit %d", w,
		     h, out_w, out_h, fit);
	rf__resizer_free(&rs);
	free(r.px);
	free(want);
	free(data);
	free(px);
}

Test(decode, scaled_jpeg_matches_resized_original)
{
	assert_scaled_jpeg_close(800, 600, 100, 75, RF_FIT_STRETCH); /* exactly 1/8 */
	assert_scaled_jpeg_close(800, 600, 224, 224, RF_FIT_COVER);
	assert_scaled_jpeg_close(600, 800, 224, 224, RF_FIT_COVER);
	assert_scaled_jpeg_close(500, 375, 224, 224, RF_FIT_COVER);
	assert_scaled_jpeg_close(500, 375, 150, 300, RF_FIT_STRETCH);
	assert_scaled_jpeg_close(100, 80, 224, 224, RF_FIT_COVER); /* upscale */
}

/*
 * The JPEG decoder decodes only the window the resize reads (cropped columns,
 * skipped rows). Its result must be byte for byte what a full decode of the
 * whole image at the same DCT scale gives through the same resize.
 */
static void assert_window_decode_exact(int w, int h, int samp, int flags, int c, int out_w, int out_h)
{
	static const int pf[] = {0, TJPF_GRAY, 0, TJPF_RGB, TJPF_RGBA};
	rf_config cfg = config(out_w, out_h, c, RF_FIT_COVER);
	uint8_t *px = timg_pattern(w, h, samp == TJSAMP_GRAY ? 1 : 3, 17);
	uint8_t *want = malloc((size_t)out_w * out_h * c);
	unsigned char *jpeg = NULL;
	unsigned long size = 0;
	tjhandle enc = tjInitCompress(), dec = tjInitDecompress();
	int need_w, need_h, denom = 8;

	cr_assert_eq(tjCompress2(enc, px, w, 0, h, samp == TJSAMP_GRAY ? TJPF_GRAY : TJPF_RGB, &jpeg, &size, samp,
				 90, flags),
		     0, "%s", tjGetErrorStr2(enc));
	/* the decoder's scale: the smallest of 1/8, 1/4, 1/2 that still covers the target, else 1/1 */
	rf__fit_need(w, h, out_w, out_h, RF_FIT_COVER, &need_w, &need_h);
	while (denom > 1 && ((w + denom - 1) / denom < need_w || (h + denom - 1) / denom < need_h))
		denom /= 2;
	tjscalingfactor f = {1, denom};
	int sw = TJSCALED(w, f), sh = TJSCALED(h, f);
	uint8_t *full = malloc((size_t)sw * sh * c);
	cr_assert_eq(tjDecompress2(dec, jpeg, size, full, sw, sw * c, sh, pf[c], 0), 0, "%s", tjGetErrorStr2(dec));
	rf__image img = {full, sw, sh, c, (size_t)sw * c};
	rf__resizer rs;
	rf__box box;
	rf__resizer_init(&rs);
	rf__fit_box(sw, sh, out_w, out_h, RF_FIT_COVER, &box);
	cr_assert_eq(rf__resize(&rs, &img, &box, want, out_w, out_h), 0);

	result r = decode(&cfg, jpeg, size);
	cr_assert_eq(r.code, 0, "%s", r.reason);
	size_t n = (size_t)out_w * out_h * c, diff = 0;
	for (size_t i = 0; i < n; i++)
		diff += r.px[i] != want[i];
	cr_assert_eq(diff, 0, "%dx%d samp %d flags %d c %d -> %dx%d at 1/%d: %zu of %zu bytes differ", w, h, samp,
		     flags, c, out_w, out_h, denom, diff, n);
	rf__resizer_free(&rs);
	free(r.px);
	free(full);
	free(want);
	tjFree(jpeg);
	tjDestroy(enc);
	tjDestroy(dec);
	free(px);
}

Test(decode, window_decode_equals_full_decode)
{
	static const int samps[] = {TJSAMP_444, TJSAMP_422, TJSAMP_420, TJSAMP_440, TJSAMP_411, TJSAMP_GRAY};
	static const int sizes[][2] = {{500, 375}, {375, 500}, {500, 333}, {333, 500}, {403, 291}, {1000, 750},
				       {2000, 1500}, {230, 900}};

	for (size_t s = 0; s < sizeof(samps) / sizeof(*samps); s++)
		for (size_t z = 0; z < sizeof(sizes) / sizeof(*sizes); z++)
			assert_window_decode_exact(sizes[z][0], sizes[z][1], samps[s], 0, 3, 224, 224);
	/* progressive, other channel counts, a non-square target, an upscale */
	assert_window_decode_exact(500, 375, TJSAMP_420, TJFLAG_PROGRESSIVE, 3, 224, 224);
	assert_window_decode_exact(375, 500, TJSAMP_422, TJFLAG_PROGRESSIVE, 3, 224, 224);
	assert_window_decode_exact(500, 375, TJSAMP_420, 0, 1, 224, 224);
	assert_window_decode_exact(375, 500, TJSAMP_420, 0, 4, 224, 224);
	assert_window_decode_exact(640, 480, TJSAMP_420, 0, 3, 160, 48);
	assert_window_decode_exact(640, 480, TJSAMP_420, 0, 3, 48, 160);
	assert_window_decode_exact(120, 90, TJSAMP_420, 0, 3, 224, 224);
}

Test(decode, scaled_jpeg_cover_keeps_geometry)
{
	rf_config cfg = config(224, 224, 1, RF_FIT_COVER);
	uint8_t *px = malloc(800 * 600), *data;
	size_t len;
	result r;

	/* white, with a black 200 x 200 square in the middle */
	for (int y = 0; y < 600; y++)
		for (int x = 0; x < 800; x++)
			px[y * 800 + x] = (x >= 300 && x < 500 && y >= 200 && y < 400) ? 0 : 255;
	data = encode("jpg", 800, 600, 1, px, &len);
	r = decode(&cfg, data, len);
	cr_assert_eq(r.code, 0, "%s", r.reason);
	/* the middle 600 x 600 becomes 224 x 224: the square spans 74.7 .. 149.3 */
	cr_assert_lt(r.px[112 * 224 + 112], 10);
	cr_assert_lt(r.px[80 * 224 + 80], 10);
	cr_assert_lt(r.px[144 * 224 + 144], 10);
	cr_assert_gt(r.px[112 * 224 + 68], 245);
	cr_assert_gt(r.px[112 * 224 + 156], 245);
	cr_assert_gt(r.px[68 * 224 + 112], 245);
	cr_assert_gt(r.px[156 * 224 + 112], 245);
	free(r.px);
	free(data);
	free(px);
}

Test(decode, reused_decoder_matches_fresh_ones)
{
	static const int sizes[][2] = {{320, 240}, {40, 30}, {320, 240}, {99, 301}};
	rf_config cfg = config(64, 64, 3, RF_FIT_COVER);
	rf__decoder *d;

	cr_assert_eq(rf__decoder_create(&d, &cfg), 0);
	for (size_t i = 0; i < 8; i++) {
		int w = sizes[i % 4][0], h = sizes[i % 4][1];
		uint8_t *px = timg_pattern(w, h, 3, (unsigned)i), *data;
		size_t len;
		result got, want;

		data = encode(i < 4 ? "jpg" : "png", w, h, 3, px, &len);
		got = decode_with(d, &cfg, data, len);
		want = decode(&cfg, data, len);
		cr_assert_eq(got.code, 0, "%s", got.reason);
		cr_assert_arr_eq(got.px, want.px, 64 * 64 * 3, "image %zu", i);
		free(got.px);
		free(want.px);
		free(data);
		free(px);
	}
	rf__decoder_destroy(d);
}

typedef struct sink {
	uint8_t buf[8192];
	size_t len;
} sink;

static void sink_put(void *ctx, void *data, int size)
{
	sink *k = ctx;

	cr_assert_leq(k->len + (size_t)size, sizeof(k->buf));
	memcpy(k->buf + k->len, data, (size_t)size);
	k->len += (size_t)size;
}

/* stb 2.27's HDR reader hangs on cut RLE data (CVE-2021-42715, found by fuzzing): HDR is refused. */
Test(decode, hdr_is_refused_as_unsupported)
{
	rf_config cfg = config(8, 4, 3, RF_FIT_STRETCH);
	static sink out;
	float hdr[8 * 4 * 3];
	result r;

	for (size_t i = 0; i < sizeof(hdr) / sizeof(hdr[0]); i++)
		hdr[i] = 0.5f;
	cr_assert(stbi_write_hdr_to_func(sink_put, &out, 8, 4, 3, hdr));
	r = decode(&cfg, out.buf, out.len);
	cr_assert_eq(r.code, RF_EFORMAT, "%s", r.reason);
	cr_assert_not_null(strstr(r.reason, "not supported"), "%s", r.reason);
	free(r.px);
}

/* The fuzzers' reproducers for stb 2.27 bugs: each must now end as an error, quickly and cleanly. */
Test(broken, fuzz_reproducers_fail_cleanly, .timeout = 30)
{
	static const char *const files[] = {"decode_hdr_rle_truncated_hang", "decode_pnm16_convert_overflow",
					    "decode_png_empty_idat_null_offset", "decode_pnm_header_int_overflow",
					    "decode_psd_matte_float_cast"};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/tests/fuzz/crashes/%s", RF_SOURCE_DIR, files[i]);
		size_t len = 0;
		uint8_t *data = tfs_read(path, &len);
		cr_assert_not_null(data, "missing %s", path);
		cr_assert_gt(len, 1);
		/* The fuzz target reads its config from the first byte; any config must be safe. */
		for (int c = 1; c <= 4; c++) {
			if (c == 2)
				continue;
			rf_config cfg = config(16, 16, c, RF_FIT_COVER);
			result r = decode(&cfg, data + 1, len - 1);
			/* Sanitizer builds catch the overflow, the timeout catches the hang; the result must be sane. */
			cr_assert(r.code == 0 || r.code == RF_EFORMAT || r.code == RF_EDECODE || r.code == RF_ETOOBIG,
				  "%s: %s", files[i], rf_err_name(r.code));
			if (strstr(files[i], "hdr"))
				cr_assert_eq(r.code, RF_EFORMAT, "%s", r.reason);
			free(r.px);
		}
		free(data);
	}
}

/* ---- limits ---- */

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void put_le16(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

/* The offset of the first SOFn marker's height field. */
static size_t jpeg_sof(const uint8_t *data, size_t len)
{
	for (size_t i = 2; i + 9 < len; i++)
		if (data[i] == 0xFF && (data[i + 1] == 0xC0 || data[i + 1] == 0xC1 || data[i + 1] == 0xC2))
			return i + 5;
	cr_assert_fail("no SOF marker");
	return 0;
}

/* PNG's chunk CRC (CRC-32, reflected, polynomial 0xEDB88320). */
static uint32_t png_crc(const uint8_t *p, size_t n)
{
	uint32_t crc = 0xFFFFFFFFu;
	for (size_t i = 0; i < n; i++) {
		crc ^= p[i];
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
	}
	return crc ^ 0xFFFFFFFFu;
}

/* A small image of fmt whose header claims 40000 x 40000 (with a valid PNG chunk CRC). */
static uint8_t *bomb(const char *fmt, size_t *len)
{
	uint8_t *px = timg_pattern(16, 16, 3, 1), *data = encode(fmt, 16, 16, 3, px, len);

	free(px);
	if (!strcmp(fmt, "png")) {
		put_be32(data + 16, 40000); /* IHDR width, height */
		put_be32(data + 20, 40000);
		put_be32(data + 29, png_crc(data + 12, 17)); /* over "IHDR" and its 13 bytes */
	} else if (!strcmp(fmt, "bmp")) {
		put_le32(data + 18, 40000);
		put_le32(data + 22, 40000);
	} else if (!strcmp(fmt, "gif")) {
		size_t image = 13 + 768; /* after the logical screen and its 256-colour palette */

		put_le16(data + 6, 40000);
		put_le16(data + 8, 40000);
		put_le16(data + image + 5, 40000);
		put_le16(data + image + 7, 40000);
	} else {
		size_t sof = jpeg_sof(data, *len);

		data[sof] = data[sof + 2] = 40000 >> 8;
		data[sof + 1] = data[sof + 3] = 40000 & 0xFF;
	}
	return data;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

Test(limits, header_over_max_pixels_is_rejected_quickly)
{
	static const char *fmts[] = {"png", "bmp", "gif", "jpg"};
	rf_config cfg = config(224, 224, 3, RF_FIT_COVER);

	for (size_t i = 0; i < 4; i++) {
		size_t len;
		uint8_t *data = bomb(fmts[i], &len);
		double t0 = now();
		result r = decode(&cfg, data, len);
		double took = now() - t0;

		cr_assert_eq(r.code, RF_ETOOBIG, "%s: %d %s", fmts[i], r.code, r.reason);
		cr_assert_str_eq(r.reason, "image is 40000x40000 (1600000000 pixels), over "
					   "limits.max_pixels 100000000");
		cr_assert_lt(took, 0.25, "%s took %.3f s", fmts[i], took);
		free(r.px);
		free(data);
	}
}

Test(limits, max_pixels_is_inclusive)
{
	static const char *fmts[] = {"png", "jpg"};

	for (size_t i = 0; i < 2; i++) {
		rf_config cfg = config(32, 32, 3, RF_FIT_COVER);
		uint8_t *px = timg_pattern(64, 48, 3, 1), *data;
		size_t len;
		result r;

		data = encode(fmts[i], 64, 48, 3, px, &len);
		cfg.limits.max_pixels = 64 * 48;
		r = decode(&cfg, data, len);
		cr_assert_eq(r.code, 0, "%s: %s", fmts[i], r.reason);
		free(r.px);
		cfg.limits.max_pixels = 64 * 48 - 1;
		r = decode(&cfg, data, len);
		cr_assert_eq(r.code, RF_ETOOBIG, "%s", fmts[i]);
		free(r.px);
		free(data);
		free(px);
	}
}

/* Only limits.max_pixels bounds a side: libpng's default would refuse over 1,000,000. */
Test(limits, png_wider_than_a_million_pixels_decodes)
{
	enum { W = 1000001 };
	rf_config cfg = config(16, 1, 1, RF_FIT_STRETCH);
	uint8_t *px = malloc(W), *data;
	size_t len;
	memset(px, 200, W);
	data = encode("png", W, 1, 1, px, &len);
	result r = decode(&cfg, data, len);
	cr_assert_eq(r.code, 0, "%s", r.reason);
	cr_assert_eq(r.px[7], 200);
	free(r.px);
	free(data);
	free(px);
}

/* ---- broken input ---- */

/* Decodes the first n bytes of data from a copy of exactly n bytes (ASan sees overreads). */
static result decode_prefix(const rf_config *cfg, const uint8_t *data, size_t n)
{
	uint8_t *copy = malloc(n ? n : 1);
	result r;

	memcpy(copy, data, n);
	r = decode(cfg, copy, n);
	free(copy);
	return r;
}

static void assert_cuts_fail(const char *fmt, const uint8_t *data, size_t len, const size_t *cuts,
			     size_t ncuts, const char *prefix)
{
	rf_config cfg = config(64, 64, 3, RF_FIT_COVER);

	for (size_t i = 0; i < ncuts; i++) {
		result r = decode_prefix(&cfg, data, cuts[i]);

		cr_assert_eq(r.code, RF_EDECODE, "%s cut at %zu of %zu: %d %s", fmt, cuts[i], len, r.code,
			     r.reason);
		cr_assert(!strncmp(r.reason, prefix, strlen(prefix)), "%s cut at %zu: '%s'", fmt, cuts[i],
			  r.reason);
		free(r.px);
	}
}

Test(broken, truncated_jpeg_fails)
{
	uint8_t *px = timg_pattern(160, 120, 3, 5), *data;
	size_t len, cuts[16], n = 0;

	data = encode("jpg", 160, 120, 3, px, &len);
	for (int k = 1; k < 8; k++)
		cuts[n++] = len * k / 8;
	cuts[n++] = 3;
	cuts[n++] = 20;
	cuts[n++] = len - 1; /* half the EOI marker */
	cuts[n++] = len - 2; /* no EOI marker */
	assert_cuts_fail("jpeg", data, len, cuts, n, "jpeg: ");
	free(data);
	free(px);
}

Test(broken, truncated_png_fails)
{
	rf_config cfg = config(64, 64, 3, RF_FIT_COVER);
	uint8_t *px = timg_pattern(160, 120, 3, 5), *data;
	size_t len, cuts[16], n = 0;
	result r;

	data = encode("png", 160, 120, 3, px, &len);
	for (int k = 1; k < 8; k++)
		cuts[n++] = len * k / 8;
	cuts[n++] = 8;	      /* signature only */
	cuts[n++] = 20;	      /* inside IHDR */
	cuts[n++] = len - 12; /* no IEND chunk */
	cuts[n++] = len - 9;  /* IEND's length only */
	cuts[n++] = len - 1;  /* inside IEND's CRC: libpng reads up to IEND, so even this fails */
	assert_cuts_fail("png", data, len, cuts, n, "png: ");
	r = decode_prefix(&cfg, data, len);
	cr_assert_eq(r.code, 0, "the whole file decodes: %s", r.reason);
	free(r.px);
	free(data);
	free(px);
}

/* 33 x 17 px as a BMP (stb's writer), uncompressed TGA or binary PNM (by hand). */
static uint8_t *raw_file(const char *fmt, const uint8_t *px, size_t *len)
{
	size_t pixels = 33 * 17 * 3, header = !strcmp(fmt, "tga") ? 18 : 13;
	uint8_t *data;

	if (!strcmp(fmt, "bmp"))
		return encode("bmp", 33, 17, 3, px, len);
	*len = header + pixels;
	data = calloc(1, *len);
	cr_assert_not_null(data);
	if (!strcmp(fmt, "tga")) {
		data[2] = 2; /* true colour, uncompressed */
		data[12] = 33;
		data[14] = 17;
		data[16] = 24;
	} else {
		memcpy(data, "P6\n33 17\n255\n", 13);
	}
	memcpy(data + header, px, pixels);
	return data;
}

Test(broken, truncated_raw_formats_fail)
{
	static const char *fmts[] = {"bmp", "tga", "pnm"};
	uint8_t *px = timg_pattern(33, 17, 3, 5);

	for (size_t f = 0; f < 3; f++) {
		rf_config cfg = config(64, 64, 3, RF_FIT_COVER);
		size_t len;
		uint8_t *data = raw_file(fmts[f], px, &len);
		/* len - 4: a BMP may lack its last row's padding, not pixels */
		size_t cuts[] = {len - 4, len / 2, 30};
		result r = decode(&cfg, data, len);

		cr_assert_eq(r.code, 0, "%s: %s", fmts[f], r.reason);
		free(r.px);
		assert_cuts_fail(fmts[f], data, len, cuts, 3, fmts[f]);
		free(data);
	}
	free(px);
}

/*
 * An uncompressed 8-bit RGB PSD of px, w x h with c channels: header, three
 * empty sections, one plane per channel.
 */
static uint8_t *raw_psd(const uint8_t *px, int w, int h, int c, size_t *len)
{
	size_t header = 26 + 4 + 4 + 4 + 2, plane = (size_t)w * h;
	uint8_t *data = calloc(1, header + (size_t)c * plane);

	cr_assert_not_null(data);
	memcpy(data, "8BPS", 4);
	data[5] = 1;                /* version */
	data[13] = (uint8_t)c;      /* channels */
	put_be32(data + 14, (uint32_t)h);
	put_be32(data + 18, (uint32_t)w);
	data[23] = 8; /* depth */
	data[25] = 3; /* RGB; the section lengths and compression that follow stay 0 */
	for (size_t k = 0; k < (size_t)c; k++)
		for (size_t i = 0; i < plane; i++)
			data[header + k * plane + i] = px[i * (size_t)c + k];
	*len = header + (size_t)c * plane;
	return data;
}

/*
 * stb 2.27 "removes the white matte" of a 4-channel PSD: a colour darker than
 * its alpha allows becomes a negative float cast to unsigned char (undefined;
 * found by fuzz_decode). Such files are refused from the header; RGB decodes.
 */
Test(broken, psd_with_alpha_is_refused_and_rgb_psd_decodes)
{
	uint8_t rgba[4 * 4 * 4];
	size_t len;

	for (size_t i = 0; i < sizeof(rgba); i += 4)
		rgba[i] = 0, rgba[i + 1] = 10, rgba[i + 2] = 20, rgba[i + 3] = 128;
	uint8_t *data = raw_psd(rgba, 4, 4, 4, &len);
	rf_config cfg = config(4, 4, 3, RF_FIT_STRETCH);
	result r = decode(&cfg, data, len);
	cr_assert_eq(r.code, RF_EFORMAT, "%s", r.reason);
	cr_assert(strstr(r.reason, "psd: 4 channels"), "%s", r.reason);
	free(r.px);
	free(data);

	uint8_t rgb[4 * 4 * 3];
	for (size_t i = 0; i < sizeof(rgb); i++)
		rgb[i] = (uint8_t)(i * 5);
	data = raw_psd(rgb, 4, 4, 3, &len);
	r = decode(&cfg, data, len);
	cr_assert_eq(r.code, 0, "%s", r.reason);
	cr_assert_arr_eq(r.px, rgb, sizeof(rgb));
	free(r.px);
	free(data);
}

/*
 * GIF, RLE TGA and PSD carry no size stb could check up front: a file cut
 * inside its image data still fails, because stb asks for bytes past the end.
 */
Test(broken, truncated_gif_rle_tga_and_psd_fail)
{
	static const char *fmts[] = {"gif", "tga", "psd"};
	uint8_t *px = timg_pattern(64, 48, 3, 5);

	for (size_t f = 0; f < 3; f++) {
		rf_config cfg = config(32, 32, 3, RF_FIT_COVER);
		size_t len;
		uint8_t *data = f == 2 ? raw_psd(px, 64, 48, 3, &len) : encode(fmts[f], 64, 48, 3, px, &len);
		size_t cuts[8], n = 0;
		result r = decode(&cfg, data, len);

		cr_assert_eq(r.code, 0, "%s: %s", fmts[f], r.reason);
		free(r.px);
		if (f == 1)
			cr_assert_eq(data[2], 10, "stb_image_write should write RLE TGA (type 10), wrote %d", data[2]);
		for (int k = 1; k < 8; k++)
			cuts[n++] = len * k / 8;
		if (f != 0)
			cuts[n++] = len - 1; /* a GIF may lose its trailer byte: its image data is whole */
		assert_cuts_fail(fmts[f], data, len, cuts, n, fmts[f]);
		free(data);
	}
	free(px);
}

/*
 * The smallest RLE TGA that holds its pixels: one packet of 128 per 128. It
 * decodes, and the same header with one packet fewer is refused from its size
 * alone, before stb fills a million pixels.
 */
Test(broken, rle_tga_shorter_than_its_header_allows_fails_up_front)
{
	enum { W = 1000, H = 1000, PACKETS = (W * H + 127) / 128 };
	size_t len = 18 + (size_t)PACKETS * 4;
	uint8_t *file = calloc(1, len);
	rf_config cfg = config(8, 8, 3, RF_FIT_STRETCH);

	cr_assert_not_null(file);
	file[2] = 10; /* RLE true colour */
	put_le16(file + 12, W);
	put_le16(file + 14, H);
	file[16] = 24;
	for (size_t p = 0; p < PACKETS; p++) {
		uint8_t *packet = file + 18 + p * 4;
		packet[0] = 0x80 | 127; /* the last packet claims pixels past the end: stb stops at W*H */
		packet[1] = 30, packet[2] = 20, packet[3] = 10; /* BGR */
	}
	result r = decode(&cfg, file, len);
	cr_assert_eq(r.code, 0, "%s", r.reason);
	for (size_t i = 0; i < 8 * 8 * 3; i += 3)
		cr_assert(r.px[i] == 10 && r.px[i + 1] == 20 && r.px[i + 2] == 30, "pixel %zu", i / 3);
	free(r.px);

	r = decode(&cfg, file, len - 4);
	cr_assert_eq(r.code, RF_EDECODE);
	cr_assert(strstr(r.reason, "truncated") && strstr(r.reason, "at least"), "%s", r.reason);
	free(r.px);
	r = decode(&cfg, file, 21);
	cr_assert_eq(r.code, RF_EDECODE);
	cr_assert(strstr(r.reason, "at least 31270 bytes"), "%s", r.reason);
	free(r.px);
	free(file);
}

/*
 * An 8-bit BMP of 16 x 16 pixels, every one index pixel, with a palette of
 * colours entries; offset is where the pixels start (0: right after the palette).
 */
static uint8_t *paletted_bmp(unsigned colours, uint8_t pixel, uint32_t offset, size_t *len)
{
	enum { W = 16, H = 16 };
	uint32_t palette_end = 14 + 40 + 4 * colours, at = offset ? offset : palette_end;
	*len = (at > palette_end ? at : palette_end) + W * H;
	uint8_t *b = calloc(1, *len);
	b[0] = 'B';
	b[1] = 'M';
	put_le32(b + 2, (uint32_t)*len);
	put_le32(b + 10, at);
	put_le32(b + 14, 40);
	put_le32(b + 18, W);
	put_le32(b + 22, H);
	put_le16(b + 26, 1);
	put_le16(b + 28, 8);
	put_le32(b + 46, colours);
	for (unsigned i = 0; i < colours; i++) {
		b[54 + 4 * i] = (uint8_t)(10 * i + 5); /* blue, green, red, 0 */
		b[55 + 4 * i] = (uint8_t)(20 * i + 5);
		b[56 + 4 * i] = (uint8_t)(30 * i + 5);
	}
	memset(b + at, pixel, W * H);
	return b;
}

static void assert_bmp_fails(unsigned colours, uint8_t pixel, uint32_t offset, const char *reason)
{
	rf_config cfg = config(16, 16, 3, RF_FIT_STRETCH);
	size_t len;
	uint8_t *bmp = paletted_bmp(colours, pixel, offset, &len);
	result r = decode(&cfg, bmp, len);
	cr_assert_eq(r.code, RF_EDECODE, "%s", r.reason);
	cr_assert_str_eq(r.reason, reason);
	free(r.px);
	free(bmp);
}

/* stb leaves a BMP's palette uninitialised past its entries: such pixels would be stack bytes. */
Test(broken, bmp_pixels_outside_the_palette_fail)
{
	rf_config cfg = config(16, 16, 3, RF_FIT_STRETCH);
	size_t len;
	uint8_t *ok = paletted_bmp(2, 1, 0, &len);
	result r = decode(&cfg, ok, len);
	cr_assert_eq(r.code, 0, "%s", r.reason);
	cr_assert(r.px[0] == 35 && r.px[1] == 25 && r.px[2] == 15, "palette entry 1 is (35, 25, 15), got (%d, %d, %d)",
		  r.px[0], r.px[1], r.px[2]);
	free(r.px);
	free(ok);

	assert_bmp_fails(2, 200, 0, "bmp: pixel index 200 past the 2-entry palette");
	/* Pixels starting inside the header: stb sizes the palette at -1 and reads none of it. */
	assert_bmp_fails(0, 1, 50, "bmp: the header leaves room for -1 palette entries (8-bit pixels)");
}

Test(broken, empty_file)
{
	rf_config cfg = config(64, 64, 3, RF_FIT_COVER);
	result r = decode(&cfg, (const uint8_t *)"", 0);

	cr_assert_eq(r.code, RF_EFORMAT);
	cr_assert_str_eq(r.reason, "empty file");
	free(r.px);
}

Test(broken, random_bytes_are_not_an_image)
{
	rf_config cfg = config(64, 64, 3, RF_FIT_COVER);
	uint8_t buf[4096];
	uint32_t s = 12345;

	for (int round = 0; round < 64; round++) {
		size_t n = 1 + (size_t)round * 61 % sizeof(buf);
		result r;

		for (size_t i = 0; i < n; i++) {
			s = s * 1103515245u + 12345u;
			buf[i] = (uint8_t)(s >> 16);
		}
		r = decode_prefix(&cfg, buf, n);
		cr_assert_eq(r.code, RF_EFORMAT, "round %d (%zu bytes): %d %s", round, n, r.code, r.reason);
		cr_assert_str_eq(r.reason, "unsupported image format");
		free(r.px);
	}
}

Test(broken, text_is_not_an_image)
{
	static const char *texts[] = {
		"hello, this is not an image\n",
		"BMW is a car, not a bitmap\n",
		"P6 is the start of a PNM header but this is just prose\n",
		"{\"json\": true}",
	};
	rf_config cfg = config(64, 64, 3, RF_FIT_COVER);

	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		result r = decode_prefix(&cfg, (const uint8_t *)texts[i], strlen(texts[i]));

		cr_assert_eq(r.code, RF_EFORMAT, "'%s': %d %s", texts[i], r.code, r.reason);
		free(r.px);
	}
}

/* A JPEG whose frame header claims 99-bit samples. */
static uint8_t *bad_precision_jpeg(size_t *len)
{
	uint8_t *px = timg_pattern(24, 16, 3, 1), *data = encode("jpg", 24, 16, 3, px, len);

	data[jpeg_sof(data, *len) - 1] = 99;
	free(px);
	return data;
}

/*
 * A tall image to a square cover output: only the middle fifth of the rows is
 * decoded into pixels. Cuts in the rows above and below that window must
 * still fail: skipped rows are entropy-decoded and the stream is read to its end.
 */
Test(broken, jpeg_cut_outside_the_decoded_window_fails)
{
	rf_config cfg = config(32, 32, 3, RF_FIT_COVER);
	uint8_t *px = timg_pattern(96, 480, 3, 11), *data;
	size_t len, cuts[16], n = 0;

	data = encode("jpg", 96, 480, 3, px, &len);
	result whole = decode(&cfg, data, len);
	cr_assert_eq(whole.code, 0, "%s", whole.reason);
	free(whole.px);
	for (int k = 1; k < 10; k++)
		cuts[n++] = len * k / 10;
	cuts[n++] = len - 2; /* no EOI marker */
	assert_cuts_fail("jpeg", data, len, cuts, n, "jpeg: ");
	free(data);
	free(px);
}

Test(broken, corrupt_jpeg_header)
{
	static const uint8_t junk[] = {0xFF, 0xD8, 0xFF, 0x00, 'n', 'o', 'p', 'e', 0, 0, 0, 0};
	rf_config cfg = config(64, 64, 3, RF_FIT_COVER);
	size_t len;
	uint8_t *bad = bad_precision_jpeg(&len);
	result r = decode_prefix(&cfg, junk, sizeof(junk));

	cr_assert_eq(r.code, RF_EDECODE);
	cr_assert(!strncmp(r.reason, "jpeg: ", 6), "%s", r.reason);
	free(r.px);
	r = decode(&cfg, bad, len);
	cr_assert_eq(r.code, RF_EDECODE);
	cr_assert_str_eq(r.reason, "jpeg: Unsupported JPEG data precision 99");
	free(r.px);
	free(bad);
}

Test(broken, cmyk_jpeg_is_unsupported)
{
	rf_config cfg = config(32, 32, 3, RF_FIT_COVER);
	uint8_t *px = timg_pattern(32, 32, 4, 1);
	unsigned char *jpeg = NULL;
	unsigned long size = 0;
	tjhandle tj = tjInitCompress();
	result r;

	cr_assert_eq(tjCompress2(tj, px, 32, 0, 32, TJPF_CMYK, &jpeg, &size, TJSAMP_444, 90, 0), 0);
	r = decode(&cfg, jpeg, size);
	cr_assert_eq(r.code, RF_EFORMAT, "%d %s", r.code, r.reason);
	cr_assert_str_eq(r.reason, "CMYK JPEG not supported");
	free(r.px);
	tjFree(jpeg);
	tjDestroy(tj);
	free(px);
}

Test(broken, errors_do_not_leak_into_later_images)
{
	rf_config cfg = config(64, 64, 3, RF_FIT_COVER);
	uint8_t *px = timg_pattern(96, 64, 3, 5), *data, *bad;
	size_t len, bad_len;
	rf__decoder *d;
	result cut, good, wrong;

	data = encode("jpg", 96, 64, 3, px, &len);
	bad = bad_precision_jpeg(&bad_len);
	cr_assert_eq(rf__decoder_create(&d, &cfg), 0);
	cut = decode_with(d, &cfg, data, len / 2);
	good = decode_with(d, &cfg, data, len);
	wrong = decode_with(d, &cfg, bad, bad_len);
	cr_assert_eq(cut.code, RF_EDECODE);
	cr_assert_str_eq(cut.reason, "jpeg: Premature end of JPEG file");
	cr_assert_eq(good.code, 0, "after a failure: %s", good.reason);
	cr_assert_str_eq(good.reason, "");
	/* the third image reports its own error, not the first one's */
	cr_assert_eq(wrong.code, RF_EDECODE);
	cr_assert_str_eq(wrong.reason, "jpeg: Unsupported JPEG data precision 99");
	free(cut.px);
	free(good.px);
	free(wrong.px);
	rf__decoder_destroy(d);
	free(bad);
	free(data);
	free(px);
}

Test(broken, format_comes_from_bytes_not_names)
{
	rf_config cfg = config(40, 30, 3, RF_FIT_STRETCH);
	uint8_t *px = timg_pattern(40, 30, 3, 8);
	char *dir = tfs_mkdtemp();

	cr_assert_not_null(dir);
	for (int i = 0; i < 2; i++) {
		/* a JPEG named .png, then a PNG named .jpg */
		char *path = tfs_path(dir, i ? "drawing.jpg" : "photo.png");
		size_t len;
		uint8_t *data;
		result r;

		cr_assert_eq(timg_write(path, i ? "png" : "jpg", 40, 30, 3, px), 0);
		data = tfs_read(path, &len);
		cr_assert_not_null(data);
		r = decode(&cfg, data, len);
		cr_assert_eq(r.code, 0, "%s: %s", path, r.reason);
		cr_assert_lt(mean_abs_error(r.px, px, 40 * 30 * 3), i ? 0.001 : 3.0);
		free(r.px);
		free(data);
		free(path);
	}
	tfs_rmtree(dir);
	free(dir);
	free(px);
}

Test(decode, progressive_jpeg)
{
	rf_config cfg = config(64, 48, 3, RF_FIT_STRETCH);
	uint8_t *px = timg_pattern(64, 48, 3, 4);
	unsigned char *jpeg = NULL;
	unsigned long size = 0;
	tjhandle tj = tjInitCompress();
	result r;

	cr_assert_eq(
		tjCompress2(tj, px, 64, 0, 48, TJPF_RGB, &jpeg, &size, TJSAMP_420, 90, TJFLAG_PROGRESSIVE),
		0);
	r = decode(&cfg, jpeg, size);
	cr_assert_eq(r.code, 0, "%s", r.reason);
	cr_assert_lt(mean_abs_error(r.px, px, 64 * 48 * 3), 4.0);
	free(r.px);
	/* a progressive JPEG cut after its first scans would otherwise look like a blurry image */
	r = decode_prefix(&cfg, jpeg, size * 2 / 3);
	cr_assert_eq(r.code, RF_EDECODE, "%s", r.reason);
	free(r.px);
	tjFree(jpeg);
	tjDestroy(tj);
	free(px);
}

/* Inputs for the thread test: good and broken files of several formats. */
typedef struct corpus {
	rf_config cfg;
	uint8_t *data[6];
	size_t len[6];
	result want[6];
} corpus;

static void *decode_corpus(void *arg)
{
	corpus *c = arg;
	rf__decoder *d;
	int bad = 0;

	if (rf__decoder_create(&d, &c->cfg))
		return (void *)1;
	for (int round = 0; round < 40; round++)
		for (int i = 0; i < 6; i++) {
			int k = (i + round) % 6;
			result r = decode_with(d, &c->cfg, c->data[k], c->len[k]);

			bad |= r.code != c->want[k].code || strcmp(r.reason, c->want[k].reason) ||
			       (!r.code && memcmp(r.px, c->want[k].px, 32 * 32 * 3));
			free(r.px);
		}
	rf__decoder_destroy(d);
	return (void *)(intptr_t)bad;
}

Test(decode, parallel_decoders_agree)
{
	static const char *fmts[] = {"jpg", "png", "gif", "bmp"};
	corpus c = {.cfg = config(32, 32, 3, RF_FIT_COVER)};
	pthread_t th[4];

	for (int i = 0; i < 4; i++) {
		int w = 50 + 10 * i, h = 70 - 5 * i;
		uint8_t *px = timg_pattern(w, h, 3, (unsigned)i);

		c.data[i] = encode(fmts[i], w, h, 3, px, &c.len[i]);
		free(px);
	}
	/* a cut JPEG, and a PNG with an unknown critical chunk where IEND was */
	c.data[4] = c.data[0];
	c.len[4] = c.len[0] / 2;
	c.data[5] = malloc(c.len[1]);
	memcpy(c.data[5], c.data[1], c.len[1]);
	c.len[5] = c.len[1];
	memcpy(c.data[5] + c.len[5] - 8, "ABCD", 4);
	for (int i = 0; i < 6; i++)
		c.want[i] = decode(&c.cfg, c.data[i], c.len[i]);
	cr_assert_eq(c.want[4].code, RF_EDECODE);
	cr_assert_eq(c.want[5].code, RF_EDECODE);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, decode_corpus, &c), 0);
	for (int i = 0; i < 4; i++) {
		void *bad;

		cr_assert_eq(pthread_join(th[i], &bad), 0);
		cr_assert_null(bad, "thread %d saw a different result", i);
	}
	for (int i = 0; i < 6; i++) {
		free(c.want[i].px);
		if (i != 4)
			free(c.data[i]);
	}
}

/* Junk bytes between two header markers only warn in libjpeg: such files decode, as in other readers. */
Test(broken, extraneous_bytes_between_markers_are_tolerated)
{
	rf_config cfg = config(64, 48, 3, RF_FIT_STRETCH);
	uint8_t *px = timg_pattern(64, 48, 3, 5);
	size_t len;
	uint8_t *data = encode("jpg", 64, 48, 3, px, &len);
	/* SOI, then the first segment (FFxx + big-endian length): junk goes right after it. */
	cr_assert(data[2] == 0xFF && data[3] >= 0xE0);
	size_t at = 4 + ((size_t)data[4] << 8 | data[5]);
	uint8_t *junk = malloc(len + 3);
	memcpy(junk, data, at);
	memcpy(junk + at, "\x12\x34\x56", 3);
	memcpy(junk + at + 3, data + at, len - at);
	result clean = decode(&cfg, data, len);
	result r = decode(&cfg, junk, len + 3);
	cr_assert_eq(clean.code, 0, "%s", clean.reason);
	cr_assert_eq(r.code, 0, "%s", r.reason);
	cr_assert_eq(memcmp(r.px, clean.px, (size_t)64 * 48 * 3), 0);
	free(clean.px);
	free(r.px);
	free(junk);
	free(data);
	free(px);
}

/* A JFIF header naming version 2.01: libjpeg warns, the pixels are the same. */
Test(decode, newer_jfif_version_decodes)
{
	rf_config cfg = config(64, 48, 3, RF_FIT_STRETCH);
	uint8_t *px = timg_pattern(64, 48, 3, 5);
	size_t len;
	uint8_t *data = encode("jpg", 64, 48, 3, px, &len);
	cr_assert(data[2] == 0xFF && data[3] == 0xE0 && !memcmp(data + 6, "JFIF", 5), "the encoder writes JFIF");
	result clean = decode(&cfg, data, len);
	data[11] = 2; /* major version, after FFE0, length and "JFIF\0" */
	result r = decode(&cfg, data, len);
	cr_assert_eq(clean.code, 0, "%s", clean.reason);
	cr_assert_eq(r.code, 0, "%s", r.reason);
	cr_assert_eq(memcmp(r.px, clean.px, (size_t)64 * 48 * 3), 0);
	free(clean.px);
	free(r.px);
	free(data);
	free(px);
}

/* Channel conversion for stb formats happens in ringfeed: replicate gray, luma for colour, alpha dropped or opaque. */
Test(decode, stb_channel_conversions)
{
	const uint8_t rgba[2 * 4] = {200, 100, 50, 7, 10, 20, 30, 255};
	size_t len;
	uint8_t *png = encode("png", 2, 1, 4, rgba, &len);
	rf_config to_rgb = config(2, 1, 3, RF_FIT_STRETCH), to_gray = config(2, 1, 1, RF_FIT_STRETCH);
	result rgb = decode(&to_rgb, png, len), gray = decode(&to_gray, png, len);
	cr_assert_eq(rgb.code, 0, "%s", rgb.reason);
	cr_assert_eq(gray.code, 0, "%s", gray.reason);
	const uint8_t want_rgb[6] = {200, 100, 50, 10, 20, 30};
	cr_assert_arr_eq(rgb.px, want_rgb, 6);
	cr_assert_eq(gray.px[0], (200 * 77 + 100 * 150 + 50 * 29) >> 8);
	cr_assert_eq(gray.px[1], (10 * 77 + 20 * 150 + 30 * 29) >> 8);
	free(rgb.px);
	free(gray.px);
	free(png);

	/* Gray to RGBA: replicated, opaque. */
	const uint8_t pgm[] = "P5\n2 1\n255\n\xff\x80";
	rf_config to_rgba = config(2, 1, 4, RF_FIT_STRETCH);
	result r = decode(&to_rgba, pgm, sizeof(pgm) - 1);
	cr_assert_eq(r.code, 0, "%s", r.reason);
	const uint8_t want_rgba[8] = {255, 255, 255, 255, 128, 128, 128, 255};
	cr_assert_arr_eq(r.px, want_rgba, 8);
	free(r.px);

	/* 16-bit PNM: stb 2.27 reads the big-endian samples backwards, so it is refused, not mis-decoded. */
	const uint8_t pgm16[] = "P5\n2 1\n65535\n\xff\xff\x80\x00";
	r = decode(&to_rgba, pgm16, sizeof(pgm16) - 1);
	cr_assert_eq(r.code, RF_EFORMAT, "%s", r.reason);
	free(r.px);
}

/* PNG flavours stb_image 2.27 mishandled or that need expanding: 16-bit and paletted, through libpng. */
static uint8_t *write_png(png_image *image, const void *pixels, const void *colormap, size_t *len)
{
	png_alloc_size_t size = 0;
	cr_assert(png_image_write_to_memory(image, NULL, &size, 0, pixels, 0, colormap), "%s", image->message);
	uint8_t *buf = malloc(size);
	cr_assert(png_image_write_to_memory(image, buf, &size, 0, pixels, 0, colormap), "%s", image->message);
	*len = size;
	return buf;
}

Test(decode, png_16_bit_and_palette)
{
	/* 16-bit gray keeps each sample's high byte (as stb and Pillow do), replicated to RGB. */
	const uint16_t gray16[3] = {0xFFFF, 0x8000, 0x1234};
	png_image image = {.version = PNG_IMAGE_VERSION, .width = 3, .height = 1, .format = PNG_FORMAT_LINEAR_Y};
	size_t len;
	uint8_t *png = write_png(&image, gray16, NULL, &len);
	cr_assert_eq(png[24], 16, "the file really is 16-bit");
	rf_config cfg = config(3, 1, 3, RF_FIT_STRETCH);
	result r = decode(&cfg, png, len);
	cr_assert_eq(r.code, 0, "%s", r.reason);
	const uint8_t want16[9] = {255, 255, 255, 128, 128, 128, 0x12, 0x12, 0x12};
	cr_assert_arr_eq(r.px, want16, 9);
	free(r.px);
	free(png);

	/* A two-colour palette image expands to its colours. */
	const uint8_t index[4] = {0, 1, 1, 0}, palette[6] = {250, 10, 20, 5, 100, 200};
	image = (png_image){.version = PNG_IMAGE_VERSION, .width = 4, .height = 1,
			    .format = PNG_FORMAT_RGB_COLORMAP, .colormap_entries = 2};
	png = write_png(&image, index, palette, &len);
	cr_assert_eq(png[25], 3, "the file really is paletted");
	cfg = config(4, 1, 3, RF_FIT_STRETCH);
	r = decode(&cfg, png, len);
	cr_assert_eq(r.code, 0, "%s", r.reason);
	const uint8_t want_pal[12] = {250, 10, 20, 5, 100, 200, 5, 100, 200, 250, 10, 20};
	cr_assert_arr_eq(r.px, want_pal, 12);
	free(r.px);
	free(png);
}
