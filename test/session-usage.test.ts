import { afterAll, beforeAll, expect, it } from 'vitest';
import { api, startServer, type TestServer } from './helpers/server.js';
import { Client } from './helpers/ws.js';

let s: TestServer;
let token: string;
beforeAll(async () => {
  s = await startServer();
  token = await s.token();
});
afterAll(async () => {
  await s?.stop();
});

/**
 * Viewer counts and usage samples change often; an org's subscribers get them as one
 * `sessions:usage` event per interval for all of the org's changed sessions, not one event
 * per session (with 50 sessions and 19,000 subscribers that was ~500 MiB of queued frames).
 */
it('an org subscriber hears usage and viewer changes as one batched sessions:usage event, not one per session', async () => {
  const org = await Client.connect(s.wsUrl, { token });
  org.send({ type: 'subscribe', topic: 'org:acme' });
  org.send({ type: 'ping' });
  await org.next((f) => f.type === 'pong');
  const ids: string[] = [];
  const viewers: Client[] = [];
  for (let i = 0; i < 4; i++) {
    const created = await api(s, 'POST', '/api/sessions', { token, body: { orgId: 'acme', projectName: 'usage', agent: 'script', command: 'sleep 60' } });
    expect(created.status).toBe(201);
    ids.push(created.body.id);
    const v = await Client.connect(s.wsUrl, { token });
    await v.attach(created.body.id);
    viewers.push(v);
  }
  const first = await org.next((f) => f.type === 'event' && f.name === 'sessions:usage', 'sessions:usage', 15_000);
  const items = (first.payload as { items: Array<{ id: string; viewers: number }> }).items;
  // Every session that changed in the interval is in the one event, with its viewer count.
  expect(new Set(items.map((x) => x.id))).toEqual(new Set(ids));
  for (const x of items) expect(x.viewers).toBe(1);
  const usageEvents = org.frames.filter((f) => f.type === 'event' && /usage/.test(String(f.name)));
  expect(usageEvents.map((f) => f.name)).toEqual(['sessions:usage']);
  for (const v of viewers) v.close();
  for (const id of ids) await api(s, 'DELETE', `/api/sessions/${id}`, { token });
  org.close();
}, 30_000);
