/*
 * ztunnel_capture: the Linux socket options Node's net module does not expose, for
 * transparent capture: the original destination of a redirected connection, the packet mark
 * that keeps the proxy's own sockets out of the redirect rules, and transparent/freebind dials.
 *
 *   getOriginalDst(fd)            SO_ORIGINAL_DST, then IP6T_SO_ORIGINAL_DST -> {ip, port, family} | null
 *   setMark(fd, mark)             SO_MARK, so the pod's iptables rules skip the proxy's own sockets
 *   getMark(fd)                   SO_MARK as set (tests and diagnostics)
 *   setTransparent(fd, on)        IP_TRANSPARENT / IPV6_TRANSPARENT (bind to a non-local source)
 *   setFreebind(fd)               IP_FREEBIND / IPV6_FREEBIND
 *   createDialSocket(family, mark, bindIp, transparent)
 *                                 an unconnected TCP socket with SO_MARK, IP_TRANSPARENT + IP_FREEBIND
 *                                 and a port-less bind already done, for Node to adopt and connect
 *
 * Plain Node-API C (node_api.h, NAPI_VERSION 8): no npm dependency and ABI-stable across Node
 * versions. Every failure throws an Error whose `code` is the errno name (ENOENT, EPERM, ...)
 * and whose `syscall` names the call, like Node's own ErrnoException.
 */
#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#define _GNU_SOURCE
#include <node_api.h>
#include "napi-errors.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* From linux/netfilter_ipv4.h and linux/netfilter_ipv6/ip6_tables.h, which clash with
 * netinet/in.h when both are included; the values are kernel ABI. */
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif
#ifndef IP_TRANSPARENT
#define IP_TRANSPARENT 19
#endif
#ifndef IPV6_TRANSPARENT
#define IPV6_TRANSPARENT 75
#endif
#ifndef IP_FREEBIND
#define IP_FREEBIND 15
#endif
#ifndef IPV6_FREEBIND
#define IPV6_FREEBIND 78
#endif
#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

/* errno -> symbolic name; the few a socket call here can return, then a numeric fallback. */
/* Reads argument i as an int32 (fd, family, port, ...); throws a TypeError otherwise. */
static int arg_int(napi_env env, napi_value *argv, size_t argc, size_t i, const char *what, int32_t *out) {
  napi_valuetype t;
  if (i >= argc || napi_typeof(env, argv[i], &t) != napi_ok || t != napi_number) {
    char msg[128];
    snprintf(msg, sizeof msg, "argument %zu (%s) must be a number", i + 1, what);
    throw_type(env, msg);
    return 0;
  }
  napi_get_value_int32(env, argv[i], out);
  return 1;
}

/* The descriptor of a call whose only argument is `fd` (0 after throwing a TypeError). */
static int only_fd_arg(napi_env env, napi_callback_info info, int32_t *fd) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  return arg_int(env, argv, argc, 0, "fd", fd);
}

static int arg_bool(napi_env env, napi_value *argv, size_t argc, size_t i, const char *what, int *out) {
  napi_valuetype t;
  bool b = false;
  if (i >= argc || napi_typeof(env, argv[i], &t) != napi_ok || t != napi_boolean) {
    char msg[128];
    snprintf(msg, sizeof msg, "argument %zu (%s) must be a boolean", i + 1, what);
    throw_type(env, msg);
    return 0;
  }
  napi_get_value_bool(env, argv[i], &b);
  *out = b ? 1 : 0;
  return 1;
}

/* The socket's address family (AF_INET or AF_INET6), or -errno. */
static int sock_family(int fd) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  memset(&ss, 0, sizeof ss);
  if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) return -errno;
  return ss.ss_family;
}

static napi_value make_addr(napi_env env, const char *ip, int port, int family) {
  napi_value obj, vip, vport, vfam;
  napi_create_object(env, &obj);
  napi_create_string_utf8(env, ip, NAPI_AUTO_LENGTH, &vip);
  napi_create_int32(env, port, &vport);
  napi_create_int32(env, family, &vfam);
  napi_set_named_property(env, obj, "ip", vip);
  napi_set_named_property(env, obj, "port", vport);
  napi_set_named_property(env, obj, "family", vfam);
  return obj;
}

/* ENOENT: no conntrack entry (the connection was not NATed); ENOPROTOOPT / EOPNOTSUPP: wrong
 * family or the netfilter module is absent. All mean "no original destination here". */
static int no_orig_dst(int e) {
  return e == ENOENT || e == ENOPROTOOPT || e == EOPNOTSUPP || e == EAFNOSUPPORT;
}

/*
 * getOriginalDst(fd): IPv4 first (it also answers for v4-mapped connections accepted on a
 * dual-stack [::] listener), then IPv6, as ztunnel's socket::orig_dst_addr does. Returns null
 * when neither knows the connection (TPROXY or explicit connections); throws on EBADF etc.
 */
static napi_value get_original_dst(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!only_fd_arg(env, info, &fd)) return NULL;

  struct sockaddr_in v4;
  socklen_t len4 = sizeof v4;
  memset(&v4, 0, sizeof v4);
  if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &v4, &len4) == 0 && v4.sin_family == AF_INET) {
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &v4.sin_addr, ip, sizeof ip);
    return make_addr(env, ip, ntohs(v4.sin_port), 4);
  }
  int e4 = errno;
  if (!no_orig_dst(e4)) return throw_errno(env, "getsockopt(SO_ORIGINAL_DST)", e4);

  struct sockaddr_in6 v6;
  socklen_t len6 = sizeof v6;
  memset(&v6, 0, sizeof v6);
  if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &v6, &len6) == 0 && v6.sin6_family == AF_INET6) {
    char ip[INET6_ADDRSTRLEN];
    inet_ntop(AF_INET6, &v6.sin6_addr, ip, sizeof ip);
    return make_addr(env, ip, ntohs(v6.sin6_port), 6);
  }
  int e6 = errno;
  if (!no_orig_dst(e6)) return throw_errno(env, "getsockopt(IP6T_SO_ORIGINAL_DST)", e6);
  napi_value nul;
  napi_get_null(env, &nul);
  return nul;
}

/* setMark(fd, mark): SO_MARK needs CAP_NET_ADMIN (EPERM otherwise). */
static napi_value set_mark(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd;
  uint32_t mark;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (!arg_int(env, argv, argc, 0, "fd", &fd)) return NULL;
  napi_valuetype t;
  if (argc < 2 || napi_typeof(env, argv[1], &t) != napi_ok || t != napi_number) return throw_type(env, "argument 2 (mark) must be a number");
  napi_get_value_uint32(env, argv[1], &mark);
  if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) != 0) return throw_errno(env, "setsockopt(SO_MARK)", errno);
  return NULL;
}

static napi_value get_mark(napi_env env, napi_callback_info info) {
  int32_t fd;
  uint32_t mark = 0;
  socklen_t len = sizeof mark;
  if (!only_fd_arg(env, info, &fd)) return NULL;
  if (getsockopt(fd, SOL_SOCKET, SO_MARK, &mark, &len) != 0) return throw_errno(env, "getsockopt(SO_MARK)", errno);
  napi_value out;
  napi_create_uint32(env, mark, &out);
  return out;
}

/* Sets a per-family boolean option (v4 level/name or v6 level/name by the socket's family). */
static napi_value set_family_flag(napi_env env, int fd, int on, int v4name, int v6name, const char *v4s, const char *v6s) {
  int fam = sock_family(fd);
  if (fam < 0) return throw_errno(env, "getsockname", -fam);
  int v = on ? 1 : 0;
  if (fam == AF_INET6) {
    if (setsockopt(fd, SOL_IPV6, v6name, &v, sizeof v) != 0) return throw_errno(env, v6s, errno);
  } else if (fam == AF_INET) {
    if (setsockopt(fd, SOL_IP, v4name, &v, sizeof v) != 0) return throw_errno(env, v4s, errno);
  } else {
    return throw_errno(env, "getsockname", EAFNOSUPPORT);
  }
  return NULL;
}

/* setTransparent(fd, on): lets the socket bind (and accept TPROXY traffic) for non-local addresses. */
static napi_value set_transparent(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd;
  int on;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (!arg_int(env, argv, argc, 0, "fd", &fd)) return NULL;
  if (!arg_bool(env, argv, argc, 1, "on", &on)) return NULL;
  return set_family_flag(env, fd, on, IP_TRANSPARENT, IPV6_TRANSPARENT, "setsockopt(IP_TRANSPARENT)", "setsockopt(IPV6_TRANSPARENT)");
}

static napi_value set_freebind(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!only_fd_arg(env, info, &fd)) return NULL;
  return set_family_flag(env, fd, 1, IP_FREEBIND, IPV6_FREEBIND, "setsockopt(IP_FREEBIND)", "setsockopt(IPV6_FREEBIND)");
}

/*
 * createDialSocket(family, mark, bindIp, transparent): socket(2) with every option a proxy
 * dial needs set BEFORE bind and connect, which Node's net.connect cannot do:
 *   - SO_MARK (when mark != 0): the capture rules match the first packet (the SYN);
 *   - IP_TRANSPARENT + IP_FREEBIND (transparent): bind to the client's non-local address
 *     (original-source spoofing); both must precede bind(2);
 *   - bindIp (may be null): bound with IP_BIND_ADDRESS_NO_PORT, so the kernel picks the
 *     source port at connect time for the full 4-tuple. A plain bind(ip:0) reserves a port
 *     for ANY destination, so churn exhausts ports long before the ephemeral range is used
 *     up (EADDRINUSE at bind).
 * Returns the non-blocking, close-on-exec descriptor; Node adopts it (handle.open) and
 * connects it. On failure the descriptor is closed and the error names the call.
 */
static napi_value create_dial_socket(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  int32_t fam;
  uint32_t mark = 0;
  int transparent;
  char ip[INET6_ADDRSTRLEN + 1];
  size_t iplen = 0;
  int have_ip = 0;
  napi_valuetype t;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (!arg_int(env, argv, argc, 0, "family", &fam)) return NULL;
  if (fam != 4 && fam != 6) return throw_type(env, "argument 1 (family) must be 4 or 6");
  if (argc < 2 || napi_typeof(env, argv[1], &t) != napi_ok || t != napi_number) return throw_type(env, "argument 2 (mark) must be a number");
  napi_get_value_uint32(env, argv[1], &mark);
  if (argc < 3 || napi_typeof(env, argv[2], &t) != napi_ok || (t != napi_string && t != napi_null)) return throw_type(env, "argument 3 (bindIp) must be a string or null");
  if (t == napi_string) {
    napi_get_value_string_utf8(env, argv[2], ip, sizeof ip, &iplen);
    have_ip = 1;
  }
  if (!arg_bool(env, argv, argc, 3, "transparent", &transparent)) return NULL;

  int af = fam == 4 ? AF_INET : AF_INET6;
  struct sockaddr_storage ss;
  socklen_t slen = 0;
  memset(&ss, 0, sizeof ss);
  if (have_ip) {
    if (af == AF_INET) {
      struct sockaddr_in *a = (struct sockaddr_in *)&ss;
      a->sin_family = AF_INET;
      if (inet_pton(AF_INET, ip, &a->sin_addr) != 1) return throw_type(env, "argument 3 (bindIp) is not an IPv4 address");
      slen = sizeof *a;
    } else {
      struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
      a->sin6_family = AF_INET6;
      if (inet_pton(AF_INET6, ip, &a->sin6_addr) != 1) return throw_type(env, "argument 3 (bindIp) is not an IPv6 address");
      slen = sizeof *a;
    }
  }

  int fd = socket(af, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd < 0) return throw_errno(env, "socket", errno);
  int one = 1;
  const char *failed = NULL;
  if (mark != 0 && setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) != 0) failed = "setsockopt(SO_MARK)";
  else if (transparent && af == AF_INET && setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof one) != 0) failed = "setsockopt(IP_TRANSPARENT)";
  else if (transparent && af == AF_INET && setsockopt(fd, SOL_IP, IP_FREEBIND, &one, sizeof one) != 0) failed = "setsockopt(IP_FREEBIND)";
  else if (transparent && af == AF_INET6 && setsockopt(fd, SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof one) != 0) failed = "setsockopt(IPV6_TRANSPARENT)";
  else if (transparent && af == AF_INET6 && setsockopt(fd, SOL_IPV6, IPV6_FREEBIND, &one, sizeof one) != 0) failed = "setsockopt(IPV6_FREEBIND)";
  else if (have_ip && setsockopt(fd, SOL_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one) != 0) failed = "setsockopt(IP_BIND_ADDRESS_NO_PORT)";
  else if (have_ip && bind(fd, (struct sockaddr *)&ss, slen) != 0) failed = "bind";
  if (failed) {
    int e = errno;
    close(fd);
    return throw_errno(env, failed, e);
  }
  napi_value out;
  napi_create_int32(env, fd, &out);
  return out;
}

/*
 * dupFd(fd): a close-on-exec duplicate of a descriptor (F_DUPFD_CLOEXEC). The node proxy's
 * accept loop hands an accepted connection to a data-path worker thread this way: the
 * duplicate refers to the same socket, so the accepting thread can close its own handle
 * while the worker adopts the duplicate; the connection lives until the last one closes.
 */
static napi_value dup_fd(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!only_fd_arg(env, info, &fd)) return NULL;
  int out_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (out_fd < 0) return throw_errno(env, "fcntl(F_DUPFD_CLOEXEC)", errno);
  napi_value out;
  napi_create_int32(env, out_fd, &out);
  return out;
}

/* native/netns.c: in-pod sockets and the ZDS transport, registered on the same module. */
void ztunnel_netns_init(napi_env env, napi_value exports);

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"getOriginalDst", NULL, get_original_dst, NULL, NULL, NULL, napi_enumerable, NULL},
    {"setMark", NULL, set_mark, NULL, NULL, NULL, napi_enumerable, NULL},
    {"getMark", NULL, get_mark, NULL, NULL, NULL, napi_enumerable, NULL},
    {"setTransparent", NULL, set_transparent, NULL, NULL, NULL, napi_enumerable, NULL},
    {"setFreebind", NULL, set_freebind, NULL, NULL, NULL, napi_enumerable, NULL},
    {"createDialSocket", NULL, create_dial_socket, NULL, NULL, NULL, napi_enumerable, NULL},
    {"dupFd", NULL, dup_fd, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  ztunnel_netns_init(env, exports);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
