/*
 * BlobHasher: a blob's bytes hashed, and written to its file, on libuv's thread pool.
 *
 * `layerpipe copy` used to hash each network chunk on the main thread (node:crypto), which was
 * about a third of that thread's work: the thread that also receives every byte. Here a batch
 * of chunks is hashed with OpenSSL (Node's own, the same SHA-NI code as node:crypto) and written
 * with writev(2) in one pool job, so receiving and hashing run on two cores.
 *
 * One job at a time per hasher (the caller awaits each before the next, which keeps the bytes in
 * order); the chunks are held by references until the job completes.
 */
#include "native.h"
#include "pipe-feed.h"

#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>

typedef struct {
  EVP_MD_CTX *md;
  bool busy;
} hasher_t;

typedef struct {
  hasher_t *w;
  napi_ref self;
  napi_ref *chunks;
  struct iovec *iov;
  size_t count;
  int fd; /* -1: hash only */
  int err; /* errno of `syscall`, or -1 for a failed digest update */
  const char *syscall;
  napi_deferred deferred;
  napi_async_work work;
} job_t;

static void hasher_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  hasher_t *w = data;
  if (w->md != NULL) EVP_MD_CTX_free(w->md);
  free(w);
}

static hasher_t *unwrap_hasher(napi_env env, napi_callback_info info, size_t want, napi_value *argv, napi_value *self) {
  hasher_t *w = NULL;
  if (!get_args(env, info, want, argv, self)) return NULL;
  if (napi_unwrap(env, *self, (void **)&w) != napi_ok || w == NULL) {
    napi_throw_type_error(env, "ERR_INVALID_THIS", "not a BlobHasher");
    return NULL;
  }
  if (w->busy) {
    napi_throw_error(env, "ERR_BLOB_HASHER_BUSY", "BlobHasher has an update in flight");
    return NULL;
  }
  if (w->md == NULL) {
    napi_throw_error(env, "ERR_BLOB_HASHER_FINISHED", "BlobHasher has given its digest");
    return NULL;
  }
  return w;
}

/* new BlobHasher(algorithm) */
static napi_value hasher_new(napi_env env, napi_callback_info info) {
  napi_value argv[1], self;
  const EVP_MD *md;
  if (!get_args(env, info, 1, argv, &self) || !get_digest(env, argv[0], false, &md)) return NULL;
  hasher_t *w = calloc(1, sizeof *w);
  if (w == NULL) {
    throw_errno(env, ENOMEM, "BlobHasher");
    return NULL;
  }
  if ((w->md = EVP_MD_CTX_new()) == NULL || EVP_DigestInit_ex(w->md, md, NULL) != 1) {
    hasher_finalize(env, w, NULL);
    throw_internal(env, "cannot start the digest");
    return NULL;
  }
  if (napi_wrap(env, self, w, hasher_finalize, NULL, NULL) != napi_ok) {
    hasher_finalize(env, w, NULL);
    throw_internal(env, "cannot wrap BlobHasher");
    return NULL;
  }
  return self;
}

/* Writes all of iov[0..count), continuing short writes. */
static int write_all(int fd, struct iovec *iov, size_t count) {
  for (;;) {
    /* Empty chunks skipped first, so that a write taking no byte means no progress. */
    while (count > 0 && iov->iov_len == 0) {
      iov++;
      count--;
    }
    if (count == 0) return 0;
    ssize_t n = writev(fd, iov, count > IOV_MAX ? IOV_MAX : (int)count);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) return EIO;
    size_t done = (size_t)n;
    while (done > 0 && done >= iov->iov_len) {
      done -= iov->iov_len;
      iov++;
      count--;
    }
    if (done > 0) {
      iov->iov_base = (char *)iov->iov_base + done;
      iov->iov_len -= done;
    }
  }
}

static void execute(napi_env env, void *data) {
  (void)env;
  job_t *job = data;
  for (size_t i = 0; i < job->count; i++) {
    if (EVP_DigestUpdate(job->w->md, job->iov[i].iov_base, job->iov[i].iov_len) != 1) {
      job->err = -1;
      return;
    }
  }
  if (job->fd >= 0 && (job->err = write_all(job->fd, job->iov, job->count)) != 0) job->syscall = "writev";
}

static void free_job(napi_env env, job_t *job) {
  for (size_t i = 0; i < job->count; i++) {
    if (job->chunks[i] != NULL) napi_delete_reference(env, job->chunks[i]);
  }
  if (job->self != NULL) napi_delete_reference(env, job->self);
  free(job->chunks);
  free(job->iov);
  free(job);
}

static void complete(napi_env env, napi_status status, void *data) {
  job_t *job = data;
  job->w->busy = false;
  if (status == napi_ok && job->err == 0) {
    napi_value undefined;
    napi_get_undefined(env, &undefined);
    napi_resolve_deferred(env, job->deferred, undefined);
  } else {
    napi_value error = job->err > 0 ? errno_error(env, job->err, job->syscall) : NULL;
    if (error == NULL) {
      napi_value code, message;
      napi_create_string_utf8(env, "ERR_NATIVE", NAPI_AUTO_LENGTH, &code);
      napi_create_string_utf8(env, status == napi_ok ? "digest update failed" : "BlobHasher job cancelled", NAPI_AUTO_LENGTH, &message);
      napi_create_error(env, code, message, &error);
    }
    napi_reject_deferred(env, job->deferred, error);
  }
  napi_delete_async_work(env, job->work);
  free_job(env, job);
}

/* update(chunks, fd): hashes the chunks in order and, unless fd is -1, writes them at fd's offset; a promise. */
static napi_value hasher_update(napi_env env, napi_callback_info info) {
  napi_value argv[2], self, promise, name;
  uint32_t count;
  int32_t fd;
  bool is_array;
  hasher_t *w = unwrap_hasher(env, info, 2, argv, &self);
  if (w == NULL) return NULL;
  if (napi_get_value_int32(env, argv[1], &fd) != napi_ok || fd < -1) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "fd must be a descriptor or -1");
    return NULL;
  }
  if (napi_is_array(env, argv[0], &is_array) != napi_ok || !is_array) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "chunks must be an array of Uint8Array");
    return NULL;
  }
  CHECK(env, napi_get_array_length(env, argv[0], &count));
  job_t *job = calloc(1, sizeof *job);
  if (job == NULL || (count > 0 && ((job->chunks = calloc(count, sizeof *job->chunks)) == NULL || (job->iov = calloc(count, sizeof *job->iov)) == NULL))) {
    if (job != NULL) free_job(env, job);
    throw_errno(env, ENOMEM, "BlobHasher.update");
    return NULL;
  }
  job->w = w;
  job->fd = fd;
  for (uint32_t i = 0; i < count; i++) {
    napi_value chunk;
    uint8_t *bytes;
    size_t length;
    if (napi_get_element(env, argv[0], i, &chunk) != napi_ok || !get_bytes(env, chunk, "chunks must be an array of Uint8Array", &bytes, &length) ||
        napi_create_reference(env, chunk, 1, &job->chunks[job->count]) != napi_ok) {
      free_job(env, job);
      throw_internal(env, "cannot hold the chunks");
      return NULL;
    }
    job->iov[job->count].iov_base = bytes;
    job->iov[job->count].iov_len = length;
    job->count++;
  }
  if (napi_create_reference(env, self, 1, &job->self) != napi_ok || napi_create_promise(env, &job->deferred, &promise) != napi_ok ||
      napi_create_string_utf8(env, "layerpipe.BlobHasher", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, execute, complete, job, &job->work) != napi_ok) {
    free_job(env, job);
    throw_internal(env, "cannot queue the write");
    return NULL;
  }
  if (napi_queue_async_work(env, job->work) != napi_ok) {
    napi_delete_async_work(env, job->work);
    free_job(env, job);
    throw_internal(env, "cannot queue the write");
    return NULL;
  }
  w->busy = true;
  return promise;
}

/* digest(): the lowercase hex digest of every byte given; once, with no write in flight. */
static napi_value hasher_digest(napi_env env, napi_callback_info info) {
  napi_value self, v;
  hasher_t *w = unwrap_hasher(env, info, 0, NULL, &self);
  if (w == NULL) return NULL;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  char hex[2 * EVP_MAX_MD_SIZE + 1];
  int ok = EVP_DigestFinal_ex(w->md, md, &len);
  EVP_MD_CTX_free(w->md);
  w->md = NULL;
  if (ok != 1) {
    throw_internal(env, "digest failed");
    return NULL;
  }
  for (unsigned int i = 0; i < len; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
  hex[2 * len] = '\0';
  CHECK(env, napi_create_string_utf8(env, hex, 2 * len, &v));
  return v;
}

bool define_blob_hasher_class(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {
      {"update", NULL, hasher_update, NULL, NULL, NULL, napi_default_method, NULL},
      {"digest", NULL, hasher_digest, NULL, NULL, NULL, napi_default_method, NULL},
  };
  napi_value cls;
  return napi_define_class(env, "BlobHasher", NAPI_AUTO_LENGTH, hasher_new, NULL, sizeof methods / sizeof methods[0], methods, &cls) == napi_ok &&
         napi_set_named_property(env, exports, "BlobHasher", cls) == napi_ok;
}
