import assert from "node:assert/strict";
import { defaultIdentityPath, joinOptionValues, parseAddress } from "./cli.ts";

Deno.test("cli: addresses parse or fail clearly; identity paths follow XDG", () => {
  assert.deepEqual(parseAddress("127.0.0.1:7700"), { hostname: "127.0.0.1", port: 7700 });
  assert.deepEqual(parseAddress("[::1]:9"), { hostname: "::1", port: 9 });
  assert.deepEqual(parseAddress("example.org:1"), { hostname: "example.org", port: 1 });
  assert.throws(() => parseAddress("7700"), /host:port/);
  assert.throws(() => parseAddress("a:70000"), /host:port/);
  assert.match(defaultIdentityPath("host"), /wavry\/host\.key$/);
});

Deno.test("cli: joinOptionValues keeps a key that starts with '-' as the option's value", () => {
  assert.deepEqual(
    joinOptionValues(["--expect-host", "-abc", "--port", "80", "x"], ["expect-host"]),
    ["--expect-host=-abc", "--port", "80", "x"],
  );
  assert.deepEqual(joinOptionValues(["--allow"], ["allow"]), ["--allow"]);
  assert.deepEqual(joinOptionValues(["--allow=k", "--allow", "-k"], ["allow"]), [
    "--allow=k",
    "--allow=-k",
  ]);
});
