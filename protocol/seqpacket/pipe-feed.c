/*
 * Moving blob bytes into a pipe without a pass through JavaScript buffers and write(2).
 *
 * - spliceFile: file -> pipe with splice(2): page-cache pages are referenced, never copied
 *   (raw local blobs, which need no hashing).
 * - PipeFeed: a ring of anonymous memory per transfer, filled by pread(2) (local blobs) or from
 *   JavaScript chunks (network blobs), hashed there with OpenSSL (Node's own, hence the same
 *   SHA-NI code as node:crypto), then handed to the pipe with vmsplice(2), which references
 *   the ring's pages instead of copying them.
 *
 * Buffer ownership with vmsplice (no SPLICE_F_GIFT): the pipe holds references to ring pages
 * until the reader consumes them, and sees any later write to them. So a ring byte is
 * rewritten only once the reader is past it (bytes spliced minus FIONREAD), and at the end the
 * ring is unmapped, never freed to an allocator: pages still in the pipe stay alive, owned by
 * the pipe alone, and nothing can reach them again.
 *
 * Every call is non-blocking towards the pipe (EAGAIN is reported, never waited for: the
 * caller waits with a Poller). Reading a regular file may still wait for the disk.
 */
#include "native.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

/* Most bytes one spliceFile call moves, so one transfer cannot hold the event loop long. */
#define SPLICE_BUDGET (8u * 1024u * 1024u)
#define MIN_RING (256u * 1024u)
#define MAX_RING (8u * 1024u * 1024u)

typedef struct {
  int pipe_fd;
  unsigned char *ring;
  size_t ring_size, page;
  /* Stream offsets: bytes put in the ring, handed to the pipe, and read by the consumer. */
  uint64_t filled, spliced, consumed;
  EVP_MD_CTX *md; /* NULL when not hashing */
  bool closed;
} feed_t;

static bool get_u64(napi_env env, napi_value v, const char *what, uint64_t *out) {
  int64_t n;
  if (!get_int(env, v, what, (int64_t)1 << 53, false, &n)) return false;
  *out = (uint64_t)n;
  return true;
}

static bool get_chunk(napi_env env, napi_value v, uint8_t **data, size_t *length) {
  bool is_typed = false;
  napi_typedarray_type type;
  void *base = NULL;
  napi_value buffer;
  size_t offset = 0;
  if (napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, v, &type, length, &base, &buffer, &offset) != napi_ok || type != napi_uint8_array) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "chunk must be a Uint8Array");
    return false;
  }
  *data = base;
  return true;
}

static napi_value number(napi_env env, double d) {
  napi_value v;
  CHECK(env, napi_create_double(env, d, &v));
  return v;
}

/* spliceFile(fileFd, position, length, pipeFd): bytes moved (> 0), 0 when the pipe is full, -1 at the file's end. */
static napi_value js_splice_file(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int file_fd, pipe_fd;
  uint64_t position, length;
  if (!get_args(env, info, 4, argv, NULL) || !get_fd(env, argv[0], &file_fd) || !get_u64(env, argv[1], "position", &position) ||
      !get_u64(env, argv[2], "length", &length) || !get_fd(env, argv[3], &pipe_fd))
    return NULL;
  loff_t off = (loff_t)position;
  uint64_t moved = 0;
  while (moved < length && moved < SPLICE_BUDGET) {
    size_t want = (size_t)(length - moved < SPLICE_BUDGET ? length - moved : SPLICE_BUDGET);
    ssize_t n = splice(file_fd, &off, pipe_fd, NULL, want, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
    if (n > 0) {
      moved += (uint64_t)n;
      continue;
    }
    if (n == 0) return number(env, moved > 0 ? (double)moved : -1);
    if (errno == EINTR) continue;
    if (errno == EAGAIN) break;
    throw_errno(env, errno, "splice");
    return NULL;
  }
  return number(env, (double)moved);
}

/* ---------- PipeFeed ---------- */

static void feed_release(feed_t *f) {
  if (f->closed) return;
  f->closed = true;
  if (f->ring != NULL) munmap(f->ring, f->ring_size);
  f->ring = NULL;
  if (f->md != NULL) EVP_MD_CTX_free(f->md);
  f->md = NULL;
}

static void feed_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  feed_release(data);
  free(data);
}

static feed_t *unwrap_feed(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  napi_value self;
  feed_t *f = NULL;
  if (!get_args(env, info, want, argv, &self)) return NULL;
  if (napi_unwrap(env, self, (void **)&f) != napi_ok || f == NULL) {
    napi_throw_type_error(env, "ERR_INVALID_THIS", "not a PipeFeed");
    return NULL;
  }
  if (f->closed) {
    napi_throw_error(env, "ERR_FEED_CLOSED", "PipeFeed is closed");
    return NULL;
  }
  return f;
}

/* new PipeFeed(pipeFd, algorithm | null): the ring is twice the pipe's buffer. */
static napi_value feed_new(napi_env env, napi_callback_info info) {
  napi_value argv[2], self;
  int fd;
  napi_valuetype t;
  if (!get_args(env, info, 2, argv, &self) || !get_fd(env, argv[0], &fd)) return NULL;
  const EVP_MD *md = NULL;
  if (napi_typeof(env, argv[1], &t) != napi_ok) return NULL;
  if (t == napi_string) {
    char name[16];
    size_t len;
    if (napi_get_value_string_utf8(env, argv[1], name, sizeof name, &len) != napi_ok) return NULL;
    md = EVP_get_digestbyname(name);
    if (md == NULL) {
      napi_throw_range_error(env, "ERR_INVALID_ARG_VALUE", "unknown digest algorithm");
      return NULL;
    }
  } else if (t != napi_null) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "algorithm must be a string or null");
    return NULL;
  }
  int pipe_size = fcntl(fd, F_GETPIPE_SZ);
  if (pipe_size < 0) {
    throw_errno(env, errno, "fcntl(F_GETPIPE_SZ)");
    return NULL;
  }
  feed_t *f = calloc(1, sizeof *f);
  if (f == NULL) {
    throw_errno(env, ENOMEM, "PipeFeed");
    return NULL;
  }
  f->pipe_fd = fd;
  f->page = (size_t)sysconf(_SC_PAGESIZE);
  size_t ring = (size_t)pipe_size * 2;
  if (ring < MIN_RING) ring = MIN_RING;
  if (ring > MAX_RING) ring = MAX_RING;
  f->ring_size = (ring + f->page - 1) / f->page * f->page;
  f->ring = mmap(NULL, f->ring_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (f->ring == MAP_FAILED) {
    int err = errno;
    free(f);
    throw_errno(env, err, "mmap");
    return NULL;
  }
  if (md != NULL && ((f->md = EVP_MD_CTX_new()) == NULL || EVP_DigestInit_ex(f->md, md, NULL) != 1)) {
    feed_release(f);
    free(f);
    throw_internal(env, "cannot start the digest");
    return NULL;
  }
  if (napi_wrap(env, self, f, feed_finalize, NULL, NULL) != napi_ok) {
    feed_release(f);
    free(f);
    throw_internal(env, "cannot wrap PipeFeed");
    return NULL;
  }
  return self;
}

/* What the consumer has read: everything spliced but what the pipe still holds. */
static bool feed_refresh(napi_env env, feed_t *f) {
  int queued = 0;
  if (ioctl(f->pipe_fd, FIONREAD, &queued) < 0) {
    throw_errno(env, errno, "ioctl(FIONREAD)");
    return false;
  }
  f->consumed = f->spliced - (uint64_t)queued;
  return true;
}

/* Ring bytes free for new data, and how many of them are contiguous from the fill point. */
static size_t feed_room(const feed_t *f, size_t *contiguous) {
  size_t free_bytes = f->ring_size - (size_t)(f->filled - f->consumed);
  size_t at = (size_t)(f->filled % f->ring_size);
  size_t to_wrap = f->ring_size - at;
  *contiguous = free_bytes < to_wrap ? free_bytes : to_wrap;
  return free_bytes;
}

static bool feed_hash(napi_env env, feed_t *f, const unsigned char *p, size_t n) {
  if (f->md != NULL && EVP_DigestUpdate(f->md, p, n) != 1) {
    throw_internal(env, "digest update failed");
    return false;
  }
  return true;
}

/* vmsplices [spliced, limit): whole pages unless `final`. 1 when all of it is in the pipe, 0 when the pipe is full, -1 thrown. */
static int feed_flush(napi_env env, feed_t *f, bool final) {
  uint64_t limit = final ? f->filled : f->filled / f->page * f->page;
  while (f->spliced < limit) {
    struct iovec iov[2];
    size_t at = (size_t)(f->spliced % f->ring_size);
    size_t left = (size_t)(limit - f->spliced);
    size_t first = f->ring_size - at < left ? f->ring_size - at : left;
    iov[0].iov_base = f->ring + at;
    iov[0].iov_len = first;
    iov[1].iov_base = f->ring;
    iov[1].iov_len = left - first;
    ssize_t n = vmsplice(f->pipe_fd, iov, iov[1].iov_len > 0 ? 2 : 1, SPLICE_F_NONBLOCK);
    if (n > 0) {
      f->spliced += (uint64_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return 0;
    throw_errno(env, n < 0 ? errno : EIO, "vmsplice");
    return -1;
  }
  return 1;
}

/* push(chunk): copies what fits into the ring, hashes it, hands whole pages to the pipe; bytes taken (may be fewer). */
static napi_value feed_push(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  uint8_t *data;
  size_t length, contiguous, taken = 0;
  feed_t *f = unwrap_feed(env, info, 1, argv);
  if (f == NULL || !get_chunk(env, argv[0], &data, &length) || !feed_refresh(env, f)) return NULL;
  while (taken < length && feed_room(f, &contiguous) > 0) {
    size_t n = length - taken < contiguous ? length - taken : contiguous;
    unsigned char *dst = f->ring + f->filled % f->ring_size;
    memcpy(dst, data + taken, n);
    if (!feed_hash(env, f, dst, n)) return NULL;
    f->filled += n;
    taken += n;
  }
  if (feed_flush(env, f, false) < 0) return NULL;
  return number(env, (double)taken);
}

/* readFile(fd, position, maxLength): reads into the ring like push; bytes read, 0 when the ring is full, -1 at the file's end. */
static napi_value feed_read_file(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int fd;
  uint64_t position, max_length;
  size_t contiguous;
  feed_t *f = unwrap_feed(env, info, 3, argv);
  if (f == NULL || !get_fd(env, argv[0], &fd) || !get_u64(env, argv[1], "position", &position) ||
      !get_u64(env, argv[2], "maxLength", &max_length) || !feed_refresh(env, f))
    return NULL;
  double result = 0;
  if (feed_room(f, &contiguous) > 0 && max_length > 0) {
    size_t want = max_length < contiguous ? (size_t)max_length : contiguous;
    unsigned char *dst = f->ring + f->filled % f->ring_size;
    ssize_t n;
    do n = pread(fd, dst, want, (off_t)position);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
      throw_errno(env, errno, "pread");
      return NULL;
    }
    if (n == 0) return number(env, -1);
    if (!feed_hash(env, f, dst, (size_t)n)) return NULL;
    f->filled += (uint64_t)n;
    result = (double)n;
  }
  if (feed_flush(env, f, false) < 0) return NULL;
  return number(env, result);
}

/* flush(final): hands queued bytes to the pipe; true once all are in it (a partial last page only when final). */
static napi_value feed_flush_js(napi_env env, napi_callback_info info) {
  napi_value argv[1], v;
  bool final;
  feed_t *f = unwrap_feed(env, info, 1, argv);
  if (f == NULL || !get_bool(env, argv[0], &final) || !feed_refresh(env, f)) return NULL;
  int done = feed_flush(env, f, final);
  if (done < 0) return NULL;
  CHECK(env, napi_get_boolean(env, done == 1, &v));
  return v;
}

/* digest(): the lowercase hex digest of every byte taken; once. */
static napi_value feed_digest(napi_env env, napi_callback_info info) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  char hex[EVP_MAX_MD_SIZE * 2 + 1];
  napi_value v;
  feed_t *f = unwrap_feed(env, info, 0, NULL);
  if (f == NULL) return NULL;
  if (f->md == NULL || EVP_DigestFinal_ex(f->md, md, &len) != 1) {
    throw_internal(env, "no digest to take");
    return NULL;
  }
  EVP_MD_CTX_free(f->md);
  f->md = NULL;
  for (unsigned int i = 0; i < len; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
  CHECK(env, napi_create_string_latin1(env, hex, len * 2, &v));
  return v;
}

static napi_value feed_close(napi_env env, napi_callback_info info) {
  napi_value self;
  feed_t *f = NULL;
  if (!get_args(env, info, 0, NULL, &self)) return NULL;
  if (napi_unwrap(env, self, (void **)&f) == napi_ok && f != NULL) feed_release(f);
  return NULL;
}

bool define_pipe_feed_functions(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {
      FN("push", feed_push), FN("readFile", feed_read_file), FN("flush", feed_flush_js),
      FN("digest", feed_digest), FN("close", feed_close),
  };
  napi_value cls;
  if (napi_define_class(env, "PipeFeed", NAPI_AUTO_LENGTH, feed_new, NULL, sizeof methods / sizeof methods[0], methods, &cls) != napi_ok)
    return false;
  napi_property_descriptor props[] = {
      FN("spliceFile", js_splice_file),
      {"PipeFeed", NULL, NULL, NULL, NULL, cls, napi_enumerable, NULL},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props) == napi_ok;
}
