/*
 * layerpipe_native: the few system calls Node cannot make itself, for the image-proxy wire.
 *
 * - socketpair(SOCK_SEQPACKET), close-on-exec; pipe2, fcntl flags, close and socket
 *   queries (fd-calls.c);
 * - sendmsg/recvmsg of one packet with file descriptors in one SCM_RIGHTS message;
 * - a Poller (poller.c: uv_poll_t on the Node loop) to learn when such a socket is readable or writable;
 * - opening files below a directory fd with no symlink followed (beneath.c), for oci: and dir:;
 * - a listening SEQPACKET unix socket, accept, connect and mkfifo (unix-socket.c), for the service;
 * - splice/vmsplice of blob bytes into pipes, hashed on the way (pipe-feed.c, file-pump.c).
 *
 * Every call is non-blocking (MSG_DONTWAIT) so it never stalls the event loop; failures are
 * thrown as Errors whose `code` is the errno name ('EBADF', 'EPIPE', ...).
 */
#include "native.h"

#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

/* The kernel's SCM_MAX_FD: the most descriptors one SCM_RIGHTS message may carry. */
#define MAX_FDS 253
#define MAX_RECV_LEN (64u * 1024u * 1024u)

typedef union {
  struct cmsghdr align;
  char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
} fd_control_t;

/* Per-environment scratch buffer for recvPacket, grown on demand (workers get their own). */
typedef struct {
  char *scratch;
  size_t capacity;
} instance_t;

/* ---------- socket pairs ---------- */

static napi_value js_seqpacket_pair(napi_env env, napi_callback_info info) {
  (void)info;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
    throw_errno(env, errno, "socketpair");
    return NULL;
  }
  return fd_pair(env, sv[0], sv[1]);
}

/* ---------- packets ---------- */

static napi_value js_send_packet(napi_env env, napi_callback_info info) {
  napi_value argv[3], result;
  int fd;
  void *data = NULL;
  size_t len = 0;
  bool is_buffer = false, is_typed = false, is_array = false;
  if (!get_args(env, info, 3, argv, NULL) || !get_fd(env, argv[0], &fd)) return NULL;

  napi_is_buffer(env, argv[1], &is_buffer);
  if (is_buffer) {
    CHECK(env, napi_get_buffer_info(env, argv[1], &data, &len));
  } else if (napi_is_typedarray(env, argv[1], &is_typed) == napi_ok && is_typed) {
    napi_typedarray_type type;
    size_t count, offset;
    napi_value ab;
    CHECK(env, napi_get_typedarray_info(env, argv[1], &type, &count, &data, &ab, &offset));
    if (type != napi_uint8_array) {
      napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "data must be a Buffer or Uint8Array");
      return NULL;
    }
    len = count;
  } else {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "data must be a Buffer or Uint8Array");
    return NULL;
  }

  uint32_t nfds = 0;
  if (napi_is_array(env, argv[2], &is_array) != napi_ok || !is_array) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "fds must be an array of integers");
    return NULL;
  }
  CHECK(env, napi_get_array_length(env, argv[2], &nfds));
  if (nfds > MAX_FDS) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "too many fds for one SCM_RIGHTS message");
    return NULL;
  }
  int fds[MAX_FDS];
  for (uint32_t i = 0; i < nfds; i++) {
    napi_value el;
    CHECK(env, napi_get_element(env, argv[2], i, &el));
    if (!get_fd(env, el, &fds[i])) return NULL;
  }

  struct iovec iov = {.iov_base = data, .iov_len = len};
  struct msghdr msg;
  fd_control_t control;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (nfds > 0) {
    memset(&control, 0, sizeof control);
    msg.msg_control = control.buf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
  }

  ssize_t n;
  do {
    n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
    throw_errno(env, errno, "sendmsg");
    return NULL;
  }
  CHECK(env, napi_get_boolean(env, n >= 0, &result));
  return result;
}

/*
 * recvmsg returns 0 both at end of stream and for a zero-length packet. It is the end only
 * if the peer has shut down and nothing else is queued.
 */
static bool peer_gone(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP, .revents = 0};
  if (poll(&p, 1, 0) <= 0 || !(p.revents & (POLLRDHUP | POLLHUP))) return false;
  char c;
  return recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) <= 0;
}

static napi_value js_recv_packet(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int fd;
  int64_t max_len;
  instance_t *inst = NULL;
  if (!get_args(env, info, 2, argv, NULL) || !get_fd(env, argv[0], &fd) ||
      !get_int(env, argv[1], "maxLen", MAX_RECV_LEN, false, &max_len))
    return NULL;
  if (max_len < 1) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "maxLen must be at least 1");
    return NULL;
  }
  CHECK(env, napi_get_instance_data(env, (void **)&inst));
  if (inst->capacity < (size_t)max_len) {
    char *grown = realloc(inst->scratch, (size_t)max_len);
    if (grown == NULL) {
      throw_errno(env, ENOMEM, "recvmsg");
      return NULL;
    }
    inst->scratch = grown;
    inst->capacity = (size_t)max_len;
  }

  struct iovec iov = {.iov_base = inst->scratch, .iov_len = (size_t)max_len};
  struct msghdr msg;
  fd_control_t control;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.buf;
  msg.msg_controllen = sizeof control.buf;

  ssize_t n;
  do {
    n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      napi_value nothing;
      CHECK(env, napi_get_null(env, &nothing));
      return nothing;
    }
    throw_errno(env, errno, "recvmsg");
    return NULL;
  }

  int fds[MAX_FDS];
  uint32_t nfds = 0;
  for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm != NULL; cm = CMSG_NXTHDR(&msg, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count && nfds < MAX_FDS; i++) memcpy(&fds[nfds++], CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
  }
  bool truncated = (msg.msg_flags & MSG_TRUNC) != 0;
  bool control_truncated = (msg.msg_flags & MSG_CTRUNC) != 0;
  bool eof = n == 0 && nfds == 0 && !truncated && peer_gone(fd);

  napi_value obj, data, arr, v;
  /* On any failure below the descriptors would be lost: close them before throwing. */
  if (napi_create_object(env, &obj) != napi_ok || napi_create_buffer_copy(env, (size_t)n, inst->scratch, NULL, &data) != napi_ok ||
      napi_create_array_with_length(env, nfds, &arr) != napi_ok) {
    for (uint32_t i = 0; i < nfds; i++) close(fds[i]);
    throw_internal(env, "cannot build the received packet");
    return NULL;
  }
  for (uint32_t i = 0; i < nfds; i++) {
    napi_create_int32(env, fds[i], &v);
    napi_set_element(env, arr, i, v);
  }
  napi_set_named_property(env, obj, "data", data);
  napi_set_named_property(env, obj, "fds", arr);
  napi_get_boolean(env, truncated, &v);
  napi_set_named_property(env, obj, "truncated", v);
  napi_get_boolean(env, control_truncated, &v);
  napi_set_named_property(env, obj, "controlTruncated", v);
  napi_get_boolean(env, eof, &v);
  napi_set_named_property(env, obj, "eof", v);
  return obj;
}

/* ---------- module ---------- */

static void instance_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  instance_t *inst = data;
  free(inst->scratch);
  free(inst);
}

/* glibc gives each contending thread an arena that keeps what was freed in it: two arenas save
   ~3 MiB peak RSS while streaming (memory-bench). MALLOC_ARENA_MAX, when given, still wins. */
static void limit_malloc_arenas(void) {
#ifdef __GLIBC__
  if (getenv("MALLOC_ARENA_MAX") == NULL) mallopt(M_ARENA_MAX, 2);
#endif
}

static napi_value init(napi_env env, napi_value exports) {
  instance_t *inst = calloc(1, sizeof *inst);
  if (inst == NULL || napi_set_instance_data(env, inst, instance_finalize, NULL) != napi_ok) {
    free(inst);
    throw_internal(env, "cannot set up layerpipe_native");
    return NULL;
  }
  limit_malloc_arenas();
  napi_value poller_class = define_poller_class(env);
  if (poller_class == NULL) return NULL;
  napi_property_descriptor props[] = {
      FN("seqpacketPair", js_seqpacket_pair),
      FN("sendPacket", js_send_packet),
      FN("recvPacket", js_recv_packet),
      {"Poller", NULL, NULL, NULL, NULL, poller_class, napi_enumerable, NULL},
  };
  CHECK(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  if (!define_fd_functions(env, exports)) {
    throw_internal(env, "cannot define the descriptor functions");
    return NULL;
  }
  if (!define_beneath_functions(env, exports)) {
    throw_internal(env, "cannot define the openBeneath functions");
    return NULL;
  }
  if (!define_base64_functions(env, exports)) {
    throw_internal(env, "cannot define the base64 functions");
    return NULL;
  }
  if (!define_unix_socket_functions(env, exports)) {
    throw_internal(env, "cannot define the unix socket functions");
    return NULL;
  }
  if (!define_pipe_feed_functions(env, exports) || !define_file_pump_class(env, exports) || !define_blob_hasher_class(env, exports)) {
    throw_internal(env, "cannot define the pipe feed functions");
    return NULL;
  }
  if (!define_start_file_functions(env, exports)) {
    throw_internal(env, "cannot define the start-up file functions");
    return NULL;
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
