/*
 * Shared pieces of the layerpipe_native addon: errno-style errors and argument checks.
 */
#ifndef LAYERPIPE_NATIVE_H
#define LAYERPIPE_NATIVE_H

#define NAPI_VERSION 8
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>

/* Error(`syscall: message (CODE)`) with code = errno name, errno (negative), syscall; NULL if it cannot be built. */
napi_value errno_error(napi_env env, int err, const char *syscall);
/* Throws errno_error(env, err, syscall). */
void throw_errno(napi_env env, int err, const char *syscall);
/* Throws an ERR_NATIVE Error unless an exception is already pending. */
void throw_internal(napi_env env, const char *what);

#define CHECK(env, call)                                     \
  do {                                                       \
    if ((call) != napi_ok) {                                 \
      throw_internal((env), "Node-API call failed: " #call); \
      return NULL;                                           \
    }                                                        \
  } while (0)

#define FN(name, fn) {name, NULL, fn, NULL, NULL, NULL, napi_enumerable, NULL}

/* Fetches exactly `want` arguments (and `this` if self is not NULL); throws if fewer came. */
bool get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv, napi_value *self);
/* A non-negative integer up to `max`; with fd set, a negative integer is reported as EBADF. */
bool get_int(napi_env env, napi_value v, const char *what, int64_t max, bool fd, int64_t *out);
bool get_fd(napi_env env, napi_value v, int *fd);
bool get_bool(napi_env env, napi_value v, bool *out);
/* The bytes of a Uint8Array (a Buffer), without copying; throws ERR_INVALID_ARG_TYPE with `what` otherwise. */
bool get_bytes(napi_env env, napi_value v, const char *what, uint8_t **data, size_t *length);
/* The JS string `v` as a fresh C string (free() it); refuses NUL bytes, and PATH_MAX or more bytes as ENAMETOOLONG of `syscall`. */
char *get_path(napi_env env, napi_value v, const char *syscall);

/* [a, b] as a JS array of two numbers (a pair of descriptors). */
napi_value fd_pair(napi_env env, int a, int b);

/* pipe, setNonBlocking, setCloexec, close, socketType, takeSocketError, setParentDeathSignal,
   setPipeSize and errorName (fd-calls.c), added to `exports`. */
bool define_fd_functions(napi_env env, napi_value exports);

/* The Poller class (poller.c). */
napi_value define_poller_class(napi_env env);

/* openDirectory, openBeneath and kernelHasOpenat2 (beneath.c), added to `exports`. */
bool define_beneath_functions(napi_env env, napi_value exports);

/* mkfifo, listenSeqpacket, acceptSeqpacket, connectSeqpacket, isListeningSocket, shutdownSocket and setSendBuffer (unix-socket.c), added to `exports`. */
bool define_unix_socket_functions(napi_env env, napi_value exports);

/* base64Encode (base64.c), added to `exports`. */
bool define_base64_functions(napi_env env, napi_value exports);

/* The PipeFeed class (pipe-feed.c), added to `exports`. */
bool define_pipe_feed_functions(napi_env env, napi_value exports);

/* The FilePump class (file-pump.c), added to `exports`. */
bool define_file_pump_class(napi_env env, napi_value exports);

/* The BlobHasher class (blob-hasher.c), added to `exports`. */
bool define_blob_hasher_class(napi_env env, napi_value exports);

/* mtimeMs and readFile (start-files.c), added to `exports`. */
bool define_start_file_functions(napi_env env, napi_value exports);

#endif
