/**
 * Symbols of the shared UDP socket (`native/udp.c`). The socket is named by
 * its file descriptor, so any worker of the process can use it; see
 * `edge/native_udp.ts` for the TypeScript API and docs/EDGE.md for the model.
 *
 * Addresses cross the ABI as {@linkcode ADDRESS_RECORD_BYTES}-byte records:
 * family (4 or 6) at byte 0, port as a little-endian u16 at bytes 2–3, the
 * address at bytes 4–19 (IPv4 in the first four).
 *
 * @module
 */
import { lazyNative } from "./library.ts";

/** Bytes of one address record. */
export const ADDRESS_RECORD_BYTES = 20;

/** Most datagrams one native send or receive call handles. */
export const UDP_MAX_BATCH = 1024;

/** Symbol table of `native/udp.c`. */
export const udpSymbols = {
  /** (host, port, out record, err, errlen) -> status */
  wavry_udp_parse_address: {
    parameters: ["buffer", "i32", "buffer", "buffer", "i32"],
    result: "i32",
  },
  /** (host, port, rcvbuf, sndbuf, out int32[5]: fd, port, family, rcvbuf, sndbuf, err, errlen) */
  wavry_udp_open: {
    parameters: ["buffer", "i32", "i32", "i32", "buffer", "buffer", "i32"],
    result: "i32",
  },
  /** (fd, out int32[5] as for open, err, errlen) -> status */
  wavry_udp_attach: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  /** (fd, err, errlen) -> status */
  wavry_udp_wake: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  /** (fd): marks closed for every worker and wakes all readers */
  wavry_udp_close: { parameters: ["i32"], result: "void" },
  /** (fd): drops one attachment; the last closes the descriptors */
  wavry_udp_release: { parameters: ["i32"], result: "void" },
  /** (fd, data, len, to record, errno out, err, errlen) -> 1 sent / 0 refused / status */
  wavry_udp_send: {
    parameters: ["i32", "buffer", "i32", "buffer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  /** (fd, packed data, lens, count, to record, errno out, err, errlen) -> datagrams sent / status */
  wavry_udp_send_batch: {
    parameters: ["i32", "buffer", "buffer", "i32", "buffer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  /**
   * (fd, slots, slotSize, max, lens, address records, times f64 µs, timeoutMs, woken out,
   * err, errlen) -> count / status. Blocks in poll(), so it runs off the JS thread.
   */
  wavry_udp_recv_batch: {
    parameters: [
      "i32",
      "buffer",
      "i32",
      "i32",
      "buffer",
      "buffer",
      "buffer",
      "i32",
      "buffer",
      "buffer",
      "i32",
    ],
    result: "i32",
    nonblocking: true,
  },
  /**
   * The same C function, called on the JS thread: it blocks that thread in
   * poll() for up to its timeout (for a dedicated worker whose thread has
   * nothing else to do; saves the hop through Deno's blocking pool).
   */
  wavry_udp_recv_batch_sync: {
    name: "wavry_udp_recv_batch",
    parameters: [
      "i32",
      "buffer",
      "i32",
      "i32",
      "buffer",
      "buffer",
      "buffer",
      "i32",
      "buffer",
      "buffer",
      "i32",
    ],
    result: "i32",
  },
} as const satisfies Deno.ForeignLibraryInterface;

/** The symbols, loading the shim on first use (once per worker). */
export const udpNative: () => Deno.DynamicLibrary<typeof udpSymbols>["symbols"] = lazyNative(
  udpSymbols,
);
