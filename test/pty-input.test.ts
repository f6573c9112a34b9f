import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
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

/**
 * Input is written to the pty from the supervisor's thread, through its own descriptor of the
 * terminal (handed over by the actor); what the kernel refuses (a full input
 * queue) waits in order and goes in as the agent reads. Here the agent does not read for a
 * while, so the ~600 KB sent meet a full terminal many times over; every byte must arrive,
 * in order, exactly once.
 */
it('input larger than the terminal buffer, sent while the agent is not reading, arrives whole and in order', async () => {
  const total = 600_000;
  const file = 'typed.bin';
  const created = await api(s, 'POST', '/api/sessions', {
    token,
    body: { orgId: 'acme', projectName: 'typing', agent: 'script', command: `stty raw -echo; printf 'READY\\n'; sleep 1; head -c ${total} > ${file}; echo TYPED-DONE` },
  });
  expect(created.status).toBe(201);
  const id = created.body.id as string;
  const c = await Client.connect(s.wsUrl, { token });
  await c.attach(id);
  await until(() => c.text(id).includes('READY'), 'agent ready');
  // Printable ASCII in numbered lines (no byte the raw terminal would act on), in 1,000 frames.
  let sent = '';
  let n = 0;
  while (sent.length < total) {
    let chunk = '';
    while (chunk.length < 600) chunk += `line ${String(n++).padStart(7, '0')} abcdefghijklmnopqrstuvwxyz0123456789|`;
    sent += chunk;
  }
  sent = sent.slice(0, total);
  for (let i = 0; i < total; i += 600) c.send({ type: 'input', sessionId: id, data: sent.slice(i, i + 600) });
  await c.next((f) => f.type === 'exit' && f.sessionId === id, 'agent exit', 60_000);
  expect(c.text(id)).toContain('TYPED-DONE');
  expect(c.errors).toEqual([]);
  const got = readFileSync(path.join(s.workspaces, 'acme', 'typing', file));
  expect(got.length).toBe(total);
  expect(createHash('sha256').update(got).digest('hex')).toBe(createHash('sha256').update(sent).digest('hex'));
  c.close();
}, 90_000);

/**
 * Input is written to the terminal from the main thread; a resize sent before it must be in
 * effect when it arrives (both are applied there, in the order they came).
 */
it('input sent right after a resize meets the new size, every time', async () => {
  const created = await api(s, 'POST', '/api/sessions', {
    token,
    // The agent asks the terminal for its size (an ioctl, no fork) the moment each line arrives
    // (`getWindowSize()` alone answers from Node's cache, refreshed only on SIGWINCH).
    body: {
      orgId: 'acme',
      projectName: 'sizes',
      agent: 'script',
      command: [
        process.execPath,
        '-e',
        "process.stdout.write('READY\\n'); process.stdin.on('data', (d) => { process.stdout._refreshSize(); const [c, r] = [process.stdout.columns, process.stdout.rows]; process.stdout.write(`size=${r} ${c} ${d.toString().trim()}\\n`); });",
      ],
    },
  });
  expect(created.status).toBe(201);
  const id = created.body.id as string;
  const c = await Client.connect(s.wsUrl, { token });
  await c.attach(id);
  await until(() => c.text(id).includes('READY'), 'agent ready');
  for (let i = 0; i < 20; i++) {
    c.send({ type: 'resize', sessionId: id, cols: 100 + i, rows: 30 + i });
    c.send({ type: 'input', sessionId: id, data: `L${i}\r` });
    await c.waitForText(id, ` L${i}\r\n`);
    expect(c.text(id)).toContain(`size=${30 + i} ${100 + i} L${i}\r\n`);
  }
  expect(c.errors).toEqual([]);
  c.close();
}, 60_000);
