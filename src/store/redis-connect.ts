import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from '../log.js';

/**
 * Boot-time Redis connection (DESIGN §1): `REDIS_URL` set and reachable → a ready client;
 * set but unreachable → `undefined` after a short wait, so the server can log a warning and
 * fall back to the filesystem store. Every client made here has an `error` listener, so an
 * outage is logged, never thrown.
 */

/** How long boot waits for Redis before falling back: short, boot must not hang on a dead host. */
export const REDIS_CONNECT_TIMEOUT_MS = 3_000;
/** Reconnect backoff ceiling: a restarted Redis is picked up within ~2 s. */
export const REDIS_RETRY_MAX_DELAY_MS = 2_000;
/**
 * Reconnect attempts a queued command survives before it fails: with the backoff above,
 * a command waits ~3 s through a blip, then the caller sees an error instead of hanging.
 */
export const REDIS_MAX_RETRIES_PER_REQUEST = 5;
/** A command with no reply by then fails (a hung Redis must not hang requests or event delivery). */
export const REDIS_COMMAND_TIMEOUT_MS = 10_000;
/** The same Redis error is logged at most once in this window (ioredis emits one per retry). */
export const REDIS_ERROR_LOG_INTERVAL_MS = 10_000;

export type RedisErrorSink = (err: Error, context: string) => void;

/** Options every session-manager Redis client shares. */
export function redisClientOptions(extra: RedisOptions = {}): RedisOptions {
  return {
    connectTimeout: REDIS_CONNECT_TIMEOUT_MS,
    maxRetriesPerRequest: REDIS_MAX_RETRIES_PER_REQUEST,
    commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), REDIS_RETRY_MAX_DELAY_MS),
    enableReadyCheck: true,
    ...extra,
  };
}

/** `redis://user:secret@host:6379/0` → `redis://host:6379/0` for log lines. */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return '[unparsable REDIS_URL]';
  }
}

/** A sink that passes each distinct error (code + message + context) at most once per interval. */
export function throttleErrors(sink: RedisErrorSink | undefined, intervalMs = REDIS_ERROR_LOG_INTERVAL_MS): RedisErrorSink {
  const lastLogged = new Map<string, number>();
  return (err, context) => {
    if (!sink) return;
    const key = `${context}:${(err as { code?: string }).code ?? ''}:${err.message}`;
    const now = Date.now();
    const prev = lastLogged.get(key);
    if (prev !== undefined && now - prev < intervalMs) return;
    if (lastLogged.size > 100) lastLogged.clear();
    lastLogged.set(key, now);
    try {
      sink(err, context);
    } catch {
      // A failing sink must not turn a logged outage into a crash.
    }
  };
}

/**
 * Listen for `error` on a client (mandatory: an EventEmitter `error` without a listener
 * crashes the process) and pass each distinct error to `sink`, throttled. Returns the
 * function that removes the listener.
 */
export function watchRedisErrors(client: Redis, context: string, sink: RedisErrorSink | undefined): () => void {
  const throttled = throttleErrors(sink);
  const onError = (err: Error) => throttled(err, context);
  client.on('error', onError);
  return () => client.off('error', onError);
}

/**
 * Connect to `url` and wait for READY (and a PING) at most `timeoutMs`. Returns the ready
 * client (the caller owns it: `quit()` it on shutdown), or `undefined` when Redis cannot be
 * reached in time; in that case the client is disconnected and nothing keeps retrying.
 */
export async function connectRedis(
  url: string,
  log: Pick<Logger, 'warn' | 'info'>,
  opts: { timeoutMs?: number; redisOptions?: RedisOptions } = {},
): Promise<Redis | undefined> {
  const timeoutMs = opts.timeoutMs ?? REDIS_CONNECT_TIMEOUT_MS;
  const where = redactRedisUrl(url);
  let client: Redis;
  try {
    client = new Redis(url, redisClientOptions({ lazyConnect: true, connectTimeout: timeoutMs, ...opts.redisOptions }));
  } catch (err) {
    log.warn('REDIS_URL is not usable; using the filesystem store', { redis: where, error: err as Error });
    return undefined;
  }
  watchRedisErrors(client, 'redis', (err) => log.warn('redis error', { redis: where, error: err }));
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      (async () => {
        await client.connect();
        await client.ping();
      })(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    log.info('redis connected', { redis: where });
    return client;
  } catch (err) {
    client.disconnect(false);
    log.warn('REDIS_URL is set but Redis is unreachable; falling back to the filesystem store', { redis: where, error: err as Error });
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}
