import { assertOrgAccess, assertWriter } from '../../auth/principal.js';
import type { ServerParts } from '../../server.js';
import { Templates } from '../../templates/templates.js';
import { assertName, bodyObject, optBool, reqString } from '../../validate.js';
import { projectTopic } from '../../workspace/access.js';
import { ensureWorkspace, requireWorkspace } from '../../workspace/paths.js';

/** `GET /api/templates` · `POST /api/templates/apply` (DESIGN §3). */
export function templateRoutes(parts: ServerParts): Templates {
  const { router, config, bus } = parts;
  const templates = new Templates();

  router.get('/api/templates', async (ctx) => {
    const items = await templates.list();
    ctx.reply.json(200, { items, total: items.length });
  });

  router.post('/api/templates/apply', async (ctx) => {
    const b = bodyObject(await ctx.json());
    const orgId = assertName(b.orgId ?? ctx.who.orgId, 'orgId');
    const projectName = assertName(b.projectName, 'projectName');
    const templateId = reqString(b, 'templateId', 64);
    const overwrite = optBool(b, 'overwrite') ?? false;
    assertOrgAccess(ctx.who, orgId);
    assertWriter(ctx.who);
    await templates.get(templateId);
    await ensureWorkspace(config.workspaceBasePath, orgId, projectName, ctx.who.userId);
    const ws = await requireWorkspace(config.workspaceBasePath, orgId, projectName);
    const r = await templates.apply(ws.root, templateId, { orgId, projectName }, overwrite);
    void bus.publish(projectTopic(orgId, projectName), 'template:applied', { orgId, projectName, templateId, written: r.written.length });
    ctx.reply.json(200, { orgId, projectName, ...r });
  });

  return templates;
}
