import { afterAll, beforeAll, expect, it } from 'vitest';
import http from 'node:http';
import { api, startServer, type TestServer } from './helpers/server.js';

let s: TestServer;
let token: string;
let sid: string;
beforeAll(async () => {
  s = await startServer();
  token = await s.token();
  sid = (await api(s, 'POST', '/api/sessions', { token, body: { orgId: 'acme', projectName: 'bad', agent: 'bash' } })).body.id;
});
afterAll(async () => {
  await s?.stop();
});

const long = 'a'.repeat(200);
const BAD_NAMES = ['..', '.', 'a/b', '../etc', long, '', ' lead', 'semi;colon', 'nul\u0000', 'ünïcode', '-dash-first', 'x'.repeat(65)];

it('bad names on session create → 400 invalid_name, never 500', async () => {
  for (const name of BAD_NAMES) {
    for (const field of ['orgId', 'projectName']) {
      const body = { orgId: 'acme', projectName: 'ok', [field]: name };
      const r = await api(s, 'POST', '/api/sessions', { token, body });
      expect([field, name, r.status, r.body.error?.code]).toEqual([field, name, 400, 'invalid_name']);
    }
  }
});

it('invalid JSON, wrong types and wrong content types are 400/415 with a code', async () => {
  const cases: Array<[string, string, unknown, number, string, Record<string, string>?]> = [
    ['POST', '/api/sessions', '{"orgId":', 400, 'invalid_json'],
    ['POST', '/api/sessions', '[1,2]', 400, 'validation_failed'],
    ['POST', '/api/sessions', '"str"', 400, 'validation_failed'],
    ['POST', '/api/sessions', { orgId: 'acme', projectName: 'p', agent: 5 }, 400, 'validation_failed'],
    ['POST', '/api/sessions', { orgId: 'acme', projectName: 'p', agent: 'nope' }, 400, 'unknown_agent'],
    ['POST', '/api/sessions', { orgId: 'acme', projectName: 'p', agent: 'script' }, 400, 'validation_failed'],
    ['POST', '/api/sessions', { orgId: 'acme', projectName: 'p', agent: 'script', command: [] }, 400, 'validation_failed'],
    ['POST', '/api/sessions', { orgId: 'acme', projectName: 'p', agent: 'script', command: [1] }, 400, 'validation_failed'],
    ['POST', '/api/sessions', { orgId: 'acme', projectName: 'p', priority: 'high' }, 400, 'validation_failed'],
    ['POST', '/api/sessions', { orgId: 'acme', projectName: 'p', cols: -1 }, 400, 'validation_failed'],
    ['POST', '/api/sessions', { orgId: 'acme', projectName: 'p', rows: 1e9 }, 400, 'validation_failed'],
    ['POST', '/api/sessions', { orgId: 'acme', projectName: 'p', metadata: 'x' }, 400, 'validation_failed'],
    ['POST', '/api/sessions', { orgId: 'acme', projectName: 'p', metadata: { deep: deep(200) } }, 400, 'validation_failed'],
    ['POST', '/api/sessions', { orgId: 'acme', projectName: 'p', metadata: { deep: deep(30) } }, 201, ''],
    ['POST', '/api/sessions', 'orgId=acme', 415, 'unsupported_media_type', { 'content-type': 'application/x-www-form-urlencoded' }],
    ['POST', '/api/sessions', '{"orgId":"acme"}', 415, 'unsupported_media_type', { 'content-type': 'text/plain' }],
    ['POST', `/api/sessions/${'SID'}/input`, { data: 42 }, 400, 'validation_failed'],
    ['POST', `/api/sessions/${'SID'}/input`, { data: 'x', enter: 'yes' }, 400, 'validation_failed'],
    ['POST', `/api/sessions/${'SID'}/input`, '{', 400, 'invalid_json'],
    ['POST', `/api/sessions/${'SID'}/resize`, { cols: 'wide', rows: 10 }, 400, 'validation_failed'],
    ['POST', `/api/sessions/${'SID'}/resize`, { cols: 0, rows: 10 }, 400, 'validation_failed'],
    ['POST', `/api/sessions/${'SID'}/resize`, {}, 400, 'validation_failed'],
    ['POST', `/api/sessions/${'SID'}/signal`, { signal: 'SIGSEGV' }, 400, 'invalid_signal'],
    ['POST', `/api/sessions/${'SID'}/signal`, { signal: 9 }, 400, 'invalid_signal'],
    ['GET', `/api/sessions/${'SID'}/logs?lines=abc`, undefined, 400, 'validation_failed'],
    ['GET', `/api/sessions/${'SID'}/logs?lines=0`, undefined, 400, 'validation_failed'],
    ['GET', '/api/sessions?status=bogus', undefined, 400, 'validation_failed'],
    ['GET', '/api/sessions?orgId=../x', undefined, 400, 'invalid_name'],
    ['GET', '/api/jobs?limit=-1', undefined, 400, 'validation_failed'],
    ['GET', '/api/jobs?limit=1e3', undefined, 400, 'validation_failed'],
    ['GET', '/api/sessions/not-a-uuid', undefined, 404, 'session_not_found'],
    ['GET', '/api/sessions/..%2F..%2Fetc', undefined, 404, 'session_not_found'],
    ['GET', '/api/sessions/%E0%A4%A', undefined, 400, 'bad_request'],
    ['DELETE', '/api/sessions/00000000-0000-0000-0000-000000000000', undefined, 404, 'session_not_found'],
    ['GET', '/api/nothing-here', undefined, 404, 'not_found'],
    ['PATCH', '/api/sessions', undefined, 405, 'method_not_allowed'],
    ['PUT', '/api/resources/limits', { maxQueue: -5 }, 400, 'validation_failed'],
    ['PUT', '/api/resources/limits', { idleTimeoutMs: 'soon' }, 400, 'validation_failed'],
  ];
  for (const [method, rawPath, body, status, code, headers] of cases) {
    const p = rawPath.replace('SID', sid);
    const t = p.startsWith('/api/resources') ? s.adminToken : token;
    const r = await api(s, method, p, { token: t, body, ...(headers ? { headers } : {}) });
    expect([method, p, r.status]).toEqual([method, p, status]);
    if (code) expect([p, r.body.error?.code]).toEqual([p, code]);
    expect(typeof r.body === 'object' && r.body !== null).toBe(true);
  }
});

function deep(n: number): unknown {
  let v: unknown = 'leaf';
  for (let i = 0; i < n; i++) v = { v };
  return v;
}

it('bodies over MAX_BODY_BYTES are 413, declared or chunked', async () => {
  const big = JSON.stringify({ orgId: 'acme', projectName: 'p', metadata: { pad: 'x'.repeat(1_100_000) } });
  const declared = await api(s, 'POST', '/api/sessions', { token, body: big });
  expect(declared.status).toBe(413);
  expect(declared.body.error.code).toBe('body_too_large');
  const chunked = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = http.request(`${s.url}/api/sessions`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'transfer-encoding': 'chunked' } }, (res) => {
      let b = '';
      res.on('data', (d) => (b += d));
      res.on('end', () => resolve({ status: res.statusCode!, body: b }));
    });
    req.on('error', reject);
    for (let i = 0; i < 20; i++) req.write('x'.repeat(64 * 1024));
    req.end();
  });
  expect(chunked.status).toBe(413);
  expect(JSON.parse(chunked.body).error.code).toBe('body_too_large');
  // The server still serves.
  expect((await api(s, 'GET', '/healthz')).status).toBe(200);
});

it('no request above produced a 500 or an internal error log line', () => {
  expect(s.output.filter((l) => l.includes('"level":"error"'))).toEqual([]);
});
