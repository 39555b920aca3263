/**
 * Glue between ICE (`edge/ice_connect.ts`), the gateway's signaling messages
 * (`gateway/schema.ts`) and the relay binding (`relay/peer_binding.ts`),
 * shared by the host and the client (docs/CONNECT.md).
 *
 * @module
 */
import type { CandidateOffer, SelectedPair } from "../core/ice/mod.ts";
import type { IceOffer } from "./ice_connect.ts";
import type { PeerAddress } from "./udp_socket.ts";

/** A candidate as the gateway carries it (`CandidateSchema` in gateway/schema.ts). */
export interface SignaledCandidate {
  kind: "host" | "srflx" | "relay";
  address: string;
  port: number;
  priority: number;
  foundation: string;
}

/** The ICE part of an `offer` / `answer` message. */
export interface SignaledOffer {
  candidates: SignaledCandidate[];
  ufrag: string;
  pwd: string;
}

/** Which path a session runs on, as the client's stats show it. */
export type PathKind = "host" | "srflx" | "prflx" | "relay" | "direct-address";

/** Every path kind (for a labelled gauge with one series per kind). */
export const PATH_KINDS: readonly PathKind[] = [
  "host",
  "srflx",
  "prflx",
  "relay",
  "direct-address",
];

/** An ICE offer as `offer`/`answer` fields (prflx candidates are never signaled). */
export function offerToSignaling(offer: IceOffer): SignaledOffer {
  const candidates: SignaledCandidate[] = [];
  for (const c of offer.candidates) {
    if (c.type === "prflx") continue;
    candidates.push({
      kind: c.type,
      address: c.ip,
      port: c.port,
      priority: c.priority,
      foundation: c.foundation,
    });
  }
  return { candidates, ufrag: offer.ufrag, pwd: offer.pwd };
}

/**
 * An `offer`/`answer` message's fields as an ICE offer (still untrusted:
 * `IceConnection.setRemote` validates every candidate and the credentials).
 */
export function offerFromSignaling(
  msg: { candidates: SignaledCandidate[]; ufrag?: string; pwd?: string },
): IceOffer {
  return {
    ufrag: msg.ufrag ?? "",
    pwd: msg.pwd ?? "",
    candidates: msg.candidates.map((c): CandidateOffer => ({
      type: c.kind,
      ip: c.address,
      port: c.port,
      priority: c.priority,
      foundation: c.foundation,
    })),
  };
}

/** The path of a selected pair: the type of the peer's candidate the stream goes to. */
export function pathOfPair(pair: SelectedPair): PathKind {
  return pair.relayed ? "relay" : pair.remote.type;
}

/** Parses the gateway's `relayAddress` ("ip:port" or "[v6]:port"). */
export function parseRelayAddress(text: string): PeerAddress | undefined {
  const m = /^\[([0-9A-Fa-f:.]+)\]:(\d{1,5})$/.exec(text) ?? /^([0-9.]+):(\d{1,5})$/.exec(text);
  if (!m) return undefined;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return undefined;
  return { hostname: m[1], port };
}

/** The part of relay/peer_binding.ts's `PeerBinding` this drives (edge/ does not import relay/). */
export interface RelayBindingLike {
  readonly status: { state: string };
  poll(nowMs: number): Uint8Array | undefined;
}

/**
 * Drives a relay `PeerBinding` on some socket until the relay reports
 * both peers bound ("ready") or the binding fails; answers must be handed
 * to `binding.handle` by whoever reads the socket. Resolves with the final
 * state, or `{ state: "aborted" }` when `signal` aborts first.
 */
export async function driveRelayBinding<B extends RelayBindingLike>(
  binding: B,
  send: (datagram: Uint8Array) => boolean,
  signal?: AbortSignal,
): Promise<B["status"] | { state: "aborted" }> {
  for (;;) {
    const status = binding.status;
    if (status.state === "ready" || status.state === "failed") return status;
    if (signal?.aborted) return { state: "aborted" };
    const out = binding.poll(Date.now());
    if (out !== undefined) send(out);
    // The relay's answer arrives through the socket's reader; a short poll keeps this simple.
    await new Promise((r) => setTimeout(r, 20));
  }
}
