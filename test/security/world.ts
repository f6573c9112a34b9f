/**
 * A small populated server for the security suites: one project with a workspace, a
 * running session, a planner card with a criterion, a conversation, a finished local
 * deploy, a git repository and a cohost share link — so every route has something real
 * behind its path parameters.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { api, startServer, until, type StartOptions, type TestServer } from '../helpers/server.js';
import type { WorldParams } from './route-table.js';

export interface World {
  s: TestServer;
  /** A builder of `orgId`. */
  token: string;
  /** The same builder's JWT subject. */
  userId: string;
  w: WorldParams;
}

/** Per-request bound: a route that does not answer within this is a hang. */
export const REQUEST_TIMEOUT_MS = 15_000;

export async function makeWorld(
  opts: StartOptions = {},
  orgId = 'acme',
  projectName = 'proj',
  signer?: (claims: { sub: string; orgId: string }) => Promise<string>,
): Promise<World> {
  const s = await startServer({ ...opts, env: { MAX_CONCURRENT_SESSIONS: '20', ...opts.env } });
  const userId = 'alice';
  const token = signer ? await signer({ sub: userId, orgId }) : await s.token({ sub: userId, orgId });
  return { s, token, userId, w: await populate(s, token, orgId, projectName) };
}

/** Fill one project with one of everything; returns the path parameters that name them. */
export async function populate(s: TestServer, token: string, orgId: string, projectName: string): Promise<WorldParams> {
  const ok = <R extends { status: number; text: string }>(r: R, what: string): R => {
    if (r.status >= 300) throw new Error(`${what}: ${r.status} ${r.text.slice(0, 300)}`);
    return r;
  };
  ok(await api(s, 'POST', '/api/dev-envs', { token, body: { orgId, projectName, description: 'security fixture' } }), 'dev-env');
  const ws = path.join(s.workspaces, orgId, projectName);
  mkdirSync(path.join(ws, 'site'), { recursive: true });
  writeFileSync(path.join(ws, 'index.html'), '<p>fixture</p>\n');
  writeFileSync(path.join(ws, 'site', 'app.js'), 'console.log(1)\n');
  const session = ok(await api(s, 'POST', '/api/sessions', { token, body: { orgId, projectName, agent: 'script', command: ['cat'] } }), 'session');
  const card = ok(
    await api(s, 'POST', `/api/planner/${orgId}/${projectName}/cards`, { token, body: { id: 'card-1', title: 'First', criteria: [{ id: 'ac-1', text: 'works' }] } }),
    'card',
  );
  const conv = ok(await api(s, 'POST', `/api/conversations/${orgId}/${projectName}`, { token, body: { title: 'fixture', messages: [{ role: 'user', content: 'hello' }] } }), 'conversation');
  ok(await api(s, 'POST', `/api/git/${orgId}/${projectName}/init`, { token, body: {} }), 'git init');
  const deploy = ok(await api(s, 'POST', `/api/deploy/local/${orgId}/${projectName}`, { token }), 'deploy');
  await until(async () => (await api(s, 'GET', `/api/deploy/job/${deploy.body.jobId}`, { token })).body.status !== 'running', 'fixture deploy', 20_000, 50);
  const share = ok(await api(s, 'POST', `/api/cohost/${orgId}/${projectName}`, { token, body: {} }), 'cohost');
  return {
    orgId,
    projectName,
    id: session.body.id,
    userId: 'alice',
    conversationId: conv.body.id,
    cardId: card.body.card.id,
    acId: 'ac-1',
    jobId: deploy.body.jobId,
    provider: 'local',
    token: share.body.token,
    rest: 'index.html',
  };
}

/** One request with a hard deadline; a timeout is reported as status 0 (a hang). */
export async function request(
  s: { url: string },
  method: string,
  p: string,
  opts: { token?: string | undefined; body?: string | Buffer | undefined; headers?: Record<string, string> } = {},
): Promise<{ status: number; text: string; headers: Headers | undefined; ms: number }> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.body !== undefined) headers['content-type'] ??= 'application/json';
  const t0 = Date.now();
  try {
    const res = await fetch(s.url + p, { method, headers, body: opts.body as BodyInit | undefined, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    // Streams (SSE, zips) are read at most this far: enough to see the status and the first bytes.
    const text = await readSome(res, 64 * 1024);
    return { status: res.status, text, headers: res.headers, ms: Date.now() - t0 };
  } catch (err) {
    const e = err as Error;
    if (e.name === 'TimeoutError' || e.name === 'AbortError') return { status: 0, text: 'timeout', headers: undefined, ms: Date.now() - t0 };
    return { status: -1, text: `${e.name}: ${e.message} ${(e as { cause?: Error }).cause?.message ?? ''}`, headers: undefined, ms: Date.now() - t0 };
  }
}

async function readSome(res: Response, max: number): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let n = 0;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      chunks.push(value);
      n += value.length;
      if (n >= max) break;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Parse an error body, if it is one. */
export function errorCode(text: string): string | undefined {
  try {
    return (JSON.parse(text) as { error?: { code?: string } }).error?.code;
  } catch {
    return undefined;
  }
}

/** Run `fn` over `items` with at most `n` in flight. */
export async function inPool<T>(items: T[], n: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i]!, i);
      }
    }),
  );
}
