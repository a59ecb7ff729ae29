/*
 * The formats that neither libjpeg-turbo (JPEG) nor libpng (PNG) take go through
 * stb_image: BMP, GIF (first frame), TGA, PSD, binary PNM. This is the only
 * file that compiles stb_image's implementation.
 *
 * Hardening against Debian's stb_image 2.27 (found by tests/fuzz):
 * - Radiance HDR is refused: its RLE reader spins forever on a cut file
 *   (CVE-2021-42715).
 * - Pixels are always loaded in the file's own channel count and converted
 *   here: stb's conversion of 16-bit data to another channel count reads
 *   past its buffer (CVE-2021-42716).
 * - 16-bit PNM is refused: 2.27 reads its big-endian samples as little-endian
 *   (0x8000 decodes as 0), so the pixels would be silently wrong.
 * - PSD with 4 or more channels is refused: stb "removes the white matte" of
 *   every pixel whose alpha is not 0 or full, and a colour darker than the
 *   matte allows makes that a negative float converted to an unsigned char,
 *   undefined behaviour (a fuzz finding). Gray and RGB PSDs decode.
 *
 * Thread safety: stb keeps load flags in globals; they are never set here, so
 * every thread sees stb's defaults (no vertical flip). Failure strings are
 * compiled out (stb 2.27 formats some of them into a static buffer, a data race
 * between decoder threads). Reasons are written here, naming the format.
 *
 * What "truncated" means per format. stb reads past the end of its input as
 * zeros (or, for some raw payloads, not at all, leaving memory unset), so:
 * - BMP (stb reads uncompressed BMPs only), uncompressed TGA and PNM: the
 *   payload size implied by the header is checked before decoding; a short
 *   file fails. A BMP may omit the padding of its last row.
 * - GIF, PSD and RLE or indexed TGA, whose size the header does not give:
 *   stb reads them through callbacks, and a read at the end of the data
 *   means stb wanted bytes the file does not have: truncated. A TGA shorter
 *   than the least its header allows fails before decoding. (stb's own
 *   read-ahead never asks past the end: it refills only when it needs a
 *   byte it does not hold.)
 */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode_codec.h"

#define STBI_NO_STDIO
#define STBI_NO_FAILURE_STRINGS
#define STBI_NO_JPEG /* libjpeg-turbo's job */
#define STBI_NO_PNG  /* libpng's (decode_png.c) */
#define STBI_NO_PIC  /* not a format anyone feeds a model; less untrusted-input code */
#define STBI_NO_HDR  /* see the top of this file */
#define STBI_MAX_DIMENSIONS (1 << 24)
/* Static, so a program that links its own stb_image does not clash with ours. */
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
/*
 * Static stb functions this file does not call are "unused", and stb 2.27
 * declares stbi_set_unpremultiply_on_load_thread but defines it under another
 * name. GCC reports both at the end of the file, past any push/pop.
 */
#pragma GCC diagnostic ignored "-Wunused-function"
/* With req_comp = 0 (see below) GCC 12 follows stb's never-taken conversion path and warns. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#endif
#include <stb_image.h>

typedef struct stb_format {
	const char *name;
	const char *magic;
	size_t magic_len;
	int strong; /* the magic alone says "this format": a bad header is a corrupt file */
} stb_format;

static const stb_format formats[] = {
	{"gif", "GIF8", 4, 1},
	{"psd", "8BPS", 4, 1},
	{"bmp", "BM", 2, 0},
	{"pnm", "P5", 2, 0},
	{"pnm", "P6", 2, 0},
};

/* TGA has no magic: whatever else stb accepts is a TGA. */
static const stb_format tga = {"tga", "", 0, 0};

static bool is_hdr(const uint8_t *data, size_t len)
{
	return (len >= 10 && !memcmp(data, "#?RADIANCE", 10)) || (len >= 6 && !memcmp(data, "#?RGBE", 6));
}

static const stb_format *sniff(const uint8_t *data, size_t len)
{
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
		if (len >= formats[i].magic_len && !memcmp(data, formats[i].magic, formats[i].magic_len))
			return &formats[i];
	return &tga;
}

static uint32_t le16(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static uint32_t be16(const uint8_t *p)
{
	return (uint32_t)p[0] << 8 | p[1];
}

static uint32_t le32(const uint8_t *p)
{
	return le16(p) | le16(p + 2) << 16;
}

/* A BMP's bits per pixel: OS/2 headers (12 bytes) keep it elsewhere. Needs 30 bytes. */
static uint32_t bmp_bpp(const uint8_t *d)
{
	return le32(d + 14) == 12 ? le16(d + 24) : le16(d + 28);
}

/* Bytes an uncompressed BMP needs: pixel offset plus its rows. */
static uint64_t bmp_size(const uint8_t *d, size_t len, int w, int h)
{
	uint64_t row, bpp;

	if (len < 30)
		return UINT64_MAX;
	bpp = bmp_bpp(d);
	row = ((uint64_t)w * bpp + 31) / 32 * 4;
	return le32(d + 10) + row * (uint64_t)(h - 1) + ((uint64_t)w * bpp + 7) / 8;
}

/*
 * stb 2.27 keeps a paletted BMP's palette in a stack array it never clears,
 * so an index past the palette's end, or a palette its header arithmetic
 * sizes at zero or less (a pixel offset inside the header), would put stack
 * bytes in a "good" image. The palette size is computed as stb does; NULL
 * when every pixel names an entry. Call only once bmp_size fits in the data.
 */
static const char *bmp_palette_problem(const uint8_t *d, int w, int h, char *why, size_t why_len)
{
	uint32_t hsz = le32(d + 14), bpp = bmp_bpp(d);
	int64_t offset = le32(d + 10);
	if (bpp != 1 && bpp != 4 && bpp != 8)
		return NULL;
	int64_t colours = hsz == 12 ? (offset - 14 - 24) / 3 : (offset - 14 - (int64_t)hsz) / 4;
	if (colours < 1 || colours > 256) {
		snprintf(why, why_len, "the header leaves room for %lld palette entries (%u-bit pixels)",
			 (long long)colours, (unsigned)bpp);
		return why;
	}
	if (colours >= 1 << bpp)
		return NULL;
	uint64_t row = ((uint64_t)w * bpp + 31) / 32 * 4;
	for (int y = 0; y < h; y++) {
		const uint8_t *r = d + offset + (uint64_t)y * row;
		for (int x = 0; x < w; x++) {
			unsigned index = bpp == 8 ? r[x] : bpp == 4 ? (r[x / 2] >> (x % 2 ? 0 : 4)) & 15
							       : (r[x / 8] >> (7 - x % 8)) & 1;
			if (index >= colours) {
				snprintf(why, why_len, "pixel index %u past the %lld-entry palette", index,
					 (long long)colours);
				return why;
			}
		}
	}
	return NULL;
}

/*
 * Fewest bytes a TGA can have: header, id field, palette, then every pixel
 * (uncompressed) or, RLE, one packet byte and one pixel per 128 pixels. Exact
 * only for an uncompressed, unmapped TGA. The RLE bound turns a few-byte file
 * whose header claims a million pixels into "truncated" before stb allocates
 * and fills them with zeros.
 */
static uint64_t tga_size(const uint8_t *d, size_t len, int w, int h, bool *exact)
{
	uint64_t pixels = (uint64_t)w * h, pixel_bytes, palette = 0;

	*exact = false;
	if (len < 18)
		return UINT64_MAX;
	pixel_bytes = (d[16] + 7u) / 8;
	if (d[1] == 1)
		palette = (uint64_t)le16(d + 5) * ((d[7] + 7u) / 8);
	if (d[2] >= 8)
		return 18 + (uint64_t)d[0] + palette + (pixels + 127) / 128 * (1 + pixel_bytes);
	*exact = d[1] == 0;
	return 18 + (uint64_t)d[0] + palette + pixels * pixel_bytes;
}

static int pnm_space(uint8_t c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

/*
 * Reads a binary PNM header's width, height and maxval the way stb does
 * (whitespace and # comments between fields). Returns the offset just after
 * the last digit, or 0 if a field has 10 or more digits: stb 2.27 accumulates
 * them in an int and overflows (undefined behaviour; a fuzz finding).
 */
static size_t pnm_header(const uint8_t *d, size_t len, uint64_t *maxval)
{
	size_t i = 2;
	for (int field = 0; field < 3; field++) {
		for (;;) {
			while (i < len && pnm_space(d[i]))
				i++;
			if (i >= len || d[i] != '#')
				break;
			while (i < len && d[i] != '\n' && d[i] != '\r')
				i++;
		}
		int digits = 0;
		for (*maxval = 0; i < len && d[i] >= '0' && d[i] <= '9'; i++, digits++)
			*maxval = *maxval * 10 + (d[i] - '0');
		if (digits >= 10)
			return 0;
	}
	return i;
}

/* Bytes a binary PNM needs: the header, one whitespace byte, then the samples (two bytes over 255). */
static uint64_t pnm_size(const uint8_t *d, size_t len, int w, int h, int comp)
{
	uint64_t maxval;
	size_t end = pnm_header(d, len, &maxval);
	return end + 1 + (uint64_t)w * h * comp * (maxval > 255 ? 2 : 1);
}

/* stb's luma weights, so gray output matches what stb itself would give. */
static uint8_t luma(const uint8_t *p)
{
	return (uint8_t)((p[0] * 77 + p[1] * 150 + p[2] * 29) >> 8);
}

void rf__convert_channels(const uint8_t *src, size_t n, int from, uint8_t *dst, int to)
{
	for (size_t i = 0; i < n; i++) {
		const uint8_t *s = src + i * (size_t)from;
		uint8_t *d = dst + i * (size_t)to;
		uint8_t gray = from >= 3 ? luma(s) : s[0];
		uint8_t alpha = from == 2 ? s[1] : from == 4 ? s[3] : 255;
		if (to == 1) {
			d[0] = gray;
			continue;
		}
		for (int k = 0; k < 3; k++)
			d[k] = from >= 3 ? s[k] : gray;
		if (to == 4)
			d[3] = alpha;
	}
}

/* The input as stb callbacks that note a read past the end. */
struct reader {
	const uint8_t *p;
	size_t left;
	bool past_end;
};

static int reader_read(void *user, char *out, int size)
{
	struct reader *r = user;
	size_t n = size > 0 ? (size_t)size : 0;
	if (r->left == 0) {
		r->past_end = true;
		return 0;
	}
	if (n > r->left)
		n = r->left;
	memcpy(out, r->p, n);
	r->p += n;
	r->left -= n;
	return (int)n;
}

static void reader_skip(void *user, int n)
{
	struct reader *r = user;
	if (n <= 0)
		return;
	if ((size_t)n > r->left) {
		r->past_end = true;
		n = (int)r->left;
	}
	r->p += n;
	r->left -= (size_t)n;
}

static int reader_eof(void *user)
{
	return ((struct reader *)user)->left == 0;
}

static const stbi_io_callbacks reader_io = {reader_read, reader_skip, reader_eof};

/*
 * Fewest bytes the header promises (0: it does not say); *exact when that is
 * the whole image, so stb reading the file in memory cannot pass its end.
 */
static uint64_t payload_size(const stb_format *f, const uint8_t *d, size_t len, int w, int h, int comp,
			     bool *exact)
{
	*exact = true;
	if (!strcmp(f->name, "bmp"))
		return bmp_size(d, len, w, h);
	if (!strcmp(f->name, "pnm"))
		return pnm_size(d, len, w, h, comp);
	if (f == &tga)
		return tga_size(d, len, w, h, exact);
	*exact = false;
	return 0;
}

int rf__stb_decode(const rf_config *cfg, const uint8_t *data, size_t len, rf__image *img, char *reason,
		   size_t reason_len)
{
	const stb_format *f = sniff(data, len);
	int c = cfg->output.channels, w, h, comp, err;
	uint64_t need;
	stbi_uc *px;

	if (len > INT_MAX)
		return rf__fail(reason, reason_len, RF_ETOOBIG,
				"%zu bytes, over stb_image's 2 GiB input limit", len);
	if (is_hdr(data, len))
		return rf__fail(reason, reason_len, RF_EFORMAT, "hdr: Radiance HDR images are not supported");
	uint64_t maxval;
	if (!strcmp(f->name, "pnm") && pnm_header(data, len, &maxval) == 0)
		return rf__fail(reason, reason_len, RF_EDECODE, "pnm: header number out of range");
	if (!stbi_info_from_memory(data, (int)len, &w, &h, &comp) || w <= 0 || h <= 0) {
		if (!f->strong)
			return rf__fail(reason, reason_len, RF_EFORMAT, "unsupported image format");
		return rf__fail(reason, reason_len, RF_EDECODE, "%s: corrupt or unsupported header", f->name);
	}
	err = rf__check_pixels(cfg, w, h, reason, reason_len);
	if (err)
		return err;
	if (!strcmp(f->name, "psd") && len >= 14 && be16(data + 12) >= 4)
		return rf__fail(reason, reason_len, RF_EFORMAT,
				"psd: %u channels; PSDs with alpha or extra channels are not supported",
				(unsigned)be16(data + 12));
	if (!strcmp(f->name, "pnm") && stbi_is_16_bit_from_memory(data, (int)len))
		return rf__fail(reason, reason_len, RF_EFORMAT, "pnm: 16-bit samples are not supported");
	bool exact;
	need = payload_size(f, data, len, w, h, comp, &exact);
	if (need > len)
		return rf__fail(reason, reason_len, RF_EDECODE, "%s: truncated (%zu of %s%llu bytes)", f->name,
				len, exact ? "" : "at least ", (unsigned long long)need);
	char why[96];
	if (!strcmp(f->name, "bmp") && bmp_palette_problem(data, w, h, why, sizeof(why)))
		return rf__fail(reason, reason_len, RF_EDECODE, "bmp: %s", why);
	if (exact) {
		px = stbi_load_from_memory(data, (int)len, &w, &h, &comp, 0);
	} else {
		struct reader r = {data, len, false};
		px = stbi_load_from_callbacks(&reader_io, &r, &w, &h, &comp, 0);
		if (px && r.past_end) {
			stbi_image_free(px);
			return rf__fail(reason, reason_len, RF_EDECODE, "%s: truncated (the data ends inside the image)",
					f->name);
		}
	}
	if (!px)
		return rf__fail(reason, reason_len, RF_EDECODE, "%s: corrupt, truncated or unsupported data",
				f->name);
	if (comp != c) {
		stbi_uc *converted = malloc((size_t)w * h * c);
		if (converted)
			rf__convert_channels(px, (size_t)w * h, comp, converted, c);
		stbi_image_free(px);
		if (!converted)
			return rf__fail(reason, reason_len, RF_ENOMEM, "out of memory for %dx%d pixels", w, h);
		px = converted; /* stbi_image_free is free(): rf__stb_free releases either */
	}
	*img = (rf__image){px, w, h, c, (size_t)w * c};
	return 0;
}

void rf__stb_free(rf__image *img)
{
	stbi_image_free((void *)img->px);
	img->px = NULL;
}
