import assert from "node:assert/strict";
import fc from "fast-check";
import { NativeError, NativeStatus } from "../ffi/errors.ts";
import { monotonicMicros } from "../ffi/library.ts";
import { udpNative } from "../ffi/udp.ts";
import {
  AddressCache,
  addressFromRecord,
  NativeUdpSocket,
  ReceivedBatch,
  receivedBatchBytes,
  sendErrorKind,
} from "./native_udp.ts";
import type { WorkerJob, WorkerResult } from "./native_udp_test_worker.ts";

const bytes = (...values: number[]) => new Uint8Array(values);

/** What /proc says fd is now ("socket:[inode]"), or "" if it is closed. */
function fdTarget(fd: number): string {
  try {
    return Deno.readLinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return "";
  }
}

/** Receives until `count` datagrams arrived (or `ms` passed); returns them with their batches. */
async function receiveAll(socket: NativeUdpSocket, count: number, ms = 2000) {
  const datagrams: Uint8Array[] = [];
  const batches: ReceivedBatch[] = [];
  const deadline = performance.now() + ms;
  while (datagrams.length < count && performance.now() < deadline) {
    const batch = await socket.receiveBatch(64, Math.max(1, deadline - performance.now()));
    batches.push(batch);
    for (let i = 0; i < batch.count; i++) datagrams.push(batch.datagram(i).slice());
  }
  return { datagrams, batches };
}

Deno.test("IPv4 loopback: send, source address, receive time on the monotonic clock", async () => {
  const a = NativeUdpSocket.open({ hostname: "127.0.0.1", port: 0 });
  const b = NativeUdpSocket.open({ hostname: "127.0.0.1", port: 0 });
  try {
    assert.ok(a.localAddr.port > 0);
    assert.equal(a.family, 4);
    assert.ok(a.receiveBufferBytes > 0 && a.sendBufferBytes > 0);
    const before = monotonicMicros();
    assert.equal(a.send(bytes(1, 2, 3), b.localAddr), true);
    const batch = await b.receiveBatch(8, 1000);
    const after = monotonicMicros();
    assert.equal(batch.count, 1);
    assert.deepEqual(batch.datagram(0), bytes(1, 2, 3));
    assert.deepEqual(batch.source(0), { hostname: "127.0.0.1", port: a.localAddr.port });
    assert.equal(batch.sourceKey(0), `127.0.0.1|${a.localAddr.port}`);
    const t = batch.receivedAtMicros(0);
    assert.ok(t >= before - 1000 && t <= after, `${before} <= ${t} <= ${after}`);
    assert.equal(a.counters.datagramsSent, 1);
    assert.equal(b.counters.datagramsReceived, 1);
    assert.throws(() => batch.datagram(1), RangeError);
  } finally {
    await a.close();
    await b.close();
  }
});

Deno.test("IPv6 loopback, and a dual-stack socket reports IPv4 peers as IPv4", async () => {
  const v6 = NativeUdpSocket.open({ hostname: "::1", port: 0 });
  const dual = NativeUdpSocket.open({ hostname: "::", port: 0 });
  const v4 = NativeUdpSocket.open({ hostname: "127.0.0.1", port: 0 });
  try {
    assert.equal(v6.family, 6);
    assert.equal(v6.send(bytes(6), { hostname: "::1", port: dual.localAddr.port }), true);
    assert.equal(v4.send(bytes(4), { hostname: "127.0.0.1", port: dual.localAddr.port }), true);
    const { datagrams, batches } = await receiveAll(dual, 2);
    assert.deepEqual(datagrams.map((d) => d[0]).sort(), [4, 6]);
    const sources = batches.flatMap((b) => Array.from({ length: b.count }, (_, i) => b.source(i)));
    assert.ok(sources.some((s) => s.hostname === "::1" && s.port === v6.localAddr.port));
    assert.ok(sources.some((s) => s.hostname === "127.0.0.1" && s.port === v4.localAddr.port));
    // The dual-stack socket answers an IPv4 peer by its IPv4 address.
    assert.equal(dual.send(bytes(9), { hostname: "127.0.0.1", port: v4.localAddr.port }), true);
    const back = await v4.receiveBatch(4, 1000);
    assert.deepEqual(back.datagram(0), bytes(9));
    // An IPv4-only socket cannot reach an IPv6 address: typed error, nothing counted.
    assert.throws(
      () => v4.send(bytes(1), { hostname: "::1", port: 9 }),
      (e) => e instanceof NativeError && e.code === NativeStatus.InvalidArgument,
    );
    assert.equal(v4.counters.datagramsSent, 1); // only the earlier one
  } finally {
    await v6.close();
    await dual.close();
    await v4.close();
  }
});

Deno.test("a batch of 64 goes out in one sendBatch and arrives in order from one source", async () => {
  const a = NativeUdpSocket.open({ hostname: "127.0.0.1", port: 0 });
  const b = NativeUdpSocket.open({ hostname: "127.0.0.1", port: 0 });
  try {
    const out = Array.from({ length: 64 }, (_, i) => new Uint8Array(1200).fill(i));
    assert.equal(a.sendBatch(out, b.localAddr), 64);
    assert.equal(a.counters.datagramsSent, 64);
    assert.equal(a.counters.bytesSent, 64 * 1200);
    const { datagrams, batches } = await receiveAll(b, 64);
    assert.equal(datagrams.length, 64);
    datagrams.forEach((d, i) => assert.deepEqual(d, out[i]));
    const first = batches[0];
    assert.ok(first.count > 1);
    assert.equal(first.sameSource(0, first.count - 1), true);
    assert.equal(first.source(0), first.source(first.count - 1)); // same cached object
    assert.equal(b.counters.datagramsReceived, 64);
    assert.equal(b.counters.truncated, 0);
  } finally {
    await a.close();
    await b.close();
  }
});

Deno.test("sendPacked sends datagrams lying back to back without copying; offsetOf/storedLength find them", async () => {
  const a = NativeUdpSocket.open({ hostname: "127.0.0.1", port: 0 });
  const b = NativeUdpSocket.open({ hostname: "127.0.0.1", port: 0 });
  try {
    const lengths = Int32Array.from({ length: 40 }, (_, i) => 1 + ((i * 37) % 1200));
    const total = lengths.reduce((x, y) => x + y, 0);
    const packed = new Uint8Array(total + 100).map((_, i) => i * 13);
    assert.equal(a.sendPacked(packed, lengths, 40, b.localAddr), 40);
    assert.equal(a.counters.datagramsSent, 40);
    assert.equal(a.counters.bytesSent, total);
    assert.throws(() => a.sendPacked(packed, lengths, 41, b.localAddr), RangeError);
    assert.throws(() => a.sendPacked(packed.subarray(0, total - 1), lengths, 40, b.localAddr));
    const { datagrams, batches } = await receiveAll(b, 40);
    let at = 0;
    datagrams.forEach((d, i) => {
      assert.deepEqual(d, packed.subarray(at, at + lengths[i]));
      at += lengths[i];
    });
    const first = batches[0];
    const view = new Uint8Array(first.buffer, first.offsetOf(0), first.storedLength(0));
    assert.deepEqual(view, first.datagram(0));
    assert.throws(() => first.offsetOf(first.count), RangeError);
  } finally {
    await a.close();
    await b.close();
  }
});

Deno.test("an oversized datagram is cut to its slot and reported as truncated", async () => {
  const a = NativeUdpSocket.open({ hostname: "127.0.0.1", port: 0 });
  const b = NativeUdpSocket.open({ hostname: "127.0.0.1", port: 0 });
  try {
    const big = new Uint8Array(3000).map((_, i) => i & 0xff);
    assert.equal(a.send(big, b.localAddr), true);
    assert.equal(a.send(bytes(7), b.localAddr), true);
    const batch = await b.receiveBatch(4, 1000, { slotBytes: 1500 });
    assert.equal(batch.count, 2);
    assert.equal(batch.truncated(0), true);
    assert.equal(batch.wireLength(0), 3000);
    assert.deepEqual(batch.datagram(0), big.subarray(0, 1500));
    assert.equal(batch.truncated(1), false);
    assert.deepEqual(batch.datagram(1), bytes(7));
    assert.equal(b.counters.truncated, 1);
    // Too big for UDP at all: refused, counted as tooBig, returns false.
    assert.equal(a.send(new Uint8Array(70_000), b.localAddr), false);
    assert.equal(a.counters.sendErrors.tooBig, 1);
    assert.equal(sendErrorKind(11), "again");
  } finally {
    await a.close();
    await b.close();
  }
});

Deno.test("a blocked receiveBatch returns promptly on wake() and on close()", async () => {
  const s = NativeUdpSocket.open({ hostname: "127.0.0.1", port: 0 });
  const inode = fdTarget(s.fd);
  try {
    let started = performance.now();
    const woken = s.receiveBatch(8, -1);
    setTimeout(() => s.wake(), 20);
    const w = await woken;
    assert.equal(w.woken, true);
    assert.equal(w.count, 0);
    assert.ok(performance.now() - started < 1000);
    assert.equal(s.counters.wakeups, 1);
    // A timeout with nothing to read: count 0, not woken, not closed.
    const idle = await s.receiveBatch(8, 10);
    assert.deepEqual([idle.count, idle.woken, idle.closed], [0, false, false]);

    started = performance.now();
    const blocked = s.receiveBatch(8, -1);
    await new Promise((r) => setTimeout(r, 20));
    const closing = s.close();
    const c = await blocked;
    await closing;
    assert.equal(c.closed, true);
    assert.ok(performance.now() - started < 1000, `${performance.now() - started} ms`);
    assert.equal((await s.receiveBatch(8, 1000)).closed, true);
    assert.throws(
      () => s.send(bytes(1), s.localAddr),
      (e) => (e as NativeError).codeName === "Closed",
    );
    assert.throws(
      () => NativeUdpSocket.attach(s.fd),
      (e) => (e as NativeError).codeName === "Closed",
    );
    assert.notEqual(fdTarget(s.fd), inode);
  } finally {
    await s.close();
  }
});

Deno.test("interop with Deno.listenDatagram, both ways", async () => {
  const deno = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const native = NativeUdpSocket.open({ hostname: "127.0.0.1", port: 0 });
  try {
    const denoAddr = deno.addr as Deno.NetAddr;
    assert.equal(native.send(bytes(1, 1), { hostname: "127.0.0.1", port: denoAddr.port }), true);
    const [got, from] = await deno.receive();
    assert.deepEqual(got, bytes(1, 1));
    assert.equal((from as Deno.NetAddr).port, native.localAddr.port);
    await deno.send(bytes(2, 2), { transport: "udp", ...native.localAddr });
    const batch = await native.receiveBatch(4, 1000);
    assert.deepEqual(batch.datagram(0), bytes(2, 2));
    assert.deepEqual(batch.source(0), { hostname: "127.0.0.1", port: denoAddr.port });
  } finally {
    deno.close();
    await native.close();
  }
});

Deno.test("a batch buffer survives a transfer and is rebuilt from its one ArrayBuffer", async () => {
  const a = NativeUdpSocket.open({ hostname: "127.0.0.1", port: 0 });
  try {
    a.sendBatch([bytes(1), bytes(2, 2)], a.localAddr);
    const { batches } = await receiveAll(a, 2);
    const batch = batches[0];
    const moved = structuredClone(batch.buffer, { transfer: [batch.buffer] });
    assert.equal(batch.buffer.byteLength, 0); // detached: it really moved
    const rebuilt = ReceivedBatch.fromBuffer(moved, new AddressCache());
    assert.equal(rebuilt.count, batch.count);
    assert.deepEqual(rebuilt.datagram(0), bytes(1));
    assert.deepEqual(rebuilt.source(0), a.localAddr);
    assert.throws(
      () => ReceivedBatch.fromBuffer(new ArrayBuffer(8)),
      (e) => e instanceof RangeError || e instanceof NativeError,
    );
  } finally {
    await a.close();
  }
});

Deno.test("ReceivedBatch.fromBuffer: arbitrary bytes give a typed error or a batch that stays in bounds", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 512 }),
      fc.integer({ min: -2, max: 8 }),
      fc.integer({ min: -2, max: 64 }),
      fc.integer({ min: -2, max: 10 }),
      (body, count, slot, capacity) => {
        const buffer = new ArrayBuffer(16 + body.length);
        new Uint8Array(buffer).set(body, 16);
        new Int32Array(buffer, 0, 4).set([count, capacity, slot, 0]);
        let batch: ReceivedBatch;
        try {
          batch = ReceivedBatch.fromBuffer(buffer, new AddressCache());
        } catch (e) {
          assert.ok(e instanceof NativeError && e.code === NativeStatus.InvalidArgument, String(e));
          return;
        }
        assert.ok(batch.count <= batch.capacity);
        for (let i = 0; i < batch.count; i++) {
          assert.ok(batch.datagram(i).byteLength <= batch.slotBytes);
          batch.source(i);
        }
      },
    ),
    { numRuns: 2000 },
  );
  // A negative length (a corrupt buffer) reads as empty, not as a RangeError.
  const at = receivedBatchBytes(1, 8);
  const corrupt = new ArrayBuffer(at);
  new Int32Array(corrupt, 0, 4).set([1, 1, 8, 0]);
  new Int32Array(corrupt, 16 + 8, 1)[0] = -5;
  assert.equal(ReceivedBatch.fromBuffer(corrupt).datagram(0).byteLength, 0);
});

Deno.test("address records: native parse then format equals the WHATWG canonical form", () => {
  const error = new Uint8Array(256);
  const parse = (host: string, port: number) => {
    const record = new Uint8Array(20);
    const status = udpNative().wavry_udp_parse_address(
      new TextEncoder().encode(host + "\0"),
      port,
      record,
      error,
      error.length,
    );
    return { status, record };
  };
  fc.assert(
    fc.property(fc.ipV6(), fc.integer({ min: 0, max: 65535 }), (ip, port) => {
      const { status, record } = parse(ip, port);
      assert.equal(status, 0, ip);
      const canonical = new URL(`http://[${ip}]/`).hostname.slice(1, -1);
      const address = addressFromRecord(record);
      assert.equal(address.port, port);
      // IPv4-mapped addresses come back as IPv4.
      if (/^::ffff:[0-9a-f]{1,4}:[0-9a-f]{1,4}$/.test(canonical)) {
        assert.equal(record[0], 4);
      } else assert.equal(address.hostname, canonical);
    }),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(fc.ipV4(), (ip) => {
      assert.equal(addressFromRecord(parse(ip, 1).record).hostname, ip);
    }),
  );
  fc.assert(
    fc.property(fc.string(), (text) => {
      const { status, record } = parse(text.replaceAll("\0", ""), 1);
      if (status !== 0) {
        assert.equal(status, NativeStatus.InvalidArgument);
        return;
      }
      assert.ok(record[0] === 4 || record[0] === 6);
    }),
  );
  assert.equal(parse("1.2.3.4", 70000).status, NativeStatus.InvalidArgument);
  const cache = new AddressCache(2);
  const words = new Int32Array(parse("10.0.0.1", 5).record.buffer);
  const first = cache.lookup(words, 0);
  assert.equal(cache.lookup(words, 0), first);
  assert.equal(cache.misses, 1);
});

Deno.test("cross-worker: one socket, a worker sends 10,000 to it while another receives them in order", async () => {
  const socket = NativeUdpSocket.open({ hostname: "127.0.0.1", port: 0 });
  const inode = fdTarget(socket.fd);
  assert.match(inode, /^socket:/);
  const workers: Worker[] = [];
  try {
    const progress = new SharedArrayBuffer(4);
    const url = new URL("./native_udp_test_worker.ts", import.meta.url).href;
    const results = new Map<string, WorkerResult>();
    let receivedAll!: () => void;
    const receiverDone = new Promise<void>((r) => (receivedAll = r));
    const finished = (role: string) =>
      new Promise<WorkerResult>((resolve, reject) => {
        const worker = new Worker(url, { type: "module" });
        workers.push(worker);
        worker.onerror = (e) => {
          e.preventDefault();
          reject(new Error(`${role} worker: ${e.message}`));
        };
        worker.onmessage = (e) => {
          if ("received" in e.data) receivedAll();
          else {
            results.set(role, e.data);
            resolve(e.data);
          }
        };
        const job: WorkerJob = {
          role: role as "send" | "receive",
          fd: socket.fd,
          count: 10_000,
          size: 1200,
          progress,
          window: 512,
          to: socket.localAddr,
        };
        worker.postMessage(job);
      });
    const receiver = finished("receive");
    const sender = finished("send");
    const sent = await sender;
    assert.deepEqual(sent.errors, []);
    assert.equal(sent.done, 10_000);
    await Promise.race([
      receiverDone,
      receiver.then((r) => assert.fail(`receiver ended early: ${r.errors}`)),
    ]);
    // The opener closes from the main thread; the receiver, blocked in another worker, returns.
    await socket.close();
    const received = await receiver;
    assert.deepEqual(received.errors, []);
    assert.equal(received.done, 10_000);
    assert.equal(received.inOrder, true, `first out of order: ${received.firstBad}`);
    assert.equal(received.closedSeen, true);
    assert.ok(received.closeLatencyMs < 1000, `${received.closeLatencyMs} ms`);
    // Every worker detached and the opener closed: the descriptor is gone.
    assert.notEqual(fdTarget(socket.fd), inode);
  } finally {
    for (const w of workers) w.terminate();
    await socket.close();
  }
});

Deno.test("receiveBatchSync: takes what is queued, waits up to its timeout, sees wake and close; refuses while an async receive is pending", async () => {
  const a = NativeUdpSocket.open({ hostname: "127.0.0.1", port: 0 });
  const b = NativeUdpSocket.open({ hostname: "127.0.0.1", port: 0 });
  try {
    const empty = b.receiveBatchSync(8, 0);
    assert.equal(empty.count, 0);
    assert.equal(empty.closed, false);
    const t0 = performance.now();
    assert.equal(b.receiveBatchSync(8, 30).count, 0);
    assert.ok(performance.now() - t0 >= 20, "it waited for its timeout");
    assert.equal(a.sendBatch([bytes(1), bytes(2, 2), bytes(3, 3, 3)], b.localAddr), 3);
    const got: number[][] = [];
    let reuse: ArrayBuffer | undefined;
    for (let tries = 0; got.length < 3 && tries < 50; tries++) {
      const batch = b.receiveBatchSync(2, 100, { reuse });
      reuse = batch.buffer;
      assert.ok(batch.count <= 2);
      for (let i = 0; i < batch.count; i++) got.push([...batch.datagram(i)]);
    }
    assert.deepEqual(got, [[1], [2, 2], [3, 3, 3]]);
    assert.equal(b.counters.datagramsReceived, 3);
    // Passing the buffer back refills the same batch object, sources and all.
    const c = NativeUdpSocket.open({ hostname: "127.0.0.1", port: 0 });
    try {
      assert.equal(a.send(bytes(7), b.localAddr), true);
      const first = b.receiveBatchSync(4, 1000, { reuse });
      reuse = first.buffer;
      assert.deepEqual([first.count, [...first.datagram(0)]], [1, [7]]);
      assert.equal(first.source(0).port, a.localAddr.port);
      assert.equal(c.send(bytes(8, 8), b.localAddr), true);
      const second = b.receiveBatchSync(4, 1000, { reuse });
      assert.equal(second, first, "the same object, refilled");
      assert.deepEqual([second.count, [...second.datagram(0)]], [1, [8, 8]]);
      assert.equal(second.source(0).port, c.localAddr.port, "not the previous datagram's source");
      assert.throws(() => second.datagram(1), RangeError);
      const idle = b.receiveBatchSync(4, 0, { reuse });
      assert.equal(idle.count, 0);
      assert.equal(b.counters.datagramsReceived, 5);
    } finally {
      await c.close();
    }
    b.wake();
    const woken = b.receiveBatchSync(8, 1000);
    assert.equal(woken.woken, true);
    assert.throws(() => b.receiveBatchSync(0, 0), NativeError);
    const pending = b.receiveBatch(8, 50);
    assert.throws(() => b.receiveBatchSync(8, 0), NativeError);
    await pending;
    assert.equal(b.receiveBatchSync(8, 0).count, 0, "allowed again once it settled");
    await b.close();
    assert.equal(b.receiveBatchSync(8, 1000).closed, true);
  } finally {
    await a.close();
    await b.close();
  }
});
