import { afterAll, beforeAll, expect, it } from 'vitest';
import { api, startServer, until, type TestServer } from './helpers/server.js';
import { Client } from './helpers/ws.js';

let s: TestServer;
let token: string;
beforeAll(async () => {
  s = await startServer({ env: { WS_MAX_BACKPRESSURE: '262144', REPLAY_BYTES: '67108864' } });
  token = await s.token();
});
afterAll(async () => {
  await s?.stop();
});

it('a viewer that stops reading is dropped with 4008, resumes by offset, and the others get every byte', async () => {
  const fast = await Client.connect(s.wsUrl, { token });
  const slow = await Client.connect(s.wsUrl, { token });
  // The agent waits for a go signal so both viewers are attached before the flood.
  const created = await api(s, 'POST', '/api/sessions', {
    token,
    body: { orgId: 'acme', projectName: 'flood', agent: 'script', command: 'read go; head -c 6000000 /dev/urandom | base64 -w 100; echo FLOOD-DONE' },
  });
  const id = created.body.id as string;
  await fast.attach(id);
  await slow.attach(id);
  // Stop reading from the socket: the server's send buffer for this viewer grows.
  (slow.ws as any)._socket.pause();
  await api(s, 'POST', `/api/sessions/${id}/input`, { token, body: { data: 'go' } });
  await fast.next((f) => f.type === 'exit' && f.sessionId === id, 'flood exit', 60_000);
  expect(fast.errors).toEqual([]);
  const total = fast.outputs.get(id)!.end;
  if (!fast.text(id).includes('FLOOD-DONE')) {
    const rec = (await api(s, 'GET', `/api/sessions/${id}`, { token })).body;
    const logs = await api(s, 'GET', `/api/sessions/${id}/logs?lines=3`, { token });
    console.log('DEBUG total', total, 'record', rec.outputOffset, rec.status, rec.exitCode, rec.signal, 'tail', JSON.stringify(fast.text(id).slice(-120)), 'logs', JSON.stringify(logs.text.slice(-200)), 'closed', JSON.stringify(fast.closed));
  }
  expect(fast.text(id)).toContain('FLOOD-DONE');
  expect(total).toBeGreaterThan(8_000_000);

  // Read again: whatever was buffered arrives, then the close with 4008.
  (slow.ws as any)._socket.resume();
  const closed = await slow.waitClose(30_000);
  expect(closed.code).toBe(4008);
  expect(slow.errors).toEqual([]);
  const got = slow.outputs.get(id)?.end ?? 0;
  expect(got).toBeLessThan(total);

  // Resume by offset on a new connection: the rest arrives with no hole and no repeat.
  const again = await Client.connect(s.wsUrl, { token });
  const att = await again.attach(id, got);
  expect(att.offset).toBe(got);
  expect(att.gap).toBeUndefined();
  await until(() => again.outputs.get(id)?.end === total, 'resumed viewer complete', 30_000);
  const joined = Buffer.concat([slow.bytes(id), again.bytes(id)]);
  expect(joined.equals(fast.bytes(id))).toBe(true);
  const m = await api(s, 'GET', '/api/metrics');
  expect(m.body.ws.slowViewersDropped).toBeGreaterThanOrEqual(1);
  fast.close();
  again.close();
}, 120_000);
