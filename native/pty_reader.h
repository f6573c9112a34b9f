/* PtyReader (pty_reader.c): registered on the pty_spawn module's exports. */
#ifndef SM_PTY_READER_H
#define SM_PTY_READER_H
#include <node_api.h>

void init_pty_reader(napi_env env, napi_value exports);

#endif
