/**
 * Per-user and per-org rate limits on the routes that cost the most: session creation
 * (a pty, a process, a port) and the "expensive" routes (a workspace zip, a git clone, a
 * deploy). A token bucket per key: `capacity` requests at once, refilled at `perMin / 60`
 * a second, so a burst up to the per-minute figure passes and a steady stream above it
 * gets 429 with `Retry-After` (whole seconds until one request fits again).
 *
 * Both buckets of a request (its user's and its org's) must hold a token; a refused
 * request takes none, so a refused burst does not push the retry time further out.
 *
 * Configuration (read once, `rateLimitsFromEnv`; `0` turns a limit off):
 * - `RATE_LIMIT_SESSIONS_PER_MIN` (per user, default 120), `RATE_LIMIT_ORG_SESSIONS_PER_MIN`
 *   (per org, default 5 × the user figure);
 * - `RATE_LIMIT_EXPENSIVE_PER_MIN` (per user, default 30), `RATE_LIMIT_ORG_EXPENSIVE_PER_MIN`
 *   (per org, default 5 × the user figure).
 *
 * Wiring (one line each, before the work starts): `checkRateLimit(ctx.who, 'sessions')` in
 * POST /api/sessions; `checkRateLimit(ctx.who, 'expensive')` in the dev-env download, git
 * clone and deploy POST handlers; `configureRateLimits(rateLimitsFromEnv(env))` once at start.
 */
import { ConfigError } from '../config.js';
import { AppError } from '../errors.js';

export type RateKind = 'sessions' | 'expensive';

export interface RateLimits {
  /** Requests per minute per user, by kind; 0 = unlimited. */
  user: Record<RateKind, number>;
  /** Requests per minute per org, by kind; 0 = unlimited. */
  org: Record<RateKind, number>;
}

/** Defaults: generous for one builder's editor, tight enough to stop a script from fork-bombing the node. */
const DEFAULT_USER: Record<RateKind, number> = { sessions: 120, expensive: 30 };
/** An org's limit is this many users' worth unless set. */
const ORG_MULTIPLIER = 5;
/** Largest accepted figure (a million a minute is "off" in practice). */
const MAX_PER_MIN = 1_000_000;
/** Buckets kept before idle (full) ones are pruned: bounds memory under many distinct users. */
const PRUNE_ABOVE = 10_000;

const ENV_NAMES: Record<'user' | 'org', Record<RateKind, string>> = {
  user: { sessions: 'RATE_LIMIT_SESSIONS_PER_MIN', expensive: 'RATE_LIMIT_EXPENSIVE_PER_MIN' },
  org: { sessions: 'RATE_LIMIT_ORG_SESSIONS_PER_MIN', expensive: 'RATE_LIMIT_ORG_EXPENSIVE_PER_MIN' },
};

function perMin(env: Record<string, string | undefined>, name: string, def: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return def;
  if (!/^\d+$/.test(raw.trim())) throw new ConfigError(name, `must be a whole number of requests per minute (0 = no limit), got "${raw}"`);
  const n = Number(raw.trim());
  if (n > MAX_PER_MIN) throw new ConfigError(name, `must be at most ${MAX_PER_MIN}, got ${n}`);
  return n;
}

/** The limits from the environment; a bad value is a ConfigError naming the variable. */
export function rateLimitsFromEnv(env: Record<string, string | undefined>): RateLimits {
  const user = {
    sessions: perMin(env, ENV_NAMES.user.sessions, DEFAULT_USER.sessions),
    expensive: perMin(env, ENV_NAMES.user.expensive, DEFAULT_USER.expensive),
  };
  const org = {
    sessions: perMin(env, ENV_NAMES.org.sessions, Math.min(MAX_PER_MIN, user.sessions * ORG_MULTIPLIER)),
    expensive: perMin(env, ENV_NAMES.org.expensive, Math.min(MAX_PER_MIN, user.expensive * ORG_MULTIPLIER)),
  };
  return { user, org };
}

interface Bucket {
  tokens: number;
  at: number;
  perMin: number;
}

/** Who is asking: a principal (`userId`, `orgId`) or any object with those fields. */
export interface RateKey {
  userId: string;
  orgId?: string | undefined;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    readonly limits: RateLimits,
    private readonly now: () => number = Date.now,
  ) {}

  /** Take one token from the user's and the org's bucket, or throw 429 with Retry-After. */
  check(key: RateKey, kind: RateKind): void {
    const t = this.now();
    const wanted: Bucket[] = [];
    let waitMs = 0;
    const consider = (name: string, limit: number) => {
      if (limit <= 0) return;
      const b = this.bucket(name, limit, t);
      if (b.tokens >= 1) wanted.push(b);
      else waitMs = Math.max(waitMs, ((1 - b.tokens) * 60_000) / limit);
    };
    consider(`u\u0000${kind}\u0000${key.userId}`, this.limits.user[kind]);
    if (key.orgId !== undefined) consider(`o\u0000${kind}\u0000${key.orgId}`, this.limits.org[kind]);
    if (waitMs > 0) {
      const retryAfter = Math.max(1, Math.ceil(waitMs / 1000));
      throw new AppError('SM_ERR_RATE_LIMITED', `Too many ${kind === 'sessions' ? 'session starts' : 'expensive requests (zip, clone, deploy)'}; retry in ${retryAfter} s.`, {
        details: { kind, retryAfterSeconds: retryAfter },
        headers: { 'Retry-After': String(retryAfter) },
      });
    }
    for (const b of wanted) b.tokens -= 1;
  }

  /** Buckets held now (for tests and metrics). */
  get size(): number {
    return this.buckets.size;
  }

  private bucket(name: string, limit: number, t: number): Bucket {
    let b = this.buckets.get(name);
    if (!b || b.perMin !== limit) {
      if (this.buckets.size >= PRUNE_ABOVE) this.prune(t);
      b = { tokens: limit, at: t, perMin: limit };
      this.buckets.set(name, b);
      return b;
    }
    const elapsed = Math.max(0, t - b.at);
    b.tokens = Math.min(limit, b.tokens + (elapsed * limit) / 60_000);
    b.at = t;
    return b;
  }

  /** Forget buckets that have refilled completely: they behave exactly like new ones. */
  private prune(t: number): void {
    for (const [name, b] of this.buckets) {
      if (b.tokens + ((t - b.at) * b.perMin) / 60_000 >= b.perMin) this.buckets.delete(name);
    }
  }
}

let current: RateLimiter | undefined;

/** Set the process-wide limiter (once at start, from `rateLimitsFromEnv(env)`). */
export function configureRateLimits(limits: RateLimits, now?: () => number): RateLimiter {
  current = new RateLimiter(limits, now);
  return current;
}

/**
 * Throw 429 (`rate_limited`, `Retry-After`) when `key`'s user or org is over its limit for
 * `kind`; otherwise count the request. Uses the configured limiter, or the environment's
 * limits when none was configured.
 */
export function checkRateLimit(key: RateKey, kind: RateKind): void {
  current ??= new RateLimiter(rateLimitsFromEnv(process.env));
  current.check(key, kind);
}
