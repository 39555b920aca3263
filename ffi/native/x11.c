#include "x11.h"

#include <pthread.h>
#include <stddef.h>
#include <unistd.h>

#define WV_X11_MAX_DISPLAYS 64

typedef struct {
  Display *dpy;
  volatile int *dead;
  int last_error;
} wv_x11_entry;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static wv_x11_entry entries[WV_X11_MAX_DISPLAYS];
static XIOErrorHandler previous_io_handler = NULL;

static wv_x11_entry *find(Display *dpy) {
  for (int i = 0; i < WV_X11_MAX_DISPLAYS; i++) {
    if (entries[i].dpy == dpy) return &entries[i];
  }
  return NULL;
}

/* Protocol errors: remembered for the display, never fatal. */
static int on_error(Display *dpy, XErrorEvent *event) {
  pthread_mutex_lock(&lock);
  wv_x11_entry *e = find(dpy);
  if (e != NULL) e->last_error = event->error_code;
  pthread_mutex_unlock(&lock);
  return 0;
}

/* Lost connection: for our displays, return so that the per-display exit handler runs. */
static int on_io_error(Display *dpy) {
  pthread_mutex_lock(&lock);
  int ours = find(dpy) != NULL;
  XIOErrorHandler previous = previous_io_handler;
  pthread_mutex_unlock(&lock);
  if (ours || previous == NULL) return 0;
  return previous(dpy);
}

/* Runs instead of exit(): marks the display dead; Xlib fails later calls on it. */
static void on_io_exit(Display *dpy, void *data) {
  (void)dpy;
  *(volatile int *)data = 1;
}

static void install(void) {
  XSetErrorHandler(on_error);
  XIOErrorHandler previous = XSetIOErrorHandler(on_io_error);
  pthread_mutex_lock(&lock);
  previous_io_handler = previous;
  pthread_mutex_unlock(&lock);
}

Display *wv_x11_open(const char *name, volatile int *dead) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, install);
  *dead = 0;
  Display *dpy = XOpenDisplay(name);
  if (dpy == NULL) return NULL;
  pthread_mutex_lock(&lock);
  wv_x11_entry *e = find(NULL);
  if (e != NULL) {
    e->dpy = dpy;
    e->dead = dead;
    e->last_error = 0;
  }
  pthread_mutex_unlock(&lock);
  if (e == NULL) { /* more displays than we track: refuse rather than risk an exit */
    XCloseDisplay(dpy);
    return NULL;
  }
  XSetIOErrorExitHandler(dpy, on_io_exit, (void *)dead);
  return dpy;
}

void wv_x11_close(Display *dpy) {
  if (dpy == NULL) return;
  /* The entry stays while Xlib closes (errors and a dead connection are still handled), and is
   * then cleared by slot: a new display at the same address takes another slot meanwhile. */
  pthread_mutex_lock(&lock);
  wv_x11_entry *e = find(dpy);
  int dead = e != NULL && e->dead != NULL && *e->dead;
  pthread_mutex_unlock(&lock);
  if (dead) {
    /* After a lost connection Xlib may still hold the display lock on the thread that hit
     * the error (Deno runs nonblocking calls on pool threads), and XCloseDisplay would wait
     * for it for ever. Close the socket and leave Xlib's small Display record behind. */
    close(ConnectionNumber(dpy));
  } else {
    XCloseDisplay(dpy);
  }
  if (e == NULL) return;
  pthread_mutex_lock(&lock);
  *e = (wv_x11_entry){NULL, NULL, 0};
  pthread_mutex_unlock(&lock);
}

int wv_x11_sync_error(Display *dpy) {
  XSync(dpy, False);
  pthread_mutex_lock(&lock);
  wv_x11_entry *e = find(dpy);
  int code = e != NULL ? e->last_error : 0;
  if (e != NULL) e->last_error = 0;
  pthread_mutex_unlock(&lock);
  return code;
}
