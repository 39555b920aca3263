/**
 * RFC 8867 5.6 figures: how the competing TCP flow fared next to the media
 * at the shared bottleneck. Pure: records in, numbers out.
 *
 * @module
 */
import type { PacketRecord } from "./metrics.ts";

/** What the race knows of the TCP flow of one run, on the race's clock (ms). */
export interface TcpRun {
  /** The tunnel flow's forward datagrams at the bottleneck (IP packets: headers count). */
  readonly forward: readonly PacketRecord[];
  /** Goodput (bytes the sink read) per 1 s bin, bit/s. */
  readonly goodput: readonly { t: number; bps: number }[];
  /** When the TCP handshake completed (negative: before the race's 0). */
  readonly connectedAtMs: number;
  /** The handshake's duration: one round trip through the emulator. */
  readonly handshakeMs: number;
}

/** The TCP flow's figures over a window. */
export interface TcpFigures {
  /** TCP's delivered rate at the bottleneck, bit/s (IP packets). */
  readonly tcpBps: number;
  /** Mean goodput over the window's full 1 s bins, bit/s (TCP payload). */
  readonly goodputBps: number;
  /** Media's share of what the bottleneck delivered: media / (media + TCP), bytes. */
  readonly mediaShare: number;
  /** TCP's delivered rate at the bottleneck per `binMs` bin. */
  readonly series: { t: number; bps: number }[];
}

/** Bytes of the records delivered in [startMs, endMs). */
function delivered(records: readonly PacketRecord[], startMs: number, endMs: number): number {
  let bytes = 0;
  for (const r of records) {
    if (r.recvMs !== undefined && r.recvMs >= startMs && r.recvMs < endMs) bytes += r.bytes;
  }
  return bytes;
}

/**
 * Figures of `tcp` against the media's forward records over [startMs, endMs).
 * Throws a RangeError on an empty window or a bin that is not > 0.
 */
export function tcpFigures(
  media: readonly PacketRecord[],
  tcp: TcpRun,
  startMs: number,
  endMs: number,
  binMs = 1000,
): TcpFigures {
  if (!(endMs > startMs) || !(binMs > 0)) {
    throw new RangeError(`tcpFigures: bad window [${startMs}, ${endMs}) or bin ${binMs}`);
  }
  const tcpBytes = delivered(tcp.forward, startMs, endMs);
  const mediaBytes = delivered(media, startMs, endMs);
  const span = (endMs - startMs) / 1000;
  const bins = tcp.goodput.filter((b) => b.t >= startMs && b.t + 1000 <= endMs);
  const series: { t: number; bps: number }[] = [];
  for (let t = startMs; t < endMs; t += binMs) {
    const w = Math.min(binMs, endMs - t);
    series.push({ t, bps: delivered(tcp.forward, t, t + w) * 8 * 1000 / w });
  }
  return {
    tcpBps: tcpBytes * 8 / span,
    goodputBps: bins.length ? bins.reduce((a, b) => a + b.bps, 0) / bins.length : 0,
    mediaShare: mediaBytes + tcpBytes > 0 ? mediaBytes / (mediaBytes + tcpBytes) : NaN,
    series,
  };
}
