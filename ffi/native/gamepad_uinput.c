/*
 * A virtual gamepad through /dev/uinput: an Xbox 360-like device (the
 * layout games and SDL know best) fed with the web Gamepad API's standard
 * mapping, 17 buttons and 4 axes per update.
 *
 *   buttons 0-3  A B X Y      -> BTN_SOUTH BTN_EAST BTN_WEST BTN_NORTH
 *   buttons 4-5  LB RB        -> BTN_TL BTN_TR
 *   buttons 6-7  LT RT        -> ABS_Z ABS_RZ (0..255, analog)
 *   buttons 8-9  Back Start   -> BTN_SELECT BTN_START
 *   buttons 10-11 stick press -> BTN_THUMBL BTN_THUMBR
 *   buttons 12-15 d-pad       -> ABS_HAT0Y (up -1, down +1), ABS_HAT0X (left -1, right +1)
 *   button 16    Guide        -> BTN_MODE
 *   axes 0-3  LX LY RX RY     -> ABS_X ABS_Y ABS_RX ABS_RY (-32768..32767, up is negative
 *                                 on both sides, as the web and xpad agree)
 *
 * Each update writes only what changed, then one SYN_REPORT, in one write().
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/uinput.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "common.h"

#define WEB_BUTTONS 17
#define WEB_AXES 4
#define NCODES 19 /* 11 keys + 4 stick axes + 2 triggers + 2 hat axes */

static const int KEY_FOR_BUTTON[WEB_BUTTONS] = {
    BTN_SOUTH, BTN_EAST, BTN_WEST, BTN_NORTH, BTN_TL, BTN_TR, -1, -1, BTN_SELECT,
    BTN_START, BTN_THUMBL, BTN_THUMBR, -1, -1, -1, -1, BTN_MODE};
static const int STICK_AXES[WEB_AXES] = {ABS_X, ABS_Y, ABS_RX, ABS_RY};

typedef struct {
  uint32_t magic;
  int fd;
  int keys[WEB_BUTTONS]; /* last value sent per web button with a key (0/1) */
  int abs[ABS_CNT];      /* last value sent per absolute axis */
} GamepadHandle;

static int set_abs(int fd, int code, int min, int max, int fuzz, int flat) {
  struct uinput_abs_setup setup;
  memset(&setup, 0, sizeof setup);
  setup.code = (unsigned short)code;
  setup.absinfo.minimum = min;
  setup.absinfo.maximum = max;
  setup.absinfo.fuzz = fuzz;
  setup.absinfo.flat = flat;
  return ioctl(fd, UI_ABS_SETUP, &setup);
}

WV_EXPORT int32_t wavry_gamepad_open(const char *name, void **out, char *err, int32_t errlen) {
  if (out == NULL) return wv_fail(err, errlen, WV_EINVAL, "out pointer is null");
  *out = NULL;
  int fd = open("/dev/uinput", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT || e == ENODEV || e == ENXIO) {
      return wv_fail(err, errlen, WV_ENODEV,
                     "virtual gamepads need /dev/uinput, which this machine does not have "
                     "(load the uinput kernel module with 'modprobe uinput', or run the host "
                     "where /dev/uinput exists)");
    }
    if (e == EACCES || e == EPERM) {
      return wv_fail(err, errlen, WV_EIO,
                     "/dev/uinput exists but this user may not open it (%s): give the host "
                     "write access to it, e.g. with a udev rule or the 'input' group",
                     strerror(e));
    }
    return wv_fail(err, errlen, WV_EIO, "cannot open /dev/uinput: %s", strerror(e));
  }
  int ok = ioctl(fd, UI_SET_EVBIT, EV_KEY) == 0 && ioctl(fd, UI_SET_EVBIT, EV_ABS) == 0 &&
           ioctl(fd, UI_SET_EVBIT, EV_SYN) == 0;
  for (int i = 0; ok && i < WEB_BUTTONS; i++) {
    if (KEY_FOR_BUTTON[i] >= 0) ok = ioctl(fd, UI_SET_KEYBIT, KEY_FOR_BUTTON[i]) == 0;
  }
  static const int ALL_ABS[] = {ABS_X, ABS_Y, ABS_RX, ABS_RY, ABS_Z, ABS_RZ, ABS_HAT0X, ABS_HAT0Y};
  for (size_t i = 0; ok && i < sizeof ALL_ABS / sizeof ALL_ABS[0]; i++) {
    ok = ioctl(fd, UI_SET_ABSBIT, ALL_ABS[i]) == 0;
  }
  for (int i = 0; ok && i < WEB_AXES; i++) ok = set_abs(fd, STICK_AXES[i], -32768, 32767, 16, 128) == 0;
  ok = ok && set_abs(fd, ABS_Z, 0, 255, 0, 0) == 0 && set_abs(fd, ABS_RZ, 0, 255, 0, 0) == 0 &&
       set_abs(fd, ABS_HAT0X, -1, 1, 0, 0) == 0 && set_abs(fd, ABS_HAT0Y, -1, 1, 0, 0) == 0;
  if (ok) {
    struct uinput_setup setup;
    memset(&setup, 0, sizeof setup);
    setup.id.bustype = BUS_USB;
    setup.id.vendor = 0x045e; /* Microsoft */
    setup.id.product = 0x028e; /* Xbox 360 controller */
    setup.id.version = 0x0110;
    snprintf(setup.name, UINPUT_MAX_NAME_SIZE, "%s",
             (name != NULL && name[0] != '\0') ? name : "Wavry virtual gamepad");
    ok = ioctl(fd, UI_DEV_SETUP, &setup) == 0 && ioctl(fd, UI_DEV_CREATE) == 0;
  }
  if (!ok) {
    int e = errno;
    close(fd);
    return wv_fail(err, errlen, WV_EIO, "cannot create the uinput gamepad: %s", strerror(e));
  }
  GamepadHandle *h = calloc(1, sizeof *h);
  if (h == NULL) {
    ioctl(fd, UI_DEV_DESTROY);
    close(fd);
    return wv_fail(err, errlen, WV_ENOMEM, "out of memory");
  }
  h->magic = WV_MAGIC_GAMEPAD;
  h->fd = fd;
  *out = h;
  return WV_OK;
}

WV_EXPORT int32_t wavry_gamepad_update(void *handle, const float *buttons, const float *axes,
                                       char *err, int32_t errlen) {
  GamepadHandle *h = handle;
  if (h == NULL || h->magic != WV_MAGIC_GAMEPAD) {
    return wv_fail(err, errlen, WV_ECLOSED, "not an open gamepad handle");
  }
  if (buttons == NULL || axes == NULL) {
    return wv_fail(err, errlen, WV_EINVAL, "buttons or axes pointer is null");
  }
  for (int i = 0; i < WEB_BUTTONS; i++) {
    if (!isfinite(buttons[i])) return wv_fail(err, errlen, WV_EINVAL, "button %d is not a number", i);
  }
  for (int i = 0; i < WEB_AXES; i++) {
    if (!isfinite(axes[i])) return wv_fail(err, errlen, WV_EINVAL, "axis %d is not a number", i);
  }
  struct input_event events[NCODES + 1];
  int n = 0;
#define EMIT(t, c, v)                       \
  do {                                      \
    memset(&events[n], 0, sizeof events[n]); \
    events[n].type = (t);                   \
    events[n].code = (c);                   \
    events[n].value = (v);                  \
    n++;                                    \
  } while (0)
  for (int i = 0; i < WEB_BUTTONS; i++) {
    if (KEY_FOR_BUTTON[i] < 0) continue;
    int v = buttons[i] >= 0.5f ? 1 : 0;
    if (v != h->keys[i]) {
      h->keys[i] = v;
      EMIT(EV_KEY, KEY_FOR_BUTTON[i], v);
    }
  }
  int values[8][2] = {
      {ABS_Z, (int)lroundf(fminf(fmaxf(buttons[6], 0.0f), 1.0f) * 255.0f)},
      {ABS_RZ, (int)lroundf(fminf(fmaxf(buttons[7], 0.0f), 1.0f) * 255.0f)},
      {ABS_HAT0X, (buttons[15] >= 0.5f) - (buttons[14] >= 0.5f)},
      {ABS_HAT0Y, (buttons[13] >= 0.5f) - (buttons[12] >= 0.5f)},
  };
  for (int i = 0; i < WEB_AXES; i++) {
    float a = fminf(fmaxf(axes[i], -1.0f), 1.0f);
    values[4 + i][0] = STICK_AXES[i];
    values[4 + i][1] = a < 0 ? (int)lroundf(a * 32768.0f) : (int)lroundf(a * 32767.0f);
  }
  for (int i = 0; i < 8; i++) {
    int code = values[i][0], v = values[i][1];
    if (v != h->abs[code]) {
      h->abs[code] = v;
      EMIT(EV_ABS, code, v);
    }
  }
#undef EMIT
  if (n == 0) return WV_OK;
  memset(&events[n], 0, sizeof events[n]);
  events[n].type = EV_SYN;
  events[n].code = SYN_REPORT;
  n++;
  ssize_t want = (ssize_t)(sizeof events[0] * (size_t)n);
  ssize_t wrote = write(h->fd, events, (size_t)want);
  if (wrote != want) {
    /* the device state is unknown now: make the next update send every value */
    for (int i = 0; i < WEB_BUTTONS; i++) h->keys[i] = -1;
    for (int i = 0; i < ABS_CNT; i++) h->abs[i] = INT32_MIN;
    return wv_fail(err, errlen, WV_EIO, "writing gamepad events to /dev/uinput failed: %s",
                   wrote < 0 ? strerror(errno) : "short write");
  }
  return WV_OK;
}

WV_EXPORT void wavry_gamepad_close(void *handle) {
  GamepadHandle *h = handle;
  if (h == NULL || h->magic != WV_MAGIC_GAMEPAD) return;
  h->magic = WV_MAGIC_DEAD;
  ioctl(h->fd, UI_DEV_DESTROY);
  close(h->fd);
  free(h);
}
