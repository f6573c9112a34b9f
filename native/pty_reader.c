/*
 * PtyReader: the terminal's output, read on the calling thread's loop without a stream.
 *
 * A `tty.ReadStream` on the pty master costs, for every read: a 64 KiB allocation that is
 * then shrunk to the bytes read (malloc churn and fresh pages at 20,000 reads a second),
 * and the stream machinery in JS (onStreamRead, the readable buffer, 'data' events). Here
 * one uv_poll watches the descriptor; each time it is readable the bytes are read into the
 * thread's read buffer and handed to JS as one exact-size Buffer.
 *
 * new PtyReader(fd, onData(buffer), onEnd(errno))
 *   onEnd is called once, when a read says end of file (0) or fails (EIO once the last
 *   holder of the slave side is gone); polling stops then, the descriptor stays open.
 * pause(), resume(): stop and restart polling (flow control).
 * drain(maxBytes) -> boolean: read what is there now, synchronously (an exit's last bytes).
 * close(): stop for good and close the descriptor; no callback follows.
 *
 * The reader keeps its JS object alive while it is open. If the thread's environment goes
 * away first (a worker ending), a cleanup hook closes it.
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <uv.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pty_reader.h"

/* Read at most this much per wake-up (a pty master gives at most 4 KiB per read anyway). */
#define READ_CHUNK (64 * 1024)

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref self;
  napi_ref on_data;
  napi_ref on_end;
  napi_async_context ctx;
  int fd;
  int polling;
  int ended;
  int closed;
  /* Freed when both the uv handle is closed and the JS object is finalized. */
  int holds;
  /* The thread's read buffer, shared by its readers (their callbacks never overlap). */
  char *buf;
} reader_t;

/* One read buffer per thread (per environment), made on its first reader: a buffer per
   reader kept 64 KiB resident for every session, idle or not. */
static void free_scratch(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

static char *scratch(napi_env env) {
  void *p = NULL;
  if (napi_get_instance_data(env, &p) == napi_ok && p) return p;
  p = malloc(READ_CHUNK);
  if (p && napi_set_instance_data(env, p, free_scratch, NULL) != napi_ok) {
    free(p);
    p = NULL;
  }
  return p;
}

static void release(reader_t *r) {
  if (--r->holds == 0) free(r);
}

static void on_handle_closed(uv_handle_t *h) {
  release((reader_t *)h->data);
}

static void env_cleanup(void *arg);

/* Stop for good: no more callbacks, the descriptor closed, the JS object let go. */
static void shut(reader_t *r, int from_cleanup) {
  if (r->closed) return;
  r->closed = 1;
  r->polling = 0;
  uv_poll_stop(&r->poll);
  uv_close((uv_handle_t *)&r->poll, on_handle_closed);
  if (r->fd >= 0) close(r->fd);
  r->fd = -1;
  if (!from_cleanup) napi_remove_env_cleanup_hook(r->env, env_cleanup, r);
  napi_delete_reference(r->env, r->on_data);
  napi_delete_reference(r->env, r->on_end);
  napi_async_destroy(r->env, r->ctx);
  napi_reference_unref(r->env, r->self, NULL);
}

static void env_cleanup(void *arg) {
  shut((reader_t *)arg, 1);
}

/* Call a JS callback from the loop; an exception becomes the thread's uncaught exception. */
static void call(reader_t *r, napi_ref ref, napi_value arg) {
  napi_env env = r->env;
  napi_value cb, recv;
  if (napi_get_reference_value(env, ref, &cb) != napi_ok || !cb) return;
  napi_get_reference_value(env, r->self, &recv);
  if (napi_make_callback(env, r->ctx, recv, cb, 1, &arg, NULL) != napi_ok) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) {
      napi_value err;
      napi_get_and_clear_last_exception(env, &err);
      napi_fatal_exception(env, err);
    }
  }
}

/*
 * What the terminal holds now, into the thread's read buffer: bytes read, 0 at its end, or
 * -1 with errno (EAGAIN: nothing there now). A pty gives at most 4 KiB per read: while more
 * is there, it goes into the same buffer (one call into JS per wake-up, not per read).
 */
static ssize_t read_some(reader_t *r) {
  ssize_t n;
  do n = read(r->fd, r->buf, READ_CHUNK);
  while (n < 0 && errno == EINTR);
  while (n > 0 && READ_CHUNK - (size_t)n >= 4096) {
    ssize_t m;
    do m = read(r->fd, r->buf + n, READ_CHUNK - (size_t)n);
    while (m < 0 && errno == EINTR);
    if (m <= 0) break; /* EAGAIN, or the end: the next read reports it */
    n += m;
  }
  return n;
}

static void on_readable(uv_poll_t *h, int status, int events) {
  (void)events;
  reader_t *r = h->data;
  if (r->closed || r->ended) return;
  ssize_t n = read_some(r);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    if (status >= 0) return;
    /* libuv stopped watching after an error on the descriptor: nothing more will come. */
    errno = EIO;
  }
  napi_handle_scope scope;
  if (napi_open_handle_scope(r->env, &scope) != napi_ok) return;
  if (n > 0) {
    napi_value buf;
    void *data;
    if (napi_create_buffer_copy(r->env, (size_t)n, r->buf, &data, &buf) == napi_ok) call(r, r->on_data, buf);
  } else {
    int err = n == 0 ? 0 : errno;
    r->ended = 1;
    r->polling = 0;
    uv_poll_stop(&r->poll);
    napi_value code;
    napi_create_int32(r->env, err, &code);
    call(r, r->on_end, code);
  }
  napi_close_handle_scope(r->env, scope);
}

static reader_t *unwrap(napi_env env, napi_callback_info info) {
  napi_value self;
  void *p = NULL;
  if (napi_get_cb_info(env, info, NULL, NULL, &self, NULL) != napi_ok) return NULL;
  if (napi_unwrap(env, self, &p) != napi_ok) return NULL;
  return p;
}

static napi_value Pause(napi_env env, napi_callback_info info) {
  reader_t *r = unwrap(env, info);
  if (r && r->polling) {
    uv_poll_stop(&r->poll);
    r->polling = 0;
  }
  return NULL;
}

static napi_value Resume(napi_env env, napi_callback_info info) {
  reader_t *r = unwrap(env, info);
  if (r && !r->polling && !r->closed && !r->ended && uv_poll_start(&r->poll, UV_READABLE, on_readable) == 0) r->polling = 1;
  return NULL;
}

/*
 * drain(maxBytes): read what the terminal holds now, here, handing it to onData as the
 * loop would; true when it stopped because nothing more was there (EAGAIN: a non-blocking
 * read of a pty master first waits for the kernel's pending buffer work, so nothing is
 * left), false at the terminal's end, on an error or past maxBytes. The loop reports the
 * end as usual.
 */
static napi_value Drain(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value a[1], self, result;
  void *p = NULL;
  int64_t max = 0;
  if (napi_get_cb_info(env, info, &argc, a, &self, NULL) != napi_ok || napi_unwrap(env, self, &p) != napi_ok || argc != 1 ||
      napi_get_value_int64(env, a[0], &max) != napi_ok) {
    napi_throw_type_error(env, NULL, "usage: drain(maxBytes)");
    return NULL;
  }
  reader_t *r = p;
  int again = 0;
  for (int64_t total = 0; !r->closed && !r->ended && total < max;) {
    ssize_t n = read_some(r);
    if (n <= 0) {
      again = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
      break;
    }
    total += n;
    napi_value buf, cb;
    void *data;
    if (napi_create_buffer_copy(env, (size_t)n, r->buf, &data, &buf) != napi_ok || napi_get_reference_value(env, r->on_data, &cb) != napi_ok ||
        napi_call_function(env, self, cb, 1, &buf, NULL) != napi_ok)
      return NULL; /* an exception in onData goes to the caller */
  }
  napi_get_boolean(env, again, &result);
  return result;
}

static napi_value Close(napi_env env, napi_callback_info info) {
  reader_t *r = unwrap(env, info);
  if (r) shut(r, 0);
  return NULL;
}

static void finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  reader_t *r = data;
  napi_delete_reference(env, r->self);
  release(r);
}

static napi_value New(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value a[3], self;
  if (napi_get_cb_info(env, info, &argc, a, &self, NULL) != napi_ok) return NULL;
  int32_t fd = -1;
  napi_valuetype t1, t2;
  if (argc != 3 || napi_get_value_int32(env, a[0], &fd) != napi_ok || fd < 0 || napi_typeof(env, a[1], &t1) != napi_ok || t1 != napi_function ||
      napi_typeof(env, a[2], &t2) != napi_ok || t2 != napi_function) {
    napi_throw_type_error(env, NULL, "usage: new PtyReader(fd, onData, onEnd)");
    return NULL;
  }
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
    napi_throw_error(env, NULL, "no event loop");
    return NULL;
  }
  char *buf = scratch(env);
  reader_t *r = buf ? calloc(1, sizeof *r) : NULL;
  if (!r) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  r->env = env;
  r->fd = fd;
  r->buf = buf;
  int rc = uv_poll_init(loop, &r->poll, fd);
  if (rc != 0) {
    free(r);
    napi_throw_error(env, NULL, uv_strerror(rc));
    return NULL;
  }
  r->poll.data = r;
  r->holds = 2;
  napi_value name;
  napi_create_string_utf8(env, "PtyReader", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, self, name, &r->ctx);
  napi_create_reference(env, a[1], 1, &r->on_data);
  napi_create_reference(env, a[2], 1, &r->on_end);
  napi_wrap(env, self, r, finalize, NULL, &r->self);
  napi_reference_ref(env, r->self, NULL);
  napi_add_env_cleanup_hook(env, env_cleanup, r);
  if (uv_poll_start(&r->poll, UV_READABLE, on_readable) == 0) r->polling = 1;
  return self;
}

void init_pty_reader(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {
      {"pause", NULL, Pause, NULL, NULL, NULL, napi_default, NULL},
      {"resume", NULL, Resume, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, Close, NULL, NULL, NULL, napi_default, NULL},
      {"drain", NULL, Drain, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_value cls;
  if (napi_define_class(env, "PtyReader", NAPI_AUTO_LENGTH, New, NULL, 4, methods, &cls) == napi_ok) napi_set_named_property(env, exports, "PtyReader", cls);
}
