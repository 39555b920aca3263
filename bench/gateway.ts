/**
 * Gateway benchmark against a bare baseline measured in the same run.
 *
 *   deno run -A bench/gateway.ts [--hosts 5000] [--pairs 10] [--seconds 5] [--concurrency 8]
 *                                [--kv PATH]
 *
 * `--kv` overrides the gateway's KV (default: a fresh file in a temp dir;
 * `:memory:` shows what the disk's sync costs).
 * Starts two child processes on loopback: the real gateway (`gateway/main.ts`
 * with a fresh KV file, rate limits raised) and a bare baseline server (this
 * file with `--baseline-server`: a Hono `POST /echo` and a WebSocket forwarder
 * that pairs two sockets and passes frames between them, with no auth,
 * validation or KV). Then, from this process:
 *
 * 1. logins/s: `concurrency` workers each loop a challenge-response login
 *    (two HTTP requests, an Ed25519 signature here, a WebCrypto verification
 *    and two KV operations there); baseline: the same workers each loop two
 *    `POST /echo` of the same size.
 * 2. holds `hosts` authenticated host WebSockets (each registered and logged
 *    in with its own identity, presence in KV).
 * 3. with those held, `pairs` host/client pairs exchange offer -> answer
 *    round trips through the gateway (client -> gateway -> host -> gateway ->
 *    client) for `seconds`; baseline: the same exchange through the bare
 *    forwarder. Reports messages forwarded per second and the round trip
 *    p50/p99.
 *
 * Last line: `ws_sessions=N signaling_p99_ms=N logins_per_s=N signaling_msgs_per_s=N
 * baseline_msgs_per_s=N signaling_ratio=R baseline_login_pairs_per_s=N login_ratio=R
 * baseline_p99_ms=N gateway_rss_mb=N`.
 */
import { parseArgs } from "node:util";
import { Hono } from "hono";
import { generateIdentity } from "../crypto/identity.ts";
import { GatewayClient, type SignalingChannel } from "../gateway/client.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    "baseline-server": { type: "boolean", default: false },
    hosts: { type: "string", default: "5000" },
    pairs: { type: "string", default: "10" },
    seconds: { type: "string", default: "5" },
    concurrency: { type: "string", default: "8" },
    kv: { type: "string" },
  },
});

if (values["baseline-server"]) {
  // The bare baseline: what any HTTP + WebSocket server on this machine costs.
  const app = new Hono();
  app.post("/echo", async (c) => c.json(await c.req.json()));
  const waiting = new Map<string, WebSocket>();
  app.get("/ws", (c) => {
    const pair = c.req.query("pair") ?? "";
    const { socket, response } = Deno.upgradeWebSocket(c.req.raw);
    socket.onopen = () => {
      const other = waiting.get(pair);
      if (!other) {
        waiting.set(pair, socket);
        return;
      }
      waiting.delete(pair);
      other.onmessage = (e) => socket.send(e.data);
      socket.onmessage = (e) => other.send(e.data);
      other.send("paired");
      socket.send("paired");
    };
    return response;
  });
  Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: ({ port }) => console.log(`baseline: listening on http://127.0.0.1:${port}`),
  }, app.fetch);
} else {
  await main();
}

async function spawn(args: string[]): Promise<{ child: Deno.ChildProcess; url: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", ...args],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`child exited before listening: ${text}`);
    text += value;
    const m = /listening on (http:\/\/\S+)/.exec(text);
    if (m) {
      (async () => {
        while (!(await reader.read()).done) { /* drain */ }
      })().catch(() => {});
      return { child, url: m[1] };
    }
  }
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

async function parallel<T>(n: number, count: number, f: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(count);
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < count) {
      const i = next++;
      out[i] = await f(i);
    }
  }));
  return out;
}

async function forSeconds(
  seconds: number,
  workers: number,
  f: () => Promise<void>,
): Promise<number> {
  const end = performance.now() + seconds * 1000;
  let n = 0;
  await Promise.all(Array.from({ length: workers }, async () => {
    while (performance.now() < end) {
      await f();
      n++;
    }
  }));
  return n / seconds;
}

function rssMb(pid: number): number {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const m = /VmRSS:\s+(\d+) kB/.exec(status);
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

async function main(): Promise<void> {
  const hostsWanted = Number(values.hosts);
  const pairs = Number(values.pairs);
  const seconds = Number(values.seconds);
  const concurrency = Number(values.concurrency);
  const dir = await Deno.makeTempDir({ prefix: "wavry-bench-gw-" });
  const gwMain = new URL("../gateway/main.ts", import.meta.url).pathname;
  const gw = await spawn([
    gwMain,
    "--listen",
    "127.0.0.1:0",
    "--kv",
    values.kv ?? `${dir}/gw.kv`,
    "--key",
    `${dir}/gw.key`,
    "--login-limit",
    "1000000/1000000",
    "--signaling-limit",
    "1000000/1000000",
  ]);
  const base = await spawn([new URL(import.meta.url).pathname, "--baseline-server"]);
  const sockets: SignalingChannel[] = [];
  try {
    // ---- 1. logins per second, and the baseline's pairs of POSTs per second
    const loginClients = await Promise.all(Array.from({ length: concurrency }, async (_, i) => {
      const c = new GatewayClient(gw.url, generateIdentity());
      await c.register(`bench-${i}`, "user");
      return c;
    }));
    let w = 0;
    // Warm-up (JIT, connection pools) on both servers before measuring.
    await forSeconds(1, concurrency, async () => {
      await loginClients[w++ % concurrency].login();
    });
    const loginsPerS = await forSeconds(seconds, concurrency, async () => {
      await loginClients[w++ % concurrency].login();
    });
    const challengeBody = JSON.stringify({
      publicKey: loginClients[0].publicKey,
      purpose: "login",
    });
    const loginBody = JSON.stringify({
      publicKey: loginClients[0].publicKey,
      nonce: "A".repeat(43),
      signature: "A".repeat(86),
    });
    const post = async (body: string) => {
      const r = await fetch(`${base.url}/echo`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
      await r.text();
    };
    await forSeconds(1, concurrency, async () => {
      await post(challengeBody);
      await post(loginBody);
    });
    const basePairsPerS = await forSeconds(seconds, concurrency, async () => {
      await post(challengeBody);
      await post(loginBody);
    });
    console.log(
      `# logins: ${loginsPerS.toFixed(0)}/s (challenge + login, ${concurrency} workers); ` +
        `baseline: ${basePairsPerS.toFixed(0)} pairs of POST /echo per s; ratio ${
          (loginsPerS / basePairsPerS).toFixed(3)
        }`,
    );

    // ---- 2. hold many authenticated host sockets
    const t0 = performance.now();
    await parallel(16, hostsWanted, async (i) => {
      const c = new GatewayClient(gw.url, generateIdentity());
      await c.register(`host-${i}`, "host");
      await c.login();
      sockets.push(await c.openSignaling());
    });
    const holdS = (performance.now() - t0) / 1000;
    const health = await (await fetch(`${gw.url}/metrics`)).text();
    const held = Number(
      /wavry_gateway_connected_peers\{kind="host"\} (\d+)/.exec(health)?.[1] ?? 0,
    );
    console.log(
      `# held ${held} host sockets (register + login + WebSocket each, 16 at a time) in ${
        holdS.toFixed(1)
      } s; gateway RSS ${rssMb(gw.child.pid).toFixed(0)} MB`,
    );

    // ---- 3. signaling round trips while they are held
    const candidates = [
      {
        kind: "host" as const,
        address: "192.168.1.20",
        port: 40000,
        priority: 2130706431,
        foundation: "h1",
      },
      {
        kind: "srflx" as const,
        address: "203.0.113.7",
        port: 51000,
        priority: 1694498815,
        foundation: "s1",
      },
    ];
    const pairList = await Promise.all(Array.from({ length: pairs }, async (_, i) => {
      const host = new GatewayClient(gw.url, generateIdentity());
      const user = new GatewayClient(gw.url, generateIdentity());
      await host.register(`ph-${i}`, "host");
      await user.register(`pu-${i}`, "user");
      await host.login();
      await user.login();
      await host.allowClient(user.publicKey);
      const hs = await host.openSignaling();
      const us = await user.openSignaling();
      sockets.push(hs, us);
      us.send({ type: "connect", to: host.publicKey });
      const { sessionId } = await us.receiveType("connecting");
      await hs.receiveType("connect");
      return { hs, us, sessionId };
    }));
    const rtts: number[] = [];
    const end = performance.now() + seconds * 1000;
    await Promise.all(pairList.map(async ({ hs, us, sessionId }) => {
      while (performance.now() < end) {
        const t = performance.now();
        us.send({ type: "offer", sessionId, candidates });
        await hs.receiveType("offer");
        hs.send({ type: "answer", sessionId, candidates });
        await us.receiveType("answer");
        rtts.push(performance.now() - t);
      }
    }));
    rtts.sort((a, b) => a - b);
    const msgsPerS = rtts.length * 2 / seconds;

    // Baseline: the same exchange through the bare forwarder.
    const open = (pair: string) =>
      new Promise<WebSocket>((resolve) => {
        const ws = new WebSocket(`${base.url.replace("http", "ws")}/ws?pair=${pair}`);
        ws.onmessage = (e) => {
          if (e.data === "paired") resolve(ws);
        };
      });
    const basePairs = await Promise.all(Array.from({ length: pairs }, async (_, i) => {
      const [a, b] = await Promise.all([open(`p${i}`), open(`p${i}`)]);
      return { a, b };
    }));
    const next = (ws: WebSocket) =>
      new Promise<string>((resolve) => {
        ws.onmessage = (e) => resolve(String(e.data));
      });
    const offerText = JSON.stringify({ type: "offer", sessionId: "x".repeat(16), candidates });
    const baseRtts: number[] = [];
    const end2 = performance.now() + seconds * 1000;
    await Promise.all(basePairs.map(async ({ a, b }) => {
      while (performance.now() < end2) {
        const t = performance.now();
        const atB = next(b);
        a.send(offerText);
        JSON.parse(await atB);
        const atA = next(a);
        b.send(offerText);
        JSON.parse(await atA);
        baseRtts.push(performance.now() - t);
      }
    }));
    baseRtts.sort((x, y) => x - y);
    const baseMsgsPerS = baseRtts.length * 2 / seconds;
    for (const { a, b } of basePairs) {
      a.close();
      b.close();
    }
    const p50 = percentile(rtts, 0.5);
    const p99 = percentile(rtts, 0.99);
    const bp50 = percentile(baseRtts, 0.5);
    const bp99 = percentile(baseRtts, 0.99);
    console.log(
      `# signaling (${pairs} pairs, offer->answer round trips, ${held} hosts held): ` +
        `${msgsPerS.toFixed(0)} msgs/s, rtt p50 ${p50.toFixed(2)} ms p99 ${p99.toFixed(2)} ms; ` +
        `bare forwarder: ${baseMsgsPerS.toFixed(0)} msgs/s, p50 ${bp50.toFixed(2)} ms p99 ${
          bp99.toFixed(2)
        } ms; ratio ${(msgsPerS / baseMsgsPerS).toFixed(3)}`,
    );
    const rss = rssMb(gw.child.pid);
    console.log(`# command: deno run -A bench/gateway.ts ${Deno.args.join(" ")}`.trimEnd());
    console.log(
      `ws_sessions=${held} signaling_p99_ms=${p99.toFixed(2)} logins_per_s=${
        loginsPerS.toFixed(0)
      } ` +
        `signaling_msgs_per_s=${msgsPerS.toFixed(0)} baseline_msgs_per_s=${
          baseMsgsPerS.toFixed(0)
        } ` +
        `signaling_ratio=${(msgsPerS / baseMsgsPerS).toFixed(3)} ` +
        `baseline_login_pairs_per_s=${basePairsPerS.toFixed(0)} ` +
        `login_ratio=${(loginsPerS / basePairsPerS).toFixed(3)} baseline_p99_ms=${
          bp99.toFixed(2)
        } ` +
        `gateway_rss_mb=${rss.toFixed(0)}`,
    );
  } finally {
    await Promise.all(sockets.map((s) => s.close().catch(() => {})));
    for (const p of [gw, base]) {
      try {
        p.child.kill("SIGTERM");
      } catch { /* gone */ }
      await p.child.status;
    }
    await Deno.remove(dir, { recursive: true });
  }
}
