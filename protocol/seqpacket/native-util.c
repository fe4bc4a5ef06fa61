/*
 * Errors and argument checks shared by the addon's functions.
 */
#include "native.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <stdio.h>
#include <uv.h>

/* ---------- errors ---------- */

napi_value errno_error(napi_env env, int err, const char *syscall) {
  char name[64], text[256], message[400];
  uv_err_name_r(-err, name, sizeof name);
  uv_strerror_r(-err, text, sizeof text);
  snprintf(message, sizeof message, "%s: %s (%s)", syscall, text, name);
  napi_value msg, code, error, num, sc;
  if (napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg) != napi_ok) return NULL;
  if (napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code) != napi_ok) return NULL;
  if (napi_create_error(env, code, msg, &error) != napi_ok) return NULL;
  napi_create_int32(env, -err, &num); /* negative, as in Node's own system errors */
  napi_set_named_property(env, error, "errno", num);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sc);
  napi_set_named_property(env, error, "syscall", sc);
  return error;
}

void throw_errno(napi_env env, int err, const char *syscall) {
  napi_value error = errno_error(env, err, syscall);
  if (error != NULL) napi_throw(env, error);
}

void throw_internal(napi_env env, const char *what) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_error(env, "ERR_NATIVE", what);
}


/* ---------- argument helpers ---------- */

bool get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv, napi_value *self) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, self, NULL) != napi_ok) {
    throw_internal(env, "napi_get_cb_info failed");
    return false;
  }
  if (argc < want) {
    napi_throw_type_error(env, "ERR_MISSING_ARGS", "missing arguments");
    return false;
  }
  return true;
}

/* A non-negative integer below `max`; a negative integer fd is reported as EBADF. */
bool get_int(napi_env env, napi_value v, const char *what, int64_t max, bool fd, int64_t *out) {
  napi_valuetype t;
  double d;
  char message[128];
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number || napi_get_value_double(env, v, &d) != napi_ok ||
      !isfinite(d) || d != floor(d)) {
    snprintf(message, sizeof message, "%s must be an integer", what);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
    return false;
  }
  if (fd && d < 0) {
    throw_errno(env, EBADF, what);
    return false;
  }
  if (d < 0 || d > (double)max) {
    snprintf(message, sizeof message, "%s is out of range", what);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", message);
    return false;
  }
  *out = (int64_t)d;
  return true;
}

bool get_fd(napi_env env, napi_value v, int *fd) {
  int64_t n;
  if (!get_int(env, v, "fd", INT_MAX, true, &n)) return false;
  *fd = (int)n;
  return true;
}

bool get_bool(napi_env env, napi_value v, bool *out) {
  if (napi_get_value_bool(env, v, out) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected a boolean");
    return false;
  }
  return true;
}

char *get_path(napi_env env, napi_value v, const char *syscall) {
  size_t len;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "path must be a string");
    return NULL;
  }
  if (len >= PATH_MAX) {
    throw_errno(env, ENAMETOOLONG, syscall);
    return NULL;
  }
  char *path = malloc(len + 1);
  if (path == NULL || napi_get_value_string_utf8(env, v, path, len + 1, &len) != napi_ok) {
    free(path);
    throw_internal(env, "cannot copy the path");
    return NULL;
  }
  if (strlen(path) != len) {
    free(path);
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "path must not contain NUL bytes");
    return NULL;
  }
  return path;
}

bool get_bytes(napi_env env, napi_value v, const char *what, uint8_t **data, size_t *length) {
  bool is_typed = false;
  napi_typedarray_type type;
  void *base = NULL;
  napi_value buffer;
  size_t offset = 0;
  if (napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, v, &type, length, &base, &buffer, &offset) != napi_ok || type != napi_uint8_array) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", what);
    return false;
  }
  *data = base;
  return true;
}

napi_value fd_pair(napi_env env, int a, int b) {
  napi_value arr, va, vb;
  CHECK(env, napi_create_array_with_length(env, 2, &arr));
  CHECK(env, napi_create_int32(env, a, &va));
  CHECK(env, napi_create_int32(env, b, &vb));
  CHECK(env, napi_set_element(env, arr, 0, va));
  CHECK(env, napi_set_element(env, arr, 1, vb));
  return arr;
}
