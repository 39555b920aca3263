/*
 * ChaCha20-Poly1305 (RFC 8439) through OpenSSL's libcrypto, for RIFT's data
 * path: one FFI call seals or opens one packet, with no allocation. The
 * cipher context is per thread (Deno workers are threads), created once.
 *
 * Byte-identical to the TypeScript backends (crypto/aead.ts); tested against
 * the RFC 8439 vectors there.
 */
#include <openssl/evp.h>
#include <stdint.h>

#include "common.h"

static __thread EVP_CIPHER_CTX *seal_ctx;
static __thread EVP_CIPHER_CTX *open_ctx;

static EVP_CIPHER_CTX *ctx_for(EVP_CIPHER_CTX **slot) {
  if (*slot == NULL) *slot = EVP_CIPHER_CTX_new();
  return *slot;
}

/* out must hold ptlen + 16 bytes: ciphertext then tag. Returns WV_OK or WV_EINVAL. */
WV_EXPORT int32_t wavry_aead_seal(const uint8_t *key, const uint8_t *nonce, const uint8_t *ad,
                                  int32_t adlen, const uint8_t *pt, int32_t ptlen, uint8_t *out) {
  EVP_CIPHER_CTX *ctx = ctx_for(&seal_ctx);
  int len = 0;
  if (ctx == NULL || adlen < 0 || ptlen < 0) return WV_EINVAL;
  if (EVP_EncryptInit_ex(ctx, EVP_chacha20_poly1305(), NULL, key, nonce) != 1) return WV_EINVAL;
  if (adlen > 0 && EVP_EncryptUpdate(ctx, NULL, &len, ad, adlen) != 1) return WV_EINVAL;
  if (ptlen > 0 && EVP_EncryptUpdate(ctx, out, &len, pt, ptlen) != 1) return WV_EINVAL;
  if (EVP_EncryptFinal_ex(ctx, out + ptlen, &len) != 1) return WV_EINVAL;
  if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, out + ptlen) != 1) return WV_EINVAL;
  return WV_OK;
}

/* sealed = ciphertext || tag (sealedlen >= 16); out holds sealedlen - 16 bytes.
 * Returns WV_OK, or WV_EINVAL when the tag does not verify (out is then zeroed). */
WV_EXPORT int32_t wavry_aead_open(const uint8_t *key, const uint8_t *nonce, const uint8_t *ad,
                                  int32_t adlen, const uint8_t *sealed, int32_t sealedlen,
                                  uint8_t *out) {
  EVP_CIPHER_CTX *ctx = ctx_for(&open_ctx);
  int len = 0;
  int32_t ctlen = sealedlen - 16;
  if (ctx == NULL || adlen < 0 || ctlen < 0) return WV_EINVAL;
  if (EVP_DecryptInit_ex(ctx, EVP_chacha20_poly1305(), NULL, key, nonce) != 1) return WV_EINVAL;
  if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, 16, (void *)(sealed + ctlen)) != 1) {
    return WV_EINVAL;
  }
  if (adlen > 0 && EVP_DecryptUpdate(ctx, NULL, &len, ad, adlen) != 1) return WV_EINVAL;
  if (ctlen > 0 && EVP_DecryptUpdate(ctx, out, &len, sealed, ctlen) != 1) return WV_EINVAL;
  if (EVP_DecryptFinal_ex(ctx, out + ctlen, &len) != 1) {
    for (int32_t i = 0; i < ctlen; i++) out[i] = 0;
    return WV_EINVAL;
  }
  return WV_OK;
}

/* Builds the RIFT/Noise nonce: four zero bytes, then the counter as u64 little-endian. */
static void nonce_of(double counter, uint8_t nonce[12]) {
  uint64_t c = (uint64_t)counter;
  for (int i = 0; i < 4; i++) nonce[i] = 0;
  for (int i = 0; i < 8; i++) nonce[4 + i] = (uint8_t)(c >> (8 * i));
}

/*
 * Seals `count` packets in place, one FFI call for all (the key is set up once). Packet i is
 * buf[offs[i] .. offs[i] + lens[i]): adlen bytes of associated data (the header), the plaintext
 * (encrypted in place), then 16 bytes the tag is written to. Its nonce is nonce_of(ctrs[i]).
 * Returns WV_OK, or WV_EINVAL (nothing is guaranteed about the packets then).
 */
WV_EXPORT int32_t wavry_aead_seal_batch(const uint8_t *key, uint8_t *buf, const int32_t *offs,
                                        const int32_t *lens, int32_t count, int32_t adlen,
                                        const double *ctrs) {
  EVP_CIPHER_CTX *ctx = ctx_for(&seal_ctx);
  uint8_t nonce[12];
  int len = 0;
  if (ctx == NULL || count < 0 || adlen < 0) return WV_EINVAL;
  if (count == 0) return WV_OK;
  if (EVP_EncryptInit_ex(ctx, EVP_chacha20_poly1305(), NULL, key, NULL) != 1) return WV_EINVAL;
  for (int32_t i = 0; i < count; i++) {
    uint8_t *p = buf + offs[i];
    int32_t ptlen = lens[i] - adlen - 16;
    if (offs[i] < 0 || ptlen < 0 || !(ctrs[i] >= 0)) return WV_EINVAL;
    nonce_of(ctrs[i], nonce);
    if (EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, nonce) != 1) return WV_EINVAL;
    if (adlen > 0 && EVP_EncryptUpdate(ctx, NULL, &len, p, adlen) != 1) return WV_EINVAL;
    if (ptlen > 0 && EVP_EncryptUpdate(ctx, p + adlen, &len, p + adlen, ptlen) != 1) {
      return WV_EINVAL;
    }
    if (EVP_EncryptFinal_ex(ctx, p + adlen + ptlen, &len) != 1) return WV_EINVAL;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, p + adlen + ptlen) != 1) {
      return WV_EINVAL;
    }
  }
  return WV_OK;
}

/*
 * Opens `count` packets in one FFI call. Packet i is src[offs[i] .. offs[i] + lens[i]): adlen
 * bytes of associated data, ciphertext, 16-byte tag; its plaintext (lens[i] - adlen - 16 bytes)
 * goes to dst + dstoffs[i] (may be the ciphertext's own place). ok[i] says whether to open packet
 * i (1) or skip it (0); on return it says whether the packet authenticated (a packet that did not
 * has its plaintext zeroed). Returns how many authenticated, or WV_EINVAL.
 */
WV_EXPORT int32_t wavry_aead_open_batch(const uint8_t *key, const uint8_t *src, const int32_t *offs,
                                        const int32_t *lens, int32_t count, int32_t adlen,
                                        const double *ctrs, uint8_t *dst, const int32_t *dstoffs,
                                        uint8_t *ok) {
  EVP_CIPHER_CTX *ctx = ctx_for(&open_ctx);
  uint8_t nonce[12];
  int len = 0;
  int32_t opened = 0;
  if (ctx == NULL || count < 0 || adlen < 0) return WV_EINVAL;
  if (count == 0) return 0;
  if (EVP_DecryptInit_ex(ctx, EVP_chacha20_poly1305(), NULL, key, NULL) != 1) return WV_EINVAL;
  for (int32_t i = 0; i < count; i++) {
    if (ok[i] != 1) {
      ok[i] = 0;
      continue;
    }
    ok[i] = 0;
    const uint8_t *p = src + offs[i];
    int32_t ctlen = lens[i] - adlen - 16;
    uint8_t *out = dst + dstoffs[i];
    if (offs[i] < 0 || dstoffs[i] < 0 || ctlen < 0 || !(ctrs[i] >= 0)) continue;
    nonce_of(ctrs[i], nonce);
    if (EVP_DecryptInit_ex(ctx, NULL, NULL, NULL, nonce) != 1) return WV_EINVAL;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, 16, (void *)(p + adlen + ctlen)) != 1) {
      return WV_EINVAL;
    }
    int good = (adlen == 0 || EVP_DecryptUpdate(ctx, NULL, &len, p, adlen) == 1) &&
               (ctlen == 0 || EVP_DecryptUpdate(ctx, out, &len, p + adlen, ctlen) == 1) &&
               EVP_DecryptFinal_ex(ctx, out + ctlen, &len) == 1;
    if (good) {
      ok[i] = 1;
      opened++;
    } else {
      for (int32_t b = 0; b < ctlen; b++) out[b] = 0;
    }
  }
  return opened;
}
