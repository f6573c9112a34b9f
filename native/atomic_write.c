/*
 * atomic_write: the whole durable replacement of a file as ONE job on libuv's thread pool.
 *
 * Written with fs/promises, an atomic write is eight pool round trips (open the temp file,
 * write, fsync, close, rename, open the folder, fsync it, close), each waking the pool and
 * then the main thread again; under the spawn benchmark those wake-ups were most of the main
 * thread's time. Here the same system calls run back to back inside one job.
 *
 * atomicWrite(file, tmp, dir, data: Buffer, mode) -> Promise<void>
 * `dir` (the folder of file and tmp) is made if it is missing and its parent exists (then
 * the parent is synced too, so the new folder's entry survives a crash as well).
 * Rejects with an Error whose `code` is the errno name ("ENOENT", "ENOSPC", "EROFS"…) and
 * whose message names the failing step; the temp file is removed on failure.
 */
#define _GNU_SOURCE
#include <node_api.h>
#include "napi_util.h"
#include <uv.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  char *file;
  char *tmp;
  char *dir;
  char *data;
  size_t len;
  int mode;
  int err;
  const char *step;
} job_t;

static void fail(job_t *j, const char *step) {
  j->err = errno;
  j->step = step;
}

static void sync_dir(const char *dir) {
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
}

static void execute(napi_env env, void *arg) {
  (void)env;
  job_t *j = arg;
  int fd = open(j->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, j->mode);
  /* A document's first write into a folder of its own (sessions/<id>/): make the folder
   * here rather than in two more round trips; a deeper missing path stays the caller's. */
  int made_dir = 0;
  if (fd < 0 && errno == ENOENT) {
    if (mkdir(j->dir, 0777) == 0) made_dir = 1;
    else if (errno != EEXIST) {
      fail(j, "mkdir");
      return;
    }
    fd = open(j->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, j->mode);
  }
  if (fd < 0) {
    fail(j, "open");
    return;
  }
  size_t off = 0;
  while (off < j->len) {
    ssize_t n = write(fd, j->data + off, j->len - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;
      fail(j, "write");
      close(fd);
      unlink(j->tmp);
      return;
    }
    off += (size_t)n;
  }
  if (fsync(fd) != 0) {
    fail(j, "fsync");
    close(fd);
    unlink(j->tmp);
    return;
  }
  if (close(fd) != 0) {
    fail(j, "close");
    unlink(j->tmp);
    return;
  }
  if (rename(j->tmp, j->file) != 0) {
    fail(j, "rename");
    unlink(j->tmp);
    return;
  }
  /* The rename itself must survive a crash: sync the folder (best effort, as before), and
   * the folder's own entry in its parent when this job made it. */
  sync_dir(j->dir);
  if (made_dir) {
    char *slash = strrchr(j->dir, '/');
    if (slash && slash != j->dir) {
      *slash = '\0';
      sync_dir(j->dir);
      *slash = '/';
    }
  }
}

static void complete(napi_env env, napi_status status, void *arg) {
  job_t *j = arg;
  if (status != napi_ok && !j->err) {
    j->err = EIO;
    j->step = "schedule";
  }
  if (j->err) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s: %s, %s '%s'", uv_err_name(-j->err), strerror(j->err), j->step, j->step[0] == 'r' ? j->file : j->tmp);
    napi_value m, code, e;
    napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
    napi_create_string_utf8(env, uv_err_name(-j->err), NAPI_AUTO_LENGTH, &code);
    napi_create_error(env, code, m, &e);
    napi_value syscall;
    napi_create_string_utf8(env, j->step, NAPI_AUTO_LENGTH, &syscall);
    napi_set_named_property(env, e, "syscall", syscall);
    napi_value errnum;
    napi_create_int32(env, -j->err, &errnum);
    napi_set_named_property(env, e, "errno", errnum);
    napi_reject_deferred(env, j->deferred, e);
  } else {
    napi_value undef;
    napi_get_undefined(env, &undef);
    napi_resolve_deferred(env, j->deferred, undef);
  }
  napi_delete_async_work(env, j->work);
  free(j->file);
  free(j->tmp);
  free(j->dir);
  free(j->data);
  free(j);
}

static napi_value AtomicWrite(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value a[5];
  if (napi_get_cb_info(env, info, &argc, a, NULL, NULL) != napi_ok || argc != 5) {
    napi_throw_type_error(env, NULL, "usage: atomicWrite(file, tmp, dir, data, mode)");
    return NULL;
  }
  void *buf = NULL;
  size_t len = 0;
  bool isBuffer = false;
  napi_is_buffer(env, a[3], &isBuffer);
  if (!isBuffer || napi_get_buffer_info(env, a[3], &buf, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "data must be a Buffer");
    return NULL;
  }
  int32_t mode = 0666;
  napi_get_value_int32(env, a[4], &mode);
  job_t *j = calloc(1, sizeof *j);
  if (!j) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  j->file = get_string(env, a[0]);
  j->tmp = get_string(env, a[1]);
  j->dir = get_string(env, a[2]);
  j->data = malloc(len ? len : 1);
  j->len = len;
  j->mode = mode;
  if (!j->file || !j->tmp || !j->dir || !j->data) {
    free(j->file);
    free(j->tmp);
    free(j->dir);
    free(j->data);
    free(j);
    napi_throw_type_error(env, NULL, "bad arguments");
    return NULL;
  }
  /* A copy: the job runs on another thread while JavaScript goes on. */
  if (len) memcpy(j->data, buf, len);
  return queue_promise_job(env, "atomicWrite", execute, complete, j, &j->deferred, &j->work);
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  export_function(env, exports, "atomicWrite", AtomicWrite);
  return exports;
}
