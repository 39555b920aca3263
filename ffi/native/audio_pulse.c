/*
 * Audio capture and playback through PulseAudio (also served by PipeWire's
 * pipewire-pulse), S16LE at 48 kHz, 1 or 2 channels, 10 ms fragments.
 *
 * This uses the asynchronous API on a pa_threaded_mainloop rather than
 * pa_simple: pa_simple_read/pa_simple_write block with no timeout and cannot
 * be woken, so a close from another thread could only free the connection
 * under a blocked reader or wait for it forever. Here every wait is a
 * pa_threaded_mainloop_wait bounded by a timer and woken by close:
 *
 *   - read waits at most WV_PULSE_READ_WAIT_US for a full frame, then
 *     returns WV_EAGAIN (the caller simply calls again);
 *   - write waits at most WV_PULSE_WRITE_STALL_US without progress, then
 *     fails with WV_EIO;
 *   - close sets `closing`, wakes every waiter, waits (under the mainloop
 *     lock) until no thread is inside read/write/latency, and only then
 *     tears the connection down. A blocked read returns WV_ECLOSED.
 *
 * What close cannot protect against is a call that has not *entered* yet
 * when the handle is freed (a dangling pointer). The TypeScript side
 * therefore never closes while one of its own calls is in flight: it calls
 * wavry_audio_interrupt (wakes the call, frees nothing), and closes the
 * handle when the in-flight call has returned.
 */
#include "common.h"

#include <pulse/pulseaudio.h>
#include <stdlib.h>
#include <string.h>

#define WV_PULSE_RATE 48000
#define WV_PULSE_FRAME_SAMPLES 480                  /* 10 ms */
#define WV_PULSE_MAX_SAMPLES 48000                  /* one call moves at most 1 s */
#define WV_PULSE_CONNECT_TIMEOUT_US 5000000         /* server connect + stream setup */
#define WV_PULSE_READ_WAIT_US 500000                /* read: then WV_EAGAIN */
#define WV_PULSE_WRITE_STALL_US 2000000             /* write: no progress for this long = WV_EIO */
#define WV_PULSE_RING_US 1000000                    /* captured audio kept for a slow reader */

typedef struct {
  uint32_t magic;
  int channels;
  size_t frame_bytes; /* bytes per sample frame: 2 × channels */
  pa_threaded_mainloop *ml;
  int ml_started;
  pa_context *ctx;
  pa_stream *stream;
  pa_time_event *timer;
  int closing;
  int busy; /* threads inside read/write/latency */
  /* Capture: everything the server delivered, oldest first. */
  uint8_t *ring;
  size_t ring_len, ring_cap;
  uint64_t dropped_bytes; /* discarded because the reader fell more than WV_PULSE_RING_US behind */
  int64_t last_capture_us;
} wv_pulse;

/* ---- callbacks, run on the mainloop thread with the lock held ---- */

static void on_context_state(pa_context *c, void *ud) {
  pa_threaded_mainloop_signal(((wv_pulse *)ud)->ml, 0);
}

static void on_stream_state(pa_stream *s, void *ud) {
  pa_threaded_mainloop_signal(((wv_pulse *)ud)->ml, 0);
}

static void on_stream_request(pa_stream *s, size_t nbytes, void *ud) {
  pa_threaded_mainloop_signal(((wv_pulse *)ud)->ml, 0);
}

static void on_timer(pa_mainloop_api *api, pa_time_event *e, const struct timeval *tv, void *ud) {
  pa_threaded_mainloop_signal(((wv_pulse *)ud)->ml, 0);
}

static void ring_append(wv_pulse *p, const uint8_t *data, size_t n) {
  if (n > p->ring_cap) { /* keep only the newest ring_cap bytes */
    size_t skip = n - p->ring_cap;
    skip -= skip % p->frame_bytes;
    p->dropped_bytes += skip;
    if (data != NULL) data += skip;
    n -= skip;
  }
  if (p->ring_len + n > p->ring_cap) {
    size_t drop = p->ring_len + n - p->ring_cap;
    drop += (p->frame_bytes - drop % p->frame_bytes) % p->frame_bytes;
    if (drop > p->ring_len) drop = p->ring_len;
    memmove(p->ring, p->ring + drop, p->ring_len - drop);
    p->ring_len -= drop;
    p->dropped_bytes += drop;
  }
  if (n > p->ring_cap - p->ring_len) n = p->ring_cap - p->ring_len;
  if (data != NULL) {
    memcpy(p->ring + p->ring_len, data, n);
  } else {
    memset(p->ring + p->ring_len, 0, n); /* a hole in the stream: silence */
  }
  p->ring_len += n;
}

static void on_stream_read(pa_stream *s, size_t nbytes, void *ud) {
  wv_pulse *p = ud;
  for (;;) {
    const void *data = NULL;
    size_t n = 0;
    if (pa_stream_peek(s, &data, &n) < 0 || n == 0) break;
    ring_append(p, data, n);
    pa_stream_drop(s);
  }
  pa_threaded_mainloop_signal(p->ml, 0);
}

/* ---- helpers, called with the lock held ---- */

/* Makes the mainloop wake waiters at `deadline` (pa_rtclock_now() microseconds). */
static void arm_timer(wv_pulse *p, pa_usec_t deadline) {
  if (p->timer == NULL) {
    p->timer = pa_context_rttime_new(p->ctx, deadline, on_timer, p);
  } else {
    pa_context_rttime_restart(p->ctx, p->timer, deadline);
  }
}

/* WV_OK when context and stream are usable, else a failure written to err. */
static int32_t check_alive(wv_pulse *p, char *err, int32_t errlen) {
  if (p->closing) return wv_fail(err, errlen, WV_ECLOSED, "the audio stream is being closed");
  if (!PA_CONTEXT_IS_GOOD(pa_context_get_state(p->ctx))) {
    return wv_fail(err, errlen, WV_EIO, "PulseAudio connection lost: %s",
                   pa_strerror(pa_context_errno(p->ctx)));
  }
  if (p->stream != NULL && pa_stream_get_state(p->stream) != PA_STREAM_READY) {
    return wv_fail(err, errlen, WV_EIO, "PulseAudio stream ended: %s",
                   pa_strerror(pa_context_errno(p->ctx)));
  }
  return WV_OK;
}

/* Leaves a read/write/latency call: lets a waiting close proceed. */
static void leave(wv_pulse *p) {
  p->busy--;
  if (p->closing) pa_threaded_mainloop_signal(p->ml, 0);
  pa_threaded_mainloop_unlock(p->ml);
}

/* Frees everything; the caller does not hold the lock. Safe on a half-opened handle. */
static void destroy(wv_pulse *p) {
  if (p->ml != NULL) {
    pa_threaded_mainloop_lock(p->ml);
    if (p->timer != NULL) {
      pa_threaded_mainloop_get_api(p->ml)->time_free(p->timer);
      p->timer = NULL;
    }
    if (p->stream != NULL) {
      pa_stream_set_state_callback(p->stream, NULL, NULL);
      pa_stream_set_read_callback(p->stream, NULL, NULL);
      pa_stream_set_write_callback(p->stream, NULL, NULL);
      pa_stream_disconnect(p->stream);
    }
    if (p->ctx != NULL) {
      pa_context_set_state_callback(p->ctx, NULL, NULL);
      pa_context_disconnect(p->ctx);
    }
    pa_threaded_mainloop_unlock(p->ml);
    if (p->ml_started) pa_threaded_mainloop_stop(p->ml);
  }
  if (p->stream != NULL) pa_stream_unref(p->stream);
  if (p->ctx != NULL) pa_context_unref(p->ctx);
  if (p->ml != NULL) pa_threaded_mainloop_free(p->ml);
  free(p->ring);
  p->magic = WV_MAGIC_DEAD;
  free(p);
}

/* Closes a handle of kind `magic`, waiting for threads inside it to leave first. */
static void close_handle(void *h, uint32_t magic) {
  wv_pulse *p = h;
  if (p == NULL || p->magic != magic) return;
  pa_threaded_mainloop_lock(p->ml);
  p->closing = 1;
  pa_threaded_mainloop_signal(p->ml, 0);
  while (p->busy > 0) pa_threaded_mainloop_wait(p->ml);
  p->magic = WV_MAGIC_DEAD;
  pa_threaded_mainloop_unlock(p->ml);
  destroy(p);
}

/**
 * Wakes every thread waiting in read/write on `h` and makes this and later calls fail with
 * WV_ECLOSED, without freeing anything: safe while another thread is inside (or about to enter)
 * a call on the same handle. Close still has to follow.
 */
WV_EXPORT void wavry_audio_interrupt(void *h) {
  wv_pulse *p = h;
  if (p == NULL || (p->magic != WV_MAGIC_AUDIO_IN && p->magic != WV_MAGIC_AUDIO_OUT)) return;
  pa_threaded_mainloop_lock(p->ml);
  p->closing = 1;
  pa_threaded_mainloop_signal(p->ml, 0);
  pa_threaded_mainloop_unlock(p->ml);
}

/* Connects and sets up a record (`record` = 1) or playback stream. */
static int32_t pulse_open(uint32_t magic, const char *server, const char *device, int32_t channels,
                          int32_t target_latency_ms, void **out, char *err, int32_t errlen) {
  const int record = magic == WV_MAGIC_AUDIO_IN;
  const char *what = record ? "source" : "sink";
  if (out == NULL) return wv_fail(err, errlen, WV_EINVAL, "out is NULL");
  *out = NULL;
  if (channels != 1 && channels != 2) {
    return wv_fail(err, errlen, WV_EINVAL, "channels must be 1 or 2, got %d", channels);
  }
  if (!record && (target_latency_ms < 1 || target_latency_ms > 1000)) {
    return wv_fail(err, errlen, WV_EINVAL, "target latency must be 1..1000 ms, got %d",
                   target_latency_ms);
  }
  if (server != NULL && server[0] == '\0') server = NULL;
  if (device != NULL && device[0] == '\0') device = NULL;

  wv_pulse *p = calloc(1, sizeof *p);
  if (p == NULL) return wv_fail(err, errlen, WV_ENOMEM, "out of memory");
  p->magic = magic;
  p->channels = channels;
  p->frame_bytes = 2u * (size_t)channels;
  if (record) {
    p->ring_cap = (size_t)WV_PULSE_RATE * WV_PULSE_RING_US / 1000000 * p->frame_bytes;
    p->ring = malloc(p->ring_cap);
    if (p->ring == NULL) {
      free(p);
      return wv_fail(err, errlen, WV_ENOMEM, "out of memory");
    }
  }

  int32_t rc = WV_OK;
  p->ml = pa_threaded_mainloop_new();
  if (p->ml == NULL) {
    rc = wv_fail(err, errlen, WV_ENOMEM, "pa_threaded_mainloop_new failed");
    goto fail;
  }
  p->ctx = pa_context_new(pa_threaded_mainloop_get_api(p->ml), "Wavry");
  if (p->ctx == NULL) {
    rc = wv_fail(err, errlen, WV_ENOMEM, "pa_context_new failed");
    goto fail;
  }
  pa_context_set_state_callback(p->ctx, on_context_state, p);
  if (pa_context_connect(p->ctx, server, PA_CONTEXT_NOAUTOSPAWN, NULL) < 0) {
    rc = wv_fail(err, errlen, WV_EIO, "cannot connect to PulseAudio server %s: %s",
                 server ? server : "(default)", pa_strerror(pa_context_errno(p->ctx)));
    goto fail;
  }
  if (pa_threaded_mainloop_start(p->ml) < 0) {
    rc = wv_fail(err, errlen, WV_EIO, "cannot start the PulseAudio mainloop thread");
    goto fail;
  }
  p->ml_started = 1;

  pa_threaded_mainloop_lock(p->ml);
  const pa_usec_t deadline = pa_rtclock_now() + WV_PULSE_CONNECT_TIMEOUT_US;
  arm_timer(p, deadline);
  for (;;) {
    pa_context_state_t st = pa_context_get_state(p->ctx);
    if (st == PA_CONTEXT_READY) break;
    if (!PA_CONTEXT_IS_GOOD(st)) {
      rc = wv_fail(err, errlen, WV_EIO, "cannot connect to PulseAudio server %s: %s",
                   server ? server : "(default)", pa_strerror(pa_context_errno(p->ctx)));
      break;
    }
    if (pa_rtclock_now() >= deadline) {
      rc = wv_fail(err, errlen, WV_EIO, "PulseAudio server %s did not answer within %d ms",
                   server ? server : "(default)", WV_PULSE_CONNECT_TIMEOUT_US / 1000);
      break;
    }
    pa_threaded_mainloop_wait(p->ml);
  }

  if (rc == WV_OK) {
    pa_sample_spec ss = {.format = PA_SAMPLE_S16LE, .rate = WV_PULSE_RATE, .channels = (uint8_t)channels};
    pa_channel_map map;
    pa_channel_map_init_auto(&map, (unsigned)channels, PA_CHANNEL_MAP_DEFAULT);
    p->stream = pa_stream_new(p->ctx, record ? "Wavry capture" : "Wavry playback", &ss, &map);
    if (p->stream == NULL) {
      rc = wv_fail(err, errlen, WV_EIO, "pa_stream_new failed: %s",
                   pa_strerror(pa_context_errno(p->ctx)));
    }
  }
  if (rc == WV_OK) {
    const uint32_t frame = (uint32_t)(WV_PULSE_FRAME_SAMPLES * p->frame_bytes);
    pa_buffer_attr attr;
    attr.maxlength = (uint32_t)-1;
    attr.tlength = (uint32_t)-1;
    attr.prebuf = (uint32_t)-1;
    attr.minreq = (uint32_t)-1;
    attr.fragsize = (uint32_t)-1;
    const pa_stream_flags_t flags =
        PA_STREAM_ADJUST_LATENCY | PA_STREAM_INTERPOLATE_TIMING | PA_STREAM_AUTO_TIMING_UPDATE;
    pa_stream_set_state_callback(p->stream, on_stream_state, p);
    int r;
    if (record) {
      attr.fragsize = frame; /* the server hands over every 10 ms frame as soon as it exists */
      pa_stream_set_read_callback(p->stream, on_stream_read, p);
      r = pa_stream_connect_record(p->stream, device, &attr, flags);
    } else {
      attr.tlength = (uint32_t)((uint64_t)target_latency_ms * WV_PULSE_RATE / 1000 * p->frame_bytes);
      if (attr.tlength < frame) attr.tlength = frame;
      attr.minreq = frame;
      pa_stream_set_write_callback(p->stream, on_stream_request, p);
      r = pa_stream_connect_playback(p->stream, device, &attr, flags, NULL, NULL);
    }
    if (r < 0) {
      rc = wv_fail(err, errlen, WV_EIO, "cannot connect to PulseAudio %s %s: %s", what,
                   device ? device : "(default)", pa_strerror(pa_context_errno(p->ctx)));
    }
  }
  if (rc == WV_OK) {
    for (;;) {
      pa_stream_state_t st = pa_stream_get_state(p->stream);
      if (st == PA_STREAM_READY) break;
      if (!PA_STREAM_IS_GOOD(st)) {
        int e = pa_context_errno(p->ctx);
        rc = wv_fail(err, errlen, e == PA_ERR_NOENTITY ? WV_ENODEV : WV_EIO,
                     "PulseAudio %s %s: %s", what, device ? device : "(default)",
                     e == PA_ERR_NOENTITY ? "no such device" : pa_strerror(e));
        break;
      }
      if (pa_rtclock_now() >= deadline) {
        rc = wv_fail(err, errlen, WV_EIO, "PulseAudio %s %s: stream not ready within %d ms", what,
                     device ? device : "(default)", WV_PULSE_CONNECT_TIMEOUT_US / 1000);
        break;
      }
      pa_threaded_mainloop_wait(p->ml);
    }
  }
  pa_threaded_mainloop_unlock(p->ml);
  if (rc != WV_OK) goto fail;
  *out = p;
  return WV_OK;

fail:
  destroy(p);
  return rc;
}

/* ---- capture ---- */

/** Opens a recording stream from `source` (NULL: the default source; "<sink>.monitor" or
 * "@DEFAULT_MONITOR@" for what a sink plays) on `server` (NULL: the default server). */
WV_EXPORT int32_t wavry_audio_in_open(const char *server, const char *source, int32_t channels,
                                      void **out, char *err, int32_t errlen) {
  return pulse_open(WV_MAGIC_AUDIO_IN, server, source, channels, 0, out, err, errlen);
}

/**
 * Reads exactly `samples_per_channel` interleaved samples into dst. Waits for them at most
 * WV_PULSE_READ_WAIT_US, then returns WV_EAGAIN having consumed nothing. `*capture_us` is the
 * CLOCK_MONOTONIC time at which the first sample of the frame was captured, estimated as now
 * minus the server-side latency minus the audio queued here; strictly increasing per handle.
 */
WV_EXPORT int32_t wavry_audio_in_read(void *h, int16_t *dst, int32_t samples_per_channel,
                                      int64_t *capture_us, char *err, int32_t errlen) {
  wv_pulse *p = h;
  if (p == NULL || p->magic != WV_MAGIC_AUDIO_IN) {
    return wv_fail(err, errlen, WV_ECLOSED, "not an open audio capture handle");
  }
  if (dst == NULL) return wv_fail(err, errlen, WV_EINVAL, "dst is NULL");
  if (samples_per_channel <= 0 || samples_per_channel > WV_PULSE_MAX_SAMPLES) {
    return wv_fail(err, errlen, WV_EINVAL, "samples per channel must be 1..%d, got %d",
                   WV_PULSE_MAX_SAMPLES, samples_per_channel);
  }
  const size_t need = (size_t)samples_per_channel * p->frame_bytes;
  pa_threaded_mainloop_lock(p->ml);
  if (p->closing) {
    pa_threaded_mainloop_unlock(p->ml);
    return wv_fail(err, errlen, WV_ECLOSED, "the audio capture is closed");
  }
  p->busy++;
  int32_t rc = WV_OK;
  const pa_usec_t deadline = pa_rtclock_now() + WV_PULSE_READ_WAIT_US;
  int armed = 0;
  while (p->ring_len < need) {
    if ((rc = check_alive(p, err, errlen)) != WV_OK) goto out;
    if (pa_rtclock_now() >= deadline) {
      rc = wv_fail(err, errlen, WV_EAGAIN, "no audio within %d ms", WV_PULSE_READ_WAIT_US / 1000);
      goto out;
    }
    if (!armed) {
      arm_timer(p, deadline);
      armed = 1;
    }
    pa_threaded_mainloop_wait(p->ml);
  }
  {
    pa_usec_t latency = 0;
    int negative = 0;
    if (pa_stream_get_latency(p->stream, &latency, &negative) < 0 || negative) latency = 0;
    const int64_t queued_us =
        (int64_t)(p->ring_len / p->frame_bytes) * 1000000 / WV_PULSE_RATE;
    int64_t t = wv_monotonic_us() - (int64_t)latency - queued_us;
    if (t <= p->last_capture_us) t = p->last_capture_us + 1;
    p->last_capture_us = t;
    if (capture_us != NULL) *capture_us = t;
    memcpy(dst, p->ring, need);
    memmove(p->ring, p->ring + need, p->ring_len - need);
    p->ring_len -= need;
  }
out:
  leave(p);
  return rc;
}

/** Stops recording and frees the handle; a read blocked in another thread returns WV_ECLOSED. */
WV_EXPORT void wavry_audio_in_close(void *h) { close_handle(h, WV_MAGIC_AUDIO_IN); }

/* ---- playback ---- */

/** Opens a playback stream to `sink` (NULL: default) keeping about `target_latency_ms` queued. */
WV_EXPORT int32_t wavry_audio_out_open(const char *server, const char *sink, int32_t channels,
                                       int32_t target_latency_ms, void **out, char *err,
                                       int32_t errlen) {
  return pulse_open(WV_MAGIC_AUDIO_OUT, server, sink, channels, target_latency_ms, out, err,
                    errlen);
}

/**
 * Queues `samples_per_channel` interleaved samples, waiting while the server's buffer (the
 * target latency) is full. Fails with WV_EIO when the server accepts nothing for
 * WV_PULSE_WRITE_STALL_US.
 */
WV_EXPORT int32_t wavry_audio_out_write(void *h, const int16_t *src, int32_t samples_per_channel,
                                        char *err, int32_t errlen) {
  wv_pulse *p = h;
  if (p == NULL || p->magic != WV_MAGIC_AUDIO_OUT) {
    return wv_fail(err, errlen, WV_ECLOSED, "not an open audio playback handle");
  }
  if (src == NULL) return wv_fail(err, errlen, WV_EINVAL, "src is NULL");
  if (samples_per_channel <= 0 || samples_per_channel > WV_PULSE_MAX_SAMPLES) {
    return wv_fail(err, errlen, WV_EINVAL, "samples per channel must be 1..%d, got %d",
                   WV_PULSE_MAX_SAMPLES, samples_per_channel);
  }
  const size_t total = (size_t)samples_per_channel * p->frame_bytes;
  const uint8_t *bytes = (const uint8_t *)src;
  pa_threaded_mainloop_lock(p->ml);
  if (p->closing) {
    pa_threaded_mainloop_unlock(p->ml);
    return wv_fail(err, errlen, WV_ECLOSED, "the audio playback is closed");
  }
  p->busy++;
  int32_t rc = WV_OK;
  size_t done = 0;
  pa_usec_t deadline = pa_rtclock_now() + WV_PULSE_WRITE_STALL_US;
  int armed = 0;
  while (done < total) {
    if ((rc = check_alive(p, err, errlen)) != WV_OK) goto out;
    size_t writable = pa_stream_writable_size(p->stream);
    if (writable == (size_t)-1) {
      rc = wv_fail(err, errlen, WV_EIO, "PulseAudio: %s", pa_strerror(pa_context_errno(p->ctx)));
      goto out;
    }
    writable -= writable % p->frame_bytes;
    if (writable == 0) {
      if (pa_rtclock_now() >= deadline) {
        rc = wv_fail(err, errlen, WV_EIO, "playback stalled: the server took no audio for %d ms",
                     WV_PULSE_WRITE_STALL_US / 1000);
        goto out;
      }
      if (!armed) {
        arm_timer(p, deadline);
        armed = 1;
      }
      pa_threaded_mainloop_wait(p->ml);
      continue;
    }
    size_t n = total - done < writable ? total - done : writable;
    if (pa_stream_write(p->stream, bytes + done, n, NULL, 0, PA_SEEK_RELATIVE) < 0) {
      rc = wv_fail(err, errlen, WV_EIO, "pa_stream_write: %s",
                   pa_strerror(pa_context_errno(p->ctx)));
      goto out;
    }
    done += n;
    deadline = pa_rtclock_now() + WV_PULSE_WRITE_STALL_US;
    armed = 0;
  }
out:
  leave(p);
  return rc;
}

/**
 * Playback latency: how long until a sample written now is heard (queued audio plus the sink's
 * own latency). WV_EAGAIN until the server has sent its first timing update.
 */
WV_EXPORT int32_t wavry_audio_out_latency_us(void *h, int64_t *us, char *err, int32_t errlen) {
  wv_pulse *p = h;
  if (p == NULL || p->magic != WV_MAGIC_AUDIO_OUT) {
    return wv_fail(err, errlen, WV_ECLOSED, "not an open audio playback handle");
  }
  if (us == NULL) return wv_fail(err, errlen, WV_EINVAL, "us is NULL");
  pa_threaded_mainloop_lock(p->ml);
  if (p->closing) {
    pa_threaded_mainloop_unlock(p->ml);
    return wv_fail(err, errlen, WV_ECLOSED, "the audio playback is closed");
  }
  p->busy++;
  int32_t rc = check_alive(p, err, errlen);
  if (rc == WV_OK) {
    pa_usec_t latency = 0;
    int negative = 0;
    if (pa_stream_get_latency(p->stream, &latency, &negative) < 0) {
      int e = pa_context_errno(p->ctx);
      rc = wv_fail(err, errlen, e == PA_ERR_NODATA ? WV_EAGAIN : WV_EIO, "latency: %s",
                   e == PA_ERR_NODATA ? "no timing information yet" : pa_strerror(e));
    } else {
      *us = negative ? -(int64_t)latency : (int64_t)latency;
    }
  }
  leave(p);
  return rc;
}

/** Stops playback (queued audio is dropped) and frees the handle. */
WV_EXPORT void wavry_audio_out_close(void *h) { close_handle(h, WV_MAGIC_AUDIO_OUT); }
