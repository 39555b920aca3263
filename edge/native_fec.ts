/**
 * Plugs the FFI shim's Reed-Solomon parity loop (ffi/native/fec.c) into
 * core/fec for this thread: the media send worker's FEC then costs about a
 * fifth of the TypeScript loop (bench/dataplane.ts). core/ itself never
 * loads native code.
 *
 * @module
 */
import { registerRsEncodeKernel } from "../core/fec/reed_solomon.ts";
import { fecNative } from "../ffi/fec.ts";

/** Registers the native kernel in this thread if the shim loads; returns whether it did. */
export function useNativeFec(): boolean {
  let symbols: ReturnType<typeof fecNative>;
  try {
    symbols = fecNative();
  } catch {
    return false;
  }
  registerRsEncodeKernel((data, k, len, rows, m, parity) => {
    const status = symbols.wavry_rs_encode(data, k, len, rows, m, parity);
    if (status !== 0) throw new RangeError(`native RS encode failed (${status})`);
  });
  return true;
}
