/**
 * Start the real server as a child process (built JS), on an ephemeral port, with its own
 * DATA_DIR and workspace root. Tests talk to it over real HTTP and WebSockets.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SignJWT } from 'jose';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const MAIN = path.join(ROOT, 'dist/src/main.js');
export const TEST_SECRET = 'test-secret-0123456789abcdef0123456789abcdef';

export interface StartOptions {
  env?: Record<string, string>;
  /** Reuse a directory (restart tests). */
  dir?: string;
  /** Pass no JWT_SECRET (dev mode). */
  devMode?: boolean;
  args?: string[];
}

export interface TestServer {
  url: string;
  wsUrl: string;
  port: number;
  dir: string;
  dataDir: string;
  workspaces: string;
  proc: ChildProcess;
  pid: number;
  /** Every stdout/stderr line so far. */
  output: string[];
  readyLine: string;
  token(claims?: { sub?: string; orgId?: string; roles?: string[]; expiresIn?: string | number }): Promise<string>;
  adminToken: string;
  /** SIGTERM and wait for exit; resolves with the exit code and how long it took. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>;
}

export function tempDir(prefix = 'sm-test-'): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  // Agents may run under other uids (AGENT_UID_RANGE): they must be able to reach their
  // workspace below this folder (DATA_DIR stays private: the server makes it 0700).
  chmodSync(dir, 0o755);
  return dir;
}

export async function sign(claims: { sub?: string; orgId?: string; roles?: string[]; expiresIn?: string | number } = {}, secret = TEST_SECRET): Promise<string> {
  const body: Record<string, unknown> = { roles: claims.roles ?? [] };
  if (claims.orgId !== undefined) body.orgId = claims.orgId;
  return new SignJWT(body)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(claims.sub ?? 'alice')
    .setIssuedAt()
    .setExpirationTime(claims.expiresIn ?? '1h')
    .sign(new TextEncoder().encode(secret));
}

export async function startServer(opts: StartOptions = {}): Promise<TestServer> {
  const dir = opts.dir ?? tempDir();
  const dataDir = path.join(dir, 'data');
  const workspaces = path.join(dir, 'workspaces');
  mkdirSync(dataDir, { recursive: true });
  mkdirSync(path.join(dir, 'home'), { recursive: true });
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    // Agents inherit HOME: a fresh one keeps the machine's dotfiles (pyenv, cargo) out of test shells.
    HOME: path.join(dir, 'home'),
    LANG: 'C.UTF-8',
    SESSION_MANAGER_PORT: '0',
    HOST: '127.0.0.1',
    DATA_DIR: dataDir,
    WORKSPACE_BASE_PATH: workspaces,
    DEPLOY_DIR: path.join(dir, 'deploys'),
    NODE_ID: `test-${path.basename(dir)}`,
    SM_TEST_HOOKS: '1',
    // Tests create sessions by the hundred; test/security/rate-limit.test.ts sets its own limits.
    RATE_LIMIT_SESSIONS_PER_MIN: '0',
    RATE_LIMIT_EXPENSIVE_PER_MIN: '0',
    LOG_LEVEL: 'info',
    ...(opts.devMode ? {} : { JWT_SECRET: TEST_SECRET }),
    ...opts.env,
  };
  const proc = spawn(process.execPath, ['--unhandled-rejections=strict', ...(opts.args ?? []), MAIN], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  const readyLine = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${output.join('\n')}`)), 20_000);
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        output.push(line);
        if (line.startsWith('session-manager ready at ')) {
          clearTimeout(timer);
          resolve(line);
        }
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', (d: Buffer) => output.push(...d.toString().split('\n').filter(Boolean)));
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}:\n${output.join('\n')}`));
    });
  });
  const url = /ready at (http:\/\/[^/\s]+)/.exec(readyLine)![1]!;
  const port = Number(new URL(url).port);
  const adminToken = opts.devMode ? new URL(readyLine.slice('session-manager ready at '.length)).searchParams.get('token')! : await sign({ sub: 'root', roles: ['admin'] });
  return {
    url,
    wsUrl: url.replace('http', 'ws') + '/ws',
    port,
    dir,
    dataDir,
    workspaces,
    proc,
    pid: proc.pid!,
    output,
    readyLine,
    adminToken,
    token: (claims = {}) => sign({ orgId: 'acme', ...claims }),
    stop: (signal = 'SIGTERM') =>
      new Promise((resolve) => {
        const t0 = Date.now();
        if (proc.exitCode !== null || proc.signalCode !== null) return resolve({ code: proc.exitCode, signal: proc.signalCode, ms: 0 });
        proc.once('exit', (code, sig) => resolve({ code, signal: sig, ms: Date.now() - t0 }));
        proc.kill(signal);
      }),
  };
}

export interface ApiResponse<T = any> {
  status: number;
  body: T;
  text: string;
  headers: Headers;
}

/** One HTTP call. `body` objects are sent as JSON; strings are sent as they are. */
export async function api<T = any>(
  server: { url: string },
  method: string,
  p: string,
  opts: { token?: string | undefined; body?: unknown; headers?: Record<string, string> } = {},
): Promise<ApiResponse<T>> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  let body: string | undefined;
  if (opts.body !== undefined) {
    body = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
    headers['content-type'] ??= 'application/json';
  }
  const res = await fetch(server.url + p, { method, headers, body });
  const text = await res.text();
  let parsed: any = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.status, body: parsed as T, text, headers: res.headers };
}

/** Wait until `fn` returns a truthy value (bounded). */
export async function until<T>(fn: () => T | Promise<T>, what: string, timeoutMs = 10_000, everyMs = 25): Promise<NonNullable<T>> {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
