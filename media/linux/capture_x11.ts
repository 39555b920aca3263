/**
 * X11 screen capture through MIT-SHM (`ffi/native/capture_x11.c`).
 *
 * Each `capture()` is one nonblocking FFI call (XShmGetImage on a worker
 * thread), so the event loop keeps running while the X server copies the
 * frame. By default the frame's `data` is a view of the shared-memory
 * segment itself (no copy at all); with `copy: true` the image is copied
 * into a buffer owned by the capturer instead. Either way the bytes are
 * reused by the next `capture()`.
 *
 * @module
 */
import { ErrorBuffer, NativeError, NativeStatus } from "../../ffi/errors.ts";
import { CallChain, NativeHandle, pointerFromOut } from "../../ffi/handles.ts";
import { lazyNative } from "../../ffi/library.ts";
import type { CapturedFrame, CaptureOptions, Capturer } from "../types.ts";

const symbols = {
  wavry_capture_open: {
    parameters: ["buffer", "i32", "buffer", "buffer", "i32"],
    result: "i32",
  },
  wavry_capture_info: { parameters: ["pointer", "buffer", "buffer", "buffer"], result: "i32" },
  wavry_capture_data: { parameters: ["pointer"], result: "pointer" },
  wavry_capture_grab: {
    parameters: ["pointer", "buffer", "i32", "buffer", "buffer", "buffer", "buffer", "i32"],
    result: "i32",
    nonblocking: true,
  },
  wavry_capture_close: { parameters: ["pointer"], result: "void" },
  wavry_capture_refresh_mhz: { parameters: ["pointer", "buffer"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

const native = lazyNative(symbols);

function cString(value: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(value + "\0");
}

/** Options of {@linkcode X11Capturer.open}. */
export interface X11CaptureOptions extends CaptureOptions {
  /**
   * Copy each image out of the shared-memory segment into a buffer of the
   * capturer (false, the default: `data` views the segment, no copy).
   */
  copy?: boolean;
}

/** Screen capture from an X server with MIT-SHM. */
export class X11Capturer implements Capturer {
  /** Captured area width. */
  readonly width: number;
  /** Captured area height. */
  readonly height: number;
  /** Bytes per row of the captured image. */
  readonly stride: number;
  readonly #handle: NativeHandle;
  readonly #copy: Uint8Array<ArrayBuffer> | undefined;
  readonly #view: Uint8Array;
  readonly #error = new ErrorBuffer();
  readonly #time = new BigInt64Array(1);
  readonly #cursorX = new Int32Array(1);
  readonly #cursorY = new Int32Array(1);
  readonly #calls: CallChain;

  private constructor(
    handle: NativeHandle,
    width: number,
    height: number,
    stride: number,
    copy: boolean,
  ) {
    this.#handle = handle;
    this.#calls = new CallChain(handle);
    this.width = width;
    this.height = height;
    this.stride = stride;
    const bytes = stride * height;
    if (copy) {
      this.#copy = new Uint8Array(bytes);
      this.#view = this.#copy;
    } else {
      const data = native().wavry_capture_data(handle.pointer);
      if (data === null) throw new Error("capture handle has no shared segment");
      this.#view = new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(data, bytes));
    }
  }

  /**
   * Opens a capturer on `options.display` (default $DISPLAY), for monitor
   * `options.monitor` (Xinerama order) or the whole screen.
   * Throws a {@linkcode NativeError} (Display, InvalidArgument, ...) when it cannot.
   */
  static open(options: X11CaptureOptions = {}): X11Capturer {
    const lib = native();
    const error = new ErrorBuffer();
    const out = new BigUint64Array(1);
    const monitor = options.monitor ?? -1;
    if (!Number.isInteger(monitor) || monitor < -1) {
      throw new NativeError(
        "capture.open",
        NativeStatus.InvalidArgument,
        `monitor ${monitor} is not an index`,
      );
    }
    const display = options.display === undefined ? null : cString(options.display);
    error.check(
      "capture.open",
      lib.wavry_capture_open(display, monitor, out, error.reset(), error.bytes.length),
    );
    const handle = new NativeHandle("capture", pointerFromOut(out), (p) => {
      native().wavry_capture_close(p);
    });
    try {
      const w = new Int32Array(1), h = new Int32Array(1), s = new Int32Array(1);
      error.check("capture.info", lib.wavry_capture_info(handle.pointer, w, h, s));
      return new X11Capturer(handle, w[0], h[0], s[0], options.copy ?? false);
    } catch (e) {
      handle.close();
      throw e;
    }
  }

  /** The display's refresh rate (Hz) as XRandR reports it, or undefined when it does not (Xvfb). */
  refreshRate(): number | undefined {
    const mhz = new Int32Array(1);
    const status = native().wavry_capture_refresh_mhz(this.#handle.pointer, mhz);
    if (status < 0) {
      throw new NativeError("capture.refreshRate", status, "cannot read the refresh rate");
    }
    return mhz[0] > 0 ? mhz[0] / 1000 : undefined;
  }

  /** Whether the native capturer has been freed (after `close()` and any grab in flight). */
  get closed(): boolean {
    return this.#handle.closed;
  }

  /** Whether frames are copied out of the shared segment. */
  get copies(): boolean {
    return this.#copy !== undefined;
  }

  /**
   * Takes one image now. The returned frame's `data` is reused by the next
   * `capture()` and is invalid after `close()`. Calls are serialised.
   */
  capture(): Promise<CapturedFrame> {
    return this.#calls.run("capture.grab", () => this.#grab());
  }

  async #grab(): Promise<CapturedFrame> {
    const pointer = this.#handle.pointer;
    const dst = this.#copy ?? null;
    const status = await native().wavry_capture_grab(
      pointer,
      dst,
      dst === null ? 0 : dst.length,
      this.#time,
      this.#cursorX,
      this.#cursorY,
      this.#error.reset(),
      this.#error.bytes.length,
    );
    this.#error.check("capture.grab", status);
    const x = this.#cursorX[0], y = this.#cursorY[0];
    return {
      width: this.width,
      height: this.height,
      stride: this.stride,
      data: this.#view,
      captureTimeUs: Number(this.#time[0]),
      cursor: x >= 0 && y >= 0 ? { x, y } : undefined,
    };
  }

  /** Frees the capturer (after a capture in flight finishes). */
  close(): void {
    this.#calls.close();
  }
}
