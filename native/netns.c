/*
 * Sockets inside other network namespaces, and the ZDS transport (SOCK_SEQPACKET + SCM_RIGHTS),
 * for the in-pod capture model: one node proxy process serves every pod on the node by
 * opening each pod's sockets inside that pod's network namespace.
 *
 *   netnsTcpListener(nsFd, host, port, mark, reusePort)    -> fd   listening TCP socket in nsFd
 *   netnsTcpSocket(nsFd, family, mark, bindIp, transparent) -> fd  unconnected TCP socket, SO_MARK set
 *   netnsUdpSocket(nsFd, host, port, mark, reusePort)      -> fd   bound UDP socket
 *   netnsSysctl(nsFd, "net/...", value)                          write a per-namespace sysctl
 *   seqpacketConnect(path) / seqpacketListen(path, backlog) / seqpacketAccept(fd) -> fd (accept: -1 = none)
 *   seqpacketSend(fd, data, fds[])                         -> bytes
 *   seqpacketRecv(fd, maxBytes, maxFds) -> null (nothing to read) | { data, fds, truncated }
 *   pollStart(fd, callback(error, readable, disconnected)) -> handle;   pollStop(handle)
 *
 * WHY a short-lived thread per socket: setns(CLONE_NEWNET) changes the namespace of the
 * CALLING thread, and a socket stays in the namespace it was created in for its whole life.
 * Entering the pod's namespace on Node's main thread would move every socket libuv creates
 * meanwhile (and any the event loop opens on that thread later, if restoring failed). So a
 * fresh pthread enters the namespace, creates and binds the socket, and exits; the main
 * thread waits for it (tens of microseconds) and gets the descriptor, which Node adopts
 * (`server.listen({fd})`, `new net.Socket({fd}).connect(...)`, `dgram bind({fd})`). Nothing
 * else in the process ever changes namespace. The thread is never reused, so no thread can
 * be left in a pod's namespace.
 *
 * WHY uv_poll for ZDS: Node cannot wrap a SOCK_SEQPACKET socket (libuv guesses it as an
 * unknown handle type) and its stream API would lose message boundaries and ancillary data.
 * A uv_poll_t on the node's own event loop reports readability; the JS side then calls
 * seqpacketRecv (non-blocking) until it returns null. No extra thread, no blocking call on
 * the loop, and the handle is closed with the connection.
 *
 * Every descriptor is created close-on-exec; recvmsg uses MSG_CMSG_CLOEXEC; a truncated
 * message (MSG_TRUNC or MSG_CTRUNC) has every received descriptor closed here before
 * `truncated: true` is returned, so a bad sender cannot leak descriptors into us.
 */
#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#define _GNU_SOURCE
#include <node_api.h>
#include "napi-errors.h"
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_RECV_FDS 16


static int get_i32(napi_env env, napi_value v, int32_t *out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) return 0;
  return napi_get_value_int32(env, v, out) == napi_ok;
}

static int get_u32(napi_env env, napi_value v, uint32_t *out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) return 0;
  return napi_get_value_uint32(env, v, out) == napi_ok;
}

static int get_bool(napi_env env, napi_value v, int *out) {
  napi_valuetype t;
  bool b;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_boolean) return 0;
  napi_get_value_bool(env, v, &b);
  *out = b;
  return 1;
}

/* Copies a JS string into buf (NUL-terminated); 0 when not a string or too long. */
static int get_str(napi_env env, napi_value v, char *buf, size_t len) {
  napi_valuetype t;
  size_t n = 0;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_string) return 0;
  if (napi_get_value_string_utf8(env, v, buf, len, &n) != napi_ok) return 0;
  return n < len - 1;
}

static napi_value fd_value(napi_env env, int fd) {
  napi_value v;
  napi_create_int32(env, fd, &v);
  return v;
}

/* ---- sockets created inside a network namespace -------------------------------------- */

enum sock_kind { KIND_TCP_LISTENER, KIND_TCP_DIAL, KIND_UDP, KIND_SYSCTL };

struct ns_job {
  int ns_fd;
  enum sock_kind kind;
  int family; /* AF_INET / AF_INET6 */
  struct sockaddr_storage addr;
  socklen_t addr_len;
  int has_addr;
  uint32_t mark;
  int reuse_port;
  int transparent; /* KIND_TCP_DIAL: IP_TRANSPARENT + IP_FREEBIND before the bind (original source) */
  int backlog;
  char sysctl_path[128]; /* KIND_SYSCTL: /proc/sys/... resolved in the namespace of the thread */
  char sysctl_value[32];
  /* results */
  int fd;
  int err;
  const char *syscall;
};

static int job_fail(struct ns_job *j, const char *syscall) {
  j->err = errno;
  j->syscall = syscall;
  if (j->fd >= 0) close(j->fd);
  j->fd = -1;
  return -1;
}

static void *ns_thread(void *arg) {
  struct ns_job *j = arg;
  j->fd = -1;
  if (setns(j->ns_fd, CLONE_NEWNET) != 0) {
    job_fail(j, "setns");
    return NULL;
  }
  if (j->kind == KIND_SYSCTL) {
    /* /proc/sys/net/... is looked up in the network namespace of the opening thread. */
    int f = open(j->sysctl_path, O_WRONLY | O_CLOEXEC);
    if (f < 0) {
      job_fail(j, "open(sysctl)");
      return NULL;
    }
    size_t n = strlen(j->sysctl_value);
    if (write(f, j->sysctl_value, n) != (ssize_t)n) {
      int e = errno;
      close(f);
      errno = e;
      job_fail(j, "write(sysctl)");
      return NULL;
    }
    close(f);
    j->fd = 0;
    return NULL;
  }
  int type = (j->kind == KIND_UDP ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC | SOCK_NONBLOCK;
  j->fd = socket(j->family, type, 0);
  if (j->fd < 0) {
    job_fail(j, "socket");
    return NULL;
  }
  int one = 1, zero = 0;
  if (j->mark != 0 && setsockopt(j->fd, SOL_SOCKET, SO_MARK, &j->mark, sizeof j->mark) != 0) {
    job_fail(j, "setsockopt(SO_MARK)");
    return NULL;
  }
  if (j->kind == KIND_TCP_DIAL) {
    if (j->transparent) {
      int v4 = j->family == AF_INET;
      if (setsockopt(j->fd, v4 ? SOL_IP : SOL_IPV6, v4 ? IP_TRANSPARENT : IPV6_TRANSPARENT, &one, sizeof one) != 0) {
        job_fail(j, v4 ? "setsockopt(IP_TRANSPARENT)" : "setsockopt(IPV6_TRANSPARENT)");
        return NULL;
      }
      if (setsockopt(j->fd, v4 ? SOL_IP : SOL_IPV6, v4 ? IP_FREEBIND : IPV6_FREEBIND, &one, sizeof one) != 0) {
        job_fail(j, "setsockopt(IP_FREEBIND)");
        return NULL;
      }
    }
    if (!j->has_addr) return NULL;
    /* Port-less bind: the kernel picks the source port at connect time per 4-tuple, so
     * connection churn from one pod IP never runs out of ports at bind. */
    if (setsockopt(j->fd, SOL_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one) != 0) {
      job_fail(j, "setsockopt(IP_BIND_ADDRESS_NO_PORT)");
      return NULL;
    }
    if (bind(j->fd, (struct sockaddr *)&j->addr, j->addr_len) != 0) job_fail(j, "bind");
    return NULL;
  }
  /* Dual stack on [::], as ztunnel's [::] listeners inside the pod. */
  if (j->family == AF_INET6 && setsockopt(j->fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero) != 0) {
    job_fail(j, "setsockopt(IPV6_V6ONLY)");
    return NULL;
  }
  if (j->kind == KIND_TCP_LISTENER && setsockopt(j->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) {
    job_fail(j, "setsockopt(SO_REUSEADDR)");
    return NULL;
  }
  if (j->reuse_port && setsockopt(j->fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    job_fail(j, "setsockopt(SO_REUSEPORT)");
    return NULL;
  }
  if (j->has_addr && bind(j->fd, (struct sockaddr *)&j->addr, j->addr_len) != 0) {
    job_fail(j, "bind");
    return NULL;
  }
  if (j->kind == KIND_TCP_LISTENER && listen(j->fd, j->backlog) != 0) {
    job_fail(j, "listen");
    return NULL;
  }
  return NULL;
}

/* Runs the job on a fresh thread (see the header: never on Node's thread) and waits for it. */
static napi_value run_ns_job(napi_env env, struct ns_job *j) {
  pthread_t t;
  j->fd = -1;
  j->err = 0;
  j->syscall = NULL;
  int rc = pthread_create(&t, NULL, ns_thread, j);
  if (rc != 0) return throw_errno(env, "pthread_create", rc);
  pthread_join(t, NULL);
  if (j->fd < 0) return throw_errno(env, j->syscall ? j->syscall : "socket", j->err ? j->err : EINVAL);
  return fd_value(env, j->fd);
}

/* Parses host (v4 or v6 literal) + port into the job; sets family. */
static int job_addr(struct ns_job *j, const char *host, int port) {
  memset(&j->addr, 0, sizeof j->addr);
  struct sockaddr_in *a4 = (struct sockaddr_in *)&j->addr;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&j->addr;
  if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    j->family = AF_INET;
    j->addr_len = sizeof *a4;
  } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    j->family = AF_INET6;
    j->addr_len = sizeof *a6;
  } else {
    return 0;
  }
  j->has_addr = 1;
  return 1;
}

/*
 * netnsTcpListener(nsFd, host, port, mark, reusePort): listening (backlog 511, Node's own);
 * netnsUdpSocket(nsFd, host, port, mark, reusePort): bound, for dgram's bind({fd}).
 * The callback data says which kind.
 */
static napi_value netns_bound_socket(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  char host[64];
  int32_t ns_fd, port;
  uint32_t mark;
  int reuse;
  void *data = NULL;
  napi_get_cb_info(env, info, &argc, argv, NULL, &data);
  enum sock_kind kind = data == NULL ? KIND_TCP_LISTENER : KIND_UDP;
  if (argc < 5 || !get_i32(env, argv[0], &ns_fd) || !get_str(env, argv[1], host, sizeof host) || !get_i32(env, argv[2], &port) ||
      !get_u32(env, argv[3], &mark) || !get_bool(env, argv[4], &reuse))
    return throw_type(env, "netnsTcpListener / netnsUdpSocket(nsFd: number, host: string, port: number, mark: number, reusePort: boolean)");
  struct ns_job j;
  memset(&j, 0, sizeof j);
  j.ns_fd = ns_fd;
  j.kind = kind;
  j.mark = mark;
  j.reuse_port = reuse;
  j.backlog = 511;
  if (port < 0 || port > 65535 || !job_addr(&j, host, port)) return throw_type(env, "host must be an IP literal and port 0-65535");
  return run_ns_job(env, &j);
}

/*
 * netnsTcpSocket(nsFd, family 4|6, mark, bindIp|null, transparent): an unconnected TCP socket
 * for a dial from the pod, with every option set before bind and connect (Node connects it).
 */
static napi_value netns_tcp_socket(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  int32_t ns_fd, family;
  uint32_t mark;
  int transparent;
  char ip[64];
  napi_valuetype t = napi_undefined;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 5 || !get_i32(env, argv[0], &ns_fd) || !get_i32(env, argv[1], &family) || !get_u32(env, argv[2], &mark) || (family != 4 && family != 6) ||
      napi_typeof(env, argv[3], &t) != napi_ok || (t != napi_null && !get_str(env, argv[3], ip, sizeof ip)) || !get_bool(env, argv[4], &transparent))
    return throw_type(env, "netnsTcpSocket(nsFd: number, family: 4 | 6, mark: number, bindIp: string | null, transparent: boolean)");
  struct ns_job j;
  memset(&j, 0, sizeof j);
  j.ns_fd = ns_fd;
  j.kind = KIND_TCP_DIAL;
  j.mark = mark;
  j.transparent = transparent;
  if (t == napi_string) {
    if (!job_addr(&j, ip, 0)) return throw_type(env, "netnsTcpSocket: bindIp must be an IP literal");
    if (j.family != (family == 6 ? AF_INET6 : AF_INET)) return throw_type(env, "netnsTcpSocket: bindIp is not of the given family");
  } else {
    j.family = family == 6 ? AF_INET6 : AF_INET;
  }
  return run_ns_job(env, &j);
}

/* netnsSysctl(nsFd, "net/ipv4/tcp_migrate_req", "1"): writes a per-namespace sysctl. */
static napi_value netns_sysctl(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t ns_fd;
  char name[96];
  struct ns_job j;
  memset(&j, 0, sizeof j);
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3 || !get_i32(env, argv[0], &ns_fd) || !get_str(env, argv[1], name, sizeof name) || !get_str(env, argv[2], j.sysctl_value, sizeof j.sysctl_value) ||
      strncmp(name, "net/", 4) != 0 || strstr(name, "..") != NULL)
    return throw_type(env, "netnsSysctl(nsFd: number, name: 'net/...', value: string)");
  snprintf(j.sysctl_path, sizeof j.sysctl_path, "/proc/sys/%s", name);
  j.ns_fd = ns_fd;
  j.kind = KIND_SYSCTL;
  napi_value r = run_ns_job(env, &j);
  if (r == NULL) return NULL;
  napi_value undef;
  napi_get_undefined(env, &undef);
  return undef;
}

/* ---- ZDS transport: SOCK_SEQPACKET Unix sockets ---------------------------------------- */

static int unix_addr(napi_env env, napi_value v, struct sockaddr_un *sa) {
  memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  return get_str(env, v, sa->sun_path, sizeof sa->sun_path);
}

/*
 * seqpacketConnect(path) (client; a Unix-domain connect completes at once or fails, and
 * EAGAIN = backlog full is retried by the caller) and seqpacketListen(path, backlog) (server):
 * the callback data says which.
 */
static napi_value seqpacket_open(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  struct sockaddr_un sa;
  int32_t backlog = 0;
  void *listening = NULL;
  napi_get_cb_info(env, info, &argc, argv, NULL, &listening);
  if (argc < 1 || !unix_addr(env, argv[0], &sa) || (listening && (argc < 2 || !get_i32(env, argv[1], &backlog))))
    return throw_type(env, "seqpacketConnect(path: string) / seqpacketListen(path: string, backlog: number) (path at most 107 bytes)");
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return throw_errno(env, "socket(AF_UNIX, SOCK_SEQPACKET)", errno);
  int rc = listening ? (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 ? listen(fd, backlog) : -1) : connect(fd, (struct sockaddr *)&sa, sizeof sa);
  if (rc != 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, listening ? "bind/listen" : "connect", e);
  }
  return fd_value(env, fd);
}

static napi_value seqpacket_accept(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || !get_i32(env, argv[0], &fd)) return throw_type(env, "seqpacketAccept(fd: number)");
  int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (c < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED) return fd_value(env, -1);
    return throw_errno(env, "accept4", errno);
  }
  return fd_value(env, c);
}

/* seqpacketSend(fd, data: Buffer, fds: number[]): one message, the fds as SCM_RIGHTS. */
static napi_value seqpacket_send(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t fd;
  void *data = NULL;
  size_t len = 0;
  bool is_buf = false, is_arr = false;
  uint32_t nfds = 0;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3 || !get_i32(env, argv[0], &fd) || napi_is_buffer(env, argv[1], &is_buf) != napi_ok || !is_buf ||
      napi_is_array(env, argv[2], &is_arr) != napi_ok || !is_arr)
    return throw_type(env, "seqpacketSend(fd: number, data: Buffer, fds: number[])");
  napi_get_buffer_info(env, argv[1], &data, &len);
  napi_get_array_length(env, argv[2], &nfds);
  if (nfds > MAX_RECV_FDS) return throw_type(env, "seqpacketSend: too many descriptors");
  int fds[MAX_RECV_FDS];
  for (uint32_t i = 0; i < nfds; i++) {
    napi_value el;
    napi_get_element(env, argv[2], i, &el);
    if (!get_i32(env, el, &fds[i])) return throw_type(env, "seqpacketSend: fds must be numbers");
  }
  struct iovec iov = {.iov_base = data, .iov_len = len};
  union {
    char buf[CMSG_SPACE(sizeof(int) * MAX_RECV_FDS)];
    struct cmsghdr align;
  } ctrl;
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (nfds > 0) {
    memset(&ctrl, 0, sizeof ctrl);
    msg.msg_control = ctrl.buf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  }
  ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n < 0) return throw_errno(env, "sendmsg", errno);
  return fd_value(env, (int)n);
}

/* seqpacketRecv(fd, maxBytes, maxFds) -> null | { data, fds, truncated } ; data.length 0 = peer closed. */
static napi_value seqpacket_recv(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t fd, max_bytes, max_fds;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3 || !get_i32(env, argv[0], &fd) || !get_i32(env, argv[1], &max_bytes) || !get_i32(env, argv[2], &max_fds) || max_bytes <= 0 ||
      max_bytes > (1 << 20) || max_fds < 0 || max_fds > MAX_RECV_FDS)
    return throw_type(env, "seqpacketRecv(fd: number, maxBytes: 1..1048576, maxFds: 0..16)");
  char *buf = malloc((size_t)max_bytes);
  if (!buf) return throw_errno(env, "malloc", ENOMEM);
  union {
    char buf[CMSG_SPACE(sizeof(int) * MAX_RECV_FDS)];
    struct cmsghdr align;
  } ctrl;
  struct iovec iov = {.iov_base = buf, .iov_len = (size_t)max_bytes};
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  /* Room for max_fds descriptors: one more than the sender may legitimately send is then
   * reported as MSG_CTRUNC (and the ones that fit are closed below). */
  msg.msg_control = ctrl.buf;
  msg.msg_controllen = max_fds > 0 ? CMSG_SPACE(sizeof(int) * max_fds) : 0;
  if (max_fds == 0) msg.msg_control = NULL;
  ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  if (n < 0) {
    int e = errno;
    free(buf);
    if (e == EAGAIN || e == EWOULDBLOCK) {
      napi_value nul;
      napi_get_null(env, &nul);
      return nul;
    }
    return throw_errno(env, "recvmsg", e);
  }
  int got[MAX_RECV_FDS];
  int ngot = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    int *p = (int *)CMSG_DATA(c);
    for (int i = 0; i < count; i++) {
      if (ngot < MAX_RECV_FDS) got[ngot++] = p[i];
      else close(p[i]);
    }
  }
  int truncated = (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0;
  if (truncated) {
    for (int i = 0; i < ngot; i++) close(got[i]);
    ngot = 0;
  }
  napi_value out, data, fds, tr;
  void *dst;
  napi_create_object(env, &out);
  napi_create_buffer_copy(env, (size_t)n, buf, &dst, &data);
  free(buf);
  napi_create_array_with_length(env, (size_t)ngot, &fds);
  for (int i = 0; i < ngot; i++) napi_set_element(env, fds, (uint32_t)i, fd_value(env, got[i]));
  napi_get_boolean(env, truncated, &tr);
  napi_set_named_property(env, out, "data", data);
  napi_set_named_property(env, out, "fds", fds);
  napi_set_named_property(env, out, "truncated", tr);
  return out;
}

/* ---- readiness polling on Node's event loop ------------------------------------------ */

struct poll_ctx {
  uv_poll_t handle;
  napi_env env;
  napi_ref callback;
  napi_async_context async;
  int stopped;   /* pollStop ran (or the external was collected first) */
  int closed;    /* libuv finished closing the handle */
  int finalized; /* the JS external is gone */
};

/* The struct is freed once BOTH libuv closed the handle and the JS external is collected. */
static void poll_closed(uv_handle_t *h) {
  struct poll_ctx *p = h->data;
  p->closed = 1;
  if (p->finalized) free(p);
}

static void poll_stop_ctx(napi_env env, struct poll_ctx *p) {
  if (p->stopped) return;
  p->stopped = 1;
  uv_poll_stop(&p->handle);
  napi_delete_reference(env, p->callback);
  napi_async_destroy(env, p->async);
  uv_close((uv_handle_t *)&p->handle, poll_closed);
}

static void poll_cb(uv_poll_t *h, int status, int events) {
  struct poll_ctx *p = h->data;
  if (p->stopped) return;
  napi_env env = p->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value cb, recv, argv[3], result;
  napi_get_reference_value(env, p->callback, &cb);
  napi_get_global(env, &recv); /* make_callback needs an object receiver */
  if (status < 0) napi_create_string_utf8(env, uv_strerror(status), NAPI_AUTO_LENGTH, &argv[0]);
  else napi_get_null(env, &argv[0]);
  napi_get_boolean(env, (events & UV_READABLE) != 0, &argv[1]);
  napi_get_boolean(env, (events & UV_DISCONNECT) != 0, &argv[2]);
  /* make_callback runs the microtask queue afterwards, like any libuv-driven Node callback. */
  napi_make_callback(env, p->async, recv, cb, 3, argv, &result);
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) {
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
    napi_fatal_exception(env, exc);
  }
  napi_close_handle_scope(env, scope);
}

static void poll_finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  struct poll_ctx *p = data;
  p->finalized = 1;
  if (!p->stopped) poll_stop_ctx(env, p); /* collected without pollStop: poll_closed frees */
  else if (p->closed) free(p);
}

/* pollStart(fd, cb) -> handle: cb(error|null, readable, disconnected) on each readiness event. */
static napi_value poll_start(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd;
  napi_valuetype t;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2 || !get_i32(env, argv[0], &fd) || napi_typeof(env, argv[1], &t) != napi_ok || t != napi_function)
    return throw_type(env, "pollStart(fd: number, callback: function)");
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return throw_errno(env, "napi_get_uv_event_loop", EINVAL);
  struct poll_ctx *p = calloc(1, sizeof *p);
  if (!p) return throw_errno(env, "calloc", ENOMEM);
  int rc = uv_poll_init(loop, &p->handle, fd);
  if (rc != 0) {
    free(p);
    return throw_errno(env, "uv_poll_init", -rc);
  }
  p->handle.data = p;
  p->env = env;
  napi_value name;
  napi_create_string_utf8(env, "ztunnel:zds-poll", NAPI_AUTO_LENGTH, &name);
  napi_value resource;
  napi_create_object(env, &resource);
  napi_async_init(env, resource, name, &p->async);
  napi_create_reference(env, argv[1], 1, &p->callback);
  rc = uv_poll_start(&p->handle, UV_READABLE | UV_DISCONNECT, poll_cb);
  if (rc != 0) {
    p->finalized = 1; /* no external will exist */
    poll_stop_ctx(env, p);
    return throw_errno(env, "uv_poll_start", -rc);
  }
  napi_value ext;
  napi_create_external(env, p, poll_finalize, NULL, &ext);
  return ext;
}

/* pollStop(handle): idempotent; the handle closes on the next loop turn. */
static napi_value poll_stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void *data = NULL;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || napi_get_value_external(env, argv[0], &data) != napi_ok || !data) return throw_type(env, "pollStop(handle)");
  poll_stop_ctx(env, data);
  return NULL;
}

/* Called from the addon's init (native/capture.c) so both files share one .node module. */
void ztunnel_netns_init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"netnsTcpListener", NULL, netns_bound_socket, NULL, NULL, NULL, napi_enumerable, NULL},
    {"netnsTcpSocket", NULL, netns_tcp_socket, NULL, NULL, NULL, napi_enumerable, NULL},
    {"netnsUdpSocket", NULL, netns_bound_socket, NULL, NULL, NULL, napi_enumerable, (void *)1},
    {"netnsSysctl", NULL, netns_sysctl, NULL, NULL, NULL, napi_enumerable, NULL},
    {"seqpacketConnect", NULL, seqpacket_open, NULL, NULL, NULL, napi_enumerable, NULL},
    {"seqpacketListen", NULL, seqpacket_open, NULL, NULL, NULL, napi_enumerable, (void *)1},
    {"seqpacketAccept", NULL, seqpacket_accept, NULL, NULL, NULL, napi_enumerable, NULL},
    {"seqpacketSend", NULL, seqpacket_send, NULL, NULL, NULL, napi_enumerable, NULL},
    {"seqpacketRecv", NULL, seqpacket_recv, NULL, NULL, NULL, napi_enumerable, NULL},
    {"pollStart", NULL, poll_start, NULL, NULL, NULL, napi_enumerable, NULL},
    {"pollStop", NULL, poll_stop, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
