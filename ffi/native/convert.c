/*
 * BGRA -> I420 for the encoder's input.
 *
 * libswscale's packed-RGB input path has no SIMD in FFmpeg 5.1 and took
 * ~4.5 ms per 1080p frame here (docs/MEDIA.md). This converter is plain C that
 * the compiler vectorises (function clones for AVX2 and baseline x86-64,
 * picked at load time), and it averages each 2x2 block for chroma, which is
 * both faster and better than swscale's point sampling.
 *
 * BT.709, limited range, 14-bit fixed point:
 *   Y  =  16 + ( 2992 R + 10063 G + 1016 B) / 2^14
 *   Cb = 128 + (-1649 R -  5547 G + 7196 B) / 2^14
 *   Cr = 128 + ( 7196 R -  6536 G -  660 B) / 2^14
 * (Kr = 0.2126, Kb = 0.0722, scaled by 219/255 and 224/255.)
 */
#include "convert.h"

#include "common.h"

#include <pthread.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define WV_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define WV_CLONES
#endif

typedef struct {
  const uint8_t *bgra;
  int stride, width, row_begin, row_end; /* even rows */
  uint8_t *y, *u, *v;
  int y_stride, u_stride, v_stride;
} wv_convert_job;

WV_CLONES __attribute__((optimize("O3"))) static void convert_rows(const wv_convert_job *job) {
  const int width = job->width;
  for (int row = job->row_begin; row < job->row_end; row += 2) {
    const uint8_t *restrict s0 = job->bgra + (long)row * job->stride;
    const uint8_t *restrict s1 = s0 + job->stride;
    uint8_t *restrict y0 = job->y + (long)row * job->y_stride;
    uint8_t *restrict y1 = y0 + job->y_stride;
    uint8_t *restrict u = job->u + (long)(row / 2) * job->u_stride;
    uint8_t *restrict v = job->v + (long)(row / 2) * job->v_stride;
    for (int x = 0; x < width; x++) {
      const int b0 = s0[4 * x], g0 = s0[4 * x + 1], r0 = s0[4 * x + 2];
      const int b1 = s1[4 * x], g1 = s1[4 * x + 1], r1 = s1[4 * x + 2];
      y0[x] = (uint8_t)((2992 * r0 + 10063 * g0 + 1016 * b0 + (16 << 14) + (1 << 13)) >> 14);
      y1[x] = (uint8_t)((2992 * r1 + 10063 * g1 + 1016 * b1 + (16 << 14) + (1 << 13)) >> 14);
    }
    for (int cx = 0; cx < width / 2; cx++) {
      const int x = 2 * cx;
      const int b = s0[4 * x] + s0[4 * x + 4] + s1[4 * x] + s1[4 * x + 4];
      const int g = s0[4 * x + 1] + s0[4 * x + 5] + s1[4 * x + 1] + s1[4 * x + 5];
      const int r = s0[4 * x + 2] + s0[4 * x + 6] + s1[4 * x + 2] + s1[4 * x + 6];
      /* sums of four: divide by 2^16 instead of 2^14 */
      u[cx] = (uint8_t)((-1649 * r - 5547 * g + 7196 * b + (128 << 16) + (1 << 15)) >> 16);
      v[cx] = (uint8_t)((7196 * r - 6536 * g - 660 * b + (128 << 16) + (1 << 15)) >> 16);
    }
  }
}

static void *convert_thread(void *arg) {
  convert_rows((const wv_convert_job *)arg);
  return NULL;
}

void wv_bgra_to_i420(const uint8_t *bgra, int stride, int width, int height, uint8_t *y, int y_stride,
                     uint8_t *u, int u_stride, uint8_t *v, int v_stride, int threads) {
  if (threads < 1) threads = 1;
  if (threads > 8) threads = 8;
  /* A thread per ~256 rows at most: below that, starting a thread costs more than it saves. */
  while (threads > 1 && height / threads < 256) threads--;
  wv_convert_job jobs[8];
  pthread_t tids[8];
  int started[8] = {0};
  const int pairs = height / 2;
  for (int i = 0; i < threads; i++) {
    jobs[i] = (wv_convert_job){bgra, stride, width, 2 * (pairs * i / threads), 2 * (pairs * (i + 1) / threads),
                               y, u, v, y_stride, u_stride, v_stride};
  }
  for (int i = 1; i < threads; i++) {
    started[i] = pthread_create(&tids[i], NULL, convert_thread, &jobs[i]) == 0;
    if (!started[i]) convert_rows(&jobs[i]); /* no thread: do it here */
  }
  convert_rows(&jobs[0]);
  for (int i = 1; i < threads; i++) {
    if (started[i]) pthread_join(tids[i], NULL);
  }
}

/* Exported for tests and benchmarks: planes are tightly packed (y: w*h, u and v: w/2*h/2). */
WV_EXPORT int32_t wavry_convert_bgra_to_i420(const uint8_t *bgra, int32_t stride, int32_t width, int32_t height,
                                             uint8_t *y, uint8_t *u, uint8_t *v, int32_t threads, char *err,
                                             int32_t errlen) {
  if (bgra == NULL || y == NULL || u == NULL || v == NULL) return wv_fail(err, errlen, WV_EINVAL, "null buffer");
  if (width <= 0 || height <= 0 || (width & 1) || (height & 1)) {
    return wv_fail(err, errlen, WV_EINVAL, "size %dx%d must be positive and even", width, height);
  }
  if (stride < width * 4) return wv_fail(err, errlen, WV_EINVAL, "stride %d is less than width %d x 4", stride, width);
  wv_bgra_to_i420(bgra, stride, width, height, y, width, u, width / 2, v, width / 2, threads);
  return WV_OK;
}
