/**
 * Two real gateway processes (`deno run gateway/main.ts`) sharing one KV file
 * behave as one: a host connected to A and a client connected to B complete
 * a connect / offer / answer / outcome exchange, and a challenge issued by A
 * is consumed by B.
 */
import assert from "node:assert/strict";
import { generateIdentity } from "../crypto/identity.ts";
import { GatewayClient } from "./client.ts";
import { metricValue } from "./test_support.ts";

interface Proc {
  child: Deno.ChildProcess;
  url: string;
  stderr: Promise<string>;
}

async function startGateway(dir: string): Promise<Proc> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      new URL("./main.ts", import.meta.url).pathname,
      "--listen",
      "127.0.0.1:0",
      "--kv",
      `${dir}/gateway.kv`,
      "--key",
      `${dir}/gateway.key`,
      "--id",
      "two-process",
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
    const m = /listening on (http:\/\/\S+)/.exec(text);
    if (m) {
      // Keep draining stdout so the child never blocks on a full pipe.
      (async () => {
        while (!(await reader.read()).done) { /* discard */ }
      })().catch(() => {});
      return { child, url: m[1], stderr };
    }
  }
  child.kill("SIGKILL");
  throw new Error(`gateway did not start: ${text} ${await stderr}`);
}

async function stopGateway(p: Proc | undefined): Promise<void> {
  if (!p) return;
  try {
    p.child.kill("SIGTERM");
  } catch { /* already gone */ }
  const timer = setTimeout(() => {
    try {
      p.child.kill("SIGKILL");
    } catch { /* gone */ }
  }, 5_000);
  await p.child.status;
  clearTimeout(timer);
  await p.stderr;
}

Deno.test("two gateway processes sharing one KV file act as one", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wavry-gw-" });
  let a: Proc | undefined;
  let b: Proc | undefined;
  try {
    a = await startGateway(dir);
    b = await startGateway(dir); // loads the key file A created
    assert.notEqual(a.url, b.url);
    const ka = await (await fetch(`${a.url}/v1/lease-key`)).json();
    const kb = await (await fetch(`${b.url}/v1/lease-key`)).json();
    assert.equal(ka.publicKey, kb.publicKey);

    const hostId = generateIdentity();
    const userId = generateIdentity();
    const host = new GatewayClient(a.url, hostId);
    await host.register("den-pc", "host");
    await host.login();
    // The user registers at A but logs in at B, with a challenge issued by A.
    const userAtA = new GatewayClient(a.url, userId);
    await userAtA.register("phone", "user");
    const ch = await userAtA.challenge("login");
    const user = new GatewayClient(b.url, userId);
    const login = await user.request<{ token: string }>("POST", "/v1/login", {
      publicKey: user.publicKey,
      nonce: ch.nonce,
      signature: await user.signLogin(ch),
    }, false);
    user.token = login.token;
    await host.allowClient(user.publicKey);

    const hostSig = await host.openSignaling(); // on A
    const userSig = await user.openSignaling(); // on B
    const hostReady = (await fetch(`${a.url}/health`).then((r) => r.json())).instance;
    const userReady = (await fetch(`${b.url}/health`).then((r) => r.json())).instance;
    assert.notEqual(hostReady, userReady);
    assert.deepEqual(await user.listHosts(), [{
      publicKey: host.publicKey,
      name: "den-pc",
      online: true,
    }]);

    userSig.send({ type: "connect", to: host.publicKey, ref: "c" });
    const connecting = await userSig.receiveType("connecting", 10_000);
    const connect = await hostSig.receiveType("connect", 10_000);
    assert.equal(connect.sessionId, connecting.sessionId);
    assert.equal(connect.from, user.publicKey);

    const offer = [{
      kind: "srflx" as const,
      address: "203.0.113.9",
      port: 50000,
      priority: 100,
      foundation: "s",
    }];
    userSig.send({ type: "offer", sessionId: connect.sessionId, candidates: offer, ref: "o" });
    assert.equal((await userSig.receive(10_000)).type, "ack");
    assert.deepEqual((await hostSig.receiveType("offer", 10_000)).candidates, offer);

    const answer = [{
      kind: "host" as const,
      address: "10.1.2.3",
      port: 40000,
      priority: 200,
      foundation: "h",
    }];
    hostSig.send({ type: "answer", sessionId: connect.sessionId, candidates: answer });
    assert.deepEqual((await userSig.receiveType("answer", 10_000)).candidates, answer);

    hostSig.send({ type: "outcome", sessionId: connect.sessionId, result: "direct" });
    assert.equal((await userSig.receiveType("outcome", 10_000)).result, "direct");

    const ma = await (await fetch(`${a.url}/metrics`)).text();
    const mb = await (await fetch(`${b.url}/metrics`)).text();
    // B -> A: connect, offer. A -> B: answer, outcome.
    assert.equal(
      metricValue(mb, 'wavry_gateway_cross_instance_messages_total{direction="out"}'),
      2,
    );
    assert.equal(metricValue(ma, 'wavry_gateway_cross_instance_messages_total{direction="in"}'), 2);
    assert.equal(
      metricValue(ma, 'wavry_gateway_cross_instance_messages_total{direction="out"}'),
      2,
    );
    assert.equal(metricValue(mb, 'wavry_gateway_cross_instance_messages_total{direction="in"}'), 2);
    await hostSig.close();
    await userSig.close();
  } finally {
    await stopGateway(a);
    await stopGateway(b);
    await Deno.remove(dir, { recursive: true });
  }
});
