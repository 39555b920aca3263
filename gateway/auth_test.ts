import assert from "node:assert/strict";
import { generateIdentity, signWithIdentity } from "../crypto/identity.ts";
import { GatewayClient, GatewayError } from "./client.ts";
import { snapshotKv } from "./store.ts";
import { metricValue, newClient, startTestGateway } from "./test_support.ts";

async function rejects(p: Promise<unknown>, code: string, status?: number): Promise<void> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof GatewayError, String(e));
    assert.equal(e.code, code, e.message);
    if (status !== undefined) assert.equal(e.status, status);
    return;
  }
  assert.fail(`expected ${code}`);
}

async function metrics(url: string): Promise<string> {
  return await (await fetch(`${url}/metrics`)).text();
}

Deno.test("register, login, and the token opens the signaling socket", async () => {
  const gw = await startTestGateway();
  try {
    const { client } = newClient(gw.url);
    const reg = await client.register("laptop", "user");
    assert.deepEqual(reg, { publicKey: client.publicKey, name: "laptop", kind: "user" });
    const login = await client.login();
    assert.equal(login.kind, "user");
    assert.equal(login.name, "laptop");
    assert.match(login.token, /^v4\.public\./);
    const sig = await client.openSignaling();
    await sig.close();
    // Renaming is a new signed registration; changing kind is refused.
    await client.register("laptop-2", "user");
    await rejects(client.register("laptop-3", "host"), "KindMismatch", 409);
    const m = await metrics(gw.url);
    assert.equal(metricValue(m, 'wavry_gateway_logins_total{kind="user"}'), 1);
    assert.equal(metricValue(m, 'wavry_gateway_registrations_total{kind="user"}'), 2);
  } finally {
    await gw.stop();
  }
});

Deno.test("login before registering is refused", async () => {
  const gw = await startTestGateway();
  try {
    const { client } = newClient(gw.url);
    await rejects(client.login(), "NotRegistered", 404);
  } finally {
    await gw.stop();
  }
});

Deno.test("a replayed challenge is refused and counted, and changes nothing", async () => {
  const gw = await startTestGateway();
  try {
    const { client } = newClient(gw.url);
    await client.register("pc", "user");
    const ch = await client.challenge("login");
    const signature = await client.signLogin(ch);
    const body = { publicKey: client.publicKey, nonce: ch.nonce, signature };
    await client.request("POST", "/v1/login", body, false);
    const before = await snapshotKv(gw.kv);
    await rejects(client.request("POST", "/v1/login", body, false), "ChallengeUnknown", 401);
    assert.equal(await snapshotKv(gw.kv), before);
    // Two concurrent uses of one challenge: exactly one wins (atomic consume).
    const ch2 = await client.challenge("login");
    const body2 = {
      publicKey: client.publicKey,
      nonce: ch2.nonce,
      signature: await client.signLogin(ch2),
    };
    const results = await Promise.allSettled([
      client.request("POST", "/v1/login", body2, false),
      client.request("POST", "/v1/login", body2, false),
      client.request("POST", "/v1/login", body2, false),
    ]);
    assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
    const m = await metrics(gw.url);
    assert.equal(metricValue(m, 'wavry_gateway_refusals_total{kind="challenge_unknown"}'), 3);
    assert.equal(metricValue(m, 'wavry_gateway_errors_total{code="ChallengeUnknown"}'), 3);
  } finally {
    await gw.stop();
  }
});

Deno.test("a signature by the wrong key is refused and leaves the challenge usable", async () => {
  const gw = await startTestGateway();
  try {
    const identity = generateIdentity();
    const wrong = generateIdentity();
    const honest = new GatewayClient(gw.url, identity);
    await honest.register("pc", "user");
    const forger = new GatewayClient(gw.url, identity, (m) => signWithIdentity(wrong, m));
    // Registration by someone without the key (a squatter) is refused too.
    const squatter = new GatewayClient(
      gw.url,
      generateIdentity(),
      (m) => signWithIdentity(wrong, m),
    );
    await rejects(squatter.register("squat", "host"), "BadSignature", 401);
    const ch = await forger.challenge("login");
    const before = await snapshotKv(gw.kv);
    const forged = {
      publicKey: forger.publicKey,
      nonce: ch.nonce,
      signature: await forger.signLogin(ch),
    };
    await rejects(forger.request("POST", "/v1/login", forged, false), "BadSignature", 401);
    assert.equal(await snapshotKv(gw.kv), before);
    // A signature over another purpose (register) does not log in either.
    // The honest owner can still use the same challenge: a bad attempt does not burn it.
    const good = {
      publicKey: honest.publicKey,
      nonce: ch.nonce,
      signature: await honest.signLogin(ch),
    };
    const r = await honest.request<{ token: string }>("POST", "/v1/login", good, false);
    assert.match(r.token, /^v4\.public\./);
    const m = await metrics(gw.url);
    assert.equal(metricValue(m, 'wavry_gateway_refusals_total{kind="bad_signature"}'), 2);
  } finally {
    await gw.stop();
  }
});

Deno.test("an expired challenge is refused", async () => {
  const gw = await startTestGateway({ challengeTtlMs: 30_000 });
  try {
    const { client } = newClient(gw.url);
    await client.register("pc", "user");
    const ch = await client.challenge("login");
    const body = {
      publicKey: client.publicKey,
      nonce: ch.nonce,
      signature: await client.signLogin(ch),
    };
    gw.advance(30_001);
    await rejects(client.request("POST", "/v1/login", body, false), "ChallengeExpired", 401);
    const m = await metrics(gw.url);
    assert.equal(metricValue(m, 'wavry_gateway_refusals_total{kind="challenge_expired"}'), 1);
  } finally {
    await gw.stop();
  }
});

Deno.test("a challenge for one purpose or key cannot be used for another", async () => {
  const gw = await startTestGateway();
  try {
    const a = newClient(gw.url).client;
    const b = newClient(gw.url).client;
    await a.register("a", "user");
    await b.register("b", "user");
    const chA = await a.challenge("login");
    // b signs a's nonce: the challenge was issued for a's key.
    const body = { publicKey: b.publicKey, nonce: chA.nonce, signature: await b.signLogin(chA) };
    await rejects(b.request("POST", "/v1/login", body, false), "ChallengeUnknown", 401);
    const reg = await a.challenge("register");
    const body2 = { publicKey: a.publicKey, nonce: reg.nonce, signature: await a.signLogin(reg) };
    await rejects(a.request("POST", "/v1/login", body2, false), "ChallengeUnknown", 401);
  } finally {
    await gw.stop();
  }
});

Deno.test("tokens: expired, tampered or missing are refused", async () => {
  const gw = await startTestGateway({ tokenTtlMs: 60_000 });
  try {
    const host = await gw.peer("h", "host");
    host.autoRelogin = false;
    await host.listAllowed();
    const good = host.token!;
    host.token = good.slice(0, -2) + (good.endsWith("A") ? "BB" : "AA");
    await rejects(host.listAllowed(), "Unauthenticated", 401);
    host.token = undefined;
    await rejects(host.listAllowed(), "Unauthenticated", 401);
    host.token = good;
    gw.advance(60_001);
    await rejects(host.listAllowed(), "Unauthenticated", 401);
    // With automatic re-login (the default) the client gets a fresh token and carries on.
    host.autoRelogin = true;
    assert.deepEqual(await host.listAllowed(), []);
    assert.notEqual(host.token, good);
  } finally {
    await gw.stop();
  }
});

Deno.test("login rate limit per address and per identity triggers and is counted", async () => {
  const gw = await startTestGateway({
    loginLimit: {
      perAddress: { burst: 1000, perSecond: 0.001 },
      perIdentity: { burst: 3, perSecond: 0.001 },
    },
  });
  try {
    const { client } = newClient(gw.url);
    // register = challenge + register: two tokens of the identity's three.
    await client.register("pc", "user");
    await client.challenge("login");
    await rejects(client.challenge("login"), "RateLimited", 429);
    const m = await metrics(gw.url);
    assert.equal(
      metricValue(m, 'wavry_gateway_refusals_total{kind="rate_limit_login_identity"}'),
      1,
    );
  } finally {
    await gw.stop();
  }
  const gw2 = await startTestGateway({
    loginLimit: { perAddress: { burst: 4, perSecond: 0.001 } },
  });
  try {
    for (let i = 0; i < 4; i++) await newClient(gw2.url).client.challenge("login");
    await rejects(newClient(gw2.url).client.challenge("login"), "RateLimited", 429);
    const m = await metrics(gw2.url);
    assert.equal(
      metricValue(m, 'wavry_gateway_refusals_total{kind="rate_limit_login_address"}'),
      1,
    );
    assert.equal(metricValue(m, 'wavry_gateway_errors_total{code="RateLimited"}'), 1);
  } finally {
    await gw2.stop();
  }
});

Deno.test("health and metrics endpoints answer", async () => {
  const gw = await startTestGateway();
  try {
    const h = await fetch(`${gw.url}/health`);
    assert.equal(h.status, 200);
    const body = await h.json();
    assert.equal(body.status, "ok");
    assert.equal(body.instance, gw.gateway.instance);
    const m = await fetch(`${gw.url}/metrics`);
    assert.equal(m.status, 200);
    assert.match(m.headers.get("content-type") ?? "", /text\/plain/);
    const text = await m.text();
    for (
      const name of [
        "wavry_gateway_logins_total",
        "wavry_gateway_refusals_total",
        "wavry_gateway_signaling_messages_total",
        "wavry_gateway_errors_total",
        "wavry_gateway_connected_peers",
        "wavry_gateway_live_relays",
      ]
    ) assert.ok(text.includes(`# TYPE ${name}`), name);
    const nf = await fetch(`${gw.url}/nope`);
    assert.equal(nf.status, 404);
    assert.equal((await nf.json()).code, "NotFound");
  } finally {
    await gw.stop();
  }
});
