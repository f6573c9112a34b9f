import { afterAll, beforeAll, expect, it } from 'vitest';
import { SignJWT, UnsecuredJWT, generateKeyPair } from 'jose';
import { api, sign, startServer, TEST_SECRET, type TestServer } from './helpers/server.js';
import { Client } from './helpers/ws.js';

let s: TestServer;
beforeAll(async () => {
  s = await startServer();
});
afterAll(async () => {
  await s?.stop();
});

const enc = new TextEncoder();

async function badTokens(): Promise<Record<string, string>> {
  const none = new UnsecuredJWT({ orgId: 'acme', roles: ['admin'] }).setSubject('eve').setIssuedAt().setExpirationTime('1h').encode();
  const expired = await new SignJWT({ orgId: 'acme' }).setProtectedHeader({ alg: 'HS256' }).setSubject('eve').setIssuedAt(Math.floor(Date.now() / 1000) - 7200).setExpirationTime(Math.floor(Date.now() / 1000) - 3600).sign(enc.encode(TEST_SECRET));
  const wrongSig = await sign({ sub: 'eve', orgId: 'acme', roles: ['admin'] }, 'another-secret-0123456789abcdef0123456789');
  const notYet = await new SignJWT({ orgId: 'acme' }).setProtectedHeader({ alg: 'HS256' }).setSubject('eve').setNotBefore(Math.floor(Date.now() / 1000) + 3600).setExpirationTime('2h').sign(enc.encode(TEST_SECRET));
  const { privateKey } = await generateKeyPair('RS256');
  const rs = await new SignJWT({ orgId: 'acme' }).setProtectedHeader({ alg: 'RS256' }).setSubject('eve').setExpirationTime('1h').sign(privateKey);
  const noSub = await new SignJWT({ orgId: 'acme' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(enc.encode(TEST_SECRET));
  const good = await sign({ sub: 'eve', orgId: 'acme' });
  const [h, p] = good.split('.');
  const tampered = `${h}.${Buffer.from(JSON.stringify({ sub: 'eve', orgId: 'acme', roles: ['admin'], exp: 9999999999 })).toString('base64url')}.${good.split('.')[2]}`;
  void p;
  return { garbage: 'not-a-jwt', none, expired, wrongSig, notYet, rs, noSub, tampered };
}

it('refuses missing and bad tokens with 401 and a code', async () => {
  const noToken = await api(s, 'GET', '/api/sessions');
  expect(noToken.status).toBe(401);
  expect(noToken.body.error.code).toBe('unauthorized');
  for (const [name, t] of Object.entries(await badTokens())) {
    const r = await api(s, 'GET', '/api/sessions', { token: t });
    expect([name, r.status, r.body.error?.code]).toEqual([name, 401, 'unauthorized']);
    const w = await api(s, 'POST', '/api/sessions', { token: t, body: { orgId: 'acme', projectName: 'x' } });
    expect([name, w.status]).toEqual([name, 401]);
  }
});

it('keeps orgs apart: wrong org → 403, admin may cross', async () => {
  const bob = await s.token({ sub: 'bob', orgId: 'acme' });
  const other = await api(s, 'POST', '/api/sessions', { token: bob, body: { orgId: 'globex', projectName: 'x', agent: 'script', command: 'true' } });
  expect(other.status).toBe(403);
  expect(other.body.error.code).toBe('forbidden');
  const noOrg = await sign({ sub: 'nobody' });
  expect((await api(s, 'POST', '/api/sessions', { token: noOrg, body: { orgId: 'acme', projectName: 'x', agent: 'script', command: 'true' } })).status).toBe(403);
  const admin = await api(s, 'POST', '/api/sessions', { token: s.adminToken, body: { orgId: 'globex', projectName: 'x', agent: 'script', command: 'true' } });
  expect(admin.status).toBe(201);
  // Validation runs before authorization: a malformed name is 400 even for the wrong org.
  const bad = await api(s, 'POST', '/api/sessions', { token: bob, body: { orgId: '../globex', projectName: 'x' } });
  expect(bad.status).toBe(400);
  // Only admins start sessions for someone else.
  expect((await api(s, 'POST', '/api/sessions', { token: bob, body: { orgId: 'acme', projectName: 'x', userId: 'carol' } })).status).toBe(403);
});

it('refuses WebSockets without a valid token, and accepts the auth message', async () => {
  for (const t of Object.values(await badTokens())) {
    await expect(Client.connect(s.wsUrl, { token: t })).rejects.toThrow(/401/);
  }
  // Connected without a token: anything but auth closes with 4001.
  const anon = await Client.connect(s.wsUrl);
  anon.send({ type: 'subscribe', topic: 'org:acme' });
  expect((await anon.waitClose()).code).toBe(4001);
  // A bad auth message closes too.
  const liar = await Client.connect(s.wsUrl);
  liar.send({ type: 'auth', token: 'garbage' });
  expect((await liar.waitClose()).code).toBe(4001);
  // A good one works, and frames sent while it is verified are handled after it.
  const ok = await Client.connect(s.wsUrl);
  ok.send({ type: 'auth', token: await s.token() });
  ok.send({ type: 'ping', ref: 7 });
  expect((await ok.next((f) => f.type === 'pong')).ref).toBe(7);
  // Topics of another org are refused, the connection stays usable.
  ok.send({ type: 'subscribe', topic: 'org:globex', ref: 'sub1' });
  expect(await ok.next((f) => f.type === 'error')).toMatchObject({ code: 'forbidden', ref: 'sub1' });
  ok.send({ type: 'ping' });
  await ok.nextNew((f) => f.type === 'pong');
  ok.close();
});

it('closes a connection that never authenticates within 5 s', async () => {
  const silent = await Client.connect(s.wsUrl);
  const t0 = Date.now();
  const closed = await silent.waitClose(10_000);
  expect(closed.code).toBe(4001);
  expect(Date.now() - t0).toBeGreaterThan(3000);
});
