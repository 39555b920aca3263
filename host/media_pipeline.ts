/**
 * The parent side of the host's video worker (`host/media_worker.ts`): a
 * typed handle that starts the worker, hands out its encoded frames, passes
 * keyframe requests and bitrate changes to it, and stops it cleanly.
 *
 * ```ts
 * const pipeline = await MediaPipeline.start({ display: ":0", fps: 60, bitrateBps: 8e6 });
 * session.sendControl(encodeControl(pipeline.streamConfig()));
 * for await (const frame of pipeline.frames()) {
 *   session.sendVideoFrame(toEncodedFrame(frame, clock()));
 * }
 * ```
 *
 * Capture and encode run on the worker's thread, so a slow frame never holds
 * up the main thread's input handling; each frame's bytes arrive by
 * transfer, not copy.
 *
 * @module
 */
import type { EncodedFrame } from "../core/fragment.ts";
import { type StreamConfigMessage, VIDEO_TIMING_LENGTH, writeVideoTiming } from "../core/stream.ts";
import type { CodecConfig } from "../media/types.ts";
import type {
  FrameTiming,
  MediaWorkerOptions,
  WorkerCommand,
  WorkerEvent,
} from "./media_worker.ts";

export type { FrameTiming } from "./media_worker.ts";

/** How to start a {@linkcode MediaPipeline}. */
export interface MediaPipelineOptions extends MediaWorkerOptions {
  /**
   * Most frames kept for a consumer that falls behind (default 8). Beyond it
   * the queue is dropped, a keyframe is requested and frames up to it are
   * discarded: a late picture is worth less than a fresh one.
   */
  maxQueuedFrames?: number;
  /** How long `start` waits for the first frame (default 10 s). */
  startTimeoutMs?: number;
  /** Called with lines worth logging from the worker. */
  log?: (line: string) => void;
}

/** One encoded frame from the worker. */
export interface HostFrame {
  /** Serial number from 0, +1 per frame (u32, wrapping). */
  readonly frameId: number;
  /** Whether it is an IDR frame. */
  readonly keyframe: boolean;
  /** When the image was captured (host CLOCK_MONOTONIC µs). */
  readonly captureTimeUs: number;
  /** Host-side timing of the frame. */
  readonly timing: FrameTiming;
  /**
   * The whole video payload (docs/STREAM.md): the 24-byte timing header with
   * encode times filled in and handed_to_session_us 0, then the Annex-B AU.
   * Stamp it with {@linkcode toEncodedFrame}.
   */
  readonly payload: Uint8Array;
  /** The Annex-B access unit: a view of `payload` after the header. */
  readonly data: Uint8Array;
}

/** Why a pipeline failed. */
export class MediaPipelineError extends Error {
  /** Where it failed: opening, capturing, encoding, a command, or the worker itself. */
  readonly kind: "Open" | "Capture" | "Encode" | "Command" | "Worker" | "Timeout";

  /** Builds the error. */
  constructor(kind: MediaPipelineError["kind"], message: string) {
    super(message);
    this.name = "MediaPipelineError";
    this.kind = kind;
  }
}

/** Counters of a pipeline. */
export interface MediaPipelineStats {
  /** Frames received from the worker. */
  framesReceived: number;
  /** Frames discarded because the consumer fell behind. */
  framesDropped: number;
  /** Capture slots the worker skipped because a frame ran late. */
  skippedSlots: number;
}

/**
 * Stamps `frame`'s payload with the time it is handed to the session (in
 * place) and returns what `Session.sendVideoFrame` takes.
 */
export function toEncodedFrame(frame: HostFrame, handedToSessionUs: number): EncodedFrame {
  writeVideoTiming(frame.payload, {
    encodeStartUs: frame.timing.encodeStartUs,
    encodeEndUs: frame.timing.encodeEndUs,
    handedToSessionUs,
  });
  return {
    frameId: frame.frameId,
    captureTimeUs: frame.captureTimeUs,
    keyframe: frame.keyframe,
    data: frame.payload,
  };
}

type Ready = Extract<WorkerEvent, { type: "ready" }>;

/** Capture → encode on a dedicated worker, driven from the parent thread. */
export class MediaPipeline {
  /** Decoder configuration (from the first keyframe's SPS/PPS). */
  readonly config: CodecConfig;
  /** The encoder running, e.g. "libx264". */
  readonly encoderName: string;
  /** Video width. */
  readonly width: number;
  /** Video height. */
  readonly height: number;
  /** Frame rate. */
  readonly fps: number;

  readonly #worker: Worker;
  readonly #maxQueued: number;
  readonly #queue: HostFrame[] = [];
  #waiter: (() => void) | undefined;
  #failure: MediaPipelineError | undefined;
  #ended = false;
  #awaitingKeyframe = false;
  #bitrate: number;
  #targetFps: number | undefined;
  #held = false;
  #stopped: Promise<void>;
  #released: boolean | undefined;
  #resolveStopped!: () => void;
  #stopping: Promise<void> | undefined;
  readonly #stats: MediaPipelineStats = { framesReceived: 0, framesDropped: 0, skippedSlots: 0 };

  private constructor(worker: Worker, ready: Ready, options: MediaPipelineOptions) {
    this.#worker = worker;
    this.config = ready.config;
    this.encoderName = ready.encoder;
    this.width = ready.width;
    this.height = ready.height;
    this.fps = ready.fps;
    this.#bitrate = options.bitrateBps;
    this.#maxQueued = options.maxQueuedFrames ?? 8;
    this.#stopped = new Promise((resolve) => this.#resolveStopped = resolve);
  }

  /**
   * Starts the worker and resolves once the first frame is encoded (so
   * `config` is final). Rejects with a {@linkcode MediaPipelineError} when
   * the display, capturer or encoder cannot open; the worker is gone then.
   */
  static start(options: MediaPipelineOptions): Promise<MediaPipeline> {
    const worker = new Worker(new URL("./media_worker.ts", import.meta.url).href, {
      type: "module",
    });
    let pipeline: MediaPipeline | undefined;
    const early: WorkerEvent[] = [];
    return new Promise<MediaPipeline>((resolve, reject) => {
      const timer = setTimeout(() => {
        fail(new MediaPipelineError("Timeout", "the media worker sent no frame in time"));
      }, options.startTimeoutMs ?? 10_000);
      let settled = false;
      const fail = (error: MediaPipelineError): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        worker.terminate();
        reject(error);
      };
      worker.onerror = (event) => {
        event.preventDefault();
        const error = new MediaPipelineError("Worker", event.message);
        if (pipeline) pipeline.#fail(error);
        else fail(error);
      };
      worker.onmessage = (event: MessageEvent<WorkerEvent>) => {
        const message = event.data;
        if (message.type === "log") return options.log?.(message.line);
        if (pipeline) return pipeline.#onEvent(message);
        if (message.type === "ready") {
          settled = true;
          clearTimeout(timer);
          pipeline = new MediaPipeline(worker, message, options);
          for (const m of early) pipeline.#onEvent(m);
          resolve(pipeline);
        } else if (message.type === "error") {
          fail(new MediaPipelineError(message.error.kind, message.error.message));
        } else if (message.type === "stopped") {
          fail(new MediaPipelineError("Worker", "the media worker stopped before its first frame"));
        } else {
          early.push(message);
        }
      };
      const { maxQueuedFrames: _q, startTimeoutMs: _t, log: _l, ...workerOptions } = options;
      worker.postMessage({ type: "start", options: workerOptions } satisfies WorkerCommand);
    });
  }

  /** Current target bitrate. */
  get bitrateBps(): number {
    return this.#bitrate;
  }

  /** Counters (a copy). */
  get stats(): MediaPipelineStats {
    return { ...this.#stats };
  }

  /** The STREAM_CONFIG message to send the client (core/stream.ts). */
  streamConfig(): StreamConfigMessage {
    return {
      type: "stream-config",
      width: this.width,
      height: this.height,
      fps: this.fps,
      codec: this.config.codec,
      avcc: this.config.avcc,
    };
  }

  /**
   * Encoded frames in order, until `stop()` (the iterator ends) or a failure
   * (it throws the {@linkcode MediaPipelineError}). One consumer at a time.
   */
  frames(): AsyncIterableIterator<HostFrame> {
    const iterator: AsyncIterableIterator<HostFrame> = {
      next: async (): Promise<IteratorResult<HostFrame>> => {
        for (;;) {
          const frame = this.#queue.shift();
          if (frame !== undefined) return { done: false, value: frame };
          if (this.#failure) throw this.#failure;
          if (this.#ended) return { done: true, value: undefined };
          await new Promise<void>((resolve) => this.#waiter = resolve);
        }
      },
      return: (): Promise<IteratorResult<HostFrame>> =>
        Promise.resolve({ done: true, value: undefined }),
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  /** Makes the next frame the worker encodes an IDR frame. */
  requestKeyframe(): void {
    this.#post({ type: "keyframe" });
  }

  /** Changes the target bitrate from the next frame on (no keyframe). */
  setBitrate(bitrateBps: number): void {
    if (!Number.isInteger(bitrateBps) || bitrateBps <= 0 || bitrateBps > 0x7fffffff) {
      throw new RangeError(`bitrate ${bitrateBps} is not a positive 32-bit integer`);
    }
    this.#bitrate = bitrateBps;
    this.#post({ type: "bitrate", bitrateBps });
  }

  /**
   * Encodes only `fps` of the source's frames per second (evenly spaced), at
   * the same stream bitrate; `fps` = the source rate encodes every frame.
   */
  setFps(fps: number): void {
    if (!(fps > 0) || fps > this.fps) throw new RangeError(`fps ${fps} not in (0, ${this.fps}]`);
    this.#targetFps = fps;
    this.#post({ type: "fps", fps });
  }

  /**
   * Holds encoding (`true`: capture slots are left out until `false`), for congestion control's
   * window gate: nothing is encoded while the link delivers nothing.
   */
  setHold(hold: boolean): void {
    if (hold === this.#held) return;
    this.#held = hold;
    this.#post({ type: "hold", hold });
  }

  /** Whether encoding is held ({@linkcode setHold}). */
  get held(): boolean {
    return this.#held;
  }

  /** The frame rate being encoded (the source rate unless lowered by {@linkcode setFps}). */
  get targetFps(): number {
    return this.#targetFps ?? this.fps;
  }

  /** After `stop()`: whether the worker reported its capturer and encoder freed (undefined if it never reported). */
  get released(): boolean | undefined {
    return this.#released;
  }

  /**
   * Stops capture and encode, frees the worker's native handles (the worker
   * reports it has), and terminates the worker. Ends `frames()`.
   */

  stop(timeoutMs = 5_000): Promise<void> {
    this.#stopping ??= (async () => {
      if (!this.#ended) {
        this.#post({ type: "stop" });
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          this.#stopped,
          new Promise<void>((resolve) => timer = setTimeout(resolve, timeoutMs)),
        ]);
        clearTimeout(timer);
      }
      this.#worker.terminate();
      this.#end();
    })();
    return this.#stopping;
  }

  #post(command: WorkerCommand): void {
    if (this.#ended) return;
    this.#worker.postMessage(command);
  }

  #onEvent(message: WorkerEvent): void {
    switch (message.type) {
      case "frame": {
        this.#stats.framesReceived++;
        this.#stats.skippedSlots = message.skippedSlots;
        if (this.#awaitingKeyframe && !message.keyframe) {
          this.#stats.framesDropped++;
          return;
        }
        this.#awaitingKeyframe = false;
        if (this.#queue.length >= this.#maxQueued) {
          this.#stats.framesDropped += this.#queue.length + (message.keyframe ? 0 : 1);
          this.#queue.length = 0;
          if (!message.keyframe) {
            this.#awaitingKeyframe = true;
            this.requestKeyframe();
            break;
          }
        }
        const { payload } = message;
        this.#queue.push({
          frameId: message.frameId,
          keyframe: message.keyframe,
          captureTimeUs: message.captureTimeUs,
          timing: message.timing,
          payload,
          data: payload.subarray(VIDEO_TIMING_LENGTH),
        });
        break;
      }
      case "error":
        this.#fail(new MediaPipelineError(message.error.kind, message.error.message));
        break;
      case "stopped":
        this.#released = message.released;
        this.#resolveStopped();
        this.#end();
        break;
      case "ready":
      case "log":
        break;
    }
    this.#wake();
  }

  #fail(error: MediaPipelineError): void {
    this.#failure ??= error;
    this.#wake();
  }

  #end(): void {
    if (!this.#ended) {
      this.#ended = true;
      // A worker that stopped by itself (after an error) is terminated too.
      this.#worker.terminate();
    }
    this.#wake();
  }

  #wake(): void {
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.();
  }
}
