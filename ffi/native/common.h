/*
 * Wavry native shim: conventions shared by every module.
 *
 * The ABI is deliberately narrow: opaque handles, plain integers and byte
 * buffers. TypeScript never sees an FFmpeg, X11 or PulseAudio struct.
 *
 * Every fallible call returns an int32 status (WV_OK or a negative WV_E*
 * code) and writes a human-readable message into the caller's `err` buffer
 * (`errlen` bytes, always NUL-terminated). Messages live in the caller's
 * buffer, not in thread-local state, because Deno runs nonblocking FFI calls
 * on other threads. Functions that create a handle write it to `*out`.
 * Nothing here aborts the process on bad input.
 */
#ifndef WAVRY_COMMON_H
#define WAVRY_COMMON_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

#define WV_OK 0
#define WV_EINVAL -1       /* bad argument: wrong size, null pointer, out of range */
#define WV_EUNSUPPORTED -2 /* the machine or build lacks the feature */
#define WV_EDISPLAY -3     /* X display unavailable or lacks an extension */
#define WV_ECODEC -4       /* encoder/decoder could not open or failed */
#define WV_EAGAIN -5       /* no output available yet (not an error) */
#define WV_EIO -6          /* system call or server I/O failed */
#define WV_ECLOSED -7      /* handle was closed or is not a handle of this kind */
#define WV_ENOMEM -8       /* allocation failed */
#define WV_ENODEV -9       /* a device node (e.g. /dev/uinput) is missing */

/* Handle kinds, checked at every entry point so a wrong or freed handle is an error, not a crash. */
#define WV_MAGIC_CAPTURE 0x57564331u
#define WV_MAGIC_ENCODER 0x57564532u
#define WV_MAGIC_DECODER 0x57564433u
#define WV_MAGIC_AUDIO_IN 0x57564134u
#define WV_MAGIC_AUDIO_OUT 0x57564135u
#define WV_MAGIC_OPUS_ENC 0x57564F36u
#define WV_MAGIC_OPUS_DEC 0x57564F37u
#define WV_MAGIC_INPUT 0x57564938u
#define WV_MAGIC_GAMEPAD 0x57564739u
#define WV_MAGIC_DEAD 0xDEADDEADu

#if defined(__GNUC__)
#define WV_EXPORT __attribute__((visibility("default")))
#define WV_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define WV_EXPORT
#define WV_PRINTF(a, b)
#endif

/* Writes a message into err and returns code. */
static inline int32_t wv_fail(char *err, int32_t errlen, int32_t code, const char *fmt, ...)
    WV_PRINTF(4, 5);
static inline int32_t wv_fail(char *err, int32_t errlen, int32_t code, const char *fmt, ...) {
  if (err != NULL && errlen > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, (size_t)errlen, fmt, ap);
    va_end(ap);
    err[errlen - 1] = '\0';
  }
  return code;
}

/* Monotonic clock in microseconds (CLOCK_MONOTONIC), the clock every capture timestamp uses. */
int64_t wv_monotonic_us(void);

#endif
