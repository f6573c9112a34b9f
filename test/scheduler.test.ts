import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startServer, until, type TestServer } from './helpers/server.js';
import { Client } from './helpers/ws.js';

describe('cap, priority queue, pause and resume', () => {
  let s: TestServer;
  let token: string;
  beforeAll(async () => {
    s = await startServer({ env: { MAX_CONCURRENT_SESSIONS: '2', MAX_QUEUE: '3' } });
    token = await s.token();
  });
  afterAll(async () => {
    await s?.stop();
  });

  const create = (body: Record<string, unknown>) =>
    api(s, 'POST', '/api/sessions', { token, body: { orgId: 'acme', projectName: 'q', agent: 'script', command: ['sleep', '60'], ...body } });

  it('queues past the cap in priority-then-age order, refuses past MAX_QUEUE, admits on resume', async () => {
    const r1 = await create({});
    const r2 = await create({});
    expect([r1.status, r2.status]).toEqual([201, 201]);
    const low = await create({ priority: 0 });
    expect(low.status).toBe(202);
    expect(low.body).toMatchObject({ status: 'queued', queuePosition: 1 });
    const high = await create({ priority: 5 });
    expect(high.body.queuePosition).toBe(1);
    const low2 = await create({ priority: 0 });
    expect(low2.body.queuePosition).toBe(3);
    expect((await api(s, 'GET', `/api/sessions/${low.body.id}`, { token })).body.queuePosition).toBe(2);
    const full = await create({});
    expect(full.status).toBe(429);
    expect(full.body.error.code).toBe('queue_full');

    // Non-admins may not pause; admins may.
    expect((await api(s, 'POST', '/api/resources/pause', { token })).status).toBe(403);
    expect((await api(s, 'GET', '/api/resources/limits', { token })).status).toBe(403);
    const paused = await api(s, 'POST', '/api/resources/pause', { token: s.adminToken });
    expect(paused.status).toBe(200);

    // A slot frees up, but nothing is admitted while paused.
    await api(s, 'DELETE', `/api/sessions/${r1.body.id}`, { token });
    await new Promise((r) => setTimeout(r, 300));
    expect((await api(s, 'GET', `/api/sessions/${high.body.id}`, { token })).body.status).toBe('queued');

    await api(s, 'POST', '/api/resources/resume', { token: s.adminToken });
    await until(async () => (await api(s, 'GET', `/api/sessions/${high.body.id}`, { token })).body.status === 'running', 'high priority admitted');
    expect((await api(s, 'GET', `/api/sessions/${low.body.id}`, { token })).body).toMatchObject({ status: 'queued', queuePosition: 1 });

    // Raising the cap admits the rest in order.
    const limits = await api(s, 'PUT', '/api/resources/limits', { token: s.adminToken, body: { maxConcurrentSessions: 4 } });
    expect(limits.body.maxConcurrentSessions).toBe(4);
    await until(async () => (await api(s, 'GET', `/api/sessions/${low2.body.id}`, { token })).body.status === 'running', 'all admitted');
    const startedLow = (await api(s, 'GET', `/api/sessions/${low.body.id}`, { token })).body.startedAt;
    const startedLow2 = (await api(s, 'GET', `/api/sessions/${low2.body.id}`, { token })).body.startedAt;
    expect(startedLow <= startedLow2).toBe(true);

    // A queued session can be removed from the queue.
    await api(s, 'PUT', '/api/resources/limits', { token: s.adminToken, body: { maxConcurrentSessions: 1 } });
    const waiting = await create({});
    expect(waiting.status).toBe(202);
    const gone = await api(s, 'DELETE', `/api/sessions/${waiting.body.id}`, { token });
    expect(gone.body.status).toBe('killed');
    expect((await api(s, 'PUT', '/api/resources/limits', { token: s.adminToken, body: { maxConcurrentSessions: 'x' } })).status).toBe(400);
    for (const r of [r2, high, low, low2]) await api(s, 'DELETE', `/api/sessions/${r.body.id}`, { token });
  });
});

describe('idle reaper', () => {
  let s: TestServer;
  let token: string;
  beforeAll(async () => {
    s = await startServer({ env: { IDLE_TIMEOUT_MS: '800' } });
    token = await s.token();
  });
  afterAll(async () => {
    await s?.stop();
  });

  it('terminates an idle unattached session and spares an attached one', async () => {
    const idle = await api(s, 'POST', '/api/sessions', { token, body: { orgId: 'acme', projectName: 'idle', agent: 'bash' } });
    const watched = await api(s, 'POST', '/api/sessions', { token, body: { orgId: 'acme', projectName: 'idle', agent: 'bash' } });
    const c = await Client.connect(s.wsUrl, { token });
    await c.attach(watched.body.id);
    const reaped = await until(async () => {
      const r = await api(s, 'GET', `/api/sessions/${idle.body.id}`, { token });
      return r.body.status === 'idle_terminated' ? r.body : undefined;
    }, 'idle session reaped', 15_000);
    expect(reaped.reason).toMatch(/idle/);
    // Well past the timeout, the watched one still runs.
    await new Promise((r) => setTimeout(r, 1500));
    expect((await api(s, 'GET', `/api/sessions/${watched.body.id}`, { token })).body.status).toBe('running');
    expect(s.output.some((l) => l.includes('idle reaper: terminating session') && l.includes(idle.body.id))).toBe(true);
    // Once the viewer leaves, it is reaped too.
    c.close();
    await until(async () => (await api(s, 'GET', `/api/sessions/${watched.body.id}`, { token })).body.status === 'idle_terminated', 'reaped after detach', 15_000);
  });
});
