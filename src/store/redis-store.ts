import type { Redis } from 'ioredis';
import { assertStorePath, type Store } from './store.js';
import { watchRedisErrors, type RedisErrorSink } from './redis-connect.js';

/**
 * Redis store: the same calls as `FsStore`, for several nodes sharing one Redis.
 *
 * Key layout (prefix default `sm:`; the `{…}` hash tag keeps a collection's keys in one
 * Redis Cluster slot):
 * - `<prefix>doc:{<collection>}`  hash, id → JSON document. `list` is one HVALS, no SCAN.
 * - `<prefix>exp:{<collection>}`  sorted set, id → expiry (ms since epoch) for documents put
 *   with `ttlMs`. Expired documents are invisible at once and removed lazily by the next
 *   `get`/`list` of that collection (Redis < 7.4 has no per-field hash TTL).
 * - `<prefix>log:{<log>}`         list of JSON entries, RPUSH + LTRIM to a bounded length.
 *
 * Deleting a document also deletes the log `<collection>/<id>`, as `FsStore` does.
 */

/** Entries kept per log (jobs log ≈ 300 B/entry → ~30 MB at the cap). Older entries are trimmed. */
export const REDIS_LOG_MAX_LENGTH = 100_000;

export interface RedisStoreOptions {
  /** Key prefix; tests use a unique one per run. Default `sm:`. */
  prefix?: string;
  /** Entries kept per log: a number for all logs, or per log (undefined → default, 0 → unbounded). */
  logMaxLength?: number | ((log: string) => number | undefined);
  /** Quit the client on `close()` (default true: the store owns the connection it is given). */
  closeClient?: boolean;
  /** Redis errors (connection loss, reconnect attempts): logged, never thrown at the process. */
  onError?: RedisErrorSink;
}

export interface PutOptions {
  /** The document expires this many ms after the put (ephemeral data: cohost tokens, leases). */
  ttlMs?: number;
}

/** Fields per HSCAN batch of a scan. */
const SCAN_COUNT = 500;

/** Drop ids whose expiry has passed (and is still the expiry they were put with). */
const SWEEP_EXPIRED = `
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
for i = 1, #ids, 500 do
  local chunk = {}
  for j = i, math.min(i + 499, #ids) do chunk[#chunk + 1] = ids[j] end
  redis.call('HDEL', KEYS[1], unpack(chunk))
  redis.call('ZREM', KEYS[2], unpack(chunk))
end
return #ids
`;

export class RedisStore implements Store {
  readonly kind = 'redis' as const;
  readonly prefix: string;
  private readonly logMaxLength: (log: string) => number;
  private readonly closeClient: boolean;
  private readonly unwatch: () => void;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly redis: Redis,
    opts: RedisStoreOptions = {},
  ) {
    this.prefix = opts.prefix ?? 'sm:';
    const cap = opts.logMaxLength;
    this.logMaxLength =
      typeof cap === 'function' ? (log) => cap(log) ?? REDIS_LOG_MAX_LENGTH : () => cap ?? REDIS_LOG_MAX_LENGTH;
    this.closeClient = opts.closeClient ?? true;
    this.unwatch = watchRedisErrors(redis, 'store', opts.onError);
  }

  /** Round trip to Redis in ms (readiness checks, metrics). Rejects when Redis is away. */
  async ping(): Promise<number> {
    const t0 = performance.now();
    await this.redis.ping();
    return performance.now() - t0;
  }

  async get<T>(collection: string, id: string): Promise<T | undefined> {
    this.check(collection, id);
    const res = await this.redis.multi().hget(this.docKey(collection), id).zscore(this.expKey(collection), id).exec();
    const [json, score] = this.results(res) as [string | null, string | null];
    if (json === null) return undefined;
    if (score !== null && Number(score) <= Date.now()) {
      void this.sweep(collection);
      return undefined;
    }
    return JSON.parse(json) as T;
  }

  async put<T>(collection: string, id: string, doc: T, opts: PutOptions = {}): Promise<void> {
    this.check(collection, id);
    this.assertOpen();
    const json = JSON.stringify(doc);
    if (json === undefined) throw new TypeError('document is not JSON-serializable');
    const m = this.redis.multi().hset(this.docKey(collection), id, json);
    if (opts.ttlMs !== undefined && opts.ttlMs !== Infinity) {
      if (!(opts.ttlMs > 0) || !Number.isFinite(opts.ttlMs)) throw new RangeError(`ttlMs must be a positive number, got ${opts.ttlMs}`);
      m.zadd(this.expKey(collection), Date.now() + Math.ceil(opts.ttlMs), id);
    } else {
      m.zrem(this.expKey(collection), id);
    }
    this.results(await m.exec());
  }

  async delete(collection: string, id: string): Promise<boolean> {
    this.check(collection, id);
    this.assertOpen();
    const res = this.results(
      await this.redis
        .multi()
        .hdel(this.docKey(collection), id)
        .zrem(this.expKey(collection), id)
        .del(this.logKey(`${collection}/${id}`))
        .exec(),
    );
    return Number(res[0]) > 0;
  }

  async list<T>(collection: string): Promise<T[]> {
    assertStorePath(collection);
    const [, values] = this.results(
      await this.redis
        .multi()
        .eval(SWEEP_EXPIRED, 2, this.docKey(collection), this.expKey(collection), Date.now())
        .hvals(this.docKey(collection))
        .exec(),
    ) as [number, string[]];
    const out: T[] = [];
    for (const v of values) {
      try {
        out.push(JSON.parse(v) as T);
      } catch {
        // Not ours (written by hand?): skip, as FsStore skips unreadable files.
      }
    }
    return out;
  }

  async scan<T>(collection: string, visit: (doc: T) => void): Promise<void> {
    assertStorePath(collection);
    const key = this.docKey(collection);
    await this.redis.eval(SWEEP_EXPIRED, 2, key, this.expKey(collection), Date.now());
    let cursor = '0';
    do {
      const [next, flat] = await this.redis.hscan(key, cursor, 'COUNT', SCAN_COUNT);
      cursor = next;
      // [field, value, field, value, …]; HSCAN may repeat a field across batches.
      for (let i = 1; i < flat.length; i += 2) {
        try {
          visit(JSON.parse(flat[i]!) as T);
        } catch (err) {
          if (!(err instanceof SyntaxError)) throw err;
          // Not ours (written by hand?): skip, as list does.
        }
      }
    } while (cursor !== '0');
  }

  async append(log: string, entry: unknown): Promise<void> {
    assertStorePath(log);
    this.assertOpen();
    const json = JSON.stringify(entry);
    if (json === undefined) throw new TypeError('log entry is not JSON-serializable');
    const key = this.logKey(log);
    const cap = this.logMaxLength(log);
    const m = this.redis.multi().rpush(key, json);
    if (cap > 0) m.ltrim(key, -cap, -1);
    this.results(await m.exec());
  }

  async readLog<T>(log: string, opts: { limit?: number; newestFirst?: boolean } = {}): Promise<T[]> {
    assertStorePath(log);
    const key = this.logKey(log);
    const limit = opts.limit;
    if (limit !== undefined && limit <= 0) return [];
    let raw: string[];
    if (limit === undefined) raw = await this.redis.lrange(key, 0, -1);
    else if (opts.newestFirst) raw = await this.redis.lrange(key, -Math.floor(limit), -1);
    else raw = await this.redis.lrange(key, 0, Math.floor(limit) - 1);
    const out: T[] = [];
    for (const line of raw) {
      try {
        out.push(JSON.parse(line) as T);
      } catch {
        // Unreadable entry: skip it, keep the rest (as FsStore skips a torn line).
      }
    }
    if (opts.newestFirst) out.reverse();
    return out;
  }

  /**
   * Pending commands finish (QUIT is queued behind them), then the connection closes.
   * Writes after `close()` reject. Safe twice.
   */
  close(): Promise<void> {
    return (this.closing ??= (async () => {
      if (!this.closeClient) {
        this.unwatch();
        return;
      }
      // Our error listener stays: a late socket error after QUIT must not crash the process.
      if (this.redis.status === 'end') return;
      try {
        await this.redis.quit();
      } catch {
        this.redis.disconnect(false);
      }
    })());
  }

  /** Drop the connection now (pending commands fail). Writes afterwards reject. Safe twice. */
  destroy(): void {
    this.closing ??= Promise.resolve();
    if (this.closeClient) this.redis.disconnect(false);
    else this.unwatch();
  }

  private sweep(collection: string): Promise<void> {
    return this.redis
      .eval(SWEEP_EXPIRED, 2, this.docKey(collection), this.expKey(collection), Date.now())
      .then(
        () => undefined,
        () => undefined,
      );
  }

  private check(collection: string, id: string): void {
    assertStorePath(collection);
    assertStorePath(id);
  }

  private assertOpen(): void {
    if (this.closing) throw new Error('store is closed');
  }

  /** Unwrap a MULTI reply: the first command error is thrown with its cause. */
  private results(res: Array<[Error | null, unknown]> | null): unknown[] {
    if (!res) throw new Error('redis transaction aborted');
    return res.map(([err, value]) => {
      if (err) throw err;
      return value;
    });
  }

  private docKey(collection: string): string {
    return `${this.prefix}doc:{${collection}}`;
  }

  private expKey(collection: string): string {
    return `${this.prefix}exp:{${collection}}`;
  }

  private logKey(log: string): string {
    return `${this.prefix}log:{${log}}`;
  }
}
