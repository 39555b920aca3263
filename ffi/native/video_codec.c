/*
 * H.264 encode (libavcodec: libx264, or VA-API / NVENC when the machine has
 * them) and decode, tuned for latency: one frame in, one access unit out.
 *
 * Encoder: BGRA -> YUV 4:2:0 with libswscale (sliced over threads), then
 * libx264 with tune=zerolatency, no B-frames, no lookahead, sliced threads,
 * no scene-cut keyframes, capped CRF with a VBV of one frame so every
 * frame stays close to its share of the target (bench/encoder_rate.ts).
 * Output is Annex-B with SPS/PPS in front of every IDR (in-band headers);
 * wavry_encoder_config() also gives them out of band. A bitrate change is
 * applied through the libx264 wrapper's reconfigure path (x264_encoder_reconfig),
 * which does not start a new GOP.
 *
 * Decoder: libavcodec h264 with AV_CODEC_FLAG_LOW_DELAY and one thread, so
 * each access unit yields its picture at once, converted to BGRA.
 */
#include "common.h"
#include "convert.h"

#include <libavcodec/avcodec.h>
#include <libavutil/hwcontext.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
#include <errno.h>
#include <pthread.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Encoder flags (wavry_encoder_open `flags`). */
#define WV_ENC_INTRA_REFRESH 1 /* periodic intra refresh instead of IDR frames */
#define WV_ENC_NV12 2          /* convert to NV12 instead of yuv420p (libx264) */
#define WV_ENC_SWS_FAST 4      /* swscale SWS_FAST_BILINEAR instead of SWS_POINT */
#define WV_ENC_SWS_BILINEAR 8  /* swscale SWS_BILINEAR */
#define WV_ENC_SWS_1THREAD 16  /* swscale on the calling thread only */
#define WV_ENC_SUPERFAST 32    /* x264 preset superfast instead of ultrafast */
#define WV_ENC_SWS_BICUBIC 64  /* swscale SWS_BICUBIC (the ffmpeg CLI default) */
#define WV_ENC_YUV444 128      /* full-resolution chroma (libx264 High 4:4:4 Predictive) */
#define WV_ENC_SWSCALE 256     /* libswscale for 4:2:0 as well, instead of convert.c (to compare) */

/* ---- FFmpeg log capture ------------------------------------------------
 * FFmpeg explains failures only through av_log. The callback keeps the last
 * error line per thread so an open failure can say why, and stays quiet on
 * stderr unless WAVRY_FFMPEG_LOG is set.
 */
static __thread char last_av_error[256];
static int av_log_to_stderr = 0;

static void av_log_capture(void *avcl, int level, const char *fmt, va_list vl) {
  if (av_log_to_stderr) av_log_default_callback(avcl, level, fmt, vl);
  if (level > AV_LOG_ERROR) return;
  char line[256];
  vsnprintf(line, sizeof line, fmt, vl);
  size_t n = strlen(line);
  while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
  if (n > 0) memcpy(last_av_error, line, n + 1);
}

static void setup_av_log_once(void) {
  const char *env = getenv("WAVRY_FFMPEG_LOG");
  av_log_to_stderr = env != NULL && env[0] != '\0' && env[0] != '0';
  av_log_set_callback(av_log_capture);
}

static void setup_av_log(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, setup_av_log_once);
  last_av_error[0] = '\0';
}

static const char *av_err(int code, char *buf, size_t len) {
  av_strerror(code, buf, len);
  if (last_av_error[0] != '\0') {
    size_t used = strlen(buf);
    snprintf(buf + used, len - used, " (%s)", last_av_error);
  }
  return buf;
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cpu_threads(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  if (n < 1) n = 1;
  if (n > 16) n = 16;
  return (int)n;
}

/* Whether an Annex-B buffer contains an IDR slice (NAL type 5). */
static int annexb_has_idr(const uint8_t *p, int len) {
  for (int i = 0; i + 3 < len; i++) {
    if (p[i] == 0 && p[i + 1] == 0 && p[i + 2] == 1) {
      if ((p[i + 3] & 0x1f) == 5) return 1;
      i += 2;
    }
  }
  return 0;
}

/* ======================================================================= */
/* Encoder                                                                  */
/* ======================================================================= */

typedef enum { BACKEND_X264, BACKEND_VAAPI, BACKEND_NVENC } wv_backend;

typedef struct {
  uint32_t magic;
  wv_backend backend;
  char name[32];
  char notes[512]; /* why other encoders were not used ("auto") */
  int width, height, fps, flags;
  AVCodecContext *ctx;
  AVFrame *frame;   /* software frame in the conversion's pixel format */
  AVFrame *src;     /* wraps the caller's BGRA buffer (no data owned) */
  AVFrame *hwframe; /* VA-API surface */
  AVPacket *pkt;
  struct SwsContext *sws; /* NULL when convert.c does the conversion */
  AVBufferRef *hw_device;
  int64_t pts;
  uint8_t *config;
  int config_len;
} wv_encoder;

static void encoder_free(wv_encoder *e) {
  if (e == NULL) return;
  avcodec_free_context(&e->ctx);
  av_frame_free(&e->frame);
  av_frame_free(&e->src);
  av_frame_free(&e->hwframe);
  av_packet_free(&e->pkt);
  sws_freeContext(e->sws);
  av_buffer_unref(&e->hw_device);
  av_free(e->config);
  e->magic = WV_MAGIC_DEAD;
  free(e);
}

static wv_encoder *as_encoder(void *h) {
  wv_encoder *e = (wv_encoder *)h;
  if (e == NULL || e->magic != WV_MAGIC_ENCODER) return NULL;
  return e;
}

/* Rate control: max rate = the target and a VBV of one frame at that rate (hardware encoders,
 * CBR), so no frame is much larger than one frame interval's share of the target: congestion
 * control's budget is a ceiling, and a frame that overshoots it sits in the bottleneck queue. */
static void set_rate(AVCodecContext *ctx, int bps, int fps) {
  ctx->bit_rate = bps;
  ctx->rc_max_rate = bps;
  ctx->rc_buffer_size = (int)(((int64_t)bps + fps - 1) / fps); /* one frame, rounded up */
  ctx->rc_initial_buffer_occupancy = ctx->rc_buffer_size;
}

/* libx264 (capped CRF) with a one-frame VBV at exactly the target stays 10-30 % under it: it
 * plans every frame against the worst case. A max rate of X264_MAXRATE_GAIN x the target, with
 * one frame of buffer at that rate, brings the mean to 0.91-0.98 of the target from 0.6 to 4
 * Mbit/s on the race's 360p picture with no frame above 1.17 x its share; the old two-frame VBV
 * at the target gave 1.00 of it with frames up to 1.8 x their share (bench/encoder_rate.ts).
 * x264 raises a buffer below one frame at the max rate to that anyway. */
#define X264_MAXRATE_GAIN 1.15
static void set_rate_x264(AVCodecContext *ctx, int bps, int fps) {
  int64_t max_rate = (int64_t)(bps * X264_MAXRATE_GAIN);
  if (max_rate > 0x7fffffff) max_rate = 0x7fffffff;
  ctx->bit_rate = bps;
  ctx->rc_max_rate = max_rate;
  ctx->rc_buffer_size = (int)((max_rate + fps - 1) / fps);
  ctx->rc_initial_buffer_occupancy = ctx->rc_buffer_size;
}

static void common_ctx(AVCodecContext *ctx, int w, int h, int fps, int bps) {
  ctx->width = w;
  ctx->height = h;
  ctx->time_base = (AVRational){1, fps};
  ctx->framerate = (AVRational){fps, 1};
  ctx->max_b_frames = 0;
  ctx->gop_size = 1 << 30; /* keyframes only on request */
  ctx->flags |= AV_CODEC_FLAG_LOW_DELAY;
  ctx->flags &= ~AV_CODEC_FLAG_GLOBAL_HEADER;
  set_rate(ctx, bps, fps);
}

static int32_t open_x264(wv_encoder *e, int bps, int global_header, AVCodecContext **out, char *err,
                         int32_t errlen) {
  const AVCodec *codec = avcodec_find_encoder_by_name("libx264");
  if (codec == NULL) return wv_fail(err, errlen, WV_ECODEC, "libx264: this FFmpeg has no libx264 encoder");
  AVCodecContext *ctx = avcodec_alloc_context3(codec);
  if (ctx == NULL) return wv_fail(err, errlen, WV_ENOMEM, "libx264: out of memory");
  common_ctx(ctx, e->width, e->height, e->fps, bps);
  set_rate_x264(ctx, bps, e->fps);
  if (global_header) ctx->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  ctx->pix_fmt = (e->flags & WV_ENC_YUV444) ? AV_PIX_FMT_YUV444P
                 : (e->flags & WV_ENC_NV12)  ? AV_PIX_FMT_NV12
                                             : AV_PIX_FMT_YUV420P;
  ctx->thread_count = cpu_threads();
  ctx->thread_type = FF_THREAD_SLICE;
  ctx->color_range = AVCOL_RANGE_MPEG;
  ctx->colorspace = AVCOL_SPC_BT709;
  ctx->color_primaries = AVCOL_PRI_BT709;
  ctx->color_trc = AVCOL_TRC_BT709;
  AVDictionary *opts = NULL;
  int rc = 0;
  rc |= av_dict_set(&opts, "preset", (e->flags & WV_ENC_SUPERFAST) ? "superfast" : "ultrafast", 0);
  rc |= av_dict_set(&opts, "tune", "zerolatency", 0);
  rc |= av_dict_set(&opts, "rc-lookahead", "0", 0);
  rc |= av_dict_set(&opts, "forced-idr", "1", 0);
  /* Capped CRF: quality 18 until the VBV (set_rate_x264: one frame of
   * buffer) caps it. With per-second target changes plain ABR undershot by
   * 20-30 %; this tracks within about 15 % and does not pad easy content.
   * No HRD signalling and no filler (x264's defaults, nal-hrd=none): filler
   * would pad easy content up to the target, bytes that only add queue. */
  rc |= av_dict_set(&opts, "crf", "18", 0);
  rc |= av_dict_set(&opts, "intra-refresh", (e->flags & WV_ENC_INTRA_REFRESH) ? "1" : "0", 0);
  rc |= av_dict_set(&opts, "x264-params", "sync-lookahead=0:sliced-threads=1:scenecut=0:aud=0:nal-hrd=none:filler=0", 0);
  if (rc < 0) {
    av_dict_free(&opts);
    avcodec_free_context(&ctx);
    return wv_fail(err, errlen, WV_ENOMEM, "libx264: out of memory");
  }
  int ret = avcodec_open2(ctx, codec, &opts);
  av_dict_free(&opts);
  if (ret < 0) {
    char msg[320];
    avcodec_free_context(&ctx);
    return wv_fail(err, errlen, WV_ECODEC, "libx264: cannot open the encoder: %s", av_err(ret, msg, sizeof msg));
  }
  *out = ctx;
  return WV_OK;
}

static int32_t open_vaapi(wv_encoder *e, int bps, char *err, int32_t errlen) {
  const char *node = "/dev/dri/renderD128";
  const AVCodec *codec = avcodec_find_encoder_by_name("h264_vaapi");
  if (codec == NULL) return wv_fail(err, errlen, WV_ECODEC, "h264_vaapi: this FFmpeg has no VA-API encoder");
  if (access(node, R_OK | W_OK) != 0) {
    return wv_fail(err, errlen, WV_ECODEC, "h264_vaapi: no usable VA-API device (%s: %s)", node, strerror(errno));
  }
  char msg[320];
  int ret = av_hwdevice_ctx_create(&e->hw_device, AV_HWDEVICE_TYPE_VAAPI, node, NULL, 0);
  if (ret < 0) {
    return wv_fail(err, errlen, WV_ECODEC, "h264_vaapi: cannot open VA-API on %s: %s", node,
                   av_err(ret, msg, sizeof msg));
  }
  AVCodecContext *ctx = avcodec_alloc_context3(codec);
  if (ctx == NULL) return wv_fail(err, errlen, WV_ENOMEM, "h264_vaapi: out of memory");
  common_ctx(ctx, e->width, e->height, e->fps, bps);
  ctx->pix_fmt = AV_PIX_FMT_VAAPI;
  AVBufferRef *frames = av_hwframe_ctx_alloc(e->hw_device);
  if (frames == NULL) {
    avcodec_free_context(&ctx);
    return wv_fail(err, errlen, WV_ENOMEM, "h264_vaapi: out of memory");
  }
  AVHWFramesContext *fc = (AVHWFramesContext *)frames->data;
  fc->format = AV_PIX_FMT_VAAPI;
  fc->sw_format = AV_PIX_FMT_NV12;
  fc->width = e->width;
  fc->height = e->height;
  fc->initial_pool_size = 4;
  ret = av_hwframe_ctx_init(frames);
  if (ret < 0) {
    av_buffer_unref(&frames);
    avcodec_free_context(&ctx);
    return wv_fail(err, errlen, WV_ECODEC, "h264_vaapi: cannot create surfaces: %s", av_err(ret, msg, sizeof msg));
  }
  ctx->hw_frames_ctx = frames; /* the context owns this reference now */
  AVDictionary *opts = NULL;
  av_dict_set(&opts, "rc_mode", "CBR", 0);
  av_dict_set(&opts, "async_depth", "1", 0);
  ret = avcodec_open2(ctx, codec, &opts);
  av_dict_free(&opts);
  if (ret < 0) {
    avcodec_free_context(&ctx);
    return wv_fail(err, errlen, WV_ECODEC, "h264_vaapi: cannot open the encoder: %s", av_err(ret, msg, sizeof msg));
  }
  e->hwframe = av_frame_alloc();
  if (e->hwframe == NULL || av_hwframe_get_buffer(ctx->hw_frames_ctx, e->hwframe, 0) < 0) {
    avcodec_free_context(&ctx);
    return wv_fail(err, errlen, WV_ECODEC, "h264_vaapi: cannot allocate a surface");
  }
  e->ctx = ctx;
  e->flags |= WV_ENC_NV12;
  return WV_OK;
}

static int32_t open_nvenc(wv_encoder *e, int bps, char *err, int32_t errlen) {
  const AVCodec *codec = avcodec_find_encoder_by_name("h264_nvenc");
  if (codec == NULL) return wv_fail(err, errlen, WV_ECODEC, "h264_nvenc: this FFmpeg has no NVENC encoder");
  AVCodecContext *ctx = avcodec_alloc_context3(codec);
  if (ctx == NULL) return wv_fail(err, errlen, WV_ENOMEM, "h264_nvenc: out of memory");
  common_ctx(ctx, e->width, e->height, e->fps, bps);
  ctx->pix_fmt = AV_PIX_FMT_NV12;
  AVDictionary *opts = NULL;
  av_dict_set(&opts, "preset", "p1", 0);
  av_dict_set(&opts, "tune", "ull", 0);
  av_dict_set(&opts, "rc", "cbr", 0);
  av_dict_set(&opts, "zerolatency", "1", 0);
  av_dict_set(&opts, "delay", "0", 0);
  av_dict_set(&opts, "forced-idr", "1", 0);
  if (e->flags & WV_ENC_INTRA_REFRESH) av_dict_set(&opts, "intra-refresh", "1", 0);
  int ret = avcodec_open2(ctx, codec, &opts);
  av_dict_free(&opts);
  if (ret < 0) {
    char msg[320];
    avcodec_free_context(&ctx);
    return wv_fail(err, errlen, WV_ECODEC, "h264_nvenc: cannot open the encoder: %s", av_err(ret, msg, sizeof msg));
  }
  e->ctx = ctx;
  e->flags |= WV_ENC_NV12;
  return WV_OK;
}

static int32_t setup_conversion(wv_encoder *e, char *err, int32_t errlen) {
  enum AVPixelFormat fmt = e->ctx->pix_fmt == AV_PIX_FMT_VAAPI ? AV_PIX_FMT_NV12 : e->ctx->pix_fmt;
  e->frame = av_frame_alloc();
  e->src = av_frame_alloc();
  e->pkt = av_packet_alloc();
  if (e->frame == NULL || e->src == NULL || e->pkt == NULL) return wv_fail(err, errlen, WV_ENOMEM, "out of memory");
  e->frame->format = fmt;
  e->frame->width = e->width;
  e->frame->height = e->height;
  e->frame->color_range = AVCOL_RANGE_MPEG;
  e->frame->colorspace = AVCOL_SPC_BT709;
  int ret = av_frame_get_buffer(e->frame, 64);
  if (ret < 0) return wv_fail(err, errlen, WV_ENOMEM, "cannot allocate the YUV frame");
  e->src->format = AV_PIX_FMT_BGRA;
  e->src->width = e->width;
  e->src->height = e->height;
  /* 4:2:0 goes through convert.c (2x2 mean chroma, vectorised): faster than libswscale's
   * packed-RGB path and better than its point sampling (docs/MEDIA.md). */
  if (fmt == AV_PIX_FMT_YUV420P &&
      !(e->flags & (WV_ENC_SWS_FAST | WV_ENC_SWS_BILINEAR | WV_ENC_SWS_BICUBIC | WV_ENC_SWSCALE))) {
    return WV_OK;
  }

  int sws_flags = SWS_POINT; /* fastest, and sharpest on screen content (docs/MEDIA.md) */
  if (e->flags & WV_ENC_SWS_FAST) sws_flags = SWS_FAST_BILINEAR;
  if (e->flags & WV_ENC_SWS_BILINEAR) sws_flags = SWS_BILINEAR;
  if (e->flags & WV_ENC_SWS_BICUBIC) sws_flags = SWS_BICUBIC;
  /* SWS_FAST_BILINEAR misplaces chroma by a pixel when it is not subsampled
   * (measured: 28 dB round trip vs 51 dB with SWS_POINT). */
  if (fmt == AV_PIX_FMT_YUV444P && sws_flags == SWS_FAST_BILINEAR) sws_flags = SWS_POINT;
  e->sws = sws_alloc_context();
  if (e->sws == NULL) return wv_fail(err, errlen, WV_ENOMEM, "out of memory");
  int threads = (e->flags & WV_ENC_SWS_1THREAD) ? 1 : cpu_threads();
  if (av_opt_set_int(e->sws, "srcw", e->width, 0) < 0 || av_opt_set_int(e->sws, "srch", e->height, 0) < 0 ||
      av_opt_set_int(e->sws, "src_format", AV_PIX_FMT_BGRA, 0) < 0 ||
      av_opt_set_int(e->sws, "dstw", e->width, 0) < 0 || av_opt_set_int(e->sws, "dsth", e->height, 0) < 0 ||
      av_opt_set_int(e->sws, "dst_format", fmt, 0) < 0 || av_opt_set_int(e->sws, "sws_flags", sws_flags, 0) < 0 ||
      av_opt_set_int(e->sws, "threads", threads, 0) < 0) {
    return wv_fail(err, errlen, WV_ECODEC, "cannot configure libswscale");
  }
  /* BT.709 limited range, matching the stream's VUI. */
  const int *coefs = sws_getCoefficients(SWS_CS_ITU709);
  if (sws_init_context(e->sws, NULL, NULL) < 0) {
    return wv_fail(err, errlen, WV_ECODEC, "libswscale cannot convert BGRA to %s", av_get_pix_fmt_name(fmt));
  }
  int *inv, *tbl, src_range, dst_range, bri, con, sat;
  if (sws_getColorspaceDetails(e->sws, &inv, &src_range, &tbl, &dst_range, &bri, &con, &sat) >= 0) {
    sws_setColorspaceDetails(e->sws, coefs, 1, coefs, 0, bri, con, sat);
  }
  return WV_OK;
}

/* Out-of-band SPS/PPS: a second libx264 context with the same settings and
 * global headers; its extradata is the Annex-B SPS+PPS of the stream. */
static void fetch_config(wv_encoder *e, int bps) {
  if (e->backend == BACKEND_X264) {
    AVCodecContext *probe = NULL;
    char ignored[64];
    if (open_x264(e, bps, 1, &probe, ignored, sizeof ignored) == WV_OK) {
      if (probe->extradata_size > 0) {
        e->config = av_memdup(probe->extradata, (size_t)probe->extradata_size);
        if (e->config != NULL) e->config_len = probe->extradata_size;
      }
      avcodec_free_context(&probe);
    }
  }
}

WV_EXPORT int32_t wavry_encoder_open(int32_t width, int32_t height, int32_t fps, int32_t bitrate_bps,
                                     int32_t flags, const char *encoder_name, void **out, char *err,
                                     int32_t errlen) {
  if (out == NULL) return wv_fail(err, errlen, WV_EINVAL, "out is NULL");
  *out = NULL;
  setup_av_log();
  if (width <= 0 || height <= 0 || (width & 1) || (height & 1) || width > 8192 || height > 8192) {
    return wv_fail(err, errlen, WV_EINVAL, "frame size %dx%d is invalid: both must be even, 2..8192", width, height);
  }
  if (fps <= 0 || fps > 1000) return wv_fail(err, errlen, WV_EINVAL, "fps %d is out of range 1..1000", fps);
  if (bitrate_bps < 10000) return wv_fail(err, errlen, WV_EINVAL, "bitrate %d bit/s is below 10000", bitrate_bps);
  const char *want = (encoder_name == NULL || encoder_name[0] == '\0') ? "auto" : encoder_name;
  int is_auto = strcmp(want, "auto") == 0;
  if (!is_auto && strcmp(want, "libx264") != 0 && strcmp(want, "h264_vaapi") != 0 &&
      strcmp(want, "h264_nvenc") != 0) {
    return wv_fail(err, errlen, WV_EINVAL, "unknown encoder '%s' (auto, libx264, h264_vaapi, h264_nvenc)", want);
  }
  wv_encoder *e = calloc(1, sizeof *e);
  if (e == NULL) return wv_fail(err, errlen, WV_ENOMEM, "out of memory");
  e->magic = WV_MAGIC_ENCODER;
  e->width = width;
  e->height = height;
  e->fps = fps;
  e->flags = flags;

  int32_t rc = WV_ECODEC;
  char why[256];
  size_t used = 0;
  if (is_auto || strcmp(want, "h264_vaapi") == 0) {
    rc = open_vaapi(e, bitrate_bps, why, sizeof why);
    if (rc == WV_OK) {
      e->backend = BACKEND_VAAPI;
    } else {
      av_buffer_unref(&e->hw_device);
      av_frame_free(&e->hwframe);
      if (!is_auto) goto fail_with_why;
      used += (size_t)snprintf(e->notes + used, sizeof e->notes - used, "%s", why);
    }
  }
  if (rc != WV_OK && (is_auto || strcmp(want, "h264_nvenc") == 0)) {
    rc = open_nvenc(e, bitrate_bps, why, sizeof why);
    if (rc == WV_OK) {
      e->backend = BACKEND_NVENC;
    } else {
      if (!is_auto) goto fail_with_why;
      if (used < sizeof e->notes) used += (size_t)snprintf(e->notes + used, sizeof e->notes - used, "; %s", why);
    }
  }
  if (rc != WV_OK) {
    rc = open_x264(e, bitrate_bps, 0, &e->ctx, why, sizeof why);
    if (rc != WV_OK) goto fail_with_why;
    e->backend = BACKEND_X264;
  }
  snprintf(e->name, sizeof e->name, "%s", e->backend == BACKEND_X264    ? "libx264"
                                           : e->backend == BACKEND_VAAPI ? "h264_vaapi"
                                                                         : "h264_nvenc");
  rc = setup_conversion(e, err, errlen);
  if (rc != WV_OK) {
    encoder_free(e);
    return rc;
  }
  fetch_config(e, bitrate_bps);
  *out = e;
  return WV_OK;

fail_with_why:
  encoder_free(e);
  return wv_fail(err, errlen, rc, "%s", why);
}

WV_EXPORT int32_t wavry_encoder_name(void *h, char *buf, int32_t len) {
  wv_encoder *e = as_encoder(h);
  if (e == NULL) return WV_ECLOSED;
  if (buf == NULL || len <= 0) return WV_EINVAL;
  snprintf(buf, (size_t)len, "%s", e->name);
  return WV_OK;
}

/* Why "auto" did not pick the other encoders (empty when it was not asked to probe). */
WV_EXPORT int32_t wavry_encoder_notes(void *h, char *buf, int32_t len) {
  wv_encoder *e = as_encoder(h);
  if (e == NULL) return WV_ECLOSED;
  if (buf == NULL || len <= 0) return WV_EINVAL;
  snprintf(buf, (size_t)len, "%s", e->notes);
  return WV_OK;
}

/* The stream's SPS and PPS as Annex-B bytes (out of band); *outlen 0 when unknown. */
WV_EXPORT int32_t wavry_encoder_config(void *h, uint8_t *out, int32_t outcap, int32_t *outlen, char *err,
                                       int32_t errlen) {
  wv_encoder *e = as_encoder(h);
  if (e == NULL) return wv_fail(err, errlen, WV_ECLOSED, "not an open encoder handle");
  if (outlen == NULL) return wv_fail(err, errlen, WV_EINVAL, "outlen is NULL");
  *outlen = e->config_len;
  if (e->config_len == 0) return WV_OK;
  if (out == NULL || outcap < e->config_len) {
    return wv_fail(err, errlen, WV_EINVAL, "buffer of %d bytes is too small for the %d-byte config", outcap,
                   e->config_len);
  }
  memcpy(out, e->config, (size_t)e->config_len);
  return WV_OK;
}

WV_EXPORT int32_t wavry_encoder_encode_bgra(void *h, const uint8_t *bgra, int32_t stride, int32_t force_keyframe,
                                            uint8_t *out, int32_t outcap, int32_t *outlen, int32_t *is_key,
                                            int64_t *convert_ns, int64_t *encode_ns, char *err, int32_t errlen) {
  wv_encoder *e = as_encoder(h);
  if (e == NULL) return wv_fail(err, errlen, WV_ECLOSED, "not an open encoder handle");
  if (bgra == NULL || out == NULL || outlen == NULL) return wv_fail(err, errlen, WV_EINVAL, "null buffer");
  if (stride < e->width * 4) {
    return wv_fail(err, errlen, WV_EINVAL, "stride %d is less than width %d x 4", stride, e->width);
  }
  setup_av_log();
  *outlen = 0;
  if (is_key != NULL) *is_key = 0;
  char msg[320];
  int64_t t0 = now_ns();
  int ret = av_frame_make_writable(e->frame);
  if (ret < 0) return wv_fail(err, errlen, WV_ENOMEM, "cannot make the frame writable");
  if (e->sws == NULL) {
    wv_bgra_to_i420(bgra, stride, e->width, e->height, e->frame->data[0], e->frame->linesize[0],
                    e->frame->data[1], e->frame->linesize[1], e->frame->data[2], e->frame->linesize[2],
                    (e->flags & WV_ENC_SWS_1THREAD) ? 1 : cpu_threads());
    ret = 0;
  } else {
    e->src->data[0] = (uint8_t *)bgra;
    e->src->linesize[0] = stride;
    ret = sws_scale_frame(e->sws, e->frame, e->src);
    e->src->data[0] = NULL;
  }
  if (ret < 0) return wv_fail(err, errlen, WV_ECODEC, "colour conversion failed: %s", av_err(ret, msg, sizeof msg));
  AVFrame *input = e->frame;
  if (e->backend == BACKEND_VAAPI) {
    ret = av_hwframe_transfer_data(e->hwframe, e->frame, 0);
    if (ret < 0) return wv_fail(err, errlen, WV_ECODEC, "upload to VA-API failed: %s", av_err(ret, msg, sizeof msg));
    input = e->hwframe;
  }
  int64_t t1 = now_ns();
  input->pts = e->pts++;
  input->pict_type = force_keyframe ? AV_PICTURE_TYPE_I : AV_PICTURE_TYPE_NONE;
  input->key_frame = force_keyframe ? 1 : 0;
  ret = avcodec_send_frame(e->ctx, input);
  if (ret < 0) return wv_fail(err, errlen, WV_ECODEC, "encoder rejected the frame: %s", av_err(ret, msg, sizeof msg));
  ret = avcodec_receive_packet(e->ctx, e->pkt);
  int64_t t2 = now_ns();
  if (convert_ns != NULL) *convert_ns = t1 - t0;
  if (encode_ns != NULL) *encode_ns = t2 - t1;
  if (ret == AVERROR(EAGAIN)) {
    return wv_fail(err, errlen, WV_ECODEC, "the encoder held the frame back (it is not configured for zero delay)");
  }
  if (ret < 0) return wv_fail(err, errlen, WV_ECODEC, "encoding failed: %s", av_err(ret, msg, sizeof msg));
  int32_t rc = WV_OK;
  if (e->pkt->size > outcap) {
    rc = wv_fail(err, errlen, WV_EINVAL, "output buffer of %d bytes is too small for a %d-byte access unit",
                 outcap, e->pkt->size);
  } else {
    memcpy(out, e->pkt->data, (size_t)e->pkt->size);
    *outlen = e->pkt->size;
    if (is_key != NULL) *is_key = annexb_has_idr(e->pkt->data, e->pkt->size);
  }
  av_packet_unref(e->pkt);
  return rc;
}

WV_EXPORT int32_t wavry_encoder_set_bitrate(void *h, int32_t bps, char *err, int32_t errlen) {
  wv_encoder *e = as_encoder(h);
  if (e == NULL) return wv_fail(err, errlen, WV_ECLOSED, "not an open encoder handle");
  if (bps < 10000) return wv_fail(err, errlen, WV_EINVAL, "bitrate %d bit/s is below 10000", bps);
  /* libavcodec's libx264 wrapper compares rc_buffer_size and rc_max_rate (in
   * kbit) with x264's VBV before each frame and calls x264_encoder_reconfig
   * when they differ (no new IDR); bit_rate is only compared in ABR mode, so
   * under capped CRF the VBV pair is what carries the new target. Hardware
   * encoders pick up the new rate where their wrapper supports it. */
  if (e->backend == BACKEND_X264) {
    set_rate_x264(e->ctx, bps, e->fps);
  } else {
    set_rate(e->ctx, bps, e->fps);
  }
  return WV_OK;
}

WV_EXPORT void wavry_encoder_close(void *h) {
  wv_encoder *e = as_encoder(h);
  if (e == NULL) return;
  encoder_free(e);
}

/* ======================================================================= */
/* Decoder                                                                  */
/* ======================================================================= */

typedef struct {
  uint32_t magic;
  AVCodecContext *ctx;
  AVPacket *pkt;
  AVFrame *frame;
  AVFrame *dst;
  struct SwsContext *sws;
  int sws_w, sws_h, sws_fmt;
  int pending; /* a decoded picture not yet converted (output buffer was too small) */
  int64_t decode_ns, convert_ns;
} wv_decoder;

static void decoder_free(wv_decoder *d) {
  if (d == NULL) return;
  avcodec_free_context(&d->ctx);
  av_packet_free(&d->pkt);
  av_frame_free(&d->frame);
  av_frame_free(&d->dst);
  sws_freeContext(d->sws);
  d->magic = WV_MAGIC_DEAD;
  free(d);
}

static wv_decoder *as_decoder(void *h) {
  wv_decoder *d = (wv_decoder *)h;
  if (d == NULL || d->magic != WV_MAGIC_DECODER) return NULL;
  return d;
}

WV_EXPORT int32_t wavry_decoder_open(void **out, char *err, int32_t errlen) {
  if (out == NULL) return wv_fail(err, errlen, WV_EINVAL, "out is NULL");
  *out = NULL;
  setup_av_log();
  const AVCodec *codec = avcodec_find_decoder(AV_CODEC_ID_H264);
  if (codec == NULL) return wv_fail(err, errlen, WV_ECODEC, "this FFmpeg has no H.264 decoder");
  wv_decoder *d = calloc(1, sizeof *d);
  if (d == NULL) return wv_fail(err, errlen, WV_ENOMEM, "out of memory");
  d->magic = WV_MAGIC_DECODER;
  d->ctx = avcodec_alloc_context3(codec);
  d->pkt = av_packet_alloc();
  d->frame = av_frame_alloc();
  d->dst = av_frame_alloc();
  if (d->ctx == NULL || d->pkt == NULL || d->frame == NULL || d->dst == NULL) {
    decoder_free(d);
    return wv_fail(err, errlen, WV_ENOMEM, "out of memory");
  }
  d->ctx->flags |= AV_CODEC_FLAG_LOW_DELAY;
  d->ctx->thread_count = 1; /* frame threads would hold pictures back */
  d->ctx->thread_type = FF_THREAD_SLICE;
  int ret = avcodec_open2(d->ctx, codec, NULL);
  if (ret < 0) {
    char msg[320];
    decoder_free(d);
    return wv_fail(err, errlen, WV_ECODEC, "cannot open the H.264 decoder: %s", av_err(ret, msg, sizeof msg));
  }
  *out = d;
  return WV_OK;
}

/* Converts the held picture into out; WV_EINVAL (with the size set) when out is too small. */
static int32_t decoder_emit(wv_decoder *d, uint8_t *out, int32_t outcap, int32_t *width, int32_t *height,
                            int32_t *got_picture, char *err, int32_t errlen) {
  int w = d->frame->width, hgt = d->frame->height;
  if (width != NULL) *width = w;
  if (height != NULL) *height = hgt;
  int64_t need = (int64_t)w * hgt * 4;
  if (out == NULL || outcap < need) {
    d->pending = 1;
    return wv_fail(err, errlen, WV_EINVAL,
                   "output buffer of %d bytes is too small for a %dx%d picture (%lld bytes); "
                   "call again with a larger buffer and no data to fetch it",
                   outcap, w, hgt, (long long)need);
  }
  int64_t t0 = now_ns();
  if (d->sws == NULL || d->sws_w != w || d->sws_h != hgt || d->sws_fmt != d->frame->format) {
    sws_freeContext(d->sws);
    d->sws = sws_getContext(w, hgt, (enum AVPixelFormat)d->frame->format, w, hgt, AV_PIX_FMT_BGRA,
                            SWS_POINT, NULL, NULL, NULL); /* 4:2:0 takes the yuv2rgb fast path
                                                             either way; 4:4:4 must not use
                                                             FAST_BILINEAR (chroma shift) */
    if (d->sws == NULL) {
      return wv_fail(err, errlen, WV_ECODEC, "libswscale cannot convert %s to BGRA",
                     av_get_pix_fmt_name((enum AVPixelFormat)d->frame->format));
    }
    int *inv, *tbl, src_range, dst_range, bri, con, sat;
    if (sws_getColorspaceDetails(d->sws, &inv, &src_range, &tbl, &dst_range, &bri, &con, &sat) >= 0) {
      int cs = d->frame->colorspace == AVCOL_SPC_BT470BG || d->frame->colorspace == AVCOL_SPC_SMPTE170M
                   ? SWS_CS_ITU601
                   : SWS_CS_ITU709;
      const int *coefs = sws_getCoefficients(cs);
      sws_setColorspaceDetails(d->sws, coefs, d->frame->color_range == AVCOL_RANGE_JPEG, coefs, 1, bri, con, sat);
    }
    d->sws_w = w;
    d->sws_h = hgt;
    d->sws_fmt = d->frame->format;
  }
  uint8_t *planes[4] = {out, NULL, NULL, NULL};
  int strides[4] = {w * 4, 0, 0, 0};
  int lines = sws_scale(d->sws, (const uint8_t *const *)d->frame->data, d->frame->linesize, 0, hgt, planes, strides);
  d->convert_ns = now_ns() - t0;
  d->pending = 0;
  av_frame_unref(d->frame);
  if (lines != hgt) return wv_fail(err, errlen, WV_ECODEC, "colour conversion produced %d of %d rows", lines, hgt);
  if (got_picture != NULL) *got_picture = 1;
  return WV_OK;
}

WV_EXPORT int32_t wavry_decoder_decode(void *h, const uint8_t *au, int32_t len, uint8_t *bgra_out, int32_t outcap,
                                       int32_t *width, int32_t *height, int32_t *got_picture, char *err,
                                       int32_t errlen) {
  wv_decoder *d = as_decoder(h);
  if (d == NULL) return wv_fail(err, errlen, WV_ECLOSED, "not an open decoder handle");
  if (got_picture != NULL) *got_picture = 0;
  if (width != NULL) *width = 0;
  if (height != NULL) *height = 0;
  setup_av_log();
  if (au == NULL || len == 0) {
    /* Fetch a picture held back by a too-small buffer. */
    if (!d->pending) return WV_OK;
    return decoder_emit(d, bgra_out, outcap, width, height, got_picture, err, errlen);
  }
  if (len < 0) return wv_fail(err, errlen, WV_EINVAL, "length %d is negative", len);
  if (d->pending) {
    d->pending = 0;
    av_frame_unref(d->frame); /* the caller moved on: drop the held picture */
  }
  char msg[320];
  int64_t t0 = now_ns();
  d->pkt->data = (uint8_t *)au;
  d->pkt->size = len;
  int ret = avcodec_send_packet(d->ctx, d->pkt);
  d->pkt->data = NULL;
  d->pkt->size = 0;
  if (ret < 0 && ret != AVERROR(EAGAIN)) {
    return wv_fail(err, errlen, WV_ECODEC, "the decoder rejected the access unit: %s", av_err(ret, msg, sizeof msg));
  }
  ret = avcodec_receive_frame(d->ctx, d->frame);
  d->decode_ns = now_ns() - t0;
  d->convert_ns = 0;
  if (ret == AVERROR(EAGAIN)) return WV_OK;
  if (ret < 0) return wv_fail(err, errlen, WV_ECODEC, "decoding failed: %s", av_err(ret, msg, sizeof msg));
  return decoder_emit(d, bgra_out, outcap, width, height, got_picture, err, errlen);
}

/* Time the last decode call spent in the decoder and in the BGRA conversion. */
WV_EXPORT int32_t wavry_decoder_timing(void *h, int64_t *decode_ns, int64_t *convert_ns) {
  wv_decoder *d = as_decoder(h);
  if (d == NULL) return WV_ECLOSED;
  if (decode_ns != NULL) *decode_ns = d->decode_ns;
  if (convert_ns != NULL) *convert_ns = d->convert_ns;
  return WV_OK;
}

WV_EXPORT void wavry_decoder_close(void *h) {
  wv_decoder *d = as_decoder(h);
  if (d == NULL) return;
  decoder_free(d);
}
