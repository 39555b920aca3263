/**
 * A UDP socket opened through the native shim and shared by the workers of
 * one process: one worker sends (synchronous `sendmmsg`), another blocks in
 * {@linkcode NativeUdpSocket.receiveBatch} (`poll` + `recvmmsg` off the JS
 * thread), both on ONE socket and so one port, which NAT traversal needs.
 *
 * The opener passes {@linkcode NativeUdpSocket.fd} to a worker (postMessage),
 * which calls {@linkcode NativeUdpSocket.attach}. Only the opener's `close()`
 * closes the socket: it wakes every blocked reader in every worker at once;
 * the descriptor itself is freed when the last attachment is released, so an
 * fd number is never reused under a worker that still holds it.
 *
 * @module
 */
import { ErrorBuffer, NativeError, NativeStatus } from "../ffi/errors.ts";
import { ADDRESS_RECORD_BYTES, UDP_MAX_BATCH, udpNative } from "../ffi/udp.ts";
import { addressKey, type PeerAddress } from "./udp_socket.ts";

export { addressKey, formatAddress } from "./udp_socket.ts";

/** Requested socket buffer sizes: 4 MiB each way (the kernel may grant less; see the socket). */
export const DEFAULT_SOCKET_BUFFER_BYTES = 4 * 1024 * 1024;

/** Default slot size of a receive batch: larger than any RIFT datagram, so none is truncated. */
export const DEFAULT_SLOT_BYTES = 2048;

/** Options of {@linkcode NativeUdpSocket.open}. */
export interface NativeUdpOpenOptions {
  /** Numeric IPv4/IPv6 address to bind ("0.0.0.0", "::" for dual stack, "127.0.0.1", ...). */
  hostname: string;
  /** Port to bind; 0 lets the kernel pick. */
  port: number;
  /** SO_RCVBUF to ask for (default 4 MiB). */
  receiveBufferBytes?: number;
  /** SO_SNDBUF to ask for (default 4 MiB). */
  sendBufferBytes?: number;
}

/** Why the kernel refused a send. */
export type SendErrorKind = "again" | "refused" | "unreachable" | "tooBig" | "other";

/** Counters of one {@linkcode NativeUdpSocket} object (per worker, not per descriptor). */
export interface NativeUdpCounters {
  /** Datagrams the kernel accepted. */
  datagramsSent: number;
  /** Bytes the kernel accepted. */
  bytesSent: number;
  /** Sends refused, by kind: `again` = EAGAIN/ENOBUFS (buffer full), `refused` = ECONNREFUSED
   * (an earlier datagram drew ICMP port unreachable), `unreachable` = ENETUNREACH/EHOSTUNREACH,
   * `tooBig` = EMSGSIZE, `other` = anything else (last errno in `lastSendErrno`). */
  sendErrors: Record<SendErrorKind, number>;
  /** errno of the last refused send (0 if none). */
  lastSendErrno: number;
  /** Datagrams received. */
  datagramsReceived: number;
  /** Bytes received (as stored, i.e. at most the slot size each). */
  bytesReceived: number;
  /** Datagrams larger than their slot, cut to the slot. */
  truncated: number;
  /** Receive calls that returned because of `wake()`. */
  wakeups: number;
  /** Receive calls that failed with an I/O error. */
  receiveErrors: number;
}

const ERRNO_KIND: Record<number, SendErrorKind> = {
  11: "again", // EAGAIN
  105: "again", // ENOBUFS
  111: "refused", // ECONNREFUSED
  101: "unreachable", // ENETUNREACH
  113: "unreachable", // EHOSTUNREACH
  90: "tooBig", // EMSGSIZE
};

/** The send-error kind of a Linux errno. */
export function sendErrorKind(errno: number): SendErrorKind {
  return ERRNO_KIND[errno] ?? "other";
}

function emptyCounters(): NativeUdpCounters {
  return {
    datagramsSent: 0,
    bytesSent: 0,
    sendErrors: { again: 0, refused: 0, unreachable: 0, tooBig: 0, other: 0 },
    lastSendErrno: 0,
    datagramsReceived: 0,
    bytesReceived: 0,
    truncated: 0,
    wakeups: 0,
    receiveErrors: 0,
  };
}

// ---------------------------------------------------------------------------
// Address records and their cache

function hex4(n: number): string {
  return n.toString(16);
}

/** Formats a 20-byte address record's address the way Deno does (RFC 5952 for IPv6). */
function hostnameOfRecord(rec: Uint8Array, at: number): string {
  if (rec[at] === 4) {
    return `${rec[at + 4]}.${rec[at + 5]}.${rec[at + 6]}.${rec[at + 7]}`;
  }
  const groups: number[] = [];
  for (let g = 0; g < 8; g++) groups.push((rec[at + 4 + 2 * g] << 8) | rec[at + 5 + 2 * g]);
  // Longest run of two or more zero groups becomes "::" (the first one on a tie).
  let bestStart = -1, bestLen = 1;
  for (let g = 0; g < 8;) {
    if (groups[g] !== 0) {
      g++;
      continue;
    }
    let end = g;
    while (end < 8 && groups[end] === 0) end++;
    if (end - g > bestLen) {
      bestStart = g;
      bestLen = end - g;
    }
    g = end;
  }
  if (bestStart < 0) return groups.map(hex4).join(":");
  const head = groups.slice(0, bestStart).map(hex4).join(":");
  const tail = groups.slice(bestStart + bestLen).map(hex4).join(":");
  return `${head}::${tail}`;
}

/** Decodes the address record at byte `at` of `records` (family 4 or 6, port, address). */
export function addressFromRecord(records: Uint8Array, at = 0): PeerAddress {
  return {
    hostname: hostnameOfRecord(records, at),
    port: records[at + 2] | (records[at + 3] << 8),
  };
}

interface CachedAddress {
  readonly words: Int32Array; // the record as 5 int32
  readonly address: PeerAddress;
  readonly key: string;
}

/**
 * The last few source addresses seen, keyed by their raw record, so that a
 * steady peer's address is decoded once, not once per datagram. Lookups
 * compare five int32 words.
 */
export class AddressCache {
  readonly #entries: CachedAddress[] = [];
  readonly #size: number;
  /** Decodes (misses). */
  misses = 0;

  /** Keeps up to `size` addresses (most recently used first). */
  constructor(size = 8) {
    this.#size = size;
  }

  /** The cached address for the 5-word record at `words[at..at+5]`. */
  lookup(words: Int32Array, at: number): CachedAddress {
    const entries = this.#entries;
    for (let i = 0; i < entries.length; i++) {
      const w = entries[i].words;
      if (
        w[0] === words[at] && w[1] === words[at + 1] && w[2] === words[at + 2] &&
        w[3] === words[at + 3] && w[4] === words[at + 4]
      ) {
        if (i > 0) entries.unshift(entries.splice(i, 1)[0]);
        return entries[0];
      }
    }
    this.misses++;
    const own = words.slice(at, at + 5);
    const address = Object.freeze(addressFromRecord(new Uint8Array(own.buffer)));
    const entry = { words: own, address, key: addressKey(address) };
    entries.unshift(entry);
    if (entries.length > this.#size) entries.pop();
    return entry;
  }
}

/** The cache {@linkcode ReceivedBatch} uses by default (one per worker). */
export const sourceAddressCache: AddressCache = new AddressCache();

// ---------------------------------------------------------------------------
// ReceivedBatch

const HEADER_BYTES = 16;
const FLAG_WOKEN = 1;
const FLAG_CLOSED = 2;

function layout(capacity: number, slotBytes: number) {
  const times = HEADER_BYTES;
  const lens = times + 8 * capacity;
  const addrs = lens + 4 * capacity;
  const data = addrs + ADDRESS_RECORD_BYTES * capacity;
  return { times, lens, addrs, data, total: data + capacity * slotBytes };
}

/** Bytes of the ArrayBuffer a batch of `capacity` slots of `slotBytes` needs. */
export function receivedBatchBytes(capacity: number, slotBytes: number): number {
  return layout(capacity, slotBytes).total;
}

/**
 * Datagrams from one receive call, all in ONE ArrayBuffer (header, receive
 * times, lengths, source records, then `capacity` fixed slots), so the batch
 * moves to another worker by transferring {@linkcode ReceivedBatch.buffer}
 * and is rebuilt there with {@linkcode ReceivedBatch.fromBuffer}.
 */
export class ReceivedBatch {
  /** The one buffer holding everything; transfer it to hand the batch on. */
  readonly buffer: ArrayBuffer;
  /** Datagrams in the batch. */
  readonly count: number;
  /** Slots in the buffer. */
  readonly capacity: number;
  /** Bytes per slot; a longer datagram was truncated to this. */
  readonly slotBytes: number;
  /** The call returned because of `wake()` (count may be 0). */
  readonly woken: boolean;
  /** The socket is closed: no more batches will come. */
  readonly closed: boolean;
  readonly #times: Float64Array;
  readonly #lens: Int32Array;
  readonly #records: Uint8Array<ArrayBuffer>;
  readonly #words: Int32Array;
  readonly #dataOffset: number;
  readonly #cache: AddressCache;
  #lastIndex = -1;
  #last: CachedAddress | undefined;

  private constructor(buffer: ArrayBuffer, cache: AddressCache) {
    const header = new Int32Array(buffer, 0, 4);
    this.buffer = buffer;
    this.count = header[0];
    this.capacity = header[1];
    this.slotBytes = header[2];
    this.woken = (header[3] & FLAG_WOKEN) !== 0;
    this.closed = (header[3] & FLAG_CLOSED) !== 0;
    const at = layout(this.capacity, this.slotBytes);
    if (
      this.capacity < 0 || this.slotBytes <= 0 || this.count < 0 ||
      this.count > this.capacity || at.total > buffer.byteLength
    ) {
      throw new NativeError(
        "udp.batch",
        NativeStatus.InvalidArgument,
        "not a ReceivedBatch buffer",
      );
    }
    this.#times = new Float64Array(buffer, at.times, this.capacity);
    this.#lens = new Int32Array(buffer, at.lens, this.capacity);
    this.#records = new Uint8Array(buffer, at.addrs, ADDRESS_RECORD_BYTES * this.capacity);
    this.#words = new Int32Array(buffer, at.addrs, (ADDRESS_RECORD_BYTES / 4) * this.capacity);
    this.#dataOffset = at.data;
    this.#cache = cache;
  }

  /** Rebuilds a batch from its buffer (e.g. after a transfer to another worker). */
  static fromBuffer(buffer: ArrayBuffer, cache: AddressCache = sourceAddressCache): ReceivedBatch {
    return new ReceivedBatch(buffer, cache);
  }

  /** @internal Writes a header into `buffer` and wraps it. */
  static fill(
    buffer: ArrayBuffer,
    count: number,
    capacity: number,
    slotBytes: number,
    flags: { woken?: boolean; closed?: boolean },
  ): ReceivedBatch {
    const header = new Int32Array(buffer, 0, 4);
    header[0] = count;
    header[1] = capacity;
    header[2] = slotBytes;
    header[3] = (flags.woken ? FLAG_WOKEN : 0) | (flags.closed ? FLAG_CLOSED : 0);
    return new ReceivedBatch(buffer, sourceAddressCache);
  }

  /**
   * @internal Rewrites `batch`'s header and fields in place for a new receive
   * into the same buffer (the sync path's reuse: no allocation per call).
   */
  static refill(
    batch: ReceivedBatch,
    count: number,
    flags: { woken: boolean; closed: boolean },
  ): ReceivedBatch {
    const header = new Int32Array(batch.buffer, 0, 4);
    header[0] = count;
    header[3] = (flags.woken ? FLAG_WOKEN : 0) | (flags.closed ? FLAG_CLOSED : 0);
    const fields = batch as { count: number; woken: boolean; closed: boolean };
    fields.count = count;
    fields.woken = flags.woken;
    fields.closed = flags.closed;
    batch.#lastIndex = -1;
    batch.#last = undefined;
    return batch;
  }

  #check(i: number): void {
    if (!(i >= 0 && i < this.count)) throw new RangeError(`datagram ${i} of ${this.count}`);
  }

  /** The bytes of datagram `i` (a view into the buffer; at most `slotBytes`). */
  datagram(i: number): Uint8Array<ArrayBuffer> {
    this.#check(i);
    return new Uint8Array(
      this.buffer,
      this.#dataOffset + i * this.slotBytes,
      Math.max(0, Math.min(this.#lens[i], this.slotBytes)),
    );
  }

  /** Where datagram `i` starts in {@linkcode buffer} (slots are `slotBytes` apart). */
  offsetOf(i: number): number {
    this.#check(i);
    return this.#dataOffset + i * this.slotBytes;
  }

  /** The stored length of datagram `i` (its wire length, cut to the slot). */
  storedLength(i: number): number {
    this.#check(i);
    return Math.max(0, Math.min(this.#lens[i], this.slotBytes));
  }

  /** The length datagram `i` had on the wire (more than `slotBytes` if truncated). */
  wireLength(i: number): number {
    this.#check(i);
    return this.#lens[i];
  }

  /** Whether datagram `i` was longer than its slot and was cut. */
  truncated(i: number): boolean {
    this.#check(i);
    return this.#lens[i] > this.slotBytes;
  }

  /** When datagram `i` arrived, in CLOCK_MONOTONIC microseconds (`monotonicMicros()`'s clock). */
  receivedAtMicros(i: number): number {
    this.#check(i);
    return this.#times[i];
  }

  #source(i: number): CachedAddress {
    this.#check(i);
    if (i !== this.#lastIndex) {
      this.#last = this.#cache.lookup(this.#words, i * (ADDRESS_RECORD_BYTES / 4));
      this.#lastIndex = i;
    }
    return this.#last!;
  }

  /** Where datagram `i` came from (a cached, frozen object: equal sources give the same object). */
  source(i: number): PeerAddress {
    return this.#source(i).address;
  }

  /** `addressKey(source(i))`, cached: the key sessions are demultiplexed by. */
  sourceKey(i: number): string {
    return this.#source(i).key;
  }

  /** The raw 20-byte source record of datagram `i` (a view). */
  sourceRecord(i: number): Uint8Array<ArrayBuffer> {
    this.#check(i);
    return this.#records.subarray(i * ADDRESS_RECORD_BYTES, (i + 1) * ADDRESS_RECORD_BYTES);
  }

  /** Whether datagrams `i` and `j` came from the same address and port (five int32 compares). */
  sameSource(i: number, j: number): boolean {
    this.#check(i);
    this.#check(j);
    const w = this.#words, a = i * 5, b = j * 5;
    return w[a] === w[b] && w[a + 1] === w[b + 1] && w[a + 2] === w[b + 2] &&
      w[a + 3] === w[b + 3] && w[a + 4] === w[b + 4];
  }
}

// ---------------------------------------------------------------------------
// NativeUdpSocket

/** Options of {@linkcode NativeUdpSocket.receiveBatch}. */
export interface ReceiveBatchOptions {
  /** Slot size (default {@linkcode DEFAULT_SLOT_BYTES}). */
  slotBytes?: number;
  /** A buffer to fill instead of allocating one (e.g. a previous batch's), if large enough. */
  reuse?: ArrayBuffer;
}

function info(out: Int32Array) {
  return {
    fd: out[0],
    port: out[1],
    family: out[2] as 4 | 6,
    receiveBufferBytes: out[3],
    sendBufferBytes: out[4],
  };
}

/** One UDP socket shared across the workers of this process. */
export class NativeUdpSocket {
  /** The file descriptor: pass it to another worker for {@linkcode NativeUdpSocket.attach}. */
  readonly fd: number;
  /** Whether this object opened the socket (and so closes it for everyone). */
  readonly owner: boolean;
  /** The bound address (hostname as given to `open`; in a worker that attached, the wildcard). */
  readonly localAddr: PeerAddress;
  /** 4 or 6. A socket of family 6 bound to "::" also sends to and receives from IPv4. */
  readonly family: 4 | 6;
  /** SO_RCVBUF as the kernel reports it (Linux reports twice what it grants for data). */
  readonly receiveBufferBytes: number;
  /** SO_SNDBUF as the kernel reports it. */
  readonly sendBufferBytes: number;
  /** Counters of this object (live). */
  readonly counters: NativeUdpCounters = emptyCounters();

  readonly #error = new ErrorBuffer();
  readonly #recvError = new ErrorBuffer();
  readonly #errno = new Int32Array(1);
  readonly #woken = new Int32Array(1);
  #released = false;
  #closing = false;
  #inFlight: Promise<unknown> | undefined;
  #pending = 0; // async receives not yet settled
  /** receiveBatchSync's last batch and the views of its buffer, reused when it is passed back. */
  #syncLast: {
    batch: ReceivedBatch;
    max: number;
    slotBytes: number;
    data: Uint8Array<ArrayBuffer>;
    lens: Int32Array<ArrayBuffer>;
    records: Uint8Array<ArrayBuffer>;
    times: Float64Array<ArrayBuffer>;
  } | undefined;
  // Destination records, parsed once per address.
  #lastTo: PeerAddress | undefined;
  #lastToHost = "";
  #lastToPort = -1;
  #lastRecord = new Uint8Array(ADDRESS_RECORD_BYTES);
  readonly #records = new Map<string, Uint8Array<ArrayBuffer>>();
  // Staging for sendBatch.
  #staging = new Uint8Array(64 * 1500);
  readonly #lens = new Int32Array(UDP_MAX_BATCH);

  private constructor(owner: boolean, hostname: string, out: Int32Array) {
    const i = info(out);
    this.owner = owner;
    this.fd = i.fd;
    this.family = i.family;
    this.receiveBufferBytes = i.receiveBufferBytes;
    this.sendBufferBytes = i.sendBufferBytes;
    this.localAddr = Object.freeze({ hostname, port: i.port });
  }

  /** Opens and binds a nonblocking UDP socket. Throws a {@linkcode NativeError} on failure. */
  static open(options: NativeUdpOpenOptions): NativeUdpSocket {
    const { hostname, port } = options;
    const error = new ErrorBuffer();
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new NativeError("udp.open", NativeStatus.InvalidArgument, `bad port ${port}`);
    }
    const out = new Int32Array(5);
    error.check(
      "udp.open",
      udpNative().wavry_udp_open(
        new TextEncoder().encode(hostname + "\0"),
        port,
        options.receiveBufferBytes ?? DEFAULT_SOCKET_BUFFER_BYTES,
        options.sendBufferBytes ?? DEFAULT_SOCKET_BUFFER_BYTES,
        out,
        error.reset(),
        error.bytes.length,
      ),
    );
    return new NativeUdpSocket(true, hostname, out);
  }

  /**
   * Uses the socket another worker opened (its {@linkcode NativeUdpSocket.fd}).
   * Throws a Closed {@linkcode NativeError} if that socket is closed already.
   * Call `close()` (or `detach()`) when done; it leaves the socket open for the others.
   */
  static attach(fd: number): NativeUdpSocket {
    const error = new ErrorBuffer();
    const out = new Int32Array(5);
    error.check(
      "udp.attach",
      udpNative().wavry_udp_attach(fd, out, error.reset(), error.bytes.length),
    );
    return new NativeUdpSocket(false, out[2] === 4 ? "0.0.0.0" : "::", out);
  }

  /** Whether this object can no longer be used (closed, detached, or the opener closed). */
  get closed(): boolean {
    return this.#closing;
  }

  #record(to: PeerAddress): Uint8Array {
    if (to === this.#lastTo && to.hostname === this.#lastToHost && to.port === this.#lastToPort) {
      return this.#lastRecord;
    }
    const key = addressKey(to);
    let record = this.#records.get(key);
    if (record === undefined) {
      record = new Uint8Array(ADDRESS_RECORD_BYTES);
      this.#error.check(
        "udp.send",
        udpNative().wavry_udp_parse_address(
          new TextEncoder().encode(to.hostname + "\0"),
          to.port,
          record,
          this.#error.reset(),
          this.#error.bytes.length,
        ),
      );
      if (this.#records.size >= 256) this.#records.clear();
      this.#records.set(key, record);
    }
    this.#lastTo = to;
    this.#lastToHost = to.hostname;
    this.#lastToPort = to.port;
    this.#lastRecord = record;
    return record;
  }

  #refused(errno: number): void {
    this.counters.sendErrors[sendErrorKind(errno)]++;
    this.counters.lastSendErrno = errno;
  }

  #closedError(operation: string): NativeError {
    return new NativeError(operation, NativeStatus.Closed, "the UDP socket is closed");
  }

  /**
   * Sends one datagram, synchronously. Returns false (and counts the errno
   * kind) when the kernel refused it. Throws for a bad address, or once closed.
   */
  send(datagram: Uint8Array, to: PeerAddress): boolean {
    if (this.#closing) throw this.#closedError("udp.send");
    const status = udpNative().wavry_udp_send(
      this.fd,
      datagram as Uint8Array<ArrayBuffer>,
      datagram.byteLength,
      this.#record(to) as Uint8Array<ArrayBuffer>,
      this.#errno,
      this.#error.reset(),
      this.#error.bytes.length,
    );
    if (status === 1) {
      this.counters.datagramsSent++;
      this.counters.bytesSent += datagram.byteLength;
      return true;
    }
    if (status === 0) {
      this.#refused(this.#errno[0]);
      return false;
    }
    this.#error.check("udp.send", status);
    return false;
  }

  /**
   * Sends datagrams to one destination with sendmmsg (copying them into one
   * staging buffer first). Returns how many the kernel took, in order; it
   * stops at the first refusal, which is counted by errno kind.
   */
  sendBatch(datagrams: readonly Uint8Array[], to: PeerAddress): number {
    if (this.#closing) throw this.#closedError("udp.send");
    const record = this.#record(to) as Uint8Array<ArrayBuffer>;
    let sent = 0;
    while (sent < datagrams.length) {
      const n = Math.min(datagrams.length - sent, UDP_MAX_BATCH);
      let bytes = 0;
      for (let i = 0; i < n; i++) bytes += datagrams[sent + i].byteLength;
      if (bytes > this.#staging.length) this.#staging = new Uint8Array(bytes);
      let at = 0;
      for (let i = 0; i < n; i++) {
        const d = datagrams[sent + i];
        this.#staging.set(d, at);
        this.#lens[i] = d.byteLength;
        at += d.byteLength;
      }
      const status = udpNative().wavry_udp_send_batch(
        this.fd,
        this.#staging as Uint8Array<ArrayBuffer>,
        this.#lens,
        n,
        record,
        this.#errno,
        this.#error.reset(),
        this.#error.bytes.length,
      );
      this.#error.check("udp.sendBatch", status);
      for (let i = 0; i < status; i++) this.counters.bytesSent += this.#lens[i];
      this.counters.datagramsSent += status;
      sent += status;
      if (status < n) {
        this.#refused(this.#errno[0]);
        break;
      }
    }
    return sent;
  }

  /**
   * Sends `count` datagrams that already lie back to back in `bytes`
   * (datagram i is `lengths[i]` bytes) to one destination with sendmmsg,
   * without copying them (e.g. a `MediaSender` transmit batch). Returns how
   * many the kernel took, in order; it stops at the first refusal, which is
   * counted by errno kind.
   */
  sendPacked(bytes: Uint8Array, lengths: Int32Array, count: number, to: PeerAddress): number {
    if (this.#closing) throw this.#closedError("udp.send");
    if (!(count >= 0 && count <= lengths.length)) {
      throw new RangeError(`sendPacked: count ${count} beyond ${lengths.length} lengths`);
    }
    let total = 0;
    for (let i = 0; i < count; i++) total += lengths[i];
    if (total > bytes.length) throw new RangeError("sendPacked: lengths run past the bytes");
    const record = this.#record(to) as Uint8Array<ArrayBuffer>;
    let sent = 0;
    let at = 0;
    while (sent < count) {
      const n = Math.min(count - sent, UDP_MAX_BATCH);
      const status = udpNative().wavry_udp_send_batch(
        this.fd,
        (at === 0 ? bytes : bytes.subarray(at)) as Uint8Array<ArrayBuffer>,
        (sent === 0 ? lengths : lengths.subarray(sent)) as Int32Array<ArrayBuffer>,
        n,
        record,
        this.#errno,
        this.#error.reset(),
        this.#error.bytes.length,
      );
      this.#error.check("udp.sendPacked", status);
      for (let i = 0; i < status; i++) {
        this.counters.bytesSent += lengths[sent + i];
        at += lengths[sent + i];
      }
      this.counters.datagramsSent += status;
      sent += status;
      if (status < n) {
        this.#refused(this.#errno[0]);
        break;
      }
    }
    return sent;
  }

  /**
   * Waits up to `timeoutMs` (-1: no limit) for datagrams, then returns up to
   * `max` of them in one buffer. Resolves early with `woken` after `wake()`,
   * and with `closed` (and no datagrams) once the socket is closed, in this
   * worker or by the opener in any worker. The wait runs on a native thread,
   * so this worker's event loop stays free. Calls on one object run one at a
   * time. Rejects only for bad arguments or an I/O error (counted).
   */
  receiveBatch(
    max: number,
    timeoutMs: number,
    options: ReceiveBatchOptions = {},
  ): Promise<ReceivedBatch> {
    const slotBytes = options.slotBytes ?? DEFAULT_SLOT_BYTES;
    const bad = this.#badReceiveArguments(max, slotBytes);
    if (bad !== undefined) return Promise.reject(bad);
    const previous = this.#inFlight ?? Promise.resolve();
    const run = previous.catch(() => {}).then(() =>
      this.#receive(max, timeoutMs, slotBytes, options)
    );
    this.#inFlight = run;
    this.#pending++;
    const settled = () => void this.#pending--;
    run.then(settled, settled);
    return run;
  }

  async #receive(
    max: number,
    timeoutMs: number,
    slotBytes: number,
    options: ReceiveBatchOptions,
  ): Promise<ReceivedBatch> {
    const call = this.#receiveCall(max, timeoutMs, slotBytes, options);
    if (call instanceof ReceivedBatch) return call;
    const status = await udpNative().wavry_udp_recv_batch(...call.args);
    return this.#received(call.buffer, status, max, slotBytes);
  }

  /**
   * {@linkcode NativeUdpSocket.receiveBatch}, but the wait in `poll()` blocks
   * THIS thread (up to `timeoutMs`; -1: no limit, until data, `wake()` or
   * close): no timer or message of this worker runs meanwhile. For a
   * dedicated worker that does nothing else (the relay's forwarder): it saves
   * the hand-off to and back from Deno's blocking pool, i.e. one thread
   * wake-up per receive. Timeout 0 takes what is queued without waiting.
   * Do not call it while a `receiveBatch` of this object is in flight.
   * Given the previous call's batch buffer as `reuse` (same `max` and slot
   * size), it refills and returns that same {@linkcode ReceivedBatch} object
   * and allocates nothing: a hot loop then makes no garbage per call.
   * Throws for bad arguments or an I/O error (counted).
   */
  receiveBatchSync(
    max: number,
    timeoutMs: number,
    options: ReceiveBatchOptions = {},
  ): ReceivedBatch {
    const slotBytes = options.slotBytes ?? DEFAULT_SLOT_BYTES;
    const bad = this.#badReceiveArguments(max, slotBytes);
    if (bad !== undefined) throw bad;
    if (this.#pending > 0) {
      throw new NativeError(
        "udp.receive",
        NativeStatus.InvalidArgument,
        "receiveBatchSync while an async receive may be in flight",
      );
    }
    const last = this.#syncLast;
    if (
      last !== undefined && options.reuse === last.batch.buffer && !last.batch.buffer.detached &&
      last.max === max && last.slotBytes === slotBytes && !this.#closing
    ) {
      // The same buffer as last time: same views, same batch object, nothing allocated.
      const status = udpNative().wavry_udp_recv_batch_sync(
        this.fd,
        last.data,
        slotBytes,
        max,
        last.lens,
        last.records,
        last.times,
        timeoutMs < 0 ? -1 : Math.min(Math.ceil(timeoutMs), 2 ** 31 - 1),
        this.#woken,
        this.#recvError.reset(),
        this.#recvError.bytes.length,
      );
      return this.#received(last.batch.buffer, status, max, slotBytes, last.batch);
    }
    const call = this.#receiveCall(max, timeoutMs, slotBytes, options);
    if (call instanceof ReceivedBatch) return call;
    const status = udpNative().wavry_udp_recv_batch_sync(...call.args);
    const batch = this.#received(call.buffer, status, max, slotBytes);
    if (!batch.closed) {
      const [, data, , , lens, records, times] = call.args;
      this.#syncLast = { batch, max, slotBytes, data, lens, records, times };
    }
    return batch;
  }

  #badReceiveArguments(max: number, slotBytes: number): NativeError | undefined {
    if (!Number.isInteger(max) || max < 1 || max > UDP_MAX_BATCH) {
      return new NativeError("udp.receive", NativeStatus.InvalidArgument, `max ${max} not 1..1024`);
    }
    if (!Number.isInteger(slotBytes) || slotBytes < 1 || slotBytes > 65536) {
      return new NativeError(
        "udp.receive",
        NativeStatus.InvalidArgument,
        `slot ${slotBytes} bytes`,
      );
    }
    return undefined;
  }

  /** The buffer and the native call's arguments, or a closed batch when closed already. */
  #receiveCall(max: number, timeoutMs: number, slotBytes: number, options: ReceiveBatchOptions) {
    const at = layout(max, slotBytes);
    const buffer = options.reuse !== undefined && options.reuse.byteLength >= at.total &&
        !options.reuse.detached
      ? options.reuse
      : new ArrayBuffer(at.total);
    if (this.#closing) return ReceivedBatch.fill(buffer, 0, max, slotBytes, { closed: true });
    const timeout = timeoutMs < 0 ? -1 : Math.min(Math.ceil(timeoutMs), 2 ** 31 - 1);
    const args = [
      this.fd,
      new Uint8Array(buffer, at.data, max * slotBytes),
      slotBytes,
      max,
      new Int32Array(buffer, at.lens, max),
      new Uint8Array(buffer, at.addrs, max * ADDRESS_RECORD_BYTES),
      new Float64Array(buffer, at.times, max),
      timeout,
      this.#woken,
      this.#recvError.reset(),
      this.#recvError.bytes.length,
    ] as const;
    return { buffer, args };
  }

  /** Counts what a native receive returned and wraps it. */
  #received(
    buffer: ArrayBuffer,
    status: number,
    max: number,
    slotBytes: number,
    into?: ReceivedBatch,
  ): ReceivedBatch {
    if (status === NativeStatus.Closed) {
      // The opener closed it (maybe in another worker): this object is done too.
      this.#closing = true;
      return ReceivedBatch.fill(buffer, 0, max, slotBytes, { closed: true });
    }
    if (status < 0) {
      this.counters.receiveErrors++;
      this.#recvError.check("udp.receive", status);
    }
    const woken = this.#woken[0] === 1;
    if (woken) this.counters.wakeups++;
    const flags = { woken, closed: this.#closing };
    const batch = into !== undefined
      ? ReceivedBatch.refill(into, status, flags)
      : ReceivedBatch.fill(buffer, status, max, slotBytes, flags);
    for (let i = 0; i < status; i++) {
      const len = batch.wireLength(i);
      if (len > slotBytes) {
        this.counters.truncated++;
        this.counters.bytesReceived += slotBytes;
      } else {
        this.counters.bytesReceived += len;
      }
    }
    this.counters.datagramsReceived += status;
    return batch;
  }

  /** Makes a receive blocked on this socket (in any worker) return now, with `woken`. */
  wake(): void {
    if (this.#closing) return;
    const status = udpNative().wavry_udp_wake(
      this.fd,
      this.#error.reset(),
      this.#error.bytes.length,
    );
    if (status === NativeStatus.Closed) return;
    this.#error.check("udp.wake", status);
  }

  /**
   * The opener: closes the socket for every worker (their receives return
   * `closed`, their sends throw Closed) and releases it once this object's
   * receive in flight has returned. An attached object: same as `detach()`.
   * Idempotent; resolves when this object's hold on the descriptor is gone.
   */
  close(): Promise<void> {
    if (!this.owner) return this.detach();
    if (!this.#closing) {
      this.#closing = true;
      udpNative().wavry_udp_close(this.fd);
    }
    return this.#release();
  }

  /**
   * Stops using the socket from this object (it stays open for the others).
   * A receive of this object in flight is woken first. For the opener, this
   * is `close()`.
   */
  detach(): Promise<void> {
    if (this.owner) return this.close();
    if (!this.#closing) {
      this.#closing = true;
      if (this.#inFlight !== undefined && !this.#released) {
        udpNative().wavry_udp_wake(this.fd, this.#error.reset(), this.#error.bytes.length);
      }
    }
    return this.#release();
  }

  async #release(): Promise<void> {
    await this.#inFlight?.catch(() => {});
    if (this.#released) return;
    this.#released = true;
    udpNative().wavry_udp_release(this.fd);
  }
}
