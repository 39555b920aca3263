/**
 * A plain RFC 8489 STUN server for the ICE tests: {@linkcode StunServerCore}
 * on one UDP socket, printing `ready IP:PORT` once bound. The NAT tests use
 * `relay/stun_main.ts` (`./wavry stun`) when the branch has it, and this
 * otherwise.
 *
 * usage: deno run -A tests/support/ice_stun_server.ts IP:PORT
 *
 * @module
 */

import { StunServerCore } from "../../core/stun/server.ts";

const text = Deno.args[0] ?? "0.0.0.0:3478";
const at = text.lastIndexOf(":");
const hostname = text.slice(0, at), port = Number(text.slice(at + 1));
const conn = Deno.listenDatagram({ hostname, port, transport: "udp" });
const addr = conn.addr as Deno.NetAddr;
const core = new StunServerCore({
  primary: { hostname: addr.hostname, port: addr.port, family: "IPv4" },
});
console.log(`ready ${addr.hostname}:${addr.port}`);
for (;;) {
  let received: [Uint8Array, Deno.Addr];
  try {
    received = await conn.receive();
  } catch (e) {
    if (e instanceof Deno.errors.BadResource) break;
    continue;
  }
  const from = received[1] as Deno.NetAddr;
  const action = core.handle(received[0], {
    hostname: from.hostname,
    port: from.port,
    family: from.hostname.includes(":") ? "IPv6" : "IPv4",
  });
  if (action.action === "reply") {
    await conn.send(action.bytes, {
      transport: "udp",
      hostname: action.to.hostname,
      port: action.to.port,
    }).catch(() => {});
  }
}
