/**
 * The main thread's handle on the forwarder worker: starts it, learns its
 * bound address, keeps the latest counters it posts, forwards lease key
 * changes, and stops it.
 *
 * @module
 */

import { NativeUdpSocket } from "../edge/native_udp.ts";
import { udpNative } from "../ffi/udp.ts";
import type { BindingTableOptions, RelayAddress } from "./binding_table.ts";
import type {
  ForwarderSocketChoice,
  ForwarderSocketKind,
  ForwarderStats,
  FromWorker,
  ToWorker,
} from "./worker_protocol.ts";

/** Options of {@linkcode RelayForwarder.start}. */
export interface ForwarderOptions {
  /** UDP address to bind; default "0.0.0.0". */
  hostname?: string;
  /** UDP port; 0 for an ephemeral one. */
  port: number;
  /** Binding table options (relay id, lease key, limits). */
  table: BindingTableOptions;
  /** How often the worker posts counters (ms); default 1,000. */
  statsIntervalMs?: number;
  /**
   * The UDP socket: `auto` (default) uses the native shim's batched socket
   * when it loads and `Deno.listenDatagram` otherwise; `native` fails with
   * NativeUnavailable instead of falling back; `deno` never tries the shim.
   */
  socket?: ForwarderSocketChoice;
  /**
   * Answer STUN Binding requests on the relay's port (default true), so one
   * public port gives peers their reflexive address and the relay.
   */
  stun?: boolean;
}

/**
 * Why a forwarder did not start: the port is taken or the address is bad, the
 * options are bad, `socket: "native"` was asked and the shim does not load,
 * or the worker itself failed.
 */
export type ForwarderStartErrorKind =
  | "BindFailed"
  | "BadOptions"
  | "NativeUnavailable"
  | "WorkerFailed";

/** Thrown by {@linkcode RelayForwarder.start} when the worker cannot start. */
export class ForwarderStartError extends Error {
  /** Why. */
  readonly kind: ForwarderStartErrorKind;

  /** Creates the error. */
  constructor(kind: ForwarderStartErrorKind, detail: string) {
    super(`relay forwarder did not start (${kind}): ${detail}`);
    this.name = "ForwarderStartError";
    this.kind = kind;
  }
}

/** A running forwarder worker. */
export class RelayForwarder {
  /** The bound UDP address. */
  readonly address: RelayAddress;
  /** The socket the worker forwards with. */
  readonly socket: ForwarderSocketKind;
  /** Why `auto` fell back to the deno socket (undefined when it did not). */
  readonly fallbackReason: string | undefined;
  readonly #worker: Worker;
  /** The native socket, opened here (the opener) and attached by the worker. */
  readonly #native: NativeUdpSocket | undefined;
  #latest: ForwarderStats | undefined;
  #listeners = new Set<(s: ForwarderStats) => void>();
  #stopped: Promise<ForwarderStats | undefined> | undefined;
  #resolveStopped: ((s: ForwarderStats | undefined) => void) | undefined;
  #terminated = false;

  private constructor(
    worker: Worker,
    address: RelayAddress,
    socket: ForwarderSocketKind,
    fallbackReason: string | undefined,
    native: NativeUdpSocket | undefined,
  ) {
    this.#worker = worker;
    this.#native = native;
    this.address = address;
    this.socket = socket;
    this.fallbackReason = fallbackReason;
  }

  /**
   * Opens the socket and starts the worker. The native socket is opened on
   * this thread, which so stays its owner: `stop()` and `kill()` close it even
   * when the worker is stuck or gone (its blocked receive returns at once).
   */
  static start(options: ForwarderOptions): Promise<RelayForwarder> {
    const hostname = options.hostname ?? "0.0.0.0";
    const choice = options.socket ?? "auto";
    let native: NativeUdpSocket | undefined;
    let fallbackReason: string | undefined;
    if (choice !== "deno") {
      try {
        udpNative();
      } catch (e) {
        const detail = e instanceof Error ? e.message : String(e);
        if (choice === "native") {
          return Promise.reject(new ForwarderStartError("NativeUnavailable", detail));
        }
        fallbackReason = detail;
      }
      if (fallbackReason === undefined) {
        try {
          native = NativeUdpSocket.open({ hostname, port: options.port });
        } catch (e) {
          const detail = e instanceof Error ? e.message : String(e);
          return Promise.reject(new ForwarderStartError("BindFailed", detail));
        }
      }
    }
    const worker = new Worker(new URL("./forwarder_worker.ts", import.meta.url), {
      type: "module",
      name: "wavry-relay-forwarder",
    });
    return new Promise((resolve, reject) => {
      let forwarder: RelayForwarder | undefined;
      const fail = (error: ForwarderStartError) => {
        worker.terminate();
        void native?.close();
        reject(error);
      };
      worker.onerror = (e) => {
        e.preventDefault();
        if (forwarder === undefined) fail(new ForwarderStartError("WorkerFailed", e.message));
      };
      worker.onmessage = (e: MessageEvent<FromWorker>) => {
        const m = e.data;
        if (m.type === "ready") {
          forwarder = new RelayForwarder(
            worker,
            native ? { hostname, port: native.localAddr.port } : m.address,
            native ? "native" : "deno",
            fallbackReason,
            native,
          );
          resolve(forwarder);
        } else if (m.type === "failed") {
          fail(new ForwarderStartError(m.kind, m.detail));
        } else if (forwarder !== undefined) {
          forwarder.#onMessage(m);
        }
      };
      const start: ToWorker = {
        type: "start",
        hostname,
        port: options.port,
        table: options.table,
        statsIntervalMs: options.statsIntervalMs ?? 1_000,
        nativeFd: native?.fd,
        stun: options.stun ?? true,
      };
      worker.postMessage(start);
    });
  }

  #onMessage(m: FromWorker): void {
    if (m.type === "stats" || m.type === "stopped") {
      this.#latest = m.stats;
      for (const l of this.#listeners) l(m.stats);
    }
    if (m.type === "stopped") {
      this.#worker.terminate();
      this.#terminated = true;
      void this.#native?.close();
      this.#resolveStopped?.(m.stats);
    }
  }

  /** The latest counters the worker posted (undefined before the first). */
  get stats(): ForwarderStats | undefined {
    return this.#latest;
  }

  /** Calls `listener` with every counters message; returns a function that unsubscribes. */
  onStats(listener: (s: ForwarderStats) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Hands the worker a new lease verification key. */
  setLeasePublicKey(key: string): void {
    if (this.#terminated) return;
    this.#worker.postMessage({ type: "leaseKey", key } satisfies ToWorker);
    if (this.#native !== undefined && !this.#native.closed) this.#native.wake();
  }

  /**
   * Stops forwarding: the worker closes its socket, posts final counters and
   * ends. Resolves with those counters. Idempotent. If the worker does not
   * answer within `timeoutMs`, it is terminated.
   */
  stop(timeoutMs = 2_000): Promise<ForwarderStats | undefined> {
    if (this.#stopped) return this.#stopped;
    if (this.#terminated) return this.#stopped = Promise.resolve(this.#latest);
    this.#stopped = new Promise((resolve) => {
      const t = setTimeout(() => {
        this.kill();
        resolve(this.#latest);
      }, timeoutMs);
      this.#resolveStopped = (s) => {
        clearTimeout(t);
        resolve(s);
      };
    });
    this.#worker.postMessage({ type: "stop" } satisfies ToWorker);
    // The worker may be blocked waiting for datagrams: make it look at its messages.
    if (this.#native !== undefined && !this.#native.closed) this.#native.wake();
    return this.#stopped;
  }

  /** Terminates the worker at once and closes its socket, as a crash would. */
  kill(): void {
    if (this.#terminated) return;
    this.#terminated = true;
    this.#worker.terminate();
    // Closing wakes a native receive the worker may be blocked in, so its thread can end.
    void this.#native?.close();
    this.#resolveStopped?.(this.#latest);
  }
}
