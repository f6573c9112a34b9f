/** Run the built CLI (dist/src/cli/main.js) and drive it inside tmux. */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { ROOT, until } from '../helpers/server.js';

export const CLI = path.join(ROOT, 'dist/src/cli/main.js');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The CLI's environment: only what it needs, so a developer's own variables never leak in. */
export function cliEnv(extra: Record<string, string | undefined>): Record<string, string> {
  const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', LANG: 'C.UTF-8', NO_COLOR: '1' };
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) env[k] = v;
  return env;
}

export function runCli(args: string[], env: Record<string, string>, opts: { cwd?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [CLI, ...args], { env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`session-manager ${args.join(' ')} did not finish:\n${stdout}\n${stderr}`));
    }, opts.timeoutMs ?? 30_000);
    p.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A long-running CLI process (logs --follow, serve) with its output so far. */
export function startCli(args: string[], env: Record<string, string>, cwd?: string): { proc: ChildProcess; out: () => string; err: () => string; exit: Promise<number | null> } {
  const proc = spawn(process.execPath, [CLI, ...args], { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exit = new Promise<number | null>((resolve) => proc.on('close', (code) => resolve(code)));
  return { proc, out: () => out, err: () => err, exit };
}

/** One tmux server on its own socket, so tests never touch a developer's tmux. */
export class Tmux {
  readonly socket = `sm-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

  tmux(...args: string[]): string {
    return execFileSync('tmux', ['-L', this.socket, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  }

  /** A pane running a plain shell with `env` set, `cols` × `rows`. */
  start(env: Record<string, string>, cols = 100, rows = 30): void {
    const envArgs = Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`]);
    this.tmux('-f', '/dev/null', 'new-session', '-d', '-s', 't', '-x', String(cols), '-y', String(rows), ...envArgs, 'bash --norc --noprofile');
    this.tmux('set-option', '-t', 't', 'status', 'off');
  }

  type(text: string): void {
    this.tmux('send-keys', '-t', 't', '-l', text);
  }

  keys(...keys: string[]): void {
    this.tmux('send-keys', '-t', 't', ...keys);
  }

  /** The visible pane, trailing blank lines dropped. */
  capture(): string {
    return this.tmux('capture-pane', '-p', '-t', 't').replace(/\n+$/, '');
  }

  resize(cols: number, rows: number): void {
    this.tmux('resize-window', '-t', 't', '-x', String(cols), '-y', String(rows));
  }

  async waitFor(pred: (screen: string) => boolean, what: string, timeoutMs = 20_000): Promise<string> {
    try {
      return await until(() => {
        const s = this.capture();
        return pred(s) ? s : undefined;
      }, what, timeoutMs, 50);
    } catch (err) {
      throw new Error(`${(err as Error).message}; pane:\n${this.capture()}`);
    }
  }

  kill(): void {
    try {
      this.tmux('kill-server');
    } catch {
      // Already gone.
    }
  }
}

/** Lines of a screen that are exactly `text` (the echoed command line does not count). */
export function exactLines(screen: string, text: string): number {
  return screen.split('\n').filter((l) => l.trimEnd() === text).length;
}
