/* BGRA to planar YUV 4:2:0 (BT.709, limited range), written for screen capture. */
#ifndef WAVRY_CONVERT_H
#define WAVRY_CONVERT_H

#include <stdint.h>

/*
 * Converts a BGRA image (width and height even) to I420. Chroma is the mean
 * of each 2x2 block. Rows are split across up to `threads` threads.
 */
void wv_bgra_to_i420(const uint8_t *bgra, int stride, int width, int height, uint8_t *y, int y_stride,
                     uint8_t *u, int u_stride, uint8_t *v, int v_stride, int threads);

#endif
