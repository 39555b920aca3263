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

/* data: k shards of len bytes, back to back; rows: m x k coefficients; parity: m x len (written).
 * Returns WV_OK or WV_EINVAL. */
WV_EXPORT int32_t wavry_rs_encode(const uint8_t *data, int32_t k, int32_t len, const uint8_t *rows,
                                  int32_t m, uint8_t *parity) {
  if (k < 1 || m < 0 || len < 0 || k + m > 255) return WV_EINVAL;
  pthread_once(&mul_once, build_tables);
  memset(parity, 0, (size_t)m * (size_t)len);
  for (int32_t i = 0; i < m; i++) {
    uint8_t *p = parity + (size_t)i * (size_t)len;
    for (int32_t j = 0; j < k; j++) {
      uint8_t c = rows[(size_t)i * (size_t)k + (size_t)j];
      if (c == 0) continue;
      const uint8_t *src = data + (size_t)j * (size_t)len;
      if (c == 1) {
        for (int32_t b = 0; b < len; b++) p[b] ^= src[b];
      } else {
        const uint8_t *t = mul_table[c];
        for (int32_t b = 0; b < len; b++) p[b] ^= t[src[b]];
      }
    }
  }
  return WV_OK;
}
