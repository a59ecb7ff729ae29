/*
 * PNG through libpng, the hardened decoder Debian keeps patched (stb_image
 * 2.27's PNG reader has known heap overflows). Every PNG flavour becomes 8-bit
 * gray, gray+alpha, RGB or RGBA rows: 16-bit samples keep their high byte,
 * 1/2/4-bit samples are widened, palettes and tRNS are expanded; no gamma or
 * colour-profile transform is applied (the stored values are what a model was
 * trained on). A file cut anywhere before its IEND chunk fails, and so does
 * one with a bad CRC in a critical chunk.
 */
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include "decode_codec.h"

/* Ancillary chunks (text, ICC profiles) may not make libpng allocate more than this. */
#define PNG_CHUNK_MAX ((png_alloc_size_t)8 << 20)

struct png_source {
	const uint8_t *data;
	size_t len, pos;
	char message[160];
};

static void read_bytes(png_structp png, png_bytep out, png_size_t n)
{
	struct png_source *s = png_get_io_ptr(png);
	if (n > s->len - s->pos)
		png_error(png, "truncated");
	memcpy(out, s->data + s->pos, n);
	s->pos += n;
}

static void on_error(png_structp png, png_const_charp message)
{
	struct png_source *s = png_get_error_ptr(png);
	snprintf(s->message, sizeof(s->message), "%s", message);
	png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp message)
{
	(void)png;
	(void)message; /* e.g. a bad CRC in an ancillary chunk: the pixels are still good */
}

/* Asks libpng for 8-bit gray / gray+alpha / RGB / RGBA rows, whatever the file holds. */
static void normalise_format(png_structp png, png_infop info)
{
	int type = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
	if (depth == 16)
		png_set_strip_16(png);
	if (type == PNG_COLOR_TYPE_PALETTE)
		png_set_palette_to_rgb(png);
	if (type == PNG_COLOR_TYPE_GRAY && depth < 8)
		png_set_expand_gray_1_2_4_to_8(png);
	if (png_get_valid(png, info, PNG_INFO_tRNS))
		png_set_tRNS_to_alpha(png);
	png_set_packing(png);
	png_set_interlace_handling(png);
	png_read_update_info(png, info);
}

/*
 * Everything that can longjmp lives here; the caller owns png and info. On
 * success rows holds w x h x *channels bytes.
 */
static int read_png(png_structp png, png_infop info, const rf_config *cfg, rf__scratch *rows, int *w, int *h,
		    int *channels, char *reason, size_t reason_len)
{
	png_read_info(png, info);
	*w = (int)png_get_image_width(png, info);
	*h = (int)png_get_image_height(png, info);
	int err = rf__check_pixels(cfg, *w, *h, reason, reason_len);
	if (err)
		return err;
	int passes = png_set_interlace_handling(png);
	normalise_format(png, info);
	*channels = png_get_channels(png, info);
	size_t stride = (size_t)*w * (size_t)*channels;
	if (png_get_rowbytes(png, info) != stride || rf__scratch_reserve(rows, stride * (size_t)*h))
		return rf__fail(reason, reason_len, RF_ENOMEM, "out of memory for %dx%d pixels", *w, *h);
	for (int pass = 0; pass < passes; pass++)
		for (int y = 0; y < *h; y++)
			png_read_row(png, (png_bytep)rows->p + (size_t)y * stride, NULL);
	/* Up to IEND: a file cut after its pixels, or with an unknown critical chunk, is still broken. */
	png_read_end(png, NULL);
	return 0;
}

int rf__png_decode(const rf_config *cfg, const uint8_t *data, size_t len, rf__scratch *rows, rf__scratch *out,
		   rf__image *img, char *reason, size_t reason_len)
{
	struct png_source src = {.data = data, .len = len};
	png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, on_error, on_warning);
	png_infop info = png ? png_create_info_struct(png) : NULL;
	if (!info) {
		png_destroy_read_struct(&png, NULL, NULL);
		return rf__fail(reason, reason_len, RF_ENOMEM, "png: out of memory");
	}
	/*
	 * Size limits are ringfeed's (limits.max_pixels, checked from the
	 * header): libpng's own defaults (PNG_USER_WIDTH_MAX, 1,000,000 a side)
	 * would call a 1,000,001 x 1 image corrupt.
	 */
	png_set_user_limits(png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
	png_set_chunk_malloc_max(png, PNG_CHUNK_MAX);
	png_set_read_fn(png, &src, read_bytes);
	int w = 0, h = 0, channels = 0, err;
	if (setjmp(png_jmpbuf(png)))
		err = rf__fail(reason, reason_len, RF_EDECODE, "png: %s", src.message);
	else
		err = read_png(png, info, cfg, rows, &w, &h, &channels, reason, reason_len);
	png_destroy_read_struct(&png, &info, NULL);
	if (err)
		return err;
	const uint8_t *px = rows->p;
	int c = cfg->output.channels;
	if (channels != c) {
		if (rf__scratch_reserve(out, (size_t)w * h * c))
			return rf__fail(reason, reason_len, RF_ENOMEM, "out of memory for %dx%d pixels", w, h);
		rf__convert_channels(px, (size_t)w * h, channels, out->p, c);
		px = out->p;
	}
	*img = (rf__image){px, w, h, c, (size_t)w * c};
	return 0;
}
