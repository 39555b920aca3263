/*
 * An IP-in-UDP tunnel endpoint: one TUN device and one UDP socket, joined by
 * a forwarding thread.
 *
 * The link emulator (tools/linkemu) only carries UDP. To let the kernel's TCP
 * cross the emulated bottleneck end to end, each IP packet the kernel routes
 * into a TUN device is sent as one UDP datagram to the emulator, and each
 * datagram coming back is written into the TUN device (tools/linkemu/tcp_tunnel.ts).
 * The loop runs in its own pthread (poll on the TUN fd, the UDP socket and a
 * stop eventfd), so no JS event loop sits on the packet path.
 *
 * The TUN device is created in the caller's network namespace; it may then be
 * moved into another one (`ip link set DEV netns NS`): the fd keeps working.
 *
 * A "hello" endpoint (the emulator's listen side) sends a 1-byte datagram every
 * 200 ms until it has received something, because the emulator forwards
 * replies only to a peer it has heard from. Datagrams shorter than an IPv4
 * header, or not IPv4/IPv6, are counted and dropped, never written.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"

#define WV_MAGIC_TUNNEL 0x5756543Au
#define TUN_MAX_PACKET 65536

/* Counter slots of wavry_tunnel_stats, in order. */
enum {
  TS_TUN_READ,      /* packets read from the TUN device */
  TS_TUN_BYTES,     /* their bytes */
  TS_UDP_SENT,      /* datagrams sent to the emulator */
  TS_SEND_ERRORS,   /* send() failures (datagram lost) */
  TS_UDP_RECEIVED,  /* datagrams received from the emulator (hello included) */
  TS_TUN_WRITTEN,   /* packets written into the TUN device */
  TS_TUN_WBYTES,    /* their bytes */
  TS_WRITE_ERRORS,  /* write() failures */
  TS_IGNORED,       /* received datagrams that were not IP packets (hellos) */
  TS_HELLOS,        /* hellos sent */
  TS_COUNT
};

typedef struct Tunnel {
  uint32_t magic;
  int tun_fd;
  int udp_fd;
  int stop_fd;
  int hello;
  int running;
  int realtime; /* 1 if the thread got SCHED_FIFO */
  pthread_t thread;
  _Atomic uint64_t counters[TS_COUNT];
  uint8_t buf[TUN_MAX_PACKET];
} Tunnel;

static Tunnel *tunnel_from(int64_t handle, char *err, int32_t errlen, int32_t *status) {
  Tunnel *t = (Tunnel *)(intptr_t)handle;
  if (t == NULL || t->magic != WV_MAGIC_TUNNEL) {
    *status = wv_fail(err, errlen, WV_ECLOSED, "not an open tunnel handle");
    return NULL;
  }
  return t;
}

/*
 * Creates TUN device `name` (IFF_TUN | IFF_NO_PI: plain IP packets, no
 * header) and returns its fd (>= 0) or a status. The device's actual name is
 * written to `out_name` (IFNAMSIZ bytes). Needs CAP_NET_ADMIN.
 */
WV_EXPORT int32_t wavry_tun_open(const char *name, char *out_name, char *err, int32_t errlen) {
  if (name == NULL || out_name == NULL || strlen(name) >= IFNAMSIZ) {
    return wv_fail(err, errlen, WV_EINVAL, "TUN name must be 1..%d bytes", IFNAMSIZ - 1);
  }
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    return wv_fail(err, errlen, e == ENOENT ? WV_ENODEV : WV_EIO, "open /dev/net/tun: %s",
                   strerror(e));
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int e = errno;
    close(fd);
    return wv_fail(err, errlen, WV_EIO, "TUNSETIFF %s: %s", name, strerror(e));
  }
  memcpy(out_name, ifr.ifr_name, IFNAMSIZ);
  out_name[IFNAMSIZ - 1] = '\0';
  return fd;
}

/*
 * Wraps TUN fd `tun_fd` with a UDP socket bound to 127.0.0.1 (any port; the
 * port goes to out[0]). The tunnel owns `tun_fd` from here on (also on
 * failure). Writes the handle to *handle_out. Start it with wavry_tunnel_start.
 */
WV_EXPORT int32_t wavry_tunnel_create(int32_t tun_fd, int32_t *out, int64_t *handle_out,
                                      char *err, int32_t errlen) {
  if (tun_fd < 0 || out == NULL || handle_out == NULL) {
    if (tun_fd >= 0) close(tun_fd);
    return wv_fail(err, errlen, WV_EINVAL, "bad tunnel arguments");
  }
  Tunnel *t = calloc(1, sizeof *t);
  if (t == NULL) {
    close(tun_fd);
    return wv_fail(err, errlen, WV_ENOMEM, "out of memory");
  }
  t->tun_fd = tun_fd;
  t->udp_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  t->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (t->udp_fd < 0 || t->stop_fd < 0) {
    int e = errno;
    if (t->udp_fd >= 0) close(t->udp_fd);
    if (t->stop_fd >= 0) close(t->stop_fd);
    close(tun_fd);
    free(t);
    return wv_fail(err, errlen, WV_EIO, "socket/eventfd: %s", strerror(e));
  }
  /* Deep buffers both ways (root may exceed rmem_max): a burst of TCP segments must
     not be lost here, outside the emulated link. */
  int size = 4 * 1024 * 1024;
  if (setsockopt(t->udp_fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0) {
    setsockopt(t->udp_fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  }
  if (setsockopt(t->udp_fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) < 0) {
    setsockopt(t->udp_fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  }
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  if (bind(t->udp_fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
      getsockname(t->udp_fd, (struct sockaddr *)&sa, &len) < 0) {
    int e = errno;
    close(t->udp_fd);
    close(t->stop_fd);
    close(tun_fd);
    free(t);
    return wv_fail(err, errlen, WV_EIO, "bind 127.0.0.1: %s", strerror(e));
  }
  out[0] = ntohs(sa.sin_port);
  t->magic = WV_MAGIC_TUNNEL;
  *handle_out = (int64_t)(intptr_t)t;
  return WV_OK;
}

static void *tunnel_loop(void *arg) {
  Tunnel *t = arg;
  struct pollfd fds[3] = {
      {.fd = t->stop_fd, .events = POLLIN},
      {.fd = t->tun_fd, .events = POLLIN},
      {.fd = t->udp_fd, .events = POLLIN},
  };
  const uint8_t hello = 0;
  for (;;) {
    int waiting = t->hello && atomic_load(&t->counters[TS_UDP_RECEIVED]) == 0;
    if (waiting) {
      if (send(t->udp_fd, &hello, 1, 0) == 1) atomic_fetch_add(&t->counters[TS_HELLOS], 1);
    }
    int n = poll(fds, 3, waiting ? 200 : -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[0].revents) break;
    if (fds[1].revents & POLLIN) {
      ssize_t r = read(t->tun_fd, t->buf, sizeof t->buf);
      if (r > 0) {
        atomic_fetch_add(&t->counters[TS_TUN_READ], 1);
        atomic_fetch_add(&t->counters[TS_TUN_BYTES], (uint64_t)r);
        if (send(t->udp_fd, t->buf, (size_t)r, 0) == r) {
          atomic_fetch_add(&t->counters[TS_UDP_SENT], 1);
        } else {
          atomic_fetch_add(&t->counters[TS_SEND_ERRORS], 1);
        }
      }
    } else if (fds[1].revents & (POLLERR | POLLHUP | POLLNVAL)) {
      break;
    }
    if (fds[2].revents & POLLIN) {
      ssize_t r = recv(t->udp_fd, t->buf, sizeof t->buf, MSG_DONTWAIT);
      if (r >= 0) {
        atomic_fetch_add(&t->counters[TS_UDP_RECEIVED], 1);
        uint8_t version = r > 0 ? t->buf[0] >> 4 : 0;
        if (r < 20 || (version != 4 && version != 6)) {
          atomic_fetch_add(&t->counters[TS_IGNORED], 1);
        } else if (write(t->tun_fd, t->buf, (size_t)r) == r) {
          atomic_fetch_add(&t->counters[TS_TUN_WRITTEN], 1);
          atomic_fetch_add(&t->counters[TS_TUN_WBYTES], (uint64_t)r);
        } else {
          atomic_fetch_add(&t->counters[TS_WRITE_ERRORS], 1);
        }
      }
    }
  }
  return NULL;
}

/*
 * Connects the UDP socket to 127.0.0.1:`port` (IPv4 `addr_be` in network
 * order) and starts the forwarding thread, under SCHED_FIFO `rt_priority` when
 * > 0 and allowed (returns 1 if it got it, 0 if not). `hello` != 0: send
 * hellos until the first datagram arrives.
 */
WV_EXPORT int32_t wavry_tunnel_start(int64_t handle, uint32_t addr_be, int32_t port,
                                     int32_t hello, int32_t rt_priority, char *err,
                                     int32_t errlen) {
  int32_t status = WV_OK;
  Tunnel *t = tunnel_from(handle, err, errlen, &status);
  if (t == NULL) return status;
  if (t->running) return wv_fail(err, errlen, WV_EINVAL, "tunnel already started");
  if (port <= 0 || port > 65535) return wv_fail(err, errlen, WV_EINVAL, "bad port %d", port);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = addr_be;
  sa.sin_port = htons((uint16_t)port);
  if (connect(t->udp_fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    return wv_fail(err, errlen, WV_EIO, "connect: %s", strerror(errno));
  }
  t->hello = hello != 0;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  t->realtime = 0;
  if (rt_priority > 0 && rt_priority < 100) {
    struct sched_param sp = {.sched_priority = rt_priority};
    pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED);
    pthread_attr_setschedpolicy(&attr, SCHED_FIFO);
    pthread_attr_setschedparam(&attr, &sp);
    if (pthread_create(&t->thread, &attr, tunnel_loop, t) == 0) {
      t->realtime = 1;
      t->running = 1;
    }
  }
  if (!t->running) {
    /* No real-time (not permitted, or not asked): an ordinary thread. */
    pthread_attr_destroy(&attr);
    pthread_attr_init(&attr);
    int e = pthread_create(&t->thread, &attr, tunnel_loop, t);
    if (e != 0) {
      pthread_attr_destroy(&attr);
      return wv_fail(err, errlen, WV_EIO, "pthread_create: %s", strerror(e));
    }
    t->running = 1;
  }
  pthread_attr_destroy(&attr);
  return t->realtime;
}

/* Copies the TS_COUNT counters into out (f64, exact below 2^53). */
WV_EXPORT int32_t wavry_tunnel_stats(int64_t handle, double *out, char *err, int32_t errlen) {
  int32_t status = WV_OK;
  Tunnel *t = tunnel_from(handle, err, errlen, &status);
  if (t == NULL) return status;
  for (int i = 0; i < TS_COUNT; i++) out[i] = (double)atomic_load(&t->counters[i]);
  return TS_COUNT;
}

/* Stops the thread, closes the TUN fd (deleting the device) and the socket, frees the handle. */
WV_EXPORT int32_t wavry_tunnel_close(int64_t handle, char *err, int32_t errlen) {
  int32_t status = WV_OK;
  Tunnel *t = tunnel_from(handle, err, errlen, &status);
  if (t == NULL) return status;
  if (t->running) {
    uint64_t one = 1;
    if (write(t->stop_fd, &one, sizeof one) < 0) { /* eventfd write cannot fail here */
    }
    pthread_join(t->thread, NULL);
  }
  close(t->tun_fd);
  close(t->udp_fd);
  close(t->stop_fd);
  t->magic = WV_MAGIC_DEAD;
  free(t);
  return WV_OK;
}
