/**
 * Every HTTP route of the server, as a table the security suites iterate over, and a
 * scanner that reads the route modules so a route added without a row here fails
 * `route-table.test.ts` (the table cannot silently fall behind the code).
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from '../helpers/server.js';

export type Auth = 'user' | 'any' | 'public';

export interface RouteSpec {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  pattern: string;
  auth: Auth;
  /** Changes state (a cohost guest must never get a 2xx). */
  write: boolean;
  /** Only admins may call it. */
  admin?: boolean;
  /** Destroys the fixture it names (run last in hostile-input sweeps). */
  destroys?: boolean;
  /** Needs SM_TEST_HOOKS=1. */
  testHook?: boolean;
  /** A body that is valid for the route against the fixture world (mutating routes). */
  body?: (w: WorldParams) => unknown;
}

/** Values the fixture world provides for path parameters. */
export interface WorldParams {
  orgId: string;
  projectName: string;
  /** A running session of orgId/projectName. */
  id: string;
  userId: string;
  conversationId: string;
  cardId: string;
  acId: string;
  jobId: string;
  provider: string;
  /** A cohost share token (raw) of orgId/projectName. */
  token: string;
  /** The trailing `*` of preview/sites/assets routes. */
  rest: string;
}

const r = (method: RouteSpec['method'], pattern: string, auth: Auth, write: boolean, extra: Partial<RouteSpec> = {}): RouteSpec => ({ method, pattern, auth, write, ...extra });

export const ROUTES: RouteSpec[] = [
  // sessions
  r('POST', '/api/sessions', 'user', true, { body: (w) => ({ orgId: w.orgId, projectName: w.projectName, agent: 'script', command: 'true' }) }),
  r('GET', '/api/sessions', 'any', false),
  r('GET', '/api/sessions/by-user/:userId', 'user', false),
  r('GET', '/api/sessions/:id', 'any', false),
  r('DELETE', '/api/sessions/:id', 'any', true, { destroys: true, body: () => ({ reason: 'probe' }) }),
  r('POST', '/api/sessions/:id/prompt', 'user', true, { body: () => ({ text: 'hello' }) }),
  r('POST', '/api/sessions/:id/complete', 'any', true, { destroys: true, body: () => ({ summary: 'done' }) }),
  r('GET', '/api/sessions/:id/participants', 'any', false),
  r('GET', '/api/sessions/:id/artifacts', 'any', false),
  r('POST', '/api/sessions/:id/input', 'user', true, { body: () => ({ data: 'x', enter: false }) }),
  r('POST', '/api/sessions/:id/resize', 'user', true, { body: () => ({ cols: 81, rows: 25 }) }),
  r('POST', '/api/sessions/:id/signal', 'user', true, { destroys: true, body: () => ({ signal: 'SIGUSR1' }) }),
  r('GET', '/api/sessions/:id/logs', 'any', false),
  r('POST', '/api/sessions/:id/fault', 'user', true, { destroys: true, testHook: true, body: () => ({ kind: 'throw' }) }),
  // jobs, resources, health, metrics
  r('GET', '/api/jobs', 'user', false),
  r('POST', '/api/resources/pause', 'user', true, { admin: true, body: () => ({}) }),
  r('POST', '/api/resources/resume', 'user', true, { admin: true, body: () => ({}) }),
  r('GET', '/api/resources/limits', 'user', false, { admin: true }),
  r('PUT', '/api/resources/limits', 'user', true, { admin: true, body: () => ({ maxQueue: 1000 }) }),
  r('GET', '/healthz', 'public', false),
  r('GET', '/readyz', 'public', false),
  r('GET', '/api/metrics', 'public', false),
  r('GET', '/metrics', 'public', false),
  // cohost
  r('GET', '/api/cohost/host/:userId', 'user', false),
  r('POST', '/api/cohost/:orgId/:projectName', 'user', true, { body: () => ({ expiresInMs: 60_000 }) }),
  r('GET', '/api/cohost/:token', 'public', false),
  r('DELETE', '/api/cohost/:token', 'user', true, { destroys: true }),
  // web console
  r('GET', '/', 'public', false),
  r('GET', '/assets/*', 'public', false),
  // deploy
  r('GET', '/api/deploy/jobs/:orgId/:projectName', 'user', false),
  r('GET', '/api/deploy/job/:jobId', 'user', false),
  r('GET', '/api/deploy/job/:jobId/stream', 'user', false),
  r('GET', '/api/deploy/:provider/:orgId/:projectName/status', 'user', false),
  r('POST', '/api/deploy/:provider/:orgId/:projectName/sync-aliases', 'user', true, { body: () => ({}) }),
  r('POST', '/api/deploy/:provider/:orgId/:projectName', 'user', true, { body: () => ({}) }),
  r('DELETE', '/api/deploy/:provider/:orgId/:projectName', 'user', true, { destroys: true }),
  // sites (local deploy output)
  r('GET', '/sites/:orgId/:projectName/*', 'public', false),
  // dev-envs
  r('POST', '/api/dev-envs', 'user', true, { body: (w) => ({ orgId: w.orgId, projectName: `${w.projectName}-b`, description: 'probe' }) }),
  r('GET', '/api/dev-envs/:orgId', 'user', false),
  r('GET', '/api/dev-envs/:orgId/:projectName', 'user', false),
  r('DELETE', '/api/dev-envs/:orgId/:projectName', 'user', true, { destroys: true }),
  r('POST', '/api/dev-envs/:orgId/:projectName/sync-ai-instructions', 'user', true, { body: () => ({}) }),
  r('GET', '/api/dev-envs/:orgId/:projectName/download', 'user', false),
  // planner
  r('GET', '/api/planner/:orgId/:projectName', 'any', false),
  r('PUT', '/api/planner/:orgId/:projectName', 'user', true, { body: (w) => ({ cards: [{ id: w.cardId, title: 'replaced', criteria: [{ id: w.acId, text: 'ok' }] }] }) }),
  r('POST', '/api/planner/:orgId/:projectName/cards', 'user', true, { body: () => ({ title: 'new card' }) }),
  r('PATCH', '/api/planner/:orgId/:projectName/cards/:cardId', 'user', true, { body: () => ({ title: 'patched' }) }),
  r('DELETE', '/api/planner/:orgId/:projectName/cards/:cardId', 'user', true, { destroys: true }),
  r('POST', '/api/planner/:orgId/:projectName/cards/:cardId/logs', 'user', true, { body: () => ({ message: 'progress' }) }),
  r('PATCH', '/api/planner/:orgId/:projectName/cards/:cardId/criteria/:acId', 'user', true, { body: () => ({ done: true }) }),
  // conversations
  r('GET', '/api/conversations/:orgId/:projectName', 'any', false),
  r('POST', '/api/conversations/:orgId/:projectName', 'user', true, { body: () => ({ title: 'probe' }) }),
  r('GET', '/api/conversations/:orgId/:projectName/:conversationId', 'any', false),
  r('PUT', '/api/conversations/:orgId/:projectName/:conversationId', 'user', true, { body: () => ({ title: 'renamed' }) }),
  r('DELETE', '/api/conversations/:orgId/:projectName/:conversationId', 'user', true, { destroys: true }),
  r('POST', '/api/conversations/:orgId/:projectName/:conversationId/messages', 'user', true, { body: () => ({ role: 'user', content: 'hi' }) }),
  // git
  r('GET', '/api/git/:orgId/:projectName/status', 'user', false),
  r('GET', '/api/git/:orgId/:projectName/log', 'user', false),
  r('GET', '/api/git/:orgId/:projectName/remote', 'user', false),
  r('POST', '/api/git/:orgId/:projectName/remote', 'user', true, { body: () => ({ name: 'origin', url: 'https://example.invalid/repo.git' }) }),
  r('POST', '/api/git/:orgId/:projectName/init', 'user', true, { body: () => ({}) }),
  r('POST', '/api/git/:orgId/:projectName/clone', 'user', true, { body: () => ({ url: 'https://example.invalid/repo.git' }) }),
  r('POST', '/api/git/:orgId/:projectName/commit', 'user', true, { body: () => ({ message: 'probe' }) }),
  r('POST', '/api/git/:orgId/:projectName/push', 'user', true, { body: () => ({}) }),
  r('POST', '/api/git/:orgId/:projectName/pull', 'user', true, { body: () => ({}) }),
  // templates
  r('GET', '/api/templates', 'user', false),
  r('POST', '/api/templates/apply', 'user', true, { body: (w) => ({ templateId: 'plain-html', orgId: w.orgId, projectName: w.projectName }) }),
  // workspace preview
  r('GET', '/preview/:orgId/:projectName/*', 'public', false),
];

export const routeKey = (method: string, pattern: string): string => `${method} ${pattern}`;

/** Substitute a world's values (or overrides) into a pattern; values are percent-encoded unless `raw`. */
export function fillPath(pattern: string, w: WorldParams, over: Partial<Record<keyof WorldParams, string>> = {}, raw: Set<string> = new Set()): string {
  return pattern
    .split('/')
    .map((seg) => {
      if (seg === '*') return 'rest' in over ? over.rest! : w.rest;
      if (!seg.startsWith(':')) return seg;
      const name = seg.slice(1) as keyof WorldParams;
      const v = name in over ? over[name]! : w[name];
      if (v === undefined) throw new Error(`no value for :${name}`);
      return raw.has(name) ? v : encodeURIComponent(v);
    })
    .join('/');
}

/** Path parameters (and `*`) of a pattern, in order. */
export function paramsOf(pattern: string): Array<keyof WorldParams> {
  return pattern
    .split('/')
    .filter((s) => s.startsWith(':') || s === '*')
    .map((s) => (s === '*' ? 'rest' : s.slice(1)) as keyof WorldParams);
}

export interface ScannedRoute {
  method: string;
  pattern: string;
  auth: Auth;
  file: string;
}

/**
 * Read every route registration (`router.get('/x', …)`, `router.post(\`${base}/y\`, …)`)
 * in src/http/routes/*.ts and src/server.ts. `${base}` is resolved from the file's
 * `const base = '…'`; the auth mode is the call's trailing `'any'`/`'public'` argument.
 */
export function scanRoutes(): ScannedRoute[] {
  const dir = path.join(ROOT, 'src/http/routes');
  const files = [...readdirSync(dir).filter((f) => f.endsWith('.ts')).map((f) => path.join(dir, f)), path.join(ROOT, 'src/server.ts')];
  const out: ScannedRoute[] = [];
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    const base = /const base = '([^']+)'/.exec(text)?.[1];
    const re = /\brouter\.(get|post|put|patch|delete)\(\s*(?:'([^']*)'|`([^`]*)`|(base)\b)/g;
    const hits = [...text.matchAll(re)];
    hits.forEach((m, i) => {
      let pattern = m[2] ?? m[3] ?? (m[4] ? '${base}' : '');
      if (pattern.includes('${base}')) {
        if (!base) throw new Error(`${file}: \${base} without const base`);
        pattern = pattern.replace('${base}', base);
      }
      const end = i + 1 < hits.length ? hits[i + 1]!.index! : text.length;
      const call = text.slice(m.index!, end);
      const auth: Auth = /\}\s*,\s*'any'\s*\)\s*;/.test(call) ? 'any' : /\}\s*,\s*'public'\s*\)\s*;/.test(call) ? 'public' : 'user';
      out.push({ method: m[1]!.toUpperCase(), pattern, auth, file: path.relative(ROOT, file) });
    });
  }
  return out;
}
