/**
 * The host's input worker: reads the shared UDP socket, runs the session lane
 * of every client (handshake, input, control, acks, pings, feedback) and
 * injects each client's input with XTest, on its own thread. Nothing here
 * waits for capture, encode or the media lane (the media send worker), so a
 * busy encoder or a keyframe being paced never delays a key press.
 *
 * Started by {@linkcode InputWorker} (`host/input_worker_handle.ts`);
 * importing this module installs the worker's message handler. The main
 * thread hears only about lifecycle (a client joined or left, a keyframe
 * request, congestion feedback), never about single packets. Errors are
 * posted as values, never thrown across the worker boundary.
 *
 * @module
 */
import type { IdentityKeyPair } from "../crypto/identity.ts";
import type { MediaLaneState } from "../core/media_lane.ts";
import type { FeedbackReport, SessionConfig } from "../core/session.ts";
import { CloseCode } from "../core/frames.ts";
import { NativeUdpSocket } from "../edge/native_udp.ts";
import { type SessionDriver, SessionListener } from "../edge/udp_session.ts";
import { type PeerAddress, UdpSocket } from "../edge/udp_socket.ts";
import { XTestInputInjector } from "../media/linux/input_xtest.ts";
import { withNativeAead } from "../edge/native_aead.ts";
import { setThreadRealtime } from "../edge/thread_priority.ts";
import { monotonicMicros } from "../media/clock.ts";
import { encodeClockExtension } from "../core/clock_extension.ts";
import { InputApplier, type InputArea } from "./input_applier.ts";

/** What the worker needs to serve clients. */
export interface InputWorkerOptions {
  /** The shared socket's descriptor (opened by the main thread). */
  fd: number;
  /** The host's identity. */
  identity: IdentityKeyPair;
  /** Client identities allowed to connect (undefined: any). */
  allowedClients?: Uint8Array[];
  /** Session timers. */
  sessionConfig?: Partial<SessionConfig>;
  /** X display to inject into; without one, input is refused as Unsupported (logged once). */
  display?: string;
}

/** Messages the parent sends. */
export type InputWorkerCommand =
  | { type: "start"; options: InputWorkerOptions }
  | { type: "control"; id: number; data: Uint8Array }
  | { type: "close"; id: number; code: number; reason: string }
  | { type: "area"; area: InputArea | undefined }
  | { type: "stop" };

/** Messages the worker sends. */
export type InputWorkerEvent =
  | { type: "started" }
  | {
    type: "client";
    id: number;
    remote: PeerAddress;
    peerIdentity: Uint8Array;
    lane: MediaLaneState;
  }
  | { type: "keyframe-request"; id: number }
  | { type: "nack"; id: number; frameId: number; indexes: number[] }
  | { type: "feedback"; id: number; report: FeedbackReport; rttMs: number }
  | { type: "closed"; id: number; reason: string }
  | { type: "input-applied"; id: number; applyUs: number }
  | { type: "log"; line: string }
  | { type: "error"; message: string }
  | { type: "stopped" };

interface WorkerScope {
  onmessage: ((event: MessageEvent<InputWorkerCommand>) => void) | null;
  postMessage(message: InputWorkerEvent, transfer?: Transferable[]): void;
  close(): void;
}

const scope = globalThis as unknown as WorkerScope;

interface Client {
  readonly driver: SessionDriver;
  /** Undefined when the host has no display to inject into. */
  readonly applier: InputApplier | undefined;
}

let listener: SessionListener | undefined;
let injector: XTestInputInjector | undefined;
let area: InputArea | undefined;
let nextId = 1;
let refusedLogged = false;
const clients = new Map<number, Client>();

function post(event: InputWorkerEvent): void {
  scope.postMessage(event);
}

function sameKey(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

/** SCHED_FIFO priority of the input thread: below the link emulator's (70), above everything else. */
const INPUT_THREAD_PRIORITY = 40;

function start(options: InputWorkerOptions): void {
  // A key press must not wait for a busy encoder's time slice; this thread sleeps almost always.
  // Threads it starts afterwards (the FFI wait for the socket) inherit the policy.
  const realtime = setThreadRealtime(INPUT_THREAD_PRIORITY);
  post({
    type: "log",
    line: realtime
      ? `input thread at SCHED_FIFO ${INPUT_THREAD_PRIORITY}`
      : "input thread at normal priority (SCHED_FIFO needs root or CAP_SYS_NICE)",
  });
  injector = options.display === undefined
    ? undefined
    : XTestInputInjector.open({ display: options.display });
  const allowed = options.allowedClients;
  listener = SessionListener.listen({
    port: 0,
    socket: UdpSocket.native(NativeUdpSocket.attach(options.fd)),
    identity: options.identity,
    acceptPeer: allowed === undefined
      ? undefined
      : (peer) => allowed.some((key) => sameKey(key, peer)),
    // OpenSSL's ChaCha20-Poly1305 through the shim (2–3x node:crypto) for both lanes.
    config: withNativeAead(options.sessionConfig),
    // The session's clock is this worker's performance.now(), whose origin differs from every
    // other thread's: the offset to CLOCK_MONOTONIC (the capture clock) must be taken here.
    extension: encodeClockExtension(monotonicMicros() - performance.now() * 1000),
  });
  acceptLoop(listener);
  post({ type: "started" });
}

async function acceptLoop(from: SessionListener): Promise<void> {
  for await (const driver of from.accept()) serve(driver);
}

function screenArea(): InputArea {
  if (area !== undefined) return area;
  try {
    const size = injector!.screenSize();
    return { x: 0, y: 0, ...size };
  } catch {
    return { x: 0, y: 0, width: 1, height: 1 };
  }
}

/** Serves one client's session lane until it ends; never throws. */
async function serve(driver: SessionDriver): Promise<void> {
  const id = nextId++;
  const client: Client = {
    driver,
    applier: injector && new InputApplier(injector, { area: screenArea }),
  };
  clients.set(id, client);
  let reason = "";
  try {
    post({
      type: "client",
      id,
      remote: { ...driver.remote },
      peerIdentity: driver.session.peerIdentity!.slice(),
      lane: driver.detachMedia(),
    });
    for await (const event of driver.events()) {
      switch (event.type) {
        case "input": {
          if (client.applier === undefined) {
            if (!refusedLogged) {
              post({ type: "log", line: "input refused (Unsupported): no display" });
            }
            refusedLogged = true;
            break;
          }
          const applied = client.applier.apply(event.data);
          if (applied.ok) {
            driver.sendControl(applied.value.replyBytes);
            post({ type: "input-applied", id, applyUs: applied.value.applyUs });
          }
          break;
        }
        case "keyframe-request":
          post({ type: "keyframe-request", id });
          break;
        case "nack":
          post({ type: "nack", id, frameId: event.frameId, indexes: event.indexes });
          break;
        case "feedback":
          post({
            type: "feedback",
            id,
            report: event.report,
            rttMs: driver.session.rtt.smoothedMs,
          });
          break;
        case "closed":
          reason = event.reason || `code ${event.code}`;
          break;
      }
    }
  } catch (error) {
    reason = `session failed: ${(error as Error).message}`;
  } finally {
    // Nothing stays pressed for a client that went away (unless the display went with it).
    try {
      client.applier?.releaseAll();
    } catch (error) {
      post({ type: "log", line: `releasing input failed: ${(error as Error).message}` });
    }
    clients.delete(id);
    post({ type: "closed", id, reason });
  }
}

async function stop(): Promise<void> {
  await Promise.all([...clients.values()].map((c) => c.driver.close().catch(() => {})));
  await listener?.close();
  listener = undefined;
  injector?.close();
  injector = undefined;
  post({ type: "stopped" });
  scope.close();
}

function handle(command: InputWorkerCommand): void {
  switch (command.type) {
    case "start":
      start(command.options);
      break;
    case "control":
      clients.get(command.id)?.driver.sendControl(command.data);
      break;
    case "close":
      clients.get(command.id)?.driver.close(command.code ?? CloseCode.Normal, command.reason)
        .catch(() => {});
      break;
    case "area":
      area = command.area;
      break;
    case "stop":
      stop();
      break;
  }
}

scope.onmessage = (event: MessageEvent<InputWorkerCommand>) => {
  try {
    handle(event.data);
  } catch (error) {
    post({ type: "error", message: (error as Error).message });
  }
};
