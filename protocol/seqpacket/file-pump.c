/*
 * FilePump: copies a span of a regular file into a non-blocking pipe entirely in the addon,
 * on Node's loop: a uv_poll_t on the pipe runs a step whenever the pipe has room, and
 * JavaScript hears only the end (bytes, end of file, overflow, digest, or the error).
 *
 * - raw (no algorithm): splice(2) file -> pipe, page-cache pages referenced, none copied;
 * - verified: pread(2) into the transfer ring, hashed, vmspliced (pipe-feed.c), never hashing
 *   past `maxBytes`; one byte more in the span is reported as overflow, not delivered.
 *
 * A step moves at most STEP_BYTES and returns to the loop; the poll stays armed while the pump
 * runs, so a pipe with room brings the next step at once and a full one parks the pump.
 * Reading a regular file may wait for the disk (the page cache makes that rare for blobs).
 */
#include "pipe-feed.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <uv.h>

#define STEP_BYTES (4u * 1024u * 1024u)
#define NO_LIMIT UINT64_MAX

typedef struct {
  uv_poll_t handle;
  napi_env env;
  napi_ref self, callback;
  napi_async_context async;
  napi_async_cleanup_hook_handle teardown;
  int file_fd, pipe_fd;
  uint64_t position, remaining, max_bytes, moved;
  feed_t feed; /* used when verified */
  bool verified, eof, overflow, finishing;
  bool running, closing, handle_closed, finalized;
} pump_t;

static void pump_on_closed(uv_handle_t *h) {
  pump_t *p = h->data;
  p->handle_closed = true;
  if (p->teardown != NULL) {
    napi_remove_async_cleanup_hook(p->teardown);
    p->teardown = NULL;
  }
  if (p->finalized) free(p);
}

/* Stops for good: the ring is unmapped (pages in the pipe stay the pipe's), the handle closed. */
static void pump_stop(pump_t *p) {
  if (p->closing) return;
  p->closing = true;
  feed_release(&p->feed);
  if (p->running) {
    p->running = false;
    napi_reference_unref(p->env, p->self, NULL);
  }
  uv_close((uv_handle_t *)&p->handle, pump_on_closed);
}

static void pump_on_teardown(napi_async_cleanup_hook_handle handle, void *arg) {
  (void)handle;
  pump_t *p = arg;
  if (p->closing) return;
  p->closing = true;
  feed_release(&p->feed);
  uv_close((uv_handle_t *)&p->handle, pump_on_closed);
}

static void pump_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  pump_t *p = data;
  p->finalized = true;
  if (!p->closing) pump_stop(p);
  if (p->callback != NULL) napi_delete_reference(p->env, p->callback);
  if (p->async != NULL) napi_async_destroy(p->env, p->async);
  napi_delete_reference(p->env, p->self);
  p->callback = NULL;
  p->async = NULL;
  if (p->handle_closed) free(p);
}

/* Calls back once, with (error) or (null, { bytes, eof, overflow, digest }), then stops. */
static void pump_finish(pump_t *p, int err, const char *syscall) {
  napi_env env = p->env;
  napi_handle_scope scope;
  napi_value cb, recv, argv[2], result, v;
  bool pending = false;
  char hex[EVP_MAX_MD_SIZE * 2 + 1];
  bool has_digest = err == 0 && p->verified && feed_take_digest(&p->feed, hex);
  if (p->callback == NULL || napi_open_handle_scope(env, &scope) != napi_ok) return pump_stop(p);
  napi_get_reference_value(env, p->callback, &cb);
  napi_get_reference_value(env, p->self, &recv);
  if (recv == NULL) napi_get_undefined(env, &recv);
  pump_stop(p); /* `recv` keeps the object alive through the call */
  if (err != 0) {
    argv[0] = errno_error(env, err, syscall);
    napi_get_undefined(env, &argv[1]);
  } else {
    napi_get_null(env, &argv[0]);
    napi_create_object(env, &argv[1]);
    napi_create_double(env, (double)p->moved, &v);
    napi_set_named_property(env, argv[1], "bytes", v);
    napi_get_boolean(env, p->eof, &v);
    napi_set_named_property(env, argv[1], "eof", v);
    napi_get_boolean(env, p->overflow, &v);
    napi_set_named_property(env, argv[1], "overflow", v);
    if (has_digest) napi_create_string_latin1(env, hex, NAPI_AUTO_LENGTH, &v);
    else napi_get_null(env, &v);
    napi_set_named_property(env, argv[1], "digest", v);
  }
  if (napi_make_callback(env, p->async, recv, cb, 2, argv, &result) == napi_pending_exception ||
      (napi_is_exception_pending(env, &pending) == napi_ok && pending)) {
    napi_value exc;
    if (napi_get_and_clear_last_exception(env, &exc) == napi_ok) napi_fatal_exception(env, exc);
  }
  napi_close_handle_scope(env, scope);
}

/* Whether the span has a byte at `position` (a blob longer than expected); -1 with errno on failure. */
static int has_byte_at(int fd, uint64_t position) {
  unsigned char c;
  ssize_t n;
  do n = pread(fd, &c, 1, (off_t)position);
  while (n < 0 && errno == EINTR);
  return n < 0 ? -1 : n == 1;
}

/* One raw step: 1 to go on, 0 to wait for room, -1 finished or failed (reported). */
static int pump_splice(pump_t *p, uint64_t *budget) {
  if (p->remaining == 0) return pump_finish(p, 0, NULL), -1;
  size_t want = (size_t)(p->remaining < *budget ? p->remaining : *budget);
  loff_t off = (loff_t)p->position;
  ssize_t n = splice(p->file_fd, &off, p->pipe_fd, NULL, want, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
  if (n < 0) {
    int err = errno;
    if (err == EINTR) return 1;
    if (err == EAGAIN) return 0;
    /* The kernel checks for a reader before it looks for the file's end. A reader that knew the
       size may leave once it has every byte: at the file's end, that is the end, not a failure. */
    if (err == EPIPE && has_byte_at(p->file_fd, p->position) == 0) {
      p->eof = true;
      return pump_finish(p, 0, NULL), -1;
    }
    return pump_finish(p, err, "splice"), -1;
  }
  if (n == 0) {
    p->eof = true;
    return pump_finish(p, 0, NULL), -1;
  }
  p->position += (uint64_t)n;
  p->remaining -= (uint64_t)n;
  p->moved += (uint64_t)n;
  *budget -= (uint64_t)n < *budget ? (uint64_t)n : *budget;
  /* A short splice means the pipe filled up: wait rather than pay for an EAGAIN. */
  return (size_t)n < want ? 0 : 1;
}

/* One verified step, as pump_splice. Errors thrown by the feed helpers are taken back as errors. */
static int pump_verified(pump_t *p, uint64_t *budget) {
  feed_t *f = &p->feed;
  size_t contiguous;
  /* What the reader consumed only grows: ask the kernel only when the last answer leaves no room. */
  if (!p->finishing && feed_room(f, &contiguous) == 0) {
    int err = feed_refresh(f);
    if (err != 0) return pump_finish(p, err, "ioctl(FIONREAD)"), -1;
  }
  if (!p->finishing) {
    uint64_t room = p->max_bytes == NO_LIMIT ? NO_LIMIT : p->max_bytes - p->moved;
    uint64_t want = p->remaining < room ? p->remaining : room;
    if (want == 0) {
      if (p->remaining > 0 && p->max_bytes != NO_LIMIT) {
        int more = has_byte_at(p->file_fd, p->position);
        if (more < 0) return pump_finish(p, errno, "pread"), -1;
        p->overflow = more == 1;
      }
      p->finishing = true;
      return 1;
    }
    if (feed_room(f, &contiguous) > 0) {
      size_t n_want = (size_t)(want < contiguous ? want : contiguous);
      if (n_want > *budget) n_want = (size_t)*budget;
      unsigned char *dst = f->ring + f->filled % f->ring_size;
      ssize_t n;
      do n = pread(p->file_fd, dst, n_want, (off_t)p->position);
      while (n < 0 && errno == EINTR);
      if (n < 0) return pump_finish(p, errno, "pread"), -1;
      if (n == 0) {
        p->eof = true;
        p->finishing = true;
        return 1;
      }
      if (f->md != NULL && EVP_DigestUpdate(f->md, dst, (size_t)n) != 1) return pump_finish(p, EIO, "EVP_DigestUpdate"), -1;
      f->filled += (uint64_t)n;
      p->position += (uint64_t)n;
      p->remaining -= (uint64_t)n;
      p->moved += (uint64_t)n;
      *budget -= (uint64_t)n < *budget ? (uint64_t)n : *budget;
    }
  }
  uint64_t before = f->spliced;
  int done = feed_flush(f, p->finishing);
  if (done < 0) return pump_finish(p, -done, "vmsplice"), -1;
  if (p->finishing) return done == 1 ? (pump_finish(p, 0, NULL), -1) : 0;
  /* Room in neither the ring nor the pipe: wait. */
  return done == 0 && f->spliced == before && feed_room(f, &contiguous) == 0 ? 0 : 1;
}

static void pump_on_event(uv_poll_t *h, int status, int events) {
  (void)status;
  (void)events;
  pump_t *p = h->data;
  uint64_t budget = STEP_BYTES;
  /* POLLERR (the reader went away) is learnt from the next write's EPIPE. */
  while (!p->closing && budget > 0) {
    int go = p->verified ? pump_verified(p, &budget) : pump_splice(p, &budget);
    if (go <= 0) return;
  }
}

static pump_t *unwrap_pump(napi_env env, napi_callback_info info) {
  napi_value self;
  pump_t *p = NULL;
  if (!get_args(env, info, 0, NULL, &self)) return NULL;
  if (napi_unwrap(env, self, (void **)&p) != napi_ok || p == NULL) {
    napi_throw_type_error(env, "ERR_INVALID_THIS", "not a FilePump");
    return NULL;
  }
  return p;
}

static bool get_span(napi_env env, napi_value v, const char *what, uint64_t *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", what);
    return false;
  }
  if (d < 0) {
    *out = NO_LIMIT;
    return true;
  }
  int64_t n;
  if (!get_int(env, v, what, (int64_t)1 << 53, false, &n)) return false;
  *out = (uint64_t)n;
  return true;
}

/* new FilePump(fileFd, position, length | -1, pipeFd, algorithm | null, maxBytes | -1, callback): starts at once. */
static napi_value pump_new(napi_env env, napi_callback_info info) {
  napi_value argv[7], self, name;
  int file_fd, pipe_fd;
  int64_t position;
  uint64_t length, max_bytes;
  napi_valuetype t;
  uv_loop_t *loop;
  if (!get_args(env, info, 7, argv, &self) || !get_fd(env, argv[0], &file_fd) || !get_int(env, argv[1], "position", (int64_t)1 << 53, false, &position) ||
      !get_span(env, argv[2], "length", &length) || !get_fd(env, argv[3], &pipe_fd) || !get_span(env, argv[5], "maxBytes", &max_bytes))
    return NULL;
  const EVP_MD *md;
  if (!get_digest(env, argv[4], true, &md)) return NULL;
  if (napi_typeof(env, argv[6], &t) != napi_ok || t != napi_function) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "callback must be a function");
    return NULL;
  }
  CHECK(env, napi_get_uv_event_loop(env, &loop));
  pump_t *p = calloc(1, sizeof *p);
  if (p == NULL) {
    throw_errno(env, ENOMEM, "FilePump");
    return NULL;
  }
  p->env = env;
  p->file_fd = file_fd;
  p->pipe_fd = pipe_fd;
  p->position = (uint64_t)position;
  p->remaining = length;
  p->max_bytes = max_bytes;
  p->verified = md != NULL;
  p->feed.closed = true; /* nothing to release unless verified */
  if (p->verified) {
    p->feed.closed = false;
    int err = feed_init(&p->feed, pipe_fd, md);
    if (err != 0) {
      free(p);
      if (err > 0) throw_errno(env, err, "FilePump");
      else throw_internal(env, "cannot start the digest");
      return NULL;
    }
  }
  int err = uv_poll_init(loop, &p->handle, pipe_fd);
  if (err < 0) {
    feed_release(&p->feed);
    free(p);
    throw_errno(env, -err, "uv_poll_init");
    return NULL;
  }
  p->handle.data = p;
  if (napi_create_reference(env, argv[6], 1, &p->callback) != napi_ok ||
      napi_create_string_utf8(env, "LayerpipeFilePump", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, self, name, &p->async) != napi_ok || napi_create_reference(env, self, 1, &p->self) != napi_ok ||
      napi_add_async_cleanup_hook(env, pump_on_teardown, p, &p->teardown) != napi_ok ||
      napi_wrap(env, self, p, pump_finalize, NULL, NULL) != napi_ok) {
    /* Leaks the few JS references made so far: only on a Node-API failure. */
    p->closing = true;
    p->finalized = true;
    feed_release(&p->feed);
    uv_close((uv_handle_t *)&p->handle, pump_on_closed);
    throw_internal(env, "cannot create FilePump");
    return NULL;
  }
  p->running = true; /* the strong self reference keeps the pump alive while it runs */
  err = uv_poll_start(&p->handle, UV_WRITABLE, pump_on_event);
  if (err < 0) {
    pump_stop(p);
    throw_errno(env, -err, "uv_poll_start");
    return NULL;
  }
  return self;
}

/* bytes(): moved so far (read into the ring when verified), for progress. */
static napi_value pump_bytes(napi_env env, napi_callback_info info) {
  napi_value v;
  pump_t *p = unwrap_pump(env, info);
  if (p == NULL) return NULL;
  CHECK(env, napi_create_double(env, (double)p->moved, &v));
  return v;
}

/* cancel(): stops without calling back; idempotent. The file and pipe fds stay open. */
static napi_value pump_cancel(napi_env env, napi_callback_info info) {
  pump_t *p = unwrap_pump(env, info);
  if (p != NULL) pump_stop(p);
  return NULL;
}

bool define_file_pump_class(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {FN("bytes", pump_bytes), FN("cancel", pump_cancel)};
  napi_value cls;
  if (napi_define_class(env, "FilePump", NAPI_AUTO_LENGTH, pump_new, NULL, 2, methods, &cls) != napi_ok) return false;
  return napi_set_named_property(env, exports, "FilePump", cls) == napi_ok;
}
