import assert from "node:assert/strict";
import fc from "fast-check";
import { MAX_CANDIDATES, MAX_MESSAGE_BYTES, parsePeerMessage } from "./schema.ts";

const KEY = "A".repeat(42) + "E";

const candidate = fc.record({
  kind: fc.constantFrom("host", "srflx", "relay"),
  address: fc.ipV4(),
  port: fc.integer({ min: 1, max: 65535 }),
  priority: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
  foundation: fc.stringMatching(/^[A-Za-z0-9+/]{1,32}$/),
});
const id = fc.stringMatching(/^[A-Za-z0-9._:-]{1,64}$/);

/** Valid messages of every type. */
export const validMessage = fc.oneof(
  fc.record({ type: fc.constant("ping"), ref: id }, { requiredKeys: ["type"] }),
  fc.record({ type: fc.constant("auth"), token: fc.string({ maxLength: 100 }) }),
  fc.record({ type: fc.constant("connect"), to: fc.constant(KEY), needRelay: fc.boolean() }, {
    requiredKeys: ["type", "to"],
  }),
  fc.record({
    type: fc.constantFrom("offer", "answer"),
    sessionId: id,
    candidates: fc.array(candidate, { maxLength: MAX_CANDIDATES }),
  }),
  fc.record({ type: fc.constant("relay_request"), sessionId: id }),
  fc.record({
    type: fc.constant("outcome"),
    sessionId: id,
    result: fc.constantFrom("direct", "relay", "failed"),
  }),
);

Deno.test("parsePeerMessage accepts every valid message unchanged", () => {
  fc.assert(fc.property(validMessage, (m) => {
    const r = parsePeerMessage(JSON.stringify(m));
    assert.ok(r.ok, JSON.stringify(r));
    assert.deepEqual(r.message, JSON.parse(JSON.stringify(m)));
  }));
});

Deno.test("parsePeerMessage never throws and refuses junk with a typed code", () => {
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.json(), fc.string({ unit: "binary" })), (s) => {
      const r = parsePeerMessage(s);
      if (!r.ok) assert.ok(["BadJson", "BadMessage", "TooLarge"].includes(r.code));
    }),
    { numRuns: 2000 },
  );
});

Deno.test("parsePeerMessage refuses mutated valid messages", () => {
  // One extra field, a wrong-typed field, or a field removed: always refused.
  const mutated = validMessage.chain((m) => {
    const fields = Object.keys(m).filter((k) => k !== "type" && k !== "ref" && k !== "needRelay");
    if (fields.length === 0) return fc.constant({ ...m, extra: 1 });
    return fc.oneof(
      fc.constant({ ...m, extra: 1 }),
      fc.constantFrom(
        ...Object.keys(m).filter((k) => k !== "type" && k !== "ref" && k !== "needRelay"),
      )
        .map((k) => ({ ...m, [k]: { nested: true } })),
      fc.constant({ ...m, type: "nope" }),
    );
  });
  fc.assert(fc.property(mutated, (m) => {
    const r = parsePeerMessage(JSON.stringify(m));
    assert.equal(r.ok, false, JSON.stringify(m));
  }));
});

Deno.test("parsePeerMessage: edge cases", () => {
  assert.equal(parsePeerMessage(new Uint8Array(3)).ok, false);
  const big = parsePeerMessage(
    JSON.stringify({ type: "ping", pad: "x".repeat(MAX_MESSAGE_BYTES) }),
  );
  assert.ok(!big.ok && big.code === "TooLarge");
  // Multi-byte text: under the limit in UTF-16 units but over it in UTF-8 bytes.
  const wide = parsePeerMessage(
    JSON.stringify({ type: "ping", pad: "é".repeat(MAX_MESSAGE_BYTES / 2) }),
  );
  assert.ok(!wide.ok && wide.code === "TooLarge");
  const bad = parsePeerMessage(
    JSON.stringify({ type: "offer", sessionId: "s", candidates: [], ref: "r1", x: 1 }),
  );
  assert.ok(!bad.ok && bad.ref === "r1", "the ref survives a bad message");
  const port = parsePeerMessage(JSON.stringify({
    type: "offer",
    sessionId: "s",
    candidates: [{ kind: "host", address: "10.0.0.1", port: 70000, priority: 1, foundation: "f" }],
  }));
  assert.ok(!port.ok && port.code === "BadMessage" && port.message.includes("port"));
  const tooMany = parsePeerMessage(JSON.stringify({
    type: "answer",
    sessionId: "s",
    candidates: Array(MAX_CANDIDATES + 1).fill({
      kind: "host",
      address: "10.0.0.1",
      port: 1,
      priority: 1,
      foundation: "f",
    }),
  }));
  assert.equal(tooMany.ok, false);
});
