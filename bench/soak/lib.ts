/**
 * Shared pieces of the soak runs (bench/soak/README.md): start the real server as a child
 * on loopback in its own temp directory, sign tokens, call the API, sample a process from
 * /proc, fit a slope. Every child is killed by PID when the run ends, however it ends.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SignJWT } from 'jose';

/** dist/bench/soak → the repository root. */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const MAIN = path.join(ROOT, 'dist/src/main.js');
export const SECRET = 'soak-secret-0123456789abcdef0123456789abcdef';
export const ORG = 'soak';
/** How long the server may take to print its ready line. */
const READY_TIMEOUT_MS = 30_000;

const children = new Set<ChildProcess>();
const cleanup = () => {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }
};
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    cleanup();
    process.exit(130);
  });
}

/** Keep track of a child so it is killed when the run ends. */
export function own(c: ChildProcess): ChildProcess {
  children.add(c);
  c.once('exit', () => children.delete(c));
  return c;
}

export interface Server {
  url: string;
  wsUrl: string;
  pid: number;
  dir: string;
  proc: ChildProcess;
  output: string[];
  stop(): Promise<void>;
}

export async function startServer(env: Record<string, string> = {}): Promise<Server> {
  const dir = mkdtempSync(path.join(tmpdir(), 'sm-soak-'));
  const proc = own(
    spawn(process.execPath, [MAIN], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: dir,
        LANG: 'C.UTF-8',
        SESSION_MANAGER_PORT: '0',
        HOST: '127.0.0.1',
        DATA_DIR: path.join(dir, 'data'),
        WORKSPACE_BASE_PATH: path.join(dir, 'workspaces'),
        DEPLOY_DIR: path.join(dir, 'deploys'),
        NODE_ID: `soak-${path.basename(dir)}`,
        JWT_SECRET: SECRET,
        LOG_LEVEL: 'warn',
        // The soak measures capacity, not the limiter.
        RATE_LIMIT_SESSIONS_PER_MIN: '0',
        RATE_LIMIT_EXPENSIVE_PER_MIN: '0',
        ...env,
      },
    }),
  );
  const output: string[] = [];
  const keep = (line: string) => {
    output.push(line);
    if (output.length > 500) output.splice(0, output.length - 500);
  };
  proc.stderr!.on('data', (d: Buffer) => d.toString().split('\n').filter(Boolean).forEach(keep));
  const ready = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server not ready:\n${output.join('\n')}`)), READY_TIMEOUT_MS);
    let buf = '';
    proc.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        keep(line);
        if (line.startsWith('session-manager ready at ')) {
          clearTimeout(timer);
          resolve(line);
        }
      }
      if (buf.length > 1 << 16) buf = buf.slice(-4096);
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code}):\n${output.join('\n')}`));
    });
  });
  const url = /ready at (http:\/\/[^/\s]+)/.exec(ready)![1]!;
  return {
    url,
    wsUrl: url.replace('http', 'ws') + '/ws',
    pid: proc.pid!,
    dir,
    proc,
    output,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) {
        await new Promise<void>((res) => {
          const t = setTimeout(() => proc.kill('SIGKILL'), 15_000);
          proc.once('exit', () => {
            clearTimeout(t);
            res();
          });
          proc.kill('SIGTERM');
        });
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function token(sub = 'soak-user', orgId = ORG): Promise<string> {
  return new SignJWT({ roles: [], orgId }).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setSubject(sub).setIssuedAt().setExpirationTime('4h').sign(new TextEncoder().encode(SECRET));
}

export async function api(s: { url: string }, tok: string, method: string, p: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(s.url + p, {
    method,
    headers: { authorization: `Bearer ${tok}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, body: parsed };
}

export interface Stats {
  rssMiB: number;
  fds: number;
  threads: number;
  children: number;
}

/** RSS, open descriptors, threads and direct children of a process, from /proc. */
export function stats(pid: number): Stats {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  let children = 0;
  for (const n of readdirSync('/proc')) {
    if (!/^\d+$/.test(n)) continue;
    try {
      const st = readFileSync(`/proc/${n}/stat`, 'utf8');
      if (Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]) === pid) children++;
    } catch {
      /* gone */
    }
  }
  return {
    rssMiB: Math.round((Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024) * 10) / 10,
    fds: readdirSync(`/proc/${pid}/fd`).length,
    threads: readdirSync(`/proc/${pid}/task`).length,
    children,
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Least-squares slope of y over x. */
export function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  if (n < 2) return 0;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

/** `--name value` and `--flag` arguments with numeric defaults. */
export function args<T extends Record<string, number>>(defaults: T): T {
  const out: Record<string, number> = { ...defaults };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-zA-Z-]+)$/.exec(argv[i]!);
    if (!m) continue;
    const key = m[1]!.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    if (!(key in out)) throw new Error(`unknown option --${m[1]}; known: ${Object.keys(defaults).join(', ')}`);
    out[key] = Number(argv[++i]);
    if (!Number.isFinite(out[key])) throw new Error(`--${m[1]} needs a number`);
  }
  return out as T;
}

/** Print the result as one JSON line (for scripts) and a readable block. */
export function report(name: string, result: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ soak: name, at: new Date().toISOString(), ...result })}\n`);
}
