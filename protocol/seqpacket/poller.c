/*
 * Poller: a uv_poll_t on Node's loop telling JavaScript when an fd is readable or writable,
 * with callbacks run in a proper callback scope.
 */
#include "native.h"

#include <errno.h>
#include <stdlib.h>
#include <uv.h>

typedef struct {
  uv_poll_t handle;
  napi_env env;
  napi_ref self;     /* weak while idle; strong while started, so a watched socket's Poller lives */
  napi_ref callback;
  napi_async_context async;
  /* Closes the handle when the environment goes away (a worker exiting) and makes Node wait
   * for the close callback: the addon may be unloaded right after. */
  napi_async_cleanup_hook_handle teardown;
  bool started, closing, handle_closed, finalized;
} poller_t;

static void poller_release_js(poller_t *p) {
  if (p->callback != NULL) napi_delete_reference(p->env, p->callback);
  if (p->async != NULL) napi_async_destroy(p->env, p->async);
  p->callback = NULL;
  p->async = NULL;
}

static void poller_on_closed(uv_handle_t *h) {
  poller_t *p = h->data;
  p->handle_closed = true;
  if (p->teardown != NULL) {
    napi_remove_async_cleanup_hook(p->teardown);
    p->teardown = NULL;
  }
  if (p->finalized) free(p);
}

/* Environment teardown: no JavaScript may run; just close the handle (poller_on_closed then
 * tells Node the hook is done). */
static void poller_on_teardown(napi_async_cleanup_hook_handle handle, void *arg) {
  (void)handle;
  poller_t *p = arg;
  if (p->closing) return;
  p->closing = true;
  uv_close((uv_handle_t *)&p->handle, poller_on_closed);
}

static void poller_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  poller_t *p = data;
  p->finalized = true;
  napi_delete_reference(p->env, p->self);
  p->self = NULL;
  if (!p->closing) {
    poller_release_js(p);
    p->closing = true;
    uv_close((uv_handle_t *)&p->handle, poller_on_closed);
  } else if (p->handle_closed) {
    free(p);
  }
}

static void poller_on_event(uv_poll_t *h, int status, int events) {
  poller_t *p = h->data;
  if (p->closing || p->callback == NULL) return;
  napi_env env = p->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, argv[3], result;
  napi_get_reference_value(env, p->callback, &cb);
  napi_get_reference_value(env, p->self, &recv);
  if (recv == NULL) napi_get_undefined(env, &recv);
  if (status < 0 && p->started) {
    /* libuv stopped the handle on POLLERR (reported as UV_EBADF); `recv` keeps the object alive. */
    napi_reference_unref(env, p->self, NULL);
    p->started = false;
  }
  napi_create_int32(env, status, &argv[0]);
  napi_get_boolean(env, (events & (UV_READABLE | UV_DISCONNECT)) != 0, &argv[1]);
  napi_get_boolean(env, (events & UV_WRITABLE) != 0, &argv[2]);
  /* napi_make_callback runs nextTicks and microtasks afterwards; a throw is left pending
   * on the env, so hand it to Node's uncaught-exception machinery ourselves. */
  if (napi_make_callback(env, p->async, recv, cb, 3, argv, &result) == napi_pending_exception) {
    napi_value exc;
    if (napi_get_and_clear_last_exception(env, &exc) == napi_ok) napi_fatal_exception(env, exc);
  }
  napi_close_handle_scope(env, scope);
}

static poller_t *unwrap_poller(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  napi_value self;
  poller_t *p = NULL;
  if (!get_args(env, info, want, argv, &self)) return NULL;
  if (napi_unwrap(env, self, (void **)&p) != napi_ok || p == NULL) {
    napi_throw_type_error(env, "ERR_INVALID_THIS", "not a Poller");
    return NULL;
  }
  return p;
}

static napi_value poller_new(napi_env env, napi_callback_info info) {
  napi_value argv[2], self, name;
  napi_valuetype t;
  int fd;
  uv_loop_t *loop;
  if (!get_args(env, info, 2, argv, &self) || !get_fd(env, argv[0], &fd)) return NULL;
  if (napi_typeof(env, argv[1], &t) != napi_ok || t != napi_function) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "callback must be a function");
    return NULL;
  }
  CHECK(env, napi_get_uv_event_loop(env, &loop));
  poller_t *p = calloc(1, sizeof *p);
  if (p == NULL) {
    throw_errno(env, ENOMEM, "Poller");
    return NULL;
  }
  int err = uv_poll_init(loop, &p->handle, fd);
  if (err < 0) {
    free(p);
    throw_errno(env, -err, "uv_poll_init");
    return NULL;
  }
  p->handle.data = p;
  p->env = env;
  if (napi_create_reference(env, argv[1], 1, &p->callback) != napi_ok ||
      napi_create_string_utf8(env, "LayerpipePoller", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, self, name, &p->async) != napi_ok || napi_create_reference(env, self, 0, &p->self) != napi_ok ||
      napi_add_async_cleanup_hook(env, poller_on_teardown, p, &p->teardown) != napi_ok ||
      napi_wrap(env, self, p, poller_finalize, NULL, NULL) != napi_ok) {
    poller_release_js(p);
    if (p->self != NULL) napi_delete_reference(env, p->self);
    p->closing = true;
    p->finalized = true;
    uv_close((uv_handle_t *)&p->handle, poller_on_closed);
    throw_internal(env, "cannot create Poller");
    return NULL;
  }
  return self;
}

static void poller_stop_watching(poller_t *p) {
  uv_poll_stop(&p->handle);
  if (p->started) {
    napi_reference_unref(p->env, p->self, NULL);
    p->started = false;
  }
}

static napi_value poller_start(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  bool readable, writable;
  poller_t *p = unwrap_poller(env, info, 2, argv);
  if (p == NULL || !get_bool(env, argv[0], &readable) || !get_bool(env, argv[1], &writable)) return NULL;
  if (p->closing) {
    napi_throw_error(env, "ERR_POLLER_CLOSED", "Poller is closed");
    return NULL;
  }
  int events = (readable ? UV_READABLE | UV_DISCONNECT : 0) | (writable ? UV_WRITABLE : 0);
  if (events == 0) {
    poller_stop_watching(p);
    return NULL;
  }
  int err = uv_poll_start(&p->handle, events, poller_on_event);
  if (err < 0) {
    throw_errno(env, -err, "uv_poll_start");
    return NULL;
  }
  if (!p->started) {
    napi_reference_ref(env, p->self, NULL);
    p->started = true;
  }
  return NULL;
}

static napi_value poller_stop(napi_env env, napi_callback_info info) {
  poller_t *p = unwrap_poller(env, info, 0, NULL);
  if (p != NULL && !p->closing) poller_stop_watching(p);
  return NULL;
}

static napi_value poller_close(napi_env env, napi_callback_info info) {
  poller_t *p = unwrap_poller(env, info, 0, NULL);
  if (p == NULL || p->closing) return NULL;
  poller_stop_watching(p);
  poller_release_js(p);
  p->closing = true;
  /* uv_close stops watching the fd at once, so the caller may close the fd right after. */
  uv_close((uv_handle_t *)&p->handle, poller_on_closed);
  return NULL;
}

static napi_value poller_set_ref(napi_env env, napi_callback_info info, bool on) {
  poller_t *p = unwrap_poller(env, info, 0, NULL);
  if (p == NULL || p->closing) return NULL;
  if (on)
    uv_ref((uv_handle_t *)&p->handle);
  else
    uv_unref((uv_handle_t *)&p->handle);
  return NULL;
}

static napi_value poller_ref(napi_env env, napi_callback_info info) { return poller_set_ref(env, info, true); }
static napi_value poller_unref(napi_env env, napi_callback_info info) { return poller_set_ref(env, info, false); }

napi_value define_poller_class(napi_env env) {
  napi_property_descriptor methods[] = {
      FN("start", poller_start), FN("stop", poller_stop), FN("close", poller_close),
      FN("ref", poller_ref),     FN("unref", poller_unref),
  };
  napi_value cls;
  CHECK(env, napi_define_class(env, "Poller", NAPI_AUTO_LENGTH, poller_new, NULL, sizeof methods / sizeof methods[0], methods, &cls));
  return cls;
}
