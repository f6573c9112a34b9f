import { AppError } from '../../errors.js';
import type { ServerParts } from '../../server.js';
import { assertName, bodyObject, optString } from '../../validate.js';
import { parseIfMatch, validateCard, validateLog, validatePlanner, type Card, type PlannerDoc } from '../../planner/document.js';
import { newCardId, Planner } from '../../planner/planner.js';
import { projectParams } from '../../workspace/access.js';
import type { HttpContext } from '../context.js';

/** Card fields a merge may not remove (a `null` in PATCH deletes only optional ones). */
const REQUIRED_CARD_FIELDS = new Set(['id', 'title', 'status', 'criteria', 'logs']);

/** `/api/planner/:orgId/:projectName…` (DESIGN §3, §7). */
export function plannerRoutes(parts: ServerParts): Planner {
  const { router, config, bus, log } = parts;
  const planner = new Planner({ base: config.workspaceBasePath, bus, log });
  const base = '/api/planner/:orgId/:projectName';
  const etag = (doc: PlannerDoc) => ({ ETag: `"${doc.version}"` });
  const findCard = (doc: PlannerDoc, cardId: string): Card => {
    const card = doc.cards.find((c) => c.id === cardId);
    if (!card) throw new AppError('SM_ERR_CARD_NOT_FOUND', `No card "${cardId}".`);
    return card;
  };
  const ifMatch = (ctx: HttpContext) => parseIfMatch(ctx.headers['if-match']);

  router.get(base, async (ctx) => {
    const { orgId, projectName } = projectParams(ctx, { write: false });
    const doc = await planner.read(orgId, projectName);
    const inm = ctx.headers['if-none-match'];
    if (inm && inm.split(',').some((t) => t.trim().replace(/^W\//, '') === `"${doc.version}"`)) {
      ctx.reply.send(304, '', etag(doc));
      return;
    }
    ctx.reply.json(200, doc, etag(doc));
  }, 'any');

  router.put(base, async (ctx) => {
    const { orgId, projectName } = projectParams(ctx, { write: true });
    const precondition = ifMatch(ctx);
    // Shape first: a bad document is 400 whatever the version.
    const incoming = validatePlanner(await ctx.json(), { version: 0, updatedAt: '' });
    const { doc } = await planner.write(orgId, projectName, { ifMatch: precondition, replacesAll: true }, (d) => {
      for (const k of Object.keys(d)) delete d[k];
      Object.assign(d, incoming);
    });
    ctx.reply.json(200, doc, etag(doc));
  });

  router.post(`${base}/cards`, async (ctx) => {
    const { orgId, projectName } = projectParams(ctx, { write: true });
    const precondition = ifMatch(ctx);
    const b = bodyObject(await ctx.json());
    const card = validateCard({ ...b, id: b.id ?? newCardId() });
    const { doc } = await planner.write(orgId, projectName, { ifMatch: precondition, cardId: card.id }, (d) => {
      if (d.cards.some((c) => c.id === card.id)) throw new AppError('SM_ERR_CARD_EXISTS', `A card "${card.id}" exists.`);
      if (d.cards.length >= 2000) throw new AppError('SM_ERR_PLANNER_INVALID', 'The planner holds the maximum of 2000 cards.');
      d.cards.push(card);
    });
    ctx.reply.json(201, { version: doc.version, card }, etag(doc));
  });

  router.patch(`${base}/cards/:cardId`, async (ctx) => {
    const { orgId, projectName } = projectParams(ctx, { write: true });
    const cardId = assertName(ctx.params.cardId, 'cardId');
    const precondition = ifMatch(ctx);
    const b = bodyObject(await ctx.json());
    if (b.id !== undefined && b.id !== cardId) throw new AppError('SM_ERR_VALIDATION', 'A card\'s "id" cannot change.', { details: { field: 'id' } });
    for (const [k, v] of Object.entries(b)) {
      if (v === null && REQUIRED_CARD_FIELDS.has(k)) throw new AppError('SM_ERR_VALIDATION', `"${k}" cannot be removed.`, { details: { field: k } });
    }
    const { doc, result } = await planner.write(orgId, projectName, { ifMatch: precondition, cardId }, (d) => {
      const i = d.cards.findIndex((c) => c.id === cardId);
      if (i < 0) throw new AppError('SM_ERR_CARD_NOT_FOUND', `No card "${cardId}".`);
      const merged: Record<string, unknown> = { ...d.cards[i] };
      for (const [k, v] of Object.entries(b)) {
        if (v === null) delete merged[k];
        else merged[k] = v;
      }
      const card = validateCard(merged, `$.cards[${i}]`);
      d.cards[i] = card;
      return card;
    });
    ctx.reply.json(200, { version: doc.version, card: result }, etag(doc));
  });

  router.delete(`${base}/cards/:cardId`, async (ctx) => {
    const { orgId, projectName } = projectParams(ctx, { write: true });
    const cardId = assertName(ctx.params.cardId, 'cardId');
    const precondition = ifMatch(ctx);
    const { doc } = await planner.write(orgId, projectName, { ifMatch: precondition, cardId }, (d) => {
      findCard(d, cardId);
      d.cards = d.cards.filter((c) => c.id !== cardId);
    });
    ctx.reply.json(200, { version: doc.version, deleted: cardId }, etag(doc));
  });

  router.post(`${base}/cards/:cardId/logs`, async (ctx) => {
    const { orgId, projectName } = projectParams(ctx, { write: true });
    const cardId = assertName(ctx.params.cardId, 'cardId');
    const precondition = ifMatch(ctx);
    const b = bodyObject(await ctx.json());
    const entry = validateLog({ at: new Date().toISOString(), message: b.message, author: optString(b, 'author', 256) ?? ctx.who.userId });
    const { doc } = await planner.write(orgId, projectName, { ifMatch: precondition, cardId }, (d) => {
      const card = findCard(d, cardId);
      if (card.logs.length >= 10_000) card.logs.splice(0, card.logs.length - 9_999);
      card.logs.push(entry);
    });
    ctx.reply.json(201, { version: doc.version, cardId, log: entry }, etag(doc));
  });

  router.patch(`${base}/cards/:cardId/criteria/:acId`, async (ctx) => {
    const { orgId, projectName } = projectParams(ctx, { write: true });
    const cardId = assertName(ctx.params.cardId, 'cardId');
    const acId = assertName(ctx.params.acId, 'acId');
    const precondition = ifMatch(ctx);
    const b = bodyObject(await ctx.json());
    if (typeof b.done !== 'boolean') throw new AppError('SM_ERR_VALIDATION', '"done" must be true or false.', { details: { field: 'done' } });
    const text = optString(b, 'text', 2000);
    const { doc, result } = await planner.write(orgId, projectName, { ifMatch: precondition, cardId }, (d) => {
      const card = findCard(d, cardId);
      const ac = card.criteria.find((c) => c.id === acId);
      if (!ac) throw new AppError('SM_ERR_CRITERION_NOT_FOUND', `Card "${cardId}" has no criterion "${acId}".`);
      ac.done = b.done as boolean;
      if (text !== undefined) {
        if (!text.trim()) throw new AppError('SM_ERR_VALIDATION', '"text" must not be empty.', { details: { field: 'text' } });
        ac.text = text;
      }
      return { ...ac };
    });
    ctx.reply.json(200, { version: doc.version, cardId, criterion: result }, etag(doc));
  });

  return planner;
}
