/**
 * The only module that imports node-pty. It launches an agent in a pseudo-terminal and
 * returns failures as values (bad cwd, missing command) instead of throwing. Exit is
 * reported once, after the trailing output has been read. Resize and write after exit are
 * ignored. Kill signals the agent's whole process tree, not just the leader.
 */
import { access, stat } from 'node:fs/promises';
import { constants as fsConstants } from 'node:fs';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import * as pty from 'node-pty';
import { signalAgent } from './process-tree.js';

export interface PtySpec {
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
  onData(cb: (data: string) => void): void;
  onExit(cb: (exit: PtyExit) => void): void;
  write(data: string): void;
  resize(cols: number, rows: number): void;
  pause(): void;
  resume(): void;
  /** Signal the leader only (the API's `signal`). */
  signal(sig: NodeJS.Signals): void;
  /** Signal every process of the agent (kill). */
  signalTree(sig: NodeJS.Signals): Promise<number>;
  readonly exited: boolean;
}

export type LaunchResult = { ok: true; pty: PtyProcess } | { ok: false; error: string };

/** While paused, how often to look whether the child has exited (see `pause`). */
const EXIT_WATCH_MS = 20;

const SIGNAL_NAMES = new Map<number, string>(Object.entries(osConstants.signals).map(([k, v]) => [v, k]));

export async function resolveCommand(command: string, env: Record<string, string>, cwd: string): Promise<string | undefined> {
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
    term = pty.spawn(file, spec.args, {
      name: spec.env.TERM ?? 'xterm-256color',
      cols: spec.cols,
      rows: spec.rows,
      cwd: spec.cwd,
      env: spec.env,
    });
  } catch (err) {
    return { ok: false, error: `spawn failed: ${(err as Error).message}` };
  }
  return { ok: true, pty: wrap(term) };
}

function wrap(term: pty.IPty): PtyProcess {
  let exited = false;
  let exitWatch: NodeJS.Timeout | undefined;
  const pid = term.pid;
  const exitCbs: Array<(e: PtyExit) => void> = [];
  term.onExit(({ exitCode, signal }) => {
    exited = true;
    if (exitWatch) clearInterval(exitWatch);
    exitWatch = undefined;
    const sigName = signal ? (SIGNAL_NAMES.get(signal) ?? String(signal)) : null;
    const e: PtyExit = { exitCode: sigName ? null : exitCode, signal: sigName };
    for (const cb of exitCbs) cb(e);
  });
  return {
    pid,
    get exited() {
      return exited;
    },
    onData: (cb) => {
      term.onData(cb);
    },
    onExit: (cb) => {
      exitCbs.push(cb);
    },
    write: (data) => {
      if (!exited) term.write(data);
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
      if (exited) return;
      term.pause();
      // node-pty gives a dead child's socket 200 ms to close before destroying it, and a
      // paused socket never reads its trailing output. Once the child is gone (node-pty
      // sets `_boundClose`), resume so the last bytes are read before exit is reported.
      if (!exitWatch) {
        exitWatch = setInterval(() => {
          if ((term as unknown as { _boundClose?: boolean })._boundClose) {
            term.resume();
            clearInterval(exitWatch);
            exitWatch = undefined;
          }
        }, EXIT_WATCH_MS);
      }
    },
    resume: () => {
      if (exitWatch) clearInterval(exitWatch);
      exitWatch = undefined;
      if (!exited) term.resume();
    },
    signal: (sig) => {
      try {
        process.kill(pid, sig);
      } catch {
        // Already gone.
      }
    },
    signalTree: (sig) => signalAgent(pid, sig),
  };
}
