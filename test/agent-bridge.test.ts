import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, ROOT, startServer, tempDir, until, type TestServer } from './helpers/server.js';
import { Client, type Frame } from './helpers/ws.js';

let s: TestServer;
let token: string;
let dir: string;
const agentsFile = () => path.join(dir, 'agents.json');

beforeAll(async () => {
  dir = tempDir();
  writeFileSync(agentsFile(), JSON.stringify({ channel: { command: process.execPath, args: [path.join(ROOT, 'test/fixtures/channel-agent.mjs')] } }));
  s = await startServer({ dir, env: { AGENTS_FILE: agentsFile() } });
  token = await s.token({ sub: 'alice', orgId: 'acme' });
});
afterAll(async () => {
  await s?.stop();
});

const agentEvents = (c: Client, id: string, from = 0): Frame[] => c.frames.slice(from).filter((f) => f.type === 'event' && f.topic === `session:${id}`);

describe('agent channel', () => {
  it('a prompt reaches the agent; its message, tool call and result reach the editor in order and are kept', async () => {
    const created = await api(s, 'POST', '/api/sessions', { token, body: { orgId: 'acme', projectName: 'bridge', agent: 'channel' } });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    const editor = await Client.connect(s.wsUrl, { token });
    await editor.attach(id);
    await editor.waitForText(id, 'welcome true');
    const from = editor.frames.length;
    editor.send({ type: 'prompt', sessionId: id, text: 'hello there', ref: 'p1' });
    const prompted = await editor.next((f) => f.type === 'prompted', 'prompted');
    expect(prompted).toMatchObject({ sessionId: id, via: 'channel', ref: 'p1' });
    await editor.next((f) => f.type === 'event' && f.name === 'agent:status' && f.payload.state === 'done', 'done status');
    await editor.next((f) => f.type === 'event' && f.name === 'agent:context', 'context');
    const evs = agentEvents(editor, id, from);
    const names = evs.map((e) => e.name);
    expect(names).toEqual(['agent:prompt', 'agent:prompt_ack', 'agent:status', 'agent:message', 'agent:tool_call', 'agent:tool_result', 'agent:context', 'agent:status']);
    const seqs = evs.map((e) => e.payload.seq);
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
    expect(new Set(seqs).size).toBe(seqs.length);
    expect(evs[3]!.payload).toMatchObject({ role: 'assistant', content: 'echo: hello there' });
    expect(evs[4]!.payload).toMatchObject({ id: 'call-1', name: 'read_file', args: { path: 'README.md' } });
    expect(evs[5]!.payload).toMatchObject({ callId: 'call-1', output: 'file body', isError: false });
    const rec = (await api(s, 'GET', `/api/sessions/${id}`, { token })).body;
    expect(rec.metadata.lastPrompt).toBe('hello there');
    expect(rec.conversationId).toBeTruthy();
    const conv = await until(async () => {
      const r = await api(s, 'GET', `/api/conversations/acme/bridge/${rec.conversationId}`, { token });
      return r.status === 200 && r.body.messages.length >= 4 ? r : undefined;
    }, 'four turns stored');
    const turns = conv.body.messages.map((m: any) => [m.role, m.content, m.toolCalls?.[0]?.name ?? null, m.toolResults?.[0]?.callId ?? null]);
    expect(turns).toEqual([
      ['user', 'hello there', null, null],
      ['assistant', 'echo: hello there', null, null],
      ['assistant', '', 'read_file', null],
      ['tool', 'file body', null, 'call-1'],
    ]);

    // Invalid events: an error each, the channel stays open, nothing stored.
    const before = agentEvents(editor, id).length;
    editor.send({ type: 'prompt', sessionId: id, text: 'invalid' });
    await editor.next((f) => f.type === 'event' && f.name === 'agent:message' && f.payload.content === 'after-invalid', 'message after invalid ones');
    // The agent prints each error it gets; the last of its bad frames was the non-JSON one.
    await editor.waitForText(id, 'agent got error: bad_frame');
    const out = editor.text(id);
    expect(out).toContain('agent got error: validation_failed content');
    expect(out).toContain('agent got error: validation_failed id');
    expect(out).toContain('agent got error: validation_failed state');
    expect(out).toContain('agent got error: bad_frame');
    const newNames = agentEvents(editor, id).slice(before).map((e) => e.name);
    expect(newNames).toEqual(['agent:prompt', 'agent:prompt_ack', 'agent:message']);
    const conv2 = await until(async () => {
      const r = await api(s, 'GET', `/api/conversations/acme/bridge/${rec.conversationId}`, { token });
      return r.body.messages.length === 6 ? r : undefined;
    }, 'two more turns');
    expect(conv2.body.messages.slice(4).map((m: any) => [m.role, m.content])).toEqual([
      ['user', 'invalid'],
      ['assistant', 'after-invalid'],
    ]);

    // The agent completes its session with its own credential.
    const org = await Client.connect(s.wsUrl, { token });
    org.send({ type: 'subscribe', topic: 'org:acme' });
    org.send({ type: 'ping' });
    await org.next((f) => f.type === 'pong');
    editor.send({ type: 'prompt', sessionId: id, text: 'complete' });
    const done = await org.next((f) => f.type === 'event' && f.name === 'session:completed', 'session:completed');
    expect(done.payload).toMatchObject({ id, status: 'completed', summary: 'all done by the agent', artifacts: ['dist/index.html'] });
    await editor.next((f) => f.type === 'exit' && f.sessionId === id, 'exit');
    const jobs = await api(s, 'GET', '/api/jobs', { token });
    expect(jobs.body.items.find((j: any) => j.sessionId === id).status).toBe('completed');
    editor.close();
    org.close();

    // The conversation survives a restart.
    await s.stop();
    s = await startServer({ dir, env: { AGENTS_FILE: agentsFile() } });
    const after = await api(s, 'GET', `/api/conversations/acme/bridge/${rec.conversationId}`, { token });
    expect(after.body.messages.length).toBe(7);
    expect(after.body.messages[6]).toMatchObject({ role: "user", content: "complete" });
    expect((await api(s, 'GET', `/api/sessions/${id}`, { token })).body).toMatchObject({ status: 'completed', summary: 'all done by the agent' });
  });

  it("a session's credential reaches only its own session, and dies with it", async () => {
    const a = (await api(s, 'POST', '/api/sessions', { token, body: { orgId: 'acme', projectName: 'cred', agent: 'bash' } })).body;
    const b = (await api(s, 'POST', '/api/sessions', { token, body: { orgId: 'acme', projectName: 'cred', agent: 'bash' } })).body;
    const c = await Client.connect(s.wsUrl, { token });
    await c.attach(a.id);
    c.send({ type: 'input', sessionId: a.id, data: 'printf "TOK=%s=END\\n" "$SESSION_TOKEN"\r' });
    await until(() => /TOK=(sm_ses_[A-Za-z0-9_-]+)=END/.test(c.text(a.id)), 'token printed');
    const cred = /TOK=(sm_ses_[A-Za-z0-9_-]+)=END/.exec(c.text(a.id))![1]!;
    expect(cred).not.toBe(token);
    expect((await api(s, 'GET', `/api/sessions/${a.id}`, { token: cred })).status).toBe(200);
    expect((await api(s, 'GET', `/api/sessions/${b.id}`, { token: cred })).status).toBe(403);
    expect((await api(s, 'GET', '/api/sessions', { token: cred })).status).toBe(403);
    expect((await api(s, 'POST', `/api/sessions/${b.id}/input`, { token: cred, body: { data: 'x' } })).status).toBe(403);
    expect((await api(s, 'POST', '/api/sessions', { token: cred, body: { orgId: 'acme', projectName: 'x' } })).status).toBe(403);
    // Its /agent channel works for a, and is cut when a ends.
    const ws = await Client.connect(s.url.replace('http', 'ws') + '/agent', { token: cred });
    const welcome = await ws.next((f) => f.type === 'welcome');
    expect(welcome.sessionId).toBe(a.id);
    await api(s, 'DELETE', `/api/sessions/${a.id}`, { token, body: { reason: 'user left', details: { tab: 'closed' } } });
    expect((await ws.waitClose()).code).toBe(4010);
    expect((await api(s, 'GET', `/api/sessions/${a.id}`, { token: cred })).status).toBe(401);
    await expect(Client.connect(s.url.replace('http', 'ws') + '/agent', { token: cred })).rejects.toThrow(/401/);
    const rec = (await api(s, 'GET', `/api/sessions/${a.id}`, { token })).body;
    expect(rec).toMatchObject({ status: 'killed', reason: 'user left', details: { tab: 'closed' } });
    await api(s, 'DELETE', `/api/sessions/${b.id}`, { token });
    c.close();
  });

  it('a prompt to an agent without a channel is typed into its pty and recorded', async () => {
    const a = (await api(s, 'POST', '/api/sessions', { token, body: { orgId: 'acme', projectName: 'typed', agent: 'bash' } })).body;
    const c = await Client.connect(s.wsUrl, { token });
    await c.attach(a.id);
    const r = await api(s, 'POST', `/api/sessions/${a.id}/prompt`, { token, body: { text: 'echo prompted-$((2+3))' } });
    expect(r.status).toBe(202);
    expect(r.body.via).toBe('pty');
    await c.waitForText(a.id, 'prompted-5');
    const rec = await until(async () => {
      const x = (await api(s, 'GET', `/api/sessions/${a.id}`, { token })).body;
      return x.conversationId ? x : undefined;
    }, 'conversation bound');
    const conv = await api(s, 'GET', `/api/conversations/acme/typed/${rec.conversationId}`, { token });
    expect(conv.body.messages.map((m: any) => [m.role, m.content])).toEqual([['user', 'echo prompted-$((2+3))']]);
    await api(s, 'DELETE', `/api/sessions/${a.id}`, { token });
    c.close();
  });

  it('lists participants and announces joins and leaves', async () => {
    const a = (await api(s, 'POST', '/api/sessions', { token, body: { orgId: 'acme', projectName: 'people', agent: 'channel' } })).body;
    const owner = await Client.connect(s.wsUrl, { token });
    await owner.attach(a.id);
    await owner.waitForText(a.id, 'welcome true');
    const bob = await Client.connect(s.wsUrl, { token: await s.token({ sub: 'bob', orgId: 'acme' }) });
    await bob.attach(a.id);
    await owner.next((f) => f.type === 'event' && f.name === 'participant:joined' && f.payload.userId === 'bob', 'bob joined');
    const list = await api(s, 'GET', `/api/sessions/${a.id}/participants`, { token });
    const roles = list.body.items.map((p: any) => [p.role, p.userId, p.connections]);
    expect(roles).toEqual([
      ['owner', 'alice', 1],
      ['editor', 'bob', 1],
      ['agent', `agent:${a.id}`, 1],
    ]);
    bob.close();
    await owner.next((f) => f.type === 'event' && f.name === 'participant:left' && f.payload.userId === 'bob', 'bob left');
    // Terminate publishes session:terminated with the reason kept.
    const org = await Client.connect(s.wsUrl, { token });
    org.send({ type: 'subscribe', topic: 'org:acme' });
    org.send({ type: 'ping' });
    await org.next((f) => f.type === 'pong');
    await api(s, 'DELETE', `/api/sessions/${a.id}`, { token, body: { reason: 'done for today' } });
    const ev = await org.next((f) => f.type === 'event' && f.name === 'session:terminated', 'terminated');
    expect(ev.payload).toMatchObject({ id: a.id, status: 'killed', reason: 'done for today' });
    // Only the owner (or the agent) completes; nothing to complete once ended.
    expect((await api(s, 'POST', `/api/sessions/${a.id}/complete`, { token, body: { summary: 'x' } })).status).toBe(409);
    owner.close();
    org.close();
  });
});
