/*
 * The transfer ring: moving blob bytes into a pipe without write(2) from JavaScript buffers.
 *
 * A ring of anonymous memory per transfer, filled from JavaScript chunks (PipeFeed, network
 * blobs) or by pread(2) (FilePump, file-pump.c), hashed there with OpenSSL (Node's own, hence
 * the same SHA-NI code as node:crypto), then handed to the pipe with vmsplice(2), which
 * references the ring's pages instead of copying them.
 *
 * Buffer ownership with vmsplice (no SPLICE_F_GIFT): the pipe holds references to ring pages
 * until the reader consumes them, and sees any later write to them. So a ring byte is
 * rewritten only once the reader is past it (bytes spliced minus FIONREAD), and at the end the
 * ring is unmapped, never freed to an allocator: pages still in the pipe stay alive, owned by
 * the pipe alone, and nothing can reach them again.
 *
 * Every call is non-blocking towards the pipe: EAGAIN is reported, never waited for.
 */
#include "pipe-feed.h"

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

#define MIN_RING (256u * 1024u)
#define MAX_RING (8u * 1024u * 1024u)

static napi_value number(napi_env env, double d) {
  napi_value v;
  CHECK(env, napi_create_double(env, d, &v));
  return v;
}

bool get_digest(napi_env env, napi_value v, bool nullable, const EVP_MD **md) {
  napi_valuetype t;
  char name[16];
  size_t len;
  *md = NULL;
  if (napi_typeof(env, v, &t) != napi_ok) return false;
  if (t == napi_null && nullable) return true;
  if (t != napi_string) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", nullable ? "algorithm must be a string or null" : "algorithm must be a string");
    return false;
  }
  if (napi_get_value_string_utf8(env, v, name, sizeof name, &len) != napi_ok || (*md = EVP_get_digestbyname(name)) == NULL) {
    napi_throw_range_error(env, "ERR_INVALID_ARG_VALUE", "unknown digest algorithm");
    return false;
  }
  return true;
}

/* ---------- PipeFeed ---------- */

void feed_release(feed_t *f) {
  if (f->closed) return;
  f->closed = true;
  if (f->ring != NULL) munmap(f->ring, f->ring_size);
  f->ring = NULL;
  if (f->md != NULL) EVP_MD_CTX_free(f->md);
  f->md = NULL;
}

int feed_init(feed_t *f, int pipe_fd, const EVP_MD *md) {
  int pipe_size = fcntl(pipe_fd, F_GETPIPE_SZ);
  if (pipe_size < 0) return errno;
  f->pipe_fd = pipe_fd;
  f->page = (size_t)sysconf(_SC_PAGESIZE);
  size_t ring = (size_t)pipe_size * 2;
  if (ring < MIN_RING) ring = MIN_RING;
  if (ring > MAX_RING) ring = MAX_RING;
  f->ring_size = (ring + f->page - 1) / f->page * f->page;
  f->ring = mmap(NULL, f->ring_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (f->ring == MAP_FAILED) {
    f->ring = NULL;
    return errno;
  }
  if (md != NULL && ((f->md = EVP_MD_CTX_new()) == NULL || EVP_DigestInit_ex(f->md, md, NULL) != 1)) {
    feed_release(f);
    return -1;
  }
  return 0;
}

bool feed_take_digest(feed_t *f, char *hex) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (f->md == NULL || EVP_DigestFinal_ex(f->md, md, &len) != 1) return false;
  EVP_MD_CTX_free(f->md);
  f->md = NULL;
  for (unsigned int i = 0; i < len; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
  hex[2 * len] = '\0';
  return true;
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
  if (!get_args(env, info, 2, argv, &self) || !get_fd(env, argv[0], &fd)) return NULL;
  const EVP_MD *md;
  if (!get_digest(env, argv[1], true, &md)) return NULL;
  feed_t *f = calloc(1, sizeof *f);
  if (f == NULL) {
    throw_errno(env, ENOMEM, "PipeFeed");
    return NULL;
  }
  int err = feed_init(f, fd, md);
  if (err != 0) {
    free(f);
    if (err > 0) throw_errno(env, err, "PipeFeed");
    else throw_internal(env, "cannot start the digest");
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
int feed_refresh(feed_t *f) {
  int queued = 0;
  if (ioctl(f->pipe_fd, FIONREAD, &queued) < 0) return errno;
  f->consumed = f->spliced - (uint64_t)queued;
  return 0;
}

static bool refresh_or_throw(napi_env env, feed_t *f) {
  int err = feed_refresh(f);
  if (err != 0) throw_errno(env, err, "ioctl(FIONREAD)");
  return err == 0;
}

/* Ring bytes free for new data, and how many of them are contiguous from the fill point. */
size_t feed_room(const feed_t *f, size_t *contiguous) {
  size_t free_bytes = f->ring_size - (size_t)(f->filled - f->consumed);
  size_t at = (size_t)(f->filled % f->ring_size);
  size_t to_wrap = f->ring_size - at;
  *contiguous = free_bytes < to_wrap ? free_bytes : to_wrap;
  return free_bytes;
}

bool feed_hash(napi_env env, feed_t *f, const unsigned char *p, size_t n) {
  if (f->md != NULL && EVP_DigestUpdate(f->md, p, n) != 1) {
    throw_internal(env, "digest update failed");
    return false;
  }
  return true;
}

/* vmsplices [spliced, limit): whole pages unless `final`. 1 when all of it is in the pipe, 0 when the pipe is full, -1 thrown. */
int feed_flush(feed_t *f, bool final) {
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
    return n < 0 ? -errno : -EIO;
  }
  return 1;
}

static int flush_or_throw(napi_env env, feed_t *f, bool final) {
  int done = feed_flush(f, final);
  if (done < 0) throw_errno(env, -done, "vmsplice");
  return done;
}

/* push(chunk): copies what fits into the ring, hashes it, hands whole pages to the pipe; bytes taken (may be fewer). */
static napi_value feed_push(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  uint8_t *data;
  size_t length, contiguous, taken = 0;
  feed_t *f = unwrap_feed(env, info, 1, argv);
  if (f == NULL || !get_bytes(env, argv[0], "chunk must be a Uint8Array", &data, &length)) return NULL;
  /* What the reader consumed only grows: ask the kernel (a system call) only when the last answer leaves too little room. */
  if (feed_room(f, &contiguous) < length && !refresh_or_throw(env, f)) return NULL;
  while (taken < length && feed_room(f, &contiguous) > 0) {
    size_t n = length - taken < contiguous ? length - taken : contiguous;
    unsigned char *dst = f->ring + f->filled % f->ring_size;
    memcpy(dst, data + taken, n);
    if (!feed_hash(env, f, dst, n)) return NULL;
    f->filled += n;
    taken += n;
  }
  if (flush_or_throw(env, f, false) < 0) return NULL;
  return number(env, (double)taken);
}

/* flush(final): hands queued bytes to the pipe; true once all are in it (a partial last page only when final). */
static napi_value feed_flush_js(napi_env env, napi_callback_info info) {
  napi_value argv[1], v;
  bool final;
  feed_t *f = unwrap_feed(env, info, 1, argv);
  if (f == NULL || !get_bool(env, argv[0], &final)) return NULL;
  int done = flush_or_throw(env, f, final);
  if (done < 0) return NULL;
  CHECK(env, napi_get_boolean(env, done == 1, &v));
  return v;
}

/* digest(): the lowercase hex digest of every byte taken; once. */
static napi_value feed_digest(napi_env env, napi_callback_info info) {
  char hex[EVP_MAX_MD_SIZE * 2 + 1];
  napi_value v;
  feed_t *f = unwrap_feed(env, info, 0, NULL);
  if (f == NULL) return NULL;
  if (!feed_take_digest(f, hex)) {
    throw_internal(env, "no digest to take");
    return NULL;
  }
  CHECK(env, napi_create_string_latin1(env, hex, NAPI_AUTO_LENGTH, &v));
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
      FN("push", feed_push), FN("flush", feed_flush_js),
      FN("digest", feed_digest), FN("close", feed_close),
  };
  napi_value cls;
  if (napi_define_class(env, "PipeFeed", NAPI_AUTO_LENGTH, feed_new, NULL, sizeof methods / sizeof methods[0], methods, &cls) != napi_ok)
    return false;
  napi_property_descriptor props[] = {
      {"PipeFeed", NULL, NULL, NULL, NULL, cls, napi_enumerable, NULL},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props) == napi_ok;
}
