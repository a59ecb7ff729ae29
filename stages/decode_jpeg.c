/*
 * JPEG through libjpeg-turbo's libjpeg API, one decompressor per decoder
 * thread, kept across images. Two savings over a plain full decode:
 * - the IDCT shrinks by 1/2, 1/4 or 1/8 while decoding when the smaller image
 *   still gives the resize full resolution;
 * - only the window the resize reads is decoded: columns outside it are
 *   cropped (jpeg_crop_scanline) and rows above and below it are skipped
 *   (jpeg_skip_scanlines), which saves their IDCT, upsampling and colour
 *   conversion. With fit = cover that is the quarter of a 4:3 photo that the
 *   centre crop throws away.
 * Skipped rows are still entropy-decoded and the stream is read to its end,
 * so a file that is corrupt or cut anywhere fails as it would in a full
 * decode.
 */
#include <setjmp.h>
#include <stdbool.h>
#include <stdio.h> /* before jpeglib.h: it uses FILE and size_t */
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

#include "decode_codec.h"

struct rf__jpeg {
	struct jpeg_decompress_struct ci;
	struct jpeg_error_mgr err;
	jmp_buf fail;
	char message[JMSG_LENGTH_MAX];
	rf__scratch tail; /* one row, for the last row of the stream after the window */
};

/* libjpeg's fatal errors end the decode: back to the setjmp in rf__jpeg_decode. */
static void on_error(j_common_ptr ci)
{
	rf__jpeg *j = ci->client_data;

	ci->err->format_message(ci, j->message);
	longjmp(j->fail, 1);
}

/*
 * libjpeg only warns about a truncated or corrupt stream and fills the rest
 * with grey, so a warning fails the image too, except two that real files
 * commonly carry: junk bytes before a marker (camera and editor files pad
 * there; the same warning also follows a scan damaged so that the decoder
 * skips to the next marker, which it cannot tell apart, and PIL and
 * libjpeg's own tools accept it alike), and a JFIF version newer than 1.x
 * (a header field; the pixels are unaffected). Trace messages (level >= 0)
 * are ignored.
 */
static void on_message(j_common_ptr ci, int level)
{
	if (level >= 0 || ci->err->msg_code == JWRN_EXTRANEOUS_DATA || ci->err->msg_code == JWRN_JFIF_MAJOR)
		return;
	on_error(ci);
}

int rf__jpeg_create(rf__jpeg **out)
{
	rf__jpeg *j = calloc(1, sizeof(*j));

	*out = NULL;
	if (!j)
		return RF_ENOMEM;
	j->ci.err = jpeg_std_error(&j->err);
	j->err.error_exit = on_error;
	j->err.emit_message = on_message;
	j->ci.client_data = j;
	/* jpeg_create_decompress reports running out of memory through on_error. */
	if (setjmp(j->fail)) {
		jpeg_destroy_decompress(&j->ci);
		free(j);
		return RF_ENOMEM;
	}
	jpeg_create_decompress(&j->ci);
	*out = j;
	return 0;
}

void rf__jpeg_destroy(rf__jpeg *j)
{
	if (!j)
		return;
	jpeg_destroy_decompress(&j->ci);
	rf__scratch_free(&j->tail);
	free(j);
}

static unsigned scaled(unsigned size, unsigned denom)
{
	return (size + denom - 1) / denom;
}

/*
 * Largest of 8, 4, 2 (decode at 1/denom) whose output is still need_w x
 * need_h or larger, else 1. The other factors (3/8 ... 7/8) run libjpeg-turbo's
 * scalar IDCTs and cost more than they save: a 500x375 q90 JPEG to 224x224
 * cover took 1.2-1.3 ms decoded at 1/1 and 1.4-1.7 ms at 5/8, the smallest
 * factor that covers (x86-64, libjpeg-turbo 2.1.5).
 */
static unsigned pick_denom(unsigned w, unsigned h, int need_w, int need_h)
{
	for (unsigned denom = 8; denom > 1; denom /= 2)
		if (scaled(w, denom) >= (unsigned)need_w && scaled(h, denom) >= (unsigned)need_h)
			return denom;
	return 1;
}

static J_COLOR_SPACE out_space(int channels)
{
	switch (channels) {
	case 1:
		return JCS_GRAYSCALE;
	case 4:
		return JCS_EXT_RGBA;
	default:
		return JCS_EXT_RGB;
	}
}

/*
 * The columns to decode for win on a row of width w: one pixel wider on each
 * side than the resize reads, because libjpeg's smooth chroma upsampling
 * treats the edges of a cropped row as image edges, and those edge pixels may
 * then differ from a full decode. libjpeg moves the start left to an iMCU
 * boundary and widens the span to match.
 */
static void crop_columns(struct jpeg_decompress_struct *ci, const rf__window *win, JDIMENSION *x0,
			 JDIMENSION *width)
{
	JDIMENSION w = ci->output_width;
	JDIMENSION from = win->x0 > 0 ? (JDIMENSION)win->x0 - 1 : 0;
	JDIMENSION to = (JDIMENSION)win->x1 < w ? (JDIMENSION)win->x1 + 1 : w;

	*x0 = 0;
	*width = w;
	if (from == 0 && to == w)
		return;
	*x0 = from;
	*width = to - from;
	jpeg_crop_scanline(ci, x0, width);
}

/* Reads rows until output_scanline reaches end, rows stride bytes apart from px. */
static void read_rows(struct jpeg_decompress_struct *ci, uint8_t *px, size_t stride, JDIMENSION end)
{
	JDIMENSION first = ci->output_scanline;

	while (ci->output_scanline < end) {
		JSAMPROW rows[8];
		JDIMENSION n = end - ci->output_scanline < 8 ? end - ci->output_scanline : 8;

		for (JDIMENSION i = 0; i < n; i++)
			rows[i] = px + (size_t)(ci->output_scanline - first + i) * stride;
		jpeg_read_scanlines(ci, rows, n);
	}
}

/*
 * Past the window: the rows below it are entropy-decoded by skipping all but
 * the last, which is read, so the decompressor goes through the stream to its
 * end and reports data missing anywhere. (Skipping to the very end would set
 * "end of image reached" without reading on.)
 */
static int finish_stream(rf__jpeg *j, size_t row_bytes)
{
	struct jpeg_decompress_struct *ci = &j->ci;
	JDIMENSION h = ci->output_height;

	if (ci->output_scanline < h) {
		JSAMPROW row;

		if (rf__scratch_reserve(&j->tail, row_bytes))
			return RF_ENOMEM;
		row = j->tail.p;
		if (h - 1 > ci->output_scanline)
			jpeg_skip_scanlines(ci, h - 1 - ci->output_scanline);
		jpeg_read_scanlines(ci, &row, 1);
	}
	jpeg_finish_decompress(ci);
	return 0;
}

/* The decode proper; libjpeg's errors longjmp out of it to rf__jpeg_decode. */
static int decode(rf__jpeg *j, const rf_config *cfg, rf__resizer *rs, const uint8_t *data, size_t len,
		  rf__scratch *px, rf__image *img, char *reason, size_t reason_len)
{
	struct jpeg_decompress_struct *ci = &j->ci;
	int c = cfg->output.channels, need_w, need_h, full_w, full_h, err;
	JDIMENSION x0, width;
	rf__window win;
	rf__box box;
	size_t stride;

	jpeg_mem_src(ci, data, (unsigned long)len);
	jpeg_read_header(ci, TRUE);
	err = rf__check_pixels(cfg, (int)ci->image_width, (int)ci->image_height, reason, reason_len);
	if (err)
		return err;
	/* CMYK/YCCK would need a colour profile to become RGB. */
	if (ci->jpeg_color_space == JCS_CMYK || ci->jpeg_color_space == JCS_YCCK)
		return rf__fail(reason, reason_len, RF_EFORMAT, "CMYK JPEG not supported");
	rf__fit_need((int)ci->image_width, (int)ci->image_height, cfg->output.width, cfg->output.height,
		     cfg->output.fit, &need_w, &need_h);
	ci->scale_num = 1;
	ci->scale_denom = pick_denom(ci->image_width, ci->image_height, need_w, need_h);
	ci->out_color_space = out_space(c);
	ci->dct_method = JDCT_ISLOW;
	jpeg_start_decompress(ci);
	/* The scaled size; cropping changes output_width. */
	full_w = (int)ci->output_width;
	full_h = (int)ci->output_height;
	rf__fit_box(full_w, full_h, cfg->output.width, cfg->output.height, cfg->output.fit, &box);
	if (rf__resize_window(rs, full_w, full_h, &box, cfg->output.width, cfg->output.height, &win))
		return rf__fail(reason, reason_len, RF_ENOMEM, "out of memory planning the resize");
	crop_columns(ci, &win, &x0, &width);
	stride = (size_t)width * c;
	if (rf__scratch_reserve(px, stride * (size_t)(win.y1 - win.y0)))
		return rf__fail(reason, reason_len, RF_ENOMEM, "out of memory for %ux%d pixels", width,
				win.y1 - win.y0);
	if (win.y0 > 0)
		jpeg_skip_scanlines(ci, (JDIMENSION)win.y0);
	read_rows(ci, px->p, stride, (JDIMENSION)win.y1);
	if (finish_stream(j, stride))
		return rf__fail(reason, reason_len, RF_ENOMEM, "out of memory for a row of %u pixels", width);
	*img = (rf__image){.px = px->p,
			   .w = full_w,
			   .h = full_h,
			   .c = c,
			   .stride = stride,
			   .x0 = (int)x0,
			   .y0 = win.y0,
			   .win_w = (int)width,
			   .win_h = win.y1 - win.y0};
	return 0;
}

int rf__jpeg_decode(rf__jpeg *j, const rf_config *cfg, rf__resizer *rs, const uint8_t *data, size_t len,
		    rf__scratch *px, rf__image *img, char *reason, size_t reason_len)
{
	int err;

	if (setjmp(j->fail)) {
		jpeg_abort_decompress(&j->ci);
		return rf__fail(reason, reason_len, RF_EDECODE, "jpeg: %s", j->message);
	}
	err = decode(j, cfg, rs, data, len, px, img, reason, reason_len);
	if (err)
		jpeg_abort_decompress(&j->ci);
	return err;
}
