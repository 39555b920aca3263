/**
 * The gateway as a request handler: {@linkcode createGateway} builds a Hono
 * app over a Deno KV and returns `{ fetch, close }`, which `Deno.serve`
 * (gateway/main.ts) or Deno Deploy (gateway/deploy.ts) runs unchanged. All
 * shared state is in KV; the only in-memory state is this instance's sockets,
 * its rate-limit buckets and its metrics. Protocol: docs/SIGNALING.md.
 *
 * @module
 */
import { Hono } from "hono";
import type { Context } from "hono";
import {
  issueLease,
  type LeasePublicKey,
  leasePublicKeyFromBytes,
  type LeaseSecretKey,
} from "../crypto/lease.ts";
import {
  challengeMessage,
  issueSessionToken,
  randomB64url,
  type SessionClaims,
  verifyEd25519,
  verifySessionToken,
} from "./auth.ts";
import { Hub } from "./hub.ts";
import { importV4Keys } from "./paseto.ts";
import { GatewayMetrics } from "./metrics.ts";
import { type BucketSpec, RateLimiter } from "./rate_limit.ts";
import {
  AllowRequestSchema,
  ChallengeRequestSchema,
  type ErrorCode,
  type GatewayMessage,
  HeartbeatRequestSchema,
  LoginRequestSchema,
  parseBody,
  parsePeerMessage,
  PeerKeySchema,
  type PeerKind,
  type PeerMessage,
  RedeemRequestSchema,
  RegisterRequestSchema,
} from "./schema.ts";
import {
  GatewayStore,
  type IdentityRecord,
  keys,
  type PairingRecord,
  type PresenceRecord,
  type RelayRecord,
  type SessionRecord,
} from "./store.ts";
import * as v from "valibot";

/** Options of {@linkcode createGateway}. Times in milliseconds. */
export interface GatewayOptions {
  /** The shared store. The gateway does not close it. */
  kv: Deno.Kv;
  /** The gateway's Ed25519 key (PASERK `k4.secret.`): signs leases and session tokens. */
  leaseSecretKey: LeaseSecretKey;
  /** Issuer id in leases and tokens; also bound into signed challenges. Default "wavry-gateway". */
  gatewayId?: string;
  /** Clock (ms since the epoch); tests move it. Default `Date.now`. */
  now?: () => number;
  /** Challenge lifetime. Default 60 s. */
  challengeTtlMs?: number;
  /** Session token lifetime. Default 15 min. */
  tokenTtlMs?: number;
  /** A relay silent this long is dropped. Default 15 s. */
  relayTtlMs?: number;
  /** Lease lifetime. Default 10 min. */
  leaseTtlMs?: number;
  /** Bandwidth a lease grants (capped by the relay's capacity). Default 25 Mbit/s. */
  leaseBandwidthBps?: number;
  /** Pairing code lifetime. Default 5 min. */
  pairingTtlMs?: number;
  /** Presence refresh period; the record expires after 3 periods. Default 15 s. */
  presenceRefreshMs?: number;
  /** Inbox poll period for messages from other instances. Default 25 ms. */
  inboxPollMs?: number;
  /** Time a new socket has to authenticate. Default 10 s. */
  authTimeoutMs?: number;
  /** Login limits (challenge, register, login, pairing redemption). */
  loginLimit?: { perAddress?: BucketSpec; perIdentity?: BucketSpec };
  /** Signaling limits (every WebSocket frame). */
  signalingLimit?: { perAddress?: BucketSpec; perIdentity?: BucketSpec };
  /** Take the source address from the first `X-Forwarded-For` hop (only behind a trusted proxy). */
  trustForwardedFor?: boolean;
}

/** A running gateway. */
export interface Gateway {
  /** The request handler (`Deno.serve(gateway.fetch)`). */
  fetch: (req: Request, info?: Deno.ServeHandlerInfo) => Response | Promise<Response>;
  /** Closes every socket, stops the inbox loop; the KV stays open. */
  close: () => Promise<void>;
  /** This instance's id (presence records name it). */
  instance: string;
  /** The key relays verify leases with. */
  leasePublicKey: LeasePublicKey;
  /** The metrics registry. */
  metrics: GatewayMetrics;
}

const DEFAULT_LOGIN_ADDRESS: BucketSpec = { burst: 30, perSecond: 5 };
const DEFAULT_LOGIN_IDENTITY: BucketSpec = { burst: 10, perSecond: 1 };
const DEFAULT_SIGNALING_ADDRESS: BucketSpec = { burst: 400, perSecond: 200 };
const DEFAULT_SIGNALING_IDENTITY: BucketSpec = { burst: 200, perSecond: 100 };
const SESSION_TTL_MS = 24 * 3600_000;
const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

class HttpError extends Error {
  constructor(readonly status: number, readonly code: ErrorCode, message: string) {
    super(message);
  }
}

function publicKeyOfSecret(secret: LeaseSecretKey): LeasePublicKey {
  const body = secret.slice("k4.secret.".length).replace(/-/g, "+").replace(/_/g, "/");
  const bin = atob(body + "==".slice(0, (4 - body.length % 4) % 4));
  if (!secret.startsWith("k4.secret.") || bin.length !== 64) {
    throw new TypeError("leaseSecretKey must be a k4.secret. PASERK key");
  }
  const pub = new Uint8Array(32);
  for (let i = 0; i < 32; i++) pub[i] = bin.charCodeAt(32 + i);
  return leasePublicKeyFromBytes(pub);
}

function pairingCode(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  let s = "";
  for (const b of bytes) s += CROCKFORD[b & 31];
  return `${s.slice(0, 4)}-${s.slice(4)}`;
}

/** Normalises a code as typed by a person: upper case, dash inserted, I/L→1, O→0. */
function normaliseCode(code: string): string {
  const c = code.toUpperCase().replace(/-/g, "").replace(/[IL]/g, "1").replace(/O/g, "0");
  return `${c.slice(0, 4)}-${c.slice(4)}`;
}

/**
 * Builds a gateway over `opts.kv`. Starts this instance's inbox loop; call
 * `close()` to stop it.
 */
export function createGateway(opts: GatewayOptions): Gateway {
  const now = opts.now ?? Date.now;
  const gatewayId = opts.gatewayId ?? "wavry-gateway";
  const challengeTtl = opts.challengeTtlMs ?? 60_000;
  const tokenTtl = opts.tokenTtlMs ?? 15 * 60_000;
  const relayTtl = opts.relayTtlMs ?? 15_000;
  const leaseTtl = opts.leaseTtlMs ?? 10 * 60_000;
  const leaseBw = opts.leaseBandwidthBps ?? 25_000_000;
  const pairingTtl = opts.pairingTtlMs ?? 5 * 60_000;
  const presenceRefresh = opts.presenceRefreshMs ?? 15_000;
  const authTimeout = opts.authTimeoutMs ?? 10_000;
  const secret = opts.leaseSecretKey;
  const leasePublicKey = publicKeyOfSecret(secret);
  // Imported once per instance; handlers await the same promise.
  const tokenKeys = importV4Keys(secret);
  const instance = randomB64url(9);
  const store = new GatewayStore(opts.kv);
  const kv = opts.kv;
  const metrics = new GatewayMetrics(async () => (await store.liveRelays(now(), relayTtl)).length);
  const hub = new Hub(store, metrics, instance, opts.inboxPollMs ?? 25);
  const limits = {
    loginAddr: new RateLimiter(opts.loginLimit?.perAddress ?? DEFAULT_LOGIN_ADDRESS),
    loginId: new RateLimiter(opts.loginLimit?.perIdentity ?? DEFAULT_LOGIN_IDENTITY),
    sigAddr: new RateLimiter(opts.signalingLimit?.perAddress ?? DEFAULT_SIGNALING_ADDRESS),
    sigId: new RateLimiter(opts.signalingLimit?.perIdentity ?? DEFAULT_SIGNALING_IDENTITY),
  };
  const sockets = new Set<WebSocket>();
  let closed = false;

  const refuse = (kind: string) => metrics.refusals.inc({ kind });

  // ---------- HTTP helpers ----------
  type Ctx = Context<{ Bindings: Deno.ServeHandlerInfo | undefined }>;
  const sourceOf = (c: Ctx): string => {
    if (opts.trustForwardedFor) {
      const xff = c.req.header("x-forwarded-for")?.split(",")[0]?.trim();
      if (xff) return xff;
    }
    const addr = c.env?.remoteAddr as Deno.NetAddr | undefined;
    return addr?.hostname ?? "unknown";
  };
  const fail = (status: number, code: ErrorCode, message: string): never => {
    throw new HttpError(status, code, message);
  };
  const readJson = async <S extends v.GenericSchema>(c: Ctx, schema: S) => {
    // Refuse a declared-too-large body before reading it.
    if (Number(c.req.header("content-length") ?? 0) > 16 * 1024) {
      fail(413, "TooLarge", "body too large");
    }
    const text = await c.req.text();
    if (text.length > 16 * 1024) fail(413, "TooLarge", "body too large");
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      refuse("bad_request");
      return fail(400, "BadJson", "body is not JSON");
    }
    const r = parseBody(schema, json);
    if (!r.ok) {
      refuse("bad_request");
      return fail(400, "BadMessage", r.message);
    }
    return r.value as v.InferOutput<S>;
  };
  /** Takes a login token from the address bucket (`identity` undefined) or the identity's. */
  const loginLimit = (c: Ctx, identity?: string) => {
    if (identity === undefined && !limits.loginAddr.take(sourceOf(c), now())) {
      refuse("rate_limit_login_address");
      fail(429, "RateLimited", "too many login requests from this address");
    }
    if (identity !== undefined && !limits.loginId.take(identity, now())) {
      refuse("rate_limit_login_identity");
      fail(429, "RateLimited", "too many login requests for this identity");
    }
  };
  const authed = async (c: Ctx, kind?: PeerKind): Promise<SessionClaims> => {
    const h = c.req.header("authorization") ?? "";
    const claims = h.startsWith("Bearer ")
      ? await verifySessionToken(h.slice(7), await tokenKeys, gatewayId, now())
      : undefined;
    if (!claims) {
      refuse("bad_token");
      return fail(401, "Unauthenticated", "missing, invalid or expired session token");
    }
    if (kind !== undefined && claims.kind !== kind) {
      refuse("wrong_kind");
      fail(403, "Forbidden", `only ${kind} identities may do this`);
    }
    return claims;
  };

  /** Checks a signed challenge, then consumes it atomically with `extra` mutations. */
  const consumeChallenge = async (
    purpose: "login" | "register",
    body: { publicKey: string; nonce: string; signature: string; kind?: PeerKind; name?: string },
    extra: (op: Deno.AtomicOperation) => Deno.AtomicOperation,
  ) => {
    const ch = await store.getChallenge(body.nonce);
    if (!ch.value || ch.value.publicKey !== body.publicKey || ch.value.purpose !== purpose) {
      refuse("challenge_unknown");
      fail(401, "ChallengeUnknown", "no such challenge (used, expired or never issued)");
    }
    if (ch.value!.expiresAt <= now()) {
      refuse("challenge_expired");
      fail(401, "ChallengeExpired", "challenge expired; request a new one");
    }
    const msg = challengeMessage({ purpose, gatewayId, ...body });
    if (!(await verifyEd25519(body.publicKey, msg, body.signature))) {
      refuse("bad_signature");
      fail(401, "BadSignature", "signature does not verify under this key");
    }
    const res = await extra(kv.atomic().check(ch).delete(keys.challenge(body.nonce))).commit();
    if (!res.ok) {
      refuse("challenge_unknown");
      fail(401, "ChallengeUnknown", "challenge already used");
    }
  };

  // ---------- the app ----------
  const app = new Hono<{ Bindings: Deno.ServeHandlerInfo | undefined }>();

  app.onError((err, c) => {
    if (err instanceof HttpError) {
      metrics.errors.inc({ code: err.code });
      return c.json({ type: "error", code: err.code, message: err.message }, err.status as 400);
    }
    metrics.errors.inc({ code: "Internal" });
    console.error("gateway: internal error", err);
    return c.json({ type: "error", code: "Internal", message: "internal error" }, 500);
  });
  app.notFound((c) => {
    metrics.errors.inc({ code: "NotFound" });
    return c.json({ type: "error", code: "NotFound", message: "no such endpoint" }, 404);
  });

  app.get("/health", async (c) => {
    await kv.get(["gw", "health"]); // proves the KV answers
    return c.json({ status: "ok", instance, gatewayId });
  });

  app.get("/metrics", async (c) => {
    return c.text(await metrics.registry.metrics(), 200, {
      "content-type": metrics.registry.contentType,
    });
  });

  app.get("/v1/lease-key", (c) => c.json({ publicKey: leasePublicKey, issuer: gatewayId }));

  app.post("/v1/challenge", async (c) => {
    loginLimit(c);
    const body = await readJson(c, ChallengeRequestSchema);
    loginLimit(c, body.publicKey);
    const nonce = randomB64url(32);
    const expiresAt = now() + challengeTtl;
    await store.putChallenge(
      nonce,
      { publicKey: body.publicKey, purpose: body.purpose, expiresAt },
      challengeTtl,
    );
    return c.json({ nonce, expiresAt: new Date(expiresAt).toISOString(), gatewayId });
  });

  app.post("/v1/register", async (c) => {
    loginLimit(c);
    const body = await readJson(c, RegisterRequestSchema);
    loginLimit(c, body.publicKey);
    const existing = await store.getIdentity(body.publicKey);
    if (existing.value && existing.value.kind !== body.kind) {
      refuse("kind_mismatch");
      fail(409, "KindMismatch", `this key is registered as ${existing.value.kind}`);
    }
    const rec: IdentityRecord = {
      publicKey: body.publicKey,
      name: body.name,
      kind: body.kind,
      registeredAt: existing.value?.registeredAt ?? now(),
    };
    await consumeChallenge(
      "register",
      body,
      (op) => op.check(existing).set(keys.identity(body.publicKey), rec),
    );
    metrics.registrations.inc({ kind: body.kind });
    return c.json({ publicKey: rec.publicKey, name: rec.name, kind: rec.kind }, 201);
  });

  app.post("/v1/login", async (c) => {
    loginLimit(c);
    const body = await readJson(c, LoginRequestSchema);
    loginLimit(c, body.publicKey);
    const id = await store.getIdentity(body.publicKey);
    if (!id.value) {
      refuse("not_registered");
      fail(404, "NotRegistered", "register this key first");
    }
    await consumeChallenge("login", body, (op) => op.check(id));
    const expiresAt = now() + tokenTtl;
    const token = await issueSessionToken(await tokenKeys, gatewayId, {
      peer: body.publicKey,
      kind: id.value!.kind,
      expiresAt,
    }, now());
    metrics.logins.inc({ kind: id.value!.kind });
    return c.json({
      token,
      expiresAt: new Date(expiresAt).toISOString(),
      kind: id.value!.kind,
      name: id.value!.name,
    });
  });

  app.get("/v1/hosts", async (c) => {
    const me = await authed(c);
    const hosts = [];
    for (const hostKey of await store.listReachable(me.peer)) {
      const [id, p] = await Promise.all([store.getIdentity(hostKey), store.getPresence(hostKey)]);
      if (!id.value) continue;
      hosts.push({ publicKey: hostKey, name: id.value.name, online: p.value !== null });
    }
    return c.json({ hosts });
  });

  app.get("/v1/hosts/allow", async (c) => {
    const me = await authed(c, "host");
    return c.json({ clients: await store.listAllowed(me.peer) });
  });

  app.post("/v1/hosts/allow", async (c) => {
    const me = await authed(c, "host");
    const body = await readJson(c, AllowRequestSchema);
    if (!(await store.getIdentity(body.clientKey)).value) {
      fail(404, "NotRegistered", "that client key is not registered");
    }
    await store.allow(me.peer, body.clientKey, { via: "allow", at: now() });
    return c.json({ clientKey: body.clientKey }, 201);
  });

  app.delete("/v1/hosts/allow/:clientKey", async (c) => {
    const me = await authed(c, "host");
    const clientKey = c.req.param("clientKey");
    if (!v.is(PeerKeySchema, clientKey)) fail(400, "BadMessage", "not a key");
    await store.disallow(me.peer, clientKey);
    return c.body(null, 204);
  });

  app.post("/v1/pairing/code", async (c) => {
    const me = await authed(c, "host");
    loginLimit(c);
    loginLimit(c, me.peer);
    const code = pairingCode();
    const rec: PairingRecord = { hostKey: me.peer, expiresAt: now() + pairingTtl };
    await kv.set(keys.pairing(code), rec, { expireIn: pairingTtl });
    return c.json({ code, expiresAt: new Date(rec.expiresAt).toISOString() }, 201);
  });

  app.post("/v1/pairing/redeem", async (c) => {
    const me = await authed(c);
    loginLimit(c);
    loginLimit(c, me.peer);
    const body = await readJson(c, RedeemRequestSchema);
    const code = normaliseCode(body.code);
    const entry = await kv.get<PairingRecord>(keys.pairing(code));
    if (!entry.value || entry.value.expiresAt <= now() || entry.value.hostKey === me.peer) {
      refuse("pairing_code_invalid");
      fail(404, "PairingCodeInvalid", "unknown, used or expired pairing code");
    }
    const host = entry.value!.hostKey;
    const rec = { via: "pairing" as const, at: now() };
    const res = await kv.atomic().check(entry).delete(keys.pairing(code))
      .set(keys.allow(host, me.peer), rec).set(keys.reach(me.peer, host), rec).commit();
    if (!res.ok) {
      refuse("pairing_code_invalid");
      fail(404, "PairingCodeInvalid", "pairing code already used");
    }
    const hostId = await store.getIdentity(host);
    return c.json({ hostKey: host, hostName: hostId.value?.name ?? "" });
  });

  app.post("/v1/relays/heartbeat", async (c) => {
    const me = await authed(c, "relay");
    const hb = await readJson(c, HeartbeatRequestSchema);
    const existing = await kv.get<RelayRecord>(keys.relay(hb.relayId));
    if (existing.value && existing.value.owner !== me.peer) {
      refuse("relay_id_taken");
      fail(409, "RelayIdTaken", "this relay id belongs to another identity");
    }
    const rec: RelayRecord = { ...hb, owner: me.peer, seenAt: now() };
    const res = await kv.atomic().check(existing).set(keys.relay(hb.relayId), rec, {
      expireIn: relayTtl,
    }).commit();
    if (!res.ok) fail(409, "RelayIdTaken", "concurrent heartbeat for this relay id; retry");
    return c.json({ ttlMs: relayTtl, leaseKey: leasePublicKey, issuer: gatewayId });
  });

  app.get("/v1/relays", async (c) => {
    await authed(c);
    const relays = (await store.liveRelays(now(), relayTtl)).map((r) => ({
      relayId: r.relayId,
      address: r.address,
      load: r.load,
      capacityBps: r.capacityBps,
      seenAt: new Date(r.seenAt).toISOString(),
    }));
    return c.json({ relays });
  });

  app.get("/v1/ws", (c) => {
    if (closed) fail(503, "Internal", "shutting down");
    if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
      fail(426, "BadMessage", "expected a WebSocket upgrade");
    }
    // The source address is unreadable once the request is upgraded: take it first.
    const source = sourceOf(c);
    const { socket, response } = Deno.upgradeWebSocket(c.req.raw, { idleTimeout: 60 });
    acceptSocket(socket, source);
    return response;
  });

  // ---------- signaling ----------
  // Who belongs to a session never changes, so each instance keeps the members
  // it has seen: offers and answers then need no KV read (on a busy SQLite file
  // a read can queue behind write commits). Bounded; oldest dropped first.
  const sessionCache = new Map<string, SessionRecord>();
  const rememberSession = (s: SessionRecord) => {
    if (sessionCache.size >= 50_000) sessionCache.delete(sessionCache.keys().next().value!);
    sessionCache.set(s.sessionId, {
      sessionId: s.sessionId,
      host: s.host,
      client: s.client,
      createdAt: s.createdAt,
    });
  };
  const sessionMembers = async (sid: string): Promise<SessionRecord | undefined> => {
    let s = sessionCache.get(sid);
    if (!s) {
      const e = await store.getSession(sid);
      if (!e.value) return undefined;
      rememberSession(e.value);
      s = e.value;
    }
    return now() - s.createdAt < SESSION_TTL_MS ? s : undefined;
  };

  const leaseFor = async (session: SessionRecord): Promise<GatewayMessage | undefined> => {
    const relays = await store.liveRelays(now(), relayTtl);
    if (relays.length === 0) return undefined;
    relays.sort((a, b) => a.load - b.load || b.capacityBps - a.capacityBps);
    const r = relays[0];
    const t = now();
    const bandwidthBps = Math.min(leaseBw, r.capacityBps);
    const expiresAt = new Date(t + leaseTtl);
    const token = issueLease(secret, {
      sessionId: session.sessionId,
      peers: [session.host, session.client],
      relayId: r.relayId,
      notBefore: new Date(t),
      expiresAt,
      bandwidthBps,
      issuer: gatewayId,
    });
    metrics.leases.inc();
    return {
      type: "lease",
      sessionId: session.sessionId,
      relayId: r.relayId,
      relayAddress: r.address,
      token,
      expiresAt: expiresAt.toISOString(),
      bandwidthBps,
    };
  };

  interface ConnState {
    id: string;
    source: string;
    peer?: SessionClaims;
    name?: string;
  }

  const acceptSocket = (socket: WebSocket, source: string) => {
    const st: ConnState = { id: randomB64url(9), source };
    sockets.add(socket);
    const send = (m: GatewayMessage) => {
      if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(m));
    };
    const error = (code: ErrorCode, message: string, ref?: string) => {
      metrics.errors.inc({ code });
      send(
        ref === undefined
          ? { type: "error", code, message }
          : { type: "error", code, message, ref },
      );
    };
    const authTimer = setTimeout(() => {
      if (!st.peer) {
        refuse("auth_timeout");
        socket.close(4001, "authenticate first");
      }
    }, authTimeout);
    // Frames of one socket are handled one at a time, in order.
    let chain = Promise.resolve();
    socket.onmessage = (ev) => {
      chain = chain.then(() => onFrame(ev.data)).catch((e) => {
        console.error("gateway: signaling handler failed", e);
        error("Internal", "internal error");
      });
    };
    socket.onclose = () => {
      clearTimeout(authTimer);
      sockets.delete(socket);
      chain = chain.then(() => onClose());
    };
    socket.onerror = () => {};

    const onClose = async () => {
      if (!st.peer) return;
      metrics.connectedPeers.dec({ kind: st.peer.kind });
      if (hub.remove(st.peer.peer, st.id) && !closed) {
        const p = await store.getPresence(st.peer.peer).catch(() => undefined);
        if (p?.value && p.value.conn === st.id) {
          ownPresence.delete(st.peer.peer);
          await kv.atomic().check(p).delete(keys.presence(st.peer.peer)).commit().catch(() => {});
        }
      }
    };

    const onFrame = async (data: unknown) => {
      const t = now();
      if (!limits.sigAddr.take(st.source, t)) {
        refuse("rate_limit_signaling_address");
        return error("RateLimited", "too many messages from this address");
      }
      if (st.peer && !limits.sigId.take(st.peer.peer, t)) {
        refuse("rate_limit_signaling_identity");
        return error("RateLimited", "too many messages from this identity");
      }
      const parsed = parsePeerMessage(data);
      if (!parsed.ok) {
        refuse("bad_message");
        return error(parsed.code, parsed.message, parsed.ref);
      }
      const msg = parsed.message;
      if (msg.type === "ping") {
        metrics.signaling.inc({ type: "ping" });
        return send(msg.ref ? { type: "pong", ref: msg.ref } : { type: "pong" });
      }
      if (msg.type === "auth") return await onAuth(msg);
      if (!st.peer) {
        refuse("unauthenticated");
        return error("Unauthenticated", "send auth first", msg.ref);
      }
      await onSignal(st.peer, msg);
    };

    const onAuth = async (msg: Extract<PeerMessage, { type: "auth" }>) => {
      if (st.peer) return error("AlreadyAuthenticated", "already authenticated", msg.ref);
      const claims = await verifySessionToken(msg.token, await tokenKeys, gatewayId, now());
      if (!claims) {
        refuse("bad_token");
        return error("Unauthenticated", "invalid or expired session token", msg.ref);
      }
      const id = await store.getIdentity(claims.peer);
      if (!id.value) {
        refuse("not_registered");
        return error("NotRegistered", "identity no longer registered", msg.ref);
      }
      st.peer = claims;
      st.name = id.value.name;
      clearTimeout(authTimer);
      hub.add(claims.peer, { id: st.id, socket });
      metrics.connectedPeers.inc({ kind: claims.kind });
      await writePresence(claims.peer, st.id, claims.kind, id.value.name, now());
      metrics.signaling.inc({ type: "auth" });
      send({ type: "ready", peer: claims.peer, kind: claims.kind, instance, ref: msg.ref });
    };

    const ack = (msg: PeerMessage) => {
      if (msg.ref) send({ type: "ack", of: msg.type, ref: msg.ref });
    };

    const sessionOf = async (me: string, sid: string, ref?: string) => {
      const s = await sessionMembers(sid);
      if (!s || (s.host !== me && s.client !== me)) {
        refuse("unknown_session");
        error("UnknownSession", "no such session for this identity", ref);
        return undefined;
      }
      return { value: s };
    };

    const onSignal = async (
      me: SessionClaims,
      msg: Exclude<PeerMessage, { type: "auth" | "ping" }>,
    ) => {
      switch (msg.type) {
        case "connect": {
          const target = await store.getIdentity(msg.to);
          if (!target.value || target.value.kind !== "host") {
            refuse("not_authorized");
            return error("NotAuthorized", "no such host", msg.ref);
          }
          if (!(await store.isAllowed(msg.to, me.peer))) {
            refuse("not_authorized");
            return error("NotAuthorized", "this host has not authorised you", msg.ref);
          }
          if (!(await store.getPresence(msg.to)).value) {
            refuse("peer_offline");
            return error("PeerOffline", "the host is not connected", msg.ref);
          }
          const session: SessionRecord = {
            sessionId: randomB64url(12),
            host: msg.to,
            client: me.peer,
            createdAt: now(),
          };
          await kv.set(keys.session(session.sessionId), session, { expireIn: SESSION_TTL_MS });
          rememberSession(session);
          metrics.signaling.inc({ type: "connect" });
          const needRelay = msg.needRelay === true;
          await hub.deliver(msg.to, {
            type: "connect",
            sessionId: session.sessionId,
            from: me.peer,
            fromName: st.name ?? "",
            needRelay,
          }, me.peer);
          send({ type: "connecting", sessionId: session.sessionId, to: msg.to, ref: msg.ref });
          if (needRelay) await sendLease(session, me.peer, msg.ref);
          return;
        }
        case "offer":
        case "answer": {
          const s = await sessionOf(me.peer, msg.sessionId, msg.ref);
          if (!s) return;
          const other = s.value.host === me.peer ? s.value.client : s.value.host;
          const r = await hub.deliver(other, {
            type: msg.type,
            sessionId: msg.sessionId,
            from: me.peer,
            candidates: msg.candidates,
            // ICE credentials ride with the candidates (one offer each way, docs/CONNECT.md).
            ...(msg.ufrag === undefined ? {} : { ufrag: msg.ufrag }),
            ...(msg.pwd === undefined ? {} : { pwd: msg.pwd }),
          }, me.peer);
          if (r === "offline") {
            refuse("peer_offline");
            return error("PeerOffline", "the other peer is not connected", msg.ref);
          }
          metrics.signaling.inc({ type: msg.type });
          return ack(msg);
        }
        case "relay_request": {
          const s = await sessionOf(me.peer, msg.sessionId, msg.ref);
          if (!s) return;
          metrics.signaling.inc({ type: msg.type });
          return await sendLease(s.value, me.peer, msg.ref);
        }
        case "outcome": {
          const s = await sessionOf(me.peer, msg.sessionId, msg.ref);
          if (!s) return;
          const other = s.value.host === me.peer ? s.value.client : s.value.host;
          const next: SessionRecord = {
            ...s.value,
            outcome: { result: msg.result, by: me.peer, at: now() },
          };
          await kv.set(keys.session(msg.sessionId), next, {
            expireIn: Math.max(1, s.value.createdAt + SESSION_TTL_MS - now()),
          });
          metrics.signaling.inc({ type: msg.type });
          metrics.outcomes.inc({ result: msg.result });
          await hub.deliver(other, {
            type: "outcome",
            sessionId: msg.sessionId,
            from: me.peer,
            result: msg.result,
          }, me.peer);
          return ack(msg);
        }
      }
    };

    const sendLease = async (session: SessionRecord, me: string, ref?: string) => {
      const lease = await leaseFor(session);
      if (!lease) {
        refuse("no_relay");
        return error("NoRelay", "no live relay", ref);
      }
      const other = session.host === me ? session.client : session.host;
      send(lease);
      await hub.deliver(other, lease, me);
    };
  };

  // Presence records this instance wrote, with their versionstamps: a refresh
  // rewrites them only if nobody else (a reconnect elsewhere) has since.
  const ownPresence = new Map<string, { rec: PresenceRecord; vs: string }>();
  const writePresence = async (
    peer: string,
    conn: string,
    kind: PeerKind,
    name: string,
    since: number,
  ) => {
    const rec: PresenceRecord = { instance, conn, kind, name, since };
    const r = await kv.set(keys.presence(peer), rec, { expireIn: presenceRefresh * 3 });
    ownPresence.set(peer, { rec, vs: r.versionstamp });
  };

  // Refresh presence of local peers so it outlives the KV expiry while connected:
  // batches of 100 checked sets per commit (5,000 peers cost 50 commits, not 10,000
  // operations), never two refreshes at once.
  let refreshing = false;
  const refreshPresence = async () => {
    if (refreshing || closed) return;
    refreshing = true;
    try {
      const local = new Set(hub.localPeers());
      for (const peer of ownPresence.keys()) if (!local.has(peer)) ownPresence.delete(peer);
      const entries = [...ownPresence.entries()];
      for (let i = 0; i < entries.length && !closed; i += 100) {
        const batch = entries.slice(i, i + 100);
        const op = kv.atomic();
        for (const [peer, { rec, vs }] of batch) {
          op.check({ key: keys.presence(peer), versionstamp: vs })
            .set(keys.presence(peer), rec, { expireIn: presenceRefresh * 3 });
        }
        const r = await op.commit();
        if (r.ok) {
          for (const [, o] of batch) o.vs = r.versionstamp;
          continue;
        }
        // Some record changed hands: redo this batch one by one, dropping those that did.
        for (const [peer, o] of batch) {
          const one = await kv.atomic().check({ key: keys.presence(peer), versionstamp: o.vs })
            .set(keys.presence(peer), o.rec, { expireIn: presenceRefresh * 3 }).commit();
          if (one.ok) o.vs = one.versionstamp;
          else ownPresence.delete(peer);
        }
      }
    } catch {
      // KV closing or a transient error: the next period retries.
    } finally {
      refreshing = false;
    }
  };
  const presenceTimer = setInterval(refreshPresence, presenceRefresh);

  hub.start();

  return {
    fetch: (req, info) => app.fetch(req, info),
    instance,
    leasePublicKey,
    metrics,
    close: async () => {
      if (closed) return;
      closed = true;
      clearInterval(presenceTimer);
      // Taken before the sockets close: their close handlers forget them.
      const peers = hub.localPeers();
      for (const s of sockets) {
        try {
          s.close(1001, "gateway shutting down");
        } catch { /* already closing */ }
      }
      // Remove our presence records so peers are not routed to a dead instance.
      for (const peer of peers) {
        const p = await store.getPresence(peer).catch(() => undefined);
        if (p?.value?.instance === instance) {
          await kv.atomic().check(p).delete(keys.presence(peer)).commit().catch(() => {});
        }
      }
      await hub.stop();
    },
  };
}
