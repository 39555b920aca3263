/**
 * Wavry's blind relay: peers bind with a lease (PASETO v4.public, checked
 * offline) and a signature by their identity key; the relay then forwards
 * their RIFT datagrams byte for byte, without any key to read them.
 * Protocol: docs/RELAY.md.
 *
 * - Peers: {@linkcode encodeBindRequest} to open or refresh a binding,
 *   {@linkcode decodeBindAck} / {@linkcode decodeBindError} for the answer.
 * - The relay: {@linkcode BindingTable} (sans-IO), {@linkcode RelayForwarder}
 *   (the UDP worker), {@linkcode startRelay} (worker + HTTP + gateway).
 *
 * @example
 * ```ts ignore
 * import { startRelay } from "./mod.ts";
 * const relay = await startRelay({
 *   relayId: "relay-1",
 *   listen: { hostname: "0.0.0.0", port: 7300 },
 *   http: { hostname: "127.0.0.1", port: 9300 },
 *   leasePublicKey: "k4.public.…",
 * });
 * await relay.stop();
 * ```
 *
 * @module
 */
export {
  BindingTable,
  type BindingTableOptions,
  DROP_KINDS,
  type DropKind,
  type HandleResult,
  type RelayAddress,
  type RelayCounters,
  type Send,
  type SessionView,
  type SlotView,
} from "./binding_table.ts";
export {
  BIND_ACK,
  BIND_ACK_LENGTH,
  BIND_ERROR,
  BIND_ERROR_LENGTH,
  BIND_REQUEST,
  BIND_REQUEST_OVERHEAD,
  BIND_SIGNATURE_CONTEXT,
  type BindAck,
  type BindError,
  BindErrorCode,
  type BindErrorKind,
  type BindRequest,
  bindSignedMessage,
  BindState,
  decodeBindAck,
  decodeBindError,
  decodeBindRequest,
  encodeBindAck,
  encodeBindError,
  encodeBindRequest,
  leaseHash,
  RELAY_WIRE_VERSION,
  verifyBindSignature,
} from "./wire.ts";
export { type ForwarderOptions, ForwarderStartError, RelayForwarder } from "./forwarder.ts";
export type { ForwarderStats } from "./worker_protocol.ts";
export { RelayMetrics } from "./metrics.ts";
export {
  GatewayCallError,
  type GatewayCallErrorKind,
  gatewayChallengeMessage,
  type HeartbeatAnswer,
  HttpGatewayLink,
  type RegistrationOptions,
  type RelayGatewayLink,
  type RelayHeartbeat,
  RelayRegistration,
} from "./registration.ts";
export { type RelayServerOptions, type RunningRelay, startRelay } from "./server.ts";
export { TokenBucket } from "./token_bucket.ts";
export { PeerBinding, type PeerBindingOptions, type PeerBindingState } from "./peer_binding.ts";
