/*
 * layerpipe_native: the two file calls bin/layerpipe makes before its bundle runs, here rather
 * than through node:fs, whose first stat and first read into a Buffer compile its JavaScript
 * for that path (~1 ms of a start on a small VM): a file's modification time, and a file's
 * bytes mapped copy-on-write (page-cache pages, none zeroed or copied).
 */
#include "native.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
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

static void unmap_file(napi_env env, void *data, void *hint) {
  (void)env;
  munmap(data, (size_t)(uintptr_t)hint);
}

/* mapFile(path): the file's bytes as a Buffer over a private mapping, unmapped when collected. */
static napi_value js_map_file(napi_env env, napi_callback_info info) {
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
  err = fstat(fd, &st) < 0 ? errno : S_ISREG(st.st_mode) ? 0 : EINVAL; /* only a regular file maps */
  if (err != 0) {
    close(fd);
    throw_errno(env, err, "fstat");
    return NULL;
  }
  size_t size = (size_t)st.st_size;
  if (size == 0) {
    close(fd);
    CHECK(env, napi_create_buffer(env, 0, NULL, &result));
    return result;
  }
  void *bytes = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  err = errno;
  close(fd);
  if (bytes == MAP_FAILED) {
    throw_errno(env, err, "mmap");
    return NULL;
  }
  if (napi_create_external_buffer(env, size, bytes, unmap_file, (void *)(uintptr_t)size, &result) != napi_ok) {
    munmap(bytes, size);
    throw_internal(env, "napi_create_external_buffer failed");
    return NULL;
  }
  return result;
}

bool define_start_file_functions(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      FN("mtimeMs", js_mtime_ms),
      FN("mapFile", js_map_file),
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props) == napi_ok;
}
