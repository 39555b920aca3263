/**
 * Small helpers the command-line programs share.
 *
 * @module
 */
import type { PeerAddress } from "./udp_socket.ts";

/** Parses "host:port" (or "[v6]:port"); throws a clear error otherwise. */
export function parseAddress(text: string): PeerAddress {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text.trim());
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) throw new Error(`"${text}" is not an address of the form host:port`);
  return { hostname: match[1] ?? match[2], port };
}

/** Where a program keeps its identity key by default: $XDG_CONFIG_HOME/wavry or ~/.config/wavry. */
export function defaultIdentityPath(role: "host" | "client"): string {
  const base = Deno.env.get("XDG_CONFIG_HOME") ?? `${Deno.env.get("HOME") ?? "."}/.config`;
  return `${base}/wavry/${role}.key`;
}

/**
 * Rewrites `--NAME VALUE` into `--NAME=VALUE` for the given options, so a
 * value starting with "-" (a base64url identity key does 1 time in 64) is
 * not taken for an option by `parseArgs`. Other arguments pass unchanged.
 */
export function joinOptionValues(args: readonly string[], names: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (names.some((n) => a === `--${n}`) && i + 1 < args.length) {
      out.push(`${a}=${args[++i]}`);
    } else out.push(a);
  }
  return out;
}
