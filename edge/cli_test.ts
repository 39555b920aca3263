import assert from "node:assert/strict";
import { defaultIdentityPath, parseAddress } from "./cli.ts";

Deno.test("cli: addresses parse or fail clearly; identity paths follow XDG", () => {
  assert.deepEqual(parseAddress("127.0.0.1:7700"), { hostname: "127.0.0.1", port: 7700 });
  assert.deepEqual(parseAddress("[::1]:9"), { hostname: "::1", port: 9 });
  assert.deepEqual(parseAddress("example.org:1"), { hostname: "example.org", port: 1 });
  assert.throws(() => parseAddress("7700"), /host:port/);
  assert.throws(() => parseAddress("a:70000"), /host:port/);
  assert.match(defaultIdentityPath("host"), /wavry\/host\.key$/);
});
