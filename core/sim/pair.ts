/**
 * Two RIFT sessions wired over a simulated network, for tests and benchmarks.
 *
 * @module
 */

import { generateIdentity, type IdentityKeyPair } from "../../crypto/identity.ts";
import { Session, type SessionConfig, type SessionEvent } from "../session.ts";
import { Link, type LinkConfig } from "./link.ts";
import { type Middlebox, type SimEndpoint, SimNetwork } from "./network.ts";
import { Rng } from "./rng.ts";

/** A session seen by the simulator, with every event it produced kept in order. */
export class RecordingEndpoint implements SimEndpoint {
  /** Every event the session produced, in order. */
  readonly events: SessionEvent[] = [];
  /** Why each datagram was dropped, in arrival order (undefined = accepted). */
  readonly verdicts: { at: number; datagram: Uint8Array; drop: string | undefined }[] = [];
  readonly #getSession: () => Session;

  /** @param getSession the session to drive (a function so a responder can be swapped in lazily) */
  constructor(getSession: () => Session) {
    this.#getSession = getSession;
  }

  /** The session behind this endpoint. */
  get session(): Session {
    return this.#getSession();
  }

  /** Passes a datagram to the session and records the verdict and new events. */
  handleDatagram(datagram: Uint8Array, now: number): void {
    const drop = this.session.handleDatagram(datagram, now);
    this.verdicts.push({ at: now, datagram, drop });
    this.#drainEvents();
  }

  /** Passes the session's next datagram to the network. */
  pollTransmit(now: number): Uint8Array | undefined {
    return this.session.pollTransmit(now);
  }

  /** The session's next timer. */
  pollTimeout(): number | undefined {
    return this.session.pollTimeout();
  }

  /** Runs the session's timers and records new events. */
  handleTimeout(now: number): void {
    this.session.handleTimeout(now);
    this.#drainEvents();
  }

  /** Events of one type, in order. */
  eventsOf<T extends SessionEvent["type"]>(type: T): Extract<SessionEvent, { type: T }>[] {
    return this.events.filter((e): e is Extract<SessionEvent, { type: T }> => e.type === type);
  }

  #drainEvents(): void {
    for (let e; (e = this.session.pollEvent()) !== undefined;) this.events.push(e);
  }
}

/** How to build a simulated session pair. */
export interface SessionPairOptions {
  /** Seed for links, keys and every random choice. */
  seed: number;
  /** Link from initiator to responder. */
  link: LinkConfig;
  /** Link back (default: same parameters as `link`). */
  linkBack?: LinkConfig;
  /** Optional man in the middle. */
  middlebox?: Middlebox;
  /** Session configuration for both sides. */
  config?: Partial<SessionConfig>;
  /** Which responder identities the initiator accepts (default any). */
  initiatorAccepts?: (peer: Uint8Array) => boolean;
  /** Which initiator identities the responder accepts (default any). */
  responderAccepts?: (peer: Uint8Array) => boolean;
  /** Responder identity to present (default: a generated one). */
  responderIdentity?: IdentityKeyPair;
}

/** A simulated pair: the initiator is side a, the responder side b. */
export interface SessionPair {
  /** The event loop. */
  readonly net: SimNetwork;
  /** Initiator endpoint (side a). */
  readonly initiator: RecordingEndpoint;
  /** Responder endpoint (side b). */
  readonly responder: RecordingEndpoint;
  /** Identities of both sides. */
  readonly identities: { initiator: IdentityKeyPair; responder: IdentityKeyPair };
  /** Link a->b. */
  readonly aToB: Link;
  /** Link b->a. */
  readonly bToA: Link;
}

/** Builds an initiator and a responder session over simulated links, all from one seed. */
export function sessionPair(options: SessionPairOptions): SessionPair {
  const rng = new Rng(options.seed);
  const initiatorRng = rng.fork();
  const responderRng = rng.fork();
  const random = (r: Rng) => (n: number) => r.bytes(n);
  const identities = {
    initiator: generateIdentity(random(initiatorRng)),
    responder: options.responderIdentity ?? generateIdentity(random(responderRng)),
  };
  const initiatorSession = Session.connect({
    identity: identities.initiator,
    random: random(initiatorRng),
    acceptPeer: options.initiatorAccepts,
    config: options.config,
  }, 0);
  const responderSession = Session.accept({
    identity: identities.responder,
    random: random(responderRng),
    acceptPeer: options.responderAccepts,
    config: options.config,
  }, 0);
  const initiator = new RecordingEndpoint(() => initiatorSession);
  const responder = new RecordingEndpoint(() => responderSession);
  const aToB = new Link(options.link, rng.fork());
  const bToA = new Link(options.linkBack ?? options.link, rng.fork());
  const net = new SimNetwork({
    a: initiator,
    b: responder,
    aToB,
    bToA,
    middlebox: options.middlebox,
  });
  return { net, initiator, responder, identities, aToB, bToA };
}
