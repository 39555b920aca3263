/**
 * The parent side of the host's media send worker (host/media_send_worker.ts):
 * hands it each client's detached media lane and every encoded frame and
 * audio packet (transferred, not copied), and collects what it reports.
 *
 * @module
 */
import type { MediaLaneState } from "../core/media_lane.ts";
import type { FeedbackReport } from "../core/session.ts";
import type { VideoFecConfig } from "../core/fec/video.ts";
import type { PeerAddress } from "../edge/udp_socket.ts";
import type {
  CongestionDecision,
  CongestionSettings,
  MediaPacing,
  MediaSendCommand,
  MediaSendEvent,
  MediaSendSessionStats,
} from "./media_send_worker.ts";
import type { HostFrame } from "./media_pipeline.ts";

export type {
  CongestionDecision,
  CongestionSettings,
  MediaPacing,
  MediaSendSessionStats,
} from "./media_send_worker.ts";

/** Default media pacing: 100 Mbit/s with bursts of 32 datagrams (docs/EDGE.md). */
export const DEFAULT_MEDIA_PACING: MediaPacing = { rateMbps: 100, burstDatagrams: 32 };

/** What the parent hears from the worker. */
export interface MediaSendListener {
  /** A frame was taken by the worker at `handedUs` (host CLOCK_MONOTONIC µs). */
  onFrameSent?(frameId: number, handedUs: number): void;
  /** DELTA changed its mind for session `id` (bitrate, frame rate, FEC or state). */
  onDecision?(id: number, decision: CongestionDecision): void;
  /** The worker failed; the host treats it like a media failure. */
  onError?(message: string): void;
}

/** Handle on the running media send worker. */
export class MediaSendWorker {
  readonly #worker: Worker;
  readonly #listener: MediaSendListener;
  #stats: Record<number, MediaSendSessionStats> = {};
  #stopped: Promise<void> | undefined;
  #resolveStopped!: () => void;
  #ended = false;

  private constructor(worker: Worker, listener: MediaSendListener) {
    this.#worker = worker;
    this.#listener = listener;
  }

  /** Starts the worker on the shared socket `fd`; resolves once it holds the socket. */
  static start(
    fd: number,
    listener: MediaSendListener = {},
    pacing: MediaPacing = DEFAULT_MEDIA_PACING,
  ): Promise<MediaSendWorker> {
    const worker = new Worker(new URL("./media_send_worker.ts", import.meta.url).href, {
      type: "module",
    });
    const handle = new MediaSendWorker(worker, listener);
    return new Promise((resolve, reject) => {
      worker.onerror = (event) => {
        event.preventDefault();
        if (!handle.#ended) handle.#listener.onError?.(event.message);
        reject(new Error(`media send worker: ${event.message}`));
      };
      worker.onmessage = (event: MessageEvent<MediaSendEvent>) => {
        const message = event.data;
        if (message.type === "started") resolve(handle);
        else if (message.type === "error" && !handle.#ended) {
          handle.#listener.onError?.(message.message);
          reject(new Error(`media send worker: ${message.message}`));
        } else handle.#onEvent(message);
      };
      handle.#post({ type: "start", fd, pacing });
    });
  }

  /** Per-session counters from the worker's last report (once a second). */
  get stats(): Readonly<Record<number, MediaSendSessionStats>> {
    return this.#stats;
  }

  /**
   * Starts sending to a client: its detached media lane and address; with
   * `congestion`, DELTA paces the lane and picks its bitrate, frame rate and FEC.
   */
  add(id: number, lane: MediaLaneState, to: PeerAddress, congestion?: CongestionSettings): void {
    this.#post({ type: "add", id, lane, to, congestion });
  }

  /** Congestion feedback from a client's session lane (every ~20 ms). */
  feedback(id: number, report: FeedbackReport, rttMs: number): void {
    this.#post({ type: "feedback", id, report, rttMs });
  }

  /** Stops sending to a client. */
  remove(id: number): void {
    this.#post({ type: "remove", id });
  }

  /** Hands a frame to every client's lane; its payload buffer is transferred (unusable here after). */
  sendFrame(frame: HostFrame): void {
    const payload = frame.payload;
    this.#post({
      type: "frame",
      frameId: frame.frameId,
      captureTimeUs: frame.captureTimeUs,
      keyframe: frame.keyframe,
      encodeStartUs: frame.timing.encodeStartUs,
      encodeEndUs: frame.timing.encodeEndUs,
      payload,
    }, [payload.buffer as ArrayBuffer]);
  }

  /** Hands an Opus packet to every client's lane. */
  sendAudio(sequence: number, captureTimeUs: number, data: Uint8Array): void {
    this.#post({ type: "audio", sequence, captureTimeUs, data });
  }

  /** Sends fragments of a recent frame to one client again (it NACKed them). */
  retransmit(id: number, frameId: number, indexes: number[]): void {
    this.#post({ type: "retransmit", id, frameId, indexes });
  }

  /** Changes one client's pacing. */
  setPacing(id: number, pacing: Partial<MediaPacing>): void {
    this.#post({ type: "pacing", id, pacing });
  }

  /** Changes one client's FEC. */
  setFec(id: number, fec: VideoFecConfig): void {
    this.#post({ type: "fec", id, fec });
  }

  /** Stops the worker (it lets go of the socket; the opener closes it). Idempotent. */
  stop(timeoutMs = 2_000): Promise<void> {
    this.#stopped ??= (async () => {
      const stopped = new Promise<void>((resolve) => this.#resolveStopped = resolve);
      this.#post({ type: "stop" });
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([stopped, new Promise((r) => timer = setTimeout(r, timeoutMs))]);
      clearTimeout(timer);
      this.#ended = true;
      this.#worker.terminate();
    })();
    return this.#stopped;
  }

  #post(command: MediaSendCommand, transfer: Transferable[] = []): void {
    if (this.#ended) return;
    this.#worker.postMessage(command, transfer);
  }

  #onEvent(message: MediaSendEvent): void {
    switch (message.type) {
      case "frame-sent":
        this.#listener.onFrameSent?.(message.frameId, message.handedUs);
        break;
      case "decision":
        this.#listener.onDecision?.(message.id, message.decision);
        break;
      case "stats":
        this.#stats = message.sessions;
        break;
      case "error":
        this.#listener.onError?.(message.message);
        break;
      case "stopped":
        this.#resolveStopped?.();
        break;
      case "started":
        break;
    }
  }
}
