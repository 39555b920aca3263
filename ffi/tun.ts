/**
 * Symbols of `native/tun.c`: a TUN device joined to a UDP socket by a
 * forwarding thread (an IP-in-UDP tunnel endpoint). `edge/tun_tunnel.ts` is
 * the TypeScript API; tools/linkemu/tcp_tunnel.ts puts it to use.
 *
 * @module
 */
import { lazyNative } from "./library.ts";

/** Counter slots of `wavry_tunnel_stats`, in order. */
export const TUNNEL_COUNTERS = [
  "tunRead",
  "tunBytes",
  "udpSent",
  "sendErrors",
  "udpReceived",
  "tunWritten",
  "tunWrittenBytes",
  "writeErrors",
  "ignored",
  "hellos",
] as const;

/** Symbol table of `native/tun.c`. */
export const tunSymbols = {
  /** (name, out name[16], err, errlen) -> fd / status */
  wavry_tun_open: { parameters: ["buffer", "buffer", "buffer", "i32"], result: "i32" },
  /** (tun fd, out int32[1]: port, out int64 handle, err, errlen) -> status */
  wavry_tunnel_create: {
    parameters: ["i32", "buffer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  /** (handle, IPv4 network order, port, hello, rt priority, err, errlen) -> 1 realtime / 0 / status */
  wavry_tunnel_start: {
    parameters: ["i64", "u32", "i32", "i32", "i32", "buffer", "i32"],
    result: "i32",
  },
  /** (handle, out f64[TUNNEL_COUNTERS.length], err, errlen) -> count / status */
  wavry_tunnel_stats: { parameters: ["i64", "buffer", "buffer", "i32"], result: "i32" },
  /** (handle, err, errlen) -> status; joins the thread, closes the device and socket */
  wavry_tunnel_close: { parameters: ["i64", "buffer", "i32"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The loaded symbols (the library loads on first use). */
export const tunNative: () => Deno.DynamicLibrary<typeof tunSymbols>["symbols"] = lazyNative(
  tunSymbols,
);
