/**
 * An agent's credential (SESSION_TOKEN, `sm_ses_…`, read by the agent itself with
 * `printf %s "$SESSION_TOKEN"`) reaches its own session and its project's planner and
 * conversations — and nothing else: not another session of the same project, not another
 * project, not an org route, not /ws, not through path tricks sent raw on the wire.
 */
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { api, until } from '../helpers/server.js';
import { Client } from '../helpers/ws.js';
import { fillPath, routeKey, ROUTES, type RouteSpec, type WorldParams } from './route-table.js';
import { errorCode, makeWorld, populate, request, type World } from './world.js';

let world: World;
let other: WorldParams;
let agentId: string;
let cred: string;

/** Start a bash session and read its SESSION_TOKEN the way an agent would print it. */
async function credentialOf(w: World): Promise<{ id: string; cred: string }> {
  const r = await api(w.s, 'POST', '/api/sessions', { token: w.token, body: { orgId: w.w.orgId, projectName: w.w.projectName, agent: 'bash' } });
  const id = r.body.id as string;
  const c = await Client.connect(w.s.wsUrl, { token: w.token });
  await c.attach(id);
  c.send({ type: 'input', sessionId: id, data: 'printf "CRED<%s>\\n" "$SESSION_TOKEN"\r' });
  await c.waitForText(id, 'CRED<sm_ses_');
  await until(() => /CRED<(sm_ses_[A-Za-z0-9_-]+)>/.exec(c.text(id)), 'the credential line');
  const m = /CRED<(sm_ses_[A-Za-z0-9_-]+)>/.exec(c.text(id))!;
  c.close();
  return { id, cred: m[1]! };
}

beforeAll(async () => {
  world = await makeWorld({ env: { LOG_LEVEL: 'warn' } });
  other = await populate(world.s, world.token, 'acme', 'other');
  ({ id: agentId, cred } = await credentialOf(world));
});
afterAll(async () => {
  await world?.s.stop();
});

/** Where the credential may go: its session's routes, its project's planner and conversations. */
function ownScope(route: RouteSpec, params: WorldParams): boolean {
  if (route.pattern.startsWith('/api/sessions/:id')) return params.id === agentId;
  if (route.pattern.startsWith('/api/planner/') || route.pattern.startsWith('/api/conversations/')) return params.orgId === world.w.orgId && params.projectName === world.w.projectName;
  return false;
}

/** Raw HTTP, so the path reaches the server exactly as written (fetch would normalize `..`). */
function raw(method: string, p: string, token: string, body?: string): Promise<{ status: number; text: string }> {
  const u = new URL(world.s.url);
  return new Promise((resolve) => {
    const req = http.request({ host: u.hostname, port: u.port, method, path: p, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) }, timeout: 10_000 }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ status: -1, text: e.message }));
    req.end(body);
  });
}

describe('the agent credential', () => {
  it('is a per-session sm_ses_ credential, not the builder\'s JWT', () => {
    expect(cred).toMatch(/^sm_ses_[A-Za-z0-9_-]{40,}$/);
    expect(cred).not.toContain(world.token);
  });

  it('reaches its own session and project, and nothing else on any route (0 reach)', async () => {
    const mine: WorldParams = { ...world.w, id: agentId };
    const targets: Array<[string, WorldParams]> = [
      ['own', mine],
      ['sibling-session', { ...world.w }],
      ['other-project', { ...other }],
      ['other-org', { ...world.w, orgId: 'globex', id: agentId }],
    ];
    const reach: string[] = [];
    let tried = 0;
    let ownOk = 0;
    const routes = [...ROUTES.filter((r) => !r.destroys), ...ROUTES.filter((r) => r.destroys && !r.pattern.startsWith('/api/sessions/:id'))].filter((r) => r.auth !== 'public');
    for (const [label, params] of targets) {
      for (const route of routes) {
        const key = routeKey(route.method, route.pattern);
        const body = route.body ? JSON.stringify(route.body(params)) : undefined;
        const res = await request(world.s, route.method, fillPath(route.pattern, params), { token: cred, body });
        tried++;
        if (ownScope(route, params)) {
          if (res.status === 403 || res.status === 401) reach.push(`(own scope refused) ${label} ${key} → ${res.status}`);
          else ownOk++;
          continue;
        }
        if (res.status !== 403) reach.push(`${label} ${key} → ${res.status} ${errorCode(res.text) ?? res.text.slice(0, 80)}`);
      }
    }
    console.log(`agent-credential: ${tried} requests (${ownOk} in its own scope answered), ${reach.length} out-of-scope reaches`);
    expect(reach).toEqual([]);
    expect(ownOk).toBeGreaterThan(10);
  }, 120_000);

  it('path tricks sent raw (traversal, encoded separators, doubled slashes) do not leave its scope', async () => {
    const w = world.w;
    const sib = w.id;
    const paths: Array<[string, string, string?]> = [
      ['GET', `/api/sessions/${agentId}/../${sib}`],
      ['POST', `/api/sessions/${agentId}/../${sib}/input`, '{"data":"x"}'],
      ['POST', `/api/sessions/${agentId}/../../api/sessions/${sib}/input`, '{"data":"x"}'],
      ['GET', `/api/sessions/${agentId}/%2e%2e/${sib}`],
      ['GET', `/api/sessions/${agentId}/..%2F${sib}/logs`],
      ['GET', `/api/sessions/${agentId}%2F..%2F${sib}/logs`],
      ['GET', `/api/sessions/${agentId}/logs/../../${sib}/logs`],
      ['GET', `//api/sessions/${sib}/logs`],
      ['GET', `/api/sessions//${sib}/logs`],
      ['GET', `/api/sessions/${sib.toUpperCase()}/logs`],
      ['GET', `/api/sessions/${agentId}/`],
      ['GET', `/api/planner/${w.orgId}/${w.projectName}/../other`],
      ['PUT', `/api/planner/${w.orgId}/${w.projectName}/../other`, '{"cards":[]}'],
      ['PUT', `/api/planner/${w.orgId}/${w.projectName}%2F..%2Fother`, '{"cards":[]}'],
      ['PUT', `/api/planner/${w.orgId}/${w.projectName}/../../${w.orgId}/other`, '{"cards":[]}'],
      ['GET', `/api/planner/${w.orgId}/${w.projectName}/cards/../../other`],
      ['GET', `/api/planner/${w.orgId}/${w.projectName}x`],
      ['GET', `/api/planner/${w.orgId}/%${w.projectName}`],
      ['GET', `/api/conversations/${w.orgId}/${w.projectName}/../other`],
      ['POST', `/api/conversations/${w.orgId}/${w.projectName}/../../../dev-envs`, '{"orgId":"acme","projectName":"made-by-agent"}'],
      ['GET', `/api/planner/${w.orgId}/${w.projectName}/../../../dev-envs/${w.orgId}`],
      ['GET', `/api/planner/${w.orgId}/${w.projectName}/../../../jobs`],
      ['GET', `/api/conversations/${w.orgId}/${w.projectName}/../../../deploy/jobs/${w.orgId}/${w.projectName}`],
      ['DELETE', `/api/conversations/${w.orgId}/${w.projectName}/../../../dev-envs/${w.orgId}/other?force=true`],
      ['GET', `/api/planner/${w.orgId}/${w.projectName}?x=/../../../jobs`],
      ['GET', `/api/planner/${w.orgId}/${w.projectName}#/../../../jobs`],
      ['GET', `/api/planner/${w.orgId}/${w.projectName}/..;/..;/..;/jobs`],
      ['GET', `/api/planner/${w.orgId}/${w.projectName}\\..\\..\\..\\jobs`],
    ];
    const reach: string[] = [];
    for (const [m, p, body] of paths) {
      const r = await raw(m, p, cred, body);
      const text = r.text;
      // Anything 2xx must be about its own project or session, and never carry the sibling's data.
      if (r.status >= 200 && r.status < 300 && (text.includes(sib) || text.includes(other.conversationId) || /"items"/.test(text) && !p.includes(`/${w.projectName}`))) reach.push(`${m} ${p} → ${r.status} ${text.slice(0, 100)}`);
      if (r.status >= 200 && r.status < 300 && !(p.startsWith(`/api/sessions/${agentId}`) || p.startsWith(`/api/planner/${w.orgId}/${w.projectName}`) || p.startsWith(`/api/conversations/${w.orgId}/${w.projectName}`))) reach.push(`${m} ${p} → ${r.status}`);
      if (r.status >= 500 || r.status <= 0) reach.push(`${m} ${p} → ${r.status} ${text.slice(0, 100)}`);
    }
    expect(reach).toEqual([]);
    // Nothing was created or deleted by the attempts.
    expect((await api(world.s, 'GET', '/api/dev-envs/acme/made-by-agent', { token: world.token })).status).toBe(404);
    expect((await api(world.s, 'GET', `/api/dev-envs/acme/other`, { token: world.token })).status).toBe(200);
    expect((await api(world.s, 'GET', `/api/sessions/${sib}`, { token: world.token })).body.status).toBe('running');
  });

  it('opens neither /ws (query or auth frame) nor another session\'s /agent channel; a JWT does not open /agent', async () => {
    await expect(Client.connect(world.s.wsUrl, { token: cred })).rejects.toThrow(/401/);
    const c = await Client.connect(world.s.wsUrl);
    c.send({ type: 'auth', token: cred });
    c.send({ type: 'attach', sessionId: agentId });
    expect((await c.waitClose()).code).toBe(4001);
    const agentUrl = world.s.url.replace('http', 'ws') + '/agent';
    const refused = (q: string) =>
      new Promise<string>((resolve) => {
        const ws = new WebSocket(agentUrl + q);
        ws.once('unexpected-response', (_req, res) => resolve(`http ${res.statusCode}`));
        ws.once('open', () => {
          ws.once('close', (code) => resolve(`close ${code}`));
          ws.send(JSON.stringify({ type: 'auth', token: world.token }));
        });
        ws.once('error', () => {});
      });
    expect(await refused(`?token=${encodeURIComponent(world.token)}`)).toBe('http 401');
    expect(await refused('')).toBe('close 4001');
  });

  it('dies with its session: after the kill it reaches nothing', async () => {
    expect((await request(world.s, 'GET', `/api/sessions/${agentId}`, { token: cred })).status).toBe(200);
    await api(world.s, 'DELETE', `/api/sessions/${agentId}`, { token: world.token });
    for (const p of [`/api/sessions/${agentId}`, `/api/planner/${world.w.orgId}/${world.w.projectName}`, `/api/conversations/${world.w.orgId}/${world.w.projectName}`]) {
      expect([p, (await request(world.s, 'GET', p, { token: cred })).status]).toEqual([p, 401]);
    }
  });
});
