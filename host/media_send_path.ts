/**
 * The per-packet send path of the host's media lane, shared by the media
 * send worker and bench/dataplane.ts: take what a {@linkcode MediaSender}
 * has ready (within a pacing budget), sealed back to back in one buffer with
 * one AEAD call, and hand it to the kernel with one `sendmmsg`, no copy.
 *
 * @module
 */
import type { MediaSender } from "../core/media_lane.ts";
import type { NativeUdpSocket } from "../edge/native_udp.ts";
import type { PeerAddress } from "../edge/udp_socket.ts";

/** What one {@linkcode sendMediaBatch} did. */
export interface MediaBatchResult {
  /** Datagrams sealed (taken from the sender). */
  datagrams: number;
  /** Their bytes (what the pacer spends). */
  bytes: number;
  /** Datagrams the kernel took (the first `sent` of them). */
  sent: number;
  /** Bytes the kernel took. */
  sentBytes: number;
}

/**
 * Seals at most `maxDatagrams` datagrams of `sender`, while fewer than
 * `budgetBytes` are taken (the last may overshoot, like a token bucket), and
 * sends them to `to` in one call. Datagrams the kernel refuses are dropped
 * (counted by the socket): late media is worth nothing.
 */
export function sendMediaBatch(
  sender: MediaSender,
  socket: NativeUdpSocket,
  to: PeerAddress,
  now: number,
  maxDatagrams: number,
  budgetBytes: number,
): MediaBatchResult {
  const batch = sender.pollTransmitBatch(now, maxDatagrams, budgetBytes);
  let bytes = 0;
  for (let i = 0; i < batch.count; i++) bytes += batch.lengths[i];
  if (batch.count === 0) return { datagrams: 0, bytes: 0, sent: 0, sentBytes: 0 };
  const sent = socket.sendPacked(batch.bytes, batch.lengths, batch.count, to);
  let sentBytes = 0;
  for (let i = 0; i < sent; i++) sentBytes += batch.lengths[i];
  return { datagrams: batch.count, bytes, sent, sentBytes };
}
