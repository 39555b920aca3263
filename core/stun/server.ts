/**
 * Sans-IO STUN server core: RFC 8489 Binding, plus RFC 5780's NAT behaviour
 * discovery support when the server owns a second IP address and port.
 *
 * The edge owns up to four UDP sockets — primary IP × primary port, primary
 * IP × alternate port, alternate IP × primary port, alternate IP × alternate
 * port — and feeds every datagram to {@linkcode StunServerCore.handle} with
 * the socket it arrived on. The core answers with the bytes, the socket to
 * send them from and the destination; it never touches a socket or a clock.
 *
 * @module
 */

import { sameAddress, type TransportAddress } from "./ip.ts";
import {
  decodeStun,
  encodeStun,
  findAttribute,
  splitMessageType,
  StunAttr,
  type StunAttribute,
  StunClass,
  type StunErrorKind,
  StunMethod,
} from "./message.ts";

/** One of the (up to) four server sockets: which IP and which port it is bound to. */
export interface LocalSocket {
  /** Primary or alternate IP address. */
  ip: "primary" | "alternate";
  /** Primary or alternate port. */
  port: "primary" | "alternate";
}

/** The primary socket: the one every client starts with. */
export const PRIMARY_SOCKET: LocalSocket = Object.freeze({ ip: "primary", port: "primary" });

/** All four sockets of RFC 5780 mode, primary first. */
export const ALL_SOCKETS: readonly LocalSocket[] = Object.freeze([
  PRIMARY_SOCKET,
  Object.freeze({ ip: "primary", port: "alternate" } as const),
  Object.freeze({ ip: "alternate", port: "primary" } as const),
  Object.freeze({ ip: "alternate", port: "alternate" } as const),
]);

/** Configuration of a {@linkcode StunServerCore}. */
export interface StunServerConfig {
  /** The primary IP and port (the address clients are told about). */
  primary: TransportAddress;
  /**
   * The alternate IP and port (RFC 5780 §3): both must differ from the
   * primary's. Without it the server answers Binding only and refuses
   * CHANGE-REQUEST with 420.
   */
  alternate?: TransportAddress;
  /** SOFTWARE attribute value; omitted when empty. Default `"wavry"`. */
  software?: string;
}

/** Why a datagram got no reply. */
export type StunDropReason =
  | StunErrorKind
  /** A Binding indication (keepalive) or another indication: nothing to answer. */
  | "Indication"
  /** A success or error response arrived at the server. */
  | "UnexpectedResponse"
  /** A datagram arrived on a socket this server does not have (an edge bug). */
  | "UnknownSocket";

/** What {@linkcode StunServerCore.handle} decided for one datagram. */
export type StunServerAction =
  | {
    action: "reply";
    /** The encoded response. */
    bytes: Uint8Array;
    /** The socket to send it from. */
    sendFrom: LocalSocket;
    /** Where to send it: the request's source (its port replaced by RESPONSE-PORT). */
    to: TransportAddress;
    /** 0 for a success response, else the ERROR-CODE sent. */
    errorCode: number;
  }
  | {
    action: "drop";
    /** The reason, to count. */
    reason: StunDropReason;
    /** Free-form explanation for logs. */
    detail: string;
  };

/** Running totals kept by the core (the edge exports them as metrics). */
export interface StunServerCounters {
  /** Requests that got a reply (success or error). */
  requests: number;
  /** Success responses sent. */
  successes: number;
  /** Error responses sent, by ERROR-CODE. */
  errors: Record<number, number>;
  /** Success responses sent from a socket other than the arrival one (CHANGE-REQUEST). */
  changed: number;
  /** Datagrams dropped, by reason. */
  drops: Partial<Record<StunDropReason, number>>;
}

function flip(v: "primary" | "alternate"): "primary" | "alternate" {
  return v === "primary" ? "alternate" : "primary";
}

/**
 * The sans-IO STUN server. One instance serves all sockets of one server;
 * it holds no per-client state (Binding is stateless), only counters.
 */
export class StunServerCore {
  readonly #primary: TransportAddress;
  readonly #alternate?: TransportAddress;
  /** SOFTWARE, UTF-8-encoded once (a Raw attribute encodes without re-encoding the text). */
  readonly #software?: StunAttribute;
  /** Counters since construction. */
  readonly counters: StunServerCounters = {
    requests: 0,
    successes: 0,
    errors: {},
    changed: 0,
    drops: {},
  };

  /**
   * @throws {RangeError} if the alternate shares the primary's IP or port,
   * or is of another family (RFC 5780 needs both to differ).
   */
  constructor(config: StunServerConfig) {
    this.#primary = { ...config.primary };
    if (config.alternate) {
      const a = config.alternate;
      if (a.family !== config.primary.family) {
        throw new RangeError("alternate address must be of the primary's family");
      }
      if (
        sameAddress({ ...a, port: 0 }, { ...config.primary, port: 0 }) ||
        a.port === config.primary.port
      ) {
        throw new RangeError("alternate IP and port must both differ from the primary's");
      }
      this.#alternate = { ...a };
    }
    const software = config.software ?? "wavry";
    if (software) {
      const value = new TextEncoder().encode(software);
      if (value.length > 763) throw new RangeError("SOFTWARE longer than 763 bytes");
      this.#software = { kind: "Raw", type: StunAttr.Software, value };
    }
  }

  /** Whether this server runs in RFC 5780 mode (four sockets). */
  get rfc5780(): boolean {
    return this.#alternate !== undefined;
  }

  /** The sockets the edge must open: one, or four in RFC 5780 mode. */
  sockets(): readonly LocalSocket[] {
    return this.#alternate ? ALL_SOCKETS : [PRIMARY_SOCKET];
  }

  /** The transport address of `socket`. */
  addressOf(socket: LocalSocket): TransportAddress {
    const alt = this.#alternate ?? this.#primary;
    return {
      family: this.#primary.family,
      hostname: socket.ip === "primary" ? this.#primary.hostname : alt.hostname,
      port: socket.port === "primary" ? this.#primary.port : alt.port,
    };
  }

  #drop(reason: StunDropReason, detail: string): StunServerAction {
    this.counters.drops[reason] = (this.counters.drops[reason] ?? 0) + 1;
    return { action: "drop", reason, detail };
  }

  /**
   * Handles one datagram that arrived on `arrivedOn` from `from`. Returns
   * the reply to send (success, or an error response for a request it cannot
   * honour) or a drop with its reason. Never throws.
   *
   * - Binding request → success with XOR-MAPPED-ADDRESS (+ in RFC 5780 mode
   *   RESPONSE-ORIGIN and OTHER-ADDRESS), SOFTWARE, FINGERPRINT.
   * - CHANGE-REQUEST → sent from the socket with the IP and/or port changed;
   *   RESPONSE-PORT → sent to that port of the source IP; PADDING → echoed,
   *   capped so the reply is never larger than the request. CHANGE-REQUEST
   *   and RESPONSE-PORT get 420 + UNKNOWN-ATTRIBUTES without an alternate address.
   * - Unknown comprehension-required attributes → 420 + UNKNOWN-ATTRIBUTES.
   * - Malformed attributes in a well-framed request, or an unknown method → 400.
   * - Anything not a well-framed STUN request, a bad FINGERPRINT,
   *   indications and responses → dropped, counted by reason.
   */
  handle(
    bytes: Uint8Array,
    from: TransportAddress,
    arrivedOn: LocalSocket = PRIMARY_SOCKET,
  ): StunServerAction {
    if (
      !this.#alternate && (arrivedOn.ip !== "primary" || arrivedOn.port !== "primary")
    ) {
      return this.#drop("UnknownSocket", "alternate socket without RFC 5780 mode");
    }
    const decoded = decodeStun(bytes);
    if (!decoded.ok) {
      const kind = decoded.error.kind;
      // A request whose framing is sound but whose attributes are not gets a 400
      // (RFC 8489 §6.3); anything that may not be STUN at all is dropped silently.
      if (
        (kind === "BadAttributeLength" || kind === "BadAttributeValue") &&
        (((bytes[0] << 8) | bytes[1]) & 0x0110) === 0
      ) {
        const { method } = splitMessageType((bytes[0] << 8) | bytes[1]);
        return this.#error(method, bytes.slice(8, 20), 400, "Bad Request", from, arrivedOn, []);
      }
      return this.#drop(kind, decoded.error.detail);
    }
    const msg = decoded.value;
    if (msg.messageClass === StunClass.Indication) {
      return this.#drop("Indication", "indications get no response");
    }
    if (msg.messageClass !== StunClass.Request) {
      return this.#drop("UnexpectedResponse", "a response arrived at the server");
    }
    if (msg.method !== StunMethod.Binding) {
      return this.#error(msg.method, msg.transactionId, 400, "Bad Request", from, arrivedOn, []);
    }
    const change = findAttribute(msg, "ChangeRequest");
    const responsePort = findAttribute(msg, "ResponsePort");
    const unknown = [...msg.unknownRequired];
    // Without a second address the RFC 5780 attributes are refused, so a client learns
    // this server cannot run its tests (RFC 5780 §6.1).
    if (change && !this.#alternate) unknown.push(StunAttr.ChangeRequest);
    if (responsePort && !this.#alternate) unknown.push(StunAttr.ResponsePort);
    if (unknown.length > 0) {
      const id = msg.transactionId;
      return this.#error(msg.method, id, 420, "Unknown Attribute", from, arrivedOn, unknown);
    }
    const sendFrom: LocalSocket = {
      ip: change?.changeIp ? flip(arrivedOn.ip) : arrivedOn.ip,
      port: change?.changePort ? flip(arrivedOn.port) : arrivedOn.port,
    };
    const attributes: StunAttribute[] = [{ kind: "XorMappedAddress", address: from }];
    if (this.#alternate) {
      attributes.push(
        { kind: "ResponseOrigin", address: this.addressOf(sendFrom) },
        {
          kind: "OtherAddress",
          address: this.addressOf({ ip: flip(arrivedOn.ip), port: flip(arrivedOn.port) }),
        },
      );
    }
    if (this.#software) attributes.push(this.#software);
    const encode = () =>
      encodeStun({
        method: StunMethod.Binding,
        messageClass: StunClass.SuccessResponse,
        transactionId: msg.transactionId,
        attributes,
      }, { fingerprint: true });
    let reply: Uint8Array;
    try {
      reply = encode();
      // RFC 5780 §7.6: echo PADDING, but never make the reply larger than the request.
      const padding = findAttribute(msg, "Padding");
      const room = (bytes.length - reply.length - 4) & ~3;
      if (padding && room > 0) {
        attributes.push({ kind: "Padding", length: Math.min(padding.length, room) });
        reply = encode();
      }
    } catch (e) {
      // Only reachable if the edge passed a source that is not an IP literal.
      return this.#drop("UnknownSocket", `cannot encode reply: ${(e as Error).message}`);
    }
    const to = responsePort ? { ...from, port: responsePort.port } : from;
    this.counters.requests++;
    this.counters.successes++;
    if (sendFrom.ip !== arrivedOn.ip || sendFrom.port !== arrivedOn.port) this.counters.changed++;
    return { action: "reply", bytes: reply, sendFrom, to, errorCode: 0 };
  }

  #error(
    method: number,
    transactionId: Uint8Array,
    code: number,
    reason: string,
    from: TransportAddress,
    arrivedOn: LocalSocket,
    unknown: number[],
  ): StunServerAction {
    const attributes: StunAttribute[] = [{ kind: "ErrorCode", code, reason }];
    if (unknown.length > 0) attributes.push({ kind: "UnknownAttributes", types: unknown });
    if (this.#software) attributes.push(this.#software);
    const bytes = encodeStun({
      method,
      messageClass: StunClass.ErrorResponse,
      transactionId,
      attributes,
    }, { fingerprint: true });
    this.counters.requests++;
    this.counters.errors[code] = (this.counters.errors[code] ?? 0) + 1;
    return { action: "reply", bytes, sendFrom: { ...arrivedOn }, to: from, errorCode: code };
  }
}
