/**
 * Native errors: every shim call returns a status code and writes a message
 * into a caller-owned buffer; this module turns that pair into a typed error.
 *
 * @module
 */

/** Status codes of the native shim (`ffi/native/common.h`). */
export const NativeStatus = {
  Ok: 0,
  InvalidArgument: -1,
  Unsupported: -2,
  Display: -3,
  Codec: -4,
  Again: -5,
  Io: -6,
  Closed: -7,
  OutOfMemory: -8,
  NoDevice: -9,
} as const;

/** A native status code. */
export type NativeStatus = typeof NativeStatus[keyof typeof NativeStatus];

const STATUS_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(NativeStatus).map(([name, code]) => [code, name]),
);

/** A failure reported by the native shim, with its status code and message. */
export class NativeError extends Error {
  /** The negative status code. */
  readonly code: number;
  /** The code's name, e.g. "Display". */
  readonly codeName: string;
  /** Which operation failed, e.g. "capture.open". */
  readonly operation: string;

  /** Builds the error; `message` comes from the shim. */
  constructor(operation: string, code: number, message: string) {
    const codeName = STATUS_NAMES[code] ?? `Status${code}`;
    super(`${operation}: ${message || codeName} (${codeName})`);
    this.name = "NativeError";
    this.code = code;
    this.codeName = codeName;
    this.operation = operation;
  }
}

/** Size of the message buffer passed to every fallible native call. */
export const ERROR_BUFFER_BYTES = 512;

/** A reusable buffer for native error messages. Not shared between concurrent calls. */
export class ErrorBuffer {
  /** The bytes passed to native code. */
  readonly bytes: Uint8Array<ArrayBuffer> = new Uint8Array(ERROR_BUFFER_BYTES);

  /** The NUL-terminated message now in the buffer. */
  message(): string {
    const end = this.bytes.indexOf(0);
    return new TextDecoder().decode(this.bytes.subarray(0, end < 0 ? this.bytes.length : end));
  }

  /** Clears the buffer before a call. */
  reset(): Uint8Array<ArrayBuffer> {
    this.bytes[0] = 0;
    return this.bytes;
  }

  /** Throws a {@linkcode NativeError} when `status` is negative; returns it otherwise. */
  check(operation: string, status: number): number {
    if (status < 0) throw new NativeError(operation, status, this.message());
    return status;
  }
}
