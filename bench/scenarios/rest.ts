/**
 * rest: REST under autocannon. `GET /api/sessions` (listing R sessions) is measured on both
 * sides now; the planner PATCH arrives with the workspace issue and is reported as pending
 * (no number) until then.
 */
import { createRequire } from 'node:module';
import { fmt, ratio, withServer, type ScenarioDef } from '../lib/scenario.js';

/** What this bench reads from an autocannon result. */
interface CannonResult {
  requests: { average: number; total: number };
  latency: { p50: number; p99: number; max: number };
  errors: number;
  timeouts: number;
  non2xx: number;
}

type Cannon = (opts: Record<string, unknown>, cb: (err: Error | null, r: CannonResult) => void) => unknown;

const autocannon = createRequire(import.meta.url)('autocannon') as Cannon;

export const PLANNER_PENDING = 'planner PATCH waits for the workspace issue';

function cannon(url: string, token: string, connections: number, durationMs: number): Promise<CannonResult> {
  return new Promise((resolve, reject) => {
    autocannon(
      { url, connections, duration: durationMs / 1000, headers: { authorization: `Bearer ${token}` }, timeout: 10 },
      (err, r) => (err ? reject(err) : resolve(r)),
    );
  });
}

export const rest: ScenarioDef = {
  name: 'rest',
  title: 'REST under load (autocannon)',
  note: PLANNER_PENDING,
  sizes: (s) => ({ sessions: s.restSessions, connections: s.restConnections, durationMs: s.restDurationMs }),
  side: (ctx, start) =>
    withServer(ctx, start, ctx.sizes.restSessions + 10, async (srv, probe) => {
      for (let i = 0; i < ctx.sizes.restSessions; i++) await srv.createSession(['cat']);
      // A short warm-up so both sides are measured with their code paths compiled.
      await cannon(`${srv.url}/api/sessions`, srv.token, ctx.sizes.restConnections, Math.min(1000, ctx.sizes.restDurationMs / 2));
      probe.mark();
      const r = await cannon(`${srv.url}/api/sessions`, srv.token, ctx.sizes.restConnections, ctx.sizes.restDurationMs);
      const cpu = probe.since();
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
        },
      };
    }),
  summarize(r) {
    const p = r.project?.median ?? {};
    const b = r.baseline?.median ?? {};
    const ratios = { listReqPerS: ratio(p.listReqPerS, b.listReqPerS), listP99: ratio(p.listP99Ms, b.listP99Ms) };
    const cell = (m: typeof p) => `GET /api/sessions: ${fmt(m.listReqPerS, 0)} req/s · p99 ${fmt(m.listP99Ms, 0)} ms · ${fmt(m.listErrors, 0)} errors`;
    const row = `| rest | ${cell(p)} | ${cell(b)} | — | req/s ${fmt(ratios.listReqPerS, 2)}× · p99 ${fmt(ratios.listP99, 2)}× | no target; ${PLANNER_PENDING} |`;
    return { ratios, targets: [], row };
  },
};
