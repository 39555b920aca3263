import assert from "node:assert/strict";
import fc from "fast-check";
import { PacketProtector } from "../crypto/transport.ts";
import { encodeFramesInto, type Frame } from "./frames.ts";
import { type MediaLaneState, MediaReceiver, MediaSender } from "./media_lane.ts";
import { establishedSessions, pumpSessions } from "./session_testing.ts";
import { Rng } from "./sim/rng.ts";
import {
  encodeHeader,
  FLAG_MEDIA_LANE,
  isMediaLaneDatagram,
  PacketType,
  RIFT_VERSION,
} from "./wire.ts";

/** Runs a handshake by handing datagrams across directly (no loss, no delay). */
function drain(sender: MediaSender, now: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let d; (d = sender.pollTransmit(now)) !== undefined;) out.push(d);
  return out;
}

Deno.test("media lane: detached halves carry video and audio; arrivals come back as FEEDBACK", () => {
  const { host, client } = establishedSessions(1);
  const hostLane = host.detachMedia();
  const clientLane = client.detachMedia();
  // Structured-cloneable, as a worker needs it.
  const sender = new MediaSender(structuredClone(hostLane), 5);
  const receiver = new MediaReceiver(structuredClone(clientLane), 5);
  sender.recordSentPackets();

  const data = new Rng(2).bytes(30_000);
  sender.sendAudio(1, 77, Uint8Array.of(1, 2, 3));
  sender.sendVideoFrame({ frameId: 1, captureTimeUs: 99, keyframe: true, data });
  const datagrams = drain(sender, 6);
  assert.ok(datagrams.length >= Math.ceil(30_000 / sender.maxVideoPayload));
  assert.ok(datagrams.every(isMediaLaneDatagram));
  for (const d of datagrams) assert.equal(receiver.handleDatagram(d, 7), undefined);

  const events = [];
  for (let e; (e = receiver.pollEvent()) !== undefined;) events.push(e);
  assert.deepEqual(events.map((e) => e.type), ["audio", "video-frame"]);
  const frame = events[1].type === "video-frame" ? events[1].frame : undefined;
  assert.deepEqual(frame?.data, data);
  assert.equal(receiver.stats.framesCompleted, 1);

  // The client's session lane reports the arrivals; the host sees them as feedback.
  const sent = sender.takeSent();
  assert.equal(sent.length, datagrams.length);
  client.reportMediaArrivals(receiver.takeArrivals(), receiver.lostTotal, 7);
  client.handleTimeout(7 + 20);
  pumpSessions(client, host, 27);
  const feedback = [];
  for (let e; (e = host.pollEvent()) !== undefined;) if (e.type === "feedback") feedback.push(e);
  const reported = feedback.flatMap((e) => e.report.arrivals.map((a) => a.packetNumber));
  assert.deepEqual(reported, sent.map((s) => s.packetNumber));
});

Deno.test("media lane: each lane refuses the other's packets", () => {
  const { host, client } = establishedSessions(3);
  const lane = client.detachMedia();
  const receiver = new MediaReceiver(lane, 0);
  // A session-lane packet offered to the media receiver.
  host.sendControl(Uint8Array.of(1));
  const control = host.pollTransmit(1)!;
  assert.equal(isMediaLaneDatagram(control), false);
  assert.equal(receiver.handleDatagram(control, 1), "WrongLane");
  // A media packet offered to a session whose media lane is detached.
  const sender = new MediaSender(host.detachMedia(), 0);
  sender.sendAudio(1, 1, Uint8Array.of(9));
  const media = sender.pollTransmit(1)!;
  assert.equal(client.handleDatagram(media, 1), "WrongLane");
  assert.equal(receiver.handleDatagram(media, 1), undefined);
  // Detaching twice, or sending media on a detached session, is a caller bug.
  assert.throws(() => client.detachMedia(), /already detached/);
  assert.throws(() => host.sendAudio(1, 1, Uint8Array.of(1)), /detached/);
});

Deno.test("media lane: a control frame sealed on the media lane is refused and changes nothing", () => {
  const { host, client } = establishedSessions(4);
  const hostLane = host.detachMedia();
  const receiver = new MediaReceiver(client.detachMedia(), 0);
  const forge = (frames: Frame[], pn: number) => {
    const protector = new PacketProtector(hostLane.keys, 0);
    for (let i = 0; i < pn; i++) protector.seal(() => {}, new Uint8Array(0), 0);
    const plaintext = new Uint8Array(1200);
    const sealed = protector.seal(
      (packetNumber, keyPhase, out) =>
        encodeHeader({
          version: RIFT_VERSION,
          type: PacketType.Sealed,
          flags: keyPhase | FLAG_MEDIA_LANE,
          connectionId: hostLane.peerConnectionId,
          packetNumber,
        }, out),
      plaintext.subarray(0, encodeFramesInto(frames, plaintext, 0)),
      0,
    );
    assert.ok(sealed.ok);
    return sealed.datagram;
  };
  const ping = forge([{ type: "ping", pingId: 1, sendTimeUs: 1 }], 0);
  assert.equal(receiver.handleDatagram(ping, 1), "UnexpectedFrame");
  // Nothing was committed: the same packet number still opens with a media frame.
  const audio = forge(
    [{ type: "audio", sequence: 1, captureTimeUs: 1, data: Uint8Array.of(5) }],
    0,
  );
  assert.equal(receiver.handleDatagram(audio, 1), undefined);
  assert.equal(receiver.stats.packetsReceived, 1);
  assert.equal(receiver.stats.dropped.UnexpectedFrame, 1);
});

Deno.test("media lane: arbitrary bytes never throw and are never accepted", () => {
  const { client } = establishedSessions(5);
  const lane: MediaLaneState = client.detachMedia();
  const receiver = new MediaReceiver(lane, 0);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 1300 }), fc.boolean(), (bytes, asMedia) => {
      if (asMedia && bytes.length >= 16) {
        bytes[0] = 0xc1;
        bytes[1] = PacketType.Sealed;
        bytes[2] |= FLAG_MEDIA_LANE;
      }
      assert.notEqual(receiver.handleDatagram(bytes, 1), undefined);
    }),
    { numRuns: 2_000 },
  );
  assert.equal(receiver.stats.packetsReceived, 0);
});

Deno.test("media lane: a frame that cannot be rebuilt is reported lost a reordering grace after a later one completes", () => {
  const { host, client } = establishedSessions(6);
  const sender = new MediaSender(host.detachMedia(), 0);
  const receiver = new MediaReceiver(client.detachMedia(), 0);
  const data = new Rng(7).bytes(5_000);
  sender.sendVideoFrame({ frameId: 1, captureTimeUs: 1, keyframe: true, data });
  const first = drain(sender, 1);
  sender.sendVideoFrame({ frameId: 2, captureTimeUs: 2, keyframe: false, data });
  const second = drain(sender, 1);
  // Frame 1 loses a fragment (no FEC): nothing can rebuild it.
  for (const d of first.slice(1)) receiver.handleDatagram(d, 2);
  for (const d of second) receiver.handleDatagram(d, 3);
  const events = [];
  for (let e; (e = receiver.pollEvent()) !== undefined;) events.push(e);
  assert.deepEqual(events.map((e) => e.type), ["video-frame"]);
  // Lost after the 20 ms reordering grace, long before the 150 ms reassembly deadline.
  assert.equal(receiver.pollTimeout(), 3 + 20);
  receiver.handleTimeout(23);
  for (let e; (e = receiver.pollEvent()) !== undefined;) events.push(e);
  assert.deepEqual(events.map((e) => e.type), ["video-frame", "video-frame-lost"]);
  assert.equal(receiver.stats.framesLost, 1);
});

Deno.test("input first: an input event queued behind a keyframe leaves before any of it", () => {
  const { host, client } = establishedSessions(8);
  while (host.pollEvent() !== undefined); // "established"
  // The client sends input; give it a large media backlog on the same session first.
  client.sendVideoFrame({
    frameId: 1,
    captureTimeUs: 1,
    keyframe: true,
    data: new Rng(9).bytes(200_000),
  });
  client.sendInput(Uint8Array.of(42));
  const first = client.pollTransmit(5)!;
  assert.equal(isMediaLaneDatagram(first), false, "the first datagram is the session lane's");
  assert.equal(host.handleDatagram(first, 5), undefined);
  const events = [];
  for (let e; (e = host.pollEvent()) !== undefined;) events.push(e);
  assert.deepEqual(events.map((e) => e.type), ["input"]);
  // The media backlog follows.
  assert.ok(isMediaLaneDatagram(client.pollTransmit(5)!));
});

Deno.test("selective retransmission: a NACKed fragment completes the frame, delivered before the later one", () => {
  const { host, client } = establishedSessions(10);
  const sender = new MediaSender(host.detachMedia(), 0);
  const receiver = new MediaReceiver(client.detachMedia(), 0);
  receiver.setRetransmission(20);
  const data = new Rng(11).bytes(5_000);
  sender.sendVideoFrame({ frameId: 1, captureTimeUs: 1, keyframe: true, data });
  const first = drain(sender, 1);
  sender.sendVideoFrame({ frameId: 2, captureTimeUs: 2, keyframe: false, data });
  const second = drain(sender, 1);
  for (const d of first.slice(1)) receiver.handleDatagram(d, 2);
  for (const d of second) receiver.handleDatagram(d, 3);
  const nack = receiver.pollEvent();
  assert.deepEqual(nack, { type: "nack", frameId: 1, indexes: [0] });
  // Frame 2 waits for frame 1 (the decoder needs them in order), within 1.5 RTT + grace.
  assert.equal(receiver.pollEvent(), undefined);
  assert.equal(receiver.pollTimeout(), 3 + 1.5 * 20 + 20);
  assert.equal(sender.retransmit(1, [0]), 1);
  for (const d of drain(sender, 10)) receiver.handleDatagram(d, 25);
  const events = [];
  for (let e; (e = receiver.pollEvent()) !== undefined;) events.push(e);
  assert.deepEqual(
    events.map((e) => e.type === "video-frame" ? e.frame.frameId : e.type),
    [1, 2],
  );
  assert.deepEqual(
    events[0].type === "video-frame" ? events[0].frame.data : undefined,
    data,
  );
  assert.equal(receiver.stats.retransmitRecoveries, 1);
  // A frame no longer held is a miss, not an error.
  assert.equal(sender.retransmit(999, [0]), 0);
  assert.equal(sender.stats.retransmitMisses, 1);
});

Deno.test("selective retransmission: without an RTT that fits the deadline, no NACK, lost after the grace", () => {
  const { host, client } = establishedSessions(12);
  const sender = new MediaSender(host.detachMedia(), 0);
  const receiver = new MediaReceiver(client.detachMedia(), 0);
  receiver.setRetransmission(200); // 1.5 RTT does not fit the 150 ms deadline
  const data = new Rng(13).bytes(5_000);
  sender.sendVideoFrame({ frameId: 1, captureTimeUs: 1, keyframe: true, data });
  const first = drain(sender, 1);
  sender.sendVideoFrame({ frameId: 2, captureTimeUs: 2, keyframe: false, data });
  for (const d of first.slice(1)) receiver.handleDatagram(d, 2);
  for (const d of drain(sender, 1)) receiver.handleDatagram(d, 3);
  assert.equal(receiver.pollEvent()?.type, "video-frame");
  receiver.handleTimeout(23);
  assert.equal(receiver.pollEvent()?.type, "video-frame-lost");
  assert.equal(receiver.stats.nacksSent, 0);
});

Deno.test("media lane FEC: losing any one datagram loses no frame (parity never shares a datagram with its group)", () => {
  const { host, client } = establishedSessions(9);
  const hostLane = host.detachMedia();
  const clientLane = client.detachMedia();
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 1, max: 4_000 }), { minLength: 1, maxLength: 6 }),
      fc.constantFrom(0.05, 0.2, 0.5),
      fc.boolean(),
      (sizes, parityRatio, audio) => {
        const sender = new MediaSender(structuredClone(hostLane), 5);
        sender.setFec({ parityRatio, scheme: 1, maxGroup: 64 });
        const rng = new Rng(sizes.length);
        const frames = sizes.map((n, i) => ({
          frameId: i + 1,
          captureTimeUs: 1000 + i,
          keyframe: i === 0,
          data: rng.bytes(n),
        }));
        for (const f of frames) {
          if (audio) sender.sendAudio(f.frameId, f.captureTimeUs, Uint8Array.of(1, 2, 3));
          sender.sendVideoFrame(f);
        }
        const datagrams = drain(sender, 6);
        for (let lost = 0; lost < datagrams.length; lost++) {
          const receiver = new MediaReceiver(structuredClone(clientLane), 5);
          datagrams.forEach((d, i) => i !== lost && receiver.handleDatagram(d, 7));
          const got = new Map<number, Uint8Array>();
          for (let e; (e = receiver.pollEvent()) !== undefined;) {
            if (e.type === "video-frame") got.set(e.frame.frameId, e.frame.data);
          }
          for (const f of frames) {
            assert.deepEqual(
              got.get(f.frameId),
              f.data,
              `frame ${f.frameId}, datagram ${lost} lost`,
            );
          }
        }
      },
    ),
    { numRuns: 60 },
  );
});
