/**
 * The Wavry gateway: identity (Ed25519 challenge-response login), host
 * presence and authorisation, signaling over WebSocket, the relay registry
 * and lease issuing, over Deno KV. Run it with `./wavry gateway`
 * (gateway/main.ts) or on Deno Deploy (gateway/deploy.ts); talk to it with
 * {@linkcode GatewayClient}. Protocol: docs/SIGNALING.md.
 *
 * @module
 */
export { createGateway, type Gateway, type GatewayOptions } from "./app.ts";
export {
  GatewayClient,
  GatewayError,
  type HostInfo,
  type LoginResult,
  type RelayInfo,
  SignalingChannel,
} from "./client.ts";
export {
  challengeMessage,
  type ChallengePurpose,
  SESSION_ASSERTION,
  verifySessionToken,
} from "./auth.ts";
export type {
  Candidate,
  ErrorCode,
  GatewayMessage,
  PeerKind,
  PeerMessage,
  RelayHeartbeat,
} from "./schema.ts";
export { importV4Keys, signV4Public, type V4Keys, verifyV4Public } from "./paseto.ts";
export { type BucketSpec, RateLimiter } from "./rate_limit.ts";
export { snapshotKv } from "./store.ts";
