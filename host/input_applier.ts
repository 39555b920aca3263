/**
 * Applies the client's INPUT channel messages (`core/stream.ts`) to the
 * host's desktop through an {@linkcode InputInjector}, and answers each with
 * the INPUT_APPLIED control message that lets the client measure input
 * latency.
 *
 * - MOUSE_ABS coordinates (0..65535 across the captured area) become screen
 *   pixels of that area.
 * - Sequence numbers are checked again (the RIFT channel already delivers in
 *   order, exactly once): a message at or behind the newest one applied is
 *   dropped as a `Duplicate` and never injected twice.
 * - Every key and button held down is tracked, so {@linkcode InputApplier.releaseAll}
 *   lifts them when the client goes away (no key stays stuck on the host).
 * - Errors are values: {@linkcode InputApplier.apply} never throws.
 *
 * Runs on the thread that owns the session, synchronously: XTest calls are
 * a few microseconds each (measured in `stats`).
 *
 * @module
 */
import { err, ok, type Result } from "../core/result.ts";
import {
  decodeInput,
  encodeControl,
  type InputAppliedMessage,
  type InputMessage,
  MOUSE_ABS_MAX,
  type StreamError,
  WHEEL_UNITS_PER_NOTCH,
} from "../core/stream.ts";
import { monotonicMicros } from "../media/clock.ts";
import type { GamepadInjector, InputInjector, MouseButton } from "../media/types.ts";

/** The screen rectangle MOUSE_ABS coordinates span (the captured area). */
export interface InputArea {
  /** Left edge, screen pixels. */
  x: number;
  /** Top edge, screen pixels. */
  y: number;
  /** Width in pixels (≥ 1). */
  width: number;
  /** Height in pixels (≥ 1). */
  height: number;
}

/** How an {@linkcode InputApplier} works. */
export interface InputApplierOptions {
  /** Where MOUSE_ABS lands: the captured area (a function is asked on every event, for resizes). */
  area: InputArea | (() => InputArea);
  /** Virtual gamepad for an index, or undefined when there is none (GAMEPAD is then Unsupported). */
  gamepad?: (index: number) => GamepadInjector | undefined;
  /** Host clock for `hostAppliedUs`: CLOCK_MONOTONIC µs by default, the clock of capture timestamps. */
  clockUs?: () => number;
}

/** Why a message was not applied. */
export type ApplyErrorKind =
  /** The bytes are not an INPUT message. */
  | "Malformed"
  /** The sequence is not newer than the newest one applied. */
  | "Duplicate"
  /** A key code, button or gamepad this host cannot inject. */
  | "Unsupported"
  /** The injector failed (e.g. the X server went away). */
  | "InjectionFailed";

/** A message that was not applied. */
export interface ApplyError {
  /** Error class, for metrics. */
  kind: ApplyErrorKind;
  /** Free-form explanation. */
  detail: string;
  /** The decoded message, when it decoded. */
  message?: InputMessage;
}

/** A message that was applied. */
export interface Applied {
  /** The decoded message. */
  message: InputMessage;
  /** The INPUT_APPLIED reply. */
  reply: InputAppliedMessage;
  /** The reply encoded, ready for `Session.sendControl`. */
  replyBytes: Uint8Array;
  /** Time spent injecting, µs (fractional). */
  applyUs: number;
}

/** Counters of an applier. */
export interface InputApplierStats {
  /** Messages applied. */
  applied: number;
  /** Messages not applied, by kind. */
  rejected: Partial<Record<ApplyErrorKind, number>>;
  /** Median injection time of the last (up to) 256 applied messages, µs. */
  applyP50Us: number;
  /** Largest injection time seen, µs. */
  applyMaxUs: number;
}

function isMouseButton(button: number): button is MouseButton {
  return button >= 0 && button <= 4;
}

/** Decodes INPUT messages and injects them, remembering what is held down. */
export class InputApplier {
  readonly #injector: InputInjector;
  readonly #options: InputApplierOptions;
  readonly #clock: () => number;
  readonly #keysDown = new Set<string>();
  readonly #buttonsDown = new Set<MouseButton>();
  readonly #gamepadsTouched = new Set<number>();
  #lastSequence: number | undefined;
  readonly #recent: number[] = [];
  readonly #stats: InputApplierStats = { applied: 0, rejected: {}, applyP50Us: 0, applyMaxUs: 0 };

  /** Applies through `injector` (the caller keeps ownership and closes it). */
  constructor(injector: InputInjector, options: InputApplierOptions) {
    this.#injector = injector;
    this.#options = options;
    this.#clock = options.clockUs ?? monotonicMicros;
  }

  /** Counters (a copy). */
  get stats(): InputApplierStats {
    const sorted = [...this.#recent].sort((a, b) => a - b);
    return {
      ...this.#stats,
      rejected: { ...this.#stats.rejected },
      applyP50Us: sorted.length ? sorted[Math.floor(sorted.length / 2)] : 0,
    };
  }

  /** Keys (`KeyboardEvent.code`) and mouse buttons currently held down through this applier. */
  get held(): { keys: string[]; buttons: number[] } {
    return { keys: [...this.#keysDown], buttons: [...this.#buttonsDown] };
  }

  /** Decodes and applies one INPUT message; never throws. */
  apply(bytes: Uint8Array): Result<Applied, ApplyError> {
    const decoded = decodeInput(bytes);
    if (!decoded.ok) return this.#reject("Malformed", describe(decoded.error));
    return this.applyMessage(decoded.value);
  }

  /** Applies one decoded message; never throws. */
  applyMessage(message: InputMessage): Result<Applied, ApplyError> {
    if (this.#lastSequence !== undefined) {
      // Serial-number order (RFC 1982) over u32, so the sequence may wrap.
      const ahead = (message.sequence - this.#lastSequence) >>> 0;
      if (ahead === 0 || ahead >= 0x80000000) {
        return this.#reject(
          "Duplicate",
          `sequence ${message.sequence} is not after ${this.#lastSequence}`,
          message,
        );
      }
    }
    // Recorded before injecting: a message that failed is not retried either.
    this.#lastSequence = message.sequence;
    const started = performance.now();
    try {
      const unsupported = this.#inject(message);
      if (unsupported !== undefined) return this.#reject("Unsupported", unsupported, message);
    } catch (error) {
      return this.#reject(
        "InjectionFailed",
        error instanceof Error ? error.message : String(error),
        message,
      );
    }
    const applyUs = (performance.now() - started) * 1000;
    const reply: InputAppliedMessage = {
      type: "input-applied",
      sequence: message.sequence,
      clientTimeUs: message.clientTimeUs,
      hostAppliedUs: this.#clock(),
    };
    this.#stats.applied++;
    this.#stats.applyMaxUs = Math.max(this.#stats.applyMaxUs, applyUs);
    this.#recent.push(applyUs);
    if (this.#recent.length > 256) this.#recent.shift();
    return ok({ message, reply, replyBytes: encodeControl(reply), applyUs });
  }

  /**
   * Releases every key and button held down through this applier, centres
   * touched gamepads, then asks the injector to release anything else it
   * holds (XTest's `releaseAll`). Call it when the client goes away. Never throws.
   */
  releaseAll(): void {
    const attempt = (f: () => void): void => {
      try {
        f();
      } catch {
        // Best effort: a dead injector has nothing held anyway.
      }
    };
    for (const code of this.#keysDown) attempt(() => this.#injector.key(code, false));
    for (const button of this.#buttonsDown) attempt(() => this.#injector.button(button, false));
    for (const index of this.#gamepadsTouched) {
      attempt(() =>
        this.#options.gamepad?.(index)?.update(new Array(17).fill(0), new Array(4).fill(0))
      );
    }
    this.#keysDown.clear();
    this.#buttonsDown.clear();
    this.#gamepadsTouched.clear();
    const releaseAll = (this.#injector as { releaseAll?: () => void }).releaseAll;
    if (typeof releaseAll === "function") attempt(() => releaseAll.call(this.#injector));
  }

  /** Forgets the newest sequence applied (a new client session starts its own numbering). */
  resetSequence(): void {
    this.#lastSequence = undefined;
  }

  /** Injects; returns why it cannot when unsupported; throws what the injector throws. */
  #inject(message: InputMessage): string | undefined {
    const event = message.event;
    const injector = this.#injector;
    switch (event.type) {
      case "key":
        // The injector refuses unknown codes by throwing; map that to Unsupported.
        try {
          injector.key(event.code, event.down);
        } catch (error) {
          if (/unknown KeyboardEvent\.code/.test(String(error))) {
            return `key code ${event.code} has no key on this host`;
          }
          throw error;
        }
        if (event.down) this.#keysDown.add(event.code);
        else this.#keysDown.delete(event.code);
        return undefined;
      case "mouse-abs": {
        const area = typeof this.#options.area === "function"
          ? this.#options.area()
          : this.#options.area;
        const x = area.x + Math.round(event.x * (area.width - 1) / MOUSE_ABS_MAX);
        const y = area.y + Math.round(event.y * (area.height - 1) / MOUSE_ABS_MAX);
        injector.moveAbsolute(x, y);
        return undefined;
      }
      case "mouse-rel":
        injector.moveRelative(event.dx, event.dy);
        return undefined;
      case "button":
        if (!isMouseButton(event.button)) return `mouse button ${event.button} is not one of 0..4`;
        injector.button(event.button, event.down);
        if (event.down) this.#buttonsDown.add(event.button);
        else this.#buttonsDown.delete(event.button);
        return undefined;
      case "wheel": {
        // At most 100 notches per injector call (XTest's limit): a large delta goes in pieces.
        let dx = event.dx / WHEEL_UNITS_PER_NOTCH;
        let dy = event.dy / WHEEL_UNITS_PER_NOTCH;
        while (dx !== 0 || dy !== 0) {
          const sx = Math.max(-100, Math.min(100, dx));
          const sy = Math.max(-100, Math.min(100, dy));
          injector.wheel(sx, sy);
          dx -= sx;
          dy -= sy;
        }
        return undefined;
      }
      case "gamepad": {
        const pad = this.#options.gamepad?.(event.index);
        if (pad === undefined) return `no gamepad ${event.index} on this host`;
        pad.update(
          event.buttons.map((b) => b / 255),
          event.axes.map((a) => Math.max(-1, a / 32767)),
        );
        this.#gamepadsTouched.add(event.index);
        return undefined;
      }
    }
  }

  #reject(
    kind: ApplyErrorKind,
    detail: string,
    message?: InputMessage,
  ): { ok: false; error: ApplyError } {
    this.#stats.rejected[kind] = (this.#stats.rejected[kind] ?? 0) + 1;
    return err({ kind, detail, message });
  }
}

function describe(error: StreamError): string {
  return `${error.kind}: ${error.detail}`;
}
