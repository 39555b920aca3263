/**
 * The WebRTC contender of the race: a one-way video call between two
 * RTCPeerConnections of libwebrtc (npm `@roamhq/wrtc`), each in its own Deno
 * process so the sender's encoder and the receiver's decoder do not share one
 * event loop. The parent exchanges SDP directly (no signaling server),
 * keeping only one UDP host candidate per side, which a `route` hook may
 * rewrite so that each peer reaches the other through the link emulator.
 *
 * The sender feeds synthetic I420 frames ({@link PatternGenerator}) through
 * the nonstandard `RTCVideoSource`, each stamped with its send time in luma
 * blocks; the receiver decodes them through `RTCVideoSink`, reads the stamp
 * back and records the frame delay. Both sample `getStats` periodically.
 *
 * Clocks: both processes stamp with `performance.timeOrigin +
 * performance.now()` (the same system clock), relative to an epoch the parent
 * hands out, so send and receive times compare directly.
 *
 * Run as a child: `deno run -A bench/race/webrtc_peer.ts --role=sender|receiver`
 * (JSON lines on stdin/stdout); use {@link startWebrtcCall} from code.
 *
 * @module
 */

import {
  findHostCandidate,
  hostCandidate,
  type HostPort,
  raiseMaxBitrate,
  replaceCandidates,
  stripCandidates,
} from "./sdp.ts";
import { PatternGenerator, readTimeCode } from "./frames.ts";

/** How to run the call. */
export interface WebrtcCallOptions {
  /** Picture size; default 1280x720. */
  readonly width?: number;
  readonly height?: number;
  /** Frames per second fed to the source; default 60. */
  readonly fps?: number;
  /**
   * Ceiling for libwebrtc's video bitrate in kbit/s (SDP `b=AS`,
   * `x-google-max-bitrate`, and `RTCRtpSender.setParameters` maxBitrate).
   * Default 2500 (libwebrtc's own default for 720p is about that).
   */
  readonly maxKbps?: number;
  /** Start bitrate hint in kbit/s (`x-google-start-bitrate`); default libwebrtc's (300). */
  readonly startKbps?: number;
  /** Content difficulty, see {@link PatternGenerator}. */
  readonly freshShare?: number;
  readonly noiseAmplitude?: number;
  readonly seed?: number;
  /** getStats sampling period in ms; default 200. */
  readonly statsEveryMs?: number;
  /**
   * Where each peer should send: given the receiver's and the sender's own
   * 127.0.0.1 host candidates, returns the address the sender uses for the
   * receiver and the one the receiver uses for the sender. Default: direct.
   * With the link emulator: `{senderSees: listenAddr, receiverSees: upstreamAddr}`
   * after starting it with `target = receiver`.
   */
  readonly route?: (
    receiver: HostPort,
    sender: HostPort,
  ) => Promise<{ senderSees: HostPort; receiverSees: HostPort }>;
  /** Child stderr lines and progress; default silent. */
  readonly log?: (line: string) => void;
}

/** One sampled getStats row of the sender (times in ms on the shared clock, minus the epoch). */
export interface SenderSample {
  readonly t: number;
  readonly bytesSent: number;
  readonly packetsSent: number;
  readonly framesEncoded: number;
  readonly frameWidth: number;
  readonly frameHeight: number;
  /** GCC's estimate on the selected candidate pair, bit/s. */
  readonly availableOutgoingBitrate: number;
  readonly rttMs: number;
  readonly retransmittedBytesSent: number;
  readonly qualityLimitationReason: string;
}

/** One sampled getStats row of the receiver. */
export interface ReceiverSample {
  readonly t: number;
  readonly bytesReceived: number;
  readonly packetsReceived: number;
  readonly packetsLost: number;
  readonly framesDecoded: number;
  readonly framesDropped: number;
  /** RTP interarrival jitter in ms. */
  readonly jitterMs: number;
  readonly nackCount: number;
  readonly pliCount: number;
}

/** One frame as the receiver saw it (times relative to the epoch, ms). */
export interface ReceivedFrame {
  readonly seq: number;
  readonly sendMs: number;
  readonly recvMs: number;
  readonly width: number;
  readonly height: number;
}

/** What a run produced. */
export interface WebrtcResult {
  /** Wall-clock epoch (ms since 1970) that all `t`/`sendMs`/`recvMs` are relative to. */
  readonly epochMs: number;
  /** Frames handed to the video source. */
  readonly framesSent: number;
  /** Send time of frame `seq` (index), relative to the epoch. */
  readonly sendTimes: number[];
  /** Decoded frames whose time code was read. */
  readonly frames: ReceivedFrame[];
  /** Decoded frames whose time code failed its CRC. */
  readonly unreadableFrames: number;
  readonly sender: SenderSample[];
  readonly receiver: ReceiverSample[];
  /** What `getParameters()` reported after `setParameters` (to see if maxBitrate stuck). */
  readonly senderParameters: unknown;
  /** The SDP actually applied on each side after rewriting. */
  readonly offerSdp: string;
  readonly answerSdp: string;
}

/** A running call. */
export interface WebrtcCall {
  /** Streams for `durationMs` (from now) and returns every record. */
  run(durationMs: number): Promise<WebrtcResult>;
  /** Kills both children (idempotent). */
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------
// Parent side

type Msg = Record<string, unknown> & { ev?: string };

/** A child process speaking JSON lines. */
class Child {
  readonly #proc: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #waiters: { ev: string; resolve: (m: Msg) => void; reject: (e: Error) => void }[] = [];
  readonly #queue: Msg[] = [];
  #dead: Error | undefined;
  readonly exited: Promise<Deno.CommandStatus>;

  constructor(role: string, log: (line: string) => void) {
    const config = new URL("../../deno.json", import.meta.url).pathname;
    const script = new URL(import.meta.url).pathname;
    this.#proc = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--quiet", "--config", config, script, `--role=${role}`],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#writer = this.#proc.stdin.getWriter();
    this.exited = this.#proc.status;
    this.#pump(this.#proc.stdout, (l) => {
      let m: Msg;
      try {
        m = JSON.parse(l);
      } catch {
        log(`[${role} stdout] ${l}`);
        return;
      }
      const i = this.#waiters.findIndex((w) => w.ev === m.ev || m.ev === "error");
      if (i >= 0) {
        const [w] = this.#waiters.splice(i, 1);
        if (m.ev === "error" && w.ev !== "error") w.reject(new Error(`${role}: ${m.message}`));
        else w.resolve(m);
      } else this.#queue.push(m);
    });
    this.#pump(this.#proc.stderr, (l) => log(`[${role}] ${l}`));
    this.exited.then((s) => {
      this.#dead = new Error(`${role} exited with code ${s.code}`);
      for (const w of this.#waiters.splice(0)) w.reject(this.#dead);
    });
  }

  async #pump(stream: ReadableStream<Uint8Array>, onLine: (l: string) => void): Promise<void> {
    let buf = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        const l = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (l.length > 0) onLine(l);
      }
    }
  }

  async send(m: Record<string, unknown>): Promise<void> {
    await this.#writer.write(new TextEncoder().encode(JSON.stringify(m) + "\n"));
  }

  wait(ev: string, timeoutMs = 20_000): Promise<Msg> {
    const q = this.#queue.findIndex((m) => m.ev === ev);
    if (q >= 0) return Promise.resolve(this.#queue.splice(q, 1)[0]);
    if (this.#dead) return Promise.reject(this.#dead);
    return new Promise((resolve, reject) => {
      const w = {
        ev,
        resolve: (m: Msg) => {
          clearTimeout(timer);
          resolve(m);
        },
        reject: (e: Error) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        const i = this.#waiters.indexOf(w);
        if (i >= 0) this.#waiters.splice(i, 1);
        reject(new Error(`timed out waiting for ${ev}`));
      }, timeoutMs);
      this.#waiters.push(w);
    });
  }

  async kill(): Promise<void> {
    try {
      await this.#writer.close();
    } catch { /* already closed */ }
    try {
      this.#proc.kill("SIGKILL");
    } catch { /* already gone */ }
    await this.exited;
  }
}

/** Wall-clock now in ms with sub-ms resolution. */
function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * Starts both peers, negotiates, connects them (through `route`), and waits
 * until the receiver has decoded a first frame. Kills the children on any
 * failure.
 */
export async function startWebrtcCall(opts: WebrtcCallOptions = {}): Promise<WebrtcCall> {
  const log = opts.log ?? (() => {});
  const rx = new Child("receiver", log);
  const tx = new Child("sender", log);
  const closeAll = async () => {
    await Promise.all([tx.kill(), rx.kill()]);
  };
  try {
    const maxKbps = opts.maxKbps ?? 2500;
    await tx.send({
      cmd: "init",
      width: opts.width ?? 1280,
      height: opts.height ?? 720,
      fps: opts.fps ?? 60,
      maxKbps,
      freshShare: opts.freshShare,
      noiseAmplitude: opts.noiseAmplitude,
      seed: opts.seed,
      statsEveryMs: opts.statsEveryMs ?? 200,
    });
    await rx.send({ cmd: "init", statsEveryMs: opts.statsEveryMs ?? 200 });
    const offer = String((await tx.wait("offer")).sdp);
    const senderAddr = findHostCandidate(offer);
    if (!senderAddr) throw new Error("sender gathered no UDP host candidate on 127.0.0.1");
    // The receiver learns the sender's address only through the route (below).
    const offerSdp = raiseMaxBitrate(stripCandidates(offer), maxKbps, opts.startKbps);
    await rx.send({ cmd: "offer", sdp: offerSdp });
    const answer = String((await rx.wait("answer")).sdp);
    const receiverAddr = findHostCandidate(answer);
    if (!receiverAddr) throw new Error("receiver gathered no UDP host candidate on 127.0.0.1");
    const route = opts.route ??
      ((r: HostPort, s: HostPort) => Promise.resolve({ senderSees: r, receiverSees: s }));
    const { senderSees, receiverSees } = await route(receiverAddr, senderAddr);
    const answerSdp = raiseMaxBitrate(
      replaceCandidates(answer, senderSees),
      maxKbps,
      opts.startKbps,
    );
    await rx.send({ cmd: "candidate", candidate: hostCandidate(receiverSees) });
    await tx.send({ cmd: "answer", sdp: answerSdp });
    const ready = await tx.wait("ready");
    const epochMs = Math.floor(nowMs());
    await rx.send({ cmd: "go", epochMs });
    await tx.send({ cmd: "go", epochMs });
    await rx.wait("first-frame", 30_000);
    log(`connected; first frame decoded after ${(nowMs() - epochMs).toFixed(0)} ms`);
    let closed = false;
    return {
      async run(durationMs: number): Promise<WebrtcResult> {
        await new Promise((r) => setTimeout(r, durationMs));
        await tx.send({ cmd: "stop" });
        const txDone = await tx.wait("done", 30_000);
        // Let the last frames drain through the link before stopping the receiver.
        await new Promise((r) => setTimeout(r, 500));
        await rx.send({ cmd: "stop" });
        const rxDone = await rx.wait("done", 30_000);
        return {
          epochMs,
          framesSent: Number(txDone.framesSent),
          sendTimes: txDone.sendTimes as number[],
          frames: (rxDone.frames as number[][]).map(([seq, sendMs, recvMs, width, height]) => ({
            seq,
            sendMs,
            recvMs,
            width,
            height,
          })),
          unreadableFrames: Number(rxDone.unreadable),
          sender: txDone.samples as SenderSample[],
          receiver: rxDone.samples as ReceiverSample[],
          senderParameters: ready.parameters,
          offerSdp,
          answerSdp,
        };
      },
      async close() {
        if (closed) return;
        closed = true;
        await closeAll();
      },
    };
  } catch (e) {
    await closeAll();
    throw e;
  }
}

// ---------------------------------------------------------------------------
// Child side (runs libwebrtc)

function emit(m: Record<string, unknown>): void {
  // Synchronous write: messages must not interleave and must be out before exit.
  const b = new TextEncoder().encode(JSON.stringify(m) + "\n");
  let off = 0;
  while (off < b.length) off += Deno.stdout.writeSync(b.subarray(off));
}

// deno-lint-ignore no-explicit-any
type Any = any;

async function waitGathered(pc: Any, timeoutMs = 3000): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (pc.iceGatheringState !== "complete" && performance.now() < end) {
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function statsRows(pc: Any): Promise<Any[]> {
  const rows: Any[] = [];
  (await pc.getStats()).forEach((r: Any) => rows.push(r));
  return rows;
}

async function childMain(role: string): Promise<void> {
  const wrtc: Any = (await import("@roamhq/wrtc")).default;
  const { RTCPeerConnection, nonstandard } = wrtc;
  const pc = new RTCPeerConnection({ iceServers: [] });
  let epochMs = 0;
  const rel = () => nowMs() - epochMs;
  const samples: Record<string, unknown>[] = [];
  let statsTimer: ReturnType<typeof setInterval> | undefined;
  let statsEveryMs = 200;

  // Sender state
  let gen: PatternGenerator | undefined;
  let source: Any, track: Any, rtpSender: Any;
  let fps = 60;
  let maxKbps = 2500;
  let framesSent = 0;
  const sendTimes: number[] = [];
  let frameTimer: ReturnType<typeof setTimeout> | undefined;
  let sending = false;

  // Receiver state
  const frames: number[][] = [];
  let unreadable = 0;
  let sink: Any;
  let firstFrameSent = false;

  const sampleSender = async () => {
    const rows = await statsRows(pc);
    const out = rows.find((r) => r.type === "outbound-rtp" && r.kind === "video") ?? {};
    // GCC's estimate lives on the transport's selected candidate pair.
    const sel = rows.find((r) => r.type === "transport")?.selectedCandidatePairId;
    const pair = rows.find((r) => r.type === "candidate-pair" && r.id === sel) ?? {};
    samples.push({
      t: rel(),
      bytesSent: out.bytesSent ?? 0,
      packetsSent: out.packetsSent ?? 0,
      framesEncoded: out.framesEncoded ?? 0,
      frameWidth: out.frameWidth ?? 0,
      frameHeight: out.frameHeight ?? 0,
      availableOutgoingBitrate: pair.availableOutgoingBitrate ?? 0,
      rttMs: (pair.currentRoundTripTime ?? 0) * 1000,
      retransmittedBytesSent: out.retransmittedBytesSent ?? 0,
      qualityLimitationReason: out.qualityLimitationReason ?? "",
    });
  };
  const sampleReceiver = async () => {
    const rows = await statsRows(pc);
    const inb = rows.find((r) => r.type === "inbound-rtp" && r.kind === "video") ?? {};
    samples.push({
      t: rel(),
      bytesReceived: inb.bytesReceived ?? 0,
      packetsReceived: inb.packetsReceived ?? 0,
      packetsLost: inb.packetsLost ?? 0,
      framesDecoded: inb.framesDecoded ?? 0,
      framesDropped: inb.framesDropped ?? 0,
      jitterMs: (inb.jitter ?? 0) * 1000,
      nackCount: inb.nackCount ?? 0,
      pliCount: inb.pliCount ?? 0,
    });
  };

  const sendFrames = () => {
    // Frame n is due at n/fps after the epoch. A late tick skips frames (as a
    // camera would), never bursts; an early tick (timers round to ms) waits.
    const interval = 1000 / fps;
    let nextN = 0;
    const tick = () => {
      if (!sending) return;
      const t = rel();
      if (t >= nextN * interval - 0.25) {
        const n = Math.max(nextN, Math.floor(t / interval));
        const data = gen!.frame(n, framesSent, t);
        sendTimes.push(t);
        source.onFrame({ width: gen!.width, height: gen!.height, data });
        framesSent++;
        nextN = n + 1;
      }
      frameTimer = setTimeout(tick, Math.max(0, nextN * interval - rel()));
    };
    tick();
  };

  const handle = async (m: Any) => {
    switch (m.cmd) {
      case "init": {
        statsEveryMs = m.statsEveryMs ?? 200;
        if (role === "sender") {
          fps = m.fps;
          maxKbps = m.maxKbps;
          gen = new PatternGenerator({
            width: m.width,
            height: m.height,
            freshShare: m.freshShare,
            noiseAmplitude: m.noiseAmplitude,
            seed: m.seed,
          });
          source = new nonstandard.RTCVideoSource();
          track = source.createTrack();
          const tr = pc.addTransceiver(track, { direction: "sendonly" });
          rtpSender = tr.sender;
          const offer = await pc.createOffer();
          await pc.setLocalDescription(offer);
          await waitGathered(pc);
          emit({ ev: "offer", sdp: pc.localDescription.sdp });
        } else {
          pc.ontrack = (e: Any) => {
            sink = new nonstandard.RTCVideoSink(e.track);
            sink.onframe = ({ frame }: Any) => {
              const recv = rel();
              const tc = readTimeCode(frame.data, frame.width, frame.height);
              if (!tc) {
                unreadable++;
                return;
              }
              frames.push([tc.seq, tc.sendMs, recv, frame.width, frame.height]);
              if (!firstFrameSent && epochMs > 0) {
                firstFrameSent = true;
                emit({ ev: "first-frame" });
              }
            };
          };
        }
        break;
      }
      case "offer": {
        await pc.setRemoteDescription({ type: "offer", sdp: m.sdp });
        const answer = await pc.createAnswer();
        await pc.setLocalDescription(answer);
        await waitGathered(pc);
        emit({ ev: "answer", sdp: pc.localDescription.sdp });
        break;
      }
      case "candidate":
        await pc.addIceCandidate({ candidate: m.candidate, sdpMid: "0", sdpMLineIndex: 0 });
        break;
      case "answer": {
        await pc.setRemoteDescription({ type: "answer", sdp: m.sdp });
        // The third place the ceiling lives: the encoding's maxBitrate.
        const p = rtpSender.getParameters();
        if (p.encodings && p.encodings.length > 0) {
          for (const e of p.encodings) e.maxBitrate = maxKbps * 1000;
          try {
            await rtpSender.setParameters(p);
          } catch (e) {
            console.error(`setParameters failed: ${e}`);
          }
        }
        emit({ ev: "ready", parameters: rtpSender.getParameters() });
        break;
      }
      case "go": {
        epochMs = m.epochMs;
        const sample = role === "sender" ? sampleSender : sampleReceiver;
        statsTimer = setInterval(
          () => sample().catch((e) => console.error(String(e))),
          statsEveryMs,
        );
        if (role === "sender") {
          sending = true;
          sendFrames();
        } else if (frames.length > 0 && !firstFrameSent) {
          firstFrameSent = true;
          emit({ ev: "first-frame" });
        }
        break;
      }
      case "stop": {
        sending = false;
        clearTimeout(frameTimer);
        clearInterval(statsTimer);
        await (role === "sender" ? sampleSender() : sampleReceiver());
        if (role === "sender") {
          emit({ ev: "done", framesSent, sendTimes, samples });
          track.stop();
        } else {
          sink?.stop();
          emit({ ev: "done", frames, unreadable, samples });
        }
        pc.close();
        // libwebrtc keeps native threads alive; leave explicitly.
        Deno.exit(0);
      }
    }
  };

  let buf = "";
  let chain = Promise.resolve();
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (!line) continue;
      const m = JSON.parse(line);
      chain = chain.then(() => handle(m)).catch((e) => {
        emit({ ev: "error", message: String(e?.stack ?? e) });
      });
    }
  }
  // Parent went away.
  await chain;
  Deno.exit(0);
}

if (import.meta.main) {
  const role = Deno.args.find((a) => a.startsWith("--role="))?.slice(7);
  if (role !== "sender" && role !== "receiver") {
    console.error("usage: webrtc_peer.ts --role=sender|receiver (driven by startWebrtcCall)");
    Deno.exit(2);
  }
  await childMain(role);
}
