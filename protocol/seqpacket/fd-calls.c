/*
 * layerpipe_native: calls on descriptors that Node does not offer: pipe2 close-on-exec, O_NONBLOCK
 * and FD_CLOEXEC, close, a socket's type and pending error, the parent-death signal, a pipe's
 * size, and errno names.
 */
#include "native.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

static napi_value js_pipe(napi_env env, napi_callback_info info) {
  (void)info;
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) {
    throw_errno(env, errno, "pipe2");
    return NULL;
  }
  return fd_pair(env, p[0], p[1]);
}

static napi_value set_flag(napi_env env, napi_callback_info info, int get, int set, int flag, const char *syscall) {
  napi_value argv[2];
  int fd;
  bool on;
  if (!get_args(env, info, 2, argv, NULL) || !get_fd(env, argv[0], &fd) || !get_bool(env, argv[1], &on)) return NULL;
  int flags = fcntl(fd, get);
  if (flags < 0 || fcntl(fd, set, on ? (flags | flag) : (flags & ~flag)) < 0) throw_errno(env, errno, syscall);
  return NULL;
}

static napi_value js_set_nonblocking(napi_env env, napi_callback_info info) {
  return set_flag(env, info, F_GETFL, F_SETFL, O_NONBLOCK, "fcntl(O_NONBLOCK)");
}

static napi_value js_set_cloexec(napi_env env, napi_callback_info info) {
  return set_flag(env, info, F_GETFD, F_SETFD, FD_CLOEXEC, "fcntl(FD_CLOEXEC)");
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;
  if (!get_args(env, info, 1, argv, NULL) || !get_fd(env, argv[0], &fd)) return NULL;
  /* On Linux the descriptor is released even when close reports EINTR: never retry. */
  if (close(fd) < 0 && errno != EINTR) throw_errno(env, errno, "close");
  return NULL;
}

static napi_value js_socket_type(napi_env env, napi_callback_info info) {
  napi_value argv[1], result;
  int fd, type;
  socklen_t len = sizeof type;
  if (!get_args(env, info, 1, argv, NULL) || !get_fd(env, argv[0], &fd)) return NULL;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0) {
    throw_errno(env, errno, "getsockopt(SO_TYPE)");
    return NULL;
  }
  const char *name = type == SOCK_SEQPACKET ? "seqpacket" : type == SOCK_STREAM ? "stream" : type == SOCK_DGRAM ? "dgram" : "other";
  CHECK(env, napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &result));
  return result;
}

/* getsockopt(SO_ERROR): the pending socket error's name, or null; reading it clears it. */
static napi_value js_take_socket_error(napi_env env, napi_callback_info info) {
  napi_value argv[1], result;
  int fd, err = 0;
  socklen_t len = sizeof err;
  char name[64];
  if (!get_args(env, info, 1, argv, NULL) || !get_fd(env, argv[0], &fd)) return NULL;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) {
    throw_errno(env, errno, "getsockopt(SO_ERROR)");
    return NULL;
  }
  if (err == 0) {
    CHECK(env, napi_get_null(env, &result));
    return result;
  }
  uv_err_name_r(-err, name, sizeof name);
  CHECK(env, napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &result));
  return result;
}

static napi_value js_set_parent_death_signal(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int64_t sig;
  if (!get_args(env, info, 1, argv, NULL) || !get_int(env, argv[0], "signal", 64, false, &sig)) return NULL;
  if (prctl(PR_SET_PDEATHSIG, (unsigned long)sig, 0, 0, 0) < 0) throw_errno(env, errno, "prctl(PR_SET_PDEATHSIG)");
  return NULL;
}

/* fcntl(F_SETPIPE_SZ): a bigger pipe means fewer wake-ups per megabyte copied. Returns the size set. */
static napi_value js_set_pipe_size(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int fd;
  int64_t size;
  if (!get_args(env, info, 2, argv, NULL) || !get_fd(env, argv[0], &fd) ||
      !get_int(env, argv[1], "size", INT_MAX, false, &size)) return NULL;
  int set = fcntl(fd, F_SETPIPE_SZ, (int)size);
  if (set < 0) {
    throw_errno(env, errno, "fcntl(F_SETPIPE_SZ)");
    return NULL;
  }
  napi_value result;
  CHECK(env, napi_create_int32(env, set, &result));
  return result;
}

static napi_value js_error_name(napi_env env, napi_callback_info info) {
  napi_value argv[1], result;
  int32_t code;
  char name[64];
  if (!get_args(env, info, 1, argv, NULL)) return NULL;
  if (napi_get_value_int32(env, argv[0], &code) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "code must be a number");
    return NULL;
  }
  uv_err_name_r(code, name, sizeof name);
  CHECK(env, napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &result));
  return result;
}

bool define_fd_functions(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      FN("pipe", js_pipe),
      FN("setNonBlocking", js_set_nonblocking),
      FN("setCloexec", js_set_cloexec),
      FN("close", js_close),
      FN("socketType", js_socket_type),
      FN("takeSocketError", js_take_socket_error),
      FN("setParentDeathSignal", js_set_parent_death_signal),
      FN("errorName", js_error_name),
      FN("setPipeSize", js_set_pipe_size),
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props) == napi_ok;
}
