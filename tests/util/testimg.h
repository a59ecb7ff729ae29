/* Test images made in memory: deterministic patterns and their encodings. */
#ifndef RF_TESTIMG_H
#define RF_TESTIMG_H

#include <stddef.h>
#include <stdint.h>

/* w x h x c interleaved u8 pattern (smooth gradients plus seeded detail), malloc'd. */
uint8_t *timg_pattern(int w, int h, int c, unsigned seed);

/*
 * Encodes px (w x h x c interleaved u8) as fmt: "png", "bmp", "tga", "jpg"
 * (quality 95) or "gif" (c must be 1 or 3; lossless only for images with at
 * most 256 distinct colours). Returns malloc'd bytes and their length, or NULL.
 */
uint8_t *timg_encode(const char *fmt, int w, int h, int c, const uint8_t *px, size_t *len);

/* timg_encode then write to path; 0 or -1. */
int timg_write(const char *path, const char *fmt, int w, int h, int c, const uint8_t *px);

/*
 * n copies of one PNG of side x side RGB noise, noise-000.png ... in dir
 * (noise does not compress: about side * side * 3 bytes each; encoded once,
 * as that is slow); 0 or -1.
 */
int timg_write_noise_pngs(const char *dir, size_t n, int side);

#endif
