import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { api, pidAlive, startServer, tempDir, until, type TestServer } from './helpers/server.js';
import { childPids, sessionMembers } from './helpers/procs.js';
import { Client } from './helpers/ws.js';

let s: TestServer;
let token: string;
beforeAll(async () => {
  const dir = tempDir();
  const agents = path.join(dir, 'agents.json');
  writeFileSync(agents, JSON.stringify({ phoenix: { command: 'bash', args: ['--noprofile', '--norc'], restart: 'on-failure' } }));
  s = await startServer({ dir, env: { AGENTS_FILE: agents, WORKER_THREADS: '2', SESSIONS_PER_THREAD: '8' } });
  token = await s.token();
});
afterAll(async () => {
  await s?.stop();
});

const get = async (id: string) => (await api(s, 'GET', `/api/sessions/${id}`, { token })).body;
const create = async (agent = 'bash') => {
  const r = await api(s, 'POST', '/api/sessions', { token, body: { orgId: 'acme', projectName: 'crash', agent } });
  expect(r.status).toBe(201);
  return r.body as { id: string; pid: number };
};
const statusIs = (id: string, status: string) => until(async () => ((await get(id)).status === status ? get(id) : undefined), `${id} to be ${status}`, 15_000);

it('an agent killed with SIGKILL is crashed; other sessions are untouched', async () => {
  const victim = await create();
  const bystander = await create();
  process.kill(victim.pid, 'SIGKILL');
  const rec = await statusIs(victim.id, 'crashed');
  expect(rec.signal).toBe('SIGKILL');
  expect((await get(bystander.id)).status).toBe('running');
  expect((await api(s, 'GET', '/healthz')).status).toBe(200);
  await api(s, 'DELETE', `/api/sessions/${bystander.id}`, { token });
});

it('a crashed on-failure session is restarted: same id, restarts + 1, offsets continue', async () => {
  const p = await create('phoenix');
  const c = await Client.connect(s.wsUrl, { token });
  await c.attach(p.id);
  c.send({ type: 'input', sessionId: p.id, data: 'echo before-$((1+1))\r' });
  await c.waitForText(p.id, 'before-2');
  const before = (await get(p.id)).outputOffset;
  process.kill(p.pid, 'SIGKILL');
  const back = await until(async () => {
    const r = await get(p.id);
    return r.status === 'running' && r.restarts === 1 ? r : undefined;
  }, 'restart', 15_000);
  expect(back.pid).not.toBe(p.pid);
  expect(back.id).toBe(p.id);
  c.send({ type: 'input', sessionId: p.id, data: 'echo after-$((2+2))\r' });
  await c.waitForText(p.id, 'after-4');
  expect(c.errors).toEqual([]);
  expect(c.outputs.get(p.id)!.end).toBeGreaterThan(before);
  expect(c.frames.some((f) => f.type === 'status' && f.status === 'crashed')).toBe(true);
  await api(s, 'DELETE', `/api/sessions/${p.id}`, { token });
  expect((await get(p.id)).status).toBe('killed');
  c.close();
});

it('an actor that throws ends as crashed with its agent reaped; others keep running', async () => {
  const victim = await create();
  const bystander = await create();
  const r = await api(s, 'POST', `/api/sessions/${victim.id}/fault`, { token, body: { kind: 'throw' } });
  expect(r.status).toBe(202);
  const rec = await statusIs(victim.id, 'crashed');
  expect(rec.reason).toMatch(/actor error/);
  await until(() => !pidAlive(victim.pid), 'victim pid gone');
  expect((await get(bystander.id)).status).toBe('running');
  await api(s, 'DELETE', `/api/sessions/${bystander.id}`, { token });
});

it('a worker thread that dies takes only its own actors; the supervisor keeps serving; no orphan remains', async () => {
  const sessions = [];
  for (let i = 0; i < 6; i++) sessions.push(await create());
  // Each agent starts a background child so orphans would show.
  const c = await Client.connect(s.wsUrl, { token });
  for (const x of sessions) {
    await c.attach(x.id);
    c.send({ type: 'input', sessionId: x.id, data: 'sleep 300 & echo bg-$((3*3))\r' });
    await c.waitForText(x.id, 'bg-9');
  }
  const r = await api(s, 'POST', `/api/sessions/${sessions[0]!.id}/fault`, { token, body: { kind: 'crash-worker' } });
  expect(r.status).toBe(202);
  await statusIs(sessions[0]!.id, 'crashed');
  // Let the pool settle, then every session is either untouched or crashed — never stuck.
  await new Promise((res) => setTimeout(res, 500));
  const recs = await Promise.all(sessions.map((x) => get(x.id)));
  const crashed = recs.filter((x) => x.status === 'crashed');
  const running = recs.filter((x) => x.status === 'running');
  expect(crashed.length + running.length).toBe(sessions.length);
  expect(running.length).toBeGreaterThan(0);
  for (const x of crashed) {
    expect(x.reason).toMatch(/worker|actor/);
    await until(() => sessionMembers(x.pid).length === 0, `no process left in session ${x.pid}`);
  }
  // Survivors still answer.
  const alive = running[0]!;
  c.send({ type: 'input', sessionId: alive.id, data: 'echo still-$((5*5))\r' });
  await c.waitForText(alive.id, 'still-25');
  // The supervisor serves and can start new sessions (the pool replaced the worker).
  const fresh = await create();
  expect((await get(fresh.id)).status).toBe('running');
  for (const x of [...running, fresh]) await api(s, 'DELETE', `/api/sessions/${x.id}`, { token });
  for (const x of recs) await until(() => sessionMembers(x.pid).length === 0, `session ${x.pid} reaped`);
  await until(() => childPids(s.pid).length === 0, 'no child processes of the server');
  expect(pidAlive(s.pid)).toBe(true);
  c.close();
});
