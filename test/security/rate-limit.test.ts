/**
 * Per-user and per-org rate limits (src/http/rate-limit.ts): the limiter on its own with
 * a fake clock, then against a server started with tight limits — session creation and
 * the expensive routes (zip download, git clone, deploy) answer 429 `rate_limited` with
 * `Retry-After`, per user and per org, and other orgs are unaffected.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config.js';
import { AppError } from '../../src/errors.js';
import { RateLimiter, rateLimitsFromEnv, type RateLimits } from '../../src/http/rate-limit.js';
import { api, startServer, type TestServer } from '../helpers/server.js';

const limits = (user: number, org: number): RateLimits => ({ user: { sessions: user, expensive: user }, org: { sessions: org, expensive: org } });

function refusal(fn: () => void): AppError | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    if (err instanceof AppError) return err;
    throw err;
  }
}

describe('RateLimiter (fake clock)', () => {
  it('lets a burst of perMin through, then 429 with Retry-After until a token refills', () => {
    let t = 1_000_000;
    const rl = new RateLimiter(limits(6, 0), () => t);
    for (let i = 0; i < 6; i++) expect(refusal(() => rl.check({ userId: 'a' }, 'sessions'))).toBeUndefined();
    const e = refusal(() => rl.check({ userId: 'a' }, 'sessions'))!;
    expect([e.status, e.code, e.headers?.['Retry-After']]).toEqual([429, 'rate_limited', '10']);
    expect(e.details).toEqual({ kind: 'sessions', retryAfterSeconds: 10 });
    t += 9_000;
    expect(refusal(() => rl.check({ userId: 'a' }, 'sessions'))?.headers?.['Retry-After']).toBe('1');
    t += 1_000;
    expect(refusal(() => rl.check({ userId: 'a' }, 'sessions'))).toBeUndefined();
  });

  it('keeps users, orgs and kinds apart; an org limit binds its users together', () => {
    const t = 0;
    const rl = new RateLimiter(limits(2, 3), () => t);
    rl.check({ userId: 'a', orgId: 'o1' }, 'sessions');
    rl.check({ userId: 'a', orgId: 'o1' }, 'sessions');
    expect(refusal(() => rl.check({ userId: 'a', orgId: 'o1' }, 'sessions'))?.status).toBe(429);
    expect(refusal(() => rl.check({ userId: 'a', orgId: 'o1' }, 'expensive'))).toBeUndefined();
    expect(refusal(() => rl.check({ userId: 'b', orgId: 'o1' }, 'sessions'))).toBeUndefined();
    // o1 has used 3 (a: 2, b: 1): b is refused by the org although b's own bucket has room.
    expect(refusal(() => rl.check({ userId: 'b', orgId: 'o1' }, 'sessions'))?.status).toBe(429);
    expect(refusal(() => rl.check({ userId: 'c', orgId: 'o2' }, 'sessions'))).toBeUndefined();
  });

  it('a refused request takes no token; 0 means no limit', () => {
    let t = 0;
    const rl = new RateLimiter(limits(60, 0), () => t);
    for (let i = 0; i < 60; i++) rl.check({ userId: 'a' }, 'sessions');
    for (let i = 0; i < 100; i++) expect(refusal(() => rl.check({ userId: 'a' }, 'sessions'))?.status).toBe(429);
    t += 1_000;
    expect(refusal(() => rl.check({ userId: 'a' }, 'sessions'))).toBeUndefined();
    const open = new RateLimiter(limits(0, 0), () => 0);
    for (let i = 0; i < 10_000; i++) open.check({ userId: 'a', orgId: 'o' }, 'sessions');
    expect(open.size).toBe(0);
  });

  it('forgets idle buckets so many distinct users cannot grow memory without bound', () => {
    let t = 0;
    const rl = new RateLimiter(limits(5, 0), () => t);
    for (let i = 0; i < 30_000; i++) {
      rl.check({ userId: `u${i}` }, 'sessions');
      t += 100;
    }
    expect(rl.size).toBeLessThanOrEqual(10_001);
  });

  it('reads RATE_LIMIT_* from the environment; a bad value names the variable', () => {
    expect(rateLimitsFromEnv({})).toEqual({ user: { sessions: 120, expensive: 30 }, org: { sessions: 600, expensive: 150 } });
    expect(rateLimitsFromEnv({ RATE_LIMIT_SESSIONS_PER_MIN: '3', RATE_LIMIT_EXPENSIVE_PER_MIN: '0', RATE_LIMIT_ORG_SESSIONS_PER_MIN: '7' })).toEqual({
      user: { sessions: 3, expensive: 0 },
      org: { sessions: 7, expensive: 0 },
    });
    expect(() => rateLimitsFromEnv({ RATE_LIMIT_SESSIONS_PER_MIN: 'lots' })).toThrow(ConfigError);
    expect(() => rateLimitsFromEnv({ RATE_LIMIT_EXPENSIVE_PER_MIN: '-1' })).toThrow(/RATE_LIMIT_EXPENSIVE_PER_MIN/);
  });
});

describe('rate limits on a server (needs the wiring: session create, zip, clone, deploy)', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer({
      env: {
        RATE_LIMIT_SESSIONS_PER_MIN: '3',
        RATE_LIMIT_ORG_SESSIONS_PER_MIN: '5',
        RATE_LIMIT_EXPENSIVE_PER_MIN: '2',
        RATE_LIMIT_ORG_EXPENSIVE_PER_MIN: '3',
        LOG_LEVEL: 'warn',
      },
    });
  });
  afterAll(async () => {
    await s?.stop();
  });

  const create = async (token: string, orgId = 'acme') => api(s, 'POST', '/api/sessions', { token, body: { orgId, projectName: 'rl', agent: 'script', command: 'true' } });
  const retryAfter = (r: { headers: Headers }) => Number(r.headers.get('retry-after'));

  it('session creation: per user, then per org, with 429 rate_limited and Retry-After; other orgs unaffected', async () => {
    const alice = await s.token({ sub: 'alice', orgId: 'acme' });
    const bob = await s.token({ sub: 'bob', orgId: 'acme' });
    const carol = await s.token({ sub: 'carol', orgId: 'globex' });
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await create(alice)).status);
    expect(statuses.every((x) => x === 201 || x === 202)).toBe(true);
    const over = await create(alice);
    expect([over.status, over.body.error?.code]).toEqual([429, 'rate_limited']);
    expect(retryAfter(over)).toBeGreaterThanOrEqual(1);
    expect(retryAfter(over)).toBeLessThanOrEqual(60);
    expect([201, 202]).toContain((await create(bob)).status);
    expect([201, 202]).toContain((await create(bob)).status);
    // acme has used its 5: bob is refused by the org limit.
    const orgOver = await create(bob);
    expect([orgOver.status, orgOver.body.error?.code]).toEqual([429, 'rate_limited']);
    expect(retryAfter(orgOver)).toBeGreaterThanOrEqual(1);
    expect([201, 202]).toContain((await create(carol, 'globex')).status);
  });

  it('zip download, git clone and deploy share the expensive budget per user and per org', async () => {
    const dave = await s.token({ sub: 'dave', orgId: 'acme' });
    const erin = await s.token({ sub: 'erin', orgId: 'acme' });
    await api(s, 'POST', '/api/dev-envs', { token: dave, body: { orgId: 'acme', projectName: 'heavy', description: 'x' } });
    const zip = (t: string) => api(s, 'GET', '/api/dev-envs/acme/heavy/download', { token: t });
    expect((await zip(dave)).status).toBe(200);
    expect((await zip(dave)).status).toBe(200);
    const results = [await zip(dave), await api(s, 'POST', '/api/git/acme/fresh/clone', { token: dave, body: { url: 'https://example.invalid/x.git' } }), await api(s, 'POST', '/api/deploy/local/acme/heavy', { token: dave })];
    expect(results.map((r) => [r.status, r.body?.error?.code ?? null, retryAfter(r) >= 1])).toEqual([
      [429, 'rate_limited', true],
      [429, 'rate_limited', true],
      [429, 'rate_limited', true],
    ]);
    // The org's third expensive request is erin's first; the fourth is refused for the org.
    expect((await zip(erin)).status).toBe(200);
    const orgOver = await zip(erin);
    expect([orgOver.status, orgOver.body?.error?.code]).toEqual([429, 'rate_limited']);
  });

  it('the 429 body follows the error shape, and the server keeps serving', async () => {
    const t = await s.token({ sub: 'alice', orgId: 'acme' });
    const r = await create(t);
    expect(r.status).toBe(429);
    expect(r.body).toMatchObject({ error: { code: 'rate_limited', details: { kind: 'sessions' } } });
    expect((await api(s, 'GET', '/healthz')).status).toBe(200);
  });
});
