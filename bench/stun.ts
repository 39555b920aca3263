/**
 * STUN benchmark, two parts, each against a baseline measured in the same run:
 *
 * 1. Codec (one thread, no I/O): encode a Binding request, decode a Binding
 *    success response, and one full server-core request → response, in
 *    messages per second; baseline: HMAC-SHA1 over a 100-byte message (what
 *    one MESSAGE-INTEGRITY costs).
 * 2. Server on loopback: Binding requests per second answered by our server
 *    (`relay/stun_main.ts`, its own process) and by coturn's `turnserver
 *    --stun-only`, driven by the same Deno load generator (a window of
 *    requests in flight on one socket) for the same duration; and, as the
 *    ceiling for any Deno UDP server here, a Deno echo server with the same
 *    receive loop and no STUN work.
 *
 * `deno run -A bench/stun.ts [--seconds 3] [--window 64] [--rounds 3]`
 *
 * @module
 */
import { hmac } from "@noble/hashes/hmac.js";
import { sha1 } from "@noble/hashes/legacy.js";
import {
  decodeStun,
  encodeStun,
  StunClass,
  StunMethod,
  StunServerCore,
  type TransportAddress,
} from "../core/stun/mod.ts";

function arg(name: string, fallback: number): number {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 ? Number(Deno.args[i + 1]) : fallback;
}
const SECONDS = arg("seconds", 3);
const WINDOW = arg("window", 64);
const ROUNDS = arg("rounds", 3);

/** Runs `fn` repeatedly for ~`ms` and returns calls per second. */
function rate(fn: () => void, ms = 700): number {
  for (let i = 0; i < 2000; i++) fn(); // warm-up
  let n = 0;
  const start = performance.now();
  let now = start;
  while (now - start < ms) {
    for (let i = 0; i < 500; i++) fn();
    n += 500;
    now = performance.now();
  }
  return n / ((now - start) / 1000);
}

const txid = crypto.getRandomValues(new Uint8Array(12));
const client: TransportAddress = { hostname: "203.0.113.7", port: 40000, family: "IPv4" };
const request = encodeStun({
  method: StunMethod.Binding,
  messageClass: StunClass.Request,
  transactionId: txid,
  attributes: [],
}, { fingerprint: true });
const response = encodeStun({
  method: StunMethod.Binding,
  messageClass: StunClass.SuccessResponse,
  transactionId: txid,
  attributes: [{ kind: "XorMappedAddress", address: client }, { kind: "Software", value: "wavry" }],
}, { fingerprint: true });
const core = new StunServerCore({
  primary: { hostname: "198.51.100.1", port: 3478, family: "IPv4" },
});
const key = new TextEncoder().encode("VOkJxbRl1RmTxUk/WvJxBt");
const msg100 = new Uint8Array(100);
let sink = 0;

const hmacRate = rate(() => {
  sink ^= hmac(sha1, key, msg100)[0];
});
const encodeRate = rate(() => {
  sink ^= encodeStun({
    method: StunMethod.Binding,
    messageClass: StunClass.Request,
    transactionId: txid,
    attributes: [],
  }, { fingerprint: true })[0];
});
const decodeRate = rate(() => {
  const r = decodeStun(response);
  if (r.ok) sink ^= r.value.attributes.length;
});
const handleRate = rate(() => {
  const a = core.handle(request, client);
  if (a.action === "reply") sink ^= a.bytes[0];
});
console.log(`# codec, messages/s (baseline: HMAC-SHA1 of 100 bytes = ${hmacRate.toFixed(0)}/s)`);
console.log(
  `encode Binding request+FINGERPRINT: ${encodeRate.toFixed(0)}/s  (${
    (encodeRate / hmacRate).toFixed(2)
  }x HMAC)`,
);
console.log(
  `decode Binding response+FINGERPRINT: ${decodeRate.toFixed(0)}/s  (${
    (decodeRate / hmacRate).toFixed(2)
  }x HMAC)`,
);
console.log(
  `server core request->response: ${handleRate.toFixed(0)}/s  (${
    (handleRate / hmacRate).toFixed(2)
  }x HMAC)`,
);

function freePort(): number {
  const s = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
  const p = (s.addr as Deno.NetAddr).port;
  s.close();
  return p;
}

/** Binding requests per second answered by the server at 127.0.0.1:`port`. */
async function load(port: number): Promise<number> {
  const socket = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
  const to = { transport: "udp" as const, hostname: "127.0.0.1", port };
  // No FINGERPRINT here: each request gets its own transaction id, written in place.
  const req = encodeStun({
    method: StunMethod.Binding,
    messageClass: StunClass.Request,
    transactionId: txid,
    attributes: [],
  });
  const view = new DataView(req.buffer);
  let counter = 0;
  const send = () => {
    view.setUint32(16, ++counter); // a distinct transaction id per request
    return socket.send(req, to).catch(() => {});
  };
  // Wait until the server answers (start-up), at most 10 s.
  const ready = (async () => {
    for (;;) {
      const [b] = await socket.receive();
      if (b.length >= 20 && b[0] === 0x01) return;
    }
  })();
  let up = false;
  ready.then(() => (up = true));
  for (let i = 0; i < 200 && !up; i++) {
    await send();
    await new Promise((r) => setTimeout(r, 50));
  }
  if (!up) throw new Error(`no STUN server answered on port ${port}`);
  await new Promise((r) => setTimeout(r, 200)); // drain stragglers
  let answered = 0, inflight = 0, lastAnswer = performance.now();
  let running = true;
  const receiver = (async () => {
    while (running) {
      let got;
      try {
        got = await socket.receive();
      } catch {
        return;
      }
      if (got[0][0] !== 0x01) continue;
      answered++;
      inflight--;
      lastAnswer = performance.now();
    }
  })();
  const start = performance.now();
  const startAnswered = answered;
  while (performance.now() - start < SECONDS * 1000) {
    // A lost datagram would shrink the window for good: reset it after 50 ms of silence.
    if (performance.now() - lastAnswer > 50) {
      inflight = 0;
      lastAnswer = performance.now();
    }
    const batch: Promise<unknown>[] = [];
    while (inflight < WINDOW) {
      inflight++;
      batch.push(send());
    }
    await Promise.all(batch);
    await new Promise((r) => setTimeout(r, 0));
  }
  const rps = (answered - startAnswered) / ((performance.now() - start) / 1000);
  running = false;
  socket.close();
  await receiver;
  return rps;
}

async function withProcess<T>(cmd: string, args: string[], fn: () => Promise<T>): Promise<T> {
  const child = new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).spawn();
  try {
    return await fn();
  } finally {
    child.kill("SIGKILL");
    await child.status;
  }
}

const ours = new URL("../relay/stun_main.ts", import.meta.url).pathname;
async function oursOnce(): Promise<number> {
  const port = freePort();
  return await withProcess(
    Deno.execPath(),
    ["run", "-A", ours, "--listen", `127.0.0.1:${port}`],
    () => load(port),
  );
}
async function coturnOnce(): Promise<number> {
  const dir = await Deno.makeTempDir();
  const port = freePort();
  try {
    return await withProcess(
      "turnserver",
      [
        "-n",
        "--listening-ip=127.0.0.1",
        `--listening-port=${port}`,
        "--no-tls",
        "--no-dtls",
        "--stun-only",
        "--no-cli",
        `--userdb=${dir}/turndb`,
        `--pidfile=${dir}/turnserver.pid`,
        `--log-file=${dir}/turn.log`,
      ],
      () => load(port),
    );
  } catch (e) {
    console.error(
      `coturn: ${(e as Error).message} (install Debian's coturn: apt-get install -y coturn)`,
    );
    return 0;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
/**
 * Ceiling for any Deno UDP server on this machine: the same receive pattern as
 * relay/stun_server.ts (4 receives in flight, sends not awaited), no STUN work —
 * it flips the request's type to a success response and sends it back.
 */
const ECHO = `
const conn = Deno.listenDatagram({ hostname: "127.0.0.1", port: Number(Deno.args[0]), transport: "udp" });
for (let i = 0; i < 4; i++) (async () => { for (;;) { const [b, a] = await conn.receive(); b[0] = 1; b[1] = 1; conn.send(b, a).catch(() => {}); } })();
`;
async function echoOnce(): Promise<number> {
  const port = freePort();
  return await withProcess(
    Deno.execPath(),
    ["eval", "--unstable-net", ECHO, String(port)],
    () => load(port),
  );
}
// Interleaved rounds, best of each: this VM is shared, so one slow round says little.
let stunRps = 0, coturnRps = 0, echoRps = 0;
for (let round = 0; round < ROUNDS; round++) {
  const a = await oursOnce();
  const b = await coturnOnce();
  const c = await echoOnce();
  console.log(
    `# round ${round + 1}: ours ${a.toFixed(0)} req/s, coturn ${b.toFixed(0)} req/s, ` +
      `deno udp echo ${c.toFixed(0)} req/s`,
  );
  stunRps = Math.max(stunRps, a);
  coturnRps = Math.max(coturnRps, b);
  echoRps = Math.max(echoRps, c);
}
const ratio = coturnRps > 0 ? stunRps / coturnRps : 0;
console.log(
  `# loopback, best of ${ROUNDS} rounds of ${SECONDS} s, window ${WINDOW}: ours ${
    stunRps.toFixed(0)
  } req/s, coturn ${coturnRps.toFixed(0)} req/s, deno udp echo ${echoRps.toFixed(0)} req/s ` +
    `(ours/echo ${(stunRps / echoRps).toFixed(2)})`,
);
console.log(
  `# command: deno run -A bench/stun.ts --seconds ${SECONDS} --window ${WINDOW} --rounds ${ROUNDS}  (sink ${
    sink & 1
  })`,
);
console.log(
  `stun_rps=${stunRps.toFixed(0)} coturn_rps=${coturnRps.toFixed(0)} ratio=${ratio.toFixed(2)} ` +
    `echo_rps=${echoRps.toFixed(0)} encode_per_s=${encodeRate.toFixed(0)} decode_per_s=${
      decodeRate.toFixed(0)
    } ` +
    `core_per_s=${handleRate.toFixed(0)} hmac_sha1_per_s=${hmacRate.toFixed(0)}`,
);
