import { AppError } from './errors.js';

/** Names (orgId, projectName, card ids…): DESIGN §3. */
export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isName(v: unknown): v is string {
  return typeof v === 'string' && NAME_RE.test(v) && v !== '.' && v !== '..';
}

export function assertName(v: unknown, field: string): string {
  if (!isName(v)) {
    throw new AppError('SM_ERR_INVALID_NAME', `"${field}" must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$.`, {
      details: { field },
    });
  }
  return v;
}

export function assertSessionId(v: unknown): string {
  if (typeof v !== 'string' || !UUID_RE.test(v)) throw new AppError('SM_ERR_SESSION_NOT_FOUND');
  return v.toLowerCase();
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function bodyObject(v: unknown): Record<string, unknown> {
  if (!isPlainObject(v)) throw new AppError('SM_ERR_VALIDATION', 'The body must be a JSON object.');
  return v;
}

function fail(field: string, want: string): never {
  throw new AppError('SM_ERR_VALIDATION', `"${field}" must be ${want}.`, { details: { field } });
}

export function optString(o: Record<string, unknown>, field: string, maxLen = 1 << 20): string | undefined {
  const v = o[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') fail(field, 'a string');
  if (v.length > maxLen) fail(field, `at most ${maxLen} characters`);
  return v;
}

export function reqString(o: Record<string, unknown>, field: string, maxLen = 1 << 20): string {
  const v = optString(o, field, maxLen);
  if (v === undefined) fail(field, 'a string');
  return v;
}

export function optInt(o: Record<string, unknown>, field: string, min: number, max: number): number | undefined {
  const v = o[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) fail(field, `an integer from ${min} to ${max}`);
  return v;
}

export function reqInt(o: Record<string, unknown>, field: string, min: number, max: number): number {
  const v = optInt(o, field, min, max);
  if (v === undefined) fail(field, `an integer from ${min} to ${max}`);
  return v;
}

export function optBool(o: Record<string, unknown>, field: string): boolean | undefined {
  const v = o[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') fail(field, 'true or false');
  return v;
}

export function optObject(o: Record<string, unknown>, field: string): Record<string, unknown> | undefined {
  const v = o[field];
  if (v === undefined || v === null) return undefined;
  if (!isPlainObject(v)) fail(field, 'an object');
  return v;
}

/** Terminal size bounds: what xterm.js and the kernel accept comfortably. */
export const MAX_COLS = 1000;
export const MAX_ROWS = 500;

export const ALLOWED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGKILL', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'] as const;
export type AllowedSignal = (typeof ALLOWED_SIGNALS)[number];

export function assertSignal(v: unknown): AllowedSignal {
  if (typeof v !== 'string' || !(ALLOWED_SIGNALS as readonly string[]).includes(v)) throw new AppError('SM_ERR_INVALID_SIGNAL');
  return v as AllowedSignal;
}

/** Deepest JSON nesting accepted in a body or a frame: far above any real document, far below a stack overflow. */
export const MAX_JSON_DEPTH = 64;

/** True when a parsed JSON value nests deeper than `limit` (checked without recursion). */
export function tooDeep(value: unknown, limit = MAX_JSON_DEPTH): boolean {
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length) {
    const [v, d] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (d > limit) return true;
    if (Array.isArray(v)) for (const x of v) stack.push([x, d + 1]);
    else for (const k in v) stack.push([(v as Record<string, unknown>)[k], d + 1]);
  }
  return false;
}
