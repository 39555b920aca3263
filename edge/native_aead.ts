/**
 * Plugs the FFI shim's ChaCha20-Poly1305 (OpenSSL, ffi/native/aead.c) into
 * crypto/aead.ts as the `"native"` backend, for the data path's threads.
 * Call {@linkcode useNativeAead} once per thread (worker) before sessions
 * that ask for `transport.backend: "native"` are created.
 *
 * @module
 */
import { registerNativeAead } from "../crypto/aead.ts";
import type { TransportConfig } from "../crypto/transport.ts";
import { aeadNative } from "../ffi/aead.ts";

/**
 * `config` with `transport.backend: "native"` when the native backend could
 * be registered in this thread, else unchanged.
 */
export function withNativeAead<C extends { transport?: Partial<TransportConfig> }>(
  config: C | undefined,
): C | undefined {
  if (!useNativeAead()) return config;
  return { ...config, transport: { ...config?.transport, backend: "native" } } as C;
}

/**
 * Registers the native backend in this thread if the shim loads; returns
 * whether it did (false: the shim or its libcrypto is missing — keep "node").
 */
export function useNativeAead(): boolean {
  let symbols: ReturnType<typeof aeadNative>;
  try {
    symbols = aeadNative();
  } catch {
    return false;
  }
  registerNativeAead({
    seal(key, nonce, ad, plaintext, out) {
      const status = symbols.wavry_aead_seal(
        key,
        nonce,
        ad,
        ad.length,
        plaintext,
        plaintext.length,
        out,
      );
      if (status !== 0) throw new RangeError(`native ChaCha20-Poly1305 seal failed (${status})`);
    },
    open(key, nonce, ad, sealed, out) {
      return symbols.wavry_aead_open(key, nonce, ad, ad.length, sealed, sealed.length, out) === 0;
    },
    // One FFI call per batch: the key is set up once and no per-packet call crosses into C.
    sealBatch(key, batch, adLength) {
      const status = symbols.wavry_aead_seal_batch(
        key,
        batch.buffer,
        batch.offsets,
        batch.lengths,
        batch.count,
        adLength,
        batch.counters,
      );
      if (status !== 0) {
        throw new RangeError(`native ChaCha20-Poly1305 batch seal failed (${status})`);
      }
    },
    openBatch(key, batch, adLength, dst, dstOffsets, ok) {
      const opened = symbols.wavry_aead_open_batch(
        key,
        batch.buffer,
        batch.offsets,
        batch.lengths,
        batch.count,
        adLength,
        batch.counters,
        dst,
        dstOffsets,
        ok,
      );
      if (opened < 0) {
        throw new RangeError(`native ChaCha20-Poly1305 batch open failed (${opened})`);
      }
      return opened;
    },
  });
  return true;
}
