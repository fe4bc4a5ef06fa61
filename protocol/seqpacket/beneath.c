/*
 * Opening files strictly below a directory descriptor, for the local transports (oci:, dir:).
 *
 * Checking a path and then opening it by name is a race: another process can swap any
 * directory on the way for a symlink in between. Here the path is resolved by the kernel
 * relative to a directory fd, following no symlink at any component:
 *   - openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS) where the kernel
 *     has it (Linux 5.6+);
 *   - else one openat(O_PATH | O_NOFOLLOW) per directory component, checked to be a directory
 *     by fstat of the fd it gave, and a final openat(O_NOFOLLOW). Each step is relative to
 *     the fd of the one before, so a swap after a step cannot redirect it.
 * Files are opened O_NONBLOCK so that a FIFO or a device cannot block the open; anything but
 * a regular file is closed again and reported by its kind. Both calls run on the libuv
 * thread pool: a slow or hung filesystem never stalls the event loop.
 */
#include "native.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_openat2
#define SYS_openat2 437 /* the same number on every architecture since the syscall tables were unified */
#endif

/* Flags of the final open: never follow, never block on a FIFO, never take a controlling tty. */
#define FILE_FLAGS (O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)
#define BENEATH_RESOLVE (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)
/* openat2 answers EAGAIN when a concurrent rename may have raced its lookup; it is worth retrying. */
#define OPENAT2_RETRIES 16

typedef enum { RESOLVER_AUTO, RESOLVER_OPENAT2, RESOLVER_WALK } resolver_t;

/* 0 = not known yet, 1 = openat2 works, -1 = ENOSYS seen. Shared by the pool's threads. */
static int openat2_state = 0;

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  bool directory; /* openDirectory rather than openBeneath */
  int dirfd;
  char *path;
  resolver_t resolver;
  /* results */
  int fd;
  int err;
  const char *syscall;
  const char *kind;
  int64_t size;
  bool used_openat2;
} job_t;

static int sys_openat2(int dirfd, const char *path, uint64_t flags, uint64_t resolve) {
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = flags;
  how.resolve = resolve;
  int fd;
  int tries = 0;
  do {
    fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
  } while (fd < 0 && (errno == EINTR || (errno == EAGAIN && ++tries < OPENAT2_RETRIES)));
  return fd;
}

/* Whether `p` (of length n) is "..". */
static bool is_dotdot(const char *p, size_t n) {
  return n == 2 && p[0] == '.' && p[1] == '.';
}

/*
 * The fallback: walks `rel` one component at a time. Intermediate components are opened
 * O_PATH (no read access or side effect needed) and must be real directories; the last is
 * opened with FILE_FLAGS. A symlink anywhere gives ELOOP, as RESOLVE_NO_SYMLINKS does, and a
 * non-directory in the middle ENOTDIR.
 */
static int walk_beneath(int dirfd, char *rel) {
  int cur = dirfd;
  char *comp = rel;
  for (;;) {
    char *slash = strchr(comp, '/');
    if (slash == NULL) break;
    *slash = '\0';
    if (comp[0] != '\0' && strcmp(comp, ".") != 0) {
      /* O_PATH | O_NOFOLLOW opens whatever is there, a symlink included, without following
       * it; fstat of that very fd then says what it was, with no second lookup to race. */
      int next;
      do {
        next = openat(cur, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
      } while (next < 0 && errno == EINTR);
      int e = next < 0 ? errno : 0;
      struct stat st;
      if (e == 0 && fstat(next, &st) < 0) e = errno;
      else if (e == 0 && !S_ISDIR(st.st_mode)) e = S_ISLNK(st.st_mode) ? ELOOP : ENOTDIR;
      if (cur != dirfd) close(cur);
      if (e != 0) {
        if (next >= 0) close(next);
        errno = e;
        return -1;
      }
      cur = next;
    }
    comp = slash + 1;
  }
  /* A trailing "/" or "." names the directory reached: open it, to be refused as one. */
  const char *last = comp[0] == '\0' ? "." : comp;
  int fd;
  do {
    fd = openat(cur, last, FILE_FLAGS);
  } while (fd < 0 && errno == EINTR);
  int e = errno;
  if (cur != dirfd) close(cur);
  errno = e;
  return fd;
}

static const char *kind_of(mode_t mode) {
  if (S_ISREG(mode)) return "file";
  if (S_ISDIR(mode)) return "directory";
  if (S_ISFIFO(mode)) return "fifo";
  if (S_ISCHR(mode)) return "character-device";
  if (S_ISBLK(mode)) return "block-device";
  if (S_ISSOCK(mode)) return "socket";
  if (S_ISLNK(mode)) return "symlink";
  return "other";
}

static void fail(job_t *job, int err, const char *syscall) {
  job->err = err;
  job->syscall = syscall;
}

static void open_beneath(job_t *job) {
  const char *rel = job->path;
  size_t len = strlen(rel);
  if (len == 0) {
    fail(job, ENOENT, "openat");
    return;
  }
  /* Refuse what would leave the directory before either resolver sees it, so both agree. */
  if (rel[0] == '/') {
    fail(job, EXDEV, "openat");
    return;
  }
  for (const char *p = rel; *p != '\0';) {
    size_t n = strcspn(p, "/");
    if (is_dotdot(p, n)) {
      fail(job, EXDEV, "openat");
      return;
    }
    p += n + (p[n] == '/');
  }

  int fd = -1;
  bool walk = job->resolver == RESOLVER_WALK || (job->resolver == RESOLVER_AUTO && __atomic_load_n(&openat2_state, __ATOMIC_RELAXED) < 0);
  if (!walk) {
    fd = sys_openat2(job->dirfd, rel, FILE_FLAGS, BENEATH_RESOLVE);
    if (fd >= 0) {
      __atomic_store_n(&openat2_state, 1, __ATOMIC_RELAXED);
      job->used_openat2 = true;
    } else if (job->resolver == RESOLVER_AUTO && (errno == ENOSYS || errno == EPERM)) {
      /* ENOSYS: an old kernel, remembered. EPERM: some seccomp filters refuse unknown calls so. */
      if (errno == ENOSYS) __atomic_store_n(&openat2_state, -1, __ATOMIC_RELAXED);
      walk = true;
    } else {
      job->used_openat2 = true;
      fail(job, errno, "openat2");
      return;
    }
  }
  if (walk) {
    fd = walk_beneath(job->dirfd, job->path); /* writes NULs into its own copy of the path */
    if (fd < 0) {
      fail(job, errno, "openat");
      return;
    }
  }

  struct stat st;
  if (fstat(fd, &st) < 0) {
    fail(job, errno, "fstat");
    close(fd);
    return;
  }
  job->kind = kind_of(st.st_mode);
  job->size = (int64_t)st.st_size;
  if (!S_ISREG(st.st_mode)) {
    close(fd); /* never handed out: the caller refuses it by its kind */
    return;
  }
  /* O_NONBLOCK was for the open; reads of a regular file should not see it. */
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0) {
    fail(job, errno, "fcntl");
    close(fd);
    return;
  }
  job->fd = fd;
}

static void execute(napi_env env, void *data) {
  (void)env;
  job_t *job = data;
  if (!job->directory) {
    open_beneath(job);
    return;
  }
  /* The directory the user named: symlinks in that path are theirs to use. O_PATH opens nothing. */
  int fd;
  do {
    fd = open(job->path, O_PATH | O_DIRECTORY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    fail(job, errno, "open");
    return;
  }
  job->fd = fd;
  job->kind = "directory";
}

static napi_value result_of(napi_env env, job_t *job) {
  if (job->directory) {
    napi_value fd;
    return napi_create_int32(env, job->fd, &fd) == napi_ok ? fd : NULL;
  }
  napi_value obj, v;
  if (napi_create_object(env, &obj) != napi_ok) return NULL;
  if (napi_create_int32(env, job->fd, &v) != napi_ok || napi_set_named_property(env, obj, "fd", v) != napi_ok) return NULL;
  if (napi_create_string_utf8(env, job->kind, NAPI_AUTO_LENGTH, &v) != napi_ok || napi_set_named_property(env, obj, "kind", v) != napi_ok) return NULL;
  if (napi_create_int64(env, job->size, &v) != napi_ok || napi_set_named_property(env, obj, "size", v) != napi_ok) return NULL;
  if (napi_create_string_utf8(env, job->used_openat2 ? "openat2" : "walk", NAPI_AUTO_LENGTH, &v) != napi_ok ||
      napi_set_named_property(env, obj, "resolver", v) != napi_ok) {
    return NULL;
  }
  return obj;
}

static void complete(napi_env env, napi_status status, void *data) {
  job_t *job = data;
  napi_value value = NULL;
  if (status == napi_ok && job->err == 0) value = result_of(env, job);
  if (value != NULL) {
    napi_resolve_deferred(env, job->deferred, value);
  } else {
    /* Nobody will own the descriptor: close it rather than leak it. */
    if (job->fd >= 0) close(job->fd);
    napi_value error = job->err != 0 ? errno_error(env, job->err, job->syscall) : NULL;
    if (error == NULL) napi_create_error(env, NULL, NULL, &error);
    if (error == NULL) napi_get_undefined(env, &error);
    napi_reject_deferred(env, job->deferred, error);
  }
  napi_delete_async_work(env, job->work);
  free(job->path);
  free(job);
}

/* Queues `job` on the pool and returns its promise; frees it on failure. */
static napi_value queue(napi_env env, job_t *job, const char *name) {
  napi_value promise, resource_name;
  if (napi_create_promise(env, &job->deferred, &promise) != napi_ok ||
      napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource_name) != napi_ok ||
      napi_create_async_work(env, NULL, resource_name, execute, complete, job, &job->work) != napi_ok) {
    free(job->path);
    free(job);
    throw_internal(env, "cannot queue the open");
    return NULL;
  }
  if (napi_queue_async_work(env, job->work) != napi_ok) {
    napi_delete_async_work(env, job->work);
    free(job->path);
    free(job);
    throw_internal(env, "cannot queue the open");
    return NULL;
  }
  return promise;
}

static job_t *new_job(napi_env env) {
  job_t *job = calloc(1, sizeof *job);
  if (job == NULL) throw_internal(env, "out of memory");
  else job->fd = job->dirfd = -1;
  return job;
}

/* openDirectory(path): Promise<fd> */
static napi_value js_open_directory(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv, NULL)) return NULL;
  char *path = get_path(env, argv[0], "open");
  if (path == NULL) return NULL;
  job_t *job = new_job(env);
  if (job == NULL) {
    free(path);
    return NULL;
  }
  job->directory = true;
  job->path = path;
  return queue(env, job, "layerpipe.openDirectory");
}

/* openBeneath(dirFd, relPath, resolver): Promise<{fd, kind, size, resolver}> */
static napi_value js_open_beneath(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int dirfd;
  char mode[16];
  size_t mode_len;
  if (!get_args(env, info, 3, argv, NULL) || !get_fd(env, argv[0], &dirfd)) return NULL;
  if (napi_get_value_string_utf8(env, argv[2], mode, sizeof mode, &mode_len) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "resolver must be a string");
    return NULL;
  }
  resolver_t resolver;
  if (strcmp(mode, "auto") == 0) resolver = RESOLVER_AUTO;
  else if (strcmp(mode, "openat2") == 0) resolver = RESOLVER_OPENAT2;
  else if (strcmp(mode, "walk") == 0) resolver = RESOLVER_WALK;
  else {
    napi_throw_range_error(env, "ERR_INVALID_ARG_VALUE", "resolver must be 'auto', 'openat2' or 'walk'");
    return NULL;
  }
  char *path = get_path(env, argv[1], "open");
  if (path == NULL) return NULL;
  job_t *job = new_job(env);
  if (job == NULL) {
    free(path);
    return NULL;
  }
  job->dirfd = dirfd;
  job->path = path;
  job->resolver = resolver;
  return queue(env, job, "layerpipe.openBeneath");
}

/* kernelHasOpenat2(): one probe, then the remembered answer. */
static napi_value js_kernel_has_openat2(napi_env env, napi_callback_info info) {
  (void)info;
  int state = __atomic_load_n(&openat2_state, __ATOMIC_RELAXED);
  if (state == 0) {
    int fd = sys_openat2(AT_FDCWD, "/", O_PATH | O_CLOEXEC, 0);
    if (fd >= 0) {
      close(fd);
      state = 1;
    } else {
      state = errno == ENOSYS ? -1 : 0;
    }
    if (state != 0) __atomic_store_n(&openat2_state, state, __ATOMIC_RELAXED);
  }
  napi_value result;
  CHECK(env, napi_get_boolean(env, state > 0, &result));
  return result;
}

bool define_beneath_functions(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      FN("openDirectory", js_open_directory),
      FN("openBeneath", js_open_beneath),
      FN("kernelHasOpenat2", js_kernel_has_openat2),
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props) == napi_ok;
}
