/**
 * The race: Wavry's DELTA against libwebrtc's GCC on the same emulated links,
 * RFC 8867 test cases 5.1, 5.2, 5.3, 5.6 (x1 and x10) and the cellular traces
 * of ../shared/traces. Each case runs twice through the link emulator
 * (tools/linkemu) with the same schedule: once with Wavry's host and client
 * ({@link runWavry}), once with a WebRTC call through `@roamhq/wrtc`
 * ({@link runWebrtc}). 5.6's long TCP flow is the kernel's, through an
 * IP-in-UDP tunnel sharing the emulator's queues ({@link TcpCompetitor}; root
 * only). Prints a table per case, writes a plot per case to
 * docs/bench/rfc8867-<case>.svg, and ends with
 * `cases=N delta_qdelay_p95_ms=N gcc_qdelay_p95_ms=N delta_util=F gcc_util=F`
 * (averaged over the cases both contenders completed; NaN when none).
 *
 *   deno run -A bench/rfc8867.ts                      # every case, full length
 *   deno run -A bench/rfc8867.ts --cases=5.1-x1,5.1-x10 --time-scale=4
 *   deno run -A bench/rfc8867.ts --only=gcc           # skip Wavry
 *   deno run -A bench/rfc8867.ts --json=/tmp/race     # also dump figures + series as JSON
 *   deno run -A bench/rfc8867.ts --cases=5.6-x1 --queue-ms=300   # every case's queue, in ms
 *   deno run -A bench/rfc8867.ts --direct --seconds=30 --max-kbps=2500
 *        # WebRTC alone on loopback, no emulator: frame delay and rate baseline
 *
 * @module
 */

import {
  allCases,
  capacityAt,
  capacityChanges,
  compressTime,
  type RaceCase,
} from "./race/cases.ts";
import { computeMetrics, type FrameRecord, type Metrics, quantile } from "./race/metrics.ts";
import { type Series } from "./race/svg.ts";
import { renderPlot } from "./race/svg.ts";
import {
  type EmuLink,
  linkConfigFor,
  loadLinkEmulator,
  packetRecords,
  type StartLinkEmulator,
  traceCapacity,
} from "./race/link.ts";
import { startWebrtcCall, type WebrtcCall, type WebrtcResult } from "./race/webrtc_peer.ts";
import type { HostPort } from "./race/sdp.ts";
import { startUdpRelay, type UdpRelay } from "./race/udp_relay.ts";
import { WavryHost } from "../host/host.ts";
import { ClientConnection } from "../client/connection.ts";
import { generateIdentity } from "../crypto/identity.ts";
import { monotonicMicros } from "../media/clock.ts";
import { goodputSeries, TcpTunnel } from "../tools/linkemu/tcp_tunnel.ts";
import { raiseDefaultSocketBuffers } from "../tools/linkemu/socket_buffers.ts";
import { type TcpFigures, tcpFigures, type TcpRun } from "./race/tcp_share.ts";

/** What a contender hands back for one case: records on one clock (ms from the race's 0). */
export interface ContenderRun {
  /** Forward (media direction) packets at the bottleneck, all media flows. */
  readonly forward: ReturnType<typeof packetRecords>;
  /** Frames of all forward media flows. */
  readonly frames: FrameRecord[];
  /** The race's 0 on the emulator's clock (ms), to read the capacity schedule. */
  readonly linkOffsetMs: number;
  /** Length of the measured run (ms). */
  readonly durationMs: number;
  /**
   * The contender's own estimate over time (bit/s), when it exposes one; DELTA's is the encoder's
   * target and also carries DELTA's send budget (`sendBps`: encoder + FEC + headers) and FEC ratio.
   */
  readonly estimate?: { t: number; bps: number; sendBps?: number; fecRatio?: number }[];
  /** Free-form notes (e.g. setParameters refused). */
  readonly notes: string[];
  /** The competing TCP flow (5.6), on the same clock. */
  readonly tcp?: TcpRun;
}

/** The ceiling both contenders may reach: the case's highest capacity (or 3x a trace's mean). */
export function ceilingBps(c: RaceCase): number {
  return c.forward.kind === "schedule"
    ? Math.max(...c.forward.steps.map((s) => s.bps))
    : c.forward.meanBps * 3;
}

/** DELTA's starting bitrate in the race: libwebrtc's GCC starts at 300 kbit/s too. */
export const WAVRY_START_BPS = 300_000;

/** What both contenders are given for one case. */
export interface ContenderOptions {
  width: number;
  height: number;
  fps: number;
  freshShare?: number;
  noiseAmplitude?: number;
  log: (l: string) => void;
}

/**
 * The media flows of a case, as emulator flows in order: the forward ones
 * first, then the backward one (5.3). A competing TCP flow (5.6) is one more
 * emulator flow after these (see {@link TcpCompetitor}).
 */
function mediaFlows(c: RaceCase): { dir: "up" | "down" }[] {
  return [
    ...Array.from({ length: c.mediaFlows }, () => ({ dir: "up" as const })),
    ...(c.backwardMedia ? [{ dir: "down" as const }] : []),
  ];
}

/** Tunnels still open, closed by the signal handler if the run is interrupted. */
const liveTunnels = new Set<TcpTunnel>();

/**
 * The long TCP flow of RFC 8867 5.6, when the case has one: the kernel's TCP
 * (CUBIC) between two network namespaces through an IP-in-UDP tunnel
 * (tools/linkemu/tcp_tunnel.ts) whose datagrams are one more emulator flow,
 * so data and media share the forward queue and ACKs and feedback the
 * backward one. `senderSide` is the side of the emulator where the media
 * sender sits: "target" for Wavry (media crosses `down`), "listen" for WebRTC
 * (media crosses `up`).
 */
class TcpCompetitor {
  #connectedEpochMs = NaN;
  #handshakeMs = NaN;
  private constructor(readonly tunnel: TcpTunnel, readonly dir: "up" | "down") {}

  /** Builds the tunnel if `c` has a long TCP flow; undefined otherwise. */
  static async forCase(
    c: RaceCase,
    senderSide: "target" | "listen",
  ): Promise<TcpCompetitor | undefined> {
    if (!c.competing.some((f) => f.kind === "tcp-long")) return undefined;
    const tunnel = await TcpTunnel.create({ senderSide });
    liveTunnels.add(tunnel);
    return new TcpCompetitor(tunnel, senderSide === "target" ? "down" : "up");
  }

  /** Attaches to the emulator flow, then starts the bulk transfer for the case's length. */
  async start(
    flow: { listenAddr: HostPortEmu; upstreamAddr: HostPortEmu },
    c: RaceCase,
  ): Promise<void> {
    await this.tunnel.connect(flow);
    // A little longer than the run, so the flow covers all of it.
    const r = await this.tunnel.start(c.durationMs / 1000 + 3);
    this.#connectedEpochMs = performance.timeOrigin + performance.now();
    this.#handshakeMs = r.connectMs;
  }

  /** The flow on the race's clock (`epochMs` = the race's 0 in wall-clock ms). */
  result(
    log: Parameters<typeof packetRecords>[0],
    flow: number,
    clockZeroEpochMs: number,
    epochMs: number,
    durationMs: number,
  ): TcpRun {
    const samples = this.tunnel.samples().map((s) => ({ t: s.t - epochMs, total: s.total }));
    return {
      forward: packetRecords(log, this.dir, [flow], clockZeroEpochMs, epochMs),
      goodput: goodputSeries(samples, 0, durationMs, 1000),
      connectedAtMs: this.#connectedEpochMs - epochMs,
      handshakeMs: this.#handshakeMs,
    };
  }

  /** A note on the tunnel: datagrams carried, errors, real-time threads. */
  note(emuReceived: number): string {
    const s = this.tunnel.stats();
    // Hellos (listen-side end only) cross the emulator too.
    return `tcp tunnel: sender end sent ${s.sender.udpSent + s.sender.hellos} datagrams ` +
      `(${emuReceived} reached the emulator), send errors ${
        s.sender.sendErrors + s.receiver.sendErrors
      }, ` +
      `write errors ${s.sender.writeErrors + s.receiver.writeErrors}, ` +
      `receiver end wrote ${s.receiver.tunWritten}, forwarding threads realtime ${s.realtime}`;
  }

  /** Stops the flow and removes the namespaces. */
  async close(): Promise<void> {
    liveTunnels.delete(this.tunnel);
    await this.tunnel.close();
  }
}

type HostPortEmu = { hostname: string; port: number };

/** Per-flow received count of one direction, from the emulator's stats (0 if unknown). */
function flowReceived(link: EmuLink, flow: number, dir: "up" | "down"): number {
  const st = link.stats() as { flows?: { up: { received: number }; down: { received: number } }[] };
  return st.flows?.[flow]?.[dir].received ?? 0;
}

/**
 * Wavry's side of the race: one WavryHost per media flow of the case, each
 * streaming the synthetic picture (media/pattern.ts, the one libwebrtc gets)
 * with DELTA on and capped at the case's ceiling, and one ClientConnection
 * per host through the emulator. The hosts are the emulator's targets, so
 * their media crosses its `down` link (configured as the case's forward
 * direction) and the clients' feedback its `up` link (the case's backward
 * direction). 5.3's backward stream is a second host whose media must cross
 * `up`: it sits behind two loopback relays (bench/race/udp_relay.ts).
 *
 * Frames: send = the frame's captureTimeUs (host CLOCK_MONOTONIC), arrival =
 * the client's `arrivedAt` moved to CLOCK_MONOTONIC on this thread (one
 * machine, one clock). Frame ids a client never completed count as lost; the
 * send time of such a frame is interpolated between its neighbours'.
 */
export async function runWavry(
  c: RaceCase,
  startLink: StartLinkEmulator,
  opts: ContenderOptions,
): Promise<ContenderRun> {
  const specs = mediaFlows(c);
  const maxBitrateBps = Math.ceil(ceilingBps(c));
  // Host as target: the emulator's down link carries the media, its up link the feedback.
  const up = await linkConfigFor(c.backward, c);
  const down = await linkConfigFor(c.forward, c);
  const hosts: WavryHost[] = [];
  const clients: ClientConnection[] = [];
  const relays: UdpRelay[] = [];
  let link: EmuLink | undefined;
  let tcp: TcpCompetitor | undefined;
  const notes: string[] = [];
  try {
    tcp = await TcpCompetitor.forCase(c, "target");
    for (let i = 0; i < specs.length; i++) {
      hosts.push(
        await WavryHost.start({
          listen: { hostname: "127.0.0.1", port: 0 },
          source: {
            kind: "pattern",
            width: opts.width,
            height: opts.height,
            freshShare: opts.freshShare,
            noiseAmplitude: opts.noiseAmplitude,
            seed: i + 1,
          },
          fps: opts.fps,
          bitrateBps: Math.min(WAVRY_START_BPS, maxBitrateBps),
          maxBitrateBps,
          congestionControl: true,
          identity: generateIdentity(),
          log: (l) => opts.log(`[wavry host ${i}] ${l}`),
        }),
      );
    }
    // The backward stream's client-side relay is its flow's target (see udp_relay.ts).
    const back = specs.findIndex((s) => s.dir === "down");
    const clientSide = back >= 0 ? startUdpRelay() : undefined;
    if (clientSide) relays.push(clientSide);
    const targets = specs.map((s, i) =>
      s.dir === "up" ? { hostname: "127.0.0.1", port: hosts[i].addr.port } : clientSide!.addr
    );
    // The TCP flow's tunnel, if any, is the last emulator flow.
    const tcpFlow = specs.length;
    link = await startLink({
      target: targets[0]!,
      extraFlows: [...targets.slice(1), ...(tcp ? [tcp.tunnel.target] : [])].map((t) => ({
        target: t!,
      })),
      up,
      down,
      log: true,
      seed: 1,
    });
    if (clientSide) {
      clientSide.setFixed(link.flows[back].upstreamAddr);
      relays.push(startUdpRelay({
        fixed: link.flows[back].listenAddr,
        other: { hostname: "127.0.0.1", port: hosts[back].addr.port },
        prime: true,
      }));
      await new Promise((r) => setTimeout(r, 50)); // the priming datagram reaches the emulator
    }
    const remoteOf = (i: number) =>
      specs[i].dir === "up" ? link!.flows[i].listenAddr : clientSide!.addr;
    for (let i = 0; i < specs.length; i++) {
      clients.push(
        await ClientConnection.connect({
          remote: { ...remoteOf(i) },
          identity: generateIdentity(),
          expectHost: undefined,
        }),
      );
    }
    // RFC 8867 5.6: the TCP flow runs from 0 s.
    if (tcp) await tcp.start(link.flows[tcpFlow], c);
    // The race's 0: every session is up. One instant on three clocks.
    const epochPerf = performance.now();
    const epochMonoMs = monotonicMicros() / 1000;
    const epoch = performance.timeOrigin + epochPerf;
    const monoMinusPerfMs = () => monotonicMicros() / 1000 - performance.now();
    const fwdFlows = specs.flatMap((s, i) => (s.dir === "up" ? [i] : []));
    const got = specs.map(() => new Map<number, { sendMs: number; recvMs: number }>());
    const lostIds = specs.map(() => new Set<number>());
    const drains = clients.map(async (conn, i) => {
      for await (const e of conn.events()) {
        if (e.type === "video-frame") {
          const recvMono = e.arrivedAt + monoMinusPerfMs();
          got[i].set(e.frame.frameId, {
            sendMs: e.frame.captureTimeUs / 1000 - epochMonoMs,
            recvMs: recvMono - epochMonoMs,
          });
        } else if (e.type === "video-frame-lost") lostIds[i].add(e.frameId);
      }
    });
    const estimate: { t: number; bps: number; sendBps?: number; fecRatio?: number }[] = [];
    const poll = setInterval(() => {
      const now = performance.now();
      const cong = hosts[0].metrics.snapshot(now).congestion;
      if (cong) {
        const { targetBitrateBps: bps, sendBitrateBps: sendBps, fecRatio } = cong;
        estimate.push({ t: now - epochPerf, bps, sendBps, fecRatio });
      }
    }, 100);
    await new Promise((r) => setTimeout(r, c.durationMs));
    clearInterval(poll);
    const stats = clients.map((x) => x.stats);
    await Promise.all(clients.map((x) => x.close()));
    await Promise.all(drains);
    await new Promise((r) => setTimeout(r, 300));
    const log = await link.packetLog();
    const frames: FrameRecord[] = [];
    fwdFlows.forEach((i, k) => {
      const recs = frameRecordsOf(got[i], opts.fps);
      for (const f of recs.frames) frames.push({ ...f, seq: k * 1e7 + f.seq });
      const st = stats[i];
      notes.push(
        `flow ${i}: frames completed ${got[i].size}, ids never completed ${recs.missing} ` +
          `(reported lost ${lostIds[i].size}), capture slots not encoded ${recs.notEncoded} ` +
          `(frame-rate lowering or late capture; counted lost, as GCC's skipped frames are); ` +
          `FEC recoveries ${st.media.fecRecoveries}, ` +
          `retransmit recoveries ${st.media.retransmitRecoveries}, packets lost ${st.media.packetsLost}`,
      );
    });
    if (back >= 0) {
      notes.push(
        `backward stream (flow ${back}): frames completed ${got[back].size}, ` +
          `relayed ${relays.reduce((a, r) => a + r.forwarded(), 0)} datagrams`,
      );
    }
    if (tcp) notes.push(tcp.note(flowReceived(link, tcpFlow, "down")));
    return {
      forward: packetRecords(log, "down", fwdFlows, link.clockZeroEpochMs, epoch),
      frames,
      linkOffsetMs: epoch - link.clockZeroEpochMs,
      durationMs: c.durationMs,
      estimate,
      notes,
      tcp: tcp?.result(log, tcpFlow, link.clockZeroEpochMs, epoch, c.durationMs),
    };
  } finally {
    await Promise.all(clients.map((x) => x.close().catch(() => {})));
    await Promise.all(hosts.map((h) => h.stop().catch(() => {})));
    for (const r of relays) r.close();
    await link?.close();
    await tcp?.close();
  }
}

/**
 * One client's completed frames as frame records, plus lost ones: frame ids
 * between the first and the last completed one that never completed (send
 * time interpolated between the neighbours' capture times), and capture
 * slots the host never encoded (DELTA's frame-rate lowering, or a capture
 * that ran late), so that "frames lost" counts what GCC's count does: frames
 * of the source that never reached the receiver, whether the encoder skipped
 * them or the network lost them. Lost frames get seq numbers from 2^31 on.
 */
export function frameRecordsOf(
  got: ReadonlyMap<number, { sendMs: number; recvMs: number }>,
  fps: number,
): { frames: FrameRecord[]; missing: number; notEncoded: number } {
  const ids = [...got.keys()].sort((a, b) => a - b);
  const frames: FrameRecord[] = [];
  let missing = 0, notEncoded = 0, lostSeq = 2 ** 31;
  const interval = 1000 / fps;
  for (let k = 0; k < ids.length; k++) {
    const id = ids[k];
    const f = got.get(id)!;
    frames.push({ seq: id, sendMs: f.sendMs, recvMs: f.recvMs });
    const next = ids[k + 1];
    if (next === undefined) continue;
    const g = got.get(next)!;
    // Capture slots between the two: the ids in between plus the slots never encoded.
    const slots = Math.max(next - id, Math.round((g.sendMs - f.sendMs) / interval)) - 1;
    for (let j = 1; j <= slots; j++) {
      frames.push({ seq: lostSeq++, sendMs: f.sendMs + j * (g.sendMs - f.sendMs) / (slots + 1) });
    }
    missing += next - id - 1;
    notEncoded += slots - (next - id - 1);
  }
  return { frames, missing, notEncoded };
}

/**
 * libwebrtc's side: one WebRTC call per media flow of the case (5.2: two,
 * sharing the bottleneck as emulator flows 0 and 1; 5.3: a second call in the
 * backward direction whose media crosses the `down` link), all through one
 * emulator started once every receiver's address is known.
 */
export async function runWebrtc(
  c: RaceCase,
  startLink: StartLinkEmulator,
  opts: ContenderOptions,
): Promise<ContenderRun> {
  const specs = mediaFlows(c);
  // The ceiling GCC may reach: the case's highest capacity (RFC scale or x10).
  const maxKbps = Math.ceil(ceilingBps(c) / 1000);
  const up = await linkConfigFor(c.forward, c);
  const down = await linkConfigFor(c.backward, c);

  // Each call's route hook parks until all targets are known, then the emulator starts.
  const targets: (HostPort | undefined)[] = specs.map(() => undefined);
  let link: EmuLink | undefined;
  let linkReady: (l: EmuLink) => void;
  let linkFailed: (e: unknown) => void;
  const linkP = new Promise<EmuLink>((res, rej) => {
    linkReady = res;
    linkFailed = rej;
  });
  // The TCP flow's tunnel, if any, is the last emulator flow; built before the calls.
  let tcp: TcpCompetitor | undefined;
  const tcpFlow = specs.length;
  const maybeStart = () => {
    if (targets.some((t) => t === undefined)) return;
    const emu = (t: HostPort) => ({ hostname: t.ip, port: t.port });
    startLink({
      target: emu(targets[0]!),
      extraFlows: [
        ...targets.slice(1).map((t) => ({ target: emu(t!) })),
        ...(tcp ? [{ target: tcp.tunnel.target }] : []),
      ],
      up,
      down,
      log: true,
      seed: 1,
    }).then((l) => {
      link = l;
      linkReady(l);
    }, linkFailed);
  };
  const hp = (a: { hostname: string; port: number }) => ({ ip: a.hostname, port: a.port });
  const calls: WebrtcCall[] = [];
  try {
    tcp = await TcpCompetitor.forCase(c, "listen");
    const started = await Promise.all(specs.map((s, i) =>
      startWebrtcCall({
        width: opts.width,
        height: opts.height,
        fps: opts.fps,
        maxKbps,
        freshShare: opts.freshShare,
        noiseAmplitude: opts.noiseAmplitude,
        seed: i + 1,
        log: (l) => opts.log(`[flow ${i}] ${l}`),
        route: async (receiver, sender) => {
          // Forward calls: the emulator's target is the receiver. The backward call's
          // sender sits on the target side, so its target is the sender.
          targets[i] = s.dir === "up" ? receiver : sender;
          maybeStart();
          // If another call of the case failed before registering, do not wait forever.
          let timer: ReturnType<typeof setTimeout> | undefined;
          const l = await Promise.race([
            linkP,
            new Promise<never>((_, rej) => {
              timer = setTimeout(() => rej(new Error("emulator not started within 30 s")), 30_000);
            }),
          ]).finally(() => clearTimeout(timer));
          const f = l.flows[i];
          return s.dir === "up"
            ? { senderSees: hp(f.listenAddr), receiverSees: hp(f.upstreamAddr) }
            : { senderSees: hp(f.upstreamAddr), receiverSees: hp(f.listenAddr) };
        },
      }).then((call) => {
        calls.push(call);
        return call;
      })
    ));
    // RFC 8867 5.6: the TCP flow runs from 0 s (every call is set up; their runs start now).
    if (tcp) await tcp.start(link!.flows[tcpFlow], c);
    const results: WebrtcResult[] = await Promise.all(
      started.map((call) => call.run(c.durationMs)),
    );
    await new Promise((r) => setTimeout(r, 300));
    const log = await link!.packetLog();
    // All calls share one clock; flow 0's epoch is the race's 0.
    const epoch = results[0].epochMs;
    const fwdFlows = specs.flatMap((s, i) => (s.dir === "up" ? [i] : []));
    const frames: FrameRecord[] = [];
    const estimate: { t: number; bps: number }[] = [];
    fwdFlows.forEach((i, k) => {
      const r = results[i];
      const shift = r.epochMs - epoch;
      const recv = new Map(r.frames.map((f) => [f.seq, f.recvMs]));
      r.sendTimes.forEach((sendMs, seq) => {
        const got = recv.get(seq);
        frames.push({
          seq: k * 1e7 + seq,
          sendMs: sendMs + shift,
          recvMs: got === undefined ? undefined : got + shift,
        });
      });
      if (k === 0) {
        for (const s of r.sender) estimate.push({ t: s.t, bps: s.availableOutgoingBitrate });
      }
    });
    const notes: string[] = [];
    // "Frames lost" counts frames fed but never decoded; say how many the encoder skipped.
    // (Counters are sampled when each side stops, so the last few frames may be off by one or two.)
    fwdFlows.forEach((i) => {
      const r = results[i];
      const enc = r.sender.at(-1)?.framesEncoded ?? 0;
      const dec = r.receiver.at(-1)?.framesDecoded ?? 0;
      notes.push(
        `flow ${i}: fed ${r.framesSent}, encoded ${enc}, decoded ${dec} (encoder skipped ${
          r.framesSent - enc
        }; ${Math.max(0, enc - dec)} encoded frames not decoded)`,
      );
    });
    const p = results[0].senderParameters as { encodings?: { maxBitrate?: number }[] };
    if (!p?.encodings?.[0]?.maxBitrate) {
      notes.push("setParameters(maxBitrate) not applied by wrtc; ceiling set through SDP only");
    }
    if (tcp) notes.push(tcp.note(flowReceived(link!, tcpFlow, "up")));
    return {
      forward: packetRecords(log, "up", fwdFlows, link!.clockZeroEpochMs, epoch),
      frames,
      linkOffsetMs: epoch - link!.clockZeroEpochMs,
      durationMs: c.durationMs,
      estimate,
      notes,
      tcp: tcp?.result(log, tcpFlow, link!.clockZeroEpochMs, epoch, c.durationMs),
    };
  } finally {
    await Promise.all(calls.map((x) => x.close()));
    await link?.close();
    await tcp?.close();
  }
}

/** Metrics of a run against the case's forward capacity (a trace's, bucket by bucket). */
export async function metricsOf(c: RaceCase, r: ContenderRun): Promise<Metrics> {
  const fwd = c.forward;
  const linkCap = fwd.kind === "trace"
    ? traceCapacity(await Deno.readTextFile(fwd.path))
    : (t: number) => capacityAt(fwd, t);
  const cap = (t: number) => linkCap(t + r.linkOffsetMs);
  return computeMetrics({
    packets: r.forward,
    frames: r.frames,
    capacityAt: cap,
    changes: capacityChanges(c.forward).map((ch) => ({ ...ch, atMs: ch.atMs - r.linkOffsetMs })),
    baseDelayMs: c.oneWayDelayMs,
    startMs: 0,
    endMs: r.durationMs,
  });
}

function fmtMs(x: number | undefined): string {
  return x === undefined ? "never" : `${Math.round(x)}`;
}

/** The TCP flow's figures of a run over the measured window, when it had one. */
export function tcpOf(r: ContenderRun): TcpFigures | undefined {
  return r.tcp ? tcpFigures(r.forward, r.tcp, 0, r.durationMs) : undefined;
}

function row(name: string, m: Metrics, tcp?: TcpFigures): string {
  const drops = m.recoveries.filter((r) => r.toBps < r.fromBps);
  const rises = m.recoveries.filter((r) => r.toBps > r.fromBps);
  const worst = (xs: (number | undefined)[]) =>
    xs.length === 0
      ? "-"
      : xs.some((x) => x === undefined)
      ? "never"
      : fmtMs(Math.max(...(xs as number[])));
  return [
    name.padEnd(6),
    (m.throughputBps / 1e6).toFixed(2).padStart(8),
    m.utilisation.toFixed(3).padStart(6),
    m.qdelayMeanMs.toFixed(1).padStart(8),
    m.qdelayP95Ms.toFixed(1).padStart(8),
    m.frameDelayP95Ms.toFixed(0).padStart(9),
    `${m.framesLost}/${m.framesSent}`.padStart(11),
    worst(drops.map((r) => r.rateUnderMs)).padStart(9),
    worst(drops.map((r) => r.qdelayDrainedMs)).padStart(9),
    worst(rises.map((r) => r.util90Ms)).padStart(8),
    (tcp ? (tcp.tcpBps / 1e6).toFixed(2) : "-").padStart(7),
    (tcp ? tcp.mediaShare.toFixed(3) : "-").padStart(6),
  ].join(" ");
}

const HEADER = [
  "who".padEnd(6),
  "Mbit/s".padStart(8),
  "util".padStart(6),
  "qd_mean".padStart(8),
  "qd_p95".padStart(8),
  "frame_p95".padStart(9),
  "lost/sent".padStart(11),
  "rate<cap".padStart(9),
  "qd<20ms".padStart(9),
  "util90".padStart(8),
  "tcp_Mb".padStart(7),
  "share".padStart(6),
].join(" ");

/** The case's plot: capacity, each contender's delivered rate, estimate and TCP rate, queuing delay. */
export function plotCase(
  c: RaceCase,
  runs: { name: string; color: string; run: ContenderRun; m: Metrics; tcp?: TcpFigures }[],
): string {
  const sec = (t: number) => t / 1000;
  const first = runs[0];
  const capSeries: Series = {
    label: "capacity",
    color: "#000",
    dashed: true,
    points: first.m.series.map((b) => ({ x: sec(b.t), y: b.capacityBps / 1e6 })),
  };
  const rate: Series[] = [capSeries];
  const delay: Series[] = [];
  for (const r of runs) {
    rate.push({
      label: `${r.name} delivered`,
      color: r.color,
      points: r.m.series.map((b) => ({ x: sec(b.t), y: b.recvBps / 1e6 })),
    });
    if (r.run.estimate?.length) {
      rate.push({
        label: `${r.name} estimate`,
        color: r.color,
        dashed: true,
        points: r.run.estimate.map((e) => ({ x: sec(e.t), y: e.bps / 1e6 })),
      });
    }
    if (r.tcp) {
      rate.push({
        label: `TCP beside ${r.name}`,
        color: r.name === "DELTA" ? "#06c" : "#c80",
        points: r.tcp.series.map((b) => ({ x: sec(b.t), y: b.bps / 1e6 })),
      });
    }
    delay.push({
      label: `${r.name} queuing delay`,
      color: r.color,
      points: r.m.series.map((b) => ({ x: sec(b.t), y: b.qdelayMs })),
    });
  }
  return renderPlot({
    title: `RFC 8867 ${c.id}: ${c.title}`,
    xLabel: "time (s)",
    panels: [
      { yLabel: "Mbit/s", series: rate },
      { yLabel: "queuing delay (ms)", series: delay },
    ],
  });
}

function arg(name: string): string | undefined {
  const a = Deno.args.find((x) => x === `--${name}` || x.startsWith(`--${name}=`));
  if (a === undefined) return undefined;
  return a.includes("=") ? a.slice(a.indexOf("=") + 1) : "";
}

/** `--fresh=F --noise=N`: the synthetic picture's difficulty (see PatternGenerator). */
function content(): { freshShare?: number; noiseAmplitude?: number } {
  const f = arg("fresh"), n = arg("noise");
  return {
    ...(f !== undefined ? { freshShare: Number(f) } : {}),
    ...(n !== undefined ? { noiseAmplitude: Number(n) } : {}),
  };
}

/** WebRTC alone on loopback (no emulator): the contender's own baseline. */
async function direct(): Promise<void> {
  const seconds = Number(arg("seconds") ?? 30);
  const maxKbps = Number(arg("max-kbps") ?? 2500);
  const width = Number(arg("width") ?? 1280), height = Number(arg("height") ?? 720);
  const fps = Number(arg("fps") ?? 60);
  const verbose = arg("verbose") !== undefined;
  const call = await startWebrtcCall({
    width,
    height,
    fps,
    maxKbps,
    ...content(),
    log: verbose ? (l) => console.error(l) : undefined,
  });
  let r: WebrtcResult;
  try {
    r = await call.run(seconds * 1000);
  } finally {
    await call.close();
  }
  // Judge the second half: GCC starts at 300 kbit/s and ramps.
  const half = seconds * 500;
  const rx = r.receiver.filter((s) => s.t >= half);
  const tx = r.sender.filter((s) => s.t >= half);
  const span = (xs: { t: number }[]) => (xs[xs.length - 1].t - xs[0].t) / 1000;
  const rxKbps = (rx[rx.length - 1].bytesReceived - rx[0].bytesReceived) * 8 / span(rx) / 1000;
  const fpsDecoded = (rx[rx.length - 1].framesDecoded - rx[0].framesDecoded) / span(rx);
  const fpsEncoded = (tx[tx.length - 1].framesEncoded - tx[0].framesEncoded) / span(tx);
  const delays = r.frames.filter((f) => f.sendMs >= half).map((f) => f.recvMs - f.sendMs);
  const decoded = new Set(r.frames.map((f) => f.seq));
  const last = tx[tx.length - 1];
  console.log(
    `WebRTC alone on loopback, ${width}x${height}@${fps}, ceiling ${maxKbps} kbit/s, ${seconds} s`,
  );
  console.log(
    `  frames fed ${r.framesSent}, decoded with time code ${decoded.size}, unreadable ${r.unreadableFrames}`,
  );
  console.log(
    `  second half: received ${rxKbps.toFixed(0)} kbit/s, encoded ${
      fpsEncoded.toFixed(1)
    } fps, decoded ${fpsDecoded.toFixed(1)} fps, GCC estimate ${
      (last.availableOutgoingBitrate / 1000).toFixed(0)
    } kbit/s, ` +
      `limited by ${last.qualityLimitationReason}, picture ${last.frameWidth}x${last.frameHeight}`,
  );
  console.log(
    `  frame delay (send -> decoded) p50 ${quantile(delays, 0.5).toFixed(1)} ms, p95 ${
      quantile(delays, 0.95).toFixed(1)
    } ms; packets lost ${rx[rx.length - 1].packetsLost}, jitter ${
      rx[rx.length - 1].jitterMs.toFixed(0)
    } ms`,
  );
  console.log(`command: deno run -A bench/rfc8867.ts ${Deno.args.join(" ")}`);
  console.log(
    `direct max_kbps=${maxKbps} recv_kbps=${rxKbps.toFixed(0)} fps=${
      fpsDecoded.toFixed(1)
    } frame_delay_p50_ms=${quantile(delays, 0.5).toFixed(1)} frame_delay_p95_ms=${
      quantile(delays, 0.95).toFixed(1)
    }`,
  );
}

/** Default socket buffer for the run's sockets (emulator, peers): a second of x10 traffic. */
const SOCKET_BUFFER_BYTES = 4 * 1024 * 1024;

async function main(): Promise<void> {
  if (arg("direct") !== undefined) return await direct();
  const startLink = await loadLinkEmulator().catch((e) => {
    console.error(String(e.message ?? e));
    Deno.exit(1);
  });
  const filter = arg("cases")?.split(",");
  const timeScale = Number(arg("time-scale") ?? 1);
  const only = arg("only");
  const verbose = arg("verbose") !== undefined;
  const outDir = arg("out") ?? new URL("../docs/bench/", import.meta.url).pathname;
  const jsonDir = arg("json");
  // Picture per case (cases.ts) unless forced for all.
  const force = {
    width: arg("width") !== undefined ? Number(arg("width")) : undefined,
    height: arg("height") !== undefined ? Number(arg("height")) : undefined,
    fps: arg("fps") !== undefined ? Number(arg("fps")) : undefined,
  };
  await Deno.mkdir(outDir, { recursive: true });
  const queueMs = arg("queue-ms");
  const cases = allCases()
    .filter((c) => !filter || filter.includes(c.id))
    .map((c) => compressTime(c, timeScale))
    .map((c) => queueMs === undefined ? c : { ...c, queueMs: Number(queueMs) });
  // An interrupted run must not leave namespaces and TUN devices behind. (Removed at the
  // end: a signal listener keeps the process alive.)
  // Deno's UDP sockets take the kernel's default buffer; at x10 the default
  // (208 KiB) overflowed in the emulator, a loss outside the emulated link.
  const buffers = raiseDefaultSocketBuffers(SOCKET_BUFFER_BYTES);
  console.log(
    buffers.raised.length > 0
      ? `socket buffers: default raised to ${SOCKET_BUFFER_BYTES} bytes for this run`
      : `socket buffers: default left as is (${buffers.reason ?? "already large enough"})`,
  );
  globalThis.addEventListener("unload", () => buffers.restore());
  const onSignal = () => {
    buffers.restore();
    Promise.allSettled([...liveTunnels].map((t) => t.close())).finally(() => Deno.exit(130));
  };
  const signals = ["SIGINT", "SIGTERM"] as const;
  for (const sig of signals) Deno.addSignalListener(sig, onSignal);
  const done: { delta?: Metrics; gcc?: Metrics }[] = [];
  for (const c of cases) {
    console.log(
      `\n== ${c.id}  ${c.title}  (${
        c.durationMs / 1000
      } s, ${c.oneWayDelayMs} ms one way, queue ${c.queueMs} ms)`,
    );
    const log = verbose ? (l: string) => console.error(l) : () => {};
    const width = force.width ?? c.picture.width, height = force.height ?? c.picture.height;
    const fps = force.fps ?? c.picture.fps;
    console.log(`picture ${width}x${height} at ${fps} fps`);
    const runs: {
      name: string;
      color: string;
      run: ContenderRun;
      m: Metrics;
      tcp?: TcpFigures;
    }[] = [];
    const contenders: [string, string, () => Promise<ContenderRun>][] = [
      ["DELTA", "#0a6", () => runWavry(c, startLink, { width, height, fps, ...content(), log })],
      ["GCC", "#c33", () => runWebrtc(c, startLink, { width, height, fps, ...content(), log })],
    ];
    console.log(HEADER);
    for (const [name, color, run] of contenders) {
      if (only && only.toLowerCase() !== name.toLowerCase()) continue;
      try {
        const r = await run();
        const m = await metricsOf(c, r);
        const tcp = tcpOf(r);
        runs.push({ name, color, run: r, m, tcp });
        console.log(row(name, m, tcp));
        if (tcp && r.tcp) {
          console.log(
            `       tcp: ${(tcp.tcpBps / 1e6).toFixed(2)} Mbit/s at the bottleneck, goodput ${
              (tcp.goodputBps / 1e6).toFixed(2)
            } Mbit/s, media share ${tcp.mediaShare.toFixed(3)}, handshake ${
              r.tcp.handshakeMs.toFixed(0)
            } ms, connected at ${(r.tcp.connectedAtMs / 1000).toFixed(2)} s`,
          );
        }
        for (const n of r.notes) console.log(`       note: ${n}`);
      } catch (e) {
        console.log(`${name.padEnd(6)} ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    if (runs.length > 0) {
      const file = `${outDir}/rfc8867-${c.id.replace(/[^\w.-]+/g, "_")}.svg`;
      await Deno.writeTextFile(file, plotCase(c, runs));
      console.log(`plot: ${file}`);
      if (jsonDir !== undefined) {
        // Every figure and the binned series, for a closer look than the table gives.
        const j = `${jsonDir}/rfc8867-${c.id.replace(/[^\w.-]+/g, "_")}.json`;
        await Deno.mkdir(jsonDir, { recursive: true });
        await Deno.writeTextFile(
          j,
          JSON.stringify({
            case: c,
            runs: runs.map((r) => ({
              name: r.name,
              metrics: r.m,
              estimate: r.run.estimate,
              notes: r.run.notes,
              ...(r.tcp && r.run.tcp
                ? {
                  tcp: {
                    tcpBps: r.tcp.tcpBps,
                    goodputBps: r.tcp.goodputBps,
                    mediaShare: r.tcp.mediaShare,
                    handshakeMs: r.run.tcp.handshakeMs,
                    connectedAtMs: r.run.tcp.connectedAtMs,
                    bottleneckSeries: r.tcp.series,
                    goodputSeries: r.run.tcp.goodput,
                  },
                }
                : {}),
            })),
          }),
        );
        console.log(`data: ${j}`);
      }
    }
    const d = runs.find((r) => r.name === "DELTA"), g = runs.find((r) => r.name === "GCC");
    if (d || g) done.push({ delta: d?.m, gcc: g?.m });
  }
  for (const sig of signals) Deno.removeSignalListener(sig, onSignal);
  buffers.restore();
  // Each contender is averaged over the cases it completed (NaN when none); the
  // comparison is fair only when both completed the same cases (see the counts).
  const avg = (xs: number[]) => xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN;
  const ds = done.flatMap((x) => x.delta ? [x.delta] : []);
  const gs = done.flatMap((x) => x.gcc ? [x.gcc] : []);
  console.log(`\ncompleted: delta=${ds.length} gcc=${gs.length} of ${cases.length} cases`);
  console.log(`command: deno run -A bench/rfc8867.ts ${Deno.args.join(" ")}`);
  console.log(
    `cases=${done.length} delta_qdelay_p95_ms=${avg(ds.map((m) => m.qdelayP95Ms)).toFixed(1)} ` +
      `gcc_qdelay_p95_ms=${avg(gs.map((m) => m.qdelayP95Ms)).toFixed(1)} ` +
      `delta_util=${avg(ds.map((m) => m.utilisation)).toFixed(3)} ` +
      `gcc_util=${avg(gs.map((m) => m.utilisation)).toFixed(3)}`,
  );
}

if (import.meta.main) await main();
