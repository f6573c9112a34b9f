import { lstat, open, readdir } from 'node:fs/promises';
import { checkRateLimit } from '../rate-limit.js';
import path from 'node:path';
import { AppError } from '../../errors.js';
import { assertOrgAccess, canAccessOrg, assertWriter, isAdmin, type Principal } from '../../auth/principal.js';
import type { Supervisor } from '../../supervisor/supervisor.js';
import type { SessionRecord, SessionStatus } from '../../supervisor/session.js';
import {
  assertName, assertSessionId, assertSignal, bodyObject, isName, optBool, optInt, optObject, optString, reqInt, reqString, MAX_COLS, MAX_ROWS,
} from '../../validate.js';
import type { HttpContext } from '../context.js';
import type { Router } from '../router.js';
import type { AgentBridge } from '../../agent/bridge.js';
import type { Conversations } from '../../conversations/conversations.js';

const STATUSES: SessionStatus[] = ['queued', 'starting', 'running', 'exited', 'failed', 'killed', 'crashed', 'idle_terminated', 'lost'];
/** `logs?lines=` default and ceiling. */
const LOG_LINES_DEFAULT = 200;
const LOG_LINES_MAX = 10_000;
/** How far back from the end of console.log a tail reads at most. */
const LOG_TAIL_BYTES = 4 * 1024 * 1024;

export interface SessionRouteHooks {
  bridge: () => AgentBridge | undefined;
  conversations: () => Conversations | undefined;
}

export function sessionRoutes(router: Router, sup: Supervisor, dataDir: string, testHooks: boolean, hooks: SessionRouteHooks): void {
  /** The session if the caller may see it; another org's session is 404, not 403. */
  const seen = (ctx: HttpContext, r: SessionRecord | undefined): SessionRecord => {
    if (!r || !mayWatch(ctx.who, r)) throw new AppError('SM_ERR_SESSION_NOT_FOUND');
    return r;
  };
  const visible = (ctx: HttpContext): SessionRecord => seen(ctx, sup.get(assertSessionId(ctx.params.id)));
  /** The same, for routes that also serve ended sessions no longer kept in memory. */
  const visibleEver = async (ctx: HttpContext): Promise<SessionRecord> => seen(ctx, await sup.find(assertSessionId(ctx.params.id)));

  router.post('/api/sessions', async (ctx) => {
    const p = ctx.who;
    const b = bodyObject(await ctx.json());
    const orgId = assertName(b.orgId ?? p.orgId, 'orgId');
    const projectName = assertName(b.projectName, 'projectName');
    const userId = optString(b, 'userId', 256) ?? p.userId;
    if (userId !== p.userId && !isAdmin(p)) throw new AppError('SM_ERR_FORBIDDEN', 'Only an admin may start a session for another user.');
    const agent = optString(b, 'agent', 64) ?? 'bash';
    let command: string | string[] | undefined;
    if (typeof b.command === 'string') {
      if (b.command.length === 0 || b.command.length > 64 * 1024) throw new AppError('SM_ERR_VALIDATION', '"command" must be 1 to 65536 characters.', { details: { field: 'command' } });
      command = b.command;
    } else if (Array.isArray(b.command)) {
      if (b.command.length === 0 || b.command.length > 1024 || !b.command.every((a) => typeof a === 'string') || !(b.command[0] as string)) {
        throw new AppError('SM_ERR_VALIDATION', '"command" as an array must be non-empty strings (argv).', { details: { field: 'command' } });
      }
      command = b.command as string[];
    } else if (b.command !== undefined && b.command !== null) {
      throw new AppError('SM_ERR_VALIDATION', '"command" must be a string or an array of strings.', { details: { field: 'command' } });
    }
    const metadata = optObject(b, 'metadata');
    if (metadata && JSON.stringify(metadata).length > 64 * 1024) throw new AppError('SM_ERR_VALIDATION', '"metadata" must be under 64 KiB.');
    const priority = optInt(b, 'priority', -1000, 1000);
    const cols = optInt(b, 'cols', 1, MAX_COLS);
    const rows = optInt(b, 'rows', 1, MAX_ROWS);
    const conversationId = b.conversationId === undefined || b.conversationId === null ? undefined : assertName(b.conversationId, 'conversationId');
    assertOrgAccess(p, orgId);
    assertWriter(p);
    checkRateLimit(p, 'sessions');
    if (conversationId) {
      const conv = hooks.conversations();
      if (!conv) throw new AppError('SM_ERR_VALIDATION', 'Conversations are not enabled on this server.');
      await conv.get(orgId, projectName, conversationId);
    }
    const { record, queued } = await sup.create({ userId, orgId, projectName, agent, command, metadata, priority, cols, rows, conversationId });
    const view = sup.view(record);
    // 201 says "started" (DESIGN §7: running): a one-off as quick as `echo` may already have
    // ended by the time its start is on disk; its end is in GET and in the `exit` frame.
    const status = !queued && record.startedAt ? 'running' : record.status;
    const body: Record<string, unknown> = { ...view, id: record.id, status, workspacePath: record.workspacePath };
    if (queued) ctx.reply.json(202, body);
    else ctx.reply.json(201, body);
  });

  router.get('/api/sessions', (ctx) => {
    const p = ctx.who;
    const filter: Parameters<Supervisor['list']>[0] = {};
    for (const key of ['userId', 'orgId', 'projectName'] as const) {
      const v = ctx.query.get(key);
      if (v === null) continue;
      if (key !== 'userId' && !isName(v)) throw new AppError('SM_ERR_INVALID_NAME', `"${key}" is not a valid name.`, { details: { field: key } });
      filter[key] = v;
    }
    const status = ctx.query.get('status');
    if (status !== null) {
      if (!STATUSES.includes(status as SessionStatus)) throw new AppError('SM_ERR_VALIDATION', `"status" must be one of ${STATUSES.join(', ')}.`);
      filter.status = status as SessionStatus;
    }
    if (filter.orgId) assertOrgAccess(p, filter.orgId);
    const items = sup.list(filter).filter((r) => mayWatch(p, r)).map((r) => sup.view(r));
    ctx.reply.json(200, { items, total: items.length });
  }, 'any');

  router.get('/api/sessions/by-user/:userId', (ctx) => {
    const p = ctx.who;
    const userId = ctx.params.userId!;
    if (userId.length > 256) throw new AppError('SM_ERR_VALIDATION', '"userId" is too long.');
    const items = sup.list({ userId }).filter((r) => mayWatch(p, r)).map((r) => sup.view(r));
    ctx.reply.json(200, { items, total: items.length });
  });

  router.get('/api/sessions/:id', async (ctx) => {
    ctx.reply.json(200, sup.view(await visibleEver(ctx)));
  }, 'any');

  router.delete('/api/sessions/:id', async (ctx) => {
    const r = await visibleEver(ctx);
    assertWriter(ctx.who);
    const raw = await ctx.json();
    const b = raw === undefined ? {} : bodyObject(raw);
    const reason = optString(b, 'reason', 500);
    if (b.details !== undefined && JSON.stringify(b.details).length > 64 * 1024) throw new AppError('SM_ERR_VALIDATION', '"details" must be under 64 KiB.');
    // A session ended long ago (no longer in memory) has nothing left to terminate.
    if (sup.get(r.id)) await sup.terminate(r.id, 'killed', reason, b.details === undefined ? {} : { details: b.details });
    ctx.reply.json(200, sup.view(r));
  }, 'any');

  router.post('/api/sessions/:id/prompt', async (ctx) => {
    const r = visible(ctx);
    assertWriter(ctx.who);
    const b = bodyObject(await ctx.json());
    const text = reqString(b, 'text', 1024 * 1024);
    if (text.length === 0) throw new AppError('SM_ERR_VALIDATION', '"text" must not be empty.', { details: { field: 'text' } });
    if (b.attachments !== undefined && !Array.isArray(b.attachments)) throw new AppError('SM_ERR_VALIDATION', '"attachments" must be an array.', { details: { field: 'attachments' } });
    const bridge = hooks.bridge();
    if (!bridge) throw new AppError('SM_ERR_NOT_FOUND', 'The agent bridge is not enabled.');
    const res = await bridge.prompt(r, text, b.attachments as unknown[] | undefined, ctx.who);
    ctx.reply.json(202, { sessionId: r.id, ...res });
  });

  router.post('/api/sessions/:id/complete', async (ctx) => {
    const r = visible(ctx);
    const p = ctx.who;
    if (p.kind === 'guest' || (p.kind === 'user' && p.userId !== r.userId && !isAdmin(p))) {
      throw new AppError('SM_ERR_FORBIDDEN', 'Only the session\'s owner or its agent may complete it.');
    }
    const b = bodyObject(await ctx.json());
    const summary = reqString(b, 'summary', 64 * 1024);
    if (b.artifacts !== undefined && !Array.isArray(b.artifacts)) throw new AppError('SM_ERR_VALIDATION', '"artifacts" must be an array.', { details: { field: 'artifacts' } });
    if (r.status !== 'running' && r.status !== 'starting') throw new AppError('SM_ERR_SESSION_NOT_RUNNING', `The session is ${r.status}.`);
    await sup.terminate(r.id, 'completed', `completed by ${p.kind === 'agent' ? 'the agent' : p.userId}`, { summary, artifacts: (b.artifacts as unknown[] | undefined) ?? [] });
    ctx.reply.json(200, sup.view(r));
  }, 'any');

  router.get('/api/sessions/:id/artifacts', async (ctx) => {
    const r = await visibleEver(ctx);
    const items = sup.isRemote(r.id) ? [] : await listArtifacts(path.join(dataDir, 'sessions', r.id, 'artifacts'));
    ctx.reply.json(200, { items, declared: r.artifacts ?? [] });
  }, 'any');

  router.get('/api/sessions/:id/participants', (ctx) => {
    const r = visible(ctx);
    const bridge = hooks.bridge();
    ctx.reply.json(200, { items: bridge ? bridge.participants(r) : [] });
  }, 'any');

  router.post('/api/sessions/:id/input', async (ctx) => {
    const r = visible(ctx);
    assertWriter(ctx.who);
    const b = bodyObject(await ctx.json());
    const data = reqString(b, 'data', 1024 * 1024);
    const enter = optBool(b, 'enter') ?? true;
    sup.input(r.id, enter ? data + '\r' : data);
    ctx.reply.json(200, { ok: true });
  });

  router.post('/api/sessions/:id/resize', async (ctx) => {
    const r = visible(ctx);
    assertWriter(ctx.who);
    const b = bodyObject(await ctx.json());
    const cols = reqInt(b, 'cols', 1, MAX_COLS);
    const rows = reqInt(b, 'rows', 1, MAX_ROWS);
    sup.resize(r.id, cols, rows);
    ctx.reply.json(200, { ok: true, cols, rows });
  });

  router.post('/api/sessions/:id/signal', async (ctx) => {
    const r = visible(ctx);
    assertWriter(ctx.who);
    const b = bodyObject(await ctx.json());
    const signal = assertSignal(b.signal);
    sup.signal(r.id, signal);
    ctx.reply.json(200, { ok: true, signal });
  });

  router.get('/api/sessions/:id/logs', async (ctx) => {
    const r = await visibleEver(ctx);
    const raw = ctx.query.get('lines');
    let lines = LOG_LINES_DEFAULT;
    if (raw !== null) {
      if (!/^\d{1,6}$/.test(raw) || Number(raw) < 1 || Number(raw) > LOG_LINES_MAX) {
        throw new AppError('SM_ERR_VALIDATION', `"lines" must be an integer from 1 to ${LOG_LINES_MAX}.`);
      }
      lines = Number(raw);
    }
    const text = sup.isRemote(r.id)
      ? await sup.fleet!.request<string>(r, 'logs', { lines })
      : await tailLines(path.join(dataDir, 'sessions', r.id, 'console.log'), lines);
    ctx.reply.text(200, text);
  }, 'any');

  if (testHooks) {
    router.post('/api/sessions/:id/fault', async (ctx) => {
      const r = visible(ctx);
      const b = bodyObject(await ctx.json());
      const kind = b.kind;
      if (kind !== 'throw' && kind !== 'crash-worker') throw new AppError('SM_ERR_VALIDATION', '"kind" must be throw or crash-worker.');
      sup.fault(r.id, kind);
      ctx.reply.json(202, { ok: true });
    });
  }
}

/**
 * Who may see a session: its org (or an admin); a share-link guest only its project; an
 * agent only its own session.
 */
export function mayWatch(p: Principal, r: SessionRecord): boolean {
  if (!canAccessOrg(p, r.orgId)) return false;
  if (p.kind === 'guest') return p.scope?.projectName === r.projectName;
  if (p.kind === 'agent') return p.scope?.sessionId === r.id;
  return true;
}

/** The last `n` lines of console.log (and of console.log.1 if the current file is short). */
export async function tailLines(file: string, n: number): Promise<string> {
  const read = async (f: string, max: number): Promise<string> => {
    let fh;
    try {
      fh = await open(f, 'r');
    } catch {
      return '';
    }
    try {
      const size = (await fh.stat()).size;
      const take = Math.min(size, max);
      const buf = Buffer.alloc(take);
      await fh.read(buf, 0, take, size - take);
      return buf.toString('utf8');
    } finally {
      await fh.close();
    }
  };
  let text = await read(file, LOG_TAIL_BYTES);
  if (text.split('\n').length <= n && text.length < LOG_TAIL_BYTES) text = (await read(file + '.1', LOG_TAIL_BYTES - text.length)) + text;
  const parts = text.split('\n');
  const trailingNewline = parts[parts.length - 1] === '';
  if (trailingNewline) parts.pop();
  return parts.slice(-n).join('\n') + (trailingNewline ? '\n' : '');
}

/** Entries listed at most (an agent could fill its artifacts folder with anything). */
const MAX_ARTIFACTS = 1000;

/** Files under a session's artifacts folder (no symlinks followed), relative paths. */
async function listArtifacts(root: string): Promise<Array<{ path: string; size: number; modifiedAt: string }>> {
  const out: Array<{ path: string; size: number; modifiedAt: string }> = [];
  const walk = async (dir: string, rel: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (out.length >= MAX_ARTIFACTS) return;
      const p = path.join(dir, e.name);
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(p, r);
      else if (e.isFile()) {
        const st = await lstat(p).catch(() => undefined);
        if (st) out.push({ path: r, size: st.size, modifiedAt: st.mtime.toISOString() });
      }
    }
  };
  await walk(root, '');
  return out;
}
