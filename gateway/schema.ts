/**
 * Schemas of everything the gateway accepts, checked at the edge with valibot
 * before any state is read or written: HTTP request bodies and the signaling
 * messages peers send over `/v1/ws`. Also the types of what the gateway sends
 * back. The wire format is specified in docs/SIGNALING.md.
 *
 * @module
 */
import * as v from "valibot";

/** Largest signaling message (UTF-8 bytes of the JSON text) the gateway reads. */
export const MAX_MESSAGE_BYTES = 16 * 1024;
/** Most candidates in one offer or answer. */
export const MAX_CANDIDATES = 32;

const B64URL_KEY = /^[A-Za-z0-9_-]{43}$/;
/** An Ed25519 public key: 43 characters of base64url, no padding. */
export const PeerKeySchema = v.pipe(v.string(), v.regex(B64URL_KEY, "not a 43-char base64url key"));
/** An Ed25519 signature: 86 characters of base64url, no padding. */
export const SignatureSchema = v.pipe(
  v.string(),
  v.regex(/^[A-Za-z0-9_-]{86}$/, "not an 86-char base64url signature"),
);
/** A challenge nonce: 32 random bytes as base64url. */
export const NonceSchema = v.pipe(v.string(), v.regex(B64URL_KEY, "not a nonce"));
/** What an identity is. */
export const KindSchema = v.picklist(["user", "host", "relay"]);
/** Identity kinds. */
export type PeerKind = v.InferOutput<typeof KindSchema>;
/** A display name: 1..64 characters, no control characters. */
export const NameSchema = v.pipe(
  v.string(),
  v.minLength(1),
  v.maxLength(64),
  // deno-lint-ignore no-control-regex
  v.regex(/^[^\u0000-\u001f\u007f]+$/, "control characters are not allowed"),
);
/** Opaque ids chosen by peers or the gateway (session ids, relay ids, refs). */
export const IdSchema = v.pipe(
  v.string(),
  v.minLength(1),
  v.maxLength(64),
  v.regex(/^[A-Za-z0-9._:-]+$/, "ids are [A-Za-z0-9._:-]{1,64}"),
);
/** A pairing code as shown on the host: `XXXX-XXXX` (Crockford base32). */
export const PairingCodeSchema = v.pipe(
  v.string(),
  v.regex(/^[0-9A-HJKMNP-TV-Z]{4}-?[0-9A-HJKMNP-TV-Z]{4}$/i, "not a pairing code"),
);

/** `POST /v1/challenge` body. */
export const ChallengeRequestSchema = v.strictObject({
  publicKey: PeerKeySchema,
  purpose: v.picklist(["login", "register"]),
});
/** `POST /v1/register` body. */
export const RegisterRequestSchema = v.strictObject({
  publicKey: PeerKeySchema,
  name: NameSchema,
  kind: KindSchema,
  nonce: NonceSchema,
  signature: SignatureSchema,
});
/** `POST /v1/login` body. */
export const LoginRequestSchema = v.strictObject({
  publicKey: PeerKeySchema,
  nonce: NonceSchema,
  signature: SignatureSchema,
});
/** `POST /v1/hosts/allow` body. */
export const AllowRequestSchema = v.strictObject({ clientKey: PeerKeySchema });
/** `POST /v1/pairing/redeem` body. */
export const RedeemRequestSchema = v.strictObject({ code: PairingCodeSchema });

const HOST_PORT = /^(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]{1,253}):\d{1,5}$/;
/** `ip:port` (IPv6 in brackets) or `name:port`. */
export const AddressSchema = v.pipe(
  v.string(),
  v.maxLength(300),
  v.regex(HOST_PORT, "address must be host:port"),
  v.check((s) => Number(s.slice(s.lastIndexOf(":") + 1)) <= 65535, "port out of range"),
);
/** `POST /v1/relays/heartbeat` body. */
export const HeartbeatRequestSchema = v.strictObject({
  relayId: IdSchema,
  address: AddressSchema,
  load: v.pipe(v.number(), v.minValue(0), v.maxValue(1)),
  capacityBps: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(1e12)),
});
/** A relay heartbeat. */
export type RelayHeartbeat = v.InferOutput<typeof HeartbeatRequestSchema>;

/** One connectivity candidate (ICE-style: RFC 8445 §5.1). */
export const CandidateSchema = v.strictObject({
  kind: v.picklist(["host", "srflx", "relay"]),
  address: v.pipe(v.string(), v.minLength(1), v.maxLength(64), v.regex(/^[0-9A-Fa-f:.]+$/)),
  port: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(65535)),
  priority: v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(2 ** 32 - 1)),
  foundation: v.pipe(v.string(), v.minLength(1), v.maxLength(32), v.regex(/^[A-Za-z0-9+/]+$/)),
});
/** One connectivity candidate. */
export type Candidate = v.InferOutput<typeof CandidateSchema>;

const Ref = v.optional(IdSchema);
const Candidates = v.pipe(v.array(CandidateSchema), v.maxLength(MAX_CANDIDATES));
/** ICE short-term credentials (RFC 8445 §5.3: ice-chars; ufrag 4–256, pwd 22–256). */
const Ufrag = v.optional(
  v.pipe(v.string(), v.minLength(4), v.maxLength(256), v.regex(/^[A-Za-z0-9+/]+$/)),
);
const Pwd = v.optional(
  v.pipe(v.string(), v.minLength(22), v.maxLength(256), v.regex(/^[A-Za-z0-9+/]+$/)),
);

/** Every message a peer may send on `/v1/ws`, discriminated by `type`. */
export const PeerMessageSchema = v.variant("type", [
  v.strictObject({
    type: v.literal("auth"),
    token: v.pipe(v.string(), v.maxLength(4096)),
    ref: Ref,
  }),
  v.strictObject({ type: v.literal("ping"), ref: Ref }),
  v.strictObject({
    type: v.literal("connect"),
    to: PeerKeySchema,
    needRelay: v.optional(v.boolean()),
    ref: Ref,
  }),
  v.strictObject({
    type: v.literal("offer"),
    sessionId: IdSchema,
    candidates: Candidates,
    ufrag: Ufrag,
    pwd: Pwd,
    ref: Ref,
  }),
  v.strictObject({
    type: v.literal("answer"),
    sessionId: IdSchema,
    candidates: Candidates,
    ufrag: Ufrag,
    pwd: Pwd,
    ref: Ref,
  }),
  v.strictObject({ type: v.literal("relay_request"), sessionId: IdSchema, ref: Ref }),
  v.strictObject({
    type: v.literal("outcome"),
    sessionId: IdSchema,
    result: v.picklist(["direct", "relay", "failed"]),
    detail: v.optional(v.pipe(v.string(), v.maxLength(200))),
    ref: Ref,
  }),
]);
/** A message from a peer. */
export type PeerMessage = v.InferOutput<typeof PeerMessageSchema>;
/** The `type` values a peer may send. */
export type PeerMessageType = PeerMessage["type"];

/** Error codes of the `error` reply and of HTTP error bodies. */
export type ErrorCode =
  | "BadJson"
  | "BadMessage"
  | "TooLarge"
  | "Unauthenticated"
  | "AlreadyAuthenticated"
  | "Forbidden"
  | "NotRegistered"
  | "KindMismatch"
  | "ChallengeUnknown"
  | "ChallengeExpired"
  | "BadSignature"
  | "RateLimited"
  | "PeerOffline"
  | "UnknownSession"
  | "NotAuthorized"
  | "NoRelay"
  | "RelayIdTaken"
  | "PairingCodeInvalid"
  | "NotFound"
  | "Internal";

/** Messages the gateway sends on `/v1/ws`. */
export type GatewayMessage =
  | { type: "ready"; peer: string; kind: PeerKind; instance: string; ref?: string }
  | { type: "pong"; ref?: string }
  | { type: "ack"; of: PeerMessageType; ref?: string }
  | { type: "connecting"; sessionId: string; to: string; ref?: string }
  | { type: "connect"; sessionId: string; from: string; fromName: string; needRelay: boolean }
  | {
    type: "offer";
    sessionId: string;
    from: string;
    candidates: Candidate[];
    ufrag?: string;
    pwd?: string;
  }
  | {
    type: "answer";
    sessionId: string;
    from: string;
    candidates: Candidate[];
    ufrag?: string;
    pwd?: string;
  }
  | {
    type: "lease";
    sessionId: string;
    relayId: string;
    relayAddress: string;
    token: string;
    expiresAt: string;
    bandwidthBps: number;
  }
  | { type: "outcome"; sessionId: string; from: string; result: "direct" | "relay" | "failed" }
  | { type: "error"; code: ErrorCode; message: string; ref?: string };

/** Result of {@linkcode parsePeerMessage}. */
export type ParseResult =
  | { ok: true; message: PeerMessage }
  | { ok: false; code: "BadJson" | "BadMessage" | "TooLarge"; message: string; ref?: string };

/**
 * Parses one WebSocket text frame from a peer. Never throws. On failure it
 * still tries to recover a well-formed `ref` so the error reply can carry it.
 */
export function parsePeerMessage(text: unknown): ParseResult {
  if (typeof text !== "string") {
    return { ok: false, code: "BadMessage", message: "frames must be JSON text" };
  }
  // Length in UTF-16 units bounds the UTF-8 length by 3x; check the cheap one first.
  if (
    text.length > MAX_MESSAGE_BYTES || new TextEncoder().encode(text).length > MAX_MESSAGE_BYTES
  ) {
    return {
      ok: false,
      code: "TooLarge",
      message: `messages are at most ${MAX_MESSAGE_BYTES} bytes`,
    };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { ok: false, code: "BadJson", message: "not JSON" };
  }
  const parsed = v.safeParse(PeerMessageSchema, json);
  if (parsed.success) return { ok: true, message: parsed.output };
  const issue = parsed.issues[0];
  const path = issue.path?.map((p) => String(p.key)).join(".") ?? "";
  return {
    ok: false,
    code: "BadMessage",
    message: path ? `${path}: ${issue.message}` : issue.message,
    ref: refOf(json),
  };
}

function refOf(json: unknown): string | undefined {
  if (json === null || typeof json !== "object" || Array.isArray(json)) return undefined;
  const ref = (json as Record<string, unknown>).ref;
  return v.is(IdSchema, ref) ? ref : undefined;
}

/** Validates an HTTP JSON body; returns the typed value or a message. */
export function parseBody<S extends v.GenericSchema>(
  schema: S,
  json: unknown,
): { ok: true; value: v.InferOutput<S> } | { ok: false; message: string } {
  const parsed = v.safeParse(schema, json);
  if (parsed.success) return { ok: true, value: parsed.output };
  const issue = parsed.issues[0];
  const path = issue.path?.map((p) => String(p.key)).join(".") ?? "";
  return { ok: false, message: path ? `${path}: ${issue.message}` : issue.message };
}
