/**
 * A bulk TCP flow's two ends, run inside network namespaces by
 * tcp_tunnel.ts (`ip netns exec NS deno run ... tcp_bulk.ts MODE ...`).
 *
 *   tcp_bulk.ts sink HOST:PORT            # accept one connection, count bytes
 *   tcp_bulk.ts source HOST:PORT SECONDS [CC]  # connect (IPv4), write as fast as TCP allows;
 *                                              # CC = congestion control, default cubic
 *
 * Both print JSON lines on stdout. The sink: `{"ev":"ready"}` once listening,
 * then `{"ev":"bytes","t":EPOCH_MS,"total":N}` every 100 ms while connected,
 * and `{"ev":"done","total":N}` at EOF. The source: `{"ev":"connected",
 * "connectMs":MS,"congestion":CC}` (the handshake: one round trip with empty queues), then
 * `{"ev":"done","written":N}`. Times are `performance.timeOrigin +
 * performance.now()`, the clock the race uses, valid across processes of one
 * machine.
 *
 * @module
 */

function emit(o: Record<string, unknown>): void {
  console.log(JSON.stringify(o));
}

function hostPort(s: string): { hostname: string; port: number } {
  const i = s.lastIndexOf(":");
  return { hostname: s.slice(0, i), port: Number(s.slice(i + 1)) };
}

const now = () => performance.timeOrigin + performance.now();

async function sink(addr: string): Promise<void> {
  const listener = Deno.listen({ ...hostPort(addr), transport: "tcp" });
  emit({ ev: "ready" });
  const conn = await listener.accept();
  listener.close();
  let total = 0;
  const tick = setInterval(() => emit({ ev: "bytes", t: now(), total }), 100);
  const buf = new Uint8Array(256 * 1024);
  try {
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      total += n;
    }
  } catch {
    // Reset by the source's exit: the count so far stands.
  }
  clearInterval(tick);
  emit({ ev: "bytes", t: now(), total });
  emit({ ev: "done", total });
  conn.close();
}

/**
 * The source talks to libc directly: Deno's TCP API cannot choose a socket's
 * congestion control (TCP_CONGESTION), and a namespace's default may only be
 * one of the host's `tcp_allowed_congestion_control` (not CUBIC on every
 * machine), while a socket of a CAP_NET_ADMIN process may pick any available
 * one. Blocking calls are fine: this process does nothing else.
 */
function source(addr: string, seconds: number, cc: string): void {
  const libc = Deno.dlopen("libc.so.6", {
    socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
    setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
    getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
    connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
    send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
    close: { parameters: ["i32"], result: "i32" },
  }).symbols;
  const AF_INET = 2, SOCK_STREAM = 1, IPPROTO_TCP = 6, TCP_CONGESTION = 13, MSG_NOSIGNAL = 0x4000;
  const { hostname, port } = hostPort(addr);
  const fd = libc.socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw new Error("socket failed");
  const name = new TextEncoder().encode(cc);
  if (libc.setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name, name.length) !== 0) {
    throw new Error(`TCP_CONGESTION ${cc} refused`);
  }
  const got = new Uint8Array(16), len = new Uint32Array([16]);
  libc.getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, got, new Uint8Array(len.buffer));
  const sa = new Uint8Array(16);
  const v = new DataView(sa.buffer);
  v.setUint16(0, AF_INET, true);
  v.setUint16(2, port, false);
  hostname.split(".").forEach((o, i) => sa[4 + i] = Number(o));
  const t0 = performance.now();
  if (libc.connect(fd, sa, sa.length) !== 0) throw new Error(`connect ${addr} failed`);
  const congestion = new TextDecoder().decode(got.subarray(0, got.indexOf(0)));
  emit({ ev: "connected", connectMs: performance.now() - t0, congestion });
  const chunk = new Uint8Array(64 * 1024);
  const end = t0 + seconds * 1000;
  let written = 0;
  while (performance.now() < end) {
    const n = Number(libc.send(fd, chunk, BigInt(chunk.length), MSG_NOSIGNAL));
    if (n <= 0) break; // the sink went away
    written += n;
  }
  emit({ ev: "done", written });
  libc.close(fd);
}

if (import.meta.main) {
  const [mode, addr, seconds, cc] = Deno.args;
  if (mode === "sink" && addr) await sink(addr);
  else if (mode === "source" && addr && Number(seconds) > 0) {
    source(addr, Number(seconds), cc ?? "cubic");
  } else {
    console.error("usage: tcp_bulk.ts sink HOST:PORT | source HOST:PORT SECONDS [CC]");
    Deno.exit(2);
  }
}
