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
 * The bytes an agent prints just before it exits are the easiest to lose: they may still be
 * in the kernel's buffers when the process is gone. Eight agents flood at once (so the
 * machine is busy) and exit right after their last write; every viewer must get every byte,
 * the marker last, and the exit frame after it.
 */
it('every byte printed right before exit arrives, with eight agents flooding at once', async () => {
  const bytes = 1_500_000;
  const c = await Client.connect(s.wsUrl, { token });
  const ids: string[] = [];
  for (let i = 0; i < 8; i++) {
    const r = await api(s, 'POST', '/api/sessions', {
      token,
      // No newline in the flood (the terminal would double it); the marker ends it.
      body: { orgId: 'acme', projectName: 'drain', agent: 'script', command: `read go; head -c ${bytes} /dev/zero | tr '\\0' x; printf 'END-${i}'` },
    });
    expect(r.status).toBe(201);
    ids.push(r.body.id as string);
    await c.attach(r.body.id as string);
  }
  for (const id of ids) c.send({ type: 'input', sessionId: id, data: 'go\r' });
  for (const id of ids) await c.next((f) => f.type === 'exit' && f.sessionId === id, `exit of ${id}`, 60_000);
  expect(c.errors).toEqual([]);
  ids.forEach((id, i) => {
    const text = c.text(id);
    // "go" echoed by the terminal, then the flood and the marker, nothing missing.
    const start = text.indexOf('x');
    expect(text.slice(start)).toBe('x'.repeat(bytes) + `END-${i}`);
    // The exit frame came after the last output frame of the session.
    const frames = c.frames.filter((f) => f.sessionId === id);
    const exitAt = frames.findIndex((f) => f.type === 'exit');
    const lastOutput = frames.map((f) => f.type).lastIndexOf('output');
    expect(lastOutput).toBeGreaterThan(-1);
    expect(exitAt).toBeGreaterThan(lastOutput);
  });
  c.close();
  // Nothing odd on the server's stderr either (a worker closing a descriptor Node did not open
  // for it, say, is a warning per session).
  expect(s.output.filter((l) => /warning/i.test(l))).toEqual([]);
}, 120_000);
