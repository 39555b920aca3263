/**
 * The STUN server and client on real loopback sockets, and interop with
 * coturn both ways: coturn's `turnutils_stunclient` against our server, our
 * `StunBindingClient` against coturn's `turnserver`. Needs Debian's coturn
 * (`./wavry test` installs it; otherwise `apt-get install coturn`): without
 * it these tests fail with that hint rather than skip.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import {
  type BindingClientOptions,
  type BindingResult,
  NatDiscovery,
  type NatDiscoveryResult,
  StunBindingClient,
  type TransportAddress,
} from "../core/stun/mod.ts";
import { StunServer } from "./stun_server.ts";
import { parseStunArgs } from "./stun_main.ts";

function requireBinary(name: string): void {
  const found = new Deno.Command("sh", { args: ["-c", `command -v ${name}`], stdout: "null" })
    .outputSync().success;
  if (!found) {
    throw new Error(
      `${name} is missing: install Debian's coturn (apt-get install -y coturn, or run ./wavry test as root)`,
    );
  }
}

/** Runs a command with a hard timeout; returns its stdout. */
async function run(cmd: string, args: string[], timeoutMs: number): Promise<string> {
  const child = new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }, timeoutMs);
  try {
    const out = await child.output();
    return new TextDecoder().decode(out.stdout);
  } finally {
    clearTimeout(timer);
  }
}

/** Drives a binding client on a real socket with real timers until it has a result. */
async function bind(
  socket: Deno.DatagramConn,
  opts: BindingClientOptions,
): Promise<{ result: BindingResult; replyFrom?: TransportAddress }> {
  const c = new StunBindingClient(opts, performance.now());
  let replyFrom: TransportAddress | undefined;
  let receiving = true;
  const receiver = (async () => {
    while (receiving) {
      let got: [Uint8Array, Deno.Addr];
      try {
        got = await socket.receive();
      } catch {
        return;
      }
      const a = got[1] as Deno.NetAddr;
      if (c.handleResponse(got[0], performance.now())) {
        replyFrom = { hostname: a.hostname, port: a.port, family: "IPv4" };
      }
    }
  })();
  while (c.result() === undefined) {
    const now = performance.now();
    const bytes = c.pollTransmit(now);
    if (bytes) await socket.send(bytes, { transport: "udp", ...opts.server });
    c.handleTimeout(now);
    const next = c.pollTimeout();
    if (next === undefined) break;
    await new Promise((r) => setTimeout(r, Math.max(1, Math.min(20, next - now))));
  }
  receiving = false;
  void receiver;
  return { result: c.result()!, replyFrom };
}

function udp(hostname = "127.0.0.1"): Deno.DatagramConn {
  return Deno.listenDatagram({ hostname, port: 0, transport: "udp" });
}

function localOf(socket: Deno.DatagramConn): TransportAddress {
  const a = socket.addr as Deno.NetAddr;
  return { hostname: a.hostname, port: a.port, family: "IPv4" };
}

/** "IP:PORT" after `label` in coturn's output. */
function parseAfter(output: string, label: string): string[] {
  return [...output.matchAll(new RegExp(`${label}:?\\s*:?\\s*([0-9.]+:\\d+)`, "g"))].map((m) =>
    m[1]
  );
}

Deno.test("coturn turnutils_stunclient gets its real source address from our server", async () => {
  requireBinary("turnutils_stunclient");
  const seen: TransportAddress[] = [];
  const server = StunServer.start({
    listen: { hostname: "127.0.0.1", port: 0 },
    onDatagram: (from) => seen.push(from),
  });
  try {
    const out = await run(
      "turnutils_stunclient",
      ["-p", String(server.address.port), "127.0.0.1"],
      10_000,
    );
    const mapped = parseAfter(out, "UDP reflexive addr");
    assert(mapped.length > 0, `no reflexive address in coturn's output:\n${out}`);
    // The kernel-reported source of coturn's request, as our socket saw it.
    assertEquals(seen.length, 1);
    assertEquals(mapped[0], `${seen[0].hostname}:${seen[0].port}`);
    assertEquals(server.core.counters.successes, 1);
    const metrics = await server.metrics();
    assert(/wavry_stun_responses_total\{class="success",code="0"\} 1/.test(metrics), metrics);
  } finally {
    await server.close();
  }
});

Deno.test("coturn's RFC 5780 client completes against our four-socket server", async () => {
  requireBinary("turnutils_stunclient");
  const seen: TransportAddress[] = [];
  const server = StunServer.start({
    listen: { hostname: "127.0.0.1", port: 0 },
    alternate: { hostname: "127.0.0.2", port: 0 },
    onDatagram: (from) => seen.push(from),
  });
  try {
    const alt = server.alternateAddress!;
    const out = await run("turnutils_stunclient", [
      "-f",
      "-p",
      String(server.address.port),
      "127.0.0.1",
    ], 10_000);
    // Three exchanges: plain, change IP+port with RESPONSE-PORT, change IP+port with PADDING.
    assert(
      out.includes("RFC 5780 response 3"),
      `coturn did not finish its RFC 5780 tests:\n${out}`,
    );
    assertEquals(parseAfter(out, "Other addr")[0], `${alt.hostname}:${alt.port}`);
    const origins = parseAfter(out, "Response origin");
    assertEquals(origins[0], `127.0.0.1:${server.address.port}`);
    assert(origins.includes(`${alt.hostname}:${alt.port}`), out);
    const mapped = parseAfter(out, "UDP reflexive addr");
    assertEquals(mapped[0], `${seen[0].hostname}:${seen[0].port}`);
    assertEquals(server.core.counters.changed, 2);
  } finally {
    await server.close();
  }
});

Deno.test("our StunBindingClient gets its mapped address from coturn's turnserver", async () => {
  requireBinary("turnserver");
  const probe = udp();
  const port = localOf(probe).port;
  probe.close();
  const dir = await Deno.makeTempDir();
  const child = new Deno.Command("turnserver", {
    args: [
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
    stdout: "null",
    stderr: "null",
  }).spawn();
  const socket = udp();
  try {
    // The client's retransmissions cover turnserver's start-up.
    const { result } = await bind(socket, {
      server: { hostname: "127.0.0.1", port, family: "IPv4" },
      rto: 250,
    });
    assert(result.ok, JSON.stringify(result));
    assertEquals(result.mapped, localOf(socket));
  } finally {
    socket.close();
    child.kill("SIGKILL");
    await child.status;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("our client and server on loopback: CHANGE-REQUEST answers come from the named socket", async () => {
  const server = StunServer.start({
    listen: { hostname: "127.0.0.1", port: 0 },
    alternate: { hostname: "127.0.0.2", port: 0 },
  });
  const socket = udp();
  try {
    const p = server.address, a = server.alternateAddress!;
    const cases: [boolean, boolean, TransportAddress][] = [
      [false, false, p],
      [false, true, { ...p, port: a.port }],
      [true, false, { ...a, port: p.port }],
      [true, true, a],
    ];
    for (const [changeIp, changePort, want] of cases) {
      const { result, replyFrom } = await bind(socket, {
        server: p,
        rto: 100,
        attributes: [{ kind: "ChangeRequest", changeIp, changePort }],
      });
      assert(result.ok, JSON.stringify(result));
      assertEquals(result.mapped, localOf(socket));
      assertEquals(result.responseOrigin, want);
      assertEquals(replyFrom, want, "the kernel-reported source of the reply");
    }
  } finally {
    socket.close();
    await server.close();
  }
});

Deno.test("NAT discovery over real loopback sockets: no NAT, endpoint-independent both ways", async () => {
  const server = StunServer.start({
    listen: { hostname: "127.0.0.1", port: 0 },
    alternate: { hostname: "127.0.0.2", port: 0 },
  });
  const socket = udp();
  try {
    const d = new NatDiscovery(
      { server: server.address, localAddress: localOf(socket), rto: 100 },
      performance.now(),
    );
    let receiving = true;
    const receiver = (async () => {
      while (receiving) {
        try {
          const [bytes] = await socket.receive();
          d.handleDatagram(bytes, performance.now());
        } catch {
          return;
        }
      }
    })();
    while (!d.result()) {
      const now = performance.now();
      for (let t = d.pollTransmit(now); t; t = d.pollTransmit(now)) {
        await socket.send(t.bytes, { transport: "udp", ...t.to });
      }
      d.handleTimeout(now);
      await new Promise((r) => setTimeout(r, 5));
    }
    receiving = false;
    void receiver;
    const r: NatDiscoveryResult = d.result()!;
    assert(r.ok, JSON.stringify(r));
    assertEquals([r.mapping, r.filtering, r.natPresent], [
      "endpoint-independent",
      "endpoint-independent",
      false,
    ]);
  } finally {
    socket.close();
    await server.close();
  }
});

Deno.test("stun_main CLI: parses its flags, answers Binding, serves /metrics; bad flags exit 2", async () => {
  assertEquals(parseStunArgs([]), { listen: { hostname: "0.0.0.0", port: 3478 } });
  assertEquals(parseStunArgs(["--listen", "[::1]:3479", "--alternate", "[::2]:3480"]).listen, {
    hostname: "::1",
    port: 3479,
  });
  for (const bad of [["--listen"], ["--nope", "1"], ["--listen", "nohost"]]) {
    let threw = false;
    try {
      parseStunArgs(bad);
    } catch {
      threw = true;
    }
    assert(threw, bad.join(" "));
  }
  const main = new URL("./stun_main.ts", import.meta.url).pathname;
  const badRun = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", main, "--bogus", "x"],
    stdout: "null",
    stderr: "null",
  }).output();
  assertEquals(badRun.code, 2);

  const probe = udp();
  const port = localOf(probe).port;
  probe.close();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const metricsPort = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      main,
      "--listen",
      `127.0.0.1:${port}`,
      "--metrics",
      `127.0.0.1:${metricsPort}`,
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  const socket = udp();
  try {
    const { result } = await bind(socket, {
      server: { hostname: "127.0.0.1", port, family: "IPv4" },
      rto: 250,
    });
    assert(result.ok, JSON.stringify(result));
    assertEquals(result.mapped, localOf(socket));
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    assert(/wavry_stun_responses_total\{class="success",code="0"\} 1/.test(text), text);
  } finally {
    socket.close();
    child.kill("SIGTERM");
    await child.status;
  }
});

Deno.test("a dual-stack server on :: reports an IPv4 client's mapped address as IPv4", async () => {
  const server = StunServer.start({ listen: { hostname: "::", port: 0 } });
  const socket = udp();
  try {
    const { result } = await bind(socket, {
      server: { hostname: "127.0.0.1", port: server.address.port, family: "IPv4" },
      rto: 100,
    });
    assert(result.ok, JSON.stringify(result));
    assertEquals(result.mapped, localOf(socket));
  } finally {
    socket.close();
    await server.close();
  }
});
