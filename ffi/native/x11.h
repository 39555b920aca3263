/*
 * One X11 error policy for every module that talks to an X server.
 *
 * Xlib's error handlers are process-wide and its defaults exit the process:
 * a protocol error (a bad request) or a lost connection (the X server died)
 * would take the whole host down. Every module opens its displays through
 * wv_x11_open, which installs, once, handlers that record protocol errors per
 * display and turn a lost connection into a flag the module checks.
 */
#ifndef WAVRY_X11_H
#define WAVRY_X11_H

#include <X11/Xlib.h>

/*
 * Opens `name` (NULL = $DISPLAY). If the connection is later lost, *dead is
 * set to 1 and Xlib calls on it fail instead of exiting the process.
 */
Display *wv_x11_open(const char *name, volatile int *dead);

/*
 * Closes a display opened with wv_x11_open. On a dead connection it only
 * closes the socket: XCloseDisplay could block for ever on a lock that the
 * thread which met the error still holds.
 */
void wv_x11_close(Display *dpy);

/* XSync, then returns and clears the last protocol error code recorded for dpy (0 = none). */
int wv_x11_sync_error(Display *dpy);

#endif
