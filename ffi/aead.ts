/**
 * Symbols of `native/aead.c`: ChaCha20-Poly1305 through OpenSSL's libcrypto,
 * one packet per call, or a batch of packets per call. `edge/native_aead.ts` plugs it into crypto/aead.ts.
 *
 * @module
 */
import { lazyNative } from "./library.ts";

/** Symbol table of `native/aead.c`. */
export const aeadSymbols = {
  /** (key32, nonce12, ad, adlen, plaintext, len, out[len + 16]) -> status */
  wavry_aead_seal: {
    parameters: ["buffer", "buffer", "buffer", "i32", "buffer", "i32", "buffer"],
    result: "i32",
  },
  /** (key32, nonce12, ad, adlen, sealed, len, out[len - 16]) -> status (WV_EINVAL: forged) */
  wavry_aead_open: {
    parameters: ["buffer", "buffer", "buffer", "i32", "buffer", "i32", "buffer"],
    result: "i32",
  },
  /** (key32, buf, offsets i32[n], lengths i32[n], n, adlen, counters f64[n]) -> status; in place */
  wavry_aead_seal_batch: {
    parameters: ["buffer", "buffer", "buffer", "buffer", "i32", "i32", "buffer"],
    result: "i32",
  },
  /**
   * (key32, src, offsets, lengths, n, adlen, counters f64[n], dst, dst offsets, ok u8[n] in/out)
   * -> packets authenticated, or a negative status
   */
  wavry_aead_open_batch: {
    parameters: [
      "buffer",
      "buffer",
      "buffer",
      "buffer",
      "i32",
      "i32",
      "buffer",
      "buffer",
      "buffer",
      "buffer",
    ],
    result: "i32",
  },
} as const satisfies Deno.ForeignLibraryInterface;

/** The loaded symbols (the library loads on first use). */
export const aeadNative: () => Deno.DynamicLibrary<typeof aeadSymbols>["symbols"] = lazyNative(
  aeadSymbols,
);
