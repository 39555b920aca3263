// Wavry player page: WebCodecs H.264 decode straight onto a canvas, input
// capture, stats overlay. Plain browser JavaScript, no bundler; the protocol is
// in client/player/protocol.ts and docs/CLIENT.md ("## Player").
"use strict";

(() => {
  const FRAME = 1; // binary message type
  const AUDIO = 2; // binary message type: one Opus packet
  const FLAG_KEY = 1;
  const FLAG_OFFSET = 2;
  const CELL = 16; // xprobe pattern cell size
  const STATS_INTERVAL_MS = 250;
  const KEYREQ_MIN_INTERVAL_MS = 300;
  const NOT_FORWARDED = new Set(["F11", "F12"]);

  const params = new URLSearchParams(location.search);
  const canvas = document.getElementById("video");
  const messageEl = document.getElementById("message");
  const overlayEl = document.getElementById("overlay");
  const ctx = canvas.getContext("2d", { alpha: false, desynchronized: true });

  const wallUs = () => Math.round((performance.timeOrigin + performance.now()) * 1000);

  let ws;
  let reconnectDelay = 250;
  let config; // last config message
  let decoder;
  let needKey = true;
  let lastFrameId;
  let lastKeyReqAt = -Infinity;
  let pointerLockOnClick = params.get("lock") !== "0";
  let overlayStats = {};
  const pending = new Map(); // frameId -> timing of a frame in the decoder

  const totals = {
    framesReceived: 0,
    framesDecoded: 0,
    framesPainted: 0,
    framesDropped: 0,
    decodeErrors: 0,
    keyRequests: 0,
  };
  let win = newWindow(); // figures over the last stats interval
  let lastSummary;
  let everConnected = false;

  function newWindow() {
    return {
      start: performance.now(),
      painted: 0,
      decodeSum: 0,
      decodeMax: 0,
      paintSum: 0,
      paintMax: 0,
      latencySum: 0,
      latencyN: 0,
    };
  }

  function setMessage(text) {
    messageEl.textContent = text || "";
    messageEl.hidden = !text;
  }

  function send(obj) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(obj));
  }

  // ---- connection ----

  function connect() {
    setMessage(
      everConnected
        ? "Disconnected from the Wavry client — reconnecting…"
        : "Connecting to the Wavry client…",
    );
    const socket = new WebSocket(`ws://${location.host}/ws`);
    socket.binaryType = "arraybuffer";
    ws = socket;
    socket.onopen = () => {
      reconnectDelay = 250;
      everConnected = true;
      setMessage(config ? "Waiting for video…" : "Connected — waiting for the stream…");
      send({ t: "hello" });
      pads.clear(); // resend every gamepad's state to the new connection
    };
    socket.onmessage = (event) => {
      if (typeof event.data === "string") onText(event.data);
      else if (new DataView(event.data).getUint8(0) === AUDIO) onAudio(event.data);
      else onFrame(event.data);
    };
    socket.onclose = () => {
      if (ws !== socket) return;
      ws = undefined;
      resetDecoder();
      releaseAll();
      setMessage("Disconnected from the Wavry client — reconnecting…");
      setTimeout(connect, reconnectDelay);
      reconnectDelay = Math.min(reconnectDelay * 2, 2000);
    };
  }

  function onText(text) {
    let m;
    try {
      m = JSON.parse(text);
    } catch {
      return;
    }
    if (m.t === "config") {
      config = m;
      if (canvas.width !== m.width || canvas.height !== m.height) {
        canvas.width = m.width;
        canvas.height = m.height;
      }
      configureDecoder();
      if (totals.framesPainted === 0) setMessage("Waiting for video…");
    } else if (m.t === "overlay") {
      overlayStats = m.stats || {};
      renderOverlay();
    }
  }

  // ---- decode ----

  function base64Bytes(s) {
    const bin = atob(s);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function resetDecoder() {
    if (decoder && decoder.state !== "closed") {
      try {
        decoder.close();
      } catch { /* already closed */ }
    }
    decoder = undefined;
    needKey = true;
    lastFrameId = undefined;
    pending.clear();
  }

  function configureDecoder() {
    resetDecoder();
    if (!config) return;
    const d = new VideoDecoder({ output: onOutput, error: onDecoderError });
    const cfg = {
      codec: config.codec,
      optimizeForLatency: true,
      hardwareAcceleration: "no-preference",
      codedWidth: config.width,
      codedHeight: config.height,
    };
    // Annex-B mode: no description, so Chromium takes Annex-B chunks with SPS/PPS in band.
    if (config.format === "avc") cfg.description = base64Bytes(config.avcc);
    try {
      d.configure(cfg);
    } catch (e) {
      totals.decodeErrors++;
      setMessage(`Cannot decode ${config.codec}: ${e.message}`);
      return;
    }
    decoder = d;
  }

  function onDecoderError(e) {
    totals.decodeErrors++;
    console.warn("wavry: decoder error", e && e.message);
    // The failed decoder is closed; start a fresh one and wait for a keyframe.
    configureDecoder();
    requestKey("error", true);
  }

  function requestKey(reason, force) {
    const now = performance.now();
    if (!force && now - lastKeyReqAt < KEYREQ_MIN_INTERVAL_MS) return;
    lastKeyReqAt = now;
    totals.keyRequests++;
    send({ t: "keyreq", reason });
  }

  function onFrame(buffer) {
    const recvUs = wallUs();
    if (buffer.byteLength < 32) return;
    const view = new DataView(buffer);
    if (view.getUint8(0) !== FRAME) return;
    totals.framesReceived++;
    const flags = view.getUint8(1);
    const headerBytes = view.getUint16(2, true);
    const frameId = view.getUint32(4, true);
    const key = (flags & FLAG_KEY) !== 0;
    const captureTimeUs = view.getFloat64(8, true);
    const offsetUs = (flags & FLAG_OFFSET) !== 0 ? view.getFloat64(16, true) : undefined;
    const sendUs = view.getFloat64(24, true);
    if (!config) {
      totals.framesDropped++;
      return;
    }
    if (!decoder || decoder.state !== "configured") configureDecoder();
    if (!decoder) {
      totals.framesDropped++;
      return;
    }
    if (needKey && !key) {
      totals.framesDropped++;
      requestKey("start", false);
      return;
    }
    if (key) needKey = false;
    else if (lastFrameId !== undefined && frameId !== ((lastFrameId + 1) >>> 0)) {
      // A frame is missing: the picture may be damaged until the next keyframe.
      requestKey("gap", false);
    }
    lastFrameId = frameId;
    pending.set(frameId, {
      recvUs,
      wsUs: recvUs - sendUs,
      captureTimeUs,
      offsetUs,
      decodeStart: performance.now(),
    });
    if (pending.size > 120) pending.delete(pending.keys().next().value);
    try {
      decoder.decode(
        new EncodedVideoChunk({
          type: key ? "key" : "delta",
          timestamp: frameId,
          data: new Uint8Array(buffer, headerBytes),
        }),
      );
    } catch (e) {
      pending.delete(frameId);
      onDecoderError(e);
    }
  }

  function readRow(pixels, row) {
    let value = 0;
    for (let bit = 0; bit < 32; bit++) {
      const i = ((row * CELL + CELL / 2) * 512 + bit * CELL + CELL / 2) * 4;
      const luma = (pixels[i] + pixels[i + 1] + pixels[i + 2]) / 3;
      value = value * 2 + (luma > 127 ? 1 : 0);
    }
    return value >>> 0;
  }

  function onOutput(frame) {
    const outAt = performance.now();
    totals.framesDecoded++;
    const frameId = frame.timestamp;
    const info = pending.get(frameId);
    pending.delete(frameId);
    const w = frame.displayWidth, h = frame.displayHeight;
    if (canvas.width !== w || canvas.height !== h) {
      canvas.width = w;
      canvas.height = h;
    }
    ctx.drawImage(frame, 0, 0, w, h);
    frame.close();
    const paintEnd = performance.now();
    const presentUs = Math.round((performance.timeOrigin + paintEnd) * 1000);
    totals.framesPainted++;
    if (totals.framesPainted === 1 || !messageEl.hidden) setMessage("");
    let counter = null, drawnMs = null, readbackMs = null;
    if (config && config.readback && w >= 512 && h >= 32) {
      const px = ctx.getImageData(0, 0, 512, 32).data;
      counter = readRow(px, 0);
      drawnMs = readRow(px, 1);
      readbackMs = performance.now() - paintEnd;
    }
    const decodeMs = info ? outAt - info.decodeStart : NaN;
    const paintMs = paintEnd - outAt;
    const latencyUs = info && info.offsetUs !== undefined
      ? presentUs - (info.captureTimeUs + info.offsetUs)
      : null;
    const drawnToPresentUs = info && info.offsetUs !== undefined && drawnMs !== null
      ? presentUs - (drawnMs * 1000 + info.offsetUs)
      : null;
    win.painted++;
    if (Number.isFinite(decodeMs)) {
      win.decodeSum += decodeMs;
      win.decodeMax = Math.max(win.decodeMax, decodeMs);
    }
    win.paintSum += paintMs;
    win.paintMax = Math.max(win.paintMax, paintMs);
    if (latencyUs !== null) {
      win.latencySum += latencyUs / 1000;
      win.latencyN++;
    }
    send({
      t: "paint",
      frameId,
      captureTimeUs: info ? info.captureTimeUs : 0,
      recvUs: info ? info.recvUs : 0,
      wsUs: info ? info.wsUs : 0,
      decodeMs: Number.isFinite(decodeMs) ? decodeMs : -1,
      paintMs,
      presentUs,
      latencyUs,
      counter,
      drawnMs,
      drawnToPresentUs,
      readbackMs,
    });
  }

  // ---- audio: WebCodecs Opus decode, played through WebAudio ----
  // Each 10 ms packet is scheduled right behind the previous one; the play-out point keeps a
  // small lead over the audio clock (AUDIO_LEAD_S) and jumps forward when audio fell behind,
  // so late audio is dropped rather than delaying everything after it.

  const AUDIO_LEAD_S = 0.03;
  let audioContext;
  let audioDecoder;
  let audioChannels = 0;
  let audioPlayAt = 0;
  const audioWin = { sumSquares: 0, samples: 0, crossings: 0, last: 0 };
  let audioPackets = 0;

  function ensureAudio(channels) {
    if (audioDecoder && audioChannels === channels && audioDecoder.state === "configured") return;
    if (typeof AudioDecoder === "undefined") return;
    audioContext ??= new AudioContext({ sampleRate: 48000, latencyHint: "interactive" });
    audioChannels = channels;
    audioDecoder = new AudioDecoder({
      output: playAudio,
      error: () => {
        audioDecoder = undefined;
      },
    });
    audioDecoder.configure({ codec: "opus", sampleRate: 48000, numberOfChannels: channels });
  }

  function playAudio(data) {
    audioPackets++;
    const frames = data.numberOfFrames;
    const buffer = audioContext.createBuffer(data.numberOfChannels, frames, data.sampleRate);
    for (let c = 0; c < data.numberOfChannels; c++) {
      const plane = new Float32Array(frames);
      data.copyTo(plane, { planeIndex: c, format: "f32-planar" });
      buffer.copyToChannel(plane, c);
      if (c === 0) measureAudio(plane);
    }
    data.close();
    const now = audioContext.currentTime;
    if (audioPlayAt < now + 0.005) audioPlayAt = now + AUDIO_LEAD_S;
    const source = audioContext.createBufferSource();
    source.buffer = buffer;
    source.connect(audioContext.destination);
    source.start(audioPlayAt);
    audioPlayAt += buffer.duration;
  }

  function measureAudio(plane) {
    for (let i = 0; i < plane.length; i++) {
      const v = plane[i];
      audioWin.sumSquares += v * v;
      if ((audioWin.last < 0 && v >= 0) || (audioWin.last >= 0 && v < 0)) audioWin.crossings++;
      audioWin.last = v;
    }
    audioWin.samples += plane.length;
  }

  function onAudio(buffer) {
    const view = new DataView(buffer);
    const channels = view.getUint8(1);
    const headerBytes = view.getUint16(2, true);
    const sequence = view.getUint32(4, true);
    ensureAudio(channels);
    if (!audioDecoder || audioDecoder.state !== "configured") return;
    if (audioContext.state === "suspended") audioContext.resume().catch(() => {});
    audioDecoder.decode(
      new EncodedAudioChunk({
        type: "key",
        timestamp: sequence * 10000,
        data: new Uint8Array(buffer, headerBytes),
      }),
    );
  }

  function audioSummary() {
    const n = audioWin.samples;
    const summary = {
      audioPackets,
      audioLevelDb: n ? 10 * Math.log10(audioWin.sumSquares / n + 1e-20) + 3.0103 : null,
      audioFrequencyHz: n ? (audioWin.crossings / 2) / (n / 48000) : null,
      audioState: audioContext ? audioContext.state : "none",
    };
    audioWin.sumSquares = 0;
    audioWin.samples = 0;
    audioWin.crossings = 0;
    return summary;
  }

  // ---- stats and overlay ----

  function buildSummary() {
    const seconds = Math.max((performance.now() - win.start) / 1000, 1e-3);
    const n = win.painted;
    return {
      t: "stats",
      ...totals,
      fps: Math.round((n / seconds) * 10) / 10,
      decodeMsAvg: n ? win.decodeSum / n : 0,
      decodeMsMax: win.decodeMax,
      paintMsAvg: n ? win.paintSum / n : 0,
      paintMsMax: win.paintMax,
      latencyMsAvg: win.latencyN ? win.latencySum / win.latencyN : null,
      decodeQueue: decoder && decoder.state === "configured" ? decoder.decodeQueueSize : 0,
      width: canvas.width,
      height: canvas.height,
      pointerLocked: document.pointerLockElement === canvas,
      ...audioSummary(),
    };
  }

  function summarize() {
    lastSummary = buildSummary();
    win = newWindow();
    send(lastSummary);
    renderOverlay();
  }

  function renderOverlay() {
    if (overlayEl.hidden) return;
    const lines = [];
    for (const [k, v] of Object.entries(overlayStats)) lines.push(`${k}: ${v}`);
    const s = lastSummary || buildSummary();
    lines.push("— page —");
    lines.push(`fps: ${s.fps}`);
    lines.push(`decode ms: ${s.decodeMsAvg.toFixed(2)} (max ${s.decodeMsMax.toFixed(2)})`);
    lines.push(`paint ms: ${s.paintMsAvg.toFixed(2)} (max ${s.paintMsMax.toFixed(2)})`);
    if (s.latencyMsAvg !== null) lines.push(`capture→canvas ms: ${s.latencyMsAvg.toFixed(1)}`);
    lines.push(
      `frames: ${s.framesPainted} painted, ${s.framesDropped} dropped, ${s.decodeErrors} errors`,
    );
    lines.push(`video: ${s.width}x${s.height}${s.pointerLocked ? " (pointer locked)" : ""}`);
    overlayEl.textContent = lines.join("\n");
  }

  function toggleOverlay() {
    overlayEl.hidden = !overlayEl.hidden;
    renderOverlay();
  }

  // ---- input ----

  const keysDown = new Set();
  const buttonsDown = new Set();
  let lastPos = { x: 0, y: 0 };

  function normalized(clientX, clientY) {
    const r = canvas.getBoundingClientRect();
    const scale = Math.min(r.width / canvas.width, r.height / canvas.height);
    const dw = canvas.width * scale, dh = canvas.height * scale;
    const left = r.left + (r.width - dw) / 2, top = r.top + (r.height - dh) / 2;
    const clamp = (v) => Math.min(1, Math.max(0, v));
    return { x: clamp((clientX - left) / dw), y: clamp((clientY - top) / dh) };
  }

  function isOverlayToggle(e) {
    return e.code === "F2" || (e.ctrlKey && e.shiftKey && e.code === "KeyS");
  }

  addEventListener("keydown", (e) => {
    if (isOverlayToggle(e)) {
      e.preventDefault();
      if (!e.repeat) toggleOverlay();
      return;
    }
    if (e.ctrlKey && e.shiftKey && e.code === "KeyL") {
      e.preventDefault();
      if (!e.repeat) pointerLockOnClick = !pointerLockOnClick;
      if (!pointerLockOnClick && document.pointerLockElement) document.exitPointerLock();
      return;
    }
    if (NOT_FORWARDED.has(e.code)) return;
    e.preventDefault();
    if (e.repeat || !e.code) return;
    keysDown.add(e.code);
    send({ t: "key", code: e.code, down: true, ts: wallUs() });
  });

  addEventListener("keyup", (e) => {
    if (NOT_FORWARDED.has(e.code)) return;
    e.preventDefault();
    // Release only what was sent as pressed (not F2 or the toggles).
    if (!keysDown.delete(e.code)) return;
    send({ t: "key", code: e.code, down: false, ts: wallUs() });
  });

  function releaseAll() {
    const ts = wallUs();
    for (const code of keysDown) send({ t: "key", code, down: false, ts });
    for (const button of buttonsDown) {
      send({ t: "button", button, down: false, x: lastPos.x, y: lastPos.y, ts });
    }
    keysDown.clear();
    buttonsDown.clear();
  }
  addEventListener("blur", releaseAll);

  canvas.addEventListener("mousemove", (e) => {
    const ts = wallUs();
    if (document.pointerLockElement === canvas) {
      if (e.movementX || e.movementY) send({ t: "moverel", dx: e.movementX, dy: e.movementY, ts });
      return;
    }
    lastPos = normalized(e.clientX, e.clientY);
    send({ t: "move", x: lastPos.x, y: lastPos.y, ts });
  });

  canvas.addEventListener("mousedown", (e) => {
    e.preventDefault();
    canvas.focus();
    if (document.pointerLockElement !== canvas) lastPos = normalized(e.clientX, e.clientY);
    buttonsDown.add(e.button);
    send({ t: "button", button: e.button, down: true, x: lastPos.x, y: lastPos.y, ts: wallUs() });
    if (pointerLockOnClick && document.pointerLockElement !== canvas) {
      try {
        const p = canvas.requestPointerLock();
        if (p && p.catch) p.catch(() => {});
      } catch { /* not allowed here (e.g. headless) */ }
    }
  });

  addEventListener("mouseup", (e) => {
    if (!buttonsDown.delete(e.button)) return;
    e.preventDefault();
    if (document.pointerLockElement !== canvas) lastPos = normalized(e.clientX, e.clientY);
    send({ t: "button", button: e.button, down: false, x: lastPos.x, y: lastPos.y, ts: wallUs() });
  });

  canvas.addEventListener("contextmenu", (e) => e.preventDefault());
  // Back/forward buttons must not navigate away.
  addEventListener("auxclick", (e) => e.preventDefault());

  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    const unit = e.deltaMode === 0 ? 1 / 100 : e.deltaMode === 1 ? 1 / 3 : 1;
    send({ t: "wheel", dx: e.deltaX * unit, dy: e.deltaY * unit, ts: wallUs() });
  }, { passive: false });

  // Gamepads: polled every animation frame, sent when a snapshot changes.
  const pads = new Map(); // index -> last snapshot key
  function pollGamepads() {
    const list = navigator.getGamepads ? navigator.getGamepads() : [];
    const seen = new Set();
    for (const pad of list) {
      if (!pad || !pad.connected) continue;
      seen.add(pad.index);
      const buttons = Array.from(pad.buttons, (b) => b.value);
      const axes = Array.from(pad.axes);
      const snapshot = buttons.join(",") + "|" + axes.join(",");
      if (pads.get(pad.index) === snapshot) continue;
      pads.set(pad.index, snapshot);
      send({
        t: "gamepad",
        index: pad.index,
        id: pad.id,
        connected: true,
        buttons,
        axes,
        ts: wallUs(),
      });
    }
    for (const index of [...pads.keys()]) {
      if (seen.has(index)) continue;
      pads.delete(index);
      send({ t: "gamepad", index, id: "", connected: false, buttons: [], axes: [], ts: wallUs() });
    }
    requestAnimationFrame(pollGamepads);
  }

  setInterval(summarize, STATS_INTERVAL_MS);
  requestAnimationFrame(pollGamepads);
  connect();
  // For tests and debugging.
  globalThis.wavryPlayer = {
    totals,
    get summary() {
      return lastSummary;
    },
  };
})();
