/**
 * Loads the native shim (`ffi/build/libwavry_native.so`, built by `./wavry`
 * with `make -C ffi`). Each media module opens it with its own symbol table,
 * so modules stay independent; the dynamic loader maps the library once.
 *
 * @module
 */

/** The ABI this TypeScript expects (`wavry_abi_version()` in native/common.c). */
export const NATIVE_ABI_VERSION = 1;

const commonSymbols = {
  wavry_abi_version: { parameters: [], result: "i32" },
  wavry_monotonic_us: { parameters: [], result: "i64" },
} as const satisfies Deno.ForeignLibraryInterface;

/** Where the shim is: `WAVRY_NATIVE_LIB`, else `ffi/build/libwavry_native.so` beside this file. */
export function nativeLibraryPath(): string {
  const fromEnv = Deno.env.get("WAVRY_NATIVE_LIB");
  if (fromEnv) return fromEnv;
  return new URL("./build/libwavry_native.so", import.meta.url).pathname;
}

let common: Deno.DynamicLibrary<typeof commonSymbols> | undefined;

function openChecked<S extends Deno.ForeignLibraryInterface>(symbols: S): Deno.DynamicLibrary<S> {
  const path = nativeLibraryPath();
  try {
    return Deno.dlopen(path, symbols);
  } catch (error) {
    throw new Error(
      `the Wavry native shim could not be loaded from ${path}: ${(error as Error).message}. ` +
        `Run ./wavry (it builds the shim with make -C ffi) or set WAVRY_NATIVE_LIB.`,
    );
  }
}

/**
 * Opens the shim with `symbols`, after checking once that its ABI version is
 * the one this code was written for.
 */
export function loadNative<S extends Deno.ForeignLibraryInterface>(
  symbols: S,
): Deno.DynamicLibrary<S> {
  if (common === undefined) {
    common = openChecked(commonSymbols);
    const abi = common.symbols.wavry_abi_version();
    if (abi !== NATIVE_ABI_VERSION) {
      throw new Error(
        `the native shim at ${nativeLibraryPath()} has ABI ${abi}, this code needs ` +
          `${NATIVE_ABI_VERSION}: rebuild it with make -C ffi`,
      );
    }
  }
  return openChecked(symbols);
}

/**
 * A getter for a module's symbols that opens the shim on first use (so that
 * importing a media module never loads native code by itself).
 */
export function lazyNative<S extends Deno.ForeignLibraryInterface>(
  symbols: S,
): () => Deno.DynamicLibrary<S>["symbols"] {
  let library: Deno.DynamicLibrary<S> | undefined;
  return () => (library ??= loadNative(symbols)).symbols;
}

/** CLOCK_MONOTONIC in microseconds: the clock every capture timestamp uses. */
export function monotonicMicros(): number {
  if (common === undefined) loadNative({}).close();
  return Number(common!.symbols.wavry_monotonic_us());
}
