/**
 * A UDP "what is my address" server for the network-namespace tests. Run it
 * inside a namespace (`NetnsTopology.spawnIn`); it binds every `IP:PORT`
 * given on the command line, prints `ready IP:PORT ...` once all are bound,
 * and answers each datagram, from the socket that received it, with one JSON
 * object: `{"observed":"IP:PORT","local":"IP:PORT","data":"<base64>"}` —
 * the source address as this server sees it (after any NAT on the way), the
 * address that received it, and the request echoed back. One stdout line
 * `recv LOCAL FROM` per datagram lets the test see what arrived even when the
 * answer never makes it back.
 *
 * usage: deno run --unstable-net --allow-net netns_udp_echo.ts IP:PORT [IP:PORT...]
 *
 * @module
 */

/** Splits "IP:PORT" (IPv4) into its parts. */
function parse(text: string): { hostname: string; port: number } {
  const at = text.lastIndexOf(":");
  const port = Number(text.slice(at + 1));
  if (at <= 0 || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`not an IP:PORT: ${text}`);
  }
  return { hostname: text.slice(0, at), port };
}

function show(addr: Deno.Addr): string {
  const a = addr as Deno.NetAddr;
  return `${a.hostname}:${a.port}`;
}

function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

async function serve(socket: Deno.DatagramConn): Promise<void> {
  const local = show(socket.addr);
  const encoder = new TextEncoder();
  for await (const [data, from] of socket) {
    const observed = show(from);
    console.log(`recv ${local} ${observed}`);
    const reply = JSON.stringify({ observed, local, data: toBase64(data) });
    await socket.send(encoder.encode(reply), from).catch((e) => {
      console.log(`send-error ${local} ${observed} ${(e as Error).message}`);
    });
  }
}

if (import.meta.main) {
  if (Deno.args.length === 0) {
    console.error("usage: netns_udp_echo.ts IP:PORT [IP:PORT...]");
    Deno.exit(2);
  }
  const sockets = Deno.args.map((a) => Deno.listenDatagram({ ...parse(a), transport: "udp" }));
  console.log(`ready ${sockets.map((s) => show(s.addr)).join(" ")}`);
  await Promise.all(sockets.map(serve));
}
