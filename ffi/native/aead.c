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
