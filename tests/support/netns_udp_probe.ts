/**
 * One UDP socket inside a network namespace, driven by the test over stdin.
 * A process cannot move a single socket into another namespace, so a test
 * that wants "a socket on private host A" starts this script there
 * (`NetnsTopology.udpSocket`) and talks to it in JSON lines:
 *
 * - stdin  `{"op":"send","to":"IP:PORT","data":"<base64>"}` sends one datagram;
 * - stdout `ready IP:PORT` once bound, then `{"ev":"recv","from":"IP:PORT","data":"<base64>"}`
 *   per datagram received, and `{"ev":"error","message":"..."}` when a send fails
 *   (e.g. ICMP port unreachable surfacing as ECONNREFUSED on a later call).
 *
 * It exits when stdin closes.
 *
 * usage: deno run --unstable-net --allow-net netns_udp_probe.ts BIND_IP:PORT
 *
 * @module
 */

function show(addr: Deno.Addr): string {
  const a = addr as Deno.NetAddr;
  return `${a.hostname}:${a.port}`;
}

function parse(text: string): { hostname: string; port: number } {
  const at = text.lastIndexOf(":");
  const port = Number(text.slice(at + 1));
  if (at <= 0 || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`not an IP:PORT: ${text}`);
  }
  return { hostname: text.slice(0, at), port };
}

function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

function fromBase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

let closing = false;

async function receive(socket: Deno.DatagramConn): Promise<void> {
  while (!closing) {
    try {
      const [data, from] = await socket.receive();
      console.log(JSON.stringify({ ev: "recv", from: show(from), data: toBase64(data) }));
    } catch (e) {
      if (closing || e instanceof Deno.errors.BadResource) return;
      // An ICMP error from an earlier send surfaces here on Linux; report it and keep going.
      console.log(JSON.stringify({ ev: "error", message: (e as Error).message }));
    }
  }
}

async function commands(socket: Deno.DatagramConn): Promise<void> {
  let buffer = "";
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    buffer += chunk;
    let newline;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      try {
        const command = JSON.parse(line) as { op: string; to: string; data: string };
        if (command.op !== "send") throw new Error(`unknown op ${command.op}`);
        await socket.send(fromBase64(command.data), { ...parse(command.to), transport: "udp" });
      } catch (e) {
        console.log(JSON.stringify({ ev: "error", message: (e as Error).message }));
      }
    }
  }
}

if (import.meta.main) {
  const bind = Deno.args[0];
  if (bind === undefined) {
    console.error("usage: netns_udp_probe.ts BIND_IP:PORT");
    Deno.exit(2);
  }
  const socket = Deno.listenDatagram({ ...parse(bind), transport: "udp" });
  console.log(`ready ${show(socket.addr)}`);
  const received = receive(socket);
  await commands(socket);
  closing = true;
  socket.close();
  await received;
}
