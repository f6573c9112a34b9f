import { AppError } from '../../errors.js';
import { assertOrgAccess, assertWriter, canAccessOrg, isAdmin } from '../../auth/principal.js';
import type { ServerParts } from '../../server.js';
import { LIVE_STATUSES } from '../../supervisor/session.js';
import { assertName, bodyObject, optInt } from '../../validate.js';
import { CohostService, COHOST_MIN_EXPIRY_MS, type CohostRecord } from '../../cohost/cohost-service.js';

/** Longest user id accepted in a path (ids are opaque JWT subjects). */
const MAX_USER_ID = 256;

/**
 * Cohost share links (DESIGN §3): create, resolve (public), host's list, revoke. Sets the
 * editor sockets' `cohost` resolver, which `/ws?cohost=` and `?cohost=` on `any` routes use.
 */
export async function cohostRoutes(parts: ServerParts): Promise<CohostService> {
  const { router, supervisor, sockets } = parts;
  const svc = new CohostService({ store: parts.store, bus: parts.bus, sockets, log: parts.log, nodeId: parts.config.nodeId });
  await svc.init();
  sockets.cohost = (raw) => svc.principal(raw);
  parts.onClose(() => svc.close());

  const links = (token: string) => ({
    url: `${parts.url()}/?cohost=${encodeURIComponent(token)}`,
    wsUrl: `${parts.url().replace(/^http/, 'ws')}/ws?cohost=${encodeURIComponent(token)}`,
  });

  router.get('/api/cohost/host/:userId', async (ctx) => {
    const p = ctx.who;
    const userId = ctx.params.userId!;
    if (userId.length > MAX_USER_ID) throw new AppError('SM_ERR_VALIDATION', '"userId" is too long.');
    if (userId !== p.userId && !isAdmin(p)) throw new AppError('SM_ERR_FORBIDDEN', 'Only the host or an admin may list these share links.');
    const all = ctx.query.get('all');
    const items = (await svc.listByHost(userId, all === 'true' || all === '1')).filter((v) => canAccessOrg(p, v.orgId));
    ctx.reply.json(200, { items, total: items.length });
  });

  router.post('/api/cohost/:orgId/:projectName', async (ctx) => {
    const orgId = assertName(ctx.params.orgId, 'orgId');
    const projectName = assertName(ctx.params.projectName, 'projectName');
    const raw = await ctx.json();
    const b = raw === undefined ? {} : bodyObject(raw);
    const expiresInMs = optInt(b, 'expiresInMs', COHOST_MIN_EXPIRY_MS, parts.config.cohostMaxExpiryMs);
    const p = ctx.who;
    assertOrgAccess(p, orgId);
    assertWriter(p);
    const { token, record } = await svc.create(p, orgId, projectName, expiresInMs);
    ctx.reply.json(201, {
      id: record.id,
      token,
      ...links(token),
      orgId,
      projectName,
      createdAt: record.createdAt,
      expiresAt: record.expiresAt,
    });
  });

  // Public: the guest learns what it may watch. Unknown, expired and revoked look the same.
  router.get('/api/cohost/:token', async (ctx) => {
    const r = await svc.resolve(ctx.params.token!);
    if (!r) throw new AppError('SM_ERR_COHOST_NOT_FOUND');
    const sessions = supervisor
      .list({ orgId: r.orgId, projectName: r.projectName })
      .filter((s) => LIVE_STATUSES.has(s.status))
      .map((s) => ({ id: s.id, agent: s.agent, type: s.type, status: s.status, createdAt: s.createdAt, startedAt: s.startedAt, cols: s.cols, rows: s.rows }));
    ctx.reply.json(200, {
      id: r.id,
      orgId: r.orgId,
      projectName: r.projectName,
      host: r.hostUserId,
      createdAt: r.createdAt,
      expiresAt: r.expiresAt,
      topic: `project:${r.orgId}/${r.projectName}`,
      readOnly: true,
      sessions,
      ...links(ctx.params.token!),
    });
  }, 'public');

  router.delete('/api/cohost/:token', async (ctx) => {
    const p = ctx.who;
    assertWriter(p);
    const r: CohostRecord | undefined = await svc.find(ctx.params.token!);
    if (!r || r.revokedAt || !canAccessOrg(p, r.orgId)) throw new AppError('SM_ERR_COHOST_NOT_FOUND');
    if (r.hostUserId !== p.userId && !isAdmin(p)) throw new AppError('SM_ERR_FORBIDDEN', 'Only the host or an admin may revoke this share link.');
    const { guestsClosed } = await svc.revoke(r, p);
    ctx.reply.json(200, { ...svc.view(r), guestsClosed });
  });

  return svc;
}
