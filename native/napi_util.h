/* N-API helpers shared by the native modules. */
#ifndef SM_NAPI_UTIL_H
#define SM_NAPI_UTIL_H
#include <node_api.h>
#include <stdlib.h>

/* A JS string as a malloc'd UTF-8 C string (NULL on failure). */
static inline char *get_string(napi_env env, napi_value v) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return NULL;
  char *s = malloc(len + 1);
  if (!s) return NULL;
  if (napi_get_value_string_utf8(env, v, s, len + 1, &len) != napi_ok) {
    free(s);
    return NULL;
  }
  return s;
}

/*
 * Run `execute(job)` on libuv's pool and `complete(job)` back on this thread, which settles
 * `*deferred`; returns that promise. `*work` is the job's handle (complete deletes it).
 */
static inline napi_value queue_promise_job(napi_env env, const char *name, napi_async_execute_callback execute, napi_async_complete_callback complete, void *job,
                                           napi_deferred *deferred, napi_async_work *work) {
  napi_value promise, resource;
  napi_create_promise(env, deferred, &promise);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource);
  napi_create_async_work(env, NULL, resource, execute, complete, job, work);
  napi_queue_async_work(env, *work);
  return promise;
}

/* exports[name] = a function calling `fn`. */
static inline void export_function(napi_env env, napi_value exports, const char *name, napi_callback fn) {
  napi_value f;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, NULL, &f);
  napi_set_named_property(env, exports, name, f);
}

#endif
