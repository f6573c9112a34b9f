import { appendFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { Client } from '../helpers/ws.js';

let s: TestServer;
let token: string;
const C = '/api/conversations/acme/chat';

beforeAll(async () => {
  s = await startServer();
  token = await s.token({ sub: 'alice', orgId: 'acme' });
});
afterAll(async () => {
  await s?.stop();
});

describe('conversations', () => {
  it('create, read, append, update, list and delete, with conversation:updated on the project topic', async () => {
    const c = await Client.connect(s.wsUrl, { token });
    c.send({ type: 'subscribe', topic: 'project:acme/chat' });
    c.send({ type: 'ping' });
    await c.next((f) => f.type === 'pong', 'pong');

    const made = await api(s, 'POST', C, { token, body: { messages: [{ role: 'user', content: 'Build me a landing page for a bakery' }] } });
    expect(made.status).toBe(201);
    const id = made.body.id as string;
    expect(made.body).toMatchObject({ orgId: 'acme', projectName: 'chat', createdBy: 'alice', messageCount: 1, title: 'Build me a landing page for a bakery' });
    expect(made.body.messages[0]).toMatchObject({ role: 'user', content: 'Build me a landing page for a bakery' });
    expect(made.body.messages[0].id).toBeTruthy();
    expect((await c.next((f) => f.type === 'event' && f.name === 'conversation:updated' && f.payload.action === 'created', 'created event')).payload).toMatchObject({
      orgId: 'acme', projectName: 'chat', conversationId: id, messageCount: 1,
    });

    const appended = await api(s, 'POST', `${C}/${id}/messages`, {
      token,
      body: { role: 'assistant', content: 'Reading the template first.', toolCalls: [{ id: 'call_1', name: 'read_file', input: { path: 'index.html' } }] },
    });
    expect(appended.status).toBe(201);
    expect(appended.body.messageCount).toBe(2);
    const batch = await api(s, 'POST', `${C}/${id}/messages`, {
      token,
      body: { messages: [{ role: 'tool', toolResults: [{ toolCallId: 'call_1', output: '<!doctype html>' }] }, { role: 'assistant', content: [{ type: 'text', text: 'Done.' }] }] },
    });
    expect(batch.body.messageCount).toBe(4);
    await c.next((f) => f.type === 'event' && f.name === 'conversation:updated' && f.payload.action === 'appended' && f.payload.messageCount === 4, 'appended event');

    const read = await api(s, 'GET', `${C}/${id}`, { token });
    expect(read.status).toBe(200);
    expect(read.body.messages.map((m: any) => m.role)).toEqual(['user', 'assistant', 'tool', 'assistant']);
    expect(read.body.messages[1].toolCalls).toEqual([{ id: 'call_1', name: 'read_file', input: { path: 'index.html' } }]);
    expect(read.body.messages[2].toolResults[0].output).toBe('<!doctype html>');
    expect(read.body.messages[3].content).toEqual([{ type: 'text', text: 'Done.' }]);

    const renamed = await api(s, 'PUT', `${C}/${id}`, { token, body: { title: 'Bakery site' } });
    expect(renamed.body).toMatchObject({ title: 'Bakery site', messageCount: 4 });
    const rewritten = await api(s, 'PUT', `${C}/${id}`, { token, body: { messages: [{ role: 'user', content: 'Start over' }] } });
    expect(rewritten.body.messageCount).toBe(1);
    expect(rewritten.body.messages.map((m: any) => m.content)).toEqual(['Start over']);
    const again = await api(s, 'POST', `${C}/${id}/messages`, { token, body: { role: 'assistant', content: 'Sure.' } });
    expect(again.body.messageCount).toBe(2);
    expect((await api(s, 'GET', `${C}/${id}`, { token })).body.messages.map((m: any) => m.content)).toEqual(['Start over', 'Sure.']);

    const second = await api(s, 'POST', C, { token, body: { title: 'Second' } });
    expect(second.body).toMatchObject({ title: 'Second', messageCount: 0, messages: [] });
    const list = await api(s, 'GET', C, { token });
    expect(list.status).toBe(200);
    expect(list.body.total).toBe(2);
    expect(list.body.items.map((i: any) => i.id)).toEqual([second.body.id, id]);
    for (const item of list.body.items) expect(item.messages).toBeUndefined();
    expect((await api(s, 'GET', `${C}?limit=1&offset=1`, { token })).body.items.map((i: any) => i.id)).toEqual([id]);

    const del = await api(s, 'DELETE', `${C}/${second.body.id}`, { token });
    expect(del.status).toBe(200);
    await c.next((f) => f.type === 'event' && f.name === 'conversation:updated' && f.payload.action === 'deleted', 'deleted event');
    expect((await api(s, 'GET', `${C}/${second.body.id}`, { token })).body.error.code).toBe('conversation_not_found');
    expect((await api(s, 'POST', `${C}/${second.body.id}/messages`, { token, body: { role: 'user', content: 'x' } })).status).toBe(404);
    expect((await api(s, 'DELETE', `${C}/${second.body.id}`, { token })).status).toBe(404);
    expect((await api(s, 'GET', C, { token })).body.total).toBe(1);
    c.close();
  });

  it('validates turns and keeps other orgs out', async () => {
    const id = (await api(s, 'POST', C, { token, body: {} })).body.id;
    for (const body of [{ content: 'no role' }, { role: 'User!', content: 'x' }, { role: 'user' }, { role: 'user', content: 5 }, { role: 'tool', toolCalls: 'x' }, { messages: 'x' }, { messages: [] }]) {
      const r = await api(s, 'POST', `${C}/${id}/messages`, { token, body });
      expect(r.status, JSON.stringify(body)).toBe(400);
    }
    expect((await api(s, 'POST', C, { token, body: { title: 7 } })).status).toBe(400);
    const other = await s.token({ sub: 'mallory', orgId: 'evil' });
    expect((await api(s, 'GET', C, { token: other })).status).toBe(403);
    expect((await api(s, 'GET', `${C}/${id}`, { token: other })).status).toBe(403);
    expect((await api(s, 'POST', `${C}/${id}/messages`, { token: other, body: { role: 'user', content: 'x' } })).status).toBe(403);
    expect((await api(s, 'GET', `${C}/not..valid`, { token })).status).toBe(404);
    expect((await api(s, 'GET', '/api/conversations/acme/bad%20name', { token })).body.error.code).toBe('invalid_name');
    await api(s, 'DELETE', `${C}/${id}`, { token });
  });

  it('50 concurrent appends to one conversation keep every turn and an exact count', async () => {
    const id = (await api(s, 'POST', C, { token, body: { title: 'busy' } })).body.id;
    const rs = await Promise.all(Array.from({ length: 50 }, (_, i) => api(s, 'POST', `${C}/${id}/messages`, { token, body: { role: 'user', content: `m${i}` } })));
    expect(rs.every((r) => r.status === 201)).toBe(true);
    const read = (await api(s, 'GET', `${C}/${id}`, { token })).body;
    expect(read.messageCount).toBe(50);
    expect(new Set(read.messages.map((m: any) => m.content))).toEqual(new Set(Array.from({ length: 50 }, (_, i) => `m${i}`)));
  });

  it('survive a server restart on the same DATA_DIR', async () => {
    const id = (await api(s, 'POST', C, { token, body: { title: 'durable', messages: [{ role: 'user', content: 'first' }] } })).body.id;
    await api(s, 'POST', `${C}/${id}/messages`, { token, body: { role: 'assistant', content: 'second', toolCalls: [{ id: 't1', name: 'ls' }] } });
    const before = (await api(s, 'GET', C, { token })).body;
    const full = (await api(s, 'GET', `${C}/${id}`, { token })).body;

    const dir = s.dir;
    await s.stop();
    s = await startServer({ dir });
    token = await s.token({ sub: 'alice', orgId: 'acme' });

    expect((await api(s, 'GET', C, { token })).body).toEqual(before);
    expect((await api(s, 'GET', `${C}/${id}`, { token })).body).toEqual(full);
    const more = await api(s, 'POST', `${C}/${id}/messages`, { token, body: { role: 'user', content: 'third' } });
    expect(more.body.messageCount).toBe(3);
    expect((await api(s, 'GET', `${C}/${id}`, { token })).body.messages.map((m: any) => m.content)).toEqual(['first', 'second', 'third']);
  });

  it('after a crash tore the last line, earlier turns survive and later appends are kept', async () => {
    const id = (await api(s, 'POST', C, { token, body: { title: 'torn', messages: [{ role: 'user', content: 'first' }] } })).body.id;
    await api(s, 'POST', `${C}/${id}/messages`, { token, body: { role: 'assistant', content: 'second' } });
    const dir = s.dir;
    await s.stop();
    // A crash mid-append leaves half a line behind.
    const logDir = path.join(dir, 'data', 'conversations', 'acme', 'chat');
    expect(readdirSync(logDir)).toContain(`${id}.jsonl`);
    appendFileSync(path.join(logDir, `${id}.jsonl`), '{"op":"append","turns":[{"role":"user","cont');
    s = await startServer({ dir });
    token = await s.token({ sub: 'alice', orgId: 'acme' });

    expect((await api(s, 'GET', `${C}/${id}`, { token })).body.messages.map((m: any) => m.content)).toEqual(['first', 'second']);
    expect((await api(s, 'POST', `${C}/${id}/messages`, { token, body: { role: 'user', content: 'third' } })).status).toBe(201);
    expect((await api(s, 'GET', `${C}/${id}`, { token })).body.messages.map((m: any) => m.content)).toEqual(['first', 'second', 'third']);
  });
});
