/*
 * Named local endpoints for the long-running service and its FIFO payloads: a listening
 * SOCK_SEQPACKET unix socket, non-blocking accept and connect, and mkfifo. Node has none of
 * these for SEQPACKET sockets (net only makes stream sockets), nor mkfifo at all.
 *
 * Every descriptor made here is close-on-exec and non-blocking, so that no call can stall the
 * event loop; readiness comes from a Poller (poller.c).
 */
#include "native.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Fills `addr` with `path`; false (errno ENAMETOOLONG) when it does not fit sun_path with its NUL. */
static bool unix_address(const char *path, struct sockaddr_un *addr) {
  memset(addr, 0, sizeof *addr);
  addr->sun_family = AF_UNIX;
  if (strlen(path) >= sizeof addr->sun_path) {
    errno = ENAMETOOLONG;
    return false;
  }
  strcpy(addr->sun_path, path);
  return true;
}

static napi_value int_value(napi_env env, int n) {
  napi_value result;
  CHECK(env, napi_create_int32(env, n, &result));
  return result;
}

/* mkfifo(path, mode): mode is applied exactly (the umask does not narrow it further). */
static napi_value js_mkfifo(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int64_t mode;
  if (!get_args(env, info, 2, argv, NULL) || !get_int(env, argv[1], "mode", 07777, false, &mode)) return NULL;
  char *path = get_path(env, argv[0], "mkfifo");
  if (path == NULL) return NULL;
  int rc = mkfifo(path, (mode_t)mode);
  int err = errno;
  /* mkfifo honours the umask; chmod sets the mode asked for (the FIFO is in a private directory, so no race matters). */
  if (rc == 0 && chmod(path, (mode_t)mode) < 0) {
    err = errno;
    rc = -1;
    unlink(path);
  }
  free(path);
  if (rc < 0) throw_errno(env, err, "mkfifo");
  return NULL;
}

/*
 * listenSeqpacket(path, backlog): a listening SOCK_SEQPACKET socket bound to `path`, created
 * with mode 0600: the umask is narrowed around bind(), so the socket file never exists with
 * wider permissions, not even for an instant. The caller removes a stale file first.
 */
static napi_value js_listen_seqpacket(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int64_t backlog;
  struct sockaddr_un addr;
  if (!get_args(env, info, 2, argv, NULL) || !get_int(env, argv[1], "backlog", 65535, false, &backlog)) return NULL;
  char *path = get_path(env, argv[0], "bind");
  if (path == NULL) return NULL;
  bool fits = unix_address(path, &addr);
  free(path);
  if (!fits) {
    throw_errno(env, ENAMETOOLONG, "bind");
    return NULL;
  }
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    throw_errno(env, errno, "socket");
    return NULL;
  }
  mode_t old = umask(0177);
  int rc = bind(fd, (struct sockaddr *)&addr, sizeof addr);
  int err = errno;
  umask(old);
  const char *failed = "bind";
  if (rc == 0 && listen(fd, (int)backlog) < 0) {
    err = errno;
    failed = "listen";
    unlink(addr.sun_path);
    rc = -1;
  }
  if (rc < 0) {
    close(fd);
    throw_errno(env, err, failed);
    return NULL;
  }
  return int_value(env, fd);
}

/*
 * acceptSeqpacket(listenFd): the next pending connection (close-on-exec, non-blocking), or
 * null when none is queued. A connection aborted before it was taken is skipped.
 */
static napi_value js_accept_seqpacket(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int lfd;
  if (!get_args(env, info, 1, argv, NULL) || !get_fd(env, argv[0], &lfd)) return NULL;
  for (;;) {
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd >= 0) return int_value(env, fd);
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      napi_value nothing;
      CHECK(env, napi_get_null(env, &nothing));
      return nothing;
    }
    throw_errno(env, errno, "accept4");
    return NULL;
  }
}

/*
 * connectSeqpacket(path): a SOCK_SEQPACKET socket connected to the listener at `path`
 * (close-on-exec, non-blocking). A unix connect completes at once or fails: EAGAIN means the
 * listener's backlog is full (try again shortly), ECONNREFUSED that nobody listens.
 */
static napi_value js_connect_seqpacket(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  struct sockaddr_un addr;
  if (!get_args(env, info, 1, argv, NULL)) return NULL;
  char *path = get_path(env, argv[0], "connect");
  if (path == NULL) return NULL;
  bool fits = unix_address(path, &addr);
  free(path);
  if (!fits) {
    throw_errno(env, ENAMETOOLONG, "connect");
    return NULL;
  }
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    throw_errno(env, errno, "socket");
    return NULL;
  }
  int rc;
  do {
    rc = connect(fd, (struct sockaddr *)&addr, sizeof addr);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    int err = errno;
    close(fd);
    throw_errno(env, err, "connect");
    return NULL;
  }
  return int_value(env, fd);
}

/* isListeningSocket(fd): getsockopt(SO_ACCEPTCONN); throws ENOTSOCK for a non-socket. */
static napi_value js_is_listening_socket(napi_env env, napi_callback_info info) {
  napi_value argv[1], result;
  int fd, on = 0;
  socklen_t len = sizeof on;
  if (!get_args(env, info, 1, argv, NULL) || !get_fd(env, argv[0], &fd)) return NULL;
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) < 0) {
    throw_errno(env, errno, "getsockopt(SO_ACCEPTCONN)");
    return NULL;
  }
  CHECK(env, napi_get_boolean(env, on != 0, &result));
  return result;
}

/*
 * shutdownSocket(fd): shutdown(SHUT_RDWR). Whoever reads the socket sees the end at once and the
 * peer sees it closed, while the descriptor stays valid until its owner closes it: a way to end
 * a connection served by code that owns its fd.
 */
static napi_value js_shutdown_socket(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;
  if (!get_args(env, info, 1, argv, NULL) || !get_fd(env, argv[0], &fd)) return NULL;
  if (shutdown(fd, SHUT_RDWR) < 0 && errno != ENOTCONN) throw_errno(env, errno, "shutdown");
  return NULL;
}

/*
 * setSendBuffer(fd, bytes): setsockopt(SO_SNDBUF), then the size the kernel uses (it doubles
 * the request for its own bookkeeping and caps it at net.core.wmem_max). A SEQPACKET packet
 * must fit this buffer whole.
 */
static napi_value js_set_send_buffer(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int fd, size;
  int64_t want;
  socklen_t len = sizeof size;
  if (!get_args(env, info, 2, argv, NULL) || !get_fd(env, argv[0], &fd) || !get_int(env, argv[1], "bytes", INT32_MAX / 2, false, &want)) return NULL;
  size = (int)want;
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size) < 0) {
    throw_errno(env, errno, "setsockopt(SO_SNDBUF)");
    return NULL;
  }
  if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, &len) < 0) {
    throw_errno(env, errno, "getsockopt(SO_SNDBUF)");
    return NULL;
  }
  return int_value(env, size);
}

bool define_unix_socket_functions(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      FN("mkfifo", js_mkfifo),
      FN("listenSeqpacket", js_listen_seqpacket),
      FN("acceptSeqpacket", js_accept_seqpacket),
      FN("connectSeqpacket", js_connect_seqpacket),
      FN("isListeningSocket", js_is_listening_socket),
      FN("shutdownSocket", js_shutdown_socket),
      FN("setSendBuffer", js_set_send_buffer),
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props) == napi_ok;
}
