/**
 * One ICE peer as a process, for the NAT tests: it gathers candidates on one
 * UDP socket, connects with ICE, then runs a RIFT session on the same socket.
 * The test drives it in JSON lines (it moves offers between two peers, as
 * the gateway will):
 *
 * - stdout `{"ev":"offer","offer":{ufrag,pwd,candidates}}` once gathered;
 * - stdin `{"op":"remote","offer":{...}}` starts the checks; stdout then
 *   `{"ev":"selected","pair":{...},"elapsedMs":N}` or `{"ev":"failed","reason":"...","elapsedMs":N}`;
 * - stdin `{"op":"listen"}` (host side): a RIFT listener on the socket echoes
 *   every control message back; stdout `{"ev":"accepted"}` per session,
 *   `{"ev":"echoed","n":N}` per message;
 * - stdin `{"op":"connect","count":N}` (client side): RIFT handshake toward the
 *   selected address, N control messages; stdout `{"ev":"riftConnected"}`, then
 *   `{"ev":"riftDone","sent":N,"echoed":M,"ms":T}` or `{"ev":"error","message":"..."}`;
 * - stdin `{"op":"stats"}`: stdout `{"ev":"stats","state":"...","agent":{counters},"edge":{counters}}`;
 * - stdout `{"ev":"ice","event":{...}}` for every agent event;
 * - it exits when stdin closes.
 *
 * usage: deno run -A tests/support/ice_peer.ts --role controlling|controlled
 *        [--stun IP:PORT] [--bind IP:PORT] [--direct-bound MS] [--fail-bound MS]
 *        [--consent-interval MS]
 *
 * @module
 */

import { IceConnection } from "../../edge/ice_connect.ts";
import { SessionDriver, SessionListener } from "../../edge/udp_session.ts";
import { UdpSocket } from "../../edge/udp_socket.ts";
import { generateIdentity } from "../../crypto/identity.ts";

function arg(name: string): string | undefined {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Deno.args[i + 1] : undefined;
}

function hostPort(text: string): { hostname: string; port: number } {
  const at = text.lastIndexOf(":");
  return { hostname: text.slice(0, at), port: Number(text.slice(at + 1)) };
}

function emit(value: unknown): void {
  console.log(JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? v.toString() : v)));
}

const role = arg("--role") === "controlling" ? "controlling" : "controlled";
const bind = hostPort(arg("--bind") ?? "0.0.0.0:0");
const stun = arg("--stun");
const timing: Record<string, number> = {};
if (arg("--direct-bound")) timing.directBoundMs = Number(arg("--direct-bound"));
if (arg("--fail-bound")) timing.failBoundMs = Number(arg("--fail-bound"));
if (arg("--consent-interval")) timing.consentIntervalMs = Number(arg("--consent-interval"));

const socket = UdpSocket.bind(bind.hostname, bind.port);
const ice = await IceConnection.gather({
  socket,
  role,
  stunServer: stun ? hostPort(stun) : undefined,
  timing,
  onEvent: (event) => emit({ ev: "ice", event }),
});
emit({ ev: "offer", offer: ice.offer(), srflx: ice.serverReflexive });

const identity = generateIdentity();
let listener: SessionListener | undefined;
let driver: SessionDriver | undefined;
const control = new TextEncoder();

async function onCommand(cmd: { op: string; offer?: unknown; count?: number }): Promise<void> {
  if (cmd.op === "remote") {
    const set = ice.setRemote(cmd.offer);
    if (!set.ok) return emit({ ev: "error", message: set.error.detail });
    const outcome = await ice.connected();
    if (outcome.ok) emit({ ev: "selected", pair: outcome.pair, elapsedMs: outcome.elapsedMs });
    else emit({ ev: "failed", reason: outcome.reason, elapsedMs: outcome.elapsedMs });
  } else if (cmd.op === "stats") {
    emit({ ev: "stats", state: ice.agent.state, agent: ice.agent.counters, edge: ice.counters });
  } else if (cmd.op === "listen") {
    listener = SessionListener.listen({ identity, port: 0, attached: ice });
    (async () => {
      for await (const session of listener!.accept()) {
        emit({ ev: "accepted", remote: session.remote });
        let n = 0;
        for await (const event of session.events()) {
          if (event.type === "control") {
            session.sendControl(event.data);
            emit({ ev: "echoed", n: ++n });
          }
          if (event.type === "closed") break;
        }
      }
    })();
  } else if (cmd.op === "connect") {
    const remote = ice.remote;
    if (!remote) return emit({ ev: "error", message: "no selected pair" });
    const started = performance.now();
    try {
      driver = await SessionDriver.connect({ identity, remote, attached: ice });
      emit({ ev: "riftConnected", remote });
      const count = cmd.count ?? 5;
      for (let i = 0; i < count; i++) driver.sendControl(control.encode(`ping ${i}`));
      let echoed = 0;
      const deadline = setTimeout(() => driver?.close(), 5000);
      for await (const event of driver.events()) {
        if (event.type === "control") echoed++;
        if (echoed >= count || event.type === "closed") break;
      }
      clearTimeout(deadline);
      emit({ ev: "riftDone", sent: count, echoed, ms: performance.now() - started });
    } catch (e) {
      emit({ ev: "error", message: (e as Error).message });
    }
  }
}

let buffer = "";
for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
  buffer += chunk;
  let nl;
  while ((nl = buffer.indexOf("\n")) >= 0) {
    const line = buffer.slice(0, nl).trim();
    buffer = buffer.slice(nl + 1);
    if (!line) continue;
    try {
      onCommand(JSON.parse(line)).catch((e) => emit({ ev: "error", message: String(e) }));
    } catch (e) {
      emit({ ev: "error", message: `bad command: ${(e as Error).message}` });
    }
  }
}
await driver?.close();
await listener?.close();
await ice.close();
Deno.exit(0);
