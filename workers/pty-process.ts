/**
 * Agents in pseudo-terminals. It launches an agent through the native spawner
 * (`native/pty_spawn.c`: vfork semantics, so the server is not copied; the child is born in
 * its cgroup, takes the terminal as its controlling tty and drops to its uid itself) and returns
 * failures as values (bad cwd, missing command) instead of throwing. Exit is reported once,
 * after the trailing output has been read. Input, size and signals are the supervisor's
 * (through the terminal's second descriptor, `inputFd`, and the agent's pid). Kill signals
 * the agent's whole process tree, not just the leader.
 */
import { access, stat } from 'node:fs/promises';
import { accessSync, constants as fsConstants, statSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import { loadNative } from '../src/native.js';
import { signalAgent } from './process-tree.js';
import { killCgroup } from './cgroup.js';

interface NativeSpawner {
  spawn(
    file: string,
    argv: string[],
    envp: string[],
    cwd: string,
    cols: number,
    rows: number,
    cgroupDir: string | null,
    uid: number,
    gid: number,
    onExit: (exitCode: number, signal: number) => void,
  ): { pid: number; master: number; slave: number; input: number; pty: string };
  close(fd: number): void;
  /** Reads a terminal's output on this thread's loop (native/pty_reader.c). */
  PtyReader: new (fd: number, onData: (d: Buffer) => void, onEnd: (errno: number) => void) => PtyReader;
}

interface PtyReader {
  pause(): void;
  resume(): void;
  /** Stop for good and close the descriptor. */
  close(): void;
  /** Read what the terminal holds now, here; true when it stopped because nothing more was there. */
  drain(maxBytes: number): boolean;
}

const spawner = loadNative<NativeSpawner>('pty_spawn');

export interface PtySpec {
  /** The session's cgroup (workers/cgroup.ts), when the machine has them. */
  cgroup?: string | undefined;
  /** Run the agent under this identity (AGENT_UID_RANGE). */
  runAs?: { uid: number; gid: number } | undefined;
  command: string;
  args: string[];
  cwd: string;
  env: Record<string, string>;
  cols: number;
  rows: number;
}

export interface PtyExit {
  exitCode: number | null;
  signal: string | null;
}

export interface PtyProcess {
  readonly pid: number;
  /** Raw output bytes, as read (UTF-8 boundaries are the actor's business). */
  onData(cb: (data: Buffer) => void): void;
  onExit(cb: (exit: PtyExit) => void): void;
  /**
   * A second descriptor of the terminal (close-on-exec), for the supervisor: it writes the
   * keystrokes, sets the size and closes it itself (src/supervisor/actor-pool.ts). Absent for
   * an agent on pipes.
   */
  readonly inputFd?: number;
  pause(): void;
  resume(): void;
  /** Signal every process of the agent (kill). */
  signalTree(sig: NodeJS.Signals | NodeJS.Signals[]): Promise<number>;
  readonly exited: boolean;
  /** The agent's leftover processes were already killed when it exited (no second sweep needed). */
  readonly reaped: boolean;
}

export type LaunchResult = { ok: true; pty: PtyProcess } | { ok: false; error: string };

/** Terminals of this thread whose exit has not been reported yet (spawned, not yet closed). */
let live = 0;

/** How many ptys of this thread are live: a worker thread may end only at zero (DESIGN §1). */
export function livePtys(): number {
  return live;
}

/** After the agent exits, its remaining output is read until EOF (EIO), for at most this long. */
const EXIT_DRAIN_MAX_MS = 5000;
/**
 * After the agent's processes are gone, release our hold on the terminal this much later —
 * only when the rest could not be read at once (see wrap).
 */
const SLAVE_RELEASE_DELAY_MS = 20;
/** Upper bound of the synchronous read of what an exited agent left in the terminal. */
const REST_READ_MAX_BYTES = 16 * 1024 * 1024;

const SIGNAL_NAMES = new Map<number, string>(Object.entries(osConstants.signals).map(([k, v]) => [v, k]));

/** Commands found on a PATH before (per worker): one access() confirms instead of a PATH walk. */
const resolved = new Map<string, string>();

export async function resolveCommand(command: string, env: Record<string, string>, cwd: string): Promise<string | undefined> {
  const key = command.includes('/') ? `${cwd}\0${command}` : `${env.PATH ?? ''}\0${command}`;
  const known = resolved.get(key);
  if (known) {
    try {
      // A local metadata lookup: done in place rather than through the pool and back.
      accessSync(known, fsConstants.X_OK);
      return known;
    } catch {
      resolved.delete(key);
    }
  }
  const found = await searchCommand(command, env, cwd);
  if (found) {
    if (resolved.size > 256) resolved.clear();
    resolved.set(key, found);
  }
  return found;
}

async function searchCommand(command: string, env: Record<string, string>, cwd: string): Promise<string | undefined> {
  const candidates = command.includes('/')
    ? [path.resolve(cwd, command)]
    : (env.PATH ?? '').split(':').filter(Boolean).map((dir) => path.join(dir, command));
  for (const c of candidates) {
    try {
      await access(c, fsConstants.X_OK);
      if ((await stat(c)).isFile()) return c;
    } catch {
      // Not here.
    }
  }
  return undefined;
}

export async function launchPty(spec: PtySpec): Promise<LaunchResult> {
  try {
    if (!statSync(spec.cwd).isDirectory()) return { ok: false, error: `working directory is not a directory: ${spec.cwd}` };
  } catch {
    return { ok: false, error: `working directory does not exist: ${spec.cwd}` };
  }
  const file = await resolveCommand(spec.command, spec.env, spec.cwd);
  if (!file) return { ok: false, error: `command not found: ${spec.command}` };
  // PWD names the working directory, as a terminal's shell expects (node-pty set it too).
  const envp = Object.entries({ ...spec.env, PWD: spec.cwd }).map(([k, v]) => `${k}=${v}`);
  let proc: PtyProcess;
  // The exit arrives later, on this thread's loop; the wrapper takes it over right away.
  let onChildExit: ((code: number, sig: number) => void) | undefined;
  try {
    const r = spawner.spawn(
      file,
      [file, ...spec.args],
      envp,
      spec.cwd,
      spec.cols,
      spec.rows,
      spec.cgroup ?? null,
      spec.runAs?.uid ?? -1,
      spec.runAs?.gid ?? -1,
      (code, sig) => onChildExit?.(code, sig),
    );
    proc = wrap(r, spec.cgroup, (cb) => (onChildExit = cb));
  } catch (err) {
    return { ok: false, error: `spawn failed: ${(err as Error).message}` };
  }
  return { ok: true, pty: proc };
}

/**
 * Zero bytes lost at exit, and no waiting either.
 *
 * When the agent exits, its last output may still sit in the kernel's buffers; once no
 * process holds the terminal's slave side, a read of the master can return EIO before that
 * data reaches it (measured here: a 3 MB flood under CPU load lost its last line in 5-6 of 6
 * runs). So the server holds the slave open itself (the spawner returns it) while the agent
 * runs. When the agent exits: kill whatever else of it holds the terminal; then nothing can
 * write to it any more, so read the rest at once (until EAGAIN) and let go of the slave; the
 * master then reads EOF (EIO), the reader ends, and the exit is reported.
 */
function wrap(r: { pid: number; master: number; slave: number; input: number }, cgroup: string | undefined, onChildExit: (cb: (code: number, sig: number) => void) => void): PtyProcess {
  const { pid, master: fd } = r;
  let slave: number | undefined = r.slave;
  let closed = false;
  let reported = false;
  let draining = false;
  let reaped = false;
  let lone = false;
  let exit: PtyExit | undefined;
  let safety: NodeJS.Timeout | undefined;
  const dataCbs: Array<(d: Buffer) => void> = [];
  const exitCbs: Array<(e: PtyExit) => void> = [];

  const releaseSlave = () => {
    if (slave === undefined) return;
    try {
      spawner.close(slave);
    } catch {
      // already closed
    }
    slave = undefined;
  };
  live++;
  const report = () => {
    if (reported || !closed || !exit) return;
    reported = true;
    live--;
    for (const cb of exitCbs) cb(exit);
  };
  // The master's reads come straight to the data callbacks: raw bytes (the actor counts
  // offsets in bytes, decodes once).
  const finish = () => {
    if (closed) return;
    closed = true;
    clearTimeout(safety);
    reader.close();
    releaseSlave();
    report();
  };
  // EOF or EIO: the terminal's last holder is gone and everything was read.
  const reader = new spawner.PtyReader(
    fd,
    (d) => {
      for (const cb of dataCbs) cb(d);
    },
    () => finish(),
  );

  const startDrain = () => {
    if (draining || closed) return;
    draining = true;
    reader.resume();
    const sweep = cgroup ? Promise.resolve(killCgroup(cgroup) ? 1 : 0) : lone ? killGroup(pid) : signalAgent(pid, 'SIGKILL');
    void sweep
      .catch(() => 0)
      .then(() => {
        reaped = true;
        // Nobody but us holds the terminal now, so nothing more can be written to it: read
        // the rest at once and let go. Only if the read ended oddly, wait a moment instead.
        if (!closed && reader.drain(REST_READ_MAX_BYTES)) releaseSlave();
        else setTimeout(releaseSlave, SLAVE_RELEASE_DELAY_MS);
      });
    safety = setTimeout(finish, EXIT_DRAIN_MAX_MS);
  };
  onChildExit((code, sig) => {
    const sigName = sig ? (SIGNAL_NAMES.get(sig) ?? String(sig)) : null;
    exit = { exitCode: sigName ? null : code, signal: sigName };
    startDrain();
    report();
  });

  return {
    pid,
    get exited() {
      return reported;
    },
    get reaped() {
      return reaped;
    },
    onData: (cb) => {
      dataCbs.push(cb);
    },
    onExit: (cb) => {
      exitCbs.push(cb);
    },
    inputFd: r.input,
    pause: () => {
      if (!reported) reader.pause();
    },
    resume: () => {
      if (!reported) reader.resume();
    },
    signalTree: async (sig) => {
      const n = await signalAgent(pid, sig, cgroup);
      // A kill that found the agent alone needs no second sweep when it exits.
      lone = n <= 1;
      return n;
    },
  };
}

/** SIGKILL the agent's process group only (when a kill just found it alone). */
async function killGroup(pid: number): Promise<number> {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // gone
  }
  return 1;
}
