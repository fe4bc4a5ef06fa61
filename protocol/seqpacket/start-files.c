/*
 * layerpipe_native: the two file calls bin/layerpipe makes before its bundle runs, here rather
 * than through node:fs, whose first stat and first read into a Buffer run its JavaScript for
 * the first time (~1 ms of a start on a small VM): a file's modification time, and its bytes.
 */
#include "native.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* mtimeMs(path): st_mtime in milliseconds, as fs.Stats computes it. */
static napi_value js_mtime_ms(napi_env env, napi_callback_info info) {
  napi_value argv[1], result;
  if (!get_args(env, info, 1, argv, NULL)) return NULL;
  char *path = get_path(env, argv[0], "stat");
  if (path == NULL) return NULL;
  struct stat st;
  int rc = stat(path, &st);
  int err = errno;
  free(path);
  if (rc < 0) {
    throw_errno(env, err, "stat");
    return NULL;
  }
  CHECK(env, napi_create_double(env, (double)st.st_mtim.tv_sec * 1e3 + (double)st.st_mtim.tv_nsec / 1e6, &result));
  return result;
}

/*
 * readFile(path): a regular file's bytes in a new Buffer, read(2) until its size at open or its
 * end (a file that shrank meanwhile gives what was there). Read rather than mapped: a mapping
 * of a file truncated under it (an upgrade writing over it) faults when touched.
 */
static napi_value js_read_file(napi_env env, napi_callback_info info) {
  napi_value argv[1], result;
  if (!get_args(env, info, 1, argv, NULL)) return NULL;
  char *path = get_path(env, argv[0], "open");
  if (path == NULL) return NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  int err = errno;
  free(path);
  if (fd < 0) {
    throw_errno(env, err, "open");
    return NULL;
  }
  struct stat st;
  err = fstat(fd, &st) < 0 ? errno : S_ISREG(st.st_mode) ? 0 : EINVAL; /* only a regular file has a size to read */
  if (err != 0) {
    close(fd);
    throw_errno(env, err, "fstat");
    return NULL;
  }
  size_t size = (size_t)st.st_size, done = 0;
  void *bytes;
  if (napi_create_buffer(env, size, &bytes, &result) != napi_ok) {
    close(fd);
    throw_internal(env, "napi_create_buffer failed");
    return NULL;
  }
  while (done < size) {
    ssize_t n = read(fd, (char *)bytes + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      err = errno;
      close(fd);
      throw_errno(env, err, "read");
      return NULL;
    }
    if (n == 0) break;
    done += (size_t)n;
  }
  close(fd);
  if (done < size && napi_create_buffer_copy(env, done, bytes, NULL, &result) != napi_ok) {
    throw_internal(env, "napi_create_buffer_copy failed");
    return NULL;
  }
  return result;
}

bool define_start_file_functions(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      FN("mtimeMs", js_mtime_ms),
      FN("readFile", js_read_file),
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props) == napi_ok;
}
