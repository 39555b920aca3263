import assert from "node:assert/strict";
import { inspect } from "node:util";
import { ed25519 } from "@noble/curves/ed25519.js";
import { identityFromSeed } from "./identity.ts";
import {
  encodeIdentityFile,
  IDENTITY_FILE_MAGIC,
  IdentityFileError,
  loadOrCreateIdentity,
  parseIdentityFile,
  protectIdentity,
  saveIdentity,
} from "./identity_file.ts";

const SEED = new Uint8Array(32).map((_, i) => 0xa0 + i);
const ID = identityFromSeed(SEED);

function b64url(b: Uint8Array): string {
  return btoa(String.fromCharCode(...b)).replace(/\+/g, "-").replace(/\//g, "_")
    .replace(/=+$/, "");
}

const SECRET_B64 = b64url(SEED);
const SECRET_HEX = Array.from(SEED, (x) => x.toString(16).padStart(2, "0")).join("");

function assertHidesSecret(rendered: string, what: string): void {
  assert.ok(!rendered.includes(SECRET_B64), `${what} leaks base64 secret: ${rendered}`);
  assert.ok(!rendered.includes(SECRET_HEX), `${what} leaks hex secret`);
  // Decimal byte lists: "160, 161, 162", or JSON's {"0":160,"1":161,...}.
  assert.ok(!/160\D{1,8}161\D{1,8}162/.test(rendered), `${what} leaks secret bytes: ${rendered}`);
  assert.ok(
    !/"0":\s*160\s*,\s*"1":\s*161/.test(rendered),
    `${what} leaks secret bytes: ${rendered}`,
  );
}

Deno.test("identity file: encode then parse round-trips", () => {
  const text = encodeIdentityFile(ID);
  const lines = text.split("\n");
  assert.ok(lines[0].startsWith("# Wavry identity key. Keep secret."));
  assert.equal(lines[1], IDENTITY_FILE_MAGIC);
  assert.equal(lines[2], `public: ${b64url(ID.publicKey)}`);
  assert.equal(lines[3], `secret: ${SECRET_B64}`);
  assert.ok(text.endsWith("\n"));
  const r = parseIdentityFile(text);
  if (!r.ok) assert.fail(r.detail);
  assert.deepEqual(Uint8Array.from(r.identity.publicKey), ID.publicKey);
  assert.deepEqual(Uint8Array.from(r.identity.secretKey), SEED);
  // The wrapped secret is still usable as key bytes.
  const sig = ed25519.sign(new Uint8Array([1, 2, 3]), r.identity.secretKey);
  assert.ok(ed25519.verify(sig, new Uint8Array([1, 2, 3]), r.identity.publicKey));
});

Deno.test("identity file: tolerant of comments, blank lines, CRLF, key order", () => {
  const text = [
    "",
    "# comment",
    IDENTITY_FILE_MAGIC,
    "# another",
    `secret:   ${SECRET_B64}  `,
    "",
    `public: ${b64url(ID.publicKey)}`,
  ].join("\r\n");
  const r = parseIdentityFile(text);
  if (!r.ok) assert.fail(r.detail);
  assert.deepEqual(Uint8Array.from(r.identity.publicKey), ID.publicKey);
});

Deno.test("identity file: malformed inputs", () => {
  const pub = `public: ${b64url(ID.publicKey)}`;
  const sec = `secret: ${SECRET_B64}`;
  const cases: string[] = [
    "",
    "# only a comment\n",
    `wavry-identity-v2\n${pub}\n${sec}\n`,
    `${pub}\n${sec}\n`,
    `${IDENTITY_FILE_MAGIC}\n${pub}\n`,
    `${IDENTITY_FILE_MAGIC}\n${sec}\n`,
    `${IDENTITY_FILE_MAGIC}\n${pub}\n${pub}\n${sec}\n`,
    `${IDENTITY_FILE_MAGIC}\n${pub}\n${sec}\nextra: 1\n`,
    `${IDENTITY_FILE_MAGIC}\npublic: ${b64url(ID.publicKey)}=\n${sec}\n`,
    `${IDENTITY_FILE_MAGIC}\npublic: ${b64url(ID.publicKey.subarray(1))}\n${sec}\n`,
    `${IDENTITY_FILE_MAGIC}\n${pub}\nsecret: ${SECRET_B64.slice(0, -1)}+\n`,
    `${IDENTITY_FILE_MAGIC}\n${pub}\nsecret: ${SECRET_B64} trailing\n`,
    "x".repeat(100_000),
  ];
  for (const text of cases) {
    const r = parseIdentityFile(text);
    assert.equal(r.ok, false, JSON.stringify(text.slice(0, 80)));
    if (!r.ok) {
      assert.equal(r.kind, "IdentityFileMalformed", r.detail);
      assertHidesSecret(r.detail, "detail");
    }
  }
  const nonString = parseIdentityFile(undefined as unknown as string);
  assert.equal(nonString.ok, false);
});

Deno.test("identity file: public key not matching the seed is a mismatch", () => {
  const other = identityFromSeed(new Uint8Array(32).fill(5));
  const text = encodeIdentityFile({ publicKey: other.publicKey, secretKey: SEED });
  const r = parseIdentityFile(text);
  assert.equal(r.ok, false);
  if (!r.ok) {
    assert.equal(r.kind, "IdentityFileMismatch");
    assertHidesSecret(r.detail, "detail");
  }
});

Deno.test("identity file: the secret never shows in logs or serializations", () => {
  const parsed = parseIdentityFile(encodeIdentityFile(ID));
  assert.ok(parsed.ok);
  for (const id of [parsed.identity, protectIdentity(ID)]) {
    assertHidesSecret(Deno.inspect(id), "Deno.inspect(id)");
    assertHidesSecret(Deno.inspect({ nested: { id } }, { depth: 10 }), "Deno.inspect(nested)");
    assertHidesSecret(Deno.inspect(id, { getters: true, showHidden: true }), "inspect getters");
    assertHidesSecret(inspect(id, { showHidden: true, getters: true }), "util.inspect");
    assertHidesSecret(JSON.stringify(id), "JSON.stringify(id)");
    assertHidesSecret(JSON.stringify({ id }), "JSON.stringify nested");
    assertHidesSecret(String(id), "String(id)");
    assertHidesSecret(`${id}`, "template");
    assertHidesSecret(Deno.inspect(id.secretKey), "Deno.inspect(secretKey)");
    assertHidesSecret(String(id.secretKey), "String(secretKey)");
    assertHidesSecret(JSON.stringify(id.secretKey), "JSON.stringify(secretKey)");
    assertHidesSecret(id.secretKey.toLocaleString(), "toLocaleString");
    // The public half is shown, so logs stay useful.
    assert.ok(String(id).includes(b64url(ID.publicKey)));
    assert.ok(JSON.stringify(id).includes(b64url(ID.publicKey)));
    // console.log goes through the same inspect machinery; capture it.
    const logged: string[] = [];
    const original = console.log;
    console.log = (...args: unknown[]) => {
      logged.push(args.map((a) => Deno.inspect(a)).join(" "));
    };
    try {
      console.log(id, id.secretKey);
    } finally {
      console.log = original;
    }
    assertHidesSecret(logged.join("\n"), "console.log");
  }
  // Sanity check of the checker itself: the raw seed would be caught.
  assert.throws(() => assertHidesSecret(Deno.inspect(SEED), "raw"));
  assert.throws(() => assertHidesSecret(JSON.stringify(ID), "raw"));
});

Deno.test("identity file: loadOrCreateIdentity creates 0600 in a 0700 directory", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/nested/wavry/identity.key`;
    const created = await loadOrCreateIdentity(path);
    const st = await Deno.stat(path);
    assert.equal(st.mode! & 0o777, 0o600);
    const dst = await Deno.stat(`${dir}/nested/wavry`);
    assert.equal(dst.mode! & 0o777, 0o700);
    assert.equal(created.publicKey.length, 32);
    assert.deepEqual(
      Uint8Array.from(ed25519.getPublicKey(created.secretKey)),
      Uint8Array.from(created.publicKey),
    );
    assertHidesSecret(Deno.inspect(created), "created");
    // Loading again yields the same identity.
    const again = await loadOrCreateIdentity(path);
    assert.deepEqual(Uint8Array.from(again.secretKey), Uint8Array.from(created.secretKey));
    // No temporary files are left behind.
    const names = [];
    for await (const e of Deno.readDir(`${dir}/nested/wavry`)) names.push(e.name);
    assert.deepEqual(names, ["identity.key"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("identity file: concurrent creators agree on one identity", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/id.key`;
    const ids = await Promise.all(
      Array.from({ length: 8 }, () => loadOrCreateIdentity(path)),
    );
    for (const id of ids) {
      assert.deepEqual(Uint8Array.from(id.publicKey), Uint8Array.from(ids[0].publicKey));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("identity file: saveIdentity writes 0600 and loads back", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/sub/id.key`;
    await saveIdentity(path, ID);
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    assert.equal(await Deno.readTextFile(path), encodeIdentityFile(ID));
    const loaded = await loadOrCreateIdentity(path);
    assert.deepEqual(Uint8Array.from(loaded.secretKey), SEED);
    // Overwrite with another identity.
    const other = identityFromSeed(new Uint8Array(32).fill(9));
    await saveIdentity(path, other);
    const reloaded = await loadOrCreateIdentity(path);
    assert.deepEqual(Uint8Array.from(reloaded.publicKey), other.publicKey);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("identity file: refuses group/world-accessible files", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/id.key`;
    await saveIdentity(path, ID);
    for (const mode of [0o644, 0o640, 0o604, 0o660]) {
      await Deno.chmod(path, mode);
      await assert.rejects(loadOrCreateIdentity(path), (e: unknown) => {
        assert.ok(e instanceof IdentityFileError);
        assert.equal(e.kind, "IdentityFilePermissions");
        assert.match(e.message, /chmod 600/);
        assertHidesSecret(e.message, "error message");
        return true;
      });
    }
    await Deno.chmod(path, 0o600);
    assert.ok(await loadOrCreateIdentity(path));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("identity file: a corrupt or mismatched file is an error, not replaced", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/id.key`;
    await Deno.writeTextFile(path, "garbage\n", { mode: 0o600 });
    await Deno.chmod(path, 0o600);
    await assert.rejects(loadOrCreateIdentity(path), (e: unknown) => {
      assert.ok(e instanceof IdentityFileError);
      assert.equal(e.kind, "IdentityFileMalformed");
      return true;
    });
    assert.equal(await Deno.readTextFile(path), "garbage\n");
    const other = identityFromSeed(new Uint8Array(32).fill(5));
    await Deno.writeTextFile(
      path,
      encodeIdentityFile({ publicKey: other.publicKey, secretKey: SEED }),
    );
    await assert.rejects(loadOrCreateIdentity(path), (e: unknown) => {
      assert.ok(e instanceof IdentityFileError);
      assert.equal(e.kind, "IdentityFileMismatch");
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
