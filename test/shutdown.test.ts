import { expect, it } from 'vitest';
import { api, pidAlive, startServer, until } from './helpers/server.js';
import { childPids } from './helpers/procs.js';
import { Client } from './helpers/ws.js';
import { readFileSync } from 'node:fs';
import path from 'node:path';

it('SIGTERM closes sockets with 1001, stops sessions, flushes records and exits 0 within 5 s', async () => {
  const s = await startServer();
  const token = await s.token();
  const ids: string[] = [];
  const pids: number[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await api(s, 'POST', '/api/sessions', { token, body: { orgId: 'acme', projectName: 'bye', agent: 'bash' } });
    ids.push(r.body.id);
    pids.push(r.body.pid);
  }
  // One agent ignores SIGTERM and SIGHUP: the grace period must escalate to SIGKILL.
  const stubborn = await api(s, 'POST', '/api/sessions', { token, body: { orgId: 'acme', projectName: 'bye', agent: 'script', command: "trap '' TERM HUP; echo trapped; while true; do sleep 1; done" } });
  ids.push(stubborn.body.id);
  pids.push(stubborn.body.pid);
  const c = await Client.connect(s.wsUrl, { token });
  await c.attach(stubborn.body.id);
  await c.waitForText(stubborn.body.id, 'trapped');
  const stopped = await s.stop('SIGTERM');
  expect(stopped.code).toBe(0);
  expect(stopped.ms).toBeLessThan(5000);
  expect((await c.waitClose()).code).toBe(1001);
  for (const pid of pids) await until(() => !pidAlive(pid), `agent ${pid} gone`);
  expect(childPids(s.pid)).toEqual([]);
  for (const id of ids) {
    const rec = JSON.parse(readFileSync(path.join(s.dataDir, 'sessions', id, 'metadata.json'), 'utf8'));
    expect(rec.status).toBe('killed');
    expect(rec.reason).toBe('server shutdown');
  }
});

it('boot recovery marks sessions of a killed node as lost', async () => {
  const s = await startServer();
  const token = await s.token();
  const r = await api(s, 'POST', '/api/sessions', { token, body: { orgId: 'acme', projectName: 'lost', agent: 'script', command: ['sleep', '30'] } });
  await s.stop('SIGKILL');
  // The agent outlived its node; the restarted node ends it.
  expect(pidAlive(r.body.pid)).toBe(true);
  const again = await startServer({ dir: s.dir });
  try {
    const rec = await api(again, 'GET', `/api/sessions/${r.body.id}`, { token });
    expect(rec.body.status).toBe('lost');
    expect(rec.body.reason).toMatch(/node restarted/);
    await until(() => !pidAlive(r.body.pid), 'orphaned agent ended at boot');
    const jobs = await api(again, 'GET', '/api/jobs', { token });
    expect(jobs.body.items[0]).toMatchObject({ sessionId: r.body.id, status: 'lost' });
  } finally {
    await again.stop();
  }
});

it('refuses to start on bad configuration with one line naming the variable', async () => {
  await expect(startServer({ env: { MAX_CONCURRENT_SESSIONS: 'lots' } })).rejects.toThrow(/MAX_CONCURRENT_SESSIONS: must be a whole number/);
  await expect(startServer({ env: { PORT_RANGE: '9000' } })).rejects.toThrow(/PORT_RANGE/);
  await expect(startServer({ env: { JWT_SECRET: 'short' } })).rejects.toThrow(/JWT_SECRET: must be at least 32 bytes/);
});

it('dev mode: no JWT settings → a 0600 secret in DATA_DIR and a ready URL with an admin token', async () => {
  const s = await startServer({ devMode: true });
  try {
    expect(s.readyLine).toMatch(/^session-manager ready at http:\/\/127\.0\.0\.1:\d+\/\?token=ey/);
    const mode = (await import('node:fs')).statSync(path.join(s.dataDir, 'jwt-secret')).mode & 0o777;
    expect(mode).toBe(0o600);
    const r = await api(s, 'GET', '/api/resources/limits', { token: s.adminToken });
    expect(r.status).toBe(200);
    const secret = readFileSync(path.join(s.dataDir, 'jwt-secret'), 'utf8').trim();
    expect(s.output.join('\n')).not.toContain(secret);
  } finally {
    await s.stop();
  }
});
