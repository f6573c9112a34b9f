/**
 * DATA_DIR and the workspaces on small tmpfs mounts that fill up, then turn read-only
 * (root ignores file modes, so "permission denied" is played by a read-only mount: EROFS).
 * Every write must fail with a clear error (503/507 naming the storage, not a 500
 * internal_error, and never a 2xx for something that was not stored), the server must keep
 * serving, no partial file may be left, and writes must work again once space is back.
 * A restart on a read-only DATA_DIR stops with one line that names it.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { api, startServer, tempDir, type TestServer } from '../helpers/server.js';
import { auditJson, killAll, leftoversUnder } from './helpers.js';

/** Size of each tmpfs: room for a server's files, quickly filled by a filler file. */
const MOUNT_SIZE = '4m';
const mounts: string[] = [];
const servers: TestServer[] = [];
const dirs: string[] = [];

function mountTmpfs(at: string): void {
  mkdirSync(at, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${MOUNT_SIZE},mode=0755`, 'tmpfs', at]);
  mounts.push(at);
}

/** Fill a mount to the last byte (the filler's own write fails with ENOSPC, as intended). */
function fill(at: string): void {
  try {
    execFileSync('sh', ['-c', `head -c 64000000 /dev/zero > ${at}/.filler`], { stdio: 'ignore' });
  } catch {
    // ENOSPC: full.
  }
}

afterAll(async () => {
  for (const s of servers) if (s.proc.exitCode === null && s.proc.signalCode === null) await s.stop();
  for (const d of dirs) killAll(leftoversUnder(d).map((p) => p.pid));
  for (const m of mounts.reverse()) {
    try {
      execFileSync('umount', [m]);
    } catch {
      execFileSync('umount', ['-l', m]);
    }
  }
});

async function setup(): Promise<{ s: TestServer; token: string; dir: string; data: string; ws: string; conv: string }> {
  const dir = tempDir('sm-disk-');
  dirs.push(dir);
  const data = path.join(dir, 'data');
  const ws = path.join(dir, 'workspaces');
  mountTmpfs(data);
  mountTmpfs(ws);
  const s = await startServer({ dir, env: { LOG_LEVEL: 'warn' } });
  servers.push(s);
  const token = await s.token();
  expect((await api(s, 'POST', '/api/dev-envs', { token, body: { orgId: 'acme', projectName: 'p', description: 'disk' } })).status).toBe(201);
  expect((await api(s, 'POST', '/api/planner/acme/p/cards', { token, body: { id: 'c1', title: 'card' } })).status).toBe(201);
  const conv = await api(s, 'POST', '/api/conversations/acme/p', { token, body: { title: 'disk' } });
  expect(conv.status).toBe(201);
  return { s, token, dir, data, ws, conv: conv.body.id };
}

/** Writes that touch DATA_DIR or a workspace, one of each kind. */
const WRITES = (conv: string): Array<[string, string, unknown]> => [
  ['POST', '/api/sessions', { orgId: 'acme', projectName: 'p', agent: 'script', command: 'sleep 30' }],
  ['POST', '/api/sessions', { orgId: 'acme', projectName: 'fresh', agent: 'script', command: 'sleep 30' }],
  ['POST', `/api/conversations/acme/p/${conv}/messages`, { role: 'user', content: 'hello' }],
  ['POST', '/api/conversations/acme/p', { title: 'another' }],
  ['POST', '/api/planner/acme/p/cards/c1/logs', { message: 'progress' }],
  ['PUT', '/api/planner/acme/p', { cards: [{ id: 'c1', title: 'replaced' }] }],
  ['POST', '/api/dev-envs', { orgId: 'acme', projectName: 'q', description: 'x' }],
  ['POST', '/api/cohost/acme/p', {}],
  ['POST', '/api/deploy/local/acme/p', undefined],
  ['POST', '/api/templates/apply', { templateId: 'plain-html', orgId: 'acme', projectName: 'p', overwrite: true }],
];

/** A clear refusal: no 2xx for what was not stored, no 500 internal_error, a 503/507 that says why. */
function judge(label: string, r: { status: number; body: any; text: string }): string | undefined {
  const code = r.body?.error?.code;
  if (r.status >= 200 && r.status < 300) return `${label} → ${r.status} although nothing could be stored`;
  if (r.status === 500 || code === 'internal_error' || !(r.status === 503 || r.status === 507)) return `${label} → ${r.status} ${code ?? r.text.slice(0, 60)} (want 503/507 with a storage code)`;
  return undefined;
}

describe('disk full', () => {
  it('every write fails clearly, nothing partial is left, the server keeps serving and recovers when space is back', async () => {
    const { s, token, dir, data, ws, conv } = await setup();
    fill(data);
    fill(ws);
    const unclear: string[] = [];
    for (const [m, p, b] of WRITES(conv)) {
      const r = await api(s, m, p, { token, body: b });
      const j = judge(`${m} ${p}`, r);
      if (j) unclear.push(j);
    }
    // Reads and health still answer; the process is alive.
    expect((await api(s, 'GET', '/healthz')).status).toBe(200);
    expect((await api(s, 'GET', '/api/planner/acme/p', { token })).status).toBe(200);
    expect(s.proc.exitCode).toBe(null);
    // No partial file: every JSON parses, no temp file of an atomic write is left.
    const audit = auditJson([data, path.join(ws, 'acme')]);
    expect({ torn: audit.torn, tornLines: audit.tornLines, temp: audit.tempFiles }).toEqual({ torn: [], tornLines: [], temp: [] });
    // Space back: writes work again.
    rmSync(path.join(data, '.filler'));
    rmSync(path.join(ws, '.filler'));
    expect((await api(s, 'POST', '/api/planner/acme/p/cards/c1/logs', { token, body: { message: 'after' } })).status).toBe(201);
    expect((await api(s, 'POST', `/api/conversations/acme/p/${conv}/messages`, { token, body: { role: 'user', content: 'after' } })).status).toBe(201);
    console.log(`disk-full: ${WRITES(conv).length} writes on a full DATA_DIR and workspace tmpfs, ${unclear.length} unclear answers`);
    void dir;
    expect(unclear).toEqual([]);
  }, 60_000);
});

describe('read-only DATA_DIR and workspaces', () => {
  it('writes on a read-only mount fail clearly while reads keep working; a restart on it stops with one line naming it', async () => {
    const { s, token, data, ws, conv } = await setup();
    for (const m of [data, ws]) execFileSync('mount', ['-o', 'remount,ro', m]);
    const unclear: string[] = [];
    for (const [m, p, b] of WRITES(conv)) {
      const r = await api(s, m, p, { token, body: b });
      const j = judge(`${m} ${p}`, r);
      if (j) unclear.push(j);
    }
    expect((await api(s, 'GET', '/api/planner/acme/p', { token })).body.cards[0].title).toBe('card');
    expect((await api(s, 'GET', `/api/conversations/acme/p/${conv}`, { token })).status).toBe(200);
    expect(s.proc.exitCode).toBe(null);
    // Whatever sessions the refused creates started anyway are stopped before the restart.
    await s.stop();
    const again = startServer({ dir: path.dirname(data), env: { LOG_LEVEL: 'warn' } });
    const failure = await again.then(
      async (x) => {
        servers.push(x);
        await x.stop();
        return 'started';
      },
      (err: Error) => err.message,
    );
    const lines = failure.split('\n').filter((l) => l.startsWith('session-manager:'));
    expect(lines.length).toBe(1);
    expect(lines[0]).toMatch(new RegExp(`DATA_DIR|${data.replace(/[/.]/g, '\\$&')}`));
    expect(lines[0]).toMatch(/read-only|EROFS/i);
    for (const m of [data, ws]) execFileSync('mount', ['-o', 'remount,rw', m]);
    expect(readdirSync(data).length).toBeGreaterThan(0);
    console.log(`read-only: ${WRITES(conv).length} writes on read-only mounts, ${unclear.length} unclear answers; restart: ${lines[0]}`);
    expect(unclear).toEqual([]);
  }, 60_000);
});
