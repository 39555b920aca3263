/*
 * Reed-Solomon parity over GF(2^8) (polynomial 0x11d, the field of
 * core/fec/gf256.ts) for the data path: the caller passes the k data shards
 * packed in one buffer and the m x k coefficient matrix (core/fec computes
 * its Cauchy rows), and gets the m parity shards packed in one buffer. The
 * 64 KiB multiplication table is built once, on first use (thread-safe).
 */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "common.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

static uint8_t mul_table[256][256];
static pthread_once_t mul_once = PTHREAD_ONCE_INIT;

static void build_tables(void) {
  uint8_t exp[510], log[256];
  unsigned x = 1;
  for (int i = 0; i < 255; i++) {
    exp[i] = (uint8_t)x;
    log[x] = (uint8_t)i;
    x <<= 1;
    if (x & 0x100) x ^= 0x11d;
  }
  for (int i = 255; i < 510; i++) exp[i] = exp[i - 255];
  for (int a = 0; a < 256; a++) {
    for (int b = 0; b < 256; b++) {
      mul_table[a][b] = (a == 0 || b == 0) ? 0 : exp[log[a] + log[b]];
    }
  }
}

#if defined(__x86_64__)
/* Nibble tables of c: lo[x] = c * x, hi[x] = c * (x << 4), for x < 16 (a product is the XOR of both). */
static void nibble_tables(uint8_t c, uint8_t lo[16], uint8_t hi[16]) {
  for (int x = 0; x < 16; x++) {
    lo[x] = mul_table[c][x];
    hi[x] = mul_table[c][x << 4];
  }
}

/* p ^= c * src over len bytes, 32 at a time with two byte shuffles (the ISA-L / GF-Complete way). */
__attribute__((target("avx2"))) static void mul_add_avx2(uint8_t *p, const uint8_t *src, uint8_t c,
                                                         int32_t len) {
  int32_t b = 0;
  if (c == 1) {
    for (; b + 32 <= len; b += 32) {
      __m256i x = _mm256_loadu_si256((const __m256i *)(src + b));
      __m256i y = _mm256_loadu_si256((const __m256i *)(p + b));
      _mm256_storeu_si256((__m256i *)(p + b), _mm256_xor_si256(x, y));
    }
    for (; b < len; b++) p[b] ^= src[b];
    return;
  }
  uint8_t lo[16], hi[16];
  nibble_tables(c, lo, hi);
  __m256i tlo = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)lo));
  __m256i thi = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)hi));
  __m256i mask = _mm256_set1_epi8(0x0f);
  for (; b + 32 <= len; b += 32) {
    __m256i x = _mm256_loadu_si256((const __m256i *)(src + b));
    __m256i l = _mm256_shuffle_epi8(tlo, _mm256_and_si256(x, mask));
    __m256i h = _mm256_shuffle_epi8(thi, _mm256_and_si256(_mm256_srli_epi64(x, 4), mask));
    __m256i y = _mm256_loadu_si256((const __m256i *)(p + b));
    _mm256_storeu_si256((__m256i *)(p + b), _mm256_xor_si256(y, _mm256_xor_si256(l, h)));
  }
  const uint8_t *t = mul_table[c];
  for (; b < len; b++) p[b] ^= t[src[b]];
}
#endif

static void mul_add_scalar(uint8_t *p, const uint8_t *src, uint8_t c, int32_t len) {
  if (c == 1) {
    for (int32_t b = 0; b < len; b++) p[b] ^= src[b];
  } else {
    const uint8_t *t = mul_table[c];
    for (int32_t b = 0; b < len; b++) p[b] ^= t[src[b]];
  }
}

/* data: k shards of len bytes, back to back; rows: m x k coefficients; parity: m x len (written).
 * Uses AVX2 when the CPU has it (same bytes either way). Returns WV_OK or WV_EINVAL. */
WV_EXPORT int32_t wavry_rs_encode(const uint8_t *data, int32_t k, int32_t len, const uint8_t *rows,
                                  int32_t m, uint8_t *parity) {
  if (k < 1 || m < 0 || len < 0 || k + m > 255) return WV_EINVAL;
  pthread_once(&mul_once, build_tables);
  memset(parity, 0, (size_t)m * (size_t)len);
#if defined(__x86_64__)
  int avx2 = __builtin_cpu_supports("avx2");
#endif
  for (int32_t i = 0; i < m; i++) {
    uint8_t *p = parity + (size_t)i * (size_t)len;
    for (int32_t j = 0; j < k; j++) {
      uint8_t c = rows[(size_t)i * (size_t)k + (size_t)j];
      if (c == 0) continue;
      const uint8_t *src = data + (size_t)j * (size_t)len;
#if defined(__x86_64__)
      if (avx2) {
        mul_add_avx2(p, src, c, len);
        continue;
      }
#endif
      mul_add_scalar(p, src, c, len);
    }
  }
  return WV_OK;
}
