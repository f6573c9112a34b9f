/**
 * SIGKILL the supervisor at seeded random moments while clients stream planner writes,
 * conversation appends, session creates and deploys; restart on the same directories each
 * time. After every restart: no torn JSON anywhere under DATA_DIR or a workspace's .vibe/,
 * every acknowledged write present, every session of an earlier life `lost`, no deploy job
 * stuck `running`, every acknowledged deploy job still known, no agent or build outliving
 * the node that ran it. `FAULT_SEED` replays a run; `KILL_POINTS` sets how many.
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { api, startServer, tempDir, until, type TestServer } from '../helpers/server.js';
import { auditJson, killAll, leftoversUnder, prng, type Audit } from './helpers.js';

const SEED = Number(process.env.FAULT_SEED ?? 8_2026);
const KILL_POINTS = Number(process.env.KILL_POINTS ?? 24);
/** Kill moments are drawn from this window after the workload starts (ms). */
const KILL_MIN_MS = 20;
const KILL_MAX_MS = 900;
/** Requests in flight when the node dies are cut by the kill; this only bounds a stuck one. */
const REQUEST_TIMEOUT_MS = 8_000;

const ORG = 'acme';
const PROJECT = 'kp';
const rand = prng(SEED);
const dir = tempDir('sm-kill-');
const started: TestServer[] = [];

interface Acked {
  logs: Array<{ cardId: string; message: string; version: number }>;
  turns: string[];
  sessions: string[];
  jobs: string[];
  conversationId: string;
}
const acked: Acked = { logs: [], turns: [], sessions: [], jobs: [], conversationId: '' };

/** What each verification found, for the figure in docs/reliability.md. */
const figures = { lives: 0, killPoints: 0, ackedPlanner: 0, ackedTurns: 0, ackedSessions: 0, ackedJobs: 0, lostSessions: 0, interruptedJobs: 0, jsonChecked: 0, jsonlLines: 0, tempFilesLeft: 0 };
const problems: string[] = [];

afterAll(async () => {
  for (const s of started) if (s.proc.exitCode === null && s.proc.signalCode === null) await s.stop('SIGKILL');
  // Whatever outlived its node is reaped here by pid, so a failing run leaves nothing behind.
  killAll(leftoversUnder(dir).map((p) => p.pid));
});

async function call(s: TestServer, token: string, method: string, p: string, body?: unknown): Promise<{ status: number; body: any } | undefined> {
  try {
    const res = await fetch(s.url + p, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  } catch {
    // Cut by the kill: not acknowledged.
    return undefined;
  }
}

/** The writers of one life: they run until the node dies under them. */
function workload(s: TestServer, token: string, life: number): { stop: () => void; done: Promise<void> } {
  let running = true;
  const loop = async (fn: (n: number) => Promise<void>) => {
    for (let n = 0; running; n++) await fn(n);
  };
  const planner = (cardId: string) =>
    loop(async (n) => {
      const message = `L${life}-${cardId}-${n}`;
      const r = await call(s, token, 'POST', `/api/planner/${ORG}/${PROJECT}/cards/${cardId}/logs`, { message });
      if (r?.status === 201) acked.logs.push({ cardId, message, version: r.body.version });
      else if (!r) running = false;
    });
  const turns = loop(async (n) => {
    const id = `t${life}-${n}`;
    const r = await call(s, token, 'POST', `/api/conversations/${ORG}/${PROJECT}/${acked.conversationId}/messages`, { role: 'user', content: `turn ${id}`, id });
    if (r?.status === 201) acked.turns.push(id);
    else if (!r) running = false;
  });
  const sessions = loop(async () => {
    const r = await call(s, token, 'POST', '/api/sessions', { orgId: ORG, projectName: PROJECT, agent: 'script', command: "trap '' HUP TERM; exec sleep 600" });
    if (r && (r.status === 201 || r.status === 202)) acked.sessions.push(r.body.id);
    else if (!r) running = false;
    await new Promise((res) => setTimeout(res, 40));
  });
  const deploys = loop(async () => {
    const r = await call(s, token, 'POST', `/api/deploy/local/${ORG}/${PROJECT}`);
    if (r?.status === 202) acked.jobs.push(r.body.jobId);
    else if (!r) running = false;
    await new Promise((res) => setTimeout(res, 30));
  });
  return {
    stop: () => {
      running = false;
    },
    done: Promise.all([planner('c1'), planner('c2'), turns, sessions, deploys]).then(() => undefined),
  };
}

/** Everything that must hold on a freshly restarted node. */
async function verify(s: TestServer, token: string, life: number, previousSessions: Set<string>): Promise<void> {
  const where = `after kill ${life}`;
  const audit: Audit = auditJson([s.dataDir, path.join(s.workspaces, ORG, PROJECT, '.vibe')]);
  figures.jsonChecked += audit.jsonFiles;
  figures.jsonlLines += audit.jsonlLines;
  figures.tempFilesLeft = audit.tempFiles.length;
  for (const f of audit.torn) problems.push(`torn JSON ${path.relative(dir, f)}`);
  for (const f of audit.tornLines) problems.push(`torn log line ${path.relative(dir, f)}`);
  for (const f of audit.tornTails) problems.push(`torn last log line ${path.relative(dir, f)}`);

  // Planner: every acknowledged log, at a version no older than acknowledged.
  const planner = await api(s, 'GET', `/api/planner/${ORG}/${PROJECT}`, { token });
  if (planner.status !== 200) problems.push(`${where}: planner → ${planner.status} ${planner.text.slice(0, 120)}`);
  else {
    const have = new Set<string>(planner.body.cards.flatMap((c: any) => c.logs.map((l: any) => `${c.id}/${l.message}`)));
    const missing = acked.logs.filter((l) => !have.has(`${l.cardId}/${l.message}`));
    for (const m of missing) problems.push(`acknowledged planner log ${m.message} missing after restart`);
    const maxVersion = Math.max(0, ...acked.logs.map((l) => l.version));
    if (planner.body.version < maxVersion) problems.push(`${where}: planner version ${planner.body.version} < acknowledged ${maxVersion}`);
  }

  // Conversation: every acknowledged turn, and a header that agrees with its log.
  const conv = await api(s, 'GET', `/api/conversations/${ORG}/${PROJECT}/${acked.conversationId}`, { token });
  if (conv.status !== 200) problems.push(`${where}: conversation → ${conv.status}`);
  else {
    const ids = new Set(conv.body.messages.map((m: any) => m.id));
    const missing = acked.turns.filter((t) => !ids.has(t));
    for (const m of missing) problems.push(`acknowledged turn ${m} missing after restart`);
    if (conv.body.messageCount !== conv.body.messages.length) problems.push(`${where}: conversation header says ${conv.body.messageCount} messages, its log holds ${conv.body.messages.length}`);
  }

  // Sessions: every one of an earlier life is known and ended; none still counts as live.
  const list = await api(s, 'GET', `/api/sessions?orgId=${ORG}&projectName=${PROJECT}`, { token });
  const byId = new Map<string, any>(list.body.items.map((r: any) => [r.id, r]));
  for (const id of acked.sessions) if (!byId.has(id)) problems.push(`acknowledged session ${id} unknown after restart`);
  for (const r of byId.values()) {
    if (!previousSessions.has(r.id)) continue;
    if (['running', 'starting', 'queued'].includes(r.status)) problems.push(`${where}: session ${r.id} of an earlier life is ${r.status}`);
  }
  figures.lostSessions = [...byId.values()].filter((r) => r.status === 'lost').length;

  // Deploys: nothing stuck running, every acknowledged job still known.
  const jobs = await api(s, 'GET', `/api/deploy/jobs/${ORG}/${PROJECT}?limit=500`, { token });
  const jobIds = new Set<string>(jobs.body.items.map((j: any) => j.id));
  for (const j of jobs.body.items) if (j.status === 'running') problems.push(`${where}: deploy job ${j.id} stuck running`);
  figures.interruptedJobs = jobs.body.items.filter((j: any) => j.reason === 'interrupted').length;
  for (const id of acked.jobs) if (!jobIds.has(id)) problems.push(`acknowledged deploy job ${id} (202) unknown after restart`);

  // No agent or build of an earlier life outlives its node (the new node is not yet busy).
  const orphans = await until(
    async () => {
      const left = leftoversUnder(dir, s.pid);
      return left.length === 0 ? [] : Date.now() - t0 > 3000 ? left : undefined;
    },
    'leftovers to be reaped',
    10_000,
    100,
  ).catch(() => leftoversUnder(dir, s.pid));
  for (const p of orphans) {
    const sid = p.env.find((e) => e.startsWith('SESSION_ID='))?.slice('SESSION_ID='.length);
    const rec = sid ? byId.get(sid) : undefined;
    const what = sid ? `agent of session ${sid} (record: status ${rec?.status ?? 'none'}, pid ${rec?.pid ?? 'none'})` : p.env.some((e) => e.startsWith('SM_DEPLOY_JOB_ID=')) ? 'deploy build' : 'process';
    problems.push(`orphan ${what} [${p.cmd.slice(0, 40)}] outlived its node (${where})`);
  }
  killAll(orphans.map((p) => p.pid));
}
let t0 = 0;

it(`${KILL_POINTS} SIGKILLs at seeded moments (seed ${SEED}): nothing torn, nothing acknowledged lost, nothing left running`, async () => {
  const token = await (await import('../helpers/server.js')).sign({ sub: 'alice', orgId: ORG });
  const seen = new Set<string>();
  for (let life = 0; life <= KILL_POINTS; life++) {
    const s = await startServer({ dir, env: { LOG_LEVEL: 'warn', MAX_CONCURRENT_SESSIONS: '30', MAX_QUEUE: '10000' } });
    started.push(s);
    figures.lives++;
    if (life === 0) {
      // The project, its cards and a conversation; a build slow enough to be cut mid-job.
      await api(s, 'POST', '/api/dev-envs', { token, body: { orgId: ORG, projectName: PROJECT, description: 'kill points' } });
      mkdirSync(path.join(s.workspaces, ORG, PROJECT, '.vibe'), { recursive: true });
      writeFileSync(
        path.join(s.workspaces, ORG, PROJECT, '.vibe', 'project.json'),
        JSON.stringify({ orgId: ORG, projectName: PROJECT, createdBy: 'alice', createdAt: new Date().toISOString(), build: { command: 'sleep 0.2; mkdir -p dist; date > dist/index.html' } }),
      );
      for (const id of ['c1', 'c2']) await api(s, 'POST', `/api/planner/${ORG}/${PROJECT}/cards`, { token, body: { id, title: id } });
      acked.conversationId = (await api(s, 'POST', `/api/conversations/${ORG}/${PROJECT}`, { token, body: { title: 'kills' } })).body.id;
    } else {
      t0 = Date.now();
      await verify(s, token, life, seen);
    }
    if (life === KILL_POINTS) break;
    for (const id of acked.sessions) seen.add(id);
    const w = workload(s, token, life);
    const delay = KILL_MIN_MS + Math.floor(rand() * (KILL_MAX_MS - KILL_MIN_MS));
    await new Promise((res) => setTimeout(res, delay));
    s.proc.kill('SIGKILL');
    await new Promise<void>((res) => (s.proc.exitCode !== null || s.proc.signalCode !== null ? res() : s.proc.once('exit', () => res())));
    figures.killPoints++;
    w.stop();
    await w.done;
    for (const id of acked.sessions) seen.add(id);
  }
  figures.ackedPlanner = acked.logs.length;
  figures.ackedTurns = acked.turns.length;
  figures.ackedSessions = acked.sessions.length;
  figures.ackedJobs = acked.jobs.length;
  console.log(`kill-points: ${JSON.stringify(figures)}`);
  expect(figures.killPoints).toBeGreaterThanOrEqual(20);
  expect(acked.logs.length + acked.turns.length + acked.sessions.length + acked.jobs.length).toBeGreaterThan(100);
  expect([...new Set(problems)].slice(0, 30)).toEqual([]);
}, 240_000);
