/**
 * SDP rewriting for the WebRTC contender: take the ICE candidates out, put
 * one host candidate back (the link emulator's address, so each peer reaches
 * the other through it), and raise libwebrtc's bitrate ceiling.
 *
 * Pure string functions over SDP text (lines joined by CRLF).
 *
 * @module
 */

/** A UDP transport address. */
export interface HostPort {
  readonly ip: string;
  readonly port: number;
}

function lines(sdp: string): string[] {
  return sdp.split(/\r?\n/).filter((l) => l.length > 0);
}

function join(ls: string[]): string {
  return ls.join("\r\n") + "\r\n";
}

/** Every `a=candidate` of the SDP as a parsed host/port (with its transport and type). */
export function listCandidates(
  sdp: string,
): { ip: string; port: number; transport: string; type: string; line: string }[] {
  const out = [];
  for (const l of lines(sdp)) {
    const m = /^a=candidate:\S+ \d+ (\S+) \d+ (\S+) (\d+) typ (\S+)/.exec(l);
    if (m) {
      out.push({
        transport: m[1].toLowerCase(),
        ip: m[2],
        port: Number(m[3]),
        type: m[4],
        line: l,
      });
    }
  }
  return out;
}

/** The first UDP host candidate on `ip` (127.0.0.1 by default), or undefined. */
export function findHostCandidate(sdp: string, ip = "127.0.0.1"): HostPort | undefined {
  const c = listCandidates(sdp).find((c) =>
    c.transport === "udp" && c.type === "host" && c.ip === ip
  );
  return c ? { ip: c.ip, port: c.port } : undefined;
}

/** The SDP without any `a=candidate` or `a=end-of-candidates` line. */
export function stripCandidates(sdp: string): string {
  return join(
    lines(sdp).filter((l) => !l.startsWith("a=candidate:") && l !== "a=end-of-candidates"),
  );
}

/** An `a=candidate` attribute value for a UDP host candidate at `hp`. */
export function hostCandidate(hp: HostPort, foundation = "1"): string {
  return `candidate:${foundation} 1 udp 2122260223 ${hp.ip} ${hp.port} typ host generation 0`;
}

/**
 * The SDP with its candidates replaced by one UDP host candidate at `hp` in
 * every media section (after the section's `a=mid`), followed by
 * `a=end-of-candidates` so the peer stops waiting for more.
 */
export function replaceCandidates(sdp: string, hp: HostPort): string {
  const out: string[] = [];
  for (const l of lines(stripCandidates(sdp))) {
    out.push(l);
    if (l.startsWith("a=mid:")) {
      out.push(`a=${hostCandidate(hp)}`, "a=end-of-candidates");
    }
  }
  return join(out);
}

/**
 * The SDP with the video ceiling raised to `kbps`: a `b=AS` line in each
 * video section (the transport-wide limit GCC honours), and
 * `x-google-max-bitrate` / `x-google-start-bitrate` on every video codec's
 * fmtp (the encoder's own ceiling, which otherwise defaults to a value
 * chosen from the resolution). RTX/RED/FEC payloads are left alone.
 */
export function raiseMaxBitrate(sdp: string, kbps: number, startKbps?: number): string {
  if (!(kbps > 0)) throw new RangeError(`raiseMaxBitrate: kbps must be > 0, got ${kbps}`);
  const ls = lines(sdp);
  const out: string[] = [];
  let inVideo = false;
  const codecs = new Map<string, string>(); // payload type -> codec name
  for (const l of ls) {
    const m = /^a=rtpmap:(\d+) ([^/]+)/.exec(l);
    if (m) codecs.set(m[1], m[2].toUpperCase());
  }
  const isMedia = (pt: string) => {
    const c = codecs.get(pt);
    return c !== undefined && !["RTX", "RED", "ULPFEC", "FLEXFEC-03"].includes(c);
  };
  const extra = `x-google-max-bitrate=${Math.round(kbps)}` +
    (startKbps ? `;x-google-start-bitrate=${Math.round(startKbps)}` : "");
  const hasFmtp = new Set<string>();
  for (const l of ls) {
    const f = /^a=fmtp:(\d+) /.exec(l);
    if (f) hasFmtp.add(f[1]);
  }
  for (const l of ls) {
    if (l.startsWith("m=")) {
      inVideo = l.startsWith("m=video");
      out.push(l);
      continue;
    }
    if (inVideo && l.startsWith("b=AS:")) continue; // replaced below
    if (inVideo && l.startsWith("c=")) {
      out.push(l, `b=AS:${Math.round(kbps)}`);
      continue;
    }
    const f = /^a=fmtp:(\d+) (.*)$/.exec(l);
    if (inVideo && f && isMedia(f[1])) {
      const kept = f[2].split(";").filter((p) => !/^x-google-(max|start)-bitrate=/.test(p));
      out.push(`a=fmtp:${f[1]} ${[...kept, extra].join(";")}`);
      continue;
    }
    out.push(l);
    const r = /^a=rtpmap:(\d+) /.exec(l);
    if (inVideo && r && isMedia(r[1]) && !hasFmtp.has(r[1])) out.push(`a=fmtp:${r[1]} ${extra}`);
  }
  return join(out);
}
