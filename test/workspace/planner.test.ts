import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { Client, type Frame } from '../helpers/ws.js';

let s: TestServer;
let token: string;
let viewer: Client;
const P = '/api/planner/acme/plan';

beforeAll(async () => {
  s = await startServer();
  token = await s.token({ sub: 'alice', orgId: 'acme' });
  expect((await api(s, 'POST', '/api/dev-envs', { token, body: { orgId: 'acme', projectName: 'plan', description: 'planner tests' } })).status).toBe(201);
  viewer = await Client.connect(s.wsUrl, { token });
  viewer.send({ type: 'subscribe', topic: 'project:acme/plan' });
  viewer.send({ type: 'ping' });
  await viewer.next((f) => f.type === 'pong', 'pong after subscribe');
});
afterAll(async () => {
  viewer?.close();
  await s?.stop();
});

const events = (): Frame[] => viewer.frames.filter((f) => f.type === 'event' && f.name === 'planner:updated');
const eventFor = (version: number) => viewer.next((f) => f.type === 'event' && f.name === 'planner:updated' && f.payload.version === version, `planner:updated v${version}`);
const onDisk = () => JSON.parse(readFileSync(path.join(s.workspaces, 'acme', 'plan', '.vibe', 'planner.json'), 'utf8'));

const doc = {
  cards: [
    {
      id: 'login',
      title: 'Log in',
      status: 'todo',
      description: 'Email and password',
      criteria: [
        { id: 'ac1', text: 'Wrong password shows an error', done: false },
        { id: 'ac2', text: 'Session survives reload', done: false },
      ],
      logs: [],
      priority: 2,
    },
  ],
};

describe('planner', () => {
  it('an empty planner is version 0; every write bumps the version, lands on disk and reaches a subscribed editor', async () => {
    const empty = await api(s, 'GET', P, { token });
    expect(empty.status).toBe(200);
    expect(empty.body).toMatchObject({ version: 0, cards: [] });
    expect(empty.headers.get('etag')).toBe('"0"');

    const put = await api(s, 'PUT', P, { token, body: doc, headers: { 'if-match': '"0"' } });
    expect(put.status).toBe(200);
    expect(put.body.version).toBe(1);
    expect(put.headers.get('etag')).toBe('"1"');
    expect(put.body.cards[0]).toMatchObject({ id: 'login', priority: 2, criteria: [{ id: 'ac1', done: false }, { id: 'ac2' }] });
    expect((await eventFor(1)).payload).toEqual({ orgId: 'acme', projectName: 'plan', version: 1 });
    expect(onDisk()).toMatchObject({ version: 1, cards: [{ id: 'login' }] });

    const patched = await api(s, 'PATCH', `${P}/cards/login`, { token, body: { status: 'in_progress', description: null, owner: 'alice' } });
    expect(patched.status).toBe(200);
    expect(patched.body.version).toBe(2);
    expect(patched.body.card).toMatchObject({ id: 'login', title: 'Log in', status: 'in_progress', owner: 'alice', priority: 2 });
    expect(patched.body.card.description).toBeUndefined();
    expect((await eventFor(2)).payload).toEqual({ orgId: 'acme', projectName: 'plan', version: 2, cardId: 'login' });

    const logged = await api(s, 'POST', `${P}/cards/login/logs`, { token, body: { message: 'form drafted' } });
    expect(logged.status).toBe(201);
    expect(logged.body).toMatchObject({ version: 3, cardId: 'login', log: { message: 'form drafted', author: 'alice' } });
    expect(Date.parse(logged.body.log.at)).not.toBeNaN();
    expect((await eventFor(3)).payload.cardId).toBe('login');

    const ticked = await api(s, 'PATCH', `${P}/cards/login/criteria/ac1`, { token, body: { done: true } });
    expect(ticked.status).toBe(200);
    expect(ticked.body).toMatchObject({ version: 4, cardId: 'login', criterion: { id: 'ac1', done: true } });
    expect((await eventFor(4)).payload.cardId).toBe('login');

    const created = await api(s, 'POST', `${P}/cards`, { token, body: { title: 'Sign up', criteria: [{ id: 'a', text: 'works' }] } });
    expect(created.status).toBe(201);
    expect(created.body.version).toBe(5);
    expect(created.body.card).toMatchObject({ title: 'Sign up', status: 'todo', logs: [], criteria: [{ id: 'a', text: 'works', done: false }] });
    const newId = created.body.card.id as string;
    expect((await eventFor(5)).payload.cardId).toBe(newId);

    const deleted = await api(s, 'DELETE', `${P}/cards/${newId}`, { token });
    expect(deleted.status).toBe(200);
    expect(deleted.body).toEqual({ version: 6, deleted: newId });
    expect((await eventFor(6)).payload.cardId).toBe(newId);

    const now = await api(s, 'GET', P, { token });
    expect(now.body.version).toBe(6);
    expect(now.headers.get('etag')).toBe('"6"');
    expect(now.body.cards.map((c: any) => c.id)).toEqual(['login']);
    expect(now.body.cards[0].logs.map((l: any) => l.message)).toEqual(['form drafted']);
    expect(onDisk()).toEqual(now.body);
    expect(events().map((e) => e.payload.version)).toEqual([1, 2, 3, 4, 5, 6]);

    const notModified = await api(s, 'GET', P, { token, headers: { 'if-none-match': '"6"' } });
    expect(notModified.status).toBe(304);
  });

  it('a stale If-Match is 409 (quoted or bare), a current one succeeds; nothing is written on conflict', async () => {
    const cur = (await api(s, 'GET', P, { token })).body.version as number;
    const stale = await api(s, 'PUT', P, { token, body: doc, headers: { 'if-match': `"${cur - 1}"` } });
    expect(stale.status).toBe(409);
    expect(stale.body.error.code).toBe('version_conflict');
    expect(stale.body.error.details.currentVersion).toBe(cur);
    expect(stale.headers.get('etag')).toBe(`"${cur}"`);
    const staleBare = await api(s, 'PATCH', `${P}/cards/login`, { token, body: { status: 'done' }, headers: { 'if-match': String(cur - 2) } });
    expect(staleBare.status).toBe(409);
    expect(onDisk().version).toBe(cur);

    const ok = await api(s, 'PATCH', `${P}/cards/login`, { token, body: { status: 'review' }, headers: { 'if-match': String(cur) } });
    expect(ok.status).toBe(200);
    expect(ok.body.version).toBe(cur + 1);
    const okQuoted = await api(s, 'PUT', P, { token, body: { ...doc, cards: [{ ...doc.cards[0], status: 'done' }] }, headers: { 'if-match': `W/"${cur + 1}"` } });
    expect(okQuoted.status).toBe(200);
    expect(okQuoted.body.version).toBe(cur + 2);
    expect((await api(s, 'PUT', P, { token, body: doc, headers: { 'if-match': 'banana' } })).status).toBe(400);
    // Version and updatedAt in a body are the server's, not the client's.
    const claimed = await api(s, 'PUT', P, { token, body: { ...doc, version: 999, updatedAt: 'yesterday' } });
    expect(claimed.body.version).toBe(cur + 3);
    expect(Date.parse(claimed.body.updatedAt)).not.toBeNaN();
  });

  it('100 concurrent log appends all land: 100 logs, 100 versions, 100 events in order', async () => {
    const start = (await api(s, 'GET', P, { token })).body;
    const before = start.cards[0].logs.length as number;
    const eventsBefore = events().length;
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) => api(s, 'POST', `${P}/cards/login/logs`, { token, body: { message: `step ${i}`, author: `bot-${i % 3}` } })),
    );
    expect(results.map((r) => r.status)).toEqual(Array(100).fill(201));
    expect(new Set(results.map((r) => r.body.version)).size).toBe(100);
    const after = (await api(s, 'GET', P, { token })).body;
    expect(after.version).toBe(start.version + 100);
    const messages = after.cards[0].logs.slice(before).map((l: any) => l.message);
    expect(messages).toHaveLength(100);
    expect(new Set(messages)).toEqual(new Set(Array.from({ length: 100 }, (_, i) => `step ${i}`)));
    await eventFor(after.version);
    const got = events().slice(eventsBefore).map((e) => e.payload.version);
    expect(got).toEqual(Array.from({ length: 100 }, (_, i) => start.version + 1 + i));
  });

  it('rejects documents of the wrong shape with 400 and the path of the problem', async () => {
    const version = onDisk().version;
    const bad: Array<[unknown, string]> = [
      [[], '$'],
      [{}, '$.cards'],
      [{ cards: {} }, '$.cards'],
      [{ cards: ['x'] }, '$.cards[0]'],
      [{ cards: [{ title: 'no id' }] }, '$.cards[0].id'],
      [{ cards: [{ id: '../x', title: 't' }] }, '$.cards[0].id'],
      [{ cards: [{ id: 'a' }] }, '$.cards[0].title'],
      [{ cards: [{ id: 'a', title: 't', status: 7 }] }, '$.cards[0].status'],
      [{ cards: [{ id: 'a', title: 't', criteria: 'none' }] }, '$.cards[0].criteria'],
      [{ cards: [{ id: 'a', title: 't', criteria: [{ id: 'c', text: 'x', done: 'yes' }] }] }, '$.cards[0].criteria[0].done'],
      [{ cards: [{ id: 'a', title: 't', criteria: [{ id: 'c', text: 'x' }, { id: 'c', text: 'y' }] }] }, '$.cards[0].criteria[1].id'],
      [{ cards: [{ id: 'a', title: 't', logs: [{ message: 'no time' }] }] }, '$.cards[0].logs[0].at'],
      [{ cards: [{ id: 'a', title: 't', logs: [{ at: '2024-01-01T00:00:00Z', message: 5 }] }] }, '$.cards[0].logs[0].message'],
      [{ cards: [{ id: 'a', title: 't' }, { id: 'a', title: 'u' }] }, '$.cards[1].id'],
    ];
    for (const [body, where] of bad) {
      const r = await api(s, 'PUT', P, { token, body });
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.body.error.code).toBe('invalid_planner');
      expect(r.body.error.details.errors[0].path, JSON.stringify(body)).toBe(where);
    }
    expect((await api(s, 'PATCH', `${P}/cards/login`, { token, body: { criteria: [{ id: 'x' }] } })).body.error.code).toBe('invalid_planner');
    expect((await api(s, 'PATCH', `${P}/cards/login`, { token, body: { title: null } })).status).toBe(400);
    expect((await api(s, 'PATCH', `${P}/cards/login`, { token, body: { id: 'other' } })).status).toBe(400);
    expect((await api(s, 'POST', `${P}/cards/login/logs`, { token, body: { message: '' } })).status).toBe(400);
    expect((await api(s, 'PATCH', `${P}/cards/login/criteria/ac1`, { token, body: { done: 'yes' } })).status).toBe(400);
    expect((await api(s, 'PUT', P, { token, body: 'not json', headers: { 'content-type': 'application/json' } })).body.error.code).toBe('invalid_json');
    expect(onDisk().version).toBe(version);
  });

  it('unknown cards and criteria are 404, duplicate card ids 409, other orgs 403, share-less callers 401', async () => {
    expect((await api(s, 'PATCH', `${P}/cards/nope`, { token, body: { status: 'x' } })).body.error.code).toBe('card_not_found');
    expect((await api(s, 'POST', `${P}/cards/nope/logs`, { token, body: { message: 'x' } })).status).toBe(404);
    expect((await api(s, 'DELETE', `${P}/cards/nope`, { token })).status).toBe(404);
    expect((await api(s, 'PATCH', `${P}/cards/login/criteria/nope`, { token, body: { done: true } })).body.error.code).toBe('criterion_not_found');
    expect((await api(s, 'POST', `${P}/cards`, { token, body: { id: 'login', title: 'dup' } })).body.error.code).toBe('card_exists');
    const other = await s.token({ sub: 'mallory', orgId: 'evil' });
    expect((await api(s, 'GET', P, { token: other })).status).toBe(403);
    expect((await api(s, 'PUT', P, { token: other, body: doc })).status).toBe(403);
    expect((await api(s, 'GET', P)).status).toBe(401);
    expect((await api(s, 'GET', '/api/planner/acme/no-such-project', { token })).body.error.code).toBe('workspace_not_found');
    expect((await api(s, 'GET', '/api/planner/acme/..%2Fx', { token })).body.error.code).toBe('invalid_name');
    expect((await api(s, 'GET', '/api/planner/acme/-x', { token })).status).toBe(400);
  });

  it('builds on edits an agent made on disk, and a corrupt file is 409 until a PUT replaces it', async () => {
    const file = path.join(s.workspaces, 'acme', 'plan', '.vibe', 'planner.json');
    const cur = onDisk();
    cur.cards[0].title = 'Log in (agent edit)';
    writeFileSync(file, JSON.stringify(cur));
    const patched = await api(s, 'PATCH', `${P}/cards/login`, { token, body: { status: 'done' } });
    expect(patched.body.card.title).toBe('Log in (agent edit)');
    expect(patched.body.version).toBe(cur.version + 1);

    writeFileSync(file, '{"version": 40, "cards": [');
    expect((await api(s, 'GET', P, { token })).body.error.code).toBe('planner_corrupt');
    expect((await api(s, 'PATCH', `${P}/cards/login`, { token, body: { status: 'x' } })).status).toBe(409);
    const replaced = await api(s, 'PUT', P, { token, body: doc });
    expect(replaced.status).toBe(200);
    expect(replaced.body.version).toBe(1);
    expect((await api(s, 'GET', P, { token })).body.version).toBe(1);
  });
});
