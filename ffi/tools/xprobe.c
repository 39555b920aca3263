/*
 * wavry-xprobe: a small X client for tests, benchmarks and the demo.
 *
 * It maps a window over the screen (or a given size), takes the input focus,
 * and
 *  - with --scene, draws the demo's scene instead: a slowly shifting colour
 *    gradient with bouncing, softly coloured balls (same two cell rows);
 *  - with --pattern, draws a moving test scene at --fps: scrolling colour
 *    bars, a bouncing square, and two machine-readable rows of 16x16 cells
 *    (row 0: the frame counter, row 1: the CLOCK_MONOTONIC time in ms when the
 *    frame was drawn, 32 bits each, most significant bit first, white = 1);
 *  - prints every key, button and motion event it receives as one JSON line
 *    on stdout, with "t_us", the CLOCK_MONOTONIC time it arrived, so a test
 *    can see what input injection produced and when; key events also carry
 *    "server_ms", the X server's event time (Xorg and Xvfb take it from
 *    CLOCK_MONOTONIC(_COARSE) in ms, truncated to 32 bits).
 *
 * The first line on stdout is {"ready":true,...} once the window is mapped
 * and focused. It exits on SIGTERM or when stdin closes (with --stdin-exit).
 */
#include <X11/Xlib.h>
#include <X11/Xutil.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <math.h>

static volatile sig_atomic_t stop = 0;
static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

static int64_t monotonic_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

#define CELL 16
#define BITS 32

static unsigned long rgb(Display *d, int screen, int r, int g, int b) {
  XColor c;
  c.red = (unsigned short)(r * 257);
  c.green = (unsigned short)(g * 257);
  c.blue = (unsigned short)(b * 257);
  c.flags = DoRed | DoGreen | DoBlue;
  if (!XAllocColor(d, DefaultColormap(d, screen), &c)) return BlackPixel(d, screen);
  return c.pixel;
}

static void draw_bits(Display *d, Window w, GC white, GC black, int row, uint32_t value) {
  for (int i = 0; i < BITS; i++) {
    int bit = (value >> (BITS - 1 - i)) & 1;
    XFillRectangle(d, w, bit ? white : black, i * CELL, row * CELL, CELL, CELL);
  }
}

/* HSV (h in degrees, s and v in 0..1) to a 24-bit TrueColor pixel. */
static unsigned long hsv_pixel(double h, double s, double v) {
  h = fmod(h, 360.0);
  if (h < 0) h += 360.0;
  double c = v * s, x = c * (1 - fabs(fmod(h / 60.0, 2) - 1)), m = v - c;
  double r = 0, g = 0, b = 0;
  if (h < 60) r = c, g = x;
  else if (h < 120) r = x, g = c;
  else if (h < 180) g = c, b = x;
  else if (h < 240) g = x, b = c;
  else if (h < 300) r = x, b = c;
  else r = c, b = x;
  return ((unsigned long)((r + m) * 255) << 16) | ((unsigned long)((g + m) * 255) << 8) |
         (unsigned long)((b + m) * 255);
}

/*
 * The demo's scene: a vertical colour gradient whose hues drift, and eight
 * balls bouncing at their own speeds with a soft halo. Pixel values are
 * computed directly (TrueColor), so no colour allocation round trips.
 */
static void draw_scene(Display *d, Window w, GC gc, int width, int height, uint32_t t) {
  const int top = 2 * CELL, bands = 48;
  int band_h = (height - top + bands - 1) / bands;
  for (int i = 0; i < bands; i++) {
    XSetForeground(d, gc, hsv_pixel(200 + 60 * sin(t * 0.004) + i * 1.6, 0.55, 0.22 + 0.5 * i / bands));
    XFillRectangle(d, w, gc, 0, top + i * band_h, (unsigned)width, (unsigned)band_h);
  }
  for (int k = 0; k < 8; k++) {
    int r = height / 18 + k * height / 90;
    double speed = 1.0 + 0.37 * k;
    int span_x = width - 2 * r, span_y = height - top - 2 * r;
    int px = (int)fmod(t * 3.1 * speed + k * 211, 2.0 * span_x);
    int py = (int)fmod(t * 2.3 * speed + k * 137, 2.0 * span_y);
    if (px > span_x) px = 2 * span_x - px;
    if (py > span_y) py = 2 * span_y - py;
    double hue = k * 45 + t * 0.8;
    XSetForeground(d, gc, hsv_pixel(hue, 0.45, 0.55));
    XFillArc(d, w, gc, px - r / 3, top + py - r / 3, (unsigned)(2 * r + 2 * r / 3),
             (unsigned)(2 * r + 2 * r / 3), 0, 360 * 64);
    XSetForeground(d, gc, hsv_pixel(hue, 0.8, 0.98));
    XFillArc(d, w, gc, px, top + py, (unsigned)(2 * r), (unsigned)(2 * r), 0, 360 * 64);
  }
}

int main(int argc, char **argv) {
  int pattern = 0, scene = 0, fps = 60, width = 0, height = 0, stdin_exit = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--pattern") == 0) pattern = 1;
    else if (strcmp(argv[i], "--scene") == 0) pattern = scene = 1;
    else if (strcmp(argv[i], "--stdin-exit") == 0) stdin_exit = 1;
    else if (strcmp(argv[i], "--fps") == 0 && i + 1 < argc) fps = atoi(argv[++i]);
    else if (strcmp(argv[i], "--size") == 0 && i + 1 < argc) {
      if (sscanf(argv[++i], "%dx%d", &width, &height) != 2) width = height = 0;
    } else {
      fprintf(stderr, "usage: wavry-xprobe [--pattern | --scene] [--fps N] [--size WxH] [--stdin-exit]\n");
      return 2;
    }
  }
  if (fps < 1 || fps > 1000) fps = 60;

  Display *d = XOpenDisplay(NULL);
  if (d == NULL) {
    fprintf(stderr, "wavry-xprobe: cannot open display '%s'\n", getenv("DISPLAY") ? getenv("DISPLAY") : "");
    return 1;
  }
  int screen = DefaultScreen(d);
  if (width <= 0) width = DisplayWidth(d, screen);
  if (height <= 0) height = DisplayHeight(d, screen);

  XSetWindowAttributes attrs;
  attrs.override_redirect = True; /* no window manager decides where it goes */
  attrs.background_pixel = BlackPixel(d, screen);
  attrs.event_mask = KeyPressMask | KeyReleaseMask | ButtonPressMask | ButtonReleaseMask |
                     PointerMotionMask | ExposureMask | StructureNotifyMask;
  Window w = XCreateWindow(d, RootWindow(d, screen), 0, 0, (unsigned)width, (unsigned)height, 0,
                           CopyFromParent, InputOutput, CopyFromParent,
                           CWOverrideRedirect | CWBackPixel | CWEventMask, &attrs);
  XStoreName(d, w, "wavry-xprobe");
  XMapRaised(d, w);
  for (;;) {
    XEvent e;
    XNextEvent(d, &e);
    if (e.type == MapNotify) break;
  }
  XSetInputFocus(d, w, RevertToParent, CurrentTime);
  XSync(d, False);

  GC white = XCreateGC(d, w, 0, NULL);
  GC black = XCreateGC(d, w, 0, NULL);
  XSetForeground(d, white, WhitePixel(d, screen));
  XSetForeground(d, black, BlackPixel(d, screen));
  static const int bar_colors[8][3] = {{235, 235, 235}, {235, 235, 16}, {16, 235, 235}, {16, 235, 16},
                                       {235, 16, 235}, {235, 16, 16},  {16, 16, 235},  {40, 40, 40}};
  GC bars[8];
  for (int i = 0; i < 8; i++) {
    bars[i] = XCreateGC(d, w, 0, NULL);
    XSetForeground(d, bars[i], rgb(d, screen, bar_colors[i][0], bar_colors[i][1], bar_colors[i][2]));
  }
  GC square = XCreateGC(d, w, 0, NULL);
  GC paint = XCreateGC(d, w, 0, NULL); /* the demo scene sets its colour per shape */
  XSetForeground(d, square, rgb(d, screen, 255, 128, 0));

  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  printf("{\"ready\":true,\"window\":%lu,\"width\":%d,\"height\":%d}\n", (unsigned long)w, width, height);
  fflush(stdout);

  int xfd = ConnectionNumber(d);
  int64_t frame_us = 1000000 / fps;
  int64_t next_frame = monotonic_us();
  uint32_t counter = 0;
  while (!stop) {
    while (XPending(d) > 0) {
      XEvent e;
      XNextEvent(d, &e);
      long long seen_us = (long long)monotonic_us(); /* when the event reached this X client */
      switch (e.type) {
        case KeyPress:
        case KeyRelease: {
          KeySym sym = XLookupKeysym(&e.xkey, 0);
          const char *name = XKeysymToString(sym);
          printf("{\"type\":\"key\",\"press\":%s,\"keycode\":%u,\"keysym\":%lu,\"name\":\"%s\",\"state\":%u,"
                 "\"t_us\":%lld,\"server_ms\":%lu}\n",
                 e.type == KeyPress ? "true" : "false", e.xkey.keycode, (unsigned long)sym,
                 name ? name : "", e.xkey.state, seen_us, (unsigned long)e.xkey.time);
          break;
        }
        case ButtonPress:
        case ButtonRelease:
          printf("{\"type\":\"button\",\"press\":%s,\"button\":%u,\"x\":%d,\"y\":%d,\"t_us\":%lld}\n",
                 e.type == ButtonPress ? "true" : "false", e.xbutton.button, e.xbutton.x, e.xbutton.y,
                 seen_us);
          break;
        case MotionNotify:
          printf("{\"type\":\"motion\",\"x\":%d,\"y\":%d,\"t_us\":%lld}\n", e.xmotion.x, e.xmotion.y,
                 seen_us);
          break;
        default:
          break;
      }
      fflush(stdout);
    }
    int64_t now = monotonic_us();
    if (scene && now >= next_frame) {
      draw_scene(d, w, paint, width, height, counter);
      XFillRectangle(d, w, black, BITS * CELL, 0, (unsigned)(width - BITS * CELL), 2 * CELL);
      draw_bits(d, w, white, black, 0, counter);
      draw_bits(d, w, white, black, 1, (uint32_t)(monotonic_us() / 1000));
      XFlush(d);
      counter++;
      next_frame += frame_us;
      if (now - next_frame > 1000000) next_frame = now;
    } else if (pattern && now >= next_frame) {
      /* Every edge of the scene falls on an even pixel, so 4:2:0 chroma subsampling of the
       * test scene is lossless and PSNR measures the codec, not the colour format. */
      int bar_w = (width / 8 + 2) & ~1;
      int offset = (int)((counter * 4) % (unsigned)bar_w);
      for (int i = -1; i < 8; i++) {
        XFillRectangle(d, w, bars[(i + 8) % 8], i * bar_w + offset, 2 * CELL, (unsigned)bar_w,
                       (unsigned)(height - 2 * CELL));
      }
      int size = (height / 6) & ~1;
      int span_x = (width - size) & ~1, span_y = (height - 2 * CELL - size) & ~1;
      int px = (int)((counter * 8) % (unsigned)(2 * span_x));
      int py = (int)((counter * 6) % (unsigned)(2 * span_y));
      if (px > span_x) px = 2 * span_x - px;
      if (py > span_y) py = 2 * span_y - py;
      XFillRectangle(d, w, square, px, 2 * CELL + py, (unsigned)size, (unsigned)size);
      XFillRectangle(d, w, black, BITS * CELL, 0, (unsigned)(width - BITS * CELL), 2 * CELL);
      draw_bits(d, w, white, black, 0, counter);
      draw_bits(d, w, white, black, 1, (uint32_t)(monotonic_us() / 1000));
      XFlush(d);
      counter++;
      next_frame += frame_us;
      if (now - next_frame > 1000000) next_frame = now; /* fell far behind: do not burst */
    }
    int timeout_ms = pattern ? (int)((next_frame - monotonic_us()) / 1000) : 100;
    if (timeout_ms < 0) timeout_ms = 0;
    struct pollfd fds[2] = {{.fd = xfd, .events = POLLIN}, {.fd = 0, .events = POLLIN}};
    int n = poll(fds, stdin_exit ? 2 : 1, timeout_ms);
    if (n > 0 && stdin_exit && (fds[1].revents & (POLLIN | POLLHUP))) {
      char buf[64];
      if (read(0, buf, sizeof buf) <= 0) break;
    }
  }
  XCloseDisplay(d);
  return 0;
}
