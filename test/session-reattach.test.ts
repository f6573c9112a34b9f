import { afterAll, beforeAll, expect, it } from 'vitest';
import { api, startServer, until, type TestServer } from './helpers/server.js';
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

// ~300 KiB of numbered lines with multi-byte characters, in bursts, so a viewer can leave
// and come back while output keeps flowing.
const PRINTER = `i=0; while [ $i -lt 3000 ]; do printf 'line %05d é✓ %s\\n' $i 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef; i=$((i+1)); [ $((i % 150)) -eq 0 ] && sleep 0.05; done; printf 'END-OF-STREAM\\n'`;

it('a viewer that reconnects with `since` ends with the same bytes as an uninterrupted one', async () => {
  const steady = await Client.connect(s.wsUrl, { token });
  const created = await api(s, 'POST', '/api/sessions', { token, body: { orgId: 'acme', projectName: 'reattach', agent: 'script', command: PRINTER } });
  expect(created.status).toBe(201);
  const id = created.body.id as string;
  const a = await steady.attach(id);
  expect(a.offset).toBe(0);

  let hopper = await Client.connect(s.wsUrl, { token });
  await hopper.attach(id);
  let reconnects = 0;
  let collected = Buffer.alloc(0);
  let hopperDone = false;
  // Leave after every ~100 KiB and resume from the last offset, while output flows.
  for (let round = 0; round < 20; round++) {
    const target = collected.length + 100 * 1024;
    const reached = await until(() => hopper.bytes(id).length + collected.length >= target || hopper.frames.some((f) => f.type === 'exit'), 'hopper progress', 20_000);
    void reached;
    const o = hopper.outputs.get(id)!;
    expect(hopper.errors).toEqual([]);
    collected = Buffer.concat([collected, hopper.bytes(id)]);
    const resumeAt = o.end;
    const ended = hopper.frames.some((f) => f.type === 'exit');
    hopper.close();
    if (ended) {
      hopperDone = true;
      break;
    }
    hopper = await Client.connect(s.wsUrl, { token });
    const att = await hopper.attach(id, resumeAt);
    reconnects++;
    expect(att.offset).toBe(resumeAt);
    expect(att.gap).toBeUndefined();
  }
  await steady.next((f) => f.type === 'exit' && f.sessionId === id, 'exit', 30_000);
  if (!hopperDone) {
    await hopper.next((f) => f.type === 'exit', 'hopper exit', 30_000);
    collected = Buffer.concat([collected, hopper.bytes(id)]);
    hopper.close();
  }
  expect(reconnects).toBeGreaterThanOrEqual(2);
  expect(steady.errors).toEqual([]);
  const full = steady.bytes(id);
  expect(full.toString()).toContain('END-OF-STREAM');
  expect(full.length).toBeGreaterThan(200 * 1024);
  expect(collected.length).toBe(full.length);
  expect(collected.equals(full)).toBe(true);
  // Every chunk was whole UTF-8 and the offsets count bytes.
  const rec = await api(s, 'GET', `/api/sessions/${id}`, { token });
  expect(rec.body.outputOffset).toBe(full.length);
  steady.close();
});

it('attach with an offset older than the ring reports a gap and replays the ring', async () => {
  const small = await startServer({ env: { REPLAY_BYTES: '4096' } });
  try {
    const t = await small.token();
    const created = await api(small, 'POST', '/api/sessions', { token: t, body: { orgId: 'acme', projectName: 'gap', agent: 'bash' } });
    const id = created.body.id;
    const c = await Client.connect(small.wsUrl, { token: t });
    await c.attach(id);
    c.send({ type: 'input', sessionId: id, data: 'for i in $(seq 1 400); do echo "row $i padding-padding-padding"; done; echo DONE-$((6*7))\r' });
    await c.waitForText(id, 'DONE-42\r\n');
    const late = await Client.connect(small.wsUrl, { token: t });
    const att = await late.attach(id, 0);
    expect(att.gap).toBe(true);
    expect(att.offset).toBeGreaterThan(0);
    const total = c.outputs.get(id)!.end;
    await until(() => late.outputs.get(id)?.end === total, 'ring replay');
    expect(total - att.offset).toBeLessThanOrEqual(4096);
    expect(late.text(id)).toContain('DONE-42');
    c.close();
    late.close();
  } finally {
    await small.stop();
  }
});
