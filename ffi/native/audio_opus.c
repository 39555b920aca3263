/*
 * Opus at 48 kHz in OPUS_APPLICATION_RESTRICTED_LOWDELAY mode (CELT only,
 * 2.5 ms algorithmic delay), 10 ms frames in Wavry. Every call is a few
 * hundred microseconds at most, so TypeScript calls these synchronously.
 */
#include "common.h"

#include <opus.h>
#include <stdlib.h>

#define WV_OPUS_RATE 48000
#define WV_OPUS_MIN_BITRATE 6000
#define WV_OPUS_MAX_BITRATE 510000
#define WV_OPUS_MAX_FRAME 2880 /* 60 ms */
/* An encoder output buffer smaller than this only fits a TOC byte, i.e. a "lost" packet. */
#define WV_OPUS_MIN_PACKET_BYTES 3

typedef struct {
  uint32_t magic;
  int channels;
  OpusEncoder *enc;
} wv_opus_enc;

typedef struct {
  uint32_t magic;
  int channels;
  OpusDecoder *dec;
} wv_opus_dec;

/* Opus frame durations at 48 kHz: 2.5, 5, 10, 20, 40 and 60 ms. */
static int valid_frame_size(int32_t n) {
  return n == 120 || n == 240 || n == 480 || n == 960 || n == 1920 || n == 2880;
}

static int32_t check_channels(int32_t channels, char *err, int32_t errlen) {
  if (channels != 1 && channels != 2) {
    return wv_fail(err, errlen, WV_EINVAL, "channels must be 1 or 2, got %d", channels);
  }
  return WV_OK;
}

static int32_t check_bitrate(int32_t bps, char *err, int32_t errlen) {
  if (bps < WV_OPUS_MIN_BITRATE || bps > WV_OPUS_MAX_BITRATE) {
    return wv_fail(err, errlen, WV_EINVAL, "bitrate must be %d..%d bit/s, got %d",
                   WV_OPUS_MIN_BITRATE, WV_OPUS_MAX_BITRATE, bps);
  }
  return WV_OK;
}

/** Opens a restricted-low-delay encoder for `channels` (1 or 2) at `bitrate_bps` (VBR). */
WV_EXPORT int32_t wavry_opus_encoder_open(int32_t channels, int32_t bitrate_bps, void **out,
                                          char *err, int32_t errlen) {
  if (out == NULL) return wv_fail(err, errlen, WV_EINVAL, "out is NULL");
  *out = NULL;
  int32_t rc = check_channels(channels, err, errlen);
  if (rc == WV_OK) rc = check_bitrate(bitrate_bps, err, errlen);
  if (rc != WV_OK) return rc;
  wv_opus_enc *e = calloc(1, sizeof *e);
  if (e == NULL) return wv_fail(err, errlen, WV_ENOMEM, "out of memory");
  int oe = OPUS_OK;
  e->enc = opus_encoder_create(WV_OPUS_RATE, channels, OPUS_APPLICATION_RESTRICTED_LOWDELAY, &oe);
  if (e->enc == NULL || oe != OPUS_OK) {
    if (e->enc != NULL) opus_encoder_destroy(e->enc);
    free(e);
    return wv_fail(err, errlen, WV_ECODEC, "opus_encoder_create: %s", opus_strerror(oe));
  }
  oe = opus_encoder_ctl(e->enc, OPUS_SET_BITRATE(bitrate_bps));
  if (oe == OPUS_OK) oe = opus_encoder_ctl(e->enc, OPUS_SET_VBR(1));
  if (oe != OPUS_OK) {
    opus_encoder_destroy(e->enc);
    free(e);
    return wv_fail(err, errlen, WV_ECODEC, "opus encoder setup: %s", opus_strerror(oe));
  }
  e->channels = channels;
  e->magic = WV_MAGIC_OPUS_ENC;
  *out = e;
  return WV_OK;
}

/**
 * Encodes `frame_size` samples per channel (120, 240, 480, 960, 1920 or 2880; Wavry uses 480)
 * of interleaved pcm into one packet of at most `outcap` bytes (outcap also caps the packet's
 * instantaneous bitrate). Writes the packet length to `*outlen`.
 */
WV_EXPORT int32_t wavry_opus_encode(void *h, const int16_t *pcm, int32_t frame_size, uint8_t *out,
                                    int32_t outcap, int32_t *outlen, char *err, int32_t errlen) {
  wv_opus_enc *e = h;
  if (e == NULL || e->magic != WV_MAGIC_OPUS_ENC) {
    return wv_fail(err, errlen, WV_ECLOSED, "not an open Opus encoder");
  }
  if (pcm == NULL || out == NULL || outlen == NULL) {
    return wv_fail(err, errlen, WV_EINVAL, "pcm, out or outlen is NULL");
  }
  if (!valid_frame_size(frame_size)) {
    return wv_fail(err, errlen, WV_EINVAL,
                   "frame size %d is not an Opus frame (120, 240, 480, 960, 1920 or 2880 "
                   "samples per channel at 48 kHz)",
                   frame_size);
  }
  if (outcap < WV_OPUS_MIN_PACKET_BYTES) {
    return wv_fail(err, errlen, WV_EINVAL, "output buffer of %d bytes is too small (need >= %d)",
                   outcap, WV_OPUS_MIN_PACKET_BYTES);
  }
  opus_int32 n = opus_encode(e->enc, pcm, frame_size, out, outcap);
  if (n < 0) {
    return wv_fail(err, errlen, n == OPUS_BUFFER_TOO_SMALL ? WV_EINVAL : WV_ECODEC,
                   "opus_encode: %s", opus_strerror(n));
  }
  *outlen = n;
  return WV_OK;
}

/** Changes the target bitrate from the next frame on. */
WV_EXPORT int32_t wavry_opus_set_bitrate(void *h, int32_t bitrate_bps, char *err, int32_t errlen) {
  wv_opus_enc *e = h;
  if (e == NULL || e->magic != WV_MAGIC_OPUS_ENC) {
    return wv_fail(err, errlen, WV_ECLOSED, "not an open Opus encoder");
  }
  int32_t rc = check_bitrate(bitrate_bps, err, errlen);
  if (rc != WV_OK) return rc;
  int oe = opus_encoder_ctl(e->enc, OPUS_SET_BITRATE(bitrate_bps));
  if (oe != OPUS_OK) {
    return wv_fail(err, errlen, WV_ECODEC, "OPUS_SET_BITRATE: %s", opus_strerror(oe));
  }
  return WV_OK;
}

/** The encoder's lookahead (algorithmic delay) in samples per channel: 120 (2.5 ms) here. */
WV_EXPORT int32_t wavry_opus_encoder_lookahead(void *h, int32_t *samples, char *err,
                                               int32_t errlen) {
  wv_opus_enc *e = h;
  if (e == NULL || e->magic != WV_MAGIC_OPUS_ENC) {
    return wv_fail(err, errlen, WV_ECLOSED, "not an open Opus encoder");
  }
  if (samples == NULL) return wv_fail(err, errlen, WV_EINVAL, "samples is NULL");
  opus_int32 v = 0;
  int oe = opus_encoder_ctl(e->enc, OPUS_GET_LOOKAHEAD(&v));
  if (oe != OPUS_OK) {
    return wv_fail(err, errlen, WV_ECODEC, "OPUS_GET_LOOKAHEAD: %s", opus_strerror(oe));
  }
  *samples = v;
  return WV_OK;
}

/** Frees an encoder; a NULL, foreign or already closed handle is ignored. */
WV_EXPORT void wavry_opus_encoder_close(void *h) {
  wv_opus_enc *e = h;
  if (e == NULL || e->magic != WV_MAGIC_OPUS_ENC) return;
  e->magic = WV_MAGIC_DEAD;
  opus_encoder_destroy(e->enc);
  free(e);
}

/** Opens a 48 kHz decoder for `channels` (1 or 2). */
WV_EXPORT int32_t wavry_opus_decoder_open(int32_t channels, void **out, char *err,
                                          int32_t errlen) {
  if (out == NULL) return wv_fail(err, errlen, WV_EINVAL, "out is NULL");
  *out = NULL;
  int32_t rc = check_channels(channels, err, errlen);
  if (rc != WV_OK) return rc;
  wv_opus_dec *d = calloc(1, sizeof *d);
  if (d == NULL) return wv_fail(err, errlen, WV_ENOMEM, "out of memory");
  int oe = OPUS_OK;
  d->dec = opus_decoder_create(WV_OPUS_RATE, channels, &oe);
  if (d->dec == NULL || oe != OPUS_OK) {
    if (d->dec != NULL) opus_decoder_destroy(d->dec);
    free(d);
    return wv_fail(err, errlen, WV_ECODEC, "opus_decoder_create: %s", opus_strerror(oe));
  }
  d->channels = channels;
  d->magic = WV_MAGIC_OPUS_DEC;
  *out = d;
  return WV_OK;
}

/**
 * Decodes one packet into `pcm`, which has room for `frame_size` samples per channel; writes the
 * number decoded per channel to `*samples`. A NULL packet (or len 0) means the packet was lost:
 * the decoder conceals `frame_size` samples (a multiple of 120) from what it had before.
 */
WV_EXPORT int32_t wavry_opus_decode(void *h, const uint8_t *packet, int32_t len, int16_t *pcm,
                                    int32_t frame_size, int32_t *samples, char *err,
                                    int32_t errlen) {
  wv_opus_dec *d = h;
  if (d == NULL || d->magic != WV_MAGIC_OPUS_DEC) {
    return wv_fail(err, errlen, WV_ECLOSED, "not an open Opus decoder");
  }
  if (pcm == NULL || samples == NULL) return wv_fail(err, errlen, WV_EINVAL, "pcm or samples is NULL");
  if (frame_size <= 0 || frame_size > WV_OPUS_MAX_FRAME) {
    return wv_fail(err, errlen, WV_EINVAL, "frame size must be 1..%d samples per channel, got %d",
                   WV_OPUS_MAX_FRAME, frame_size);
  }
  if (len < 0) return wv_fail(err, errlen, WV_EINVAL, "negative packet length %d", len);
  const int lost = packet == NULL || len == 0;
  if (lost) {
    if (frame_size % 120 != 0) {
      return wv_fail(err, errlen, WV_EINVAL,
                     "a concealed frame must be a multiple of 120 samples (2.5 ms), got %d",
                     frame_size);
    }
  } else {
    int n = opus_decoder_get_nb_samples(d->dec, packet, len);
    if (n < 0) {
      return wv_fail(err, errlen, WV_ECODEC, "not an Opus packet: %s", opus_strerror(n));
    }
    if (n > frame_size) {
      return wv_fail(err, errlen, WV_EINVAL,
                     "the packet holds %d samples per channel, the buffer has room for %d", n,
                     frame_size);
    }
  }
  int n = opus_decode(d->dec, lost ? NULL : packet, lost ? 0 : len, pcm, frame_size, 0);
  if (n < 0) {
    return wv_fail(err, errlen, n == OPUS_BUFFER_TOO_SMALL ? WV_EINVAL : WV_ECODEC,
                   "opus_decode: %s", opus_strerror(n));
  }
  *samples = n;
  return WV_OK;
}

/** Frees a decoder; a NULL, foreign or already closed handle is ignored. */
WV_EXPORT void wavry_opus_decoder_close(void *h) {
  wv_opus_dec *d = h;
  if (d == NULL || d->magic != WV_MAGIC_OPUS_DEC) return;
  d->magic = WV_MAGIC_DEAD;
  opus_decoder_destroy(d->dec);
  free(d);
}
