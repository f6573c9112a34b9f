import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startServer, type TestServer } from '../helpers/server.js';
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

const seqs = (c: SseClient) => c.steps.map((e) => e.seq as number);
const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);

describe('deploy SSE stream', () => {
  it('Last-Event-ID (header or ?lastEventId=) resumes exactly after that event; past the end sends end again', async () => {
    writeWorkspace(s, 'acme', 'resume', {
      '.vibe/project.json': projectJson('acme', 'resume', { command: 'for i in 1 2 3 4 5; do echo line-$i; sleep 0.15; done' }),
      'index.html': 'resume',
    });
    const r = await api(s, 'POST', '/api/deploy/local/acme/resume', { token });
    const job = await waitJob(s, token, r.body.jobId);
    expect(job.status).toBe('succeeded');
    const n = job.events.length as number;
    expect(n).toBeGreaterThan(10);
    const streamPath = `/api/deploy/job/${job.id}/stream`;

    const full = await SseClient.open(s.url, streamPath, token);
    await full.waitEnd();
    expect(seqs(full)).toEqual(range(1, n));
    expect(full.steps).toEqual(job.events);
    expect(full.end).toMatchObject({ jobId: job.id, status: 'succeeded', lastSeq: n });
    expect(full.messages[full.messages.length - 1]!.event).toBe('end');

    for (const k of [1, 3, Math.floor(n / 2), n - 1]) {
      const viaHeader = await SseClient.open(s.url, streamPath, token, { 'last-event-id': String(k) });
      await viaHeader.waitEnd();
      expect(seqs(viaHeader)).toEqual(range(k + 1, n));
      expect(viaHeader.steps).toEqual(job.events.slice(k));
      expect(viaHeader.end.status).toBe('succeeded');
      const viaQuery = await SseClient.open(s.url, `${streamPath}?lastEventId=${k}`, token);
      await viaQuery.waitEnd();
      expect(seqs(viaQuery)).toEqual(range(k + 1, n));
    }
    for (const k of [n, n + 5]) {
      const past = await SseClient.open(s.url, streamPath, token, { 'last-event-id': String(k) });
      await past.waitEnd();
      expect(past.steps).toEqual([]);
      expect(past.messages.map((m) => m.event)).toEqual(['end']);
      expect(past.end.status).toBe('succeeded');
    }
  });

  it('a reader that drops mid-job and resumes with its last id gets every event exactly once', async () => {
    writeWorkspace(s, 'acme', 'live', {
      '.vibe/project.json': projectJson('acme', 'live', {
        command: 'i=0; while [ $i -lt 12 ]; do echo tick-$i; i=$((i+1)); sleep 0.1; done; while [ ! -f go ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; echo done-ticking',
        timeoutMs: 60_000,
      }),
      'index.html': 'live',
    });
    const r = await api(s, 'POST', '/api/deploy/local/acme/live', { token });
    const streamPath = `/api/deploy/job/${r.body.jobId}/stream`;
    const first = await SseClient.open(s.url, streamPath, token);
    await first.waitFor((c) => c.steps.some((e) => e.status === 'output' && e.message.includes('tick-3')), 'a few build lines');
    first.close();
    await first.ended;
    const lastId = Number(first.messages.filter((m) => m.id !== undefined).pop()!.id);
    expect(lastId).toBe(seqs(first)[seqs(first).length - 1]);

    const second = await SseClient.open(s.url, streamPath, token, { 'last-event-id': String(lastId) });
    await second.waitFor((c) => c.steps.length > 0, 'events after the resume point');
    writeFileSync(path.join(s.workspaces, 'acme', 'live', 'go'), '');
    await second.waitEnd();
    expect(second.end.status).toBe('succeeded');
    const all = [...seqs(first), ...seqs(second)];
    expect(all).toEqual(range(1, all.length));
    const job = await api(s, 'GET', `/api/deploy/job/${r.body.jobId}`, { token });
    expect([...first.steps, ...second.steps]).toEqual(job.body.events);
    const text = job.body.events.filter((e: any) => e.status === 'output').map((e: any) => e.message).join('');
    for (let i = 0; i < 12; i++) expect(text).toContain(`tick-${i}\n`);
  });

  it('100 concurrent listeners each receive every event once, in order (throughput logged)', async () => {
    writeWorkspace(s, 'acme', 'fanout', {
      '.vibe/project.json': projectJson('acme', 'fanout', {
        command: 'while [ ! -f go ]; do sleep 0.05; done; i=0; while [ $i -lt 40 ]; do echo fan-$i; i=$((i+1)); sleep 0.12; done',
        timeoutMs: 120_000,
      }),
      'index.html': 'fanout',
    });
    const r = await api(s, 'POST', '/api/deploy/local/acme/fanout', { token });
    const streamPath = `/api/deploy/job/${r.body.jobId}/stream`;
    const listeners = await Promise.all(Array.from({ length: 100 }, () => SseClient.open(s.url, streamPath, token)));
    await Promise.all(listeners.map((l) => l.waitFor((c) => c.steps.some((e) => e.step === 'build' && e.status === 'started'), 'build started')));
    const t0 = performance.now();
    writeFileSync(path.join(s.workspaces, 'acme', 'fanout', 'go'), '');
    await Promise.all(listeners.map((l) => l.waitEnd(60_000)));
    const liveMs = performance.now() - t0;
    const job = await api(s, 'GET', `/api/deploy/job/${r.body.jobId}`, { token });
    const n = job.body.events.length as number;
    for (const l of listeners) {
      expect(seqs(l)).toEqual(range(1, n));
      expect(l.end.status).toBe('succeeded');
    }
    const liveEvents = listeners.reduce((m, l) => m + l.steps.length, 0);

    // Replay throughput: 100 readers of the finished job at once, from seq 0.
    const t1 = performance.now();
    const replays = await Promise.all(Array.from({ length: 100 }, () => SseClient.open(s.url, streamPath, token)));
    await Promise.all(replays.map((l) => l.waitEnd(60_000)));
    const replayMs = performance.now() - t1;
    for (const l of replays) expect(seqs(l)).toEqual(range(1, n));
    console.log(
      `[measure] SSE live: ${liveEvents} events to 100 listeners in ${liveMs.toFixed(0)} ms (build-paced); ` +
        `replay: ${n * 100} events to 100 readers in ${replayMs.toFixed(0)} ms = ${Math.round((n * 100) / (replayMs / 1000))} events/s incl. connection setup`,
    );
  });
});
