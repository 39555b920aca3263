/**
 * A userspace UDP link emulator: one-way delay, jitter, Bernoulli and
 * Gilbert-Elliott loss, reordering, duplication, a rate limit with a drop-tail
 * queue in bytes or ms, and capacity from a step schedule or a Mahimahi trace,
 * between real sockets. The models are core/sim's `Link`, driven by a real
 * clock in a dedicated worker. See docs/LINKEMU.md.
 *
 * @module
 */

export { DEFAULT_REALTIME_PRIORITY, DEFAULT_SPIN_MS, startLinkEmulator } from "./emulator.ts";
export { setThreadNormal, setThreadRealtime } from "./realtime.ts";
export {
  completeLinkConfig,
  type DirectionStats,
  type FlowDirectionStats,
  type FlowSpec,
  type HostPort,
  type LinkConfig,
  type LinkEmulator,
  LinkEmulatorError,
  type LinkEmulatorErrorKind,
  type LinkEmulatorOptions,
  type LinkEmulatorStats,
  type LinkStats,
  type PacketFate,
  type PacketLogEntry,
} from "./types.ts";
export { type RaisedBuffers, raiseDefaultSocketBuffers } from "./socket_buffers.ts";
export { type CliOptions, parseArgs, parseQueue, parseRate } from "./cli.ts";
