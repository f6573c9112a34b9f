import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startServer, until, type TestServer } from '../helpers/server.js';
import { Client } from '../helpers/ws.js';

let s: TestServer;
let host: string;
let sessionId: string;
let otherProjectSession: string;

beforeAll(async () => {
  s = await startServer();
  host = await s.token({ sub: 'alice', orgId: 'acme' });
  const a = await api(s, 'POST', '/api/sessions', { token: host, body: { orgId: 'acme', projectName: 'demo', agent: 'bash' } });
  expect(a.status).toBe(201);
  sessionId = a.body.id;
  const b = await api(s, 'POST', '/api/sessions', { token: host, body: { orgId: 'acme', projectName: 'secret', agent: 'bash' } });
  otherProjectSession = b.body.id;
});
afterAll(async () => {
  await s?.stop();
});

async function share(body: Record<string, unknown> = {}, token = host, project = 'demo') {
  const r = await api(s, 'POST', `/api/cohost/acme/${project}`, { token, body });
  expect(r.status).toBe(201);
  return r.body as { id: string; token: string; url: string; wsUrl: string; expiresAt: string; createdAt: string };
}

/** Every file under a folder, as bytes. */
function allFiles(dir: string): Array<{ file: string; data: Buffer }> {
  const out: Array<{ file: string; data: Buffer }> = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = path.join(d, name);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) out.push({ file: p, data: readFileSync(p) });
    }
  };
  walk(dir);
  return out;
}

describe('cohost share links', () => {
  it('create: a 32-byte token shown once, default expiry 24 h; resolve (public) shows project, live sessions, host, expiry', async () => {
    const t0 = Date.now();
    const link = await share();
    expect(link.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(link.token, 'base64url').length).toBe(32);
    expect(link.id).toMatch(/^[0-9a-f]{20}$/);
    expect(link.url).toContain(encodeURIComponent(link.token));
    expect(link.wsUrl).toBe(`${s.wsUrl}?cohost=${link.token}`);
    const expiry = Date.parse(link.expiresAt) - t0;
    expect(expiry).toBeGreaterThan(24 * 3600_000 - 60_000);
    expect(expiry).toBeLessThanOrEqual(24 * 3600_000 + 60_000);

    const info = await api(s, 'GET', `/api/cohost/${link.token}`);
    expect(info.status).toBe(200);
    expect(info.body).toMatchObject({ id: link.id, orgId: 'acme', projectName: 'demo', host: 'alice', expiresAt: link.expiresAt, topic: 'project:acme/demo', readOnly: true });
    expect(info.body.sessions.map((x: any) => x.id)).toEqual([sessionId]);
    expect(info.body.sessions[0]).toMatchObject({ status: 'running', agent: 'bash' });
    expect(JSON.stringify(info.body)).not.toContain('tokenHash');
  });

  it('a guest watches live output and its project topic; input, resize, signal and other projects are refused; the connection stays open', async () => {
    const link = await share();
    const guest = await Client.connect(s.wsUrl, { cohost: link.token });
    const attached = await guest.attach(sessionId);
    expect(attached).toMatchObject({ type: 'attached', sessionId, status: 'running' });

    const hostWs = await Client.connect(s.wsUrl, { token: host });
    await hostWs.attach(sessionId);
    hostWs.send({ type: 'input', sessionId, data: 'echo "guest-sees-$((6*7))"\r' });
    await guest.waitForText(sessionId, 'guest-sees-42');
    expect(guest.errors).toEqual([]);

    for (const [i, frame] of [
      { type: 'input', sessionId, data: 'echo pwned\r' },
      { type: 'resize', sessionId, cols: 10, rows: 5 },
      { type: 'signal', sessionId, signal: 'SIGKILL' },
    ].entries()) {
      guest.send({ ...frame, ref: `ro-${i}` });
      const err = await guest.next((f) => f.type === 'error' && f.ref === `ro-${i}`, `read_only error ${i}`);
      expect(err.code).toBe('read_only');
    }
    guest.send({ type: 'attach', sessionId: otherProjectSession, ref: 'other' });
    expect((await guest.next((f) => f.type === 'error' && f.ref === 'other', 'other project refused')).code).toBe('session_not_found');
    guest.send({ type: 'subscribe', topic: 'project:acme/secret', ref: 'sub-other' });
    expect((await guest.next((f) => f.type === 'error' && f.ref === 'sub-other', 'other topic refused')).code).toBe('forbidden');
    guest.send({ type: 'subscribe', topic: 'org:acme', ref: 'sub-org' });
    expect((await guest.next((f) => f.type === 'error' && f.ref === 'sub-org', 'org topic refused')).code).toBe('forbidden');
    guest.send({ type: 'ping', ref: 'alive' });
    await guest.next((f) => f.type === 'pong' && f.ref === 'alive', 'pong after refusals');
    expect(guest.closed).toBeUndefined();
    // The refused input never reached the agent.
    hostWs.send({ type: 'input', sessionId, data: 'echo after-refusals\r' });
    await hostWs.waitForText(sessionId, 'after-refusals\r\n');
    expect(hostWs.text(sessionId)).not.toContain('pwned');
    // The session is still alive and the same size.
    const rec = await api(s, 'GET', `/api/sessions/${sessionId}`, { token: host });
    expect(rec.body.status).toBe('running');
    expect(rec.body.cols).not.toBe(10);
    // A guest cannot use its link as a builder's token on the HTTP API.
    expect((await api(s, 'POST', `/api/sessions/${sessionId}/input?cohost=${link.token}`, { body: { data: 'x' } })).status).toBe(401);
    guest.close();
    hostWs.close();
  });

  it("the host's list shows id, created, expiry and live guests — never a token or its hash", async () => {
    const link = await share();
    const g1 = await Client.connect(s.wsUrl, { cohost: link.token });
    const g2 = await Client.connect(s.wsUrl, { cohost: link.token });
    const list = await api(s, 'GET', '/api/cohost/host/alice', { token: host });
    expect(list.status).toBe(200);
    const mine = list.body.items.find((x: any) => x.id === link.id);
    expect(mine).toMatchObject({ id: link.id, orgId: 'acme', projectName: 'demo', createdAt: link.createdAt, expiresAt: link.expiresAt, status: 'active', guests: 2 });
    expect(list.text).not.toContain(link.token);
    expect(list.text).not.toContain(createHash('sha256').update(link.token).digest('hex'));
    expect(list.text).not.toContain('tokenHash');
    g1.close();
    await until(async () => (await api(s, 'GET', '/api/cohost/host/alice', { token: host })).body.items.find((x: any) => x.id === link.id).guests === 1, 'guest count to drop');
    g2.close();
    const bob = await s.token({ sub: 'bob', orgId: 'acme' });
    expect((await api(s, 'GET', '/api/cohost/host/alice', { token: bob })).status).toBe(403);
    expect((await api(s, 'GET', '/api/cohost/host/alice', { token: s.adminToken })).body.items.some((x: any) => x.id === link.id)).toBe(true);
  });

  it('revoke (by id or by raw token) cuts connected guests at once with 4003; the link is then 404 and refused on /ws', async () => {
    const byId = await share();
    const byToken = await share();
    const g1 = await Client.connect(s.wsUrl, { cohost: byId.token });
    await g1.attach(sessionId);
    const g2 = await Client.connect(s.wsUrl, { cohost: byToken.token });
    const bob = await s.token({ sub: 'bob', orgId: 'acme' });
    const mallory = await s.token({ sub: 'mallory', orgId: 'evil' });
    expect((await api(s, 'DELETE', `/api/cohost/${byId.id}`, { token: bob })).status).toBe(403);
    expect((await api(s, 'DELETE', `/api/cohost/${byId.id}`, { token: mallory })).status).toBe(404);
    expect((await api(s, 'DELETE', `/api/cohost/${byId.token}`)).status).toBe(401);
    expect(g1.closed).toBeUndefined();

    const r1 = await api(s, 'DELETE', `/api/cohost/${byId.id}`, { token: host });
    expect(r1.status).toBe(200);
    expect(r1.body).toMatchObject({ id: byId.id, status: 'revoked', guestsClosed: 1 });
    expect((await g1.waitClose()).code).toBe(4003);
    expect(g2.closed).toBeUndefined();
    const r2 = await api(s, 'DELETE', `/api/cohost/${byToken.token}`, { token: s.adminToken });
    expect(r2.status).toBe(200);
    expect((await g2.waitClose()).code).toBe(4003);

    for (const link of [byId, byToken]) {
      const info = await api(s, 'GET', `/api/cohost/${link.token}`);
      expect(info.status).toBe(404);
      expect(info.body.error.code).toBe('cohost_not_found');
      await expect(Client.connect(s.wsUrl, { cohost: link.token })).rejects.toThrow(/401/);
    }
    expect((await api(s, 'DELETE', `/api/cohost/${byId.id}`, { token: host })).status).toBe(404);
    const list = await api(s, 'GET', '/api/cohost/host/alice', { token: host });
    expect(list.body.items.some((x: any) => x.id === byId.id)).toBe(false);
    const all = await api(s, 'GET', '/api/cohost/host/alice?all=true', { token: host });
    expect(all.body.items.find((x: any) => x.id === byId.id)).toMatchObject({ status: 'revoked', guests: 0 });
  });

  it('an expired link is 404 exactly like an unknown one, and its connected guests are cut', async () => {
    const link = await share({ expiresInMs: 1500 });
    const guest = await Client.connect(s.wsUrl, { cohost: link.token });
    await guest.attach(sessionId);
    expect((await guest.waitClose(15_000)).code).toBe(4003);
    const expired = await api(s, 'GET', `/api/cohost/${link.token}`);
    expect(expired.status).toBe(404);
    const unknown = await api(s, 'GET', `/api/cohost/${Buffer.alloc(32, 7).toString('base64url')}`);
    const garbage = await api(s, 'GET', '/api/cohost/not-a-token');
    expect(unknown.status).toBe(404);
    expect(expired.text).toBe(unknown.text);
    expect(garbage.text).toBe(unknown.text);
    await expect(Client.connect(s.wsUrl, { cohost: link.token })).rejects.toThrow(/401/);
  });

  it('stores the token only as a SHA-256 hash: the raw token is nowhere under DATA_DIR', async () => {
    const link = await share();
    const raw = Buffer.from(link.token, 'base64url');
    const needles = [link.token, raw.toString('hex'), raw.toString('base64')];
    const files = allFiles(s.dataDir);
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) {
      for (const n of needles) expect(f.data.includes(n), `${n} in ${f.file}`).toBe(false);
      expect(f.data.includes(raw), `raw bytes in ${f.file}`).toBe(false);
    }
    const hash = createHash('sha256').update(link.token).digest('hex');
    expect(files.some((f) => f.data.includes(hash))).toBe(true);
    // Nor in the server's log.
    expect(s.output.join('\n')).not.toContain(link.token);
  });

  it('validates: 400 for bad names and expiry beyond the maximum, 403 for another org, 401 without a token', async () => {
    expect((await api(s, 'POST', '/api/cohost/acme/-bad', { token: host })).status).toBe(400);
    const tooLong = await api(s, 'POST', '/api/cohost/acme/demo', { token: host, body: { expiresInMs: 8 * 24 * 3600_000 } });
    expect(tooLong.status).toBe(400);
    expect(tooLong.body.error.code).toBe('validation_failed');
    expect((await api(s, 'POST', '/api/cohost/acme/demo', { token: host, body: { expiresInMs: 'soon' } })).status).toBe(400);
    const mallory = await s.token({ sub: 'mallory', orgId: 'evil' });
    expect((await api(s, 'POST', '/api/cohost/acme/demo', { token: mallory })).status).toBe(403);
    expect((await api(s, 'POST', '/api/cohost/acme/demo')).status).toBe(401);
    const week = await api(s, 'POST', '/api/cohost/acme/demo', { token: host, body: { expiresInMs: 7 * 24 * 3600_000 } });
    expect(week.status).toBe(201);
  });
});

describe('cohost links across a restart', () => {
  it('a link made before a restart still resolves after it, and a revoked one stays revoked', async () => {
    const a = await startServer();
    const t = await a.token({ sub: 'alice', orgId: 'acme' });
    const keep = (await api(a, 'POST', '/api/cohost/acme/demo', { token: t })).body;
    const gone = (await api(a, 'POST', '/api/cohost/acme/demo', { token: t })).body;
    expect((await api(a, 'DELETE', `/api/cohost/${gone.id}`, { token: t })).status).toBe(200);
    await a.stop();
    const b = await startServer({ dir: a.dir });
    try {
      const info = await api(b, 'GET', `/api/cohost/${keep.token}`);
      expect(info.status).toBe(200);
      expect(info.body).toMatchObject({ id: keep.id, expiresAt: keep.expiresAt });
      expect((await api(b, 'GET', `/api/cohost/${gone.token}`)).status).toBe(404);
      const guest = await Client.connect(b.wsUrl, { cohost: keep.token });
      guest.send({ type: 'ping', ref: 1 });
      await guest.next((f) => f.type === 'pong', 'pong');
      guest.close();
    } finally {
      await b.stop();
    }
  });
});
