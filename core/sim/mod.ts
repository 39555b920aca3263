/**
 * Deterministic, virtual-time network simulator: seeded randomness, lossy
 * rate-limited links (fixed rate or Mahimahi traces) and an event loop that
 * drives two sans-IO endpoints, with an optional man-in-the-middle.
 *
 * See docs/SIMULATOR.md.
 *
 * @module
 */

export { Rng } from "./rng.ts";
export {
  DEFAULT_QUEUE_BYTES,
  gilbertElliott,
  Link,
  type LinkArrival,
  type LinkConfig,
  type LinkStats,
  type LossModel,
  type SendFate,
} from "./link.ts";
export {
  rateAt,
  type RateStep,
  serializationEndMs,
  validateRateSchedule,
} from "./rate_schedule.ts";
export {
  DeliveryTrace,
  parseMahimahiTrace,
  TRACE_PACKET_BYTES,
  type TraceOutages,
  traceOutages,
} from "./trace.ts";
export {
  type Direction,
  type Middlebox,
  type MiddleboxVerdict,
  type SimEndpoint,
  SimNetwork,
  type SimNetworkOptions,
  type TraceEntry,
} from "./network.ts";
export {
  RecordingEndpoint,
  type SessionPair,
  sessionPair,
  type SessionPairOptions,
} from "./pair.ts";
