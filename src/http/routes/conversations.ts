import { AppError } from '../../errors.js';
import type { ServerParts } from '../../server.js';
import { Conversations } from '../../conversations/conversations.js';
import { assertName, bodyObject } from '../../validate.js';
import { projectParams } from '../../workspace/access.js';
import type { HttpContext } from '../context.js';

/** `?limit` ceiling for a list page. */
const MAX_PAGE = 1000;

/** `/api/conversations/:orgId/:projectName…` (DESIGN §3). */
export function conversationRoutes(parts: ServerParts): Conversations {
  const { router, store, bus, log } = parts;
  const conversations = new Conversations({ store, bus, log });
  const base = '/api/conversations/:orgId/:projectName';
  const convId = (ctx: HttpContext) => {
    const id = ctx.params.conversationId;
    try {
      return assertName(id, 'conversationId');
    } catch {
      throw new AppError('SM_ERR_CONVERSATION_NOT_FOUND');
    }
  };

  router.get(base, async (ctx) => {
    const { orgId, projectName } = projectParams(ctx, { write: false });
    const limit = intQuery(ctx, 'limit', 1, MAX_PAGE);
    const offset = intQuery(ctx, 'offset', 0, Number.MAX_SAFE_INTEGER);
    ctx.reply.json(200, await conversations.list(orgId, projectName, { limit, offset }));
  }, 'any');

  router.post(base, async (ctx) => {
    const { orgId, projectName } = projectParams(ctx, { write: true });
    const raw = await ctx.json();
    const b = raw === undefined ? {} : bodyObject(raw);
    ctx.reply.json(201, await conversations.create(orgId, projectName, ctx.who.userId, b));
  });

  router.get(`${base}/:conversationId`, async (ctx) => {
    const { orgId, projectName } = projectParams(ctx, { write: false });
    ctx.reply.json(200, await conversations.get(orgId, projectName, convId(ctx)));
  }, 'any');

  router.put(`${base}/:conversationId`, async (ctx) => {
    const { orgId, projectName } = projectParams(ctx, { write: true });
    const id = convId(ctx);
    ctx.reply.json(200, await conversations.update(orgId, projectName, id, bodyObject(await ctx.json())));
  });

  router.delete(`${base}/:conversationId`, async (ctx) => {
    const { orgId, projectName } = projectParams(ctx, { write: true });
    const id = convId(ctx);
    await conversations.remove(orgId, projectName, id);
    ctx.reply.json(200, { id, deleted: true });
  });

  router.post(`${base}/:conversationId/messages`, async (ctx) => {
    const { orgId, projectName } = projectParams(ctx, { write: true });
    const id = convId(ctx);
    const { header, turns } = await conversations.append(orgId, projectName, id, bodyObject(await ctx.json()));
    ctx.reply.json(201, { conversationId: id, messageCount: header.messageCount, messages: turns });
  });

  return conversations;
}

function intQuery(ctx: HttpContext, name: string, min: number, max: number): number | undefined {
  const v = ctx.query.get(name);
  if (v === null) return undefined;
  if (!/^\d{1,15}$/.test(v) || Number(v) < min || Number(v) > max) {
    throw new AppError('SM_ERR_VALIDATION', `"${name}" must be an integer from ${min} to ${max}.`, { details: { field: name } });
  }
  return Number(v);
}
