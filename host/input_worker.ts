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
import { HostConnector, type HostIceOptions, type HostIceOutcome } from "./host_connector.ts";
import type { IceOffer } from "../edge/ice_connect.ts";

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
  /** Reachable through the gateway: ICE agents and relay bindings on this socket. */
  ice?: HostIceOptions;
}

/**
 * Host-side stage times of one injected input event, CLOCK_MONOTONIC µs
 * (the clock the client's and the X client's stamps use on one machine).
 */
export interface HostInputTrace {
  /** The INPUT message's sequence. */
  sequence: number;
  /** The datagram that delivered it reached the socket (the kernel's receive timestamp). */
  receivedUs: number;
  /** The input thread had that datagram's receive batch back from the kernel. */
  wokeUs: number;
  /** The session had opened it and the serve loop took it. */
  openedUs: number;
  /** The injection call returned (for XTest: the request flushed to the X server). */
  injectedUs: number;
}

/** Messages the parent sends. */
export type InputWorkerCommand =
  | { type: "start"; options: InputWorkerOptions }
  | { type: "control"; id: number; data: Uint8Array }
  | { type: "close"; id: number; code: number; reason: string }
  | { type: "area"; area: InputArea | undefined }
  | { type: "ice-gather"; sessionId: string; peerKey: Uint8Array }
  | { type: "ice-remote"; sessionId: string; offer: IceOffer }
  | { type: "relay-bind"; sessionId: string; lease: string; relay: PeerAddress }
  | { type: "ice-close"; sessionId: string }
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
  | { type: "input-applied"; id: number; applyUs: number; trace: HostInputTrace }
  | { type: "log"; line: string }
  | { type: "error"; message: string }
  | { type: "ice-offer"; sessionId: string; offer: IceOffer }
  | { type: "ice-outcome"; sessionId: string; outcome: HostIceOutcome }
  | { type: "relay-state"; sessionId: string; state: string }
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
/** The shared socket as this worker reads it (its wake-up time stamps input traces). */
let socket: UdpSocket | undefined;
let connector: HostConnector | undefined;
/** Client identities the gateway sent a connect request for, by session (gateway mode). */
const gatewayPeers = new Map<string, Uint8Array>();
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
    socket: socket = UdpSocket.native(NativeUdpSocket.attach(options.fd)),
    identity: options.identity,
    // Through the gateway, a client the gateway vouched for (it checked the host's allow list or
    // pairing before forwarding its connect) is accepted for as long as its request lives.
    acceptPeer: options.ice !== undefined
      ? (peer) =>
        (allowed ?? []).some((key) => sameKey(key, peer)) ||
        [...gatewayPeers.values()].some((key) => sameKey(key, peer))
      : allowed === undefined
      ? undefined
      : (peer) => allowed.some((key) => sameKey(key, peer)),
    // OpenSSL's ChaCha20-Poly1305 through the shim (2–3x node:crypto) for both lanes.
    config: withNativeAead(options.sessionConfig),
    // The session's clock is this worker's performance.now(), whose origin differs from every
    // other thread's: the offset to CLOCK_MONOTONIC (the capture clock) must be taken here.
    extension: encodeClockExtension(monotonicMicros() - performance.now() * 1000),
    // STUN (ICE checks, the srflx binding) and relay control share the socket with RIFT.
    onForeign: options.ice === undefined
      ? undefined
      : (datagram, from, at) => connector?.handleForeign(datagram, from, at),
  });
  if (options.ice !== undefined) {
    const l = listener;
    connector = new HostConnector(
      l.addr,
      (datagram, to) => l.sendRaw(datagram, to),
      options.identity,
      options.ice,
      (sessionId) => gatewayPeers.delete(sessionId),
    );
  }
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
  const iceSession = connector?.sessionOf(driver.remote);
  if (iceSession !== undefined) connector!.keep(iceSession);
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
          const openedUs = monotonicMicros();
          const applied = client.applier.apply(event.data);
          if (applied.ok) {
            driver.sendControl(applied.value.replyBytes);
            // The session's clock is performance.now() (ms); the stamps are CLOCK_MONOTONIC µs.
            const wokeUs = socket?.lastWakeMicros ?? openedUs;
            const wokeMs = socket?.lastWakePerfMs ?? performance.now();
            const trace: HostInputTrace = {
              sequence: applied.value.message.sequence,
              receivedUs: wokeUs + (event.at - wokeMs) * 1000,
              wokeUs,
              openedUs,
              injectedUs: applied.value.reply.hostAppliedUs,
            };
            post({ type: "input-applied", id, applyUs: applied.value.applyUs, trace });
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
    if (iceSession !== undefined) connector?.close(iceSession);
    post({ type: "closed", id, reason });
  }
}

async function stop(): Promise<void> {
  await Promise.all([...clients.values()].map((c) => c.driver.close().catch(() => {})));
  await connector?.closeAll();
  connector = undefined;
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
    case "ice-gather":
    case "ice-remote":
    case "relay-bind":
    case "ice-close":
      connecting(command);
      break;
    case "stop":
      stop();
      break;
  }
}

/** The gateway's connect requests, relayed by the main thread; errors are posted, never thrown. */
async function connecting(
  command: Extract<
    InputWorkerCommand,
    { type: "ice-gather" | "ice-remote" | "relay-bind" | "ice-close" }
  >,
): Promise<void> {
  const c = connector;
  if (c === undefined) {
    post({ type: "error", message: "not started with ICE options" });
    return;
  }
  const sessionId = command.sessionId;
  try {
    switch (command.type) {
      case "ice-gather":
        gatewayPeers.set(sessionId, command.peerKey);
        post({ type: "ice-offer", sessionId, offer: await c.gather(sessionId) });
        break;
      case "ice-remote":
        post({
          type: "ice-outcome",
          sessionId,
          outcome: await c.connect(sessionId, command.offer),
        });
        break;
      case "relay-bind":
        post({
          type: "relay-state",
          sessionId,
          state: await c.bindRelay(sessionId, command.lease, command.relay),
        });
        break;
      case "ice-close":
        await c.close(sessionId);
        break;
    }
  } catch (error) {
    post({ type: "error", message: `${command.type} ${sessionId}: ${(error as Error).message}` });
  }
}

scope.onmessage = (event: MessageEvent<InputWorkerCommand>) => {
  try {
    handle(event.data);
  } catch (error) {
    post({ type: "error", message: (error as Error).message });
  }
};
