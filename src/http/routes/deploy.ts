import { stat } from 'node:fs/promises';
import { checkRateLimit } from '../rate-limit.js';
import { AppError } from '../../errors.js';
import { assertOrgAccess, assertWriter, canAccessOrg } from '../../auth/principal.js';
import { secretValues } from '../../config.js';
import type { ServerParts } from '../../server.js';
import { assertName, bodyObject } from '../../validate.js';
import { workspaceDir } from '../../workspace/paths.js';
import { DeployService } from '../../deploy/deploy-service.js';
import { LocalProvider } from '../../deploy/providers/local.js';
import { SpinforgeProvider } from '../../deploy/providers/spinforge.js';
import type { DeployProvider } from '../../deploy/providers/provider.js';
import { SseStream, SSE_HEARTBEAT_MS } from '../../deploy/sse.js';
import type { DeployEvent } from '../../deploy/types.js';
import type { HttpContext } from '../context.js';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** `jobs?limit=` default and ceiling. */
const LIST_LIMIT_DEFAULT = 50;
const LIST_LIMIT_MAX = 500;
/** Shortest heartbeat a test may ask for (`?heartbeatMs=`, only with SM_TEST_HOOKS=1). */
const TEST_HEARTBEAT_MIN_MS = 20;

/**
 * Deploy jobs and providers (DESIGN §3, §7). `POST /api/deploy/:provider/:orgId/:projectName`
 * answers 202 at once; the job runs in the background (src/deploy/deploy-service.ts).
 */
export async function deployRoutes(parts: ServerParts): Promise<DeployService> {
  const { router, config } = parts;
  const providers = new Map<string, DeployProvider>();
  providers.set('local', new LocalProvider(config.deployDir, () => parts.url()));
  providers.set('spinforge', new SpinforgeProvider(config.spinforgeApiUrl, config.spinforgePartnerKey));
  const svc = new DeployService({
    store: parts.store,
    bus: parts.bus,
    log: parts.log,
    config,
    providers,
    secrets: secretValues(config, parts.env),
    serverEnv: parts.env,
  });
  await svc.recover();
  parts.onClose(() => svc.close());

  /** Names first (400), then the provider (404), then the caller's org (403). */
  const target = (ctx: HttpContext) => {
    const orgId = assertName(ctx.params.orgId, 'orgId');
    const projectName = assertName(ctx.params.projectName, 'projectName');
    const provider = svc.provider(ctx.params.provider!);
    assertOrgAccess(ctx.who, orgId);
    return { orgId, projectName, provider };
  };

  /** A job the caller may see; another org's job is 404, like a session. */
  const visibleJob = async (ctx: HttpContext) => {
    const id = ctx.params.jobId!;
    if (!UUID_RE.test(id)) throw new AppError('SM_ERR_DEPLOY_JOB_NOT_FOUND');
    const job = await svc.peek(id);
    if (!job || !canAccessOrg(ctx.who, job.orgId)) throw new AppError('SM_ERR_DEPLOY_JOB_NOT_FOUND');
    return job;
  };

  router.get('/api/deploy/jobs/:orgId/:projectName', async (ctx) => {
    const orgId = assertName(ctx.params.orgId, 'orgId');
    const projectName = assertName(ctx.params.projectName, 'projectName');
    assertOrgAccess(ctx.who, orgId);
    const raw = ctx.query.get('limit');
    let limit = LIST_LIMIT_DEFAULT;
    if (raw !== null) {
      if (!/^\d{1,4}$/.test(raw) || Number(raw) < 1 || Number(raw) > LIST_LIMIT_MAX) throw new AppError('SM_ERR_VALIDATION', `"limit" must be an integer from 1 to ${LIST_LIMIT_MAX}.`);
      limit = Number(raw);
    }
    const items = await svc.list(orgId, projectName, limit);
    ctx.reply.json(200, { items, total: items.length });
  });

  router.get('/api/deploy/job/:jobId', async (ctx) => {
    const job = await visibleJob(ctx);
    ctx.reply.json(200, await svc.get(job.id));
  });

  router.get('/api/deploy/job/:jobId/stream', async (ctx) => {
    const job = await visibleJob(ctx);
    const after = lastEventId(ctx);
    let heartbeatMs = SSE_HEARTBEAT_MS;
    const hb = ctx.query.get('heartbeatMs');
    if (config.testHooks && hb !== null && /^\d{1,7}$/.test(hb)) heartbeatMs = Math.max(TEST_HEARTBEAT_MIN_MS, Number(hb));
    const sse = new SseStream(ctx.reply, heartbeatMs);
    if (!sse.open()) return;
    try {
      const stop = await svc.follow(job.id, after, {
        event: (ev: DeployEvent) => sse.send('step', ev, ev.seq),
        end: (end) => {
          sse.send('end', end);
          sse.close();
        },
      });
      if (!stop) sse.close();
      else sse.onClose(stop);
    } catch (err) {
      // Headers are out: an error body is no longer possible, so end the stream.
      parts.log.error('deploy stream failed', { jobId: job.id, error: err as Error });
      sse.close();
    }
    await sse.done;
  });

  router.get('/api/deploy/:provider/:orgId/:projectName/status', async (ctx) => {
    const { orgId, projectName, provider } = target(ctx);
    provider.assertAvailable();
    const status = await provider.status(orgId, projectName);
    const running = svc.runningJob(orgId, projectName);
    ctx.reply.json(200, running ? { ...status, runningJobId: running } : status);
  });

  router.post('/api/deploy/:provider/:orgId/:projectName/sync-aliases', async (ctx) => {
    const { orgId, projectName, provider } = target(ctx);
    assertWriter(ctx.who);
    const raw = await ctx.json();
    const body = raw === undefined ? {} : bodyObject(raw);
    provider.assertAvailable();
    ctx.reply.json(200, await provider.syncAliases(orgId, projectName, body));
  });

  router.post('/api/deploy/:provider/:orgId/:projectName', async (ctx) => {
    const { orgId, projectName, provider } = target(ctx);
    const p = ctx.who;
    assertWriter(p);
    const raw = await ctx.json();
    if (raw !== undefined) bodyObject(raw);
    provider.assertAvailable();
    checkRateLimit(p, 'expensive');
    const ws = workspaceDir(config.workspaceBasePath, orgId, projectName);
    const st = await stat(ws).catch(() => undefined);
    if (!st?.isDirectory()) throw new AppError('SM_ERR_NOT_FOUND', `No workspace for ${orgId}/${projectName}.`);
    const job = svc.start(provider, orgId, projectName, p.userId, ws);
    // The job is on record before the client hears of it: a crash cannot forget a 202.
    await svc.written(job.id);
    ctx.reply.json(202, {
      jobId: job.id,
      status: job.status,
      provider: job.provider,
      orgId,
      projectName,
      jobUrl: `/api/deploy/job/${job.id}`,
      streamUrl: `/api/deploy/job/${job.id}/stream`,
    }, { Location: `/api/deploy/job/${job.id}` });
  });

  router.delete('/api/deploy/:provider/:orgId/:projectName', async (ctx) => {
    const { orgId, projectName, provider } = target(ctx);
    assertWriter(ctx.who);
    provider.assertAvailable();
    const running = svc.runningJob(orgId, projectName);
    if (running) throw new AppError('SM_ERR_DEPLOY_RUNNING', `A deploy of ${orgId}/${projectName} is running (job ${running}); undeploy after it ends.`, { details: { jobId: running } });
    ctx.reply.json(200, await provider.undeploy(orgId, projectName));
  });

  return svc;
}

/** `Last-Event-ID` (what EventSource sends on reconnect) or `?lastEventId=`; 0 = from the start. */
function lastEventId(ctx: HttpContext): number {
  const raw = ctx.headers['last-event-id'] ?? ctx.query.get('lastEventId');
  if (raw === undefined || raw === null || raw.trim() === '') return 0;
  const v = raw.trim();
  if (!/^\d{1,15}$/.test(v)) throw new AppError('SM_ERR_VALIDATION', '"Last-Event-ID" must be a non-negative integer (an event\'s seq).');
  return Number(v);
}
