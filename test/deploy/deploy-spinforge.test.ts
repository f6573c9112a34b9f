import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startServer, until, type TestServer } from '../helpers/server.js';
import { Client } from '../helpers/ws.js';
import { projectJson, SseClient, waitJob, writeWorkspace } from './helpers.js';

const KEY = 'sf-partner-key-7f3a9c1e5b2d8f4a6c0e';

interface Recorded {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

/** A real HTTP server playing SpinForge's partner API; it records every request. */
class FakeSpinforge {
  readonly requests: Recorded[] = [];
  private server!: Server;
  url = '';

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const rec: Recorded = { method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks) };
        this.requests.push(rec);
        const json = (status: number, body: unknown) => {
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(JSON.stringify(body));
        };
        if (req.headers['x-partner-key'] !== KEY) return json(401, { error: 'bad partner key' });
        const m = /^\/v1\/sites\/([^/]+)\/([^/]+)(\/.*)?$/.exec(req.url!);
        if (!m) return json(404, { error: 'no route' });
        const [, org, project, tail = ''] = m;
        if (req.method === 'POST' && tail === '/deployments') return json(201, { deploymentId: `dep-${this.requests.length}` });
        if (req.method === 'POST' && /^\/deployments\/[^/]+\/activate$/.test(tail)) return json(200, { url: `https://${project}.${org}.spinforge.test`, domains: [`${project}.${org}.spinforge.test`] });
        // An upstream that echoes the key back: the session manager must not pass it on.
        if (req.method === 'GET' && tail === '') return project === 'nosuch' ? json(404, { error: 'no site' }) : json(200, { status: 'live', debug: `called with key ${KEY}` });
        if (req.method === 'POST' && tail === '/aliases/sync') return json(500, { error: { message: `alias sync failed for key=${KEY}` } });
        if (req.method === 'DELETE' && tail === '') {
          res.writeHead(204);
          return res.end();
        }
        return json(404, { error: 'no route' });
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

let fake: FakeSpinforge;
let s: TestServer;
let token: string;
/** Every response body the session manager sent in these tests. */
const seen: string[] = [];

async function call(method: string, p: string, body?: unknown) {
  const r = await api(s, method, p, { token, body });
  seen.push(r.text, JSON.stringify([...r.headers]));
  return r;
}

beforeAll(async () => {
  fake = new FakeSpinforge();
  await fake.start();
  s = await startServer({ env: { SPINFORGE_API_URL: fake.url, SPINFORGE_PARTNER_KEY: KEY, AGENT_ENV_PASSTHROUGH: 'SPINFORGE_PARTNER_KEY,SPINFORGE_API_URL' } });
  token = await s.token({ sub: 'alice', orgId: 'acme' });
});
afterAll(async () => {
  await s?.stop();
  await fake?.stop();
});

describe('deploy with the spinforge provider (against a real local HTTP server)', () => {
  it('uploads the zip and activates with the partner key in a header; the key appears in no response, log line, build env or agent env', async () => {
    writeWorkspace(s, 'acme', 'rocket', {
      '.vibe/project.json': projectJson('acme', 'rocket', { command: 'mkdir -p dist && echo "<p>rocket</p>" > dist/index.html && echo ENV-DUMP-BEGIN && env | sort && echo ENV-DUMP-END' }),
    });
    const r = await call('POST', '/api/deploy/spinforge/acme/rocket');
    expect(r.status).toBe(202);
    const sse = await SseClient.open(s.url, `/api/deploy/job/${r.body.jobId}/stream`, token);
    await sse.waitEnd();
    seen.push(sse.raw);
    expect(sse.end).toMatchObject({ status: 'succeeded', url: 'https://rocket.acme.spinforge.test' });

    const upload = fake.requests.find((q) => q.method === 'POST' && q.url === '/v1/sites/acme/rocket/deployments')!;
    expect(upload).toBeDefined();
    expect(upload.headers['x-partner-key']).toBe(KEY);
    expect(upload.headers['content-type']).toBe('application/zip');
    expect(upload.headers['x-deploy-job-id']).toBe(r.body.jobId);
    expect(upload.body.subarray(0, 4).toString('latin1')).toBe('PK\u0003\u0004');
    expect(upload.body.includes(Buffer.from('index.html'))).toBe(true);
    const activate = fake.requests.find((q) => q.method === 'POST' && /\/deployments\/dep-\d+\/activate$/.test(q.url))!;
    expect(activate.headers['x-partner-key']).toBe(KEY);
    expect(JSON.parse(activate.body.toString())).toEqual({ jobId: r.body.jobId });

    // The build ran with an allowlisted environment: no key, even though AGENT_ENV_PASSTHROUGH names it.
    const buildOut = sse.steps.filter((e) => e.step === 'build' && e.status === 'output').map((e) => e.message).join('');
    expect(buildOut).toContain('ENV-DUMP-END');
    expect(buildOut).toContain('CI=1');
    expect(buildOut).not.toContain('SPINFORGE_PARTNER_KEY');

    const job = await call('GET', `/api/deploy/job/${r.body.jobId}`);
    expect(job.body).toMatchObject({ status: 'succeeded', provider: 'spinforge', url: 'https://rocket.acme.spinforge.test' });
    await call('GET', '/api/deploy/jobs/acme/rocket');

    // Status passes the upstream answer on, with the echoed key redacted.
    const status = await call('GET', '/api/deploy/spinforge/acme/rocket/status');
    expect(status.status).toBe(200);
    expect(status.body).toMatchObject({ provider: 'spinforge', deployed: true, remote: { status: 'live' } });
    expect(status.body.remote.debug).toContain('[redacted]');
    expect((await call('GET', '/api/deploy/spinforge/acme/nosuch/status')).body.deployed).toBe(false);
    // An upstream error that quotes the key becomes a 502 without it.
    const sync = await call('POST', '/api/deploy/spinforge/acme/rocket/sync-aliases', { domains: ['rocket.example.com'] });
    expect(sync.status).toBe(502);
    expect(sync.body.error.code).toBe('provider_failed');
    expect(sync.body.error.message).toContain('alias sync failed');
    const syncReq = fake.requests.find((q) => q.url === '/v1/sites/acme/rocket/aliases/sync')!;
    expect(JSON.parse(syncReq.body.toString())).toEqual({ domains: ['rocket.example.com'] });
    expect((await call('POST', '/api/deploy/spinforge/acme/rocket/sync-aliases', { domains: ['not a host'] })).status).toBe(400);
    const del = await call('DELETE', '/api/deploy/spinforge/acme/rocket');
    expect(del.status).toBe(200);
    expect(del.body.undeployed).toBe(true);
    expect(fake.requests.find((q) => q.method === 'DELETE')!.headers['x-partner-key']).toBe(KEY);
    expect(fake.requests.every((q) => q.headers['x-partner-key'] === KEY)).toBe(true);

    // An agent session on this server: its environment has no key either.
    const sess = await call('POST', '/api/sessions', { orgId: 'acme', projectName: 'rocket', agent: 'bash' });
    const c = await Client.connect(s.wsUrl, { token });
    await c.attach(sess.body.id);
    c.send({ type: 'input', sessionId: sess.body.id, data: 'env | sort; echo AGENT-ENV-$((1+1))-DONE\r' });
    await c.waitForText(sess.body.id, 'AGENT-ENV-2-DONE');
    expect(c.text(sess.body.id)).toContain('SESSION_ID=');
    expect(c.text(sess.body.id)).not.toContain(KEY);
    expect(c.text(sess.body.id)).not.toContain('SPINFORGE_PARTNER_KEY');
    c.close();
    await call('DELETE', `/api/sessions/${sess.body.id}`);

    for (const text of seen) expect(text).not.toContain(KEY);
    await until(() => s.output.some((l) => l.includes('deploy ended')), 'the job to be logged');
    expect(s.output.join('\n')).not.toContain(KEY);
    // Nor in what the job persisted.
    const walk = (d: string): string[] => readdirSync(d).flatMap((n) => (statSync(path.join(d, n)).isDirectory() ? walk(path.join(d, n)) : [path.join(d, n)]));
    for (const f of walk(path.join(s.dataDir, 'deploy-jobs'))) expect(readFileSync(f, 'utf8')).not.toContain(KEY);
  });

  it('an unreachable SpinForge fails the upload step with provider_failed, not a hang', async () => {
    const down = await startServer({ env: { SPINFORGE_API_URL: 'http://127.0.0.1:9/v1', SPINFORGE_PARTNER_KEY: KEY } });
    try {
      const t = await down.token({ sub: 'alice', orgId: 'acme' });
      writeWorkspace(down, 'acme', 'offline', { 'index.html': 'x' });
      const r = await api(down, 'POST', '/api/deploy/spinforge/acme/offline', { token: t });
      const job = await waitJob(down, t, r.body.jobId);
      expect(job).toMatchObject({ status: 'failed', reason: 'provider_failed', step: 'upload' });
      expect(job.message).toMatch(/could not be reached/);
      expect(JSON.stringify(job)).not.toContain(KEY);
    } finally {
      await down.stop();
    }
  });
});

describe('spinforge configuration', () => {
  it('a key without SPINFORGE_API_URL does not stop the start; the provider answers 503 provider_not_configured', async () => {
    const half = await startServer({ env: { SPINFORGE_PARTNER_KEY: KEY } });
    try {
      const t = await half.token({ sub: 'alice', orgId: 'acme' });
      writeWorkspace(half, 'acme', 'p', { 'index.html': 'x' });
      for (const [method, p] of [
        ['POST', '/api/deploy/spinforge/acme/p'],
        ['GET', '/api/deploy/spinforge/acme/p/status'],
        ['POST', '/api/deploy/spinforge/acme/p/sync-aliases'],
        ['DELETE', '/api/deploy/spinforge/acme/p'],
      ] as const) {
        const r = await api(half, method, p, { token: t });
        expect(r.status, `${method} ${p}`).toBe(503);
        expect(r.body.error.code).toBe('provider_not_configured');
        expect(r.body.error.message).toContain('SPINFORGE_API_URL');
        expect(r.text).not.toContain(KEY);
      }
      expect((await api(half, 'GET', '/api/deploy/jobs/acme/p', { token: t })).body.items).toEqual([]);
      expect(half.output.join('\n')).not.toContain(KEY);
    } finally {
      await half.stop();
    }
  });
});
