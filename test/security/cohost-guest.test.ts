/**
 * A cohost guest (view-only share link) on every mutating route and every mutating /ws
 * message: 0 writes. The link goes where guests put it: `?cohost=` on HTTP routes and
 * /ws, and (wrongly) as a bearer token.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '../helpers/server.js';
import { Client } from '../helpers/ws.js';
import { fillPath, paramsOf, routeKey, ROUTES } from './route-table.js';
import { diff, fingerprint } from './snapshot.js';
import { errorCode, makeWorld, populate, request, type World } from './world.js';
import type { WorldParams } from './route-table.js';

let world: World;
let other: WorldParams;
beforeAll(async () => {
  world = await makeWorld({ env: { LOG_LEVEL: 'warn' } });
  other = await populate(world.s, world.token, 'acme', 'other');
});
afterAll(async () => {
  await world?.s.stop();
});

const withCohost = (p: string, token: string) => `${p}${p.includes('?') ? '&' : '?'}cohost=${encodeURIComponent(token)}`;
const skipLogs = (rel: string) => rel.endsWith('console.log');

describe('a cohost guest', () => {
  it('writes nothing through any route: ?cohost= and as a bearer token, own project and another', async () => {
    const before = { data: fingerprint(world.s.dataDir, skipLogs), ws: fingerprint(world.s.workspaces) };
    const bypasses: string[] = [];
    let tried = 0;
    const w = world.w;
    const ordered = [...ROUTES.filter((r) => !r.destroys), ...ROUTES.filter((r) => r.destroys)].filter((r) => r.auth !== 'public');
    for (const route of ordered) {
      const key = routeKey(route.method, route.pattern);
      const body = route.body ? JSON.stringify(route.body(w)) : undefined;
      // Own project's link, the other project's link (on this project's paths), the link as a bearer.
      const attempts: Array<[string, string, string | undefined]> = [
        ['own-link', withCohost(fillPath(route.pattern, w), w.token), undefined],
        ['other-project-link', withCohost(fillPath(route.pattern, w), other.token), undefined],
        ['link-as-bearer', fillPath(route.pattern, w), w.token],
      ];
      for (const [label, p, bearer] of attempts) {
        const res = await request(world.s, route.method, p, { token: bearer, body });
        tried++;
        const ok = res.status >= 200 && res.status < 300;
        if (route.write && ok) bypasses.push(`${label} ${key} → ${res.status}`);
        if (route.auth === 'user' && res.status !== 401) bypasses.push(`${label} ${key} (user route) → ${res.status} ${errorCode(res.text) ?? ''}`);
        if (label !== 'own-link' && ok && paramsOf(route.pattern).length > 0) bypasses.push(`${label} ${key} → ${res.status} (read outside the link's project)`);
        if (label !== 'own-link' && (res.text.includes(w.id) || res.text.includes(w.conversationId))) bypasses.push(`${label} ${key} leaks the project's ids`);
        if (res.status >= 500 || res.status <= 0) bypasses.push(`${label} ${key} → ${res.status}`);
      }
    }
    console.log(`cohost: ${tried} guest requests over ${ordered.length} routes, ${bypasses.length} bypasses`);
    expect(bypasses).toEqual([]);
    expect(diff(before.data, fingerprint(world.s.dataDir, skipLogs))).toEqual([]);
    expect(diff(before.ws, fingerprint(world.s.workspaces))).toEqual([]);
    expect((await api(world.s, 'GET', `/api/sessions/${w.id}`, { token: world.token })).body.status).toBe('running');
  }, 120_000);

  it('may watch its project but no /ws message of it writes: input, resize, signal, prompt, cancel, permission are read_only', async () => {
    const w = world.w;
    const logsBefore = (await api(world.s, 'GET', `/api/sessions/${w.id}/logs`, { token: world.token })).text;
    const g = await Client.connect(world.s.wsUrl, { cohost: w.token });
    const att = await g.attach(w.id);
    expect(att.type).toBe('attached');
    g.send({ type: 'subscribe', topic: `project:${w.orgId}/${w.projectName}`, ref: 'own-topic' });
    const writes: Array<Record<string, unknown>> = [
      { type: 'input', sessionId: w.id, data: 'GUEST-WAS-HERE\r' },
      { type: 'resize', sessionId: w.id, cols: 3, rows: 3 },
      { type: 'signal', sessionId: w.id, signal: 'SIGKILL' },
      { type: 'signal', sessionId: w.id, signal: 'SIGINT' },
      { type: 'prompt', sessionId: w.id, text: 'do something' },
      { type: 'cancel', sessionId: w.id },
      { type: 'permission', sessionId: w.id, requestId: 'r', optionId: 'allow' },
    ];
    const refusals: Array<Record<string, unknown>> = [
      { type: 'subscribe', topic: `org:${w.orgId}` },
      { type: 'subscribe', topic: `project:${other.orgId}/${other.projectName}` },
      { type: 'subscribe', topic: `project:evil/${w.projectName}` },
      { type: 'attach', sessionId: other.id },
      { type: 'input', sessionId: other.id, data: 'x' },
      { type: 'auth', token: world.token },
    ];
    const all = [...writes, ...refusals];
    all.forEach((f, i) => g.send({ ...f, ref: i }));
    let refused = 0;
    for (let i = 0; i < all.length; i++) {
      const f = await g.next((x) => x.ref === i, `answer to ${String(all[i]!.type)}`);
      expect([i, f.type]).toEqual([i, 'error']);
      if (i < writes.length) expect([all[i]!.type, f.code]).toEqual([all[i]!.type, 'read_only']);
      refused++;
    }
    // The link cannot be upgraded to a builder by a later auth frame: still read-only.
    g.send({ type: 'input', sessionId: w.id, data: 'AFTER-AUTH\r', ref: 'again' });
    expect((await g.next((x) => x.ref === 'again', 'refusal')).code).toBe('read_only');
    expect(g.closed).toBeUndefined();
    expect(g.frames.some((f) => f.ref === 'own-topic' && f.type === 'error')).toBe(false);
    g.close();
    const rec = (await api(world.s, 'GET', `/api/sessions/${w.id}`, { token: world.token })).body;
    expect([rec.status, rec.cols, rec.rows]).toEqual(['running', 80, 24]);
    const logsAfter = (await api(world.s, 'GET', `/api/sessions/${w.id}/logs`, { token: world.token })).text;
    expect(logsAfter).toBe(logsBefore);
    console.log(`cohost: ${refused + 1} guest /ws messages refused, 0 writes`);
  });
});
