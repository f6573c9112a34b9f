import { existsSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, pidAlive, startServer, until, type TestServer } from '../helpers/server.js';
import { Client } from '../helpers/ws.js';
import { projectJson, SseClient, waitJob, writeWorkspace } from './helpers.js';

let s: TestServer;
let token: string;

beforeAll(async () => {
  s = await startServer();
  token = await s.token({ sub: 'alice', orgId: 'acme' });
});
afterAll(async () => {
  await s?.stop();
});

const STEPS = ['prepare', 'build', 'package', 'upload', 'activate'];

describe('deploy with the local provider', () => {
  it('runs every step, publishes build.output and serves it at /sites/; editors see deploy:step', async () => {
    writeWorkspace(s, 'acme', 'shop', {
      '.vibe/project.json': projectJson('acme', 'shop', {
        command: 'mkdir -p out/css && printf "<h1>built shop</h1>" > out/index.html && printf "body{}" > out/css/app.css && printf "SECRET=1" > out/.env && echo build-says-hello',
        output: 'out',
      }),
      'src/main.txt': 'source, not published',
    });
    const editor = await Client.connect(s.wsUrl, { token });
    editor.send({ type: 'subscribe', topic: 'project:acme/shop' });
    editor.send({ type: 'ping', ref: 'sub' });
    await editor.next((f) => f.type === 'pong' && f.ref === 'sub', 'subscription to settle');

    const started = await api(s, 'POST', '/api/deploy/local/acme/shop', { token });
    expect(started.status).toBe(202);
    const jobId = started.body.jobId as string;
    expect(jobId).toMatch(/^[0-9a-f-]{36}$/);

    const sse = await SseClient.open(s.url, `/api/deploy/job/${jobId}/stream`, token);
    expect(sse.status).toBe(200);
    expect(sse.headers!.get('content-type')).toMatch(/^text\/event-stream/);
    await sse.waitEnd();
    expect(sse.end).toMatchObject({ jobId, status: 'succeeded' });
    const steps = sse.steps;
    expect(steps.map((e) => e.seq)).toEqual(steps.map((_, i) => i + 1));
    expect(sse.messages.filter((m) => m.event === 'step').map((m) => Number(m.id))).toEqual(steps.map((e) => e.seq));
    for (const e of steps) expect(Object.keys(e).sort()).toEqual(['at', 'jobId', 'message', 'seq', 'status', 'step']);
    for (const step of STEPS) expect(steps.some((e) => e.step === step && e.status === 'succeeded')).toBe(true);
    expect(steps.filter((e) => e.status === 'started').map((e) => e.step)).toEqual(STEPS);
    expect(steps.some((e) => e.step === 'build' && e.status === 'output' && e.message.includes('build-says-hello'))).toBe(true);

    const site = await fetch(`${s.url}/sites/acme/shop/`);
    expect(site.status).toBe(200);
    expect(site.headers.get('content-type')).toMatch(/text\/html/);
    expect(await site.text()).toBe('<h1>built shop</h1>');
    // Builders' pages run sandboxed (opaque origin): they cannot read the control center's storage.
    expect(site.headers.get('content-security-policy')).toMatch(/^sandbox /);
    expect(site.headers.get('content-security-policy')).not.toContain('allow-same-origin');
    const etag = site.headers.get('etag')!;
    expect((await fetch(`${s.url}/sites/acme/shop/`, { headers: { 'if-none-match': etag } })).status).toBe(304);
    const css = await fetch(`${s.url}/sites/acme/shop/css/app.css`);
    expect(css.headers.get('content-type')).toMatch(/text\/css/);
    expect(await css.text()).toBe('body{}');
    const bare = await fetch(`${s.url}/sites/acme/shop`, { redirect: 'manual' });
    expect(bare.status).toBe(301);
    expect(bare.headers.get('location')).toBe('/sites/acme/shop/');
    // Dotfiles are neither published nor served; the source tree outside build.output is not published.
    expect((await fetch(`${s.url}/sites/acme/shop/.env`)).status).toBe(404);
    expect((await fetch(`${s.url}/sites/acme/shop/src/main.txt`)).status).toBe(404);
    expect((await fetch(`${s.url}/sites/acme/shop/..%2f..%2f..%2fdata`)).status).toBe(404);
    expect((await fetch(`${s.url}/sites/acme/shop/css%2f..%2f..%2fshop/index.html`)).status).toBe(404);
    expect((await fetch(`${s.url}/sites/acme/nope/`)).status).toBe(404);

    const job = await api(s, 'GET', `/api/deploy/job/${jobId}`, { token });
    expect(job.body).toMatchObject({ id: jobId, status: 'succeeded', provider: 'local', orgId: 'acme', projectName: 'shop', url: `${s.url}/sites/acme/shop/` });
    expect(job.body.events).toEqual(steps);
    const list = await api(s, 'GET', '/api/deploy/jobs/acme/shop', { token });
    expect(list.status).toBe(200);
    expect(list.body.items.map((j: any) => j.id)).toContain(jobId);
    const status = await api(s, 'GET', '/api/deploy/local/acme/shop/status', { token });
    expect(status.body).toMatchObject({ provider: 'local', deployed: true, jobId, url: `${s.url}/sites/acme/shop/` });

    // The editor subscribed to the project's topic saw every step event, in order.
    await until(() => editor.frames.filter((f) => f.type === 'event' && f.name === 'deploy:step').length >= steps.length, 'deploy:step frames');
    const seen = editor.frames.filter((f) => f.type === 'event' && f.name === 'deploy:step' && f.payload.jobId === jobId).map((f) => f.payload);
    expect(seen.map((p) => p.seq)).toEqual(steps.map((e) => e.seq));
    expect(seen[0]).toMatchObject({ orgId: 'acme', projectName: 'shop', provider: 'local' });
    editor.close();
  });

  it('without a build command publishes dist/ if present, else the workspace minus dotfiles', async () => {
    const ws = writeWorkspace(s, 'acme', 'plain', { 'index.html': 'plain site', '.env': 'TOKEN=x', '.git/config': '[core]', 'node_modules/x/index.js': 'x', 'about/index.html': 'about' });
    const big = Buffer.alloc(3 * 1024 * 1024 + 17);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7919) % 251;
    writeFileSync(path.join(ws, 'big.bin'), big);
    symlinkSync('/etc/passwd', path.join(ws, 'passwd'));
    symlinkSync('/etc', path.join(ws, 'etc'));
    const a = await api(s, 'POST', '/api/deploy/local/acme/plain', { token });
    const done = await waitJob(s, token, a.body.jobId);
    expect(done.status).toBe('succeeded');
    expect(done.events.filter((e: any) => e.step === 'build').map((e: any) => e.status)).toEqual(['started', 'skipped']);
    expect(await (await fetch(`${s.url}/sites/acme/plain/`)).text()).toBe('plain site');
    expect(await (await fetch(`${s.url}/sites/acme/plain/about/`)).text()).toBe('about');
    expect((await fetch(`${s.url}/sites/acme/plain/.env`)).status).toBe(404);
    expect((await fetch(`${s.url}/sites/acme/plain/.git/config`)).status).toBe(404);
    expect((await fetch(`${s.url}/sites/acme/plain/node_modules/x/index.js`)).status).toBe(404);
    const release = readlinkSafe(path.join(s.dir, 'deploys', 'acme', 'plain'));
    expect(existsSync(path.join(release, '.env'))).toBe(false);
    // Symlinks in the workspace are not followed out of it.
    expect((await fetch(`${s.url}/sites/acme/plain/passwd`)).status).toBe(404);
    expect((await fetch(`${s.url}/sites/acme/plain/etc/hostname`)).status).toBe(404);
    // A file above the inline limit is streamed whole.
    const got = await fetch(`${s.url}/sites/acme/plain/big.bin`);
    expect(got.status).toBe(200);
    expect(got.headers.get('content-type')).toBe('application/octet-stream');
    expect(Buffer.from(await got.arrayBuffer()).equals(big)).toBe(true);

    writeWorkspace(s, 'acme', 'plain', { 'dist/index.html': 'from dist' });
    const b = await api(s, 'POST', '/api/deploy/local/acme/plain', { token });
    expect((await waitJob(s, token, b.body.jobId)).status).toBe('succeeded');
    expect(await (await fetch(`${s.url}/sites/acme/plain/`)).text()).toBe('from dist');
    expect((await fetch(`${s.url}/sites/acme/plain/about/`)).status).toBe(404);
  });

  it('a failing build command fails the job with its output in the events, and publishes nothing', async () => {
    writeWorkspace(s, 'acme', 'broken', {
      '.vibe/project.json': projectJson('acme', 'broken', { command: 'echo compiling-things; echo "error: missing semicolon at 3:14" >&2; exit 3' }),
      'index.html': 'never published',
    });
    const r = await api(s, 'POST', '/api/deploy/local/acme/broken', { token });
    const sse = await SseClient.open(s.url, `/api/deploy/job/${r.body.jobId}/stream`, token);
    await sse.waitEnd();
    expect(sse.end).toMatchObject({ status: 'failed', reason: 'build_failed' });
    const out = sse.steps.filter((e) => e.step === 'build' && e.status === 'output').map((e) => e.message).join('');
    expect(out).toContain('compiling-things');
    expect(out).toContain('error: missing semicolon at 3:14');
    const last = sse.steps[sse.steps.length - 1];
    expect(last).toMatchObject({ step: 'build', status: 'failed' });
    expect(last.message).toContain('exited with code 3');
    expect(sse.steps.some((e) => e.step === 'package')).toBe(false);
    const job = await api(s, 'GET', `/api/deploy/job/${r.body.jobId}`, { token });
    expect(job.body).toMatchObject({ status: 'failed', reason: 'build_failed' });
    expect((await fetch(`${s.url}/sites/acme/broken/`)).status).toBe(404);
  });

  it('a build past its timeout is killed with its whole process group', async () => {
    writeWorkspace(s, 'acme', 'slow', {
      '.vibe/project.json': projectJson('acme', 'slow', { command: 'echo $$ > build.pid; sleep 300 & echo $! > child.pid; wait', timeoutMs: 500 }),
    });
    const r = await api(s, 'POST', '/api/deploy/local/acme/slow', { token });
    const done = await waitJob(s, token, r.body.jobId);
    expect(done).toMatchObject({ status: 'failed', reason: 'build_timeout' });
    const ws = path.join(s.workspaces, 'acme', 'slow');
    const shellPid = Number(readFileSync(path.join(ws, 'build.pid'), 'utf8'));
    const childPid = Number(readFileSync(path.join(ws, 'child.pid'), 'utf8'));
    await until(() => !pidAlive(shellPid) && !pidAlive(childPid), 'build processes to be gone');
  });

  it('one running deploy per project: a second POST is 409 with the running job id', async () => {
    writeWorkspace(s, 'acme', 'gate', {
      '.vibe/project.json': projectJson('acme', 'gate', { command: 'i=0; while [ ! -f go ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; echo gate-open', timeoutMs: 60_000 }),
      'index.html': 'gated',
    });
    const first = await api(s, 'POST', '/api/deploy/local/acme/gate', { token });
    expect(first.status).toBe(202);
    const second = await api(s, 'POST', '/api/deploy/local/acme/gate', { token });
    expect(second.status).toBe(409);
    expect(second.body.error.code).toBe('deploy_running');
    expect(second.body.error.details.jobId).toBe(first.body.jobId);
    const undeploy = await api(s, 'DELETE', '/api/deploy/local/acme/gate', { token });
    expect(undeploy.status).toBe(409);
    // Another project deploys meanwhile.
    writeWorkspace(s, 'acme', 'other', { 'index.html': 'other' });
    expect((await api(s, 'POST', '/api/deploy/local/acme/other', { token })).status).toBe(202);
    // A heartbeat comment arrives on a quiet stream (15 s in production; shortened by a test hook).
    const quiet = await SseClient.open(s.url, `/api/deploy/job/${first.body.jobId}/stream?heartbeatMs=50`, token);
    await quiet.waitFor((c) => c.comments.includes('heartbeat'), 'a heartbeat comment');
    writeFileSync(path.join(s.workspaces, 'acme', 'gate', 'go'), '');
    await quiet.waitEnd();
    expect(quiet.end.status).toBe('succeeded');
    expect((await waitJob(s, token, first.body.jobId)).status).toBe('succeeded');
    const third = await api(s, 'POST', '/api/deploy/local/acme/gate', { token });
    expect(third.status).toBe(202);
    expect((await waitJob(s, token, third.body.jobId)).status).toBe('succeeded');
  });

  it('undeploy removes the site; status and sync-aliases answer for local', async () => {
    writeWorkspace(s, 'acme', 'gone', { 'index.html': 'soon gone' });
    const r = await api(s, 'POST', '/api/deploy/local/acme/gone', { token });
    expect((await waitJob(s, token, r.body.jobId)).status).toBe('succeeded');
    const sync = await api(s, 'POST', '/api/deploy/local/acme/gone/sync-aliases', { token });
    expect(sync.status).toBe(200);
    expect(sync.body.aliases).toEqual([]);
    const del = await api(s, 'DELETE', '/api/deploy/local/acme/gone', { token });
    expect(del.status).toBe(200);
    expect(del.body.undeployed).toBe(true);
    expect((await fetch(`${s.url}/sites/acme/gone/`)).status).toBe(404);
    expect((await api(s, 'GET', '/api/deploy/local/acme/gone/status', { token })).body.deployed).toBe(false);
    const again = await api(s, 'DELETE', '/api/deploy/local/acme/gone', { token });
    expect(again.status).toBe(404);
    expect(again.body.error.code).toBe('not_deployed');
  });

  it('refuses bad input in the documented order: 400 names, 404 provider, 403 org, 404 workspace and jobs', async () => {
    const bad = await api(s, 'POST', '/api/deploy/local/acme/-bad', { token });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('invalid_name');
    const unknown = await api(s, 'POST', '/api/deploy/netlify/acme/shop', { token });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('unknown_provider');
    const other = await s.token({ sub: 'mallory', orgId: 'evil' });
    expect((await api(s, 'POST', '/api/deploy/local/acme/shop', { token: other })).status).toBe(403);
    expect((await api(s, 'GET', '/api/deploy/jobs/acme/shop', { token: other })).status).toBe(403);
    const missing = await api(s, 'POST', '/api/deploy/local/acme/no-such-project', { token });
    expect(missing.status).toBe(404);
    const jobs = await api(s, 'GET', '/api/deploy/jobs/acme/shop', { token });
    const id = jobs.body.items[0].id;
    expect((await api(s, 'GET', `/api/deploy/job/${id}`, { token: other })).status).toBe(404);
    expect((await api(s, 'GET', `/api/deploy/job/${id}/stream`, { token: other })).status).toBe(404);
    expect((await api(s, 'GET', '/api/deploy/job/not-a-uuid', { token })).body.error.code).toBe('deploy_job_not_found');
    expect((await api(s, 'GET', `/api/deploy/job/${id}`)).status).toBe(401);
    const spin = await api(s, 'POST', '/api/deploy/spinforge/acme/shop', { token });
    expect(spin.status).toBe(503);
    expect(spin.body.error.code).toBe('provider_not_configured');
    const badResume = await api(s, 'GET', `/api/deploy/job/${id}/stream`, { token, headers: { 'last-event-id': 'abc' } });
    expect(badResume.status).toBe(400);
  });
});

/** The live site is a symlink to its release folder. */
function readlinkSafe(p: string): string {
  return path.resolve(path.dirname(p), readlinkSync(p));
}
