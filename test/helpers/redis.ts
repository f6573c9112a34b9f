/**
 * A private `redis-server` per test file: a free loopback port, no persistence, stopped by
 * PID. Never touches the system Redis on 6379. `restart()` stops (if running) and starts
 * again on the same port, so clients see a real outage and a real reconnect.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

export const REDIS_SERVER = process.env.REDIS_SERVER_BIN ?? '/usr/bin/redis-server';
/** How long a start or a stop may take before the helper gives up (slow shared CI box). */
const START_TIMEOUT_MS = 15_000;
const STOP_GRACE_MS = 5_000;

export interface TestRedis {
  url: string;
  port: number;
  /** PID of the current server process (changes after `restart()`). */
  readonly pid: number;
  readonly running: boolean;
  /** SIGTERM by PID, SIGKILL after a grace period; resolves once the process has exited. Safe twice. `restart()` may follow. */
  stop(): Promise<void>;
  /** Stop if running, then start again on the same port. */
  restart(): Promise<void>;
}

/** A port the kernel just handed out for port 0 (bound, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error('no free port'))));
    });
  });
}

/** Resolves when `PING` on the port answers `+PONG`. */
function pingOnce(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host: '127.0.0.1' });
    let buf = '';
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(1000, () => done(false));
    sock.on('error', () => done(false));
    sock.on('connect', () => sock.write('PING\r\n'));
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      if (buf.includes('\r\n')) done(buf.startsWith('+PONG'));
    });
  });
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of live) if (p.pid) try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ }
});

export async function startRedis(): Promise<TestRedis> {
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'sm-redis-'));
  let proc: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  const launch = async (): Promise<void> => {
    mkdirSync(dir, { recursive: true });
    const child = spawn(
      REDIS_SERVER,
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no', '--loglevel', 'warning'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-4000)));
    child.stderr?.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-4000)));
    live.add(child);
    exited = new Promise((resolve) => child.once('exit', () => { live.delete(child); resolve(); }));
    let spawnError: Error | undefined;
    child.once('error', (e) => (spawnError = e));
    proc = child;
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (spawnError) throw spawnError;
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`redis-server exited at start: ${out}`);
      if (await pingOnce(port)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    await stop();
    throw new Error(`redis-server did not answer on ${port} within ${START_TIMEOUT_MS} ms: ${out}`);
  };

  const stop = async (): Promise<void> => {
    const child = proc;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const pid = child.pid!;
    try { process.kill(pid, 'SIGTERM'); } catch { /* already gone */ }
    const timer = setTimeout(() => { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }, STOP_GRACE_MS);
    await exited;
    clearTimeout(timer);
  };

  await launch();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    get pid() { return proc?.pid ?? 0; },
    get running() { return !!proc && proc.exitCode === null && proc.signalCode === null; },
    async stop() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
    async restart() {
      await stop();
      await launch();
    },
  };
}
