/* A JS string as a malloc'd UTF-8 C string (NULL on failure): shared by the native modules. */
#ifndef SM_NAPI_STRINGS_H
#define SM_NAPI_STRINGS_H
#include <node_api.h>
#include <stdlib.h>

static char *get_string(napi_env env, napi_value v) {
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

#endif
