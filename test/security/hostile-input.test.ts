/**
 * Every route (test/security/route-table.ts) against hostile input: malformed JSON, wrong
 * types, huge strings, deep nesting, unicode and control characters, prototype keys, path
 * tricks in every path parameter, junk queries and headers. The server must answer every
 * request (bounded: REQUEST_TIMEOUT_MS) and never with a 500 / internal_error.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '../helpers/server.js';
import { fillPath, paramsOf, routeKey, ROUTES, type RouteSpec } from './route-table.js';
import { errorCode, inPool, makeWorld, request, type World } from './world.js';

/** Path segments sent raw (already percent-encoded where needed) in place of each parameter. */
export const HOSTILE_SEGMENTS = [
  '..',
  '.',
  '%2e%2e',
  '%2E%2E%2F%2E%2E%2Fetc%2Fpasswd',
  '..%2F..%2F..%2Fetc%2Fpasswd',
  '%2F',
  '%5C..%5C..%5Cwindows',
  '%00',
  'a%00b',
  '%0d%0aX-Injected:%201',
  '%E2%80%AE%E2%80%8B',
  '%F0%9F%92%A3',
  '%ff%fe',
  '%',
  '%E0%A4%A',
  'x'.repeat(3000),
  '-rf',
  '~root',
  '%20',
  'CON',
  '%24(id)',
  '%60id%60',
  '%3Bls',
  '*',
  '.git',
  '.env',
  '__proto__',
  'constructor',
  '00000000-0000-0000-0000-000000000000',
  'AAAAAAAA-AAAA-AAAA-AAAA-AAAAAAAAAAAA',
];

/** Every body field name any route reads. */
const FIELDS = [
  'orgId', 'projectName', 'userId', 'agent', 'command', 'metadata', 'priority', 'cols', 'rows', 'conversationId', 'reason', 'details',
  'text', 'attachments', 'summary', 'artifacts', 'data', 'enter', 'signal', 'kind', 'maxConcurrentSessions', 'maxQueue', 'idleTimeoutMs',
  'expiresInMs', 'title', 'messages', 'role', 'content', 'toolCalls', 'toolResults', 'name', 'id', 'at', 'description', 'template',
  'status', 'criteria', 'logs', 'message', 'author', 'done', 'cards', 'version', 'updatedAt', 'url', 'token', 'branch', 'remote', 'paths',
  'domains', 'templateId', 'overwrite', 'force', 'since', 'mode', 'topic', 'sessionId',
];

/** Values of the wrong type or shape, each put in every field at once. */
const WRONG_VALUES: Array<[string, unknown]> = [
  ['null', null],
  ['true', true],
  ['zero', 0],
  ['negative', -1],
  ['fraction', 1.5],
  ['huge-number', 1e21],
  ['empty-string', ''],
  ['spaces', '   '],
  ['array', [1, 'two', { three: 3 }]],
  ['empty-object', {}],
  ['operator-object', { $gt: '', $ne: null }],
  ['traversal', '../../../../etc/passwd'],
  ['control-chars', '\u0000\u0001\u001b[31mred\u007f\r\n\t'],
  ['bidi-and-zero-width', '\u202e\u200b\u2066evil\u2069\ufeff'],
  ['lone-surrogate', '\ud800x\udfff'],
  ['emoji-and-cjk', '💣🧨 漢字 ﷽'],
  ['shell', '$(touch /tmp/pwned); `id`; rm -rf /'],
  ['long-string', 'x'.repeat(17_000)],
];

/** Whole bodies that are not what any route expects. */
const RAW_BODIES: Array<[string, string | Buffer, Record<string, string>?]> = [
  ['truncated-json', '{"orgId":'],
  ['trailing-garbage', '{}garbage'],
  ['json-array', '[]'],
  ['json-null', 'null'],
  ['json-number', '1e309'],
  ['json-string', '"just a string"'],
  ['json-true', 'true'],
  ['deep-array', '['.repeat(200_000) + ']'.repeat(200_000)],
  ['deep-object', '{"a":'.repeat(60_000) + '1' + '}'.repeat(60_000)],
  ['deep-in-field', `{"metadata":{"d":${'['.repeat(100_000)}${']'.repeat(100_000)}},"details":${'['.repeat(50_000)}${']'.repeat(50_000)},"content":${'['.repeat(50_000)}${']'.repeat(50_000)},"role":"user","title":"t","cards":[{"id":"c9","title":"t","x":${'['.repeat(50_000)}${']'.repeat(50_000)}}]}`],
  ['proto-keys', '{"__proto__":{"roles":["admin"],"admin":true,"orgId":"evil"},"constructor":{"prototype":{"polluted":1}},"prototype":{}}'],
  ['invalid-utf8', Buffer.from([0x7b, 0x22, 0x74, 0x69, 0x74, 0x6c, 0x65, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0xc3, 0x28, 0x22, 0x7d])],
  ['bom', '\ufeff{}'],
  ['escaped-nul', '{"title":"a\\u0000b","message":"\\u0000","data":"\\u0000"}'],
  ['duplicate-keys', '{"orgId":"acme","orgId":"evil","projectName":"proj","projectName":".."}'],
  ['number-edge', '{"cols":1e400,"rows":-0,"priority":9007199254740993,"expiresInMs":-1e-400,"maxQueue":1e308}'],
  ['big-data', JSON.stringify({ data: 'y'.repeat(1_000_000) })],
  ['form-encoded', 'orgId=acme&projectName=proj', { 'content-type': 'application/x-www-form-urlencoded' }],
  ['text-plain', '{}', { 'content-type': 'text/plain' }],
  ['json-suffix-type', '{}', { 'content-type': 'application/evil+json; charset=utf-7' }],
  ['no-type', '{}', { 'content-type': '' }],
];

/** Junk query strings for GET routes. */
const QUERIES = [
  '?limit=-1&lines=0&offset=1e99&status=%00&include=..%2F&all=%ff&lastEventId=-1&heartbeatMs=1&force=maybe',
  '?limit=999999999999999999999&lines=99999999999&offset=-5',
  `?userId=${'u'.repeat(3000)}&orgId=${'o'.repeat(100)}&projectName=..&path=../../etc/passwd`,
  '?%=%&%E0%A4%A=1&&&==&include=.git&include=node_modules&include=../../x',
  '?cohost=&token=&since=abc&mode=screen',
];

/** Junk headers the routes read. */
const HEADERS: Array<Record<string, string>> = [
  { 'if-match': 'abc', 'if-none-match': 'W/"x", *, "' + 'y'.repeat(2000) + '"', 'last-event-id': '-1', range: 'bytes=-0' },
  { 'if-match': '"1"'.repeat(500), 'last-event-id': '9'.repeat(30), range: 'bytes=999999999999999-', 'if-range': 'garbage' },
  { 'if-match': '*,*', 'last-event-id': '1e3', range: Array.from({ length: 200 }, (_, i) => `${i}-${i}`).join(',').replace(/^/, 'bytes='), 'accept-encoding': 'gzip;q=nan' },
];

interface Outcome {
  route: string;
  variant: string;
  status: number;
  code: string | undefined;
  detail: string;
}

let world: World;
const outcomes: Outcome[] = [];

beforeAll(async () => {
  world = await makeWorld({ env: { LOG_LEVEL: 'warn' } });
});
afterAll(async () => {
  await world?.s.stop();
});

/** The token a route is called with: admin routes get the admin's, the rest a member's. */
const tokenFor = (route: RouteSpec) => (route.auth === 'public' ? undefined : route.admin ? world.s.adminToken : world.token);

async function probe(route: RouteSpec, variant: string, p: string, body: string | Buffer | undefined, headers: Record<string, string> = {}): Promise<void> {
  const res = await request(world.s, route.method, p, { token: tokenFor(route), body, headers });
  outcomes.push({ route: routeKey(route.method, route.pattern), variant, status: res.status, code: errorCode(res.text), detail: res.status <= 0 || res.status >= 500 ? res.text.slice(0, 200) : '' });
}

function variantsFor(route: RouteSpec): Array<() => Promise<void>> {
  const w = world.w;
  const out: Array<() => Promise<void>> = [];
  const validBody = route.body ? JSON.stringify(route.body(w)) : undefined;
  // Path tricks in every parameter, one at a time.
  for (const param of paramsOf(route.pattern)) {
    for (const seg of HOSTILE_SEGMENTS) {
      const p = fillPath(route.pattern, w, { [param]: seg }, new Set([param]));
      out.push(() => probe(route, `path:${param}=${seg.slice(0, 30)}`, p, validBody));
    }
  }
  const p = fillPath(route.pattern, w);
  if (route.method !== 'GET') {
    for (const [name, body, headers] of RAW_BODIES) out.push(() => probe(route, `body:${name}`, p, body, headers));
    for (const [name, v] of WRONG_VALUES) {
      const body = JSON.stringify(Object.fromEntries(FIELDS.map((f) => [f, v])));
      out.push(() => probe(route, `fields:${name}`, p, body));
      // The same value nested where routes look one level down (cards, messages, metadata).
      const nested = JSON.stringify({ cards: [{ id: 'c1', title: v, criteria: [v], logs: [v] }], messages: [{ role: v, content: v, toolCalls: [v] }], metadata: { v }, criteria: [v], attachments: [v], domains: [v], paths: [v], author: { name: v, email: v } });
      out.push(() => probe(route, `nested:${name}`, p, nested));
    }
  } else {
    for (const q of QUERIES) out.push(() => probe(route, `query:${q.slice(0, 40)}`, p + q, undefined));
  }
  HEADERS.forEach((h, i) => out.push(() => probe(route, `headers:${i}`, p, validBody, h)));
  return out;
}

describe('hostile input on every route', () => {
  it('never answers 500 or internal_error, never hangs, never drops the connection, and keeps serving', async () => {
    const ordered = [...ROUTES.filter((r) => !r.destroys), ...ROUTES.filter((r) => r.destroys)];
    for (const route of ordered) {
      await inPool(variantsFor(route), 4, (fn) => fn());
      // A pause (admin sweep) must not leave the scheduler paused for later routes.
      if (route.admin) await api(world.s, 'POST', '/api/resources/resume', { token: world.s.adminToken });
    }
    const bad = outcomes.filter((o) => o.status === 500 || o.status <= 0 || o.code === 'internal_error');
    // One line per failing (route, variant): the figure and the evidence in one place.
    const summary = bad.map((o) => `${o.route} [${o.variant}] → ${o.status} ${o.code ?? ''} ${o.detail}`);
    expect((await api(world.s, 'GET', '/healthz')).status).toBe(200);
    expect(world.s.proc.exitCode).toBe(null);
    console.log(`hostile-input: ${outcomes.length} requests over ${ROUTES.length} routes, ${bad.length} failures`);
    expect(summary).toEqual([]);
  }, 300_000);

  it('answers every API error as JSON with a code', () => {
    const notJson = outcomes.filter((o) => o.status >= 400 && o.route.includes(' /api/') && o.code === undefined);
    expect(notJson.map((o) => `${o.route} [${o.variant}] → ${o.status}`)).toEqual([]);
  });

  it('logged no unexpected server error', () => {
    const errors = world.s.output.filter((l) => l.includes('"level":"error"') && l.includes('request failed'));
    if (process.env.DEBUG_HOSTILE) console.log(errors.join('\n'));
    expect(errors.slice(0, 20)).toEqual([]);
  });
});
