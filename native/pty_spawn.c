/*
 * pty_spawn: start an agent in a new pseudo-terminal without copying the server.
 *
 * node-pty forks the whole Node process (page tables of a large, multi-threaded process,
 * then copy-on-write faults and TLB shootdowns until the child execs) and the child then
 * needed `/bin/sh` to join its cgroup and `setpriv` to drop privileges. Here the child is
 * made with vfork() semantics: it borrows the parent's memory until execve, so nothing is
 * copied; it is born in its cgroup (clone3 with CLONE_INTO_CGROUP; where the kernel lacks
 * that, it writes itself into the cgroup's cgroup.procs before anything else), becomes
 * a session leader with the terminal as its controlling tty, drops to the agent's uid/gid,
 * and marks every other descriptor close-on-exec. The calling thread is suspended only
 * until the exec.
 *
 * spawn(file, argv[], envp[], cwd, cols, rows, cgroupDir | null, uid, gid, onExit)
 *   -> { pid, master, slave, input, pty }
 * `master` is non-blocking; `slave` stays open in the server (the actor's hold on the
 * terminal); `input` is a second descriptor of the master (same open file, so also
 * non-blocking) for the supervisor to write keystrokes to, resize and close itself. onExit(exitCode, signal) is called once, on the calling thread's loop, from a
 * thread that waits for the child.
 * resize(fd, cols, rows)
 * close(fd): for the slave hold (Node warns when a worker closes a descriptor it did not
 * open through fs).
 */
#define _GNU_SOURCE
#include <node_api.h>
#include "napi_util.h"
#include "pty_reader.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <stdint.h>
#include <linux/sched.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define THROW(env, msg)                        \
  do {                                         \
    napi_throw_error((env), NULL, (msg));      \
    return NULL;                               \
  } while (0)

#define CHECK(env, call)                                  \
  do {                                                    \
    if ((call) != napi_ok) THROW((env), "napi call failed"); \
  } while (0)

static void free_list(char **list) {
  if (!list) return;
  for (char **p = list; *p; p++) free(*p);
  free(list);
}

/* A JS array of strings as a NULL-terminated C array. */
static char **get_list(napi_env env, napi_value arr) {
  uint32_t n = 0;
  if (napi_get_array_length(env, arr, &n) != napi_ok) return NULL;
  char **out = calloc(n + 1, sizeof(char *));
  if (!out) return NULL;
  for (uint32_t i = 0; i < n; i++) {
    napi_value el;
    if (napi_get_element(env, arr, i, &el) != napi_ok || !(out[i] = get_string(env, el))) {
      free_list(out);
      return NULL;
    }
  }
  return out;
}

/* ---- exit waiter ---------------------------------------------------------------------- */

typedef struct {
  pid_t pid;
  int status;
  napi_threadsafe_function tsfn;
} waiter_t;

static void call_exit(napi_env env, napi_value cb, void *context, void *data) {
  (void)context;
  waiter_t *w = data;
  if (env && cb) {
    napi_value args[2], undef;
    int code = -1, sig = 0;
    if (WIFEXITED(w->status)) code = WEXITSTATUS(w->status);
    else if (WIFSIGNALED(w->status)) sig = WTERMSIG(w->status);
    napi_create_int32(env, code, &args[0]);
    napi_create_int32(env, sig, &args[1]);
    napi_get_undefined(env, &undef);
    napi_call_function(env, undef, cb, 2, args, NULL);
  }
  free(w);
}

static void *wait_child(void *arg) {
  waiter_t *w = arg;
  int r;
  do r = waitpid(w->pid, &w->status, 0);
  while (r == -1 && errno == EINTR);
  if (r == -1) w->status = 0;
  napi_threadsafe_function tsfn = w->tsfn;
  if (napi_call_threadsafe_function(tsfn, w, napi_tsfn_blocking) != napi_ok) free(w);
  napi_release_threadsafe_function(tsfn, napi_tsfn_release);
  return NULL;
}

/* ---- spawn ----------------------------------------------------------------------------- */

static void set_termios(int fd) {
  struct termios t;
  if (tcgetattr(fd, &t) != 0) return;
  /* What node-pty gives an agent's terminal (UTF-8 line editing included). */
  t.c_iflag = ICRNL | IXON | IXANY | IMAXBEL | BRKINT | IUTF8;
  t.c_oflag = OPOST | ONLCR;
  t.c_cflag = CREAD | CS8 | HUPCL;
  t.c_lflag = ICANON | ISIG | IEXTEN | ECHO | ECHOE | ECHOK | ECHOKE | ECHOCTL;
  t.c_cc[VEOF] = 4;
  t.c_cc[VEOL] = (cc_t)-1;
  t.c_cc[VEOL2] = (cc_t)-1;
  t.c_cc[VERASE] = 0x7f;
  t.c_cc[VWERASE] = 23;
  t.c_cc[VKILL] = 21;
  t.c_cc[VREPRINT] = 18;
  t.c_cc[VINTR] = 3;
  t.c_cc[VQUIT] = 0x1c;
  t.c_cc[VSUSP] = 26;
  t.c_cc[VSTART] = 17;
  t.c_cc[VSTOP] = 19;
  t.c_cc[VLNEXT] = 22;
  t.c_cc[VDISCARD] = 15;
  t.c_cc[VMIN] = 1;
  t.c_cc[VTIME] = 0;
  cfsetispeed(&t, B38400);
  cfsetospeed(&t, B38400);
  tcsetattr(fd, TCSANOW, &t);
}

/* In the child: report the failing step's errno and end. Only async-signal-safe calls. */
static void child_fail(int errfd, int step) {
  int msg[2] = {step, errno};
  ssize_t r = write(errfd, msg, sizeof msg);
  (void)r;
  _exit(127);
}

/* What the child needs, in the parent's memory (it borrows it until execve). */
typedef struct {
  const char *file, *cwd;
  char *const *argv, *const *envp;
  int slave, cgprocs, errfd, uid, gid;
} child_args_t;

/* The child, from its birth to execve; it never returns. cgprocs >= 0: join that cgroup. */
static int child_main(void *p) {
  const child_args_t *c = p;
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  for (int s = 1; s < NSIG; s++) sigaction(s, &dfl, NULL);
  /* Best effort, as before: an agent outside its cgroup is still found through /proc. */
  if (c->cgprocs >= 0 && write(c->cgprocs, "0", 1) != 1) {
  }
  if (setsid() < 0) child_fail(c->errfd, 2);
  if (ioctl(c->slave, TIOCSCTTY, 0) != 0) child_fail(c->errfd, 3);
  if (dup2(c->slave, 0) < 0 || dup2(c->slave, 1) < 0 || dup2(c->slave, 2) < 0) child_fail(c->errfd, 4);
  /* Raw system calls: glibc's set*id would try to change every thread of the parent. */
  if (c->uid >= 0 && c->gid >= 0) {
    if (syscall(SYS_setgroups, 0, NULL) != 0) child_fail(c->errfd, 5);
    if (syscall(SYS_setgid, (gid_t)c->gid) != 0) child_fail(c->errfd, 6);
    if (syscall(SYS_setuid, (uid_t)c->uid) != 0) child_fail(c->errfd, 7);
  }
  if (c->cwd[0] && chdir(c->cwd) != 0) child_fail(c->errfd, 8);
  /* Nothing of the server's survives the exec but the terminal on 0, 1, 2. */
  syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  execve(c->file, c->argv, c->envp);
  child_fail(c->errfd, 9);
  return 127;
}

#if defined(__x86_64__) && defined(SYS_clone3) && defined(CLONE_INTO_CGROUP)
/*
 * Born in its cgroup: clone3(CLONE_VM | CLONE_VFORK | CLONE_INTO_CGROUP), so the child never
 * runs outside it and there is no migration. Joining by writing cgroup.procs takes the
 * kernel's cgroup threadgroup lock for writing, which can wait for an RCU grace period
 * (measured here: 0.2-0.5 ms on average, up to 20 ms), all of it with the calling thread
 * suspended by the vfork. glibc has no clone3 wrapper that runs a function on a new stack,
 * so this is one: the child starts on `stack`, calls child_main and never returns.
 * Returns the pid, or -errno.
 */
static long clone3_into_cgroup(int cgdir, child_args_t *args) {
  static __thread char stack[32 * 1024] __attribute__((aligned(16)));
  struct clone_args ca;
  memset(&ca, 0, sizeof ca);
  ca.flags = CLONE_VM | CLONE_VFORK | CLONE_INTO_CGROUP;
  ca.exit_signal = SIGCHLD;
  ca.stack = (uint64_t)(uintptr_t)stack;
  ca.stack_size = sizeof stack;
  ca.cgroup = (uint64_t)cgdir;
  register long fn __asm__("r12") = (long)child_main;
  register long arg __asm__("r13") = (long)args;
  long ret;
  __asm__ volatile(
      "syscall\n\t"
      "test %%rax, %%rax\n\t"
      "jnz 1f\n\t"
      /* The child, on its own stack: child_main(args), then exit (it never gets there). */
      "xor %%ebp, %%ebp\n\t"
      "mov %%r13, %%rdi\n\t"
      "call *%%r12\n\t"
      "mov %%eax, %%edi\n\t"
      "mov $60, %%eax\n\t"
      "syscall\n\t"
      "hlt\n"
      "1:\n\t"
      : "=a"(ret)
      : "0"((long)SYS_clone3), "D"(&ca), "S"(sizeof ca), "r"(fn), "r"(arg)
      : "rcx", "r11", "memory");
  return ret;
}
#define HAVE_CLONE3_INTO_CGROUP 1
#endif

/*
 * Make the child; the calling thread is suspended until it has exec'd (or failed). Its own
 * frame holds all the child uses (nothing the parent's frame needs can be clobbered), and
 * no server signal handler can run in the child while it borrows the parent's memory: all
 * signals are blocked around the clone, and the child resets every handler before
 * unblocking them. With a cgroup, the child is born in it where the kernel allows that
 * (clone3), and otherwise (vfork) writes itself into its cgroup.procs before anything else.
 */
static pid_t __attribute__((noinline)) spawn_child(child_args_t *args, int cgdir, int *spawn_errno) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t pid = -1;
  args->cgprocs = -1;
#ifdef HAVE_CLONE3_INTO_CGROUP
  static int clone3_missing;
  if (cgdir >= 0 && !__atomic_load_n(&clone3_missing, __ATOMIC_RELAXED)) {
    long r = clone3_into_cgroup(cgdir, args);
    if (r >= 0) pid = (pid_t)r;
    else if (r == -ENOSYS || r == -E2BIG) __atomic_store_n(&clone3_missing, 1, __ATOMIC_RELAXED);
  }
#endif
  if (pid < 0) {
    if (cgdir >= 0) args->cgprocs = openat(cgdir, "cgroup.procs", O_WRONLY | O_CLOEXEC);
    pid = vfork();
    if (pid == 0) child_main(args);
  }
  *spawn_errno = pid < 0 ? errno : 0;
  if (args->cgprocs >= 0) close(args->cgprocs);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return pid;
}

static const char *STEP_NAMES[] = {"", "join cgroup", "setsid", "set controlling terminal", "dup2", "setgroups", "setgid", "setuid", "chdir", "execve"};

static napi_value Spawn(napi_env env, napi_callback_info info) {
  size_t argc = 10;
  napi_value a[10];
  CHECK(env, napi_get_cb_info(env, info, &argc, a, NULL, NULL));
  if (argc != 10) THROW(env, "usage: spawn(file, argv, envp, cwd, cols, rows, cgroupDir, uid, gid, onExit)");
  int32_t cols = 80, rows = 24, uid = -1, gid = -1;
  napi_valuetype cgt;
  CHECK(env, napi_get_value_int32(env, a[4], &cols));
  CHECK(env, napi_get_value_int32(env, a[5], &rows));
  CHECK(env, napi_get_value_int32(env, a[7], &uid));
  CHECK(env, napi_get_value_int32(env, a[8], &gid));
  CHECK(env, napi_typeof(env, a[6], &cgt));

  char *file = get_string(env, a[0]);
  char **argv = get_list(env, a[1]);
  char **envp = get_list(env, a[2]);
  char *cwd = get_string(env, a[3]);
  char *cgroup = cgt == napi_string ? get_string(env, a[6]) : NULL;
  int master = -1, slave = -1, input = -1, cgfd = -1, errp[2] = {-1, -1};
  char pts[128];
  const char *fail = NULL;
  char failbuf[256];
  pid_t pid = -1;

  if (!file || !argv || !envp || !cwd || (cgt == napi_string && !cgroup)) {
    fail = "bad arguments";
    goto out;
  }
  master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0 || ptsname_r(master, pts, sizeof pts) != 0) {
    fail = "could not open a pseudo-terminal";
    goto out;
  }
  slave = open(pts, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave < 0) {
    fail = "could not open the terminal's slave side";
    goto out;
  }
  input = fcntl(master, F_DUPFD_CLOEXEC, 3);
  if (input < 0) {
    fail = "could not duplicate the terminal for input";
    goto out;
  }
  set_termios(slave);
  struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
  ioctl(slave, TIOCSWINSZ, &ws);
  if (cgroup) {
    cgfd = open(cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cgfd < 0) {
      snprintf(failbuf, sizeof failbuf, "could not open %s: %s", cgroup, strerror(errno));
      fail = failbuf;
      goto out;
    }
  }
  if (pipe2(errp, O_CLOEXEC) != 0) {
    fail = "could not make a pipe";
    goto out;
  }

  int spawn_errno = 0;
  child_args_t args = {.file = file, .cwd = cwd, .argv = argv, .envp = envp, .slave = slave, .errfd = errp[1], .uid = uid, .gid = gid};
  pid = spawn_child(&args, cgfd, &spawn_errno);
  if (pid < 0) {
    snprintf(failbuf, sizeof failbuf, "vfork failed: %s", strerror(spawn_errno));
    fail = failbuf;
    goto out;
  }
  close(errp[1]);
  errp[1] = -1;
  int msg[2];
  ssize_t got;
  do got = read(errp[0], msg, sizeof msg);
  while (got < 0 && errno == EINTR);
  if (got == (ssize_t)sizeof msg) {
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    int step = msg[0] >= 1 && msg[0] <= 9 ? msg[0] : 0;
    snprintf(failbuf, sizeof failbuf, "%s failed: %s", STEP_NAMES[step], strerror(msg[1]));
    fail = failbuf;
    pid = -1;
    goto out;
  }
  int fl = fcntl(master, F_GETFL);
  if (fl >= 0) fcntl(master, F_SETFL, fl | O_NONBLOCK);

  /* The exit waiter: one thread per child, blocked in waitpid (as node-pty does). */
  waiter_t *w = calloc(1, sizeof *w);
  napi_value name;
  napi_create_string_utf8(env, "pty_spawn exit", NAPI_AUTO_LENGTH, &name);
  pthread_t th;
  pthread_attr_t attr;
  if (!w || napi_create_threadsafe_function(env, a[9], NULL, name, 0, 1, NULL, NULL, NULL, call_exit, &w->tsfn) != napi_ok) {
    free(w);
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    fail = "could not watch the child";
    pid = -1;
    goto out;
  }
  w->pid = pid;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  if (pthread_create(&th, &attr, wait_child, w) != 0) {
    napi_release_threadsafe_function(w->tsfn, napi_tsfn_abort);
    free(w);
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    fail = "could not start the exit waiter";
    pid = -1;
  }
  pthread_attr_destroy(&attr);

out:
  if (errp[0] >= 0) close(errp[0]);
  if (errp[1] >= 0) close(errp[1]);
  if (cgfd >= 0) close(cgfd);
  free(file);
  free(cwd);
  free(cgroup);
  free_list(argv);
  free_list(envp);
  if (fail) {
    if (master >= 0) close(master);
    if (slave >= 0) close(slave);
    if (input >= 0) close(input);
    THROW(env, fail);
  }
  napi_value obj, v;
  CHECK(env, napi_create_object(env, &obj));
  napi_create_int32(env, pid, &v);
  napi_set_named_property(env, obj, "pid", v);
  napi_create_int32(env, master, &v);
  napi_set_named_property(env, obj, "master", v);
  napi_create_int32(env, slave, &v);
  napi_set_named_property(env, obj, "slave", v);
  napi_create_int32(env, input, &v);
  napi_set_named_property(env, obj, "input", v);
  napi_create_string_utf8(env, pts, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, obj, "pty", v);
  return obj;
}

static napi_value Resize(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value a[3];
  int32_t fd, cols, rows;
  CHECK(env, napi_get_cb_info(env, info, &argc, a, NULL, NULL));
  if (argc != 3) THROW(env, "usage: resize(fd, cols, rows)");
  CHECK(env, napi_get_value_int32(env, a[0], &fd));
  CHECK(env, napi_get_value_int32(env, a[1], &cols));
  CHECK(env, napi_get_value_int32(env, a[2], &rows));
  struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
  if (ioctl(fd, TIOCSWINSZ, &ws) != 0) THROW(env, strerror(errno));
  return NULL;
}

static napi_value Close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value a[1];
  int32_t fd;
  CHECK(env, napi_get_cb_info(env, info, &argc, a, NULL, NULL));
  if (argc != 1) THROW(env, "usage: close(fd)");
  CHECK(env, napi_get_value_int32(env, a[0], &fd));
  if (close(fd) != 0 && errno != EINTR) THROW(env, strerror(errno));
  return NULL;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  export_function(env, exports, "spawn", Spawn);
  export_function(env, exports, "resize", Resize);
  export_function(env, exports, "close", Close);
  init_pty_reader(env, exports);
  return exports;
}
