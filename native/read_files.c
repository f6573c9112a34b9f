/*
 * read_files: many small files read as ONE job on libuv's thread pool.
 *
 * fs/promises' readFile is four pool round trips per file (open, fstat, read, close); a boot
 * that reads tens of thousands of session records spent seconds waking the pool and the
 * main thread, and a Promise.all over all of them ran out of descriptors (EMFILE) past
 * ~20,000 files. Here a job reads its files back to back, holding one descriptor at a time.
 *
 * readFiles(paths: string[]) -> Promise<Array<Buffer | string>>
 * Each entry is the file's bytes, or the errno name ("ENOENT", "EACCES", "EFBIG"…) of the
 * step that failed for that file.
 */
#define _GNU_SOURCE
#include <node_api.h>
#include "napi_util.h"
#include <uv.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A document bigger than this is refused (EFBIG) rather than read whole. */
#define MAX_FILE_BYTES (64u * 1024 * 1024)

typedef struct {
  char *path;
  char *data;
  size_t len;
  int err;
} entry_t;

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  entry_t *e;
  uint32_t n;
} job_t;

static void read_one(entry_t *e) {
  int fd;
  do fd = open(e->path, O_RDONLY | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    e->err = errno;
    return;
  }
  struct stat st;
  size_t cap = 0;
  if (fstat(fd, &st) == 0 && st.st_size > 0) cap = (size_t)st.st_size;
  if (cap > MAX_FILE_BYTES) {
    e->err = EFBIG;
    close(fd);
    return;
  }
  cap = cap + 1; /* one more byte: a file that grew since fstat is seen to have grown */
  char *buf = malloc(cap);
  size_t len = 0;
  while (buf) {
    if (len == cap) {
      if (cap >= MAX_FILE_BYTES) {
        e->err = EFBIG;
        break;
      }
      char *more = realloc(buf, cap * 2);
      if (!more) break;
      buf = more;
      cap *= 2;
    }
    ssize_t n = read(fd, buf + len, cap - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      e->err = errno;
      break;
    }
    if (n == 0) break;
    len += (size_t)n;
  }
  if (!buf && !e->err) e->err = ENOMEM;
  close(fd);
  if (e->err) {
    free(buf);
    return;
  }
  e->data = buf;
  e->len = len;
}

static void execute(napi_env env, void *arg) {
  (void)env;
  job_t *j = arg;
  for (uint32_t i = 0; i < j->n; i++) read_one(&j->e[i]);
}

static void free_job(job_t *j) {
  for (uint32_t i = 0; i < j->n; i++) {
    free(j->e[i].path);
    free(j->e[i].data);
  }
  free(j->e);
  free(j);
}

static void complete(napi_env env, napi_status status, void *arg) {
  job_t *j = arg;
  napi_value arr;
  napi_create_array_with_length(env, j->n, &arr);
  for (uint32_t i = 0; i < j->n; i++) {
    entry_t *e = &j->e[i];
    int err = status != napi_ok ? EIO : e->err;
    napi_value v;
    void *copy;
    if (err) napi_create_string_utf8(env, uv_err_name(-err), NAPI_AUTO_LENGTH, &v);
    else if (napi_create_buffer_copy(env, e->len, e->data ? e->data : "", &copy, &v) != napi_ok)
      napi_create_string_utf8(env, "ENOMEM", NAPI_AUTO_LENGTH, &v);
    napi_set_element(env, arr, i, v);
  }
  napi_resolve_deferred(env, j->deferred, arr);
  napi_delete_async_work(env, j->work);
  free_job(j);
}

static napi_value ReadFiles(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value a[1];
  bool isArray = false;
  uint32_t n = 0;
  if (napi_get_cb_info(env, info, &argc, a, NULL, NULL) != napi_ok || argc != 1 || napi_is_array(env, a[0], &isArray) != napi_ok || !isArray ||
      napi_get_array_length(env, a[0], &n) != napi_ok) {
    napi_throw_type_error(env, NULL, "usage: readFiles(paths)");
    return NULL;
  }
  job_t *j = calloc(1, sizeof *j);
  if (j) j->e = calloc(n ? n : 1, sizeof *j->e);
  if (!j || !j->e) {
    free(j);
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  j->n = n;
  for (uint32_t i = 0; i < n; i++) {
    napi_value el;
    if (napi_get_element(env, a[0], i, &el) != napi_ok || !(j->e[i].path = get_string(env, el))) {
      free_job(j);
      napi_throw_type_error(env, NULL, "paths must be strings");
      return NULL;
    }
  }
  return queue_promise_job(env, "readFiles", execute, complete, j, &j->deferred, &j->work);
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  export_function(env, exports, "readFiles", ReadFiles);
  return exports;
}
