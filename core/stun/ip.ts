/**
 * IP address text ⇄ bytes, for the address attributes of STUN. Sans-IO and
 * never throwing: parsing returns `null` for anything that is not a literal
 * IPv4 or IPv6 address; formatting follows RFC 5952 (lowercase, longest run
 * of zero groups compressed), which is also how Deno prints addresses.
 *
 * @module
 */

/** Address family of a STUN transport address. */
export type IpFamily = "IPv4" | "IPv6";

/** A UDP transport address: what a socket reports as a datagram's source. */
export interface TransportAddress {
  /** IPv4 dotted quad or IPv6 text (RFC 5952 form when produced here). */
  hostname: string;
  /** UDP port, 0–65535. */
  port: number;
  /** Address family. */
  family: IpFamily;
}

/** Parses a dotted-quad IPv4 address into 4 bytes, or `null` (no leading zeros). */
export function parseIpv4(text: string): Uint8Array | null {
  // A character loop, not split + regex: the server parses every request's source.
  const out = new Uint8Array(4);
  let part = 0, value = 0, digits = 0;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : 0x2e;
    if (c === 0x2e) {
      if (digits === 0 || part > 3) return null;
      out[part++] = value;
      value = 0;
      digits = 0;
    } else if (c >= 0x30 && c <= 0x39) {
      if (digits > 0 && value === 0) return null; // leading zero
      value = value * 10 + (c - 0x30);
      if (++digits > 3 || value > 255) return null;
    } else {
      return null;
    }
  }
  return part === 4 ? out : null;
}

/**
 * Parses IPv6 text (with `::` compression and an optional trailing dotted
 * quad; a `%zone` suffix is ignored) into 16 bytes, or `null`.
 */
export function parseIpv6(text: string): Uint8Array | null {
  const zone = text.indexOf("%");
  if (zone >= 0) text = text.slice(0, zone);
  if (text.startsWith("[") && text.endsWith("]")) text = text.slice(1, -1);
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const groups = (s: string): number[] | null => {
    if (s === "") return [];
    const out: number[] = [];
    const items = s.split(":");
    for (let i = 0; i < items.length; i++) {
      const item = items[i];
      if (i === items.length - 1 && item.includes(".")) {
        const v4 = parseIpv4(item);
        if (!v4) return null;
        out.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(item)) return null;
        out.push(parseInt(item, 16));
      }
    }
    return out;
  };
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  if (!head || !tail) return null;
  const total = head.length + tail.length;
  if (halves.length === 2 ? total > 7 : total !== 8) return null;
  const all = [...head, ...new Array(8 - total).fill(0), ...tail];
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    out[2 * i] = all[i] >> 8;
    out[2 * i + 1] = all[i] & 0xff;
  }
  return out;
}

/** Parses an address literal of either family: 4 or 16 bytes, or `null`. */
export function parseIp(text: string): Uint8Array | null {
  return text.includes(":") ? parseIpv6(text) : parseIpv4(text);
}

/** Formats 4 bytes as a dotted quad or 16 bytes as RFC 5952 IPv6 text. */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((bytes[2 * i] << 8) | bytes[2 * i + 1]);
  // Longest run (≥ 2) of zero groups, first one on ties (RFC 5952 §4.2).
  let bestStart = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (a: number[]) => a.map((v) => v.toString(16)).join(":");
  if (bestStart < 0) return hex(g);
  return `${hex(g.slice(0, bestStart))}::${hex(g.slice(bestStart + bestLen))}`;
}

/** Canonical text of an address literal (so two spellings compare equal), or the input. */
export function canonicalIp(text: string): string {
  const b = parseIp(text);
  return b ? formatIp(b) : text;
}

/** Whether two transport addresses name the same IP and port. */
export function sameAddress(a: TransportAddress, b: TransportAddress): boolean {
  return a.port === b.port && a.family === b.family &&
    canonicalIp(a.hostname) === canonicalIp(b.hostname);
}
