/**
 * Two SIGKILL windows the kill-point run hits by chance, pinned so they are hit every time:
 * a deploy answered 202 and a session answered 201 must survive a kill that lands right
 * after the answer — the job is still known after the restart, the agent does not outlive
 * its node.
 */
import { afterAll, expect, it } from 'vitest';
import { api, pidAlive, sign, startServer, tempDir, until, type TestServer } from '../helpers/server.js';
import { killAll, leftoversUnder } from './helpers.js';

/** Tries per window: each one is a kill and a restart. */
const ATTEMPTS = 3;
const started: TestServer[] = [];
const dirs: string[] = [];

afterAll(async () => {
  for (const s of started) if (s.proc.exitCode === null && s.proc.signalCode === null) await s.stop('SIGKILL');
  for (const d of dirs) killAll(leftoversUnder(d).map((p) => p.pid));
});

const killNow = (s: TestServer) =>
  new Promise<void>((res) => {
    s.proc.once('exit', () => res());
    s.proc.kill('SIGKILL');
  });

it('a deploy job answered 202 is still known after a SIGKILL right after the answer', async () => {
  const dir = tempDir('sm-durable-');
  dirs.push(dir);
  const token = await sign({ sub: 'alice', orgId: 'acme' });
  const lost: string[] = [];
  for (let i = 0; i < ATTEMPTS; i++) {
    const s = await startServer({ dir, env: { LOG_LEVEL: 'warn' } });
    started.push(s);
    if (i === 0) await api(s, 'POST', '/api/dev-envs', { token, body: { orgId: 'acme', projectName: 'd', description: 'x' } });
    const r = await api(s, 'POST', '/api/deploy/local/acme/d', { token });
    expect(r.status).toBe(202);
    await killNow(s);
    const again = await startServer({ dir, env: { LOG_LEVEL: 'warn' } });
    started.push(again);
    const job = await api(again, 'GET', `/api/deploy/job/${r.body.jobId}`, { token });
    if (job.status !== 200) lost.push(`${r.body.jobId} → ${job.status}`);
    else expect(job.body.status).not.toBe('running');
    await again.stop();
  }
  expect(lost).toEqual([]);
}, 120_000);

it('a session answered 201 is known (lost) after a SIGKILL right after the answer, and its agent does not outlive the node', async () => {
  const dir = tempDir('sm-durable-');
  dirs.push(dir);
  const token = await sign({ sub: 'alice', orgId: 'acme' });
  const survivors: string[] = [];
  for (let i = 0; i < ATTEMPTS; i++) {
    const s = await startServer({ dir, env: { LOG_LEVEL: 'warn' } });
    started.push(s);
    // An agent that ignores the hang-up its pty sends when the node dies.
    const r = await api(s, 'POST', '/api/sessions', { token, body: { orgId: 'acme', projectName: 'a', agent: 'script', command: "trap '' HUP TERM; exec sleep 600" } });
    expect(r.status).toBe(201);
    await killNow(s);
    const again = await startServer({ dir, env: { LOG_LEVEL: 'warn' } });
    started.push(again);
    const got = await api(again, 'GET', `/api/sessions/${r.body.id}`, { token });
    const rec = got.body;
    if (got.status !== 200) survivors.push(`session ${r.body.id} (answered 201) unknown after restart: ${got.status}`);
    else if (rec.status !== 'lost') survivors.push(`session ${r.body.id} is ${rec.status} after restart, not lost`);
    const gone = await until(() => !pidAlive(r.body.pid), `agent ${r.body.pid} reaped`, 3000).then(() => true, () => false);
    if (!gone) survivors.push(`agent pid ${r.body.pid} of session ${r.body.id} alive after restart (record pid ${rec.pid ?? 'none'})`);
    killAll([r.body.pid]);
    await again.stop();
  }
  expect(survivors).toEqual([]);
}, 120_000);
