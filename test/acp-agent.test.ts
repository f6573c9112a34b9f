import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { api, ROOT, startServer, tempDir, until, type TestServer } from './helpers/server.js';
import { Client, type Frame } from './helpers/ws.js';

let s: TestServer;
let token: string;
beforeAll(async () => {
  const dir = tempDir();
  const agents = path.join(dir, 'agents.json');
  writeFileSync(agents, JSON.stringify({ echo: { command: process.execPath, args: [path.join(ROOT, 'test/fixtures/acp-echo-agent.mjs')], protocol: 'acp' } }));
  s = await startServer({ dir, env: { AGENTS_FILE: agents } });
  token = await s.token({ sub: 'alice', orgId: 'acme' });
});
afterAll(async () => {
  await s?.stop();
});

const ev = (name: string, pred: (p: any) => boolean = () => true) => (f: Frame) => f.type === 'event' && f.name === name && pred(f.payload);

it('ACP echo agent: prompt → streamed chunks and a tool call → editor events → one conversation', async () => {
  const created = await api(s, 'POST', '/api/sessions', { token, body: { orgId: 'acme', projectName: 'acp', agent: 'echo' } });
  expect(created.status).toBe(201);
  const id = created.body.id as string;
  const ed = await Client.connect(s.wsUrl, { token });
  await ed.attach(id);
  // The agent's stderr is the session's terminal stream.
  await ed.waitForText(id, 'acp-echo-agent ready');
  const from = ed.frames.length;
  ed.send({ type: 'prompt', sessionId: id, text: 'hello über acp' });
  const prompted = await ed.next((f) => f.type === 'prompted', 'prompted');
  expect(prompted.via).toBe('acp');
  const done = await ed.next(ev('agent:prompt_done'), 'prompt done');
  expect(done.payload).toMatchObject({ promptId: prompted.promptId, stopReason: 'end_turn' });
  // The prompt's events (the editor's own participant:joined may land after `from`).
  const evs = ed.frames.slice(from).filter((f) => f.type === 'event' && String(f.name).startsWith('agent:'));
  const chunks = evs.filter((f) => f.name === 'agent:message' && f.payload.chunk);
  expect(chunks.length).toBeGreaterThanOrEqual(2);
  expect(chunks.map((c) => c.payload.content).join('')).toBe('hello über acp');
  const names = evs.map((f) => f.name).filter((n) => n !== 'agent:message' && n !== 'agent:status');
  expect(names).toEqual(['agent:prompt', 'agent:tool_call', 'agent:tool_result', 'agent:prompt_done']);
  const states = evs.filter((f) => f.name === 'agent:status').map((f) => f.payload.state);
  expect(states).toContain('thinking');
  expect(states[states.length - 1]).toBe('done');
  expect(states.indexOf('thinking')).toBeLessThan(states.lastIndexOf('done'));
  expect(evs.find((f) => f.name === 'agent:tool_call')!.payload).toMatchObject({ name: 'echo', args: { text: 'hello über acp' } });
  const conv = await until(async () => {
    const rec = (await api(s, 'GET', `/api/sessions/${id}`, { token })).body;
    if (!rec.conversationId) return undefined;
    const r = await api(s, 'GET', `/api/conversations/acme/acp/${rec.conversationId}`, { token });
    return r.body.messages?.length === 4 ? r.body : undefined;
  }, 'conversation with four turns');
  expect(conv.messages.map((m: any) => m.role)).toEqual(['user', 'assistant', 'tool', 'assistant']);
  expect(conv.messages[3].content).toBe('hello über acp');
  ed.close();
  await api(s, 'DELETE', `/api/sessions/${id}`, { token });
});

it('ACP: cancel stops a slow turn; a permission request is answered from the editor', async () => {
  const id = (await api(s, 'POST', '/api/sessions', { token, body: { orgId: 'acme', projectName: 'acp', agent: 'echo' } })).body.id as string;
  const ed = await Client.connect(s.wsUrl, { token });
  await ed.attach(id);
  await ed.waitForText(id, 'acp-echo-agent ready');
  ed.send({ type: 'prompt', sessionId: id, text: 'a slow one' });
  await ed.next(ev('agent:status', (p) => p.state === 'thinking'), 'thinking');
  ed.send({ type: 'cancel', sessionId: id });
  const cancelled = await ed.next(ev('agent:prompt_done'), 'cancelled turn');
  expect(cancelled.payload.stopReason).toBe('cancelled');

  ed.send({ type: 'prompt', sessionId: id, text: 'ask permission first' });
  const req = await ed.next(ev('agent:permission_request'), 'permission request');
  expect(req.payload.options.map((o: any) => o.optionId)).toEqual(['allow-once', 'reject-once']);
  ed.send({ type: 'permission', sessionId: id, requestId: req.payload.requestId, optionId: 'allow-once' });
  await ed.next(ev('agent:message', (p) => p.content.includes('permission: allow-once')), 'agent got the answer');
  const done = await ed.nextNew(ev('agent:prompt_done'), 'turn done');
  expect(done.payload.stopReason).toBe('end_turn');
  ed.close();
  await api(s, 'DELETE', `/api/sessions/${id}`, { token });
});
