import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startServer, tempDir, until, type TestServer } from '../helpers/server.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { Client } from '../helpers/ws.js';

let redis: TestRedis;
let a: TestServer;
let b: TestServer;
let token: string;

beforeAll(async () => {
  redis = await startRedis();
  a = await startServer({ env: { REDIS_URL: redis.url, NODE_ID: 'node-a' } });
  b = await startServer({ env: { REDIS_URL: redis.url, NODE_ID: 'node-b' } });
  token = await a.token({ sub: 'alice', orgId: 'acme' });
});
afterAll(async () => {
  await a?.stop();
  await b?.stop();
  await redis?.stop();
});

describe('two nodes sharing one Redis', () => {
  it('a session created on A is listed on B; a viewer on B attaches, types, sees the echo; resize from B reaches A', async () => {
    const created = await api(a, 'POST', '/api/sessions', { token, body: { orgId: 'acme', projectName: 'fleet', agent: 'bash', cols: 80, rows: 24 } });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    const listed = await until(async () => {
      const r = await api(b, 'GET', '/api/sessions?projectName=fleet', { token });
      return r.body.items.find((x: any) => x.id === id);
    }, 'session listed on B');
    expect(listed).toMatchObject({ node: 'node-a', status: 'running' });
    expect((await api(b, 'GET', `/api/sessions/${id}`, { token })).body.node).toBe('node-a');

    const onA = await Client.connect(a.wsUrl, { token });
    await onA.attach(id);
    const onB = await Client.connect(b.wsUrl, { token });
    const att = await onB.attach(id);
    expect(att.status).toBe('running');
    onB.send({ type: 'input', sessionId: id, data: 'echo "from-b=$((40+2))"\r' });
    await onB.waitForText(id, 'from-b=42');
    await onA.waitForText(id, 'from-b=42');
    onB.send({ type: 'resize', sessionId: id, cols: 101, rows: 33 });
    onB.send({ type: 'input', sessionId: id, data: 'stty size\r' });
    await onB.waitForText(id, '33 101');
    expect((await api(a, 'GET', `/api/sessions/${id}`, { token })).body).toMatchObject({ cols: 101, rows: 33 });
    // Input through B's REST API is forwarded too, and logs come from the owner.
    expect((await api(b, 'POST', `/api/sessions/${id}/input`, { token, body: { data: 'echo rest-b-$((1+2))' } })).status).toBe(200);
    await onA.waitForText(id, 'rest-b-3');
    const logs = await until(async () => {
      const r = await api(b, 'GET', `/api/sessions/${id}/logs?lines=20`, { token });
      return r.text.includes('rest-b-3') ? r : undefined;
    }, 'logs via B');
    expect(logs.status).toBe(200);
    // Both viewers saw the same bytes from the same offsets.
    await until(() => onA.outputs.get(id)!.end === onB.outputs.get(id)!.end, 'viewers level');
    expect(onB.bytes(id).equals(onA.bytes(id).subarray(onB.outputs.get(id)!.start - onA.outputs.get(id)!.start))).toBe(true);
    expect(onA.errors).toEqual([]);
    expect(onB.errors).toEqual([]);
    // Kill from B.
    const killed = await api(b, 'DELETE', `/api/sessions/${id}`, { token });
    expect(killed.body.status).toBe('killed');
    await onB.next((f) => f.type === 'exit' && f.sessionId === id, 'exit on B');
    onA.close();
    onB.close();
  });

  it('planner:updated from a write on A reaches a subscriber on B', async () => {
    const sub = await Client.connect(b.wsUrl, { token });
    sub.send({ type: 'subscribe', topic: 'project:acme/fleetplan' });
    sub.send({ type: 'ping' });
    await sub.next((f) => f.type === 'pong');
    expect((await api(a, 'POST', '/api/dev-envs', { token, body: { orgId: 'acme', projectName: 'fleetplan' } })).status).toBe(201);
    const put = await api(a, 'PUT', '/api/planner/acme/fleetplan', { token, body: { cards: [{ id: 'c1', title: 'Ship', status: 'todo', criteria: [], logs: [] }] } });
    expect(put.status).toBe(200);
    const ev = await sub.next((f) => f.type === 'event' && f.name === 'planner:updated', 'planner:updated on B');
    expect(ev.payload).toMatchObject({ orgId: 'acme', projectName: 'fleetplan', version: put.body.version });
    sub.close();
  });

  it('a deploy SSE stream read from B resumes by Last-Event-ID', async () => {
    expect((await api(a, 'POST', '/api/dev-envs', { token, body: { orgId: 'acme', projectName: 'fleetsite', template: 'plain-html' } })).status).toBe(201);
    const dep = await api(a, 'POST', '/api/deploy/local/acme/fleetsite', { token });
    expect(dep.status).toBe(202);
    const jobId = dep.body.jobId;
    const read = async (lastId?: string) => {
      const res = await fetch(`${b.url}/api/deploy/job/${jobId}/stream`, { headers: { authorization: `Bearer ${token}`, ...(lastId ? { 'last-event-id': lastId } : {}) } });
      const text = await res.text();
      return text.split('\n\n').filter((blk) => blk.includes('data:')).map((blk) => ({ id: /^id: (.*)$/m.exec(blk)?.[1], event: /^event: (.*)$/m.exec(blk)?.[1] }));
    };
    const all = await read();
    expect(all[all.length - 1]!.event).toBe('end');
    const steps = all.filter((e) => e.event === 'step');
    expect(steps.length).toBeGreaterThan(2);
    const later = await read(steps[1]!.id);
    expect(later.filter((e) => e.event === 'step').map((e) => e.id)).toEqual(steps.slice(2).map((e) => e.id));
  });

  it('a node id held by a live node refuses a second start and says how long to wait', async () => {
    await expect(startServer({ env: { REDIS_URL: redis.url, NODE_ID: 'node-a' } })).rejects.toThrow(/NODE_ID: node "node-a" is held by a live process.*wait/);
  });
});

describe('failure', () => {
  it('kill node A with SIGKILL: its sessions are lost on B within 10 s', async () => {
    const c = await startServer({ env: { REDIS_URL: redis.url, NODE_ID: 'node-c' } });
    const created = await api(c, 'POST', '/api/sessions', { token, body: { orgId: 'acme', projectName: 'doomed', agent: 'script', command: ['sleep', '60'] } });
    const id = created.body.id;
    await until(async () => (await api(b, 'GET', `/api/sessions/${id}`, { token })).status === 200, 'B knows it');
    const watcher = await Client.connect(b.wsUrl, { token });
    watcher.send({ type: 'subscribe', topic: 'org:acme' });
    watcher.send({ type: 'ping' });
    await watcher.next((f) => f.type === 'pong');
    const t0 = Date.now();
    await c.stop('SIGKILL');
    const ev = await watcher.next((f) => f.type === 'event' && f.name === 'session:updated' && f.payload.id === id && f.payload.status === 'lost', 'lost event', 15_000);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(ev.payload.reason).toMatch(/node-c/);
    expect((await api(b, 'GET', `/api/sessions/${id}`, { token })).body.status).toBe('lost');
    try {
      process.kill(created.body.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
    watcher.close();
  });

  it('Redis stopped and restarted mid-session: both nodes recover; the local viewer saw no gap', async () => {
    const created = await api(a, 'POST', '/api/sessions', { token, body: { orgId: 'acme', projectName: 'outage', agent: 'bash' } });
    const id = created.body.id as string;
    const local = await Client.connect(a.wsUrl, { token });
    await local.attach(id);
    const remote = await Client.connect(b.wsUrl, { token });
    await remote.attach(id);
    local.send({ type: 'input', sessionId: id, data: 'echo before-$((1+1))\r' });
    await remote.waitForText(id, 'before-2');
    await redis.stop();
    // Local sessions keep serving while Redis is away.
    local.send({ type: 'input', sessionId: id, data: 'echo during-$((2+2))\r' });
    await local.waitForText(id, 'during-4');
    await remote.next((f) => f.type === 'status' && f.sessionId === id && f.status === 'unreachable', 'unreachable status', 15_000);
    await redis.restart();
    await until(async () => (await api(a, 'GET', '/readyz')).status === 200 && (await api(b, 'GET', '/readyz')).status === 200, 'both ready again', 30_000);
    // The remote viewer heals the range it missed, then continues live.
    local.send({ type: 'input', sessionId: id, data: 'echo after-$((3+3))\r' });
    await remote.waitForText(id, 'after-6', 20_000).catch((err) => {
      console.log('A:', a.output.filter((l) => /fleet|redis/.test(l)).slice(-15).join('\n'));
      console.log('B:', b.output.filter((l) => /fleet|redis/.test(l)).slice(-15).join('\n'));
      throw err;
    });
    expect(remote.text(id)).toContain('during-4');
    expect(local.errors).toEqual([]);
    expect(remote.errors).toEqual([]);
    const aBytes = local.bytes(id);
    const rStart = remote.outputs.get(id)!.start - local.outputs.get(id)!.start;
    await until(() => local.outputs.get(id)!.end === remote.outputs.get(id)!.end, 'remote caught up');
    expect(remote.bytes(id).equals(local.bytes(id).subarray(rStart))).toBe(true);
    void aBytes;
    expect(a.output.some((l) => /unhandled|Unhandled/.test(l))).toBe(false);
    expect(b.output.some((l) => /unhandled|Unhandled/.test(l))).toBe(false);
    await api(a, 'DELETE', `/api/sessions/${id}`, { token });
    local.close();
    remote.close();
  });

  it('REDIS_URL pointing at a closed port: the server starts on the filesystem store', async () => {
    const s = await startServer({ env: { REDIS_URL: 'redis://127.0.0.1:1/', NODE_ID: 'node-fallback' } });
    try {
      expect(s.output.some((l) => l.includes('falling back to the filesystem store'))).toBe(true);
      const r = await api(s, 'POST', '/api/sessions', { token, body: { orgId: 'acme', projectName: 'fallback', agent: 'script', command: 'true' } });
      expect(r.status).toBe(201);
      expect((await api(s, 'GET', '/readyz')).body.checks.store).toBe('fs');
    } finally {
      await s.stop();
    }
  });
});
