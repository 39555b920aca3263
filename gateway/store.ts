/**
 * The gateway's Deno KV layout and the operations on it. Every key starts
 * with `"gw"` so the gateway can share a KV with other programs. The layout
 * is listed in docs/SIGNALING.md ("KV key layout").
 *
 * @module
 */
import type { PeerKind } from "./schema.ts";

/** A registered identity. */
export interface IdentityRecord {
  publicKey: string;
  name: string;
  kind: PeerKind;
  registeredAt: number;
}

/** A pending challenge. */
export interface ChallengeRecord {
  publicKey: string;
  purpose: "login" | "register";
  expiresAt: number;
}

/** Where a connected peer's socket lives. */
export interface PresenceRecord {
  instance: string;
  conn: string;
  kind: PeerKind;
  name: string;
  since: number;
}

/** A signaling session between a client and a host. */
export interface SessionRecord {
  sessionId: string;
  host: string;
  client: string;
  createdAt: number;
  outcome?: { result: "direct" | "relay" | "failed"; by: string; at: number };
}

/** A relay's last heartbeat. */
export interface RelayRecord {
  relayId: string;
  owner: string;
  address: string;
  load: number;
  capacityBps: number;
  seenAt: number;
}

/** A pending pairing code. */
export interface PairingRecord {
  hostKey: string;
  expiresAt: number;
}

/** One authorisation of a client by a host. */
export interface AllowRecord {
  via: "allow" | "pairing";
  at: number;
}

/** A message parked for another instance. */
export interface InboxRecord {
  to: string;
  msg: unknown;
}

/** Key builders: the whole layout in one place. */
export const keys = {
  identity: (k: string): Deno.KvKey => ["gw", "identity", k],
  challenge: (nonce: string): Deno.KvKey => ["gw", "challenge", nonce],
  allow: (host: string, client: string): Deno.KvKey => ["gw", "allow", host, client],
  allowPrefix: (host: string): Deno.KvKey => ["gw", "allow", host],
  reach: (client: string, host: string): Deno.KvKey => ["gw", "reach", client, host],
  reachPrefix: (client: string): Deno.KvKey => ["gw", "reach", client],
  pairing: (code: string): Deno.KvKey => ["gw", "pair", code],
  presence: (k: string): Deno.KvKey => ["gw", "presence", k],
  session: (sid: string): Deno.KvKey => ["gw", "session", sid],
  relay: (id: string): Deno.KvKey => ["gw", "relay", id],
  relayPrefix: ["gw", "relay"] as Deno.KvKey,
  inboxPrefix: (instance: string): Deno.KvKey => ["gw", "inbox", instance],
  bell: (instance: string): Deno.KvKey => ["gw", "bell", instance],
};

/** Typed access to the layout above. */
export class GatewayStore {
  /** The KV handle. */
  readonly kv: Deno.Kv;

  /** @param kv an open Deno KV. */
  constructor(kv: Deno.Kv) {
    this.kv = kv;
  }

  /** One identity, or null. */
  getIdentity(k: string): Promise<Deno.KvEntryMaybe<IdentityRecord>> {
    return this.kv.get<IdentityRecord>(keys.identity(k));
  }

  /** Stores a fresh challenge (expireIn cleans up; expiresAt is what counts). */
  async putChallenge(nonce: string, rec: ChallengeRecord, ttlMs: number): Promise<void> {
    await this.kv.set(keys.challenge(nonce), rec, { expireIn: ttlMs });
  }

  /** Reads a challenge without consuming it. */
  getChallenge(nonce: string): Promise<Deno.KvEntryMaybe<ChallengeRecord>> {
    return this.kv.get<ChallengeRecord>(keys.challenge(nonce));
  }

  /** Presence of a peer, or null. */
  getPresence(k: string): Promise<Deno.KvEntryMaybe<PresenceRecord>> {
    return this.kv.get<PresenceRecord>(keys.presence(k));
  }

  /** A session, or null. */
  getSession(sid: string): Promise<Deno.KvEntryMaybe<SessionRecord>> {
    return this.kv.get<SessionRecord>(keys.session(sid));
  }

  /** Whether `host` has authorised `client`. */
  async isAllowed(host: string, client: string): Promise<boolean> {
    return (await this.kv.get(keys.allow(host, client))).versionstamp !== null;
  }

  /** Records that `host` authorises `client` (both directions of the index). */
  async allow(host: string, client: string, rec: AllowRecord): Promise<void> {
    await this.kv.atomic().set(keys.allow(host, client), rec).set(keys.reach(client, host), rec)
      .commit();
  }

  /** Withdraws an authorisation. */
  async disallow(host: string, client: string): Promise<void> {
    await this.kv.atomic().delete(keys.allow(host, client)).delete(keys.reach(client, host))
      .commit();
  }

  /** Clients `host` authorises. */
  async listAllowed(host: string): Promise<{ clientKey: string; via: string; at: number }[]> {
    const out = [];
    for await (const e of this.kv.list<AllowRecord>({ prefix: keys.allowPrefix(host) })) {
      out.push({ clientKey: String(e.key[3]), via: e.value.via, at: e.value.at });
    }
    return out;
  }

  /** Hosts that authorise `client`. */
  async listReachable(client: string): Promise<string[]> {
    const out: string[] = [];
    for await (const e of this.kv.list({ prefix: keys.reachPrefix(client) }, { limit: 1000 })) {
      out.push(String(e.key[3]));
    }
    return out;
  }

  /** Relays whose heartbeat is younger than `ttlMs` at `nowMs`. */
  async liveRelays(nowMs: number, ttlMs: number): Promise<RelayRecord[]> {
    const out: RelayRecord[] = [];
    for await (const e of this.kv.list<RelayRecord>({ prefix: keys.relayPrefix })) {
      if (nowMs - e.value.seenAt <= ttlMs) out.push(e.value);
    }
    return out;
  }
}

/** Every entry of a KV as `[key, value, versionstamp]` JSON lines: for tests comparing snapshots. */
export async function snapshotKv(kv: Deno.Kv): Promise<string> {
  const lines: string[] = [];
  for await (const e of kv.list({ prefix: [] })) {
    lines.push(
      JSON.stringify(
        [e.key, e.value, e.versionstamp],
        (_k, val) =>
          typeof val === "bigint" ? `${val}n` : val instanceof Deno.KvU64 ? `${val.value}u64` : val,
      ),
    );
  }
  return lines.join("\n");
}
