import { AppError } from '../errors.js';
import { isName, isPlainObject } from '../validate.js';

/**
 * The planner document (`.vibe/planner.json`, DESIGN §7): cards with acceptance criteria
 * and progress logs. Known fields are type-checked; cards, criteria and logs may carry
 * extra fields, which are kept as they are.
 */
export interface Criterion {
  id: string;
  text: string;
  done: boolean;
  [extra: string]: unknown;
}

export interface LogEntry {
  at: string;
  message: string;
  author?: string;
  [extra: string]: unknown;
}

export interface Card {
  id: string;
  title: string;
  description?: string;
  status: string;
  criteria: Criterion[];
  logs: LogEntry[];
  [extra: string]: unknown;
}

export interface PlannerDoc {
  version: number;
  updatedAt: string;
  cards: Card[];
  [extra: string]: unknown;
}

/** Bounds that keep one document well under MAX_BODY_BYTES-sized reads and writes. */
export const LIMITS = {
  cards: 2000,
  criteria: 200,
  logs: 10_000,
  title: 500,
  status: 64,
  text: 2000,
  description: 64 * 1024,
  message: 64 * 1024,
  author: 256,
} as const;
/** Status given to a card created without one. */
export const DEFAULT_STATUS = 'todo';
/** How many shape problems one 400 lists. */
const MAX_REPORTED = 20;

export interface Problem {
  path: string;
  problem: string;
}

class Checker {
  readonly problems: Problem[] = [];
  add(p: string, problem: string): void {
    if (this.problems.length < MAX_REPORTED) this.problems.push({ path: p, problem });
  }
  fail(): never {
    const first = this.problems[0]!;
    throw new AppError('SM_ERR_PLANNER_INVALID', `${first.path}: ${first.problem}${this.problems.length > 1 ? ` (and ${this.problems.length - 1} more)` : ''}.`, {
      details: { errors: this.problems },
    });
  }
}

function str(c: Checker, o: Record<string, unknown>, key: string, at: string, max: number, required: boolean): void {
  const v = o[key];
  if (v === undefined && !required) return;
  if (typeof v !== 'string') return c.add(`${at}.${key}`, required && v === undefined ? 'is required' : 'must be a string');
  if (required && v.trim() === '') return c.add(`${at}.${key}`, 'must not be empty');
  if (v.length > max) c.add(`${at}.${key}`, `must be at most ${max} characters`);
}

function checkCriterion(c: Checker, v: unknown, at: string, seen: Set<string>): Criterion | undefined {
  if (!isPlainObject(v)) return void c.add(at, 'must be an object');
  if (!isName(v.id)) c.add(`${at}.id`, 'must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$');
  else if (seen.has(v.id)) c.add(`${at}.id`, `duplicates "${v.id}"`);
  else seen.add(v.id);
  str(c, v, 'text', at, LIMITS.text, true);
  if (v.done !== undefined && typeof v.done !== 'boolean') c.add(`${at}.done`, 'must be true or false');
  return { ...v, done: v.done === true } as Criterion;
}

function checkLog(c: Checker, v: unknown, at: string): LogEntry | undefined {
  if (!isPlainObject(v)) return void c.add(at, 'must be an object');
  if (typeof v.at !== 'string' || Number.isNaN(Date.parse(v.at))) c.add(`${at}.at`, 'must be an ISO 8601 time');
  str(c, v, 'message', at, LIMITS.message, true);
  if (v.author !== undefined && v.author !== null) str(c, v, 'author', at, LIMITS.author, false);
  const out = { ...v } as LogEntry;
  if (out.author === null) delete out.author;
  return out;
}

function checkCard(c: Checker, v: unknown, at: string): Card | undefined {
  if (!isPlainObject(v)) return void c.add(at, 'must be an object');
  if (!isName(v.id)) c.add(`${at}.id`, 'must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$');
  str(c, v, 'title', at, LIMITS.title, true);
  if (v.description !== undefined && v.description !== null) str(c, v, 'description', at, LIMITS.description, false);
  if (v.status !== undefined) str(c, v, 'status', at, LIMITS.status, true);
  const card = { ...v } as Card;
  if (card.description === null) delete card.description;
  card.status ??= DEFAULT_STATUS;
  if (v.criteria !== undefined && !Array.isArray(v.criteria)) c.add(`${at}.criteria`, 'must be an array');
  else {
    const list = (v.criteria as unknown[] | undefined) ?? [];
    if (list.length > LIMITS.criteria) c.add(`${at}.criteria`, `must hold at most ${LIMITS.criteria} items`);
    const seen = new Set<string>();
    card.criteria = list.map((x, i) => checkCriterion(c, x, `${at}.criteria[${i}]`, seen)!);
  }
  if (v.logs !== undefined && !Array.isArray(v.logs)) c.add(`${at}.logs`, 'must be an array');
  else {
    const list = (v.logs as unknown[] | undefined) ?? [];
    if (list.length > LIMITS.logs) c.add(`${at}.logs`, `must hold at most ${LIMITS.logs} items`);
    card.logs = list.map((x, i) => checkLog(c, x, `${at}.logs[${i}]`)!);
  }
  return card;
}

/**
 * Check a planner document's shape and return it normalized (missing `criteria`/`logs`
 * become `[]`, a missing `status` becomes "todo", `done` defaults to false). `version` and
 * `updatedAt` are the server's: taken from `keep` (the stored values), never from input.
 * Throws 400 `invalid_planner` listing up to 20 problems with their paths.
 */
export function validatePlanner(input: unknown, keep: { version: number; updatedAt: string }): PlannerDoc {
  const c: Checker = new Checker();
  if (!isPlainObject(input)) {
    c.add('$', 'must be an object');
    c.fail();
  }
  const doc = { ...input } as Record<string, unknown>;
  const cards: Card[] = [];
  if (!Array.isArray(input.cards)) c.add('$.cards', input.cards === undefined ? 'is required' : 'must be an array');
  else {
    if (input.cards.length > LIMITS.cards) c.add('$.cards', `must hold at most ${LIMITS.cards} items`);
    const ids = new Set<string>();
    input.cards.forEach((x, i) => {
      const card = checkCard(c, x, `$.cards[${i}]`);
      if (!card) return;
      if (typeof card.id === 'string') {
        if (ids.has(card.id)) c.add(`$.cards[${i}].id`, `duplicates "${card.id}"`);
        ids.add(card.id);
      }
      cards.push(card);
    });
  }
  if (c.problems.length > 0) c.fail();
  return { ...doc, version: keep.version, updatedAt: keep.updatedAt, cards } as PlannerDoc;
}

/** Check one card on its own (create, merge); `at` names it in problems. */
export function validateCard(input: unknown, at = '$'): Card {
  const c: Checker = new Checker();
  const card = checkCard(c, input, at);
  if (c.problems.length > 0 || !card) c.fail();
  return card;
}

export function validateLog(input: unknown, at = '$'): LogEntry {
  const c: Checker = new Checker();
  const log = checkLog(c, input, at);
  if (c.problems.length > 0 || !log) c.fail();
  return log;
}

/** A document as read from disk: the same shape, plus an integer `version` ≥ 0. */
export function parseStored(raw: unknown): PlannerDoc {
  if (!isPlainObject(raw) || !Number.isInteger(raw.version) || (raw.version as number) < 0) {
    throw new AppError('SM_ERR_PLANNER_CORRUPT', '.vibe/planner.json has no integer "version".');
  }
  try {
    return validatePlanner(raw, { version: raw.version as number, updatedAt: typeof raw.updatedAt === 'string' ? raw.updatedAt : new Date(0).toISOString() });
  } catch (err) {
    throw new AppError('SM_ERR_PLANNER_CORRUPT', undefined, { details: (err as AppError).details, cause: err });
  }
}

export function emptyPlanner(): PlannerDoc {
  return { version: 0, updatedAt: new Date(0).toISOString(), cards: [] };
}

/**
 * Parse an `If-Match` header into versions: `"3"`, `3`, `W/"3"`, a comma list, or `*`
 * (any). Anything else is 400.
 */
export function parseIfMatch(header: string | undefined): number[] | '*' | undefined {
  if (header === undefined || header.trim() === '') return undefined;
  if (header.trim() === '*') return '*';
  const out: number[] = [];
  for (const part of header.split(',')) {
    const m = /^\s*(?:W\/)?"?(\d{1,15})"?\s*$/.exec(part);
    if (!m) throw new AppError('SM_ERR_VALIDATION', 'If-Match must be a planner version such as "3" or 3.', { details: { field: 'If-Match' } });
    out.push(Number(m[1]));
  }
  return out;
}
