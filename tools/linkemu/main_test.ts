import assert from "node:assert/strict";

Deno.test("main.ts: forwards through the command-line emulator and writes its log", async () => {
  const target = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const peer = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const logPath = await Deno.makeTempFile({ suffix: ".jsonl" });
  const t = target.addr as Deno.NetAddr;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("./main.ts", import.meta.url).pathname,
      "--listen",
      "127.0.0.1:0",
      "--target",
      `127.0.0.1:${t.port}`,
      "--up-delay",
      "5",
      "--loss",
      "0",
      "--rate",
      "10mbit",
      "--queue",
      "50ms",
      "--log",
      logPath,
      "--rt",
      "0",
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  try {
    let port: number | undefined;
    while (port === undefined) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`emulator exited: ${out}`);
      out += value;
      const m = /peers -> 127\.0\.0\.1:(\d+)/.exec(out);
      if (m) port = Number(m[1]);
    }
    await peer.send(new TextEncoder().encode("hello"), {
      transport: "udp",
      hostname: "127.0.0.1",
      port,
    });
    const [d] = await target.receive();
    assert.equal(new TextDecoder().decode(d), "hello");
    child.kill("SIGTERM");
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      out += value;
    }
    assert.equal((await child.status).code, 0);
    assert.match(out, /up: in=1 out=1 /);
    const entries = (await Deno.readTextFile(logPath)).trim().split("\n").map((l) => JSON.parse(l));
    assert.equal(entries.length, 1);
    assert.equal(entries[0].fate, "delivered");
    assert.ok(entries[0].dueAt - entries[0].inAt >= 5);
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // already exited
    }
    await reader.cancel().catch(() => {});
    await child.status;
    target.close();
    peer.close();
    await Deno.remove(logPath);
  }
});

Deno.test("main.ts: a bad argument exits with status 2 and says which", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("./main.ts", import.meta.url).pathname, "--target", "nope"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 2);
  assert.match(new TextDecoder().decode(out.stderr), /--target: expects HOST:PORT/);
});
