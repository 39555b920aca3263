/**
 * The parent side of the host's input worker (host/input_worker.ts): starts
 * it on the shared socket, forwards the few lifecycle messages it sends, and
 * stops it cleanly.
 *
 * @module
 */
import type { FeedbackReport } from "../core/session.ts";
import type { MediaLaneState } from "../core/media_lane.ts";
import { CloseCode } from "../core/frames.ts";
import type { PeerAddress } from "../edge/udp_socket.ts";
import type { InputArea } from "./input_applier.ts";
import type {
  HostInputTrace,
  InputWorkerCommand,
  InputWorkerEvent,
  InputWorkerOptions,
} from "./input_worker.ts";
import type { IceOffer } from "../edge/ice_connect.ts";
import type { HostIceOutcome } from "./host_connector.ts";

export type { HostInputTrace, InputWorkerOptions } from "./input_worker.ts";

/** What the host hears from the input worker. */
export interface InputWorkerListener {
  /** A client completed its handshake; its media lane is detached for the media send worker. */
  onClient(id: number, remote: PeerAddress, peerIdentity: Uint8Array, lane: MediaLaneState): void;
  /** A client's session ended (it has released everything it held down). */
  onClosed(id: number, reason: string): void;
  /** A client asked for a keyframe. */
  onKeyframeRequest(id: number): void;
  /** A client asks for fragments of a video frame again. */
  onNack?(id: number, frameId: number, indexes: number[]): void;
  /** Congestion feedback from a client (receive times of media packets) and the current RTT. */
  onFeedback?(id: number, report: FeedbackReport, rttMs: number): void;
  /** An input event was injected, taking `applyUs`; `trace` says when each stage ended. */
  onInputApplied?(id: number, applyUs: number, trace: HostInputTrace): void;
  /** A line worth logging. */
  onLog?(line: string): void;
  /** This host's candidates for a connect request (ICE on the shared socket). */
  onIceOffer?(sessionId: string, offer: IceOffer): void;
  /** How a connect request's checks ended. */
  onIceOutcome?(sessionId: string, outcome: HostIceOutcome): void;
  /** How a relay binding ended ("ready", "failed: KIND", "aborted"). */
  onRelayState?(sessionId: string, state: string): void;
}

/** Handle on the running input worker. */
export class InputWorker {
  readonly #worker: Worker;
  readonly #listener: InputWorkerListener;
  #stopping: Promise<void> | undefined;
  #resolveStopped: (() => void) | undefined;
  #ended = false;

  private constructor(worker: Worker, listener: InputWorkerListener) {
    this.#worker = worker;
    this.#listener = listener;
  }

  /** Starts the worker; resolves once it reads the socket and has opened the X display. */
  static start(options: InputWorkerOptions, listener: InputWorkerListener): Promise<InputWorker> {
    const worker = new Worker(new URL("./input_worker.ts", import.meta.url).href, {
      type: "module",
    });
    const handle = new InputWorker(worker, listener);
    return new Promise((resolve, reject) => {
      let started = false;
      worker.onerror = (event) => {
        event.preventDefault();
        const message = `input worker: ${event.message}`;
        if (!started) {
          handle.#ended = true;
          worker.terminate();
          reject(new Error(message));
        } else listener.onLog?.(message);
      };
      worker.onmessage = (event: MessageEvent<InputWorkerEvent>) => {
        const message = event.data;
        if (!started && message.type === "started") {
          started = true;
          resolve(handle);
        } else if (!started && message.type === "error") {
          handle.#ended = true;
          worker.terminate();
          reject(new Error(message.message));
        } else handle.#onEvent(message);
      };
      handle.#post({ type: "start", options });
    });
  }

  /** Sends a control message to one client. */
  sendControl(id: number, data: Uint8Array): void {
    this.#post({ type: "control", id, data });
  }

  /** Closes one client's session. */
  close(id: number, code: number = CloseCode.Normal, reason = ""): void {
    this.#post({ type: "close", id, code, reason });
  }

  /** Where absolute mouse positions land (the captured area), or undefined for the whole screen. */
  setArea(area: InputArea | undefined): void {
    this.#post({ type: "area", area });
  }

  /**
   * Gathers candidates for a gateway connect request from client `peerKey`
   * (answered by `onIceOffer`); that identity may then complete a handshake.
   */
  iceGather(sessionId: string, peerKey: Uint8Array): void {
    this.#post({ type: "ice-gather", sessionId, peerKey });
  }

  /** The client's offer: runs the checks (answered by `onIceOutcome`). */
  iceRemote(sessionId: string, offer: IceOffer): void {
    this.#post({ type: "ice-remote", sessionId, offer });
  }

  /** Binds to the relay with a lease on the shared socket (answered by `onRelayState`). */
  relayBind(sessionId: string, lease: string, relay: PeerAddress): void {
    this.#post({ type: "relay-bind", sessionId, lease, relay });
  }

  /** Forgets a connect request (its agent and binding). */
  iceClose(sessionId: string): void {
    this.#post({ type: "ice-close", sessionId });
  }

  /** Closes every session, the listener and the injector, then ends the worker. Idempotent. */
  stop(timeoutMs = 5_000): Promise<void> {
    this.#stopping ??= (async () => {
      const stopped = new Promise<void>((resolve) => this.#resolveStopped = resolve);
      this.#post({ type: "stop" });
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([stopped, new Promise((r) => timer = setTimeout(r, timeoutMs))]);
      clearTimeout(timer);
      this.#ended = true;
      this.#worker.terminate();
    })();
    return this.#stopping;
  }

  #post(command: InputWorkerCommand): void {
    if (this.#ended) return;
    this.#worker.postMessage(command);
  }

  #onEvent(message: InputWorkerEvent): void {
    const l = this.#listener;
    switch (message.type) {
      case "client":
        l.onClient(message.id, message.remote, message.peerIdentity, message.lane);
        break;
      case "closed":
        l.onClosed(message.id, message.reason);
        break;
      case "keyframe-request":
        l.onKeyframeRequest(message.id);
        break;
      case "nack":
        l.onNack?.(message.id, message.frameId, message.indexes);
        break;
      case "feedback":
        l.onFeedback?.(message.id, message.report, message.rttMs);
        break;
      case "input-applied":
        l.onInputApplied?.(message.id, message.applyUs, message.trace);
        break;
      case "log":
        l.onLog?.(message.line);
        break;
      case "error":
        l.onLog?.(`input worker: ${message.message}`);
        break;
      case "ice-offer":
        l.onIceOffer?.(message.sessionId, message.offer);
        break;
      case "ice-outcome":
        l.onIceOutcome?.(message.sessionId, message.outcome);
        break;
      case "relay-state":
        l.onRelayState?.(message.sessionId, message.state);
        break;
      case "stopped":
        this.#resolveStopped?.();
        break;
      case "started":
        break;
    }
  }
}
