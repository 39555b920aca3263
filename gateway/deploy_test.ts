/**
 * The Deno Deploy entrypoint runs unchanged under `deno serve` (the same
 * `export default { fetch }` contract Deploy uses), configured only by
 * environment variables.
 */
import assert from "node:assert/strict";
import { generateIdentity } from "../crypto/identity.ts";
import { GatewayClient } from "./client.ts";

Deno.test("gateway/deploy.ts serves under `deno serve` with its key from the environment", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wavry-deploy-" });
  const seed = crypto.getRandomValues(new Uint8Array(32));
  // A free port: `deno serve --port 0` does not say which port it got when quiet.
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const url = `http://127.0.0.1:${port}`;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "serve",
      "-A",
      "--quiet",
      "--host",
      "127.0.0.1",
      "--port",
      String(port),
      new URL("./deploy.ts", import.meta.url).pathname,
    ],
    env: {
      WAVRY_GATEWAY_SEED: btoa(String.fromCharCode(...seed)).replace(/\+/g, "-").replace(/\//g, "_")
        .replace(/=+$/, ""),
      WAVRY_GATEWAY_ID: "deploy-test",
      WAVRY_GATEWAY_KV: `${dir}/kv`,
    },
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  try {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const up = await fetch(`${url}/health`).then((r) => r.ok, () => false);
      if (up) break;
      if (Date.now() > deadline) throw new Error("deno serve did not come up");
      await new Promise((r) => setTimeout(r, 100));
    }
    const user = new GatewayClient(url, generateIdentity());
    await user.register("phone", "user");
    await user.login();
    const key = await user.leaseKey();
    assert.equal(key.issuer, "deploy-test");
    const sig = await user.openSignaling();
    await sig.close();
  } finally {
    // `deno serve` drains gracefully on SIGTERM; it holds nothing worth waiting for here.
    child.kill("SIGKILL");
    await child.status;
    await Deno.remove(dir, { recursive: true });
  }
});
