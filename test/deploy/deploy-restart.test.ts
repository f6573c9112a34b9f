import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { api, pidAlive, startServer, until, type TestServer } from '../helpers/server.js';
import { projectJson, SseClient, writeWorkspace } from './helpers.js';

/** Start a deploy whose build prints a line and then sleeps; resolve once the line is an event. */
async function startStuckDeploy(s: TestServer, token: string, project: string): Promise<{ jobId: string; shellPid: number; sleepPid: number }> {
  writeWorkspace(s, 'acme', project, {
    '.vibe/project.json': projectJson('acme', project, { command: 'echo $$ > build.pid; sleep 300 & echo $! > sleep.pid; echo build-is-running; wait', timeoutMs: 600_000 }),
    'index.html': 'never',
  });
  const r = await api(s, 'POST', `/api/deploy/local/acme/${project}`, { token });
  expect(r.status).toBe(202);
  const jobId = r.body.jobId as string;
  await until(async () => {
    const j = await api(s, 'GET', `/api/deploy/job/${jobId}`, { token });
    return j.body.events?.some((e: any) => e.status === 'output' && e.message.includes('build-is-running'));
  }, 'the build to be running', 20_000, 50);
  const ws = path.join(s.workspaces, 'acme', project);
  return { jobId, shellPid: Number(readFileSync(path.join(ws, 'build.pid'), 'utf8')), sleepPid: Number(readFileSync(path.join(ws, 'sleep.pid'), 'utf8')) };
}

async function expectInterrupted(s: TestServer, token: string, jobId: string): Promise<void> {
  const j = await api(s, 'GET', `/api/deploy/job/${jobId}`, { token });
  expect(j.status).toBe(200);
  expect(j.body).toMatchObject({ status: 'failed', reason: 'interrupted', step: 'build' });
  const last = j.body.events[j.body.events.length - 1];
  expect(last).toMatchObject({ step: 'build', status: 'failed' });
  expect(last.message).toMatch(/interrupted/);
  expect(j.body.events.map((e: any) => e.seq)).toEqual(j.body.events.map((_: any, i: number) => i + 1));
  const sse = await SseClient.open(s.url, `/api/deploy/job/${jobId}/stream`, token);
  await sse.waitEnd();
  expect(sse.steps).toEqual(j.body.events);
  expect(sse.end).toMatchObject({ status: 'failed', reason: 'interrupted' });
  // The project is free again.
  expect((await api(s, 'POST', `/api/deploy/local/acme/${j.body.projectName}`, { token })).status).toBe(202);
}

describe('deploy across a restart', () => {
  it('a server killed mid-job (SIGKILL) marks the job failed/interrupted at boot and kills the orphaned build', async () => {
    const a = await startServer();
    const token = await a.token({ sub: 'alice', orgId: 'acme' });
    const { jobId, shellPid, sleepPid } = await startStuckDeploy(a, token, 'crashy');
    await a.stop('SIGKILL');
    // The build runs in its own process group, so it outlives a SIGKILLed server…
    expect(pidAlive(sleepPid)).toBe(true);
    const b = await startServer({ dir: a.dir });
    try {
      await expectInterrupted(b, token, jobId);
      // …until the next boot finds and kills it.
      await until(() => !pidAlive(shellPid) && !pidAlive(sleepPid), 'the orphaned build to be killed');
      expect(b.output.some((l) => l.includes('deploy job interrupted by a restart'))).toBe(true);
    } finally {
      await b.stop();
      for (const pid of [shellPid, sleepPid]) if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
    }
  });

  it('a graceful stop (SIGTERM) mid-job kills the build and records failed/interrupted before exiting', async () => {
    const a = await startServer();
    const token = await a.token({ sub: 'alice', orgId: 'acme' });
    const { jobId, shellPid, sleepPid } = await startStuckDeploy(a, token, 'polite');
    const follower = await SseClient.open(a.url, `/api/deploy/job/${jobId}/stream`, token);
    await follower.waitFor((c) => c.steps.length > 0, 'the follower to catch up');
    const stopped = await a.stop('SIGTERM');
    expect(stopped.code).toBe(0);
    await until(() => !pidAlive(shellPid) && !pidAlive(sleepPid), 'the build to be killed at shutdown');
    await follower.ended;
    expect(follower.end).toMatchObject({ status: 'failed', reason: 'interrupted' });
    const b = await startServer({ dir: a.dir });
    try {
      await expectInterrupted(b, token, jobId);
      expect(b.output.some((l) => l.includes('deploy job interrupted by a restart'))).toBe(false);
    } finally {
      await b.stop();
    }
  });
});
