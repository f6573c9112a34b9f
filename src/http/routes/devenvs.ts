import { AppError } from '../../errors.js';
import { checkRateLimit } from '../rate-limit.js';
import { assertOrgAccess, assertWriter } from '../../auth/principal.js';
import type { ServerParts } from '../../server.js';
import { Templates } from '../../templates/templates.js';
import { assertName, bodyObject, optString } from '../../validate.js';
import { projectParams } from '../../workspace/access.js';
import { DevEnvs } from '../../workspace/devenvs.js';
import { requireWorkspace } from '../../workspace/paths.js';
import { HEAVY_DIRS, streamWorkspaceZip, type HeavyDir } from '../../workspace/zip.js';
import type { HttpContext } from '../context.js';

/** A description is a brief for the agent, not a document. */
const MAX_DESCRIPTION = 16 * 1024;

/** `POST/GET/DELETE /api/dev-envs…` (DESIGN §3). */
export function devEnvRoutes(parts: ServerParts): DevEnvs {
  const { router, config, supervisor, log } = parts;
  const devEnvs = new DevEnvs({ base: config.workspaceBasePath, supervisor, templates: new Templates(), log });

  router.post('/api/dev-envs', async (ctx) => {
    const b = bodyObject(await ctx.json());
    const orgId = assertName(b.orgId ?? ctx.who.orgId, 'orgId');
    const projectName = assertName(b.projectName, 'projectName');
    const description = optString(b, 'description', MAX_DESCRIPTION);
    const template = optString(b, 'template', 64);
    assertOrgAccess(ctx.who, orgId);
    assertWriter(ctx.who);
    const made = await devEnvs.create({ orgId, projectName, createdBy: ctx.who.userId, description: description?.trim() ? description : undefined, template });
    void parts.bus.publish(`org:${orgId}`, 'devenv:created', { orgId, projectName });
    ctx.reply.json(201, { orgId, projectName, path: made.dir, project: made.project, files: made.files });
  });

  router.get('/api/dev-envs/:orgId', async (ctx) => {
    const orgId = assertName(ctx.params.orgId, 'orgId');
    assertOrgAccess(ctx.who, orgId);
    const items = await devEnvs.list(orgId);
    ctx.reply.json(200, { items, total: items.length });
  });

  router.get('/api/dev-envs/:orgId/:projectName', async (ctx) => {
    const { orgId, projectName } = projectParams(ctx, { write: false });
    ctx.reply.json(200, await devEnvs.inspect(orgId, projectName));
  });

  router.delete('/api/dev-envs/:orgId/:projectName', async (ctx) => {
    const { orgId, projectName } = projectParams(ctx, { write: true });
    const force = boolQuery(ctx, 'force');
    const { stoppedSessions } = await devEnvs.remove(orgId, projectName, force);
    void parts.bus.publish(`org:${orgId}`, 'devenv:deleted', { orgId, projectName });
    ctx.reply.json(200, { orgId, projectName, deleted: true, stoppedSessions });
  });

  router.post('/api/dev-envs/:orgId/:projectName/sync-ai-instructions', async (ctx) => {
    const { orgId, projectName } = projectParams(ctx, { write: true });
    const r = await devEnvs.syncAiInstructions(orgId, projectName, ctx.who.userId);
    ctx.reply.json(200, { orgId, projectName, changed: r.changed, unchanged: r.unchanged, project: r.project });
  });

  router.get('/api/dev-envs/:orgId/:projectName/download', async (ctx) => {
    const { orgId, projectName } = projectParams(ctx, { write: false });
    const include = includeQuery(ctx);
    checkRateLimit(ctx.who, 'expensive');
    const ws = await requireWorkspace(config.workspaceBasePath, orgId, projectName);
    const t0 = Date.now();
    const r = await streamWorkspaceZip(ctx, ws.root, projectName, include, log);
    log.info('zip download', { orgId, projectName, entries: r.entries, bytes: r.bytes, aborted: r.aborted, ms: Date.now() - t0 });
  });

  return devEnvs;
}

function boolQuery(ctx: HttpContext, name: string): boolean {
  const v = ctx.query.get(name);
  if (v === null || v === 'false' || v === '0') return false;
  if (v === 'true' || v === '1' || v === '') return true;
  throw new AppError('SM_ERR_VALIDATION', `"${name}" must be true or false.`, { details: { field: name } });
}

/** `?include=.git,node_modules` (also `git`, repeated params). */
function includeQuery(ctx: HttpContext): Set<HeavyDir> {
  const out = new Set<HeavyDir>();
  for (const raw of ctx.query.getAll('include')) {
    for (const part of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
      const name = part === 'git' ? '.git' : part;
      if (!(HEAVY_DIRS as readonly string[]).includes(name)) {
        throw new AppError('SM_ERR_VALIDATION', `"include" takes ${HEAVY_DIRS.join(', ')}.`, { details: { field: 'include' } });
      }
      out.add(name as HeavyDir);
    }
  }
  return out;
}
