import assert from "node:assert/strict";
import {
  findHostCandidate,
  listCandidates,
  raiseMaxBitrate,
  replaceCandidates,
  stripCandidates,
} from "./sdp.ts";

// Shape of what libwebrtc (wrtc 0.10.0) produced for a sendonly video offer, shortened.
const OFFER = [
  "v=0",
  "o=- 1 2 IN IP4 127.0.0.1",
  "s=-",
  "t=0 0",
  "a=group:BUNDLE 0",
  "m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99 125 127",
  "c=IN IP4 0.0.0.0",
  "a=rtcp:9 IN IP4 0.0.0.0",
  "a=candidate:3077952869 1 udp 2122265343 fd00::2 56780 typ host generation 0 ufrag OElq network-id 2",
  "a=candidate:3229573512 1 udp 2122194687 192.0.2.2 42759 typ host generation 0 ufrag OElq network-id 1",
  "a=candidate:1510613869 1 udp 2122063615 127.0.0.1 56154 typ host generation 0 ufrag OElq network-id 3",
  "a=end-of-candidates",
  "a=ice-ufrag:OElq",
  "a=mid:0",
  "a=sendonly",
  "a=rtpmap:96 VP8/90000",
  "a=rtpmap:97 rtx/90000",
  "a=fmtp:97 apt=96",
  "a=rtpmap:98 VP9/90000",
  "a=fmtp:98 profile-id=0",
  "a=rtpmap:99 rtx/90000",
  "a=fmtp:99 apt=98",
  "a=rtpmap:125 red/90000",
  "a=rtpmap:127 ulpfec/90000",
].join("\r\n") + "\r\n";

Deno.test("sdp: candidates are listed and the loopback host one is found", () => {
  assert.equal(listCandidates(OFFER).length, 3);
  assert.deepEqual(findHostCandidate(OFFER), { ip: "127.0.0.1", port: 56154 });
  assert.deepEqual(findHostCandidate(OFFER, "192.0.2.2"), { ip: "192.0.2.2", port: 42759 });
  assert.equal(findHostCandidate(OFFER, "10.0.0.1"), undefined);
});

Deno.test("sdp: strip removes every candidate and end-of-candidates, keeps the rest", () => {
  const s = stripCandidates(OFFER);
  assert.equal(listCandidates(s).length, 0);
  assert.ok(!s.includes("end-of-candidates"));
  assert.equal(s.split("\r\n").length, OFFER.split("\r\n").length - 4);
});

Deno.test("sdp: replace puts exactly one host candidate after a=mid", () => {
  const s = replaceCandidates(OFFER, { ip: "127.0.0.1", port: 40000 });
  const c = listCandidates(s);
  assert.equal(c.length, 1);
  assert.deepEqual([c[0].ip, c[0].port, c[0].type, c[0].transport], [
    "127.0.0.1",
    40000,
    "host",
    "udp",
  ]);
  const ls = s.split("\r\n");
  assert.equal(ls[ls.indexOf("a=mid:0") + 1], c[0].line);
  assert.ok(s.endsWith("\r\n"));
});

Deno.test("sdp: raiseMaxBitrate sets b=AS and x-google bitrates on media codecs only", () => {
  const s = raiseMaxBitrate(OFFER, 25000, 3000);
  const ls = s.split("\r\n");
  assert.equal(ls[ls.indexOf("c=IN IP4 0.0.0.0") + 1], "b=AS:25000");
  assert.ok(ls.includes("a=fmtp:96 x-google-max-bitrate=25000;x-google-start-bitrate=3000"));
  assert.ok(
    ls.includes("a=fmtp:98 profile-id=0;x-google-max-bitrate=25000;x-google-start-bitrate=3000"),
  );
  assert.ok(ls.includes("a=fmtp:97 apt=96"));
  assert.ok(!ls.some((l) => l.startsWith("a=fmtp:125") || l.startsWith("a=fmtp:127")));
  // Idempotent: raising again replaces rather than stacks.
  const t = raiseMaxBitrate(s, 4000);
  assert.equal(t.split("b=AS:").length, 2);
  assert.ok(t.includes("a=fmtp:96 x-google-max-bitrate=4000\r\n"));
  assert.throws(() => raiseMaxBitrate(OFFER, 0), RangeError);
});
