import { randomUUID } from 'node:crypto';
import { AppError } from '../errors.js';
import type { Bus } from '../bus/bus.js';
import type { Logger } from '../log.js';
import type { Store } from '../store/store.js';
import { isName, isPlainObject } from '../validate.js';
import { projectTopic } from '../workspace/access.js';
import { KeyedMutex } from '../workspace/mutex.js';

/**
 * Conversation history per project, in the Store (so the Redis backend can hold it too).
 *
 * - Header documents in collection `conversations/<org>/<project>`, one per conversation:
 *   title, times, creator, message count. Listing reads only these.
 * - Turns in an append-only log `conversations/<org>/<project>/<id>`: each line is one
 *   request's worth, `{op: "append", turns}` or `{op: "replace", turns}` (PUT). A crash can
 *   lose the line being written, never an earlier one, and one request's turns land together.
 *
 * Writes to one conversation are serialized in this process, so the header's count follows
 * its log. With the Redis store and several nodes, two nodes appending at once both land
 * their turns (RPUSH is atomic) but the header's count may trail by one until the next
 * write; a read counts the turns it returns. Both stores remove the log with the header.
 */
export interface Turn {
  id: string;
  role: string;
  content: unknown;
  toolCalls?: unknown[];
  toolResults?: unknown[];
  name?: string;
  metadata?: Record<string, unknown>;
  at: string;
}

export interface ConversationHeader {
  id: string;
  orgId: string;
  projectName: string;
  title: string;
  createdBy: string;
  createdAt: string;
  updatedAt: string;
  messageCount: number;
  lastMessageAt: string | null;
}

interface LogLine {
  op: 'append' | 'replace';
  turns: Turn[];
}

const ROLE_RE = /^[a-z][a-z_-]{0,31}$/;
/** Bounds per request and per field (bodies are at most MAX_BODY_BYTES anyway). */
const MAX_TURNS_PER_REQUEST = 1000;
const MAX_TITLE = 500;
const MAX_TOOL_ITEMS = 1000;
/** Title made from the first user turn when none is given. */
const AUTO_TITLE_CHARS = 80;
const UNTITLED = 'New conversation';

export interface ConversationDeps {
  store: Store;
  bus: Bus;
  log: Logger;
}

export class Conversations {
  private readonly lock = new KeyedMutex();

  constructor(private readonly d: ConversationDeps) {}

  async list(orgId: string, projectName: string, opts: { limit?: number; offset?: number } = {}): Promise<{ items: ConversationHeader[]; total: number }> {
    const all = await this.d.store.list<ConversationHeader>(collection(orgId, projectName));
    all.sort((a, b) => (a.updatedAt < b.updatedAt ? 1 : a.updatedAt > b.updatedAt ? -1 : a.id < b.id ? -1 : 1));
    const offset = opts.offset ?? 0;
    return { items: all.slice(offset, opts.limit === undefined ? undefined : offset + opts.limit), total: all.length };
  }

  async create(orgId: string, projectName: string, createdBy: string, body: Record<string, unknown>): Promise<ConversationHeader & { messages: Turn[] }> {
    const title = optTitle(body.title);
    const turns = body.messages === undefined || body.messages === null ? [] : parseTurns(body.messages, 'messages');
    const id = randomUUID();
    const now = new Date().toISOString();
    return this.lock.run(key(orgId, projectName, id), async () => {
      if (turns.length > 0) await this.d.store.append(logName(orgId, projectName, id), { op: 'append', turns } satisfies LogLine);
      const header: ConversationHeader = {
        id,
        orgId,
        projectName,
        title: title ?? autoTitle(turns),
        createdBy,
        createdAt: now,
        updatedAt: now,
        messageCount: turns.length,
        lastMessageAt: turns.length > 0 ? turns[turns.length - 1]!.at : null,
      };
      await this.d.store.put(collection(orgId, projectName), id, header);
      await this.emit(header, 'created');
      return { ...header, messages: turns };
    });
  }

  async get(orgId: string, projectName: string, id: string): Promise<ConversationHeader & { messages: Turn[] }> {
    const header = await this.header(orgId, projectName, id);
    const messages = await this.turns(orgId, projectName, id);
    // The turns are the truth; the header's count can trail them when two nodes append at once.
    return { ...header, messageCount: messages.length, messages };
  }

  /** PUT: a new title and/or the whole list of turns. */
  async update(orgId: string, projectName: string, id: string, body: Record<string, unknown>): Promise<ConversationHeader & { messages: Turn[] }> {
    const title = optTitle(body.title);
    const replace = body.messages === undefined ? undefined : body.messages === null ? [] : parseTurns(body.messages, 'messages');
    return this.lock.run(key(orgId, projectName, id), async () => {
      const header = await this.header(orgId, projectName, id);
      if (replace !== undefined) {
        await this.d.store.append(logName(orgId, projectName, id), { op: 'replace', turns: replace } satisfies LogLine);
        header.messageCount = replace.length;
        header.lastMessageAt = replace.length > 0 ? replace[replace.length - 1]!.at : null;
      }
      if (title !== undefined) header.title = title;
      header.updatedAt = new Date().toISOString();
      await this.d.store.put(collection(orgId, projectName), id, header);
      await this.emit(header, 'updated');
      return { ...header, messages: await this.turns(orgId, projectName, id) };
    });
  }

  async remove(orgId: string, projectName: string, id: string): Promise<void> {
    await this.lock.run(key(orgId, projectName, id), async () => {
      const header = await this.header(orgId, projectName, id);
      await this.d.store.delete(collection(orgId, projectName), id);
      await this.emit(header, 'deleted');
    });
  }

  /** Append turns: one `{role, content, …}` or `{messages: [...]}`. */
  async append(orgId: string, projectName: string, id: string, body: Record<string, unknown>): Promise<{ header: ConversationHeader; turns: Turn[] }> {
    const turns = Array.isArray(body.messages) ? parseTurns(body.messages, 'messages') : [parseTurn(body, '$')];
    if (turns.length === 0) throw new AppError('SM_ERR_VALIDATION', '"messages" must hold at least one turn.', { details: { field: 'messages' } });
    return this.lock.run(key(orgId, projectName, id), async () => {
      const header = await this.header(orgId, projectName, id);
      await this.d.store.append(logName(orgId, projectName, id), { op: 'append', turns } satisfies LogLine);
      header.messageCount += turns.length;
      header.lastMessageAt = turns[turns.length - 1]!.at;
      header.updatedAt = new Date().toISOString();
      if (header.title === UNTITLED) header.title = autoTitle(turns);
      await this.d.store.put(collection(orgId, projectName), id, header);
      await this.emit(header, 'appended');
      return { header, turns };
    });
  }

  private async header(orgId: string, projectName: string, id: string): Promise<ConversationHeader> {
    if (!isName(id)) throw new AppError('SM_ERR_CONVERSATION_NOT_FOUND');
    const h = await this.d.store.get<ConversationHeader>(collection(orgId, projectName), id);
    if (!h) throw new AppError('SM_ERR_CONVERSATION_NOT_FOUND');
    return h;
  }

  private async turns(orgId: string, projectName: string, id: string): Promise<Turn[]> {
    let out: Turn[] = [];
    for (const line of await this.d.store.readLog<LogLine>(logName(orgId, projectName, id))) {
      if (!line || !Array.isArray(line.turns)) continue;
      if (line.op === 'replace') out = [...line.turns];
      else out.push(...line.turns);
    }
    return out;
  }

  private async emit(h: ConversationHeader, action: 'created' | 'updated' | 'appended' | 'deleted'): Promise<void> {
    const payload = { orgId: h.orgId, projectName: h.projectName, conversationId: h.id, action, messageCount: h.messageCount, title: h.title };
    await this.d.bus.publish(projectTopic(h.orgId, h.projectName), 'conversation:updated', payload).catch((err: Error) => {
      this.d.log.warn('conversation:updated not published', { conversationId: h.id, error: err });
    });
  }
}

function collection(orgId: string, projectName: string): string {
  return `conversations/${orgId}/${projectName}`;
}
function logName(orgId: string, projectName: string, id: string): string {
  return `conversations/${orgId}/${projectName}/${id}`;
}
function key(orgId: string, projectName: string, id: string): string {
  return `${orgId}/${projectName}/${id}`;
}

function optTitle(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || v.length > MAX_TITLE) throw new AppError('SM_ERR_VALIDATION', `"title" must be a string of at most ${MAX_TITLE} characters.`, { details: { field: 'title' } });
  return v;
}

function autoTitle(turns: Turn[]): string {
  const first = turns.find((t) => t.role === 'user' && typeof t.content === 'string' && t.content.trim());
  if (!first) return UNTITLED;
  const line = (first.content as string).trim().replace(/\s+/g, ' ');
  return line.length > AUTO_TITLE_CHARS ? `${line.slice(0, AUTO_TITLE_CHARS - 1)}…` : line;
}

function parseTurns(v: unknown, field: string): Turn[] {
  if (!Array.isArray(v)) throw new AppError('SM_ERR_VALIDATION', `"${field}" must be an array of turns.`, { details: { field } });
  if (v.length > MAX_TURNS_PER_REQUEST) throw new AppError('SM_ERR_VALIDATION', `"${field}" may hold at most ${MAX_TURNS_PER_REQUEST} turns.`, { details: { field } });
  return v.map((t, i) => parseTurn(t, `${field}[${i}]`));
}

/** One turn: `{role, content, toolCalls?, toolResults?, name?, metadata?, id?, at?}`; other fields are dropped. */
function parseTurn(v: unknown, at: string): Turn {
  const bad = (f: string, want: string): never => {
    throw new AppError('SM_ERR_VALIDATION', `${at}.${f} must be ${want}.`, { details: { field: `${at}.${f}` } });
  };
  if (!isPlainObject(v)) throw new AppError('SM_ERR_VALIDATION', `${at} must be an object.`, { details: { field: at } });
  if (typeof v.role !== 'string' || !ROLE_RE.test(v.role)) bad('role', 'a lowercase word such as user, assistant, system or tool');
  const turn: Turn = { id: '', role: v.role as string, content: '', at: '' };
  if (v.content !== undefined && v.content !== null) {
    if (typeof v.content !== 'string' && !Array.isArray(v.content) && !isPlainObject(v.content)) bad('content', 'a string, an array of content blocks or an object');
    turn.content = v.content;
  } else if (v.toolCalls === undefined && v.toolResults === undefined) bad('content', 'given (or toolCalls/toolResults)');
  for (const f of ['toolCalls', 'toolResults'] as const) {
    const x = v[f];
    if (x === undefined || x === null) continue;
    if (!Array.isArray(x) || x.length > MAX_TOOL_ITEMS || !x.every(isPlainObject)) bad(f, `an array of at most ${MAX_TOOL_ITEMS} objects`);
    turn[f] = x as unknown[];
  }
  if (v.name !== undefined && v.name !== null) {
    if (typeof v.name !== 'string' || v.name.length > 128) bad('name', 'a string of at most 128 characters');
    turn.name = v.name as string;
  }
  if (v.metadata !== undefined && v.metadata !== null) {
    if (!isPlainObject(v.metadata)) bad('metadata', 'an object');
    turn.metadata = v.metadata as Record<string, unknown>;
  }
  if (v.id !== undefined && v.id !== null) {
    if (!isName(v.id)) bad('id', 'a name (^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$)');
    turn.id = v.id as string;
  } else turn.id = randomUUID();
  if (v.at !== undefined && v.at !== null) {
    if (typeof v.at !== 'string' || Number.isNaN(Date.parse(v.at))) bad('at', 'an ISO 8601 time');
    turn.at = v.at as string;
  } else turn.at = new Date().toISOString();
  return turn;
}
