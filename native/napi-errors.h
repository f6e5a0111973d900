/*
 * Errors thrown by the N-API addon (capture.c and netns.c), in one form: an Error whose
 * message is `${syscall}: ${CODE} (${strerror})`, with `.code` (EPERM, ...), `.errno`
 * (negative, as Node's) and `.syscall`, so the TypeScript side classifies native failures
 * the way it classifies Node's own; and a TypeError for a bad argument.
 */
#ifndef ZTUNNEL_NAPI_ERRORS_H
#define ZTUNNEL_NAPI_ERRORS_H

#include <node_api.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *errno_name(int e, char *buf, size_t len) {
  switch (e) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EBADF: return "EBADF";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case EINVAL: return "EINVAL";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case ENOMEM: return "ENOMEM";
    case ENOTSOCK: return "ENOTSOCK";
    case ENOPROTOOPT: return "ENOPROTOOPT";
    case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case EADDRINUSE: return "EADDRINUSE";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case ENOTCONN: return "ENOTCONN";
    case ECONNREFUSED: return "ECONNREFUSED";
    case ECONNRESET: return "ECONNRESET";
    case EAGAIN: return "EAGAIN";
    case EPIPE: return "EPIPE";
    default:
      snprintf(buf, len, "ERRNO_%d", e);
      return buf;
  }
}

/* Throws Error(`${syscall}: ${name} (${strerror})`) with .code and .errno set. Returns NULL. */
static napi_value throw_errno(napi_env env, const char *syscall, int e) {
  char nbuf[32];
  char msg[256];
  const char *name = errno_name(e, nbuf, sizeof nbuf);
  snprintf(msg, sizeof msg, "%s: %s (%s)", syscall, name, strerror(e));
  napi_value code, message, err, num, sc;
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &err);
  napi_create_int32(env, -e, &num);
  napi_set_named_property(env, err, "errno", num);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sc);
  napi_set_named_property(env, err, "syscall", sc);
  napi_throw(env, err);
  return NULL;
}

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  return NULL;
}

#endif
