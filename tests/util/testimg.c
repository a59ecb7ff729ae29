#include "testimg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <turbojpeg.h>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>

/* xorshift32: the same bytes on every machine. */
static uint32_t next_rand(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static int ramp(int i, int n)
{
	return n > 1 ? i * 255 / (n - 1) : 128;
}

uint8_t *timg_pattern(int w, int h, int c, unsigned seed)
{
	uint8_t *px = malloc((size_t)w * h * c);
	uint32_t state = seed * 2654435761u + 0x9E3779B9u;
	int alpha = c == 2 || c == 4;

	if (!px)
		return NULL;
	for (int y = 0; y < h; y++) {
		for (int x = 0; x < w; x++) {
			int fx = ramp(x, w), fy = ramp(y, h);
			/* gradients: red left to right, green top to bottom, blue diagonal */
			int base[4] = {fx, fy, (fx + 255 - fy) / 2, 255 - (fx + fy) / 4};
			uint8_t *p = px + ((size_t)y * w + x) * c;

			if (c <= 2)
				base[0] = (fx + fy) / 2;
			for (int ch = 0; ch < c; ch++) {
				int b = alpha && ch == c - 1 ? base[3] : base[ch];
				/* seeded detail: +-4 of noise, enough to catch a misplaced pixel */
				int v = b + (int)(next_rand(&state) >> 29) - 4;

				p[ch] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
			}
		}
	}
	return px;
}

/* A growing byte buffer for stb_image_write's callbacks and the GIF encoder. */
typedef struct membuf {
	uint8_t *p;
	size_t len, cap;
	int failed;
} membuf;

static void mb_put(membuf *m, const void *data, size_t n)
{
	if (m->failed)
		return;
	if (m->len + n > m->cap) {
		size_t cap = (m->len + n) * 2;
		uint8_t *p = realloc(m->p, cap);

		if (!p) {
			m->failed = 1;
			return;
		}
		m->p = p;
		m->cap = cap;
	}
	memcpy(m->p + m->len, data, n);
	m->len += n;
}

static void mb_byte(membuf *m, int b)
{
	uint8_t v = (uint8_t)b;

	mb_put(m, &v, 1);
}

static void mb_le16(membuf *m, int v)
{
	mb_byte(m, v & 0xFF);
	mb_byte(m, (v >> 8) & 0xFF);
}

static void mb_write(void *ctx, void *data, int size)
{
	mb_put(ctx, data, (size_t)size);
}

static uint8_t *mb_finish(membuf *m, size_t *len)
{
	if (m->failed || !m->len) {
		free(m->p);
		return NULL;
	}
	*len = m->len;
	return m->p;
}

static int jpeg_pixel_format(int c)
{
	switch (c) {
	case 1:
		return TJPF_GRAY;
	case 3:
		return TJPF_RGB;
	case 4:
		return TJPF_RGBA;
	default:
		return -1;
	}
}

static uint8_t *encode_jpeg(int w, int h, int c, const uint8_t *px, size_t *len)
{
	tjhandle tj = tjInitCompress();
	unsigned char *jpeg = NULL;
	unsigned long size = 0;
	uint8_t *out = NULL;

	if (!tj || jpeg_pixel_format(c) < 0)
		goto done;
	if (tjCompress2(tj, px, w, w * c, h, jpeg_pixel_format(c), &jpeg, &size,
			c == 1 ? TJSAMP_GRAY : TJSAMP_444, 95, 0))
		goto done;
	out = malloc(size);
	if (out) {
		memcpy(out, jpeg, size);
		*len = size;
	}
done:
	tjFree(jpeg);
	if (tj)
		tjDestroy(tj);
	return out;
}

/*
 * GIF palette: the image's own colours when there are at most 256 (lossless),
 * else a fixed 3-3-2 palette. Writes 256 RGB entries and one index per pixel.
 */
static void gif_palette(int n, int c, const uint8_t *px, uint8_t pal[768], uint8_t *idx)
{
	enum { SLOTS = 1024 };
	uint32_t keys[SLOTS] = {0};
	uint8_t vals[SLOTS];
	int used = 0;

	memset(pal, 0, 768);
	if (c == 1) {
		for (int i = 0; i < 256; i++)
			memset(pal + 3 * i, i, 3);
		memcpy(idx, px, (size_t)n);
		return;
	}
	for (int i = 0; i < n && used <= 256; i++) {
		const uint8_t *p = px + 3 * i;
		uint32_t key = (uint32_t)p[0] << 16 | p[1] << 8 | p[2], h = key * 2654435761u >> 22;

		while (keys[h] && keys[h] != key + 1)
			h = (h + 1) % SLOTS;
		if (!keys[h]) {
			keys[h] = key + 1;
			vals[h] = (uint8_t)used;
			if (used < 256)
				memcpy(pal + 3 * used, p, 3);
			used++;
		}
		idx[i] = vals[h];
	}
	if (used <= 256)
		return;
	for (int i = 0; i < 256; i++) {
		pal[3 * i] = (uint8_t)((i >> 5) * 255 / 7);
		pal[3 * i + 1] = (uint8_t)((i >> 2 & 7) * 255 / 7);
		pal[3 * i + 2] = (uint8_t)((i & 3) * 255 / 3);
	}
	for (int i = 0; i < n; i++)
		idx[i] = (uint8_t)((px[3 * i] >> 5) << 5 | (px[3 * i + 1] >> 5) << 2 | px[3 * i + 2] >> 6);
}

/* LSB-first code packer that cuts its output into GIF sub-blocks. */
typedef struct gif_bits {
	membuf *m;
	uint32_t acc;
	int nbits;
	uint8_t block[255];
	int blen;
} gif_bits;

static void gif_flush_block(gif_bits *b)
{
	if (!b->blen)
		return;
	mb_byte(b->m, b->blen);
	mb_put(b->m, b->block, (size_t)b->blen);
	b->blen = 0;
}

static void gif_code(gif_bits *b, int code)
{
	b->acc |= (uint32_t)code << b->nbits;
	b->nbits += 9;
	while (b->nbits >= 8) {
		b->block[b->blen++] = (uint8_t)b->acc;
		b->acc >>= 8;
		b->nbits -= 8;
		if (b->blen == 255)
			gif_flush_block(b);
	}
}

/*
 * Uncompressed LZW: every pixel is a literal, and a clear code comes before
 * the decoder's table can reach 512 entries (which would widen codes past 9
 * bits): after a clear, each literal but the first adds one entry from 258.
 */
static void gif_lzw(membuf *m, const uint8_t *idx, int n)
{
	enum { CLEAR = 256, END = 257, RUN = 250 };
	gif_bits b = {.m = m};

	mb_byte(m, 8);
	for (int i = 0; i < n; i++) {
		if (i % RUN == 0)
			gif_code(&b, CLEAR);
		gif_code(&b, idx[i]);
	}
	gif_code(&b, END);
	if (b.nbits)
		b.block[b.blen++] = (uint8_t)b.acc;
	gif_flush_block(&b);
	mb_byte(m, 0);
}

static uint8_t *encode_gif(int w, int h, int c, const uint8_t *px, size_t *len)
{
	membuf m = {0};
	uint8_t pal[768], *idx;

	if ((c != 1 && c != 3) || w < 1 || h < 1 || w > 65535 || h > 65535)
		return NULL;
	idx = malloc((size_t)w * h);
	if (!idx)
		return NULL;
	gif_palette(w * h, c, px, pal, idx);
	mb_put(&m, "GIF89a", 6);
	mb_le16(&m, w);
	mb_le16(&m, h);
	mb_byte(&m, 0xF7); /* global colour table of 256 entries, 8-bit colour */
	mb_byte(&m, 0);
	mb_byte(&m, 0);
	mb_put(&m, pal, sizeof(pal));
	mb_byte(&m, 0x2C); /* image descriptor: whole screen, no local table */
	mb_le16(&m, 0);
	mb_le16(&m, 0);
	mb_le16(&m, w);
	mb_le16(&m, h);
	mb_byte(&m, 0);
	gif_lzw(&m, idx, w * h);
	mb_byte(&m, 0x3B);
	free(idx);
	return mb_finish(&m, len);
}

uint8_t *timg_encode(const char *fmt, int w, int h, int c, const uint8_t *px, size_t *len)
{
	membuf m = {0};
	int ok = 0;

	if (!strcmp(fmt, "jpg"))
		return encode_jpeg(w, h, c, px, len);
	if (!strcmp(fmt, "gif"))
		return encode_gif(w, h, c, px, len);
	if (!strcmp(fmt, "png")) {
		int n = 0;
		uint8_t *png = stbi_write_png_to_mem(px, w * c, w, h, c, &n);

		*len = (size_t)n;
		return png;
	}
	if (!strcmp(fmt, "bmp"))
		ok = stbi_write_bmp_to_func(mb_write, &m, w, h, c, px);
	else if (!strcmp(fmt, "tga"))
		ok = stbi_write_tga_to_func(mb_write, &m, w, h, c, px);
	if (!ok) {
		free(m.p);
		return NULL;
	}
	return mb_finish(&m, len);
}

int timg_write(const char *path, const char *fmt, int w, int h, int c, const uint8_t *px)
{
	size_t len = 0;
	uint8_t *data = timg_encode(fmt, w, h, c, px, &len);
	FILE *f;
	int ok;

	if (!data)
		return -1;
	f = fopen(path, "wb");
	ok = f && fwrite(data, 1, len, f) == len;
	if (f && fclose(f))
		ok = 0;
	free(data);
	return ok ? 0 : -1;
}

int timg_write_noise_pngs(const char *dir, size_t n, int side)
{
	uint8_t *px = malloc((size_t)side * side * 3);
	if (!px)
		return -1;
	unsigned seed = 99;
	for (size_t k = 0; k < (size_t)side * side * 3; k++)
		px[k] = (uint8_t)rand_r(&seed);
	size_t len = 0;
	uint8_t *png = timg_encode("png", side, side, 3, px, &len);
	free(px);
	int rc = png ? 0 : -1;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/noise-%03zu.png", dir, i);
		FILE *f = fopen(path, "wb");
		rc = f && fwrite(png, 1, len, f) == len ? 0 : -1;
		if (f && fclose(f) != 0)
			rc = -1;
	}
	free(png);
	return rc;
}
