/**
 * Symbols of `native/fec.c`: the Reed-Solomon parity loop in C.
 * `edge/native_fec.ts` plugs it into core/fec/reed_solomon.ts.
 *
 * @module
 */
import { lazyNative } from "./library.ts";

/** Symbol table of `native/fec.c`. */
export const fecSymbols = {
  /** (packed data k·len, k, len, rows m·k, m, packed parity m·len) -> status */
  wavry_rs_encode: {
    parameters: ["buffer", "i32", "i32", "buffer", "i32", "buffer"],
    result: "i32",
  },
} as const satisfies Deno.ForeignLibraryInterface;

/** The loaded symbols (the library loads on first use). */
export const fecNative: () => Deno.DynamicLibrary<typeof fecSymbols>["symbols"] = lazyNative(
  fecSymbols,
);
