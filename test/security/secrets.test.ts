/**
 * Secrets: a full workflow (dev-env, planner, conversation, an agent session, git with a
 * push token over HTTP, clone/pull with the token, SpinForge and local deploys, share link,
 * zip, metrics, logs, error paths that quote the secrets back) on a server configured with
 * JWT_SECRET and SPINFORGE_PARTNER_KEY. Then every response body and header, every log
 * line, the agent's environment and every file under DATA_DIR, the workspaces and
 * DEPLOY_DIR are searched for JWT_SECRET, SPINFORGE_PARTNER_KEY and the git token (raw,
 * base64 and base64url): 0 occurrences. Last, what an agent can reach beyond its own
 * environment: the server's environment and other tenants' files.
 */
import { execFileSync } from 'node:child_process';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startServer, TEST_SECRET, until, type ApiResponse, type TestServer } from '../helpers/server.js';
import { Client } from '../helpers/ws.js';
import { startGitHttp, type GitHttpServer } from '../workspace/helpers/git-http.js';
import { allFiles } from './snapshot.js';

const PARTNER_KEY = 'sf-partner-KEY-9c1e5b2d8f4a6c0e7f3a';
const GIT_TOKEN = 'ghp_SECRETTOKEN_0123456789abcdefXYZ';

/** A real HTTP server playing SpinForge; it quotes the key back in places, as a careless upstream might. */
class FakeSpinforge {
  private server!: Server;
  url = '';
  async start(): Promise<void> {
    this.server = createServer((req: IncomingMessage, res) => {
      req.resume();
      req.on('end', () => {
        const json = (status: number, body: unknown) => {
          res.writeHead(status, { 'content-type': 'application/json', 'x-echo-key': String(req.headers['x-partner-key'] ?? '') });
          res.end(JSON.stringify(body));
        };
        if (req.headers['x-partner-key'] !== PARTNER_KEY) return json(401, { error: `bad partner key ${String(req.headers['x-partner-key'])}` });
        const tail = /^\/v1\/sites\/[^/]+\/([^/]+)(\/.*)?$/.exec(req.url ?? '')?.[2] ?? '';
        if (req.method === 'POST' && tail === '/deployments') return json(201, { deploymentId: 'dep-1', note: `key ${PARTNER_KEY}` });
        if (req.method === 'POST' && /\/activate$/.test(tail)) return json(200, { url: 'https://x.spinforge.test', debug: PARTNER_KEY });
        if (req.method === 'GET' && tail === '') return json(200, { status: 'live', debug: `called with ${PARTNER_KEY}` });
        if (req.method === 'POST' && tail === '/aliases/sync') return json(500, { error: { message: `failed for key=${PARTNER_KEY}` } });
        if (req.method === 'DELETE') return json(200, { removed: true, by: PARTNER_KEY });
        return json(404, { error: `no route (key ${PARTNER_KEY})` });
      });
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/v1`;
  }
  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

const SECRETS: Record<string, string> = { JWT_SECRET: TEST_SECRET, SPINFORGE_PARTNER_KEY: PARTNER_KEY, GIT_TOKEN };
/** Each secret as it could appear: raw, base64, base64url, and in a Basic credential. */
const forms = (v: string): string[] => [v, Buffer.from(v).toString('base64').replace(/=+$/, ''), Buffer.from(v).toString('base64url'), Buffer.from(`x-access-token:${v}`).toString('base64').replace(/=+$/, '')];

function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', args, {
    cwd,
    env: { PATH: process.env.PATH, HOME: cwd, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', GIT_AUTHOR_NAME: 'o', GIT_AUTHOR_EMAIL: 'o@x', GIT_COMMITTER_NAME: 'o', GIT_COMMITTER_EMAIL: 'o@x' },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

let s: TestServer;
let fake: FakeSpinforge;
let remote: GitHttpServer;
let token: string;
/** Everything the server sent back: bodies, headers, SSE streams, WebSocket frames, agent output. */
const seen: string[] = [];
let agentEnv = '';
let agentPid = 0;

const call = async (method: string, p: string, body?: unknown): Promise<ApiResponse> => {
  const r = await api(s, method, p, { token, body });
  seen.push(`${method} ${p} ${r.status}\n${JSON.stringify([...r.headers])}\n${r.text}`);
  return r;
};

beforeAll(async () => {
  fake = new FakeSpinforge();
  await fake.start();
  const dir = (await import('../helpers/server.js')).tempDir();
  const agents = path.join(dir, 'agents.json');
  // A profile that tries to hand the secrets to its agent directly.
  writeFileSync(agents, JSON.stringify({ leaky: { command: 'bash', args: ['--noprofile', '--norc'], env: { LEAK_A: TEST_SECRET, LEAK_B: `prefix-${PARTNER_KEY}` } } }));
  s = await startServer({
    dir,
    env: {
      SPINFORGE_API_URL: fake.url,
      SPINFORGE_PARTNER_KEY: PARTNER_KEY,
      AGENTS_FILE: agents,
      AGENT_ENV_PASSTHROUGH: 'JWT_SECRET,SPINFORGE_PARTNER_KEY,SM_GIT_TOKEN',
      LOG_LEVEL: 'debug',
      // Agents under per-org uids: what an agent can reach besides its environment (below).
      AGENT_UID_RANGE: '3200000-3299999',
    },
  });
  token = await s.token({ sub: 'alice', orgId: 'acme' });
  const remotes = path.join(s.dir, 'remotes');
  mkdirSync(remotes);
  remote = await startGitHttp(remotes, GIT_TOKEN);
  // A private repository behind the token.
  const bare = path.join(remotes, 'app.git');
  const seed = path.join(remotes, 'seed');
  git(remotes, 'init', '--bare', '--initial-branch=main', bare);
  git(remotes, 'init', '--initial-branch=main', seed);
  writeFileSync(path.join(seed, 'index.html'), '<p>app</p>\n');
  git(seed, 'add', '-A');
  git(seed, 'commit', '-m', 'seed');
  git(seed, 'push', bare, 'main');
}, 60_000);
afterAll(async () => {
  await remote?.close();
  await s?.stop();
  await fake?.stop();
});

describe('secrets stay on the server', () => {
  it('a full workflow runs', async () => {
    const repo = `${remote.url}/app.git`;
    expect((await call('POST', '/api/dev-envs', { orgId: 'acme', projectName: 'site', description: 'secrets workflow' })).status).toBe(201);
    expect((await call('POST', '/api/planner/acme/site/cards', { id: 'c1', title: 'ship', criteria: [{ id: 'a1', text: 'deployed' }] })).status).toBe(201);
    await call('POST', '/api/planner/acme/site/cards/c1/logs', { message: 'working' });
    const conv = await call('POST', '/api/conversations/acme/site', { title: 't', messages: [{ role: 'user', content: 'deploy it' }] });
    await call('POST', `/api/conversations/acme/site/${conv.body.id}/messages`, { role: 'assistant', content: 'ok' });
    // Git: clone with the token (and refusals that must not echo it), commit, push, pull.
    expect((await call('POST', '/api/git/acme/cloned/clone', { url: repo })).status).toBe(403);
    expect((await call('POST', '/api/git/acme/cloned/clone', { url: repo.replace('http://', `http://x:${GIT_TOKEN}@`) })).status).toBe(400);
    expect((await call('POST', '/api/git/acme/cloned/clone', { url: repo, token: `${GIT_TOKEN}-wrong` })).status).toBe(403);
    expect((await call('POST', '/api/git/acme/cloned/clone', { url: repo, token: GIT_TOKEN })).status).toBe(201);
    writeFileSync(path.join(s.workspaces, 'acme', 'cloned', 'more.txt'), 'more\n');
    expect((await call('POST', '/api/git/acme/cloned/commit', { message: 'more' })).status).toBe(201);
    expect((await call('POST', '/api/git/acme/cloned/push', { token: GIT_TOKEN })).status).toBe(200);
    expect((await call('POST', '/api/git/acme/cloned/pull', { token: GIT_TOKEN })).status).toBe(200);
    await call('POST', '/api/git/acme/cloned/push', { token: 'wrong-token-value' });
    await call('POST', '/api/git/acme/cloned/remote', { name: 'mirror', url: `${remote.url}/nosuch.git` });
    await call('POST', '/api/git/acme/cloned/push', { remote: 'mirror', token: GIT_TOKEN });
    await call('GET', '/api/git/acme/cloned/log');
    await call('GET', '/api/git/acme/cloned/status');
    await call('GET', '/api/git/acme/cloned/remote');
    // An agent session; it looks at its environment, then tries to pass the secrets on.
    const sess = await call('POST', '/api/sessions', { orgId: 'acme', projectName: 'cloned', agent: 'leaky' });
    agentPid = sess.body.pid;
    const c = await Client.connect(s.wsUrl, { token });
    await c.attach(sess.body.id);
    c.send({ type: 'input', sessionId: sess.body.id, data: 'env; printf "TOKEN<%s>\\n" "$SESSION_TOKEN"; echo ENV-$((6*7))-DONE\r' });
    await c.waitForText(sess.body.id, 'ENV-42-DONE');
    // Read once the agent runs (before its exec, a forked child still shows the server's own block).
    agentEnv = readFileSync(`/proc/${agentPid}/environ`, 'utf8');
    seen.push(c.text(sess.body.id), JSON.stringify(c.frames));
    c.close();
    await call('GET', `/api/sessions/${sess.body.id}/logs`);
    // Deploys: SpinForge (upstream quotes the key back) and local, each with a build that dumps its env.
    writeFileSync(path.join(s.workspaces, 'acme', 'cloned', '.vibe', 'project.json'), JSON.stringify({ orgId: 'acme', projectName: 'cloned', createdBy: 'alice', createdAt: new Date().toISOString(), build: { command: 'env; mkdir -p dist && cp index.html dist/' } }));
    for (const provider of ['spinforge', 'local']) {
      const d = await call('POST', `/api/deploy/${provider}/acme/cloned`);
      expect(d.status).toBe(202);
      await until(async () => (await api(s, 'GET', `/api/deploy/job/${d.body.jobId}`, { token })).body.status !== 'running', 'deploy', 30_000, 50);
      await call('GET', `/api/deploy/job/${d.body.jobId}`);
      const sse = await fetch(`${s.url}/api/deploy/job/${d.body.jobId}/stream`, { headers: { authorization: `Bearer ${token}` } });
      seen.push(await sse.text());
      await call('GET', `/api/deploy/${provider}/acme/cloned/status`);
      await call('POST', `/api/deploy/${provider}/acme/cloned/sync-aliases`, { domains: ['a.example.com'] });
    }
    await call('GET', '/api/deploy/jobs/acme/cloned');
    const site = await fetch(`${s.url}/sites/acme/cloned/`);
    seen.push(await site.text());
    await call('DELETE', '/api/deploy/spinforge/acme/cloned');
    // Share link, zip, listings, metrics.
    const share = await call('POST', '/api/cohost/acme/cloned', {});
    seen.push((await api(s, 'GET', `/api/cohost/${share.body.token}`)).text);
    const zip = await fetch(`${s.url}/api/dev-envs/acme/cloned/download?include=.git`, { headers: { authorization: `Bearer ${token}` } });
    seen.push(Buffer.from(await zip.arrayBuffer()).toString('latin1'));
    for (const p of ['/api/sessions', '/api/jobs', '/api/dev-envs/acme', '/api/dev-envs/acme/cloned', '/api/templates', '/api/cohost/host/alice', '/api/metrics', '/metrics', '/readyz', '/healthz']) await call('GET', p);
    seen.push((await api(s, 'GET', '/api/resources/limits', { token: s.adminToken })).text);
    await call('DELETE', `/api/sessions/${sess.body.id}`);
    await until(() => s.output.some((l) => l.includes('deploy ended')), 'deploy log line');
    expect(seen.length).toBeGreaterThan(40);
  }, 120_000);

  it('0 occurrences in responses, log lines, the agent environment and every file the server wrote', () => {
    const where: Array<[string, string]> = [
      ['responses', seen.join('\n')],
      ['log lines', s.output.join('\n')],
      ['agent environment', agentEnv],
    ];
    for (const root of [s.dataDir, s.workspaces, path.join(s.dir, 'deploys')]) {
      for (const f of allFiles(root)) where.push([path.relative(s.dir, f), readFileSync(f).toString('latin1')]);
    }
    const hits: string[] = [];
    for (const [name, value] of Object.entries(SECRETS)) {
      for (const form of forms(value)) for (const [label, text] of where) if (text.includes(form)) hits.push(`${name} in ${label}`);
    }
    console.log(`secrets: searched ${where.length} places (${where.length - 3} files) for ${Object.keys(SECRETS).length} secrets in ${forms('x').length} encodings each: ${hits.length} occurrences`);
    expect(hits).toEqual([]);
    // The builder's bearer token is not persisted either.
    const tokenHits = where.filter(([label, text]) => label !== 'responses' && text.includes(token)).map(([label]) => label);
    expect(tokenHits).toEqual([]);
  });
});

describe('what an agent can reach besides its environment', () => {
  /** Run a command in a fresh bash session of org/project and return its output. */
  const agentRuns = async (orgId: string, projectName: string, command: string): Promise<string> => {
    const t = await s.token({ sub: `u-${orgId}`, orgId });
    const r = await api(s, 'POST', '/api/sessions', { token: t, body: { orgId, projectName, agent: 'bash' } });
    const c = await Client.connect(s.wsUrl, { token: t });
    await c.attach(r.body.id);
    c.send({ type: 'input', sessionId: r.body.id, data: `${command}; echo END-$((40+2))\r` });
    await c.waitForText(r.body.id, 'END-42');
    const out = c.text(r.body.id);
    c.close();
    await api(s, 'DELETE', `/api/sessions/${r.body.id}`, { token: t });
    return out;
  };

  it("an agent cannot read the server's environment through /proc (its parent is the server)", async () => {
    const out = await agentRuns('acme', 'probe', 'tr "\\0" "\\n" < /proc/$PPID/environ | grep -c -e JWT_SECRET= -e SPINFORGE_PARTNER_KEY= ; ls -l /proc/$PPID/exe');
    // Counted, not printed, so the secret values do not land in this test's output.
    const count = Number(/^(\d+)\s*$/m.exec(out.split('\r\n').slice(1).join('\n'))?.[1] ?? 0);
    expect(count).toBe(0);
  });

  it("an agent cannot read another org's workspace or the server's DATA_DIR", async () => {
    writeFileSync(path.join(s.workspaces, 'acme', 'site', 'private.txt'), 'ACME-PRIVATE-CONTENT\n');
    const out = await agentRuns(
      'globex',
      'snoop',
      `cat "$WORKSPACE_DIR/../../acme/site/private.txt" 2>/dev/null | tr A-Z a-z; ls ${JSON.stringify(s.dataDir)}/sessions 2>/dev/null | wc -l | sed "s/^/SESSIONS-SEEN=/"`,
    );
    expect(out).not.toContain('acme-private-content');
    expect(/SESSIONS-SEEN=(\d+)/.exec(out)?.[1]).toBe('0');
  });
});
