/**
 * The host's video worker: capture → encode on its own thread, so a busy
 * capture or encode never delays input handling on the main thread.
 *
 * Started by {@linkcode MediaPipeline} (`host/media_pipeline.ts`), never
 * imported for its values: importing this module installs the worker's
 * message handler. It opens an {@linkcode X11Capturer} on a display, runs
 * {@linkcode pacedCapture} at the requested rate, encodes each frame with
 * {@linkcode FfmpegVideoEncoder} and posts it to the parent with its
 * payload's ArrayBuffer transferred (no copy). Keyframe requests, bitrate
 * changes and stop arrive by `postMessage`. Errors are posted as values,
 * never thrown across the worker boundary.
 *
 * Protocol (all messages are plain objects):
 * parent → worker: {@linkcode WorkerCommand}; worker → parent: {@linkcode WorkerEvent}.
 *
 * @module
 */
import { VIDEO_TIMING_LENGTH, writeVideoTiming } from "../core/stream.ts";
import { X11Capturer } from "../media/linux/capture_x11.ts";
import { SyntheticCapturer } from "../media/synthetic_capture.ts";
import { FfmpegVideoEncoder } from "../media/linux/video_encoder.ts";
import { pacedCapture } from "../media/pacer.ts";
import type { CapturedFrame, Capturer, CodecConfig } from "../media/types.ts";
import { monotonicMicros as clockUs } from "../media/clock.ts";
import { setThreadNice } from "../edge/thread_priority.ts";

/**
 * Where the pictures come from: the X display (default), or the synthetic
 * pattern of media/pattern.ts at a given size (no display needed; the race
 * and tests use it).
 */
export type MediaSource =
  | { kind: "x11" }
  | {
    kind: "pattern";
    /** Picture width (even). */
    width: number;
    /** Picture height (even). */
    height: number;
    /** Share of bands with fresh content each frame (PatternOptions.freshShare). */
    freshShare?: number;
    /** Fine noise amplitude (PatternOptions.noiseAmplitude). */
    noiseAmplitude?: number;
    /** Texture seed. */
    seed?: number;
  };

/** What the worker streams: sent once, in the first command. */
export interface MediaWorkerOptions {
  /** X display, e.g. ":1" (default: $DISPLAY); unused by a pattern source. */
  display?: string;
  /** Picture source (default X11). */
  source?: MediaSource;
  /** Capture and encode rate. */
  fps: number;
  /** Initial target bitrate, bits per second. */
  bitrateBps: number;
  /** Width of the captured area from the left edge (default: the screen's, rounded down to even). */
  width?: number;
  /** Height of the captured area from the top edge (default: the screen's, rounded down to even). */
  height?: number;
  /** Encoder choice (default "auto": VA-API, then NVENC, then libx264). */
  encoder?: "auto" | "libx264" | "h264_vaapi" | "h264_nvenc";
  /**
   * Nice value of this thread and the encoder threads it starts (default 0:
   * unchanged). Set before the encoder opens, so its thread pool inherits it.
   */
  nice?: number;
}

/** Messages the parent sends to the worker. */
export type WorkerCommand =
  | { type: "start"; options: MediaWorkerOptions }
  | { type: "keyframe" }
  | { type: "bitrate"; bitrateBps: number }
  /** Encode only this many of the source's frames per second (congestion control lowers it). */
  | { type: "fps"; fps: number }
  /**
   * Encode nothing while `hold` is true: congestion control's window is full (the link stopped
   * delivering, or too much is in flight), and a frame encoded now would only wait in a queue.
   * Capture slots are left out on purpose, as with a lowered frame rate; the next frame encoded
   * predicts from the last one encoded, so the stream stays decodable.
   */
  | { type: "hold"; hold: boolean }
  | { type: "stop" };

/** Host-clock timing of one frame (CLOCK_MONOTONIC µs, except the two durations in ms). */
export interface FrameTiming {
  /** The capture call returned. */
  captureEndUs: number;
  /** The frame went into the encoder. */
  encodeStartUs: number;
  /** The encoder gave the access unit back. */
  encodeEndUs: number;
  /** The encoder's own BGRA → YUV conversion time (ms). */
  convertMs: number;
  /** The encoder's own encode time (ms). */
  encodeMs: number;
}

/** Messages the worker sends to the parent. */
export type WorkerEvent =
  | {
    type: "ready";
    config: CodecConfig;
    encoder: string;
    width: number;
    height: number;
    fps: number;
  }
  | {
    type: "frame";
    frameId: number;
    keyframe: boolean;
    captureTimeUs: number;
    timing: FrameTiming;
    /** Capture slots skipped so far because a frame ran late. */
    skippedSlots: number;
    /** Video payload: 24-byte timing header (handed_to_session_us still 0), then the Annex-B AU. */
    payload: Uint8Array;
  }
  | { type: "error"; error: { kind: "Open" | "Capture" | "Encode" | "Command"; message: string } }
  /** A line worth logging (e.g. the thread priority it got). */
  | { type: "log"; line: string }
  | { type: "stopped"; released: boolean };

interface WorkerScope {
  onmessage: ((event: MessageEvent<WorkerCommand>) => void) | null;
  postMessage(message: WorkerEvent, transfer?: Transferable[]): void;
  close(): void;
}

const scope = globalThis as unknown as WorkerScope;

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function evenSize(name: string, requested: number | undefined, screen: number): number {
  const value = requested ?? screen - (screen % 2);
  if (!Number.isInteger(value) || value < 2 || value % 2 !== 0 || value > screen) {
    throw new RangeError(`${name} ${value} must be even and within the screen's ${screen}`);
  }
  return value;
}

let abort: AbortController | undefined;
let encoder: FfmpegVideoEncoder | undefined;
let running: Promise<void> | undefined;
// The last native objects opened, so the stop report can say whether they were freed.
let lastCapturer: X11Capturer | SyntheticCapturer | undefined;
let lastEncoder: FfmpegVideoEncoder | undefined;
// Frame-rate lowering: the encoder keeps its configured rate; frames are left out evenly and the
// encoder's bitrate is scaled so the stream's bitrate stays what was asked for.
let sourceFps = 0;
let targetFps = 0;
let requestedBitrate = 0;
let frameCredit = 0;
let held = false;

function applyBitrate(): void {
  if (encoder === undefined || targetFps <= 0) return;
  const scaled = Math.round(requestedBitrate * (sourceFps / targetFps));
  encoder.setBitrate(Math.min(0x7fffffff, Math.max(1, scaled)));
}

async function run(options: MediaWorkerOptions, signal: AbortSignal): Promise<void> {
  let capturer: Capturer | undefined;
  try {
    if (options.nice !== undefined && options.nice !== 0) {
      // Before the encoder opens: its threads inherit this thread's nice value.
      let niced: boolean;
      try {
        niced = setThreadNice(options.nice);
      } catch (error) {
        scope.postMessage({ type: "error", error: { kind: "Open", message: messageOf(error) } });
        return;
      }
      scope.postMessage({
        type: "log",
        line: niced
          ? `capture/encode threads at nice ${options.nice}`
          : `capture/encode threads at normal priority (nice ${options.nice} refused)`,
      });
    }
    try {
      const source = options.source ?? { kind: "x11" };
      capturer = lastCapturer = source.kind === "pattern"
        ? new SyntheticCapturer(source)
        : X11Capturer.open({ display: options.display });
      const width = evenSize("width", options.width, capturer.width);
      const height = evenSize("height", options.height, capturer.height);
      encoder = lastEncoder = FfmpegVideoEncoder.open({
        width,
        height,
        fps: options.fps,
        bitrateBps: options.bitrateBps,
        encoder: options.encoder ?? "auto",
        log: false,
      });
    } catch (error) {
      scope.postMessage({ type: "error", error: { kind: "Open", message: messageOf(error) } });
      return;
    }
    const enc = encoder;
    sourceFps = targetFps = options.fps;
    requestedBitrate = options.bitrateBps;
    enc.requestKeyframe();
    let frameId = 0;
    let skippedSlots = 0;
    const frames = pacedCapture(capturer, {
      fps: options.fps,
      signal,
      onSkipped: (n) => skippedSlots += n,
    });
    for (;;) {
      let captured: CapturedFrame;
      try {
        const next = await frames.next();
        if (next.done) break;
        captured = next.value;
      } catch (error) {
        scope.postMessage({ type: "error", error: { kind: "Capture", message: messageOf(error) } });
        return;
      }
      const captureEndUs = clockUs();
      // The first frame (the keyframe the client waits for) is never held back.
      if (held && frameId > 0) continue;
      frameCredit = Math.min(1, frameCredit + targetFps / sourceFps);
      // A frame left out on purpose is not a late slot: skippedSlots does not count it.
      if (frameCredit < 1 - 1e-9) continue;
      frameCredit -= 1;
      // Cropping to the top-left area is free: same buffer and stride, smaller width/height.
      const frame: CapturedFrame = { ...captured, width: enc.width, height: enc.height };
      const encodeStartUs = clockUs();
      let accessUnit;
      try {
        accessUnit = await enc.encode(frame);
      } catch (error) {
        scope.postMessage({ type: "error", error: { kind: "Encode", message: messageOf(error) } });
        return;
      }
      const encodeEndUs = clockUs();
      if (frameId === 0) {
        // After the first keyframe the config holds the in-band SPS/PPS the stream really uses.
        scope.postMessage({
          type: "ready",
          config: enc.config,
          encoder: enc.name,
          width: enc.width,
          height: enc.height,
          fps: options.fps,
        });
      }
      const payload = new Uint8Array(VIDEO_TIMING_LENGTH + accessUnit.data.length);
      payload.set(accessUnit.data, VIDEO_TIMING_LENGTH);
      writeVideoTiming(payload, { encodeStartUs, encodeEndUs, handedToSessionUs: 0 });
      scope.postMessage({
        type: "frame",
        frameId: frameId,
        keyframe: accessUnit.keyframe,
        captureTimeUs: accessUnit.captureTimeUs,
        timing: {
          captureEndUs,
          encodeStartUs,
          encodeEndUs,
          convertMs: accessUnit.convertMs,
          encodeMs: accessUnit.encodeMs,
        },
        skippedSlots,
        payload,
      }, [payload.buffer]);
      frameId = (frameId + 1) >>> 0;
      if (signal.aborted) break;
    }
  } finally {
    encoder?.close();
    encoder = undefined;
    capturer?.close();
    // Both close their native handle once the call in flight settles: let that run first.
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
}

function command(message: WorkerCommand): void {
  try {
    switch (message.type) {
      case "start":
        if (running !== undefined) throw new Error("the worker was already started");
        abort = new AbortController();
        running = run(message.options, abort.signal).finally(() => {
          // Reported so the parent can check no native capturer or encoder outlives the worker.
          const released = (lastCapturer?.closed ?? true) && (lastEncoder?.closed ?? true);
          scope.postMessage({ type: "stopped", released });
          scope.close();
        });
        break;
      case "keyframe":
        encoder?.requestKeyframe();
        break;
      case "bitrate":
        requestedBitrate = message.bitrateBps;
        applyBitrate();
        break;
      case "fps":
        if (!(message.fps > 0) || (sourceFps > 0 && message.fps > sourceFps)) {
          throw new RangeError(`fps ${message.fps} must be in (0, ${sourceFps}]`);
        }
        targetFps = message.fps;
        applyBitrate();
        break;
      case "hold":
        held = message.hold === true;
        break;
      case "stop":
        if (running === undefined) {
          scope.postMessage({ type: "stopped", released: true });
          scope.close();
        }
        abort?.abort();
        break;
    }
  } catch (error) {
    scope.postMessage({ type: "error", error: { kind: "Command", message: messageOf(error) } });
  }
}

scope.onmessage = (event) => command(event.data);
