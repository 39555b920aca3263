/*
 * One UDP socket shared by several Deno workers of this process.
 *
 * RIFT sends from one worker and receives in another, on ONE socket (one
 * port, so NAT bindings and punched holes stay valid for both directions).
 * Deno's own datagram socket cannot be shared across workers, so the socket
 * is opened here and named by its file descriptor: workers are threads of one
 * process, and the shim's static data is shared by all of them.
 *
 * A process-wide table indexed by fd keeps, per socket, a wake-up eventfd,
 * a `closed` flag and a count of attachments. The opener's close marks the
 * socket closed and makes the eventfd readable for good, so a reader blocked
 * in poll() in any worker returns at once; the descriptors themselves are
 * closed only when the last attachment is released, so an fd number is never
 * reused under a worker that still holds it.
 *
 * Addresses cross the ABI as 20-byte records: family (4 or 6) at byte 0,
 * port (host order, little-endian u16) at bytes 2-3, address at bytes 4-19
 * (IPv4 in the first 4). IPv4-mapped IPv6 sources of a dual-stack socket are
 * reported as IPv4, and IPv4 destinations are mapped for such a socket.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define UDP_MAX_FD 65536
#define UDP_MAX_BATCH 1024
#define ADDR_RECORD 20

typedef struct UdpEntry {
  _Atomic int32_t refs;   /* 0 = no socket at this fd; opener + attachments */
  _Atomic int32_t closed; /* set by the opener's close; every call then fails with WV_ECLOSED */
  int32_t wakefd;
  int32_t family; /* AF_INET or AF_INET6 of the socket itself */
} UdpEntry;

static UdpEntry table[UDP_MAX_FD];
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;

/* Validates fd as an open, not closed socket of this module. */
static UdpEntry *entry_for(int32_t fd, char *err, int32_t errlen, int32_t *status) {
  if (fd < 0 || fd >= UDP_MAX_FD || atomic_load(&table[fd].refs) <= 0) {
    *status = wv_fail(err, errlen, WV_ECLOSED, "fd %d is not an open Wavry UDP socket", fd);
    return NULL;
  }
  if (atomic_load(&table[fd].closed)) {
    *status = wv_fail(err, errlen, WV_ECLOSED, "the UDP socket was closed");
    return NULL;
  }
  *status = WV_OK;
  return &table[fd];
}

/* Writes a sockaddr as a 20-byte record; v4-mapped v6 becomes v4. */
static void record_from_sockaddr(const struct sockaddr_storage *ss, uint8_t *rec) {
  memset(rec, 0, ADDR_RECORD);
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    uint16_t port = ntohs(a->sin_port);
    rec[0] = 4;
    rec[2] = (uint8_t)(port & 0xff);
    rec[3] = (uint8_t)(port >> 8);
    memcpy(rec + 4, &a->sin_addr, 4);
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    uint16_t port = ntohs(a->sin6_port);
    rec[2] = (uint8_t)(port & 0xff);
    rec[3] = (uint8_t)(port >> 8);
    if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
      rec[0] = 4;
      memcpy(rec + 4, a->sin6_addr.s6_addr + 12, 4);
    } else {
      rec[0] = 6;
      memcpy(rec + 4, &a->sin6_addr, 16);
    }
  }
}

/* Builds the sockaddr to send to from a record, for a socket of `family`. */
static int32_t sockaddr_from_record(const uint8_t *rec, int family, struct sockaddr_storage *ss,
                                    socklen_t *len, char *err, int32_t errlen) {
  uint16_t port = (uint16_t)(rec[2] | (rec[3] << 8));
  memset(ss, 0, sizeof *ss);
  if (rec[0] == 4 && family == AF_INET) {
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    memcpy(&a->sin_addr, rec + 4, 4);
    *len = sizeof *a;
  } else if (family == AF_INET6 && (rec[0] == 4 || rec[0] == 6)) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    if (rec[0] == 4) {
      a->sin6_addr.s6_addr[10] = 0xff;
      a->sin6_addr.s6_addr[11] = 0xff;
      memcpy(a->sin6_addr.s6_addr + 12, rec + 4, 4);
    } else {
      memcpy(&a->sin6_addr, rec + 4, 16);
    }
    *len = sizeof *a;
  } else if (rec[0] == 6 && family == AF_INET) {
    return wv_fail(err, errlen, WV_EINVAL, "an IPv4 socket cannot send to an IPv6 address");
  } else {
    return wv_fail(err, errlen, WV_EINVAL, "address record has family %d (want 4 or 6)", rec[0]);
  }
  return WV_OK;
}

/*
 * Parses a numeric IPv4/IPv6 address (or "localhost") and a port into a
 * 20-byte record. No DNS: sends must never block on a resolver.
 */
WV_EXPORT int32_t wavry_udp_parse_address(const char *host, int32_t port, uint8_t *rec,
                                          char *err, int32_t errlen) {
  if (host == NULL || rec == NULL) return wv_fail(err, errlen, WV_EINVAL, "null argument");
  if (port < 0 || port > 65535) return wv_fail(err, errlen, WV_EINVAL, "port %d out of range", port);
  memset(rec, 0, ADDR_RECORD);
  rec[2] = (uint8_t)(port & 0xff);
  rec[3] = (uint8_t)(port >> 8);
  if (strcmp(host, "localhost") == 0) host = "127.0.0.1";
  const char *h = host;
  char buf[INET6_ADDRSTRLEN + 2];
  size_t n = strlen(host);
  if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof buf) {
    memcpy(buf, host + 1, n - 2);
    buf[n - 2] = '\0';
    h = buf;
  }
  struct in6_addr a6;
  if (inet_pton(AF_INET, h, rec + 4) == 1) {
    rec[0] = 4;
  } else if (inet_pton(AF_INET6, h, &a6) == 1) {
    if (IN6_IS_ADDR_V4MAPPED(&a6)) {
      rec[0] = 4;
      memcpy(rec + 4, a6.s6_addr + 12, 4);
    } else {
      rec[0] = 6;
      memcpy(rec + 4, &a6, 16);
    }
  } else {
    return wv_fail(err, errlen, WV_EINVAL, "\"%s\" is not a numeric IPv4 or IPv6 address", host);
  }
  return WV_OK;
}

/* Asks for `want` bytes of buffer; root may exceed rmem_max/wmem_max with the FORCE variant. */
static int32_t set_buffer(int fd, int opt, int force_opt, int32_t want) {
  if (want > 0 && setsockopt(fd, SOL_SOCKET, force_opt, &want, sizeof want) != 0) {
    setsockopt(fd, SOL_SOCKET, opt, &want, sizeof want);
  }
  int got = 0;
  socklen_t len = sizeof got;
  getsockopt(fd, SOL_SOCKET, opt, &got, &len);
  return got;
}

/*
 * Opens a nonblocking UDP socket bound to host:port (port 0 = any), with
 * receive timestamps on. `out` gets 5 int32: fd, bound port, family (4/6),
 * receive buffer and send buffer as the kernel reports them (Linux reports
 * twice the requested value, the other half being bookkeeping). An IPv6
 * wildcard ("::") also receives IPv4 (dual stack).
 */
WV_EXPORT int32_t wavry_udp_open(const char *host, int32_t port, int32_t rcvbuf, int32_t sndbuf,
                                 int32_t *out, char *err, int32_t errlen) {
  if (host == NULL || out == NULL) return wv_fail(err, errlen, WV_EINVAL, "null argument");
  uint8_t rec[ADDR_RECORD];
  int32_t st = wavry_udp_parse_address(host, port, rec, err, errlen);
  if (st != WV_OK) return st;
  int family = rec[0] == 4 ? AF_INET : AF_INET6;
  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return wv_fail(err, errlen, WV_EIO, "socket: %s", strerror(errno));
  if (fd >= UDP_MAX_FD) {
    close(fd);
    return wv_fail(err, errlen, WV_EIO, "fd %d beyond the shim's table of %d", fd, UDP_MAX_FD);
  }
  if (family == AF_INET6) {
    int off = 0;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
  }
  int on = 1;
  setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
  int32_t gotr = set_buffer(fd, SO_RCVBUF, SO_RCVBUFFORCE, rcvbuf);
  int32_t gots = set_buffer(fd, SO_SNDBUF, SO_SNDBUFFORCE, sndbuf);
  struct sockaddr_storage ss;
  socklen_t len;
  sockaddr_from_record(rec, family, &ss, &len, err, errlen);
  if (bind(fd, (struct sockaddr *)&ss, len) != 0) {
    int e = errno;
    close(fd);
    return wv_fail(err, errlen, WV_EIO, "bind %s:%d: %s", host, port, strerror(e));
  }
  len = sizeof ss;
  getsockname(fd, (struct sockaddr *)&ss, &len);
  int bound = family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                                : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  int wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wakefd < 0) {
    int e = errno;
    close(fd);
    return wv_fail(err, errlen, WV_EIO, "eventfd: %s", strerror(e));
  }
  pthread_mutex_lock(&table_lock);
  table[fd].wakefd = wakefd;
  table[fd].family = family;
  atomic_store(&table[fd].closed, 0);
  atomic_store(&table[fd].refs, 1);
  pthread_mutex_unlock(&table_lock);
  out[0] = fd;
  out[1] = bound;
  out[2] = family == AF_INET ? 4 : 6;
  out[3] = gotr;
  out[4] = gots;
  return WV_OK;
}

/* Adds an attachment (another worker's use of the socket). Fails once the socket is closed. */
WV_EXPORT int32_t wavry_udp_attach(int32_t fd, int32_t *out, char *err, int32_t errlen) {
  int32_t st = WV_OK;
  pthread_mutex_lock(&table_lock);
  UdpEntry *e = entry_for(fd, err, errlen, &st);
  if (e != NULL) atomic_fetch_add(&e->refs, 1);
  pthread_mutex_unlock(&table_lock);
  if (e == NULL) return st;
  if (out != NULL) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &len);
    uint8_t rec[ADDR_RECORD];
    record_from_sockaddr(&ss, rec);
    out[0] = fd;
    out[1] = rec[2] | (rec[3] << 8);
    out[2] = e->family == AF_INET ? 4 : 6;
    int v = 0;
    len = sizeof v;
    getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, &len);
    out[3] = v;
    len = sizeof v;
    getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, &len);
    out[4] = v;
  }
  return WV_OK;
}

/* Makes a blocked (or the next) wavry_udp_recv_batch return with status 0 and *woken = 1. */
WV_EXPORT int32_t wavry_udp_wake(int32_t fd, char *err, int32_t errlen) {
  int32_t st;
  UdpEntry *e = entry_for(fd, err, errlen, &st);
  if (e == NULL) return st;
  uint64_t one = 1;
  if (write(e->wakefd, &one, sizeof one) < 0 && errno != EAGAIN) {
    return wv_fail(err, errlen, WV_EIO, "eventfd write: %s", strerror(errno));
  }
  return WV_OK;
}

/*
 * The opener's close: marks the socket closed in every worker (each later
 * call fails with WV_ECLOSED) and makes the eventfd readable for good, so
 * readers blocked in any worker return at once. The descriptors stay open
 * until the last wavry_udp_release. Idempotent; ignores fds that are not ours.
 */
WV_EXPORT void wavry_udp_close(int32_t fd) {
  if (fd < 0 || fd >= UDP_MAX_FD) return;
  pthread_mutex_lock(&table_lock);
  UdpEntry *e = &table[fd];
  if (atomic_load(&e->refs) > 0 && !atomic_exchange(&e->closed, 1)) {
    uint64_t many = 1u << 30;
    ssize_t r = write(e->wakefd, &many, sizeof many);
    (void)r;
  }
  pthread_mutex_unlock(&table_lock);
}

/*
 * Drops one attachment (the opener's included); the last one closes the
 * socket and its eventfd. The caller must have no call on fd in flight.
 */
WV_EXPORT void wavry_udp_release(int32_t fd) {
  if (fd < 0 || fd >= UDP_MAX_FD) return;
  pthread_mutex_lock(&table_lock);
  UdpEntry *e = &table[fd];
  if (atomic_load(&e->refs) > 0 && atomic_fetch_sub(&e->refs, 1) == 1) {
    close(e->wakefd);
    close(fd);
    e->wakefd = -1;
  }
  pthread_mutex_unlock(&table_lock);
}

/* Sends one datagram. Returns 1 when sent, 0 when the kernel refused it (*errno_out says why). */
WV_EXPORT int32_t wavry_udp_send(int32_t fd, const uint8_t *data, int32_t len, const uint8_t *to,
                                 int32_t *errno_out, char *err, int32_t errlen) {
  int32_t st;
  UdpEntry *e = entry_for(fd, err, errlen, &st);
  if (e == NULL) return st;
  if (data == NULL || to == NULL || errno_out == NULL || len < 0) {
    return wv_fail(err, errlen, WV_EINVAL, "bad send arguments");
  }
  struct sockaddr_storage ss;
  socklen_t slen;
  st = sockaddr_from_record(to, e->family, &ss, &slen, err, errlen);
  if (st != WV_OK) return st;
  *errno_out = 0;
  if (sendto(fd, data, (size_t)len, 0, (struct sockaddr *)&ss, slen) < 0) {
    *errno_out = errno;
    return 0;
  }
  return 1;
}

/*
 * Sends `count` datagrams packed back to back in `data` (lengths in `lens`)
 * to one destination with sendmmsg. Returns how many the kernel took; when
 * fewer than count, *errno_out says why the next one was refused.
 */
WV_EXPORT int32_t wavry_udp_send_batch(int32_t fd, const uint8_t *data, const int32_t *lens,
                                       int32_t count, const uint8_t *to, int32_t *errno_out,
                                       char *err, int32_t errlen) {
  int32_t st;
  UdpEntry *e = entry_for(fd, err, errlen, &st);
  if (e == NULL) return st;
  if (data == NULL || lens == NULL || to == NULL || errno_out == NULL || count < 0 ||
      count > UDP_MAX_BATCH) {
    return wv_fail(err, errlen, WV_EINVAL, "bad send_batch arguments (count %d)", count);
  }
  struct sockaddr_storage ss;
  socklen_t slen;
  st = sockaddr_from_record(to, e->family, &ss, &slen, err, errlen);
  if (st != WV_OK) return st;
  struct mmsghdr msgs[64];
  struct iovec iov[64];
  int32_t sent = 0;
  size_t offset = 0;
  *errno_out = 0;
  while (sent < count) {
    int n = 0;
    size_t off = offset;
    for (; n < 64 && sent + n < count; n++) {
      if (lens[sent + n] < 0) return wv_fail(err, errlen, WV_EINVAL, "negative length");
      iov[n].iov_base = (void *)(data + off);
      iov[n].iov_len = (size_t)lens[sent + n];
      off += (size_t)lens[sent + n];
      memset(&msgs[n], 0, sizeof msgs[n]);
      msgs[n].msg_hdr.msg_name = &ss;
      msgs[n].msg_hdr.msg_namelen = slen;
      msgs[n].msg_hdr.msg_iov = &iov[n];
      msgs[n].msg_hdr.msg_iovlen = 1;
    }
    int r = sendmmsg(fd, msgs, (unsigned)n, 0);
    if (r < 0) {
      *errno_out = errno;
      break;
    }
    for (int i = 0; i < r; i++) offset += (size_t)lens[sent + i];
    sent += r;
    if (r < n) {
      /* The kernel stopped early: a plain send of the next one tells why. */
      if (sendto(fd, data + offset, (size_t)lens[sent], 0, (struct sockaddr *)&ss, slen) < 0) {
        *errno_out = errno;
        break;
      }
      offset += (size_t)lens[sent];
      sent++;
    }
  }
  return sent;
}

static int64_t clock_us(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
 * Waits up to timeout_ms (-1 = forever, 0 = poll) for datagrams or a wake-up,
 * then reads up to `max` datagrams into `slots` (max slots of slot_size
 * bytes). Per datagram: lens[i] = its full length (larger than slot_size when
 * truncated), addrs[20*i] = its source record, times[i] = receive time in
 * CLOCK_MONOTONIC microseconds (the kernel's SO_TIMESTAMPNS arrival time moved
 * onto the monotonic clock, else the time recvmmsg returned). Returns the
 * count (0 on timeout or wake-up; *woken says which) or WV_ECLOSED once the
 * opener closed the socket.
 */
WV_EXPORT int32_t wavry_udp_recv_batch(int32_t fd, uint8_t *slots, int32_t slot_size, int32_t max,
                                       int32_t *lens, uint8_t *addrs, double *times,
                                       int32_t timeout_ms, int32_t *woken, char *err,
                                       int32_t errlen) {
  int32_t st;
  UdpEntry *e = entry_for(fd, err, errlen, &st);
  if (e == NULL) return st;
  if (slots == NULL || lens == NULL || addrs == NULL || times == NULL || woken == NULL ||
      slot_size <= 0 || max <= 0 || max > UDP_MAX_BATCH) {
    return wv_fail(err, errlen, WV_EINVAL, "bad recv_batch arguments (max %d, slot %d)", max,
                   slot_size);
  }
  *woken = 0;
  struct pollfd pfd[2] = {{.fd = fd, .events = POLLIN}, {.fd = e->wakefd, .events = POLLIN}};
  for (;;) {
    int r = poll(pfd, 2, timeout_ms < 0 ? -1 : timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return wv_fail(err, errlen, WV_EIO, "poll: %s", strerror(errno));
    break;
  }
  if (atomic_load(&e->closed)) return wv_fail(err, errlen, WV_ECLOSED, "the UDP socket was closed");
  if (pfd[1].revents & POLLIN) {
    uint64_t v;
    ssize_t rr = read(e->wakefd, &v, sizeof v); /* consumes the wake-up */
    (void)rr;
    *woken = 1;
    return 0;
  }
  if (!(pfd[0].revents & POLLIN)) return 0;

  struct mmsghdr msgs[64];
  struct iovec iov[64];
  struct sockaddr_storage from[64];
  char control[64][CMSG_SPACE(sizeof(struct timespec))];
  int32_t got = 0;
  while (got < max) {
    int n = max - got < 64 ? max - got : 64;
    for (int i = 0; i < n; i++) {
      iov[i].iov_base = slots + (size_t)(got + i) * (size_t)slot_size;
      iov[i].iov_len = (size_t)slot_size;
      memset(&msgs[i], 0, sizeof msgs[i]);
      msgs[i].msg_hdr.msg_name = &from[i];
      msgs[i].msg_hdr.msg_namelen = sizeof from[i];
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_control = control[i];
      msgs[i].msg_hdr.msg_controllen = sizeof control[i];
    }
    /* MSG_TRUNC: msg_len is the datagram's real length, so truncation is visible. */
    int r = recvmmsg(fd, msgs, (unsigned)n, MSG_DONTWAIT | MSG_TRUNC, NULL);
    if (r < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
      if (got > 0) break;
      /* An ICMP error queued on the socket (e.g. port unreachable) is not a reason to stop. */
      if (errno == ECONNREFUSED || errno == EHOSTUNREACH || errno == ENETUNREACH) return 0;
      return wv_fail(err, errlen, WV_EIO, "recvmmsg: %s", strerror(errno));
    }
    int64_t mono = clock_us(CLOCK_MONOTONIC);
    int64_t real = clock_us(CLOCK_REALTIME);
    for (int i = 0; i < r; i++) {
      int32_t k = got + i;
      lens[k] = (int32_t)msgs[i].msg_len;
      record_from_sockaddr(&from[i], addrs + (size_t)k * ADDR_RECORD);
      int64_t t = mono;
      for (struct cmsghdr *c = CMSG_FIRSTHDR(&msgs[i].msg_hdr); c != NULL;
           c = CMSG_NXTHDR(&msgs[i].msg_hdr, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
          struct timespec ts;
          memcpy(&ts, CMSG_DATA(c), sizeof ts);
          int64_t stamped = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000 - (real - mono);
          /* A wall-clock step between arrival and now could push it past now: clamp. */
          if (stamped <= mono) t = stamped;
        }
      }
      times[k] = (double)t;
    }
    got += r;
    if (r < n) break;
  }
  return got;
}
