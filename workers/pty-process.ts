/**
 * The only module that imports node-pty. It launches an agent in a pseudo-terminal and
 * returns failures as values (bad cwd, missing command) instead of throwing. Exit is
 * reported once, after the trailing output has been read. Resize and write after exit are
 * ignored. Kill signals the agent's whole process tree, not just the leader.
 */
import { access, stat } from 'node:fs/promises';
import { closeSync, constants as fsConstants, openSync, readSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import * as pty from 'node-pty';
import { signalAgent } from './process-tree.js';
import { agentArgv, killCgroup } from './cgroup.js';
import { PtyWriter } from './pty-writer.js';

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
  write(data: string): void;
  resize(cols: number, rows: number): void;
  pause(): void;
  resume(): void;
  /** Signal the leader only (the API's `signal`). */
  signal(sig: NodeJS.Signals): void;
  /** Signal every process of the agent (kill). */
  signalTree(sig: NodeJS.Signals | NodeJS.Signals[]): Promise<number>;
  readonly exited: boolean;
  /** The agent's leftover processes were already killed when it exited (no second sweep needed). */
  readonly reaped: boolean;
}

export type LaunchResult = { ok: true; pty: PtyProcess } | { ok: false; error: string };

/**
 * After the agent exits, its remaining output is read until the pty reports EOF (EIO), for
 * at most this long. node-pty itself gives the socket 200 ms and then destroys it, which
 * loses the trailing bytes of a busy session on a loaded machine.
 */
const EXIT_DRAIN_MAX_MS = 5000;
/**
 * After the agent's processes are gone, release our hold on the terminal this much later —
 * only when the rest could not be read at once (see drainBeforeDestroy).
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
      await access(known, fsConstants.X_OK);
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
    if (!(await stat(spec.cwd)).isDirectory()) return { ok: false, error: `working directory is not a directory: ${spec.cwd}` };
  } catch {
    return { ok: false, error: `working directory does not exist: ${spec.cwd}` };
  }
  const file = await resolveCommand(spec.command, spec.env, spec.cwd);
  if (!file) return { ok: false, error: `command not found: ${spec.command}` };
  let term: pty.IPty;
  try {
    const argv = agentArgv(file, spec.args, { cgroup: spec.cgroup, runAs: spec.runAs });
    term = pty.spawn(argv.file, argv.args, {
      name: spec.env.TERM ?? 'xterm-256color',
      cols: spec.cols,
      rows: spec.rows,
      cwd: spec.cwd,
      env: spec.env,
    });
  } catch (err) {
    return { ok: false, error: `spawn failed: ${(err as Error).message}` };
  }
  // node-pty's 'utf8' encoding also sets IUTF8 on the terminal (line editing by character);
  // keep that, but read raw bytes: the actor counts offsets in bytes and decodes once.
  const rs = (term as unknown as { _socket?: { _readableState?: { decoder: unknown; encoding: unknown } } })._socket?._readableState;
  if (rs) {
    rs.decoder = null;
    rs.encoding = null;
  }
  return { ok: true, pty: wrap(term, spec.cgroup) };
}

function wrap(term: pty.IPty, cgroup: string | undefined): PtyProcess {
  let exited = false;
  const pid = term.pid;
  const fd = (term as unknown as { fd?: number }).fd;
  const dataCbs: Array<(d: Buffer) => void> = [];
  const drain = drainBeforeDestroy(term, pid, cgroup, typeof fd === 'number' ? () => readRest(fd, dataCbs) : undefined);
  const writer = typeof fd === 'number' && drain.tracked ? new PtyWriter(fd, () => !exited && drain.fdOpen) : undefined;
  const exitCbs: Array<(e: PtyExit) => void> = [];
  term.onExit(({ exitCode, signal }) => {
    exited = true;
    writer?.dispose();
    const sigName = signal ? (SIGNAL_NAMES.get(signal) ?? String(signal)) : null;
    const e: PtyExit = { exitCode: sigName ? null : exitCode, signal: sigName };
    for (const cb of exitCbs) cb(e);
  });
  return {
    pid,
    get exited() {
      return exited;
    },
    get reaped() {
      return drain.reaped;
    },
    onData: (cb) => {
      dataCbs.push(cb);
      term.onData((d: string | Buffer) => cb(typeof d === 'string' ? Buffer.from(d, 'utf8') : d));
    },
    onExit: (cb) => {
      exitCbs.push(cb);
    },
    write: (data) => {
      if (exited) return;
      if (writer) writer.write(data);
      else term.write(data);
    },
    resize: (cols, rows) => {
      if (exited) return;
      try {
        term.resize(cols, rows);
      } catch {
        // The pty closed between the check and the call.
      }
    },
    pause: () => {
      if (!exited) term.pause();
    },
    resume: () => {
      if (!exited) term.resume();
    },
    signal: (sig) => {
      try {
        process.kill(pid, sig);
      } catch {
        // Already gone.
      }
    },
    signalTree: async (sig) => {
      const n = await signalAgent(pid, sig, cgroup);
      // A kill that found the agent alone needs no second sweep when it exits.
      drain.lone = n <= 1;
      return n;
    },
  };
}

/**
 * Zero bytes lost at exit, and no waiting either.
 *
 * When the agent exits, its last output may still sit in the kernel's flip buffer; once no
 * process holds the terminal's slave side, a read of the master can return EIO before that
 * data reaches it (measured here: a 3 MB flood under CPU load lost its last line in 5-6 of 6
 * runs). So the actor holds the slave open itself while the agent runs.
 *
 * node-pty learns of the exit from its wait thread and then registers `once('close')` on
 * the terminal; we hook that call to learn of the exit at once. Then: keep reading, end
 * whatever else of the agent holds the terminal, and release our slave hold, so the master
 * reads every pending byte and then EOF, the socket closes by itself and node-pty reports
 * the exit. node-pty's own fallback — destroying the socket 200 ms after the exit, unread
 * data and all — is intercepted; a real destroy happens only after EXIT_DRAIN_MAX_MS.
 */
/**
 * Read what is left in the master at once, handing it to the data callbacks: true when the
 * terminal said EAGAIN (nothing left: a non-blocking read of a pty master first waits for
 * the kernel's pending buffer work), false on anything else.
 */
function readRest(fd: number, cbs: Array<(d: Buffer) => void>): boolean {
  const buf = Buffer.allocUnsafe(64 * 1024);
  let total = 0;
  while (total < REST_READ_MAX_BYTES) {
    let n: number;
    try {
      n = readSync(fd, buf, 0, buf.length, null);
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'EAGAIN';
    }
    if (n <= 0) return false;
    total += n;
    const chunk = Buffer.from(buf.subarray(0, n));
    for (const cb of cbs) cb(chunk);
  }
  return false;
}

function drainBeforeDestroy(term: pty.IPty, pid: number, cgroup: string | undefined, readRestNow: (() => boolean) | undefined): { readonly reaped: boolean; lone: boolean; readonly fdOpen: boolean; readonly tracked: boolean } {
  // fdOpen turns false before the master fd can close: a write after that could land in a
  // reused descriptor.
  const state = { reaped: false, lone: false, fdOpen: true, tracked: false };
  type Sock = { destroy: (...a: unknown[]) => unknown; resume: () => void; once: (e: string, f: () => void) => void };
  const t = term as unknown as { _socket?: Sock; _pty?: string; once?: (e: string, l: (...a: unknown[]) => void) => void };
  const sock = t._socket;
  let slave: number | undefined;
  try {
    if (t._pty) slave = openSync(t._pty, fsConstants.O_RDWR | fsConstants.O_NOCTTY);
  } catch {
    // The child already exited and the terminal is gone: nothing left to protect.
  }
  const releaseSlave = () => {
    if (slave === undefined) return;
    try {
      closeSync(slave);
    } catch {
      // already closed
    }
    slave = undefined;
  };
  if (!sock || typeof sock.destroy !== 'function' || typeof t.once !== 'function') {
    releaseSlave();
    return state;
  }
  state.tracked = true;
  const destroySock = sock.destroy.bind(sock);
  const realDestroy = (...args: unknown[]) => {
    state.fdOpen = false;
    return destroySock(...args);
  };
  let closed = false;
  let ended = false;
  let draining = false;
  sock.once('end', () => {
    ended = true;
    state.fdOpen = false;
  });
  sock.once('close', () => {
    closed = true;
    state.fdOpen = false;
    releaseSlave();
  });
  const startDrain = () => {
    if (draining || closed) return;
    draining = true;
    sock.resume();
    const sweep = cgroup ? Promise.resolve(killCgroup(cgroup) ? 1 : 0) : state.lone ? killGroup(pid) : signalAgent(pid, 'SIGKILL');
    void sweep
      .catch(() => 0)
      .then(() => {
        state.reaped = true;
        // Nobody but us holds the terminal now, so nothing more can be written to it: read
        // the rest at once and let go (the master then reads EOF). Only if the stream still
        // holds chunks of its own (they go first) or the read ended oddly, wait instead.
        const buffered = (sock as unknown as { readableLength?: number }).readableLength ?? 0;
        if (state.fdOpen && !closed && buffered === 0 && readRestNow?.()) releaseSlave();
        else setTimeout(releaseSlave, SLAVE_RELEASE_DELAY_MS);
      });
    const safety = setTimeout(() => {
      releaseSlave();
      if (!closed) realDestroy();
    }, EXIT_DRAIN_MAX_MS);
    sock.once('close', () => clearTimeout(safety));
  };
  const origOnce = t.once.bind(term);
  t.once = (event: string, listener: (...a: unknown[]) => void) => {
    // node-pty's exit handler is the one that waits for the socket's 'close'.
    if (event === 'close') startDrain();
    return origOnce(event, listener);
  };
  sock.destroy = (...args: unknown[]) => {
    if (closed) return sock;
    // EOF, EIO or an error: the stream is done for real.
    if (ended || args[0] instanceof Error) {
      releaseSlave();
      return realDestroy(...args);
    }
    // node-pty's 200 ms fallback: keep draining instead.
    startDrain();
    return sock;
  };
  return state;
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
