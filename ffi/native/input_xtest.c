/*
 * Input injection through the XTest extension: keys by keysym, pointer
 * motion (absolute and relative) and buttons, each flushed at once so an
 * event reaches the server within the call.
 *
 * Keys arrive as keysyms. A keysym the current keyboard map has no keycode
 * for (e.g. F13 on the default evdev map, which gives that key XF86Tools) is
 * typed the way VNC servers do it: a spare keycode (one with no keysyms at
 * all) is bound to it with XChangeKeyboardMapping, pressed, and given back
 * to NoSymbol when the handle closes. Keys and buttons still held when the
 * handle closes are released, so a dropped client never leaves a stuck key.
 *
 * Nothing here sends a request the server could reject: keycodes come from
 * the server's own range, buttons are checked against the pointer map and
 * absolute positions against the screen, because Xlib's default error
 * handler would exit the process on a protocol error. A lost connection
 * marks the handle dead instead of exiting: Xlib first calls the process-wide
 * I/O error handler (the default one exits), then the display's exit handler
 * (the default one exits too). A chaining I/O handler, installed once,
 * returns for this module's displays and hands every other display to the
 * handler that was there before, so other modules see no change.
 */
#include <X11/Xlib.h>
#include <X11/extensions/XTest.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "x11.h"

#define MAX_SPARES 16
#define MAX_BUTTONS 32

typedef struct InputHandle {
  uint32_t magic;
  Display *dpy;
  volatile int dead; /* set by the X11 error policy (x11.c) when the connection is gone */
  int width, height;
  int min_keycode, max_keycode;
  int nbuttons;
  /* keysym each keycode was pressed with (0 = not held), so a release finds its press */
  KeySym held[256];
  unsigned char buttons_held[MAX_BUTTONS + 1];
  /* spare keycodes bound on demand to keysyms missing from the map */
  int nspares;
  unsigned char spare_keycode[MAX_SPARES];
  KeySym spare_keysym[MAX_SPARES];
  uint64_t spare_used[MAX_SPARES];
  uint64_t clock;
} InputHandle;

static int32_t check_handle(InputHandle *h, char *err, int32_t errlen) {
  if (h == NULL || h->magic != WV_MAGIC_INPUT) {
    return wv_fail(err, errlen, WV_ECLOSED, "not an open input injector handle");
  }
  if (h->dead) {
    return wv_fail(err, errlen, WV_EDISPLAY, "the connection to the X server was lost");
  }
  return WV_OK;
}

/* Sends the queued requests; reports a connection lost on the way. */
static int32_t flush(InputHandle *h, char *err, int32_t errlen) {
  XFlush(h->dpy);
  if (h->dead) return wv_fail(err, errlen, WV_EDISPLAY, "the connection to the X server was lost");
  return WV_OK;
}

/* Reads pending events (only MappingNotify comes to this client) so the keymap cache stays current. */
static void drain_events(InputHandle *h) {
  while (!h->dead && XPending(h->dpy) > 0) {
    XEvent e;
    XNextEvent(h->dpy, &e);
    if (e.type == MappingNotify) XRefreshKeyboardMapping(&e.xmapping);
  }
}

static int spare_index(const InputHandle *h, int keycode) {
  for (int i = 0; i < h->nspares; i++) {
    if (h->spare_keycode[i] == keycode) return i;
  }
  return -1;
}

/* Finds the spare keycodes: those the map gives no keysym at all. */
static void find_spares(InputHandle *h) {
  int count = h->max_keycode - h->min_keycode + 1;
  int per = 0;
  KeySym *map = XGetKeyboardMapping(h->dpy, (KeyCode)h->min_keycode, count, &per);
  if (map == NULL) return;
  /* from the top down: high keycodes are the least likely to be real keys */
  for (int kc = h->max_keycode; kc >= h->min_keycode && h->nspares < MAX_SPARES; kc--) {
    int empty = 1;
    for (int j = 0; j < per; j++) {
      if (map[(kc - h->min_keycode) * per + j] != NoSymbol) empty = 0;
    }
    if (empty) h->spare_keycode[h->nspares++] = (unsigned char)kc;
  }
  XFree(map);
}

/* The keycode to press for keysym, binding a spare keycode when the map has none; 0 if impossible. */
static int keycode_for_press(InputHandle *h, KeySym sym) {
  for (int i = 0; i < h->nspares; i++) {
    if (h->spare_keysym[i] == sym) {
      h->spare_used[i] = ++h->clock;
      return h->spare_keycode[i];
    }
  }
  int kc = XKeysymToKeycode(h->dpy, sym);
  /* a spare's cached binding may be stale (rebound since): only our table is trusted for spares */
  if (kc != 0 && spare_index(h, kc) < 0) return kc;
  int best = -1;
  for (int i = 0; i < h->nspares; i++) {
    if (h->held[h->spare_keycode[i]] != 0) continue; /* never rebind a key that is down */
    if (best < 0 || h->spare_used[i] < h->spare_used[best]) best = i;
  }
  if (best < 0) return 0;
  KeySym bound = sym;
  XChangeKeyboardMapping(h->dpy, h->spare_keycode[best], 1, &bound, 1);
  h->spare_keysym[best] = sym;
  h->spare_used[best] = ++h->clock;
  return h->spare_keycode[best];
}

WV_EXPORT int32_t wavry_input_open(const char *display, void **out, char *err, int32_t errlen) {
  if (out == NULL) return wv_fail(err, errlen, WV_EINVAL, "out pointer is null");
  *out = NULL;
  const char *name = (display != NULL && display[0] != '\0') ? display : NULL;
  const char *shown = name ? name : (getenv("DISPLAY") ? getenv("DISPLAY") : "(DISPLAY unset)");
  InputHandle *h = calloc(1, sizeof *h);
  if (h == NULL) return wv_fail(err, errlen, WV_ENOMEM, "out of memory");
  Display *dpy = wv_x11_open(name, &h->dead);
  if (dpy == NULL) {
    free(h);
    return wv_fail(err, errlen, WV_EDISPLAY, "cannot open X display %s", shown);
  }
  h->magic = WV_MAGIC_INPUT;
  h->dpy = dpy;
  int event_base, error_base, major, minor;
  if (!XTestQueryExtension(dpy, &event_base, &error_base, &major, &minor) || h->dead) {
    int dead = h->dead;
    wv_x11_close(dpy);
    free(h);
    if (dead) return wv_fail(err, errlen, WV_EDISPLAY, "X display %s went away during open", shown);
    return wv_fail(err, errlen, WV_EDISPLAY,
                   "X display %s has no XTEST extension, which input injection needs", shown);
  }
  h->width = DisplayWidth(dpy, DefaultScreen(dpy));
  h->height = DisplayHeight(dpy, DefaultScreen(dpy));
  XDisplayKeycodes(dpy, &h->min_keycode, &h->max_keycode);
  if (h->min_keycode < 8) h->min_keycode = 8;
  if (h->max_keycode > 255) h->max_keycode = 255;
  unsigned char map[256];
  h->nbuttons = XGetPointerMapping(dpy, map, (int)sizeof map);
  if (h->nbuttons > MAX_BUTTONS) h->nbuttons = MAX_BUTTONS;
  find_spares(h);
  XTestGrabControl(dpy, True); /* injection keeps working while another client grabs the server */
  XFlush(dpy);
  *out = h;
  return WV_OK;
}

WV_EXPORT int32_t wavry_input_key(void *handle, uint32_t keysym, int32_t down, char *err,
                                  int32_t errlen) {
  InputHandle *h = handle;
  int32_t status = check_handle(h, err, errlen);
  if (status != WV_OK) return status;
  if (keysym == NoSymbol || keysym > 0x1FFFFFFFu) {
    return wv_fail(err, errlen, WV_EINVAL, "0x%x is not a keysym", keysym);
  }
  drain_events(h); /* a layout change since the last key must be seen before this one */
  int kc;
  if (down) {
    kc = keycode_for_press(h, keysym);
    if (kc == 0) {
      return wv_fail(err, errlen, WV_EINVAL,
                     "keysym 0x%x has no keycode on this keyboard map and no spare keycode is free",
                     keysym);
    }
    h->held[kc] = keysym;
  } else {
    kc = 0;
    for (int i = h->min_keycode; i <= h->max_keycode; i++) {
      if (h->held[i] == keysym) {
        kc = i;
        break;
      }
    }
    if (kc == 0) return WV_OK; /* not down: nothing to release */
    h->held[kc] = 0;
  }
  XTestFakeKeyEvent(h->dpy, (unsigned)kc, down ? True : False, CurrentTime);
  return flush(h, err, errlen);
}

WV_EXPORT int32_t wavry_input_keycode(void *handle, uint32_t keysym, int32_t *keycode, char *err,
                                      int32_t errlen) {
  InputHandle *h = handle;
  int32_t status = check_handle(h, err, errlen);
  if (status != WV_OK) return status;
  if (keycode == NULL) return wv_fail(err, errlen, WV_EINVAL, "keycode pointer is null");
  drain_events(h);
  int kc = XKeysymToKeycode(h->dpy, keysym);
  *keycode = (kc != 0 && spare_index(h, kc) < 0) ? kc : 0;
  return WV_OK;
}

/* Re-reads the root window size (the screen may have been resized with RandR). */
static void refresh_size(InputHandle *h) {
  Window root;
  int x, y;
  unsigned int w, hh, border, depth;
  if (XGetGeometry(h->dpy, DefaultRootWindow(h->dpy), &root, &x, &y, &w, &hh, &border, &depth)) {
    h->width = (int)w;
    h->height = (int)hh;
  }
}

WV_EXPORT int32_t wavry_input_move_absolute(void *handle, int32_t x, int32_t y, char *err,
                                            int32_t errlen) {
  InputHandle *h = handle;
  int32_t status = check_handle(h, err, errlen);
  if (status != WV_OK) return status;
  if (x < 0 || y < 0 || x >= h->width || y >= h->height) {
    refresh_size(h);
    if (x < 0 || y < 0 || x >= h->width || y >= h->height) {
      return wv_fail(err, errlen, WV_EINVAL, "position (%d, %d) is outside the %dx%d screen", x, y,
                     h->width, h->height);
    }
  }
  XTestFakeMotionEvent(h->dpy, -1, x, y, CurrentTime);
  return flush(h, err, errlen);
}

WV_EXPORT int32_t wavry_input_move_relative(void *handle, int32_t dx, int32_t dy, char *err,
                                            int32_t errlen) {
  InputHandle *h = handle;
  int32_t status = check_handle(h, err, errlen);
  if (status != WV_OK) return status;
  if (dx < -32768 || dx > 32767 || dy < -32768 || dy > 32767) {
    return wv_fail(err, errlen, WV_EINVAL, "relative motion (%d, %d) exceeds 16 bits", dx, dy);
  }
  XTestFakeRelativeMotionEvent(h->dpy, dx, dy, CurrentTime);
  return flush(h, err, errlen);
}

WV_EXPORT int32_t wavry_input_button(void *handle, int32_t button, int32_t down, char *err,
                                     int32_t errlen) {
  InputHandle *h = handle;
  int32_t status = check_handle(h, err, errlen);
  if (status != WV_OK) return status;
  if (button < 1 || button > h->nbuttons) {
    return wv_fail(err, errlen, WV_EINVAL, "X pointer button %d does not exist (this pointer has 1..%d)",
                   button, h->nbuttons);
  }
  h->buttons_held[button] = down ? 1 : 0;
  XTestFakeButtonEvent(h->dpy, (unsigned)button, down ? True : False, CurrentTime);
  return flush(h, err, errlen);
}

/* Releases every key and button this handle holds down. */
static void release_all(InputHandle *h) {
  for (int kc = h->min_keycode; kc <= h->max_keycode; kc++) {
    if (h->held[kc] != 0) {
      h->held[kc] = 0;
      XTestFakeKeyEvent(h->dpy, (unsigned)kc, False, CurrentTime);
    }
  }
  for (int b = 1; b <= MAX_BUTTONS; b++) {
    if (h->buttons_held[b]) {
      h->buttons_held[b] = 0;
      XTestFakeButtonEvent(h->dpy, (unsigned)b, False, CurrentTime);
    }
  }
}

WV_EXPORT int32_t wavry_input_release_all(void *handle, char *err, int32_t errlen) {
  InputHandle *h = handle;
  int32_t status = check_handle(h, err, errlen);
  if (status != WV_OK) return status;
  release_all(h);
  return flush(h, err, errlen);
}

WV_EXPORT int32_t wavry_input_screen_size(void *handle, int32_t *width, int32_t *height, char *err,
                                          int32_t errlen) {
  InputHandle *h = handle;
  int32_t status = check_handle(h, err, errlen);
  if (status != WV_OK) return status;
  if (width == NULL || height == NULL) return wv_fail(err, errlen, WV_EINVAL, "size pointer is null");
  refresh_size(h);
  if (h->dead) return wv_fail(err, errlen, WV_EDISPLAY, "the connection to the X server was lost");
  *width = h->width;
  *height = h->height;
  return WV_OK;
}

WV_EXPORT void wavry_input_close(void *handle) {
  InputHandle *h = handle;
  if (h == NULL || h->magic != WV_MAGIC_INPUT) return;
  h->magic = WV_MAGIC_DEAD;
  if (!h->dead) {
    release_all(h);
    for (int i = 0; i < h->nspares; i++) {
      if (h->spare_keysym[i] != NoSymbol) {
        KeySym none = NoSymbol;
        XChangeKeyboardMapping(h->dpy, h->spare_keycode[i], 1, &none, 1);
      }
    }
    XTestGrabControl(h->dpy, False);
  }
  wv_x11_close(h->dpy); /* flushes what is left; safe on a dead connection */
  free(h);
}
