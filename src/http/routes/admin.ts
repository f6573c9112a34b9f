import { AppError } from '../../errors.js';
import { assertAdmin, isAdmin } from '../../auth/principal.js';
import type { Supervisor } from '../../supervisor/supervisor.js';
import type { Store } from '../../store/store.js';
import type { Metrics } from '../../metrics.js';
import type { Authenticator } from '../../auth/jwt.js';
import { bodyObject, optInt } from '../../validate.js';
import type { Router } from '../router.js';

/** Jobs, resources (admin), health and metrics. */
export function adminRoutes(
  router: Router,
  deps: { sup: Supervisor; store: Store; metrics: Metrics; auth: Authenticator; ready: () => Promise<{ ok: boolean; checks: Record<string, unknown> }> },
): void {
  const { sup, store, metrics, auth } = deps;

  router.get('/api/jobs', async (ctx) => {
    const p = ctx.who;
    const raw = ctx.query.get('limit');
    let limit = 100;
    if (raw !== null) {
      if (!/^\d{1,5}$/.test(raw) || Number(raw) < 1 || Number(raw) > 10_000) throw new AppError('SM_ERR_VALIDATION', '"limit" must be an integer from 1 to 10000.');
      limit = Number(raw);
    }
    const all = await store.readLog<{ orgId: string }>('jobs', { newestFirst: true });
    const items = (isAdmin(p) ? all : all.filter((j) => j.orgId === p.orgId)).slice(0, limit);
    ctx.reply.json(200, { items });
  });

  router.post('/api/resources/pause', (ctx) => {
    assertAdmin(ctx.who);
    sup.pause();
    ctx.reply.json(200, { paused: true, ...sup.counts() });
  });

  router.post('/api/resources/resume', (ctx) => {
    assertAdmin(ctx.who);
    sup.resume();
    ctx.reply.json(200, { paused: false, ...sup.counts() });
  });

  router.get('/api/resources/limits', (ctx) => {
    assertAdmin(ctx.who);
    ctx.reply.json(200, { ...sup.limits, paused: sup.isPaused, ...sup.counts() });
  });

  router.put('/api/resources/limits', async (ctx) => {
    assertAdmin(ctx.who);
    const b = bodyObject(await ctx.json());
    const next: Parameters<Supervisor['setLimits']>[0] = {};
    const mcs = optInt(b, 'maxConcurrentSessions', 1, 100_000);
    const mq = optInt(b, 'maxQueue', 0, 1_000_000);
    const idle = optInt(b, 'idleTimeoutMs', 100, 365 * 24 * 3600 * 1000);
    if (mcs !== undefined) next.maxConcurrentSessions = mcs;
    if (mq !== undefined) next.maxQueue = mq;
    if (idle !== undefined) next.idleTimeoutMs = idle;
    const limits = sup.setLimits(next);
    ctx.reply.json(200, { ...limits, paused: sup.isPaused, ...sup.counts() });
  });

  router.get('/healthz', (ctx) => {
    ctx.reply.json(200, { ok: true });
  }, 'public');

  router.get('/readyz', async (ctx) => {
    const r = await deps.ready();
    ctx.reply.json(r.ok ? 200 : 503, r);
  }, 'public');

  /** Metrics are public on loopback; elsewhere they need a token (any valid one). */
  const metricsAllowed = async (ctx: Parameters<Parameters<Router['get']>[1]>[0]) => {
    if (ctx.isLoopback) return;
    const h = ctx.headers.authorization ?? '';
    await auth.verify(h.startsWith('Bearer ') ? h.slice(7) : undefined);
  };

  router.get('/api/metrics', async (ctx) => {
    await metricsAllowed(ctx);
    ctx.reply.json(200, { ...metrics.summary(), sessions: { ...sup.counts(), paused: sup.isPaused } });
  }, 'public');

  router.get('/metrics', async (ctx) => {
    await metricsAllowed(ctx);
    const text = await metrics.registry.metrics();
    ctx.reply.text(200, text, metrics.registry.contentType);
  }, 'public');
}
