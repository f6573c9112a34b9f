import { spawn } from 'node:child_process';
import { StringDecoder } from 'node:string_decoder';

/** After SIGTERM to the build's process group, this long before SIGKILL. */
export const BUILD_KILL_GRACE_MS = 2000;
/** After the shell exits, wait this long for its pipes to close (a background child may hold them). */
const STDIO_DRAIN_MS = 2000;
/** Output is forwarded in pieces: at most this often… */
export const BUILD_OUTPUT_FLUSH_MS = 100;
/** …or when this much is buffered. Keeps event counts sane for chatty builds. */
export const BUILD_OUTPUT_CHUNK_BYTES = 8 * 1024;
/** Total build output kept as events; the rest is counted, not stored (a job's log stays bounded). */
export const BUILD_OUTPUT_MAX_BYTES = 1024 * 1024;

export interface BuildResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  cancelled: boolean;
  /** Bytes of output the build wrote (including any past the cap). */
  outputBytes: number;
  /** Set when the command could not be started at all. */
  spawnError?: string;
}

export interface BuildRun {
  /** The process group id (the shell's pid). */
  pid: number | undefined;
  done: Promise<BuildResult>;
  /** Kill the whole process group (SIGTERM, then SIGKILL). Safe to call twice. */
  cancel(): void;
}

export interface BuildOptions {
  command: string;
  cwd: string;
  env: Record<string, string>;
  timeoutMs: number;
  /** Output text in order, stdout and stderr merged, never splitting a UTF-8 character. */
  onOutput(text: string): void;
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // Group already gone.
  }
}

/**
 * Run a build command with `sh -c` in its own process group (`detached: true`), so a
 * timeout or cancel kills the command and everything it started. Not a pty: only
 * `workers/pty-process.ts` may import node-pty (see docs/deploy.md); builds run with
 * `CI=1` and `TERM=dumb`, which is what build tools expect without a terminal anyway.
 */
export function runBuild(o: BuildOptions): BuildRun {
  let outputBytes = 0;
  let kept = 0;
  let truncated = false;
  let pending = '';
  let flushTimer: NodeJS.Timeout | undefined;
  const flush = () => {
    if (flushTimer) clearTimeout(flushTimer);
    flushTimer = undefined;
    if (!pending) return;
    const text = pending;
    pending = '';
    o.onOutput(text);
  };
  const take = (text: string) => {
    if (!text) return;
    const n = Buffer.byteLength(text);
    outputBytes += n;
    if (truncated) return;
    if (kept + n > BUILD_OUTPUT_MAX_BYTES) {
      truncated = true;
      pending += `\n[build output truncated after ${BUILD_OUTPUT_MAX_BYTES} bytes]\n`;
      flush();
      return;
    }
    kept += n;
    pending += text;
    if (Buffer.byteLength(pending) >= BUILD_OUTPUT_CHUNK_BYTES) flush();
    else flushTimer ??= setTimeout(flush, BUILD_OUTPUT_FLUSH_MS);
  };

  let child;
  try {
    child = spawn('sh', ['-c', o.command], { cwd: o.cwd, env: o.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    return {
      pid: undefined,
      done: Promise.resolve({ exitCode: null, signal: null, timedOut: false, cancelled: false, outputBytes: 0, spawnError: (err as Error).message }),
      cancel: () => {},
    };
  }
  const pid = child.pid;
  let timedOut = false;
  let cancelled = false;
  let killTimer: NodeJS.Timeout | undefined;
  const stop = () => {
    if (pid === undefined || killTimer) return;
    killGroup(pid, 'SIGTERM');
    killTimer = setTimeout(() => killGroup(pid, 'SIGKILL'), BUILD_KILL_GRACE_MS);
    killTimer.unref();
  };
  const timeout = setTimeout(() => {
    timedOut = true;
    stop();
  }, o.timeoutMs);
  timeout.unref();

  const outDec = new StringDecoder('utf8');
  const errDec = new StringDecoder('utf8');
  child.stdout!.on('data', (b: Buffer) => take(outDec.write(b)));
  child.stderr!.on('data', (b: Buffer) => take(errDec.write(b)));

  const done = new Promise<BuildResult>((resolve) => {
    let spawnError: string | undefined;
    child.once('error', (err) => {
      spawnError = err.message;
      // 'exit' may not follow a spawn failure.
      if (child.exitCode === null && child.signalCode === null && pid === undefined) finish(null, null);
    });
    let finished = false;
    const finish = (code: number | null, signal: NodeJS.Signals | null) => {
      if (finished) return;
      finished = true;
      clearTimeout(timeout);
      // The shell is gone; anything it left in its group goes with it.
      if (pid !== undefined) killGroup(pid, 'SIGKILL');
      if (killTimer) clearTimeout(killTimer);
      const drained = new Promise<void>((r) => {
        let open = 2;
        const one = () => {
          if (--open === 0) r();
        };
        if (child.stdout!.readableEnded || child.stdout!.destroyed) one();
        else child.stdout!.once('close', one);
        if (child.stderr!.readableEnded || child.stderr!.destroyed) one();
        else child.stderr!.once('close', one);
      });
      const limit = new Promise<void>((r) => setTimeout(r, STDIO_DRAIN_MS).unref());
      void Promise.race([drained, limit]).then(() => {
        child.stdout!.destroy();
        child.stderr!.destroy();
        take(outDec.end());
        take(errDec.end());
        flush();
        const result: BuildResult = { exitCode: code, signal, timedOut, cancelled, outputBytes };
        if (spawnError) result.spawnError = spawnError;
        resolve(result);
      });
    };
    child.once('exit', (code, signal) => finish(code, signal));
  });

  return {
    pid,
    done,
    cancel: () => {
      cancelled = true;
      stop();
    },
  };
}
