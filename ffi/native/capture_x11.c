/*
 * X11 screen capture through MIT-SHM.
 *
 * One shared-memory segment per capturer, created and attached at open;
 * every grab is one XShmGetImage round trip into it, so the steady state
 * allocates nothing. The caller either copies the image out (dst != NULL)
 * or reads the segment in place through wavry_capture_data() (zero copy;
 * the bytes stay valid until the next grab or close).
 *
 * Monitors come from Xinerama, loaded at run time (libXinerama.so.1) so the
 * shim needs no extra build dependency; without it only monitor 0 (= the
 * whole screen) and -1 exist.
 */
#include "common.h"
#include "x11.h"

#include <X11/extensions/Xrandr.h>

#include <X11/Xlib.h>
#include <X11/Xutil.h>
#include <X11/extensions/XShm.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>

typedef struct {
  uint32_t magic;
  Display *dpy;
  Window root;
  XImage *image;
  XShmSegmentInfo shm;
  int shm_attached;
  volatile int dead; /* set by the X11 error policy (x11.c) when the connection is lost */
  int x, y, width, height, stride;
} wv_capture;

/* ---- Xinerama, loaded at run time -------------------------------------- */
typedef struct {
  int screen_number;
  short x_org, y_org, width, height;
} wv_xinerama_screen; /* layout of XineramaScreenInfo */

typedef int (*xinerama_is_active_fn)(Display *);
typedef wv_xinerama_screen *(*xinerama_query_screens_fn)(Display *, int *);

/* Finds monitor `index`; returns 0 and fills the rectangle, or a WV_E* code. */
static int32_t find_monitor(Display *dpy, int index, int screen_w, int screen_h, int *x, int *y,
                            int *w, int *h, char *err, int32_t errlen) {
  /* Never unloaded: Xinerama registers close-display hooks inside the library. */
  void *lib = dlopen("libXinerama.so.1", RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  int count = 0;
  if (lib != NULL) {
    xinerama_is_active_fn is_active = (xinerama_is_active_fn)dlsym(lib, "XineramaIsActive");
    xinerama_query_screens_fn query = (xinerama_query_screens_fn)dlsym(lib, "XineramaQueryScreens");
    if (is_active != NULL && query != NULL && is_active(dpy)) {
      wv_xinerama_screen *screens = query(dpy, &count);
      if (screens != NULL) {
        int found = index >= 0 && index < count;
        if (found) {
          *x = screens[index].x_org;
          *y = screens[index].y_org;
          *w = screens[index].width;
          *h = screens[index].height;
        }
        XFree(screens);
        if (found) return WV_OK;
        return wv_fail(err, errlen, WV_EINVAL, "monitor %d does not exist (the display has %d monitor%s)",
                       index, count, count == 1 ? "" : "s");
      }
    }
  }
  /* No Xinerama: the screen is the one monitor. */
  if (index == 0) {
    *x = 0;
    *y = 0;
    *w = screen_w;
    *h = screen_h;
    return WV_OK;
  }
  return wv_fail(err, errlen, WV_EINVAL,
                 "monitor %d does not exist (no Xinerama: only monitor 0 or -1 for the whole screen)",
                 index);
}

static void capture_free(wv_capture *c) {
  if (c == NULL) return;
  /* A dead connection cannot detach (and Xlib may block for ever trying); the server that
   * held the attachment is gone anyway. */
  if (c->shm_attached && !c->dead) {
    XShmDetach(c->dpy, &c->shm);
    XSync(c->dpy, False);
  }
  if (c->image != NULL) {
    c->image->data = NULL; /* the data is the segment, not malloc'd */
    XDestroyImage(c->image);
  }
  if (c->shm.shmaddr != NULL && c->shm.shmaddr != (char *)-1) {
    /* TypeScript may still hold a view of the segment (a frame used after
     * close): replace the mapping with zero pages instead of leaving a hole,
     * so a late read sees black rather than faulting. Costs address space only. */
    size_t size = (size_t)c->stride * (size_t)c->height;
    void *placeholder = size == 0 ? MAP_FAILED
                                  : mmap(c->shm.shmaddr, size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (placeholder == MAP_FAILED) shmdt(c->shm.shmaddr);
  }
  wv_x11_close(c->dpy);
  c->magic = WV_MAGIC_DEAD;
  free(c);
}

static wv_capture *as_capture(void *h) {
  wv_capture *c = (wv_capture *)h;
  if (c == NULL || c->magic != WV_MAGIC_CAPTURE) return NULL;
  return c;
}

WV_EXPORT int32_t wavry_capture_open(const char *display, int32_t monitor, void **out, char *err,
                                     int32_t errlen) {
  if (out == NULL) return wv_fail(err, errlen, WV_EINVAL, "out is NULL");
  *out = NULL;
  if (monitor < -1) return wv_fail(err, errlen, WV_EINVAL, "monitor %d is not an index (use -1 for the whole screen)", monitor);

  const char *name = (display != NULL && display[0] != '\0') ? display : getenv("DISPLAY");
  if (name == NULL || name[0] == '\0') {
    return wv_fail(err, errlen, WV_EDISPLAY, "no X display: DISPLAY is not set and none was given");
  }
  wv_capture *c = calloc(1, sizeof *c);
  if (c == NULL) return wv_fail(err, errlen, WV_ENOMEM, "out of memory");
  c->magic = WV_MAGIC_CAPTURE;
  c->shm.shmid = -1;
  c->shm.shmaddr = NULL;

  c->dpy = wv_x11_open(name, &c->dead);
  if (c->dpy == NULL) {
    capture_free(c);
    return wv_fail(err, errlen, WV_EDISPLAY, "cannot open X display '%s'", name);
  }
  int major = 0, minor = 0;
  Bool pixmaps = False;
  if (!XShmQueryExtension(c->dpy) || !XShmQueryVersion(c->dpy, &major, &minor, &pixmaps)) {
    capture_free(c);
    return wv_fail(err, errlen, WV_EDISPLAY, "X display '%s' lacks the MIT-SHM extension", name);
  }
  int screen = DefaultScreen(c->dpy);
  c->root = RootWindow(c->dpy, screen);
  int sw = DisplayWidth(c->dpy, screen), sh = DisplayHeight(c->dpy, screen);
  if (monitor == -1) {
    c->x = 0;
    c->y = 0;
    c->width = sw;
    c->height = sh;
  } else {
    int32_t rc = find_monitor(c->dpy, monitor, sw, sh, &c->x, &c->y, &c->width, &c->height, err, errlen);
    if (rc != WV_OK) {
      capture_free(c);
      return rc;
    }
  }
  Visual *visual = DefaultVisual(c->dpy, screen);
  int depth = DefaultDepth(c->dpy, screen);
  if (depth != 24 && depth != 32) {
    capture_free(c);
    return wv_fail(err, errlen, WV_EUNSUPPORTED, "screen depth %d is not supported (need 24 or 32)", depth);
  }
  c->image = XShmCreateImage(c->dpy, visual, (unsigned)depth, ZPixmap, NULL, &c->shm, (unsigned)c->width,
                             (unsigned)c->height);
  if (c->image == NULL) {
    capture_free(c);
    return wv_fail(err, errlen, WV_EIO, "XShmCreateImage failed for %dx%d", c->width, c->height);
  }
  if (c->image->bits_per_pixel != 32 || c->image->red_mask != 0xff0000 || c->image->blue_mask != 0xff) {
    capture_free(c);
    return wv_fail(err, errlen, WV_EUNSUPPORTED, "pixel layout is not BGRX (%d bits per pixel)", c->image->bits_per_pixel);
  }
  c->stride = c->image->bytes_per_line;
  size_t size = (size_t)c->image->bytes_per_line * (size_t)c->image->height;
  c->shm.shmid = shmget(IPC_PRIVATE, size, IPC_CREAT | 0600);
  if (c->shm.shmid < 0) {
    int e = errno;
    capture_free(c);
    return wv_fail(err, errlen, WV_EIO, "shmget(%zu bytes) failed: %s", size, strerror(e));
  }
  c->shm.shmaddr = shmat(c->shm.shmid, NULL, 0);
  if (c->shm.shmaddr == (char *)-1) {
    int e = errno;
    shmctl(c->shm.shmid, IPC_RMID, NULL);
    c->shm.shmaddr = NULL;
    capture_free(c);
    return wv_fail(err, errlen, WV_EIO, "shmat failed: %s", strerror(e));
  }
  c->image->data = c->shm.shmaddr;
  c->shm.readOnly = False;

  Status attached = XShmAttach(c->dpy, &c->shm);
  int x_error = wv_x11_sync_error(c->dpy);
  /* Marked for removal now: it goes away with the last detach, even if we crash. */
  shmctl(c->shm.shmid, IPC_RMID, NULL);
  if (!attached || x_error != 0) {
    capture_free(c);
    return wv_fail(err, errlen, WV_EDISPLAY,
                   "the X server could not attach the shared memory segment (error %d): "
                   "is it on another machine?",
                   x_error);
  }
  c->shm_attached = 1;
  *out = c;
  return WV_OK;
}

WV_EXPORT int32_t wavry_capture_info(void *h, int32_t *width, int32_t *height, int32_t *stride) {
  wv_capture *c = as_capture(h);
  if (c == NULL) return WV_ECLOSED;
  if (width != NULL) *width = c->width;
  if (height != NULL) *height = c->height;
  if (stride != NULL) *stride = c->stride;
  return WV_OK;
}

/* The shared segment holding the last grabbed image (stride × height bytes), or NULL for a bad handle. */
WV_EXPORT void *wavry_capture_data(void *h) {
  wv_capture *c = as_capture(h);
  return c == NULL ? NULL : c->shm.shmaddr;
}

WV_EXPORT int32_t wavry_capture_grab(void *h, uint8_t *dst, int32_t dstlen, int64_t *capture_us,
                                     int32_t *cursor_x, int32_t *cursor_y, char *err, int32_t errlen) {
  wv_capture *c = as_capture(h);
  if (c == NULL) return wv_fail(err, errlen, WV_ECLOSED, "not an open capture handle");
  int64_t need = (int64_t)c->stride * c->height;
  if (dst != NULL && dstlen != need) {
    return wv_fail(err, errlen, WV_EINVAL, "buffer is %d bytes, the image needs %lld (%dx%d, stride %d)",
                   dstlen, (long long)need, c->width, c->height, c->stride);
  }
  if (dst == NULL && dstlen != 0) {
    return wv_fail(err, errlen, WV_EINVAL, "buffer is NULL but its length is %d", dstlen);
  }
  if (c->dead) return wv_fail(err, errlen, WV_EDISPLAY, "the connection to the X server was lost");
  int64_t t = wv_monotonic_us();
  /* A failed request is reported by the return value; x11.c keeps Xlib from exiting. */
  Status ok = XShmGetImage(c->dpy, c->root, c->image, c->x, c->y, AllPlanes);
  if (c->dead) return wv_fail(err, errlen, WV_EDISPLAY, "the connection to the X server was lost");
  if (!ok) return wv_fail(err, errlen, WV_EIO, "XShmGetImage failed");
  int32_t cx = -1, cy = -1;
  Window root_ret, child_ret;
  int rx, ry, wx, wy;
  unsigned int mask;
  if (XQueryPointer(c->dpy, c->root, &root_ret, &child_ret, &rx, &ry, &wx, &wy, &mask)) {
    rx -= c->x;
    ry -= c->y;
    if (rx >= 0 && ry >= 0 && rx < c->width && ry < c->height) {
      cx = rx;
      cy = ry;
    }
  }
  if (dst != NULL) memcpy(dst, c->shm.shmaddr, (size_t)need);
  if (capture_us != NULL) *capture_us = t;
  if (cursor_x != NULL) *cursor_x = cx;
  if (cursor_y != NULL) *cursor_y = cy;
  return WV_OK;
}

WV_EXPORT void wavry_capture_close(void *h) {
  wv_capture *c = as_capture(h);
  if (c == NULL) return;
  capture_free(c);
}

/* The display's refresh rate in millihertz from XRandR, or 0 when the server does not say (Xvfb). */
WV_EXPORT int32_t wavry_capture_refresh_mhz(void *h, int32_t *mhz) {
  wv_capture *c = as_capture(h);
  if (c == NULL || mhz == NULL) return WV_ECLOSED;
  *mhz = 0;
  if (c->dead) return WV_EDISPLAY;
  int event_base, error_base;
  if (!XRRQueryExtension(c->dpy, &event_base, &error_base)) return WV_OK;
  XRRScreenConfiguration *config = XRRGetScreenInfo(c->dpy, c->root);
  if (config == NULL) return WV_OK;
  short rate = XRRConfigCurrentRate(config);
  XRRFreeScreenConfigInfo(config);
  if (rate > 0) *mhz = (int32_t)rate * 1000;
  return WV_OK;
}
