import { AppError } from '../../errors.js';
import { checkRateLimit } from '../rate-limit.js';
import type { ServerParts } from '../../server.js';
import { GitService, LOG_LIMIT_DEFAULT, LOG_LIMIT_MAX } from '../../git/git.js';
import { assertToken } from '../../git/url.js';
import { bodyObject } from '../../validate.js';
import { projectParams, projectTopic } from '../../workspace/access.js';
import type { HttpContext } from '../context.js';

/**
 * `/api/git/:orgId/:projectName/{status,init,clone,commit,remote,push,pull,log}` (DESIGN §3,
 * §7). `file://` remotes are allowed only on a server started with test hooks
 * (SM_TEST_HOOKS=1): elsewhere they would let a builder read any repository on the host.
 */
export async function gitRoutes(parts: ServerParts): Promise<GitService> {
  const { router, config, bus } = parts;
  const git = new GitService({ base: config.workspaceBasePath, dataDir: config.dataDir, log: parts.log, allowFileUrls: config.gitAllowFileUrls });
  await git.init();
  const base = '/api/git/:orgId/:projectName';
  const body = async (ctx: HttpContext) => {
    const raw = await ctx.json();
    return raw === undefined ? {} : bodyObject(raw);
  };
  const changed = (orgId: string, projectName: string, action: string) =>
    void bus.publish(projectTopic(orgId, projectName), 'git:updated', { orgId, projectName, action });

  router.get(`${base}/status`, async (ctx) => {
    const { orgId, projectName } = projectParams(ctx, { write: false });
    ctx.reply.json(200, await git.status(orgId, projectName));
  });

  router.get(`${base}/log`, async (ctx) => {
    const { orgId, projectName } = projectParams(ctx, { write: false });
    const raw = ctx.query.get('limit');
    let limit = LOG_LIMIT_DEFAULT;
    if (raw !== null) {
      if (!/^\d{1,6}$/.test(raw) || Number(raw) < 1 || Number(raw) > LOG_LIMIT_MAX) {
        throw new AppError('SM_ERR_VALIDATION', `"limit" must be an integer from 1 to ${LOG_LIMIT_MAX}.`, { details: { field: 'limit' } });
      }
      limit = Number(raw);
    }
    const items = await git.log(orgId, projectName, { limit, path: ctx.query.get('path') ?? undefined });
    ctx.reply.json(200, { items });
  });

  router.get(`${base}/remote`, async (ctx) => {
    const { orgId, projectName } = projectParams(ctx, { write: false });
    ctx.reply.json(200, { items: await git.remotes(orgId, projectName) });
  });

  router.post(`${base}/remote`, async (ctx) => {
    const { orgId, projectName } = projectParams(ctx, { write: true });
    const r = await git.setRemote(orgId, projectName, await body(ctx));
    changed(orgId, projectName, 'remote');
    ctx.reply.json(r.created ? 201 : 200, r);
  });

  router.post(`${base}/init`, async (ctx) => {
    const { orgId, projectName } = projectParams(ctx, { write: true });
    const b = await body(ctx);
    const r = await git.initRepo(orgId, projectName, b.branch === undefined || b.branch === null ? undefined : (b.branch as string));
    if (r.created) changed(orgId, projectName, 'init');
    ctx.reply.json(r.created ? 201 : 200, r);
  });

  router.post(`${base}/clone`, async (ctx) => {
    const { orgId, projectName } = projectParams(ctx, { write: true });
    const b = await body(ctx);
    const token = assertToken(b.token);
    checkRateLimit(ctx.who, 'expensive');
    const r = await git.clone(orgId, projectName, { url: b.url, branch: b.branch, token }, ctx.who.userId);
    changed(orgId, projectName, 'clone');
    ctx.reply.json(201, r);
  });

  router.post(`${base}/commit`, async (ctx) => {
    const { orgId, projectName } = projectParams(ctx, { write: true });
    const r = await git.commit(orgId, projectName, await body(ctx), ctx.who.userId);
    changed(orgId, projectName, 'commit');
    ctx.reply.json(201, r);
  });

  router.post(`${base}/push`, async (ctx) => {
    const { orgId, projectName } = projectParams(ctx, { write: true });
    const b = await body(ctx);
    const token = assertToken(b.token);
    ctx.reply.json(200, await git.push(orgId, projectName, { remote: b.remote, branch: b.branch, token }));
  });

  router.post(`${base}/pull`, async (ctx) => {
    const { orgId, projectName } = projectParams(ctx, { write: true });
    const b = await body(ctx);
    const token = assertToken(b.token);
    const r = await git.pull(orgId, projectName, { remote: b.remote, branch: b.branch, token }, ctx.who.userId);
    if (r.updated) changed(orgId, projectName, 'pull');
    ctx.reply.json(200, r);
  });

  return git;
}
