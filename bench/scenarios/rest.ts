/**
 * rest: REST under autocannon, two halves on the same server: `GET /api/sessions` (listing
 * R sessions), then `PATCH /api/planner/:orgId/:projectName/cards/:cardId` (a JSON merge of
 * card fields, each one a versioned write of `.vibe/planner.json`) rotating over a few cards
 * of one planner. Same connections and duration for both halves, each after a warm-up.
 */
import { createRequire } from 'node:module';
import { call } from '../adapters/http.js';
import type { PlannerCard } from '../adapters/types.js';
import { fmt, ratio, withServer, type ScenarioDef } from '../lib/scenario.js';

/** What this bench reads from an autocannon result. */
interface CannonResult {
  requests: { average: number; total: number };
  latency: { p50: number; p99: number; max: number };
  errors: number;
  timeouts: number;
  non2xx: number;
  '2xx': number;
}

type Cannon = (opts: Record<string, unknown>, cb: (err: Error | null, r: CannonResult) => void) => unknown;

const autocannon = createRequire(import.meta.url)('autocannon') as Cannon;

/** The project whose planner is patched (the sessions' project). */
const PLANNER_PROJECT = 'bench';
/** Cards in the planner; the PATCHes rotate over all of them. */
const CARDS = 10;
const PATCH_BODY = JSON.stringify({ status: 'in_progress', description: 'Picked up by the benchmark: the card moves to in progress.' });

function seedCards(): PlannerCard[] {
  return Array.from({ length: CARDS }, (_, i) => ({
    id: `card-${i}`,
    title: `Benchmark card ${i}`,
    status: 'todo',
    description: 'A card the rest scenario patches.',
    criteria: [{ id: 'ac-1', text: 'It is patched', done: false }],
  }));
}

/** `patch`: PATCH these URLs in turn (same origin) with PATCH_BODY; otherwise GET `url`. */
function cannon(url: string, token: string, connections: number, durationMs: number, patch?: string[]): Promise<CannonResult> {
  const opts: Record<string, unknown> = { url, connections, duration: durationMs / 1000, headers: { authorization: `Bearer ${token}` }, timeout: 10 };
  if (patch) {
    opts.method = 'PATCH';
    opts.body = PATCH_BODY;
    opts.headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    opts.requests = patch.map((u) => ({ path: new URL(u).pathname }));
  }
  return new Promise((resolve, reject) => {
    autocannon(opts, (err, r) => (err ? reject(err) : resolve(r)));
  });
}

export const rest: ScenarioDef = {
  name: 'rest',
  title: 'REST under load (autocannon)',
  sizes: (s) => ({ sessions: s.restSessions, connections: s.restConnections, durationMs: s.restDurationMs, cards: CARDS }),
  side: (ctx, start) =>
    withServer(ctx, start, ctx.sizes.restSessions + 10, async (srv, probe) => {
      const { restConnections: conns, restDurationMs: ms } = ctx.sizes;
      const warmMs = Math.min(1000, ms / 2);
      for (let i = 0; i < ctx.sizes.restSessions; i++) await srv.createSession(['cat'], { projectName: PLANNER_PROJECT });
      const listUrl = `${srv.url}/api/sessions`;
      // A short warm-up so both sides are measured with their code paths compiled.
      await cannon(listUrl, srv.token, conns, warmMs);
      probe.mark();
      const r = await cannon(listUrl, srv.token, conns, ms);
      const cpu = probe.since();

      await srv.seedPlanner(PLANNER_PROJECT, seedCards());
      const cardUrls = seedCards().map((c) => srv.cardUrl(PLANNER_PROJECT, c.id));
      const w = await cannon(srv.url, srv.token, conns, warmMs, cardUrls);
      probe.mark();
      const p = await cannon(srv.url, srv.token, conns, ms, cardUrls);
      const pcpu = probe.since();
      // No update lost: one more PATCH answers the version, which counts every write since the
      // seed (1); at least as many as autocannon saw answered (it may stop with some in flight).
      const last = await call(cardUrls[0]!, 'PATCH', srv.token, JSON.parse(PATCH_BODY));
      const version = Number((last.body as { version?: unknown }).version);
      const answered = 1 + w['2xx'] + p['2xx'] + 1;

      const r2 = (x: number) => Math.round(x * 100) / 100;
      return {
        metrics: {
          listReqPerS: Math.round(r.requests.average),
          listP50Ms: r.latency.p50,
          listP99Ms: r.latency.p99,
          listMaxMs: r.latency.max,
          listErrors: r.errors + r.timeouts + r.non2xx,
          serverCpuS: r2(cpu.serverCpuS),
          serverCpuMsPerReq: r2((cpu.serverCpuS * 1000) / Math.max(1, r.requests.total)),
          driverCpuS: r2(cpu.driverCpuS),
          patchReqPerS: Math.round(p.requests.average),
          patchP50Ms: p.latency.p50,
          patchP99Ms: p.latency.p99,
          patchMaxMs: p.latency.max,
          patchErrors: p.errors + p.timeouts + p.non2xx,
          patchServerCpuS: r2(pcpu.serverCpuS),
          patchServerCpuMsPerReq: r2((pcpu.serverCpuS * 1000) / Math.max(1, p.requests.total)),
          patchDriverCpuS: r2(pcpu.driverCpuS),
        },
        ...(answered > version || last.status !== 200 ? { errors: [`planner PATCH: version ${version} after ${answered} answered writes (last ${last.status})`] } : {}),
        check: { plannerVersion: version, patchesAnswered: answered, lostUpdates: Number.isInteger(version) ? Math.max(0, answered - version) : NaN, lastStatus: last.status },
      };
    }),
  summarize(r) {
    const p = r.project?.median ?? {};
    const b = r.baseline?.median ?? {};
    const ratios = {
      listReqPerS: ratio(p.listReqPerS, b.listReqPerS),
      listP99: ratio(p.listP99Ms, b.listP99Ms),
      patchReqPerS: ratio(p.patchReqPerS, b.patchReqPerS),
      patchP99: ratio(p.patchP99Ms, b.patchP99Ms),
    };
    const cell = (m: typeof p) =>
      `GET /api/sessions: ${fmt(m.listReqPerS, 0)} req/s · p99 ${fmt(m.listP99Ms, 0)} ms · ${fmt(m.listErrors, 0)} errors; ` +
      `PATCH card: ${fmt(m.patchReqPerS, 0)} req/s · p99 ${fmt(m.patchP99Ms, 0)} ms · ${fmt(m.patchErrors, 0)} errors`;
    const row =
      `| rest | ${cell(p)} | ${cell(b)} | — | GET req/s ${fmt(ratios.listReqPerS, 2)}× · p99 ${fmt(ratios.listP99, 2)}×; ` +
      `PATCH req/s ${fmt(ratios.patchReqPerS, 2)}× · p99 ${fmt(ratios.patchP99, 2)}× | no target |`;
    return { ratios, targets: [], row };
  },
};
