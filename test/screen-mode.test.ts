import path from 'node:path';
import xtermHeadless from '@xterm/headless';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { api, ROOT, startServer, until, type TestServer } from './helpers/server.js';
import { Client } from './helpers/ws.js';

const { Terminal } = xtermHeadless;
type Term = InstanceType<typeof Terminal>;
const COLS = 60;
const ROWS = 20;

let s: TestServer;
let token: string;
beforeAll(async () => {
  s = await startServer();
  token = await s.token();
});
afterAll(async () => {
  await s?.stop();
});

function write(t: Term, data: string | Uint8Array): Promise<void> {
  return new Promise((resolve) => t.write(data, () => resolve()));
}

function screenOf(t: Term): { lines: string[]; cursor: [number, number]; alt: boolean } {
  const b = t.buffer.active;
  const lines: string[] = [];
  for (let i = 0; i < t.rows; i++) lines.push(b.getLine(b.viewportY + i)?.translateToString(true) ?? '');
  return { lines, cursor: [b.cursorX, b.cursorY], alt: b.type === 'alternate' };
}

it('attach in screen mode shows a full-screen program exactly as a viewer that watched from the start', async () => {
  const created = await api(s, 'POST', '/api/sessions', {
    token,
    body: { orgId: 'acme', projectName: 'tui', agent: 'script', command: ['node', path.join(ROOT, 'test/fixtures/tui.mjs')], cols: COLS, rows: ROWS },
  });
  const id = created.body.id as string;
  const watcher = await Client.connect(s.wsUrl, { token });
  const att = await watcher.attach(id);
  expect(att.offset).toBe(0);
  await watcher.waitForText(id, 'READY-150');

  const late = await Client.connect(s.wsUrl, { token });
  late.send({ type: 'attach', sessionId: id, mode: 'screen' });
  const a = await late.next((f) => f.type === 'attached', 'screen attach');
  expect(a.screen).toMatchObject({ cols: COLS, rows: ROWS });
  expect(typeof a.screen.data).toBe('string');
  // The serialized screen is much smaller than the replay it replaces.
  expect(a.screen.data.length).toBeLessThan(watcher.bytes(id).length / 2);
  late.resetOutput(id, a.offset);

  const full = new Terminal({ cols: COLS, rows: ROWS, allowProposedApi: true });
  const fromScreen = new Terminal({ cols: COLS, rows: ROWS, allowProposedApi: true });
  await write(full, watcher.bytes(id));
  await write(fromScreen, a.screen.data);
  await write(fromScreen, late.bytes(id));
  const expected = screenOf(full);
  expect(expected.alt).toBe(true);
  expect(expected.lines.join('\n')).toContain('READY-150');
  expect(screenOf(fromScreen)).toEqual(expected);

  // Live output continues from the screen's offset with no hole: both stay identical.
  const fromW = watcher.outputs.get(id)!.end;
  const fromL = late.outputs.get(id)!.end;
  late.send({ type: 'input', sessionId: id, data: 'u' });
  await late.waitForText(id, 'UPDATED-151');
  await until(() => watcher.outputs.get(id)!.end === late.outputs.get(id)!.end, 'both viewers caught up');
  expect(late.errors).toEqual([]);
  await write(full, watcher.bytes(id).subarray(fromW - watcher.outputs.get(id)!.start));
  await write(fromScreen, late.bytes(id).subarray(fromL - late.outputs.get(id)!.start));
  expect(screenOf(fromScreen)).toEqual(screenOf(full));
  expect(screenOf(full).lines.join('\n')).toContain('UPDATED-151');
  late.send({ type: 'input', sessionId: id, data: 'q' });
  await watcher.next((f) => f.type === 'exit' && f.sessionId === id, 'exit');
  watcher.close();
  late.close();
});

it('screen mode is rebuilt from the ring after a flood outran the mirror', async () => {
  const created = await api(s, 'POST', '/api/sessions', { token, body: { orgId: 'acme', projectName: 'tui', agent: 'bash', cols: COLS, rows: ROWS } });
  const id = created.body.id as string;
  const watcher = await Client.connect(s.wsUrl, { token });
  await watcher.attach(id);
  watcher.send({ type: 'input', sessionId: id, data: 'seq 1 60000; echo FLOOD-$((7*6))\r' });
  await watcher.waitForText(id, 'FLOOD-42', 30_000);
  const late = await Client.connect(s.wsUrl, { token });
  late.send({ type: 'attach', sessionId: id, mode: 'screen' });
  const a = await late.next((f) => f.type === 'attached', 'screen attach');
  const t = new Terminal({ cols: COLS, rows: ROWS, allowProposedApi: true });
  await write(t, a.screen.data);
  const lines = screenOf(t).lines.join('\n');
  expect(lines).toContain('60000');
  expect(lines).toContain('FLOOD-42');
  watcher.close();
  late.close();
  await api(s, 'DELETE', `/api/sessions/${id}`, { token });
});
