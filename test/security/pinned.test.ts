/**
 * Findings of the hostile-input sweep and the fuzzers, each pinned by the smallest input
 * that shows it, so a fix can be checked on its own.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { api, until } from '../helpers/server.js';
import { Client } from '../helpers/ws.js';
import { errorCode, makeWorld, request, type World } from './world.js';

/** Nesting far past any real document, well inside MAX_BODY_BYTES (2 bytes a level). */
const DEPTH = 50_000;
const deepArray = '['.repeat(DEPTH) + ']'.repeat(DEPTH);

let world: World;
let agentCred: string;
let agentSession: string;
beforeAll(async () => {
  world = await makeWorld({ env: { LOG_LEVEL: 'warn' } });
  const r = await api(world.s, 'POST', '/api/sessions', {
    token: world.token,
    body: { orgId: 'acme', projectName: 'proj', agent: 'script', command: 'printf "CRED<%s>\\n" "$SESSION_TOKEN"; exec cat' },
  });
  agentSession = r.body.id;
  agentCred = await until(async () => /CRED<(sm_ses_[^>]+)>/.exec((await api(world.s, 'GET', `/api/sessions/${agentSession}/logs`, { token: world.token })).text)?.[1], 'credential');
});
afterAll(async () => {
  await world?.s.stop();
});

describe('deeply nested JSON is refused with 400, never a 500 from a stack overflow', () => {
  it('on every HTTP route that stores or re-serializes what it is given', async () => {
    const w = world.w;
    const cases: Array<[string, string, string]> = [
      ['POST', '/api/sessions', `{"orgId":"acme","projectName":"proj","agent":"script","command":"true","metadata":{"d":${deepArray}}}`],
      ['DELETE', `/api/sessions/${agentSession}`, `{"details":${deepArray}}`],
      ['POST', `/api/sessions/${w.id}/prompt`, `{"text":"x","attachments":[${deepArray}]}`],
      ['PUT', '/api/planner/acme/proj', `{"cards":[{"id":"c9","title":"t","x":${deepArray}}]}`],
      ['POST', '/api/planner/acme/proj/cards', `{"title":"t","x":${deepArray}}`],
      ['PATCH', `/api/planner/acme/proj/cards/${w.cardId}`, `{"x":${deepArray}}`],
      ['POST', '/api/conversations/acme/proj', `{"messages":[{"role":"user","content":${deepArray}}]}`],
      ['POST', `/api/conversations/acme/proj/${w.conversationId}/messages`, `{"role":"user","content":"x","metadata":{"d":${deepArray}}}`],
      ['PUT', `/api/conversations/acme/proj/${w.conversationId}`, `{"messages":[{"role":"user","content":"x","toolCalls":[{"a":${deepArray}}]}]}`],
    ];
    const got: string[] = [];
    for (const [m, p, body] of cases) {
      const r = await request(world.s, m, p, { token: world.token, body });
      got.push(`${m} ${p.replace(/[0-9a-f-]{36}/g, ':id')} → ${r.status} ${errorCode(r.text) ?? ''}`.trim());
    }
    expect(got.filter((g) => / → (5\d\d|0|-1)/.test(g) || /internal_error/.test(g))).toEqual([]);
    // The session that was asked to end with a bad body is still running (nothing half-done).
    expect((await api(world.s, 'GET', `/api/sessions/${agentSession}`, { token: world.token })).body.status).toBe('running');
  });

  it('on /ws (prompt attachments) and /agent (tool call args, tool result output, context patch)', async () => {
    const c = await Client.connect(world.s.wsUrl, { token: world.token });
    c.ws.send(`{"type":"prompt","sessionId":"${world.w.id}","text":"x","attachments":[${deepArray}],"ref":"deep"}`);
    const wsAnswer = await c.next((f) => f.ref === 'deep', 'answer to the deep prompt');
    c.close();
    const agent = new WebSocket(`${world.s.url.replace('http', 'ws')}/agent?token=${encodeURIComponent(agentCred)}`);
    const frames: Array<Record<string, any>> = [];
    agent.on('message', (d) => frames.push(JSON.parse(d.toString())));
    await new Promise<void>((res, rej) => {
      agent.once('open', () => res());
      agent.once('error', rej);
    });
    agent.send(`{"type":"tool_call","id":"t1","name":"n","args":${deepArray},"ref":"a1"}`);
    agent.send(`{"type":"tool_result","callId":"t1","output":${deepArray},"ref":"a2"}`);
    agent.send(`{"type":"context","patch":{"d":${deepArray}},"ref":"a3"}`);
    await until(() => ['a1', 'a2', 'a3'].every((ref) => frames.some((f) => f.ref === ref)), 'answers to the deep agent frames');
    agent.close();
    const codes = [wsAnswer, ...['a1', 'a2', 'a3'].map((ref) => frames.find((f) => f.ref === ref)!)].map((f) => `${f.ref}: ${f.type} ${f.code ?? ''}`.trim());
    expect(codes.filter((x) => x.includes('internal_error'))).toEqual([]);
  });
});

describe('the planner cannot be poisoned', () => {
  it('a value nested 3,000 deep is refused, and the planner still takes writes afterwards', async () => {
    const base = '/api/planner/acme/proj';
    await api(world.s, 'POST', `${base}/cards`, { token: world.token, body: { id: 'poison', title: 'p' } });
    const mid = '['.repeat(3000) + ']'.repeat(3000);
    const stored = await request(world.s, 'PATCH', `${base}/cards/poison`, { token: world.token, body: `{"x":${mid}}` });
    const next = await request(world.s, 'PATCH', `${base}/cards/poison`, { token: world.token, body: '{"title":"still writable"}' });
    const replace = await request(world.s, 'PUT', base, { token: world.token, body: JSON.stringify({ cards: [{ id: 'poison', title: 'replaced' }] }) });
    expect({ deep: stored.status, next: next.status, replace: replace.status }).toEqual({ deep: 400, next: 200, replace: 200 });
  });

  it('a write that cannot be stored fails alone: concurrent good writes to the same planner succeed', async () => {
    const base = '/api/planner/acme/proj';
    await api(world.s, 'POST', `${base}/cards`, { token: world.token, body: { id: 'mates', title: 'm' } });
    const failed: string[] = [];
    const log = (round: number, i: number) => request(world.s, 'POST', `${base}/cards/mates/logs`, { token: world.token, body: JSON.stringify({ message: `r${round}-${i}` }) });
    for (let round = 0; round < 5; round++) {
      // A first write starts a commit; the bad one and the good ones arrive while it runs.
      const first = log(round, -1);
      const bad = request(world.s, 'PATCH', `${base}/cards/mates`, { token: world.token, body: `{"x":${'['.repeat(6000)}${']'.repeat(6000)}}` });
      const good = Array.from({ length: 8 }, (_, i) => log(round, i));
      const res = await Promise.all([first, bad, ...good]);
      [res[0]!, ...res.slice(2)].forEach((r, i) => r.status !== 201 && failed.push(`round ${round} good write ${i} → ${r.status} ${errorCode(r.text) ?? ''}`));
    }
    expect(failed).toEqual([]);
  });
});

describe('git', () => {
  it('a NUL byte in a commit message (or author) is 400, not a 500 from spawn', async () => {
    const r1 = await api(world.s, 'POST', '/api/git/acme/proj/commit', { token: world.token, body: { message: 'a\u0000b' } });
    const r2 = await api(world.s, 'POST', '/api/git/acme/proj/commit', { token: world.token, body: { message: 'm', author: { name: 'a\u0000b', email: 'a@b' } } });
    const r3 = await api(world.s, 'POST', '/api/git/acme/proj/commit', { token: world.token, body: { message: 'm', paths: ['a\u0000b'] } });
    expect([r1.status, r2.status, r3.status]).toEqual([400, 400, 400]);
  });
});

describe('/agent', () => {
  it('a second auth frame on an authenticated channel gets an error and the channel stays open (as docs/agent-protocol.md says of invalid frames)', async () => {
    const agent = new WebSocket(`${world.s.url.replace('http', 'ws')}/agent?token=${encodeURIComponent(agentCred)}`);
    const frames: Array<Record<string, any>> = [];
    let closed: number | undefined;
    agent.on('message', (d) => frames.push(JSON.parse(d.toString())));
    agent.on('close', (code) => (closed = code));
    await new Promise<void>((res, rej) => {
      agent.once('open', () => res());
      agent.once('error', rej);
    });
    agent.send(JSON.stringify({ type: 'auth', token: agentCred, ref: 'again' }));
    agent.send(JSON.stringify({ type: 'ping', ref: 'after' }));
    await until(() => closed !== undefined || frames.some((f) => f.ref === 'after'), 'pong or close');
    agent.close();
    expect({ closed, error: frames.find((f) => f.ref === 'again')?.type }).toEqual({ closed: undefined, error: 'error' });
  });
});
