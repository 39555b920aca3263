/**
 * TunTunnel's contract without a network: a device appears and goes with
 * close(), bad input is refused with a typed error and changes nothing.
 * Needs CAP_NET_ADMIN (root), as TUN devices do; the IP path is covered by
 * tools/linkemu/tcp_tunnel_realtime_test.ts.
 */
import assert from "node:assert/strict";
import { NativeError } from "../ffi/errors.ts";
import { TunTunnel } from "./tun_tunnel.ts";

async function linkExists(name: string): Promise<boolean> {
  const out = await new Deno.Command("ip", {
    args: ["link", "show", name],
    stdout: "null",
    stderr: "null",
  })
    .output();
  return out.success;
}

Deno.test("TunTunnel: the device lives from open to close; bad input is refused", async () => {
  const name = `wtt${Deno.pid % 100000}`;
  const t = TunTunnel.open(name);
  try {
    assert.equal(t.device, name);
    assert.ok(t.port > 0 && t.port < 65536);
    assert.ok(await linkExists(name));
    assert.throws(() => t.start({ hostname: "localhost", port: 9 }), RangeError);
    assert.throws(() => t.start({ hostname: "127.0.0.1", port: 0 }), NativeError);
    assert.deepEqual(Object.values(t.stats()), new Array(10).fill(0));
    assert.throws(() => TunTunnel.open("x".repeat(16)), NativeError);
  } finally {
    t.close();
    t.close(); // idempotent
  }
  assert.equal(await linkExists(name), false);
  assert.deepEqual(Object.values(t.stats()), new Array(10).fill(0));
  assert.throws(() => t.start({ hostname: "127.0.0.1", port: 9 }), RangeError);
});
