import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { isEventId, isReplayableEvent, type Bus, type BusEvent, type BusHandler } from './bus.js';
import { READ_SINCE_DEFAULT_LIMIT } from './memory-bus.js';
import { throttleErrors, watchRedisErrors, type RedisErrorSink } from '../store/redis-connect.js';

/**
 * Redis bus: the `MemoryBus` semantics across nodes.
 *
 * - Every node delivers its own events to its own subscribers directly, in publish order per
 *   topic (as `MemoryBus`), so local sessions keep working while Redis is away; the copy
 *   that comes back over pub/sub carries this instance's id and is skipped.
 * - Live traffic: `PUBLISH <prefix>bus:<topic>` with `{"o":<instance>,"e":<event>}`.
 * - Replayable events (`isReplayableEvent`): one Lua call does `XADD <prefix>stream:{<topic>}
 *   MAXLEN ~ N` (the entry id becomes `event.id`, the same on every node), refreshes the
 *   stream's TTL and PUBLISHes, so the stream and the live copy never disagree in order.
 *   Local delivery of such an event waits for its id (one round trip) and holds back later
 *   events of the same topic, keeping per-topic order.
 * - Two connections duplicated from the given client: `pub` (commands, streams) and `sub`
 *   (SUBSCRIBE only). Neither queues commands while disconnected: a publish during an outage
 *   is delivered locally, reported through `onError`, and not sent later (stale terminal
 *   output is worthless; viewers heal by offset, SSE clients by `readSince`).
 * - After any reconnect, `sub` subscribes again to every topic that still has a handler,
 *   then `onConnectionChange(true)` fires so owners can resync what they missed.
 */

/** Entries kept per replayable topic (approximate: MAXLEN ~ trims whole radix-tree nodes). */
export const REDIS_STREAM_MAX_LEN = 10_000;
/** A replayable topic's stream is dropped this long after its last event (finished deploys, old sessions). */
export const REDIS_STREAM_TTL_MS = 24 * 60 * 60 * 1000;
/** Bus commands fail after this; a replayable event then reaches local subscribers without an id. */
export const REDIS_BUS_COMMAND_TIMEOUT_MS = 5_000;
/** `ready()` waits at most this long for both connections and pending subscriptions. */
export const REDIS_BUS_READY_TIMEOUT_MS = 10_000;

export interface RedisBusOptions {
  /** Key and channel prefix; must match on every node of a fleet. Default `sm:`. */
  prefix?: string;
  /** Redis and delivery errors; never thrown at the caller or the process. */
  onError?: RedisErrorSink;
  /** Both connections became usable (true, after subscriptions are restored) or one was lost (false). */
  onConnectionChange?: (up: boolean) => void;
  replayable?: (topic: string, name: string) => boolean;
  streamMaxLen?: number;
  /** 0 keeps streams forever (still bounded by `streamMaxLen`). */
  streamTtlMs?: number;
}

export interface RedisBusStats {
  published: number;
  /** Publishes that reached Redis. */
  sent: number;
  /** Publishes Redis did not take (outage, error): delivered locally only. */
  sendFailed: number;
  /** Events received from other nodes and dispatched. */
  received: number;
  /**
   * Bytes handed to Redis and not yet acknowledged. A producer of bulk traffic (terminal
   * output) should hold back or coalesce above a budget: Redis cuts a subscriber whose
   * backlog passes `client-output-buffer-limit pubsub` (default 32 MB, or 8 MB for 60 s).
   */
  inflightBytes: number;
  subscribedTopics: number;
  up: boolean;
}

/** XADD + PEXPIRE + PUBLISH in one step; returns the stream id. */
const PUBLISH_REPLAYABLE = `
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'e', ARGV[2])
local ttl = tonumber(ARGV[5])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
redis.call('PUBLISH', ARGV[3], '{"o":"' .. ARGV[4] .. '","id":"' .. id .. '","e":' .. ARGV[2] .. '}')
return id
`;

interface Pending {
  event: BusEvent;
  ready: boolean;
}

interface Wire {
  o?: string;
  id?: string;
  e?: BusEvent;
}

export class RedisBus implements Bus {
  readonly prefix: string;
  /** Identifies this bus on the wire, so it skips its own events coming back. */
  readonly instanceId = randomUUID();
  private readonly pub: Redis;
  private readonly sub: Redis;
  private readonly handlers = new Map<string, Set<BusHandler>>();
  /** Per topic, local deliveries waiting for an earlier replayable event's id. */
  private readonly pending = new Map<string, Pending[]>();
  private readonly inflightSubscribes = new Set<Promise<unknown>>();
  private readonly replayable: (topic: string, name: string) => boolean;
  private readonly streamMaxLen: number;
  private readonly streamTtlMs: number;
  private readonly onError: RedisErrorSink;
  private readonly onConnectionChange: ((up: boolean) => void) | undefined;
  private readonly counters = { published: 0, sent: 0, sendFailed: 0, received: 0, inflightBytes: 0 };
  private up = false;
  /** Between a (re)connect of `sub` and the SUBSCRIBE that restores every topic. */
  private resubscribing = false;
  private closed = false;
  private closing: Promise<void> | undefined;

  /** Duplicates `client` twice (it is not used or closed by the bus). */
  constructor(client: Redis, opts: RedisBusOptions = {}) {
    this.prefix = opts.prefix ?? 'sm:';
    this.replayable = opts.replayable ?? isReplayableEvent;
    this.streamMaxLen = opts.streamMaxLen ?? REDIS_STREAM_MAX_LEN;
    this.streamTtlMs = opts.streamTtlMs ?? REDIS_STREAM_TTL_MS;
    this.onError = throttleErrors(opts.onError);
    this.onConnectionChange = opts.onConnectionChange;
    const common = {
      lazyConnect: false,
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      commandTimeout: REDIS_BUS_COMMAND_TIMEOUT_MS,
    };
    this.pub = client.duplicate({ ...common, connectionName: 'sm-bus-pub' });
    this.sub = client.duplicate({ ...common, autoResubscribe: false, connectionName: 'sm-bus-sub' });
    watchRedisErrors(this.pub, 'bus:pub', opts.onError);
    watchRedisErrors(this.sub, 'bus:sub', opts.onError);
    this.sub.on('message', (channel: string, message: string) => this.onMessage(channel, message));
    this.sub.on('ready', () => this.resubscribe());
    this.pub.on('ready', () => this.updateUp());
    for (const c of [this.pub, this.sub]) {
      c.on('close', () => this.updateUp());
      c.on('end', () => this.updateUp());
    }
    this.sub.on('close', () => {
      // Redis also closes a subscriber that fell too far behind (client-output-buffer-limit).
      if (this.handlers.size > 0) this.report(new Error('subscriber connection closed; events published until it is back are lost'), 'bus:sub');
    });
  }

  /** Both connections are ready (readiness probes). */
  get isUp(): boolean {
    return this.up;
  }

  stats(): RedisBusStats {
    return { ...this.counters, subscribedTopics: this.handlers.size, up: this.up };
  }

  /** Round trip to Redis in ms on the publishing connection. Rejects when Redis is away. */
  async ping(): Promise<number> {
    const t0 = performance.now();
    await this.pub.ping();
    return performance.now() - t0;
  }

  /**
   * Resolves true once both connections are ready and every subscription made so far is
   * active on the server (events published elsewhere from now on will arrive); false after
   * `timeoutMs`.
   */
  async ready(timeoutMs = REDIS_BUS_READY_TIMEOUT_MS): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < deadline) {
      if (this.pub.status === 'ready' && this.sub.status === 'ready') {
        if (this.inflightSubscribes.size === 0) return true;
        await Promise.allSettled([...this.inflightSubscribes]);
        continue;
      }
      await new Promise((r) => setTimeout(r, 20).unref());
    }
    return false;
  }

  async publish(topic: string, name: string, payload: unknown): Promise<void> {
    if (this.closed) return;
    this.counters.published++;
    const event: BusEvent = { topic, name, payload, at: new Date().toISOString() };
    let json: string | undefined;
    try {
      json = JSON.stringify(event);
    } catch (err) {
      this.report(err, `bus: event ${name} on ${topic} is not JSON-serializable; delivered locally only`);
    }
    const replayable = this.replayable(topic, name);
    if (json === undefined || this.pub.status !== 'ready') {
      if (json !== undefined) {
        this.counters.sendFailed++;
        this.report(new Error(`redis not ready (${this.pub.status})`), 'bus:publish');
      }
      this.enqueueLocal(event, true);
      return;
    }
    const bytes = json.length;
    this.counters.inflightBytes += bytes;
    if (!replayable) {
      const sent = this.pub.publish(this.channel(topic), `{"o":"${this.instanceId}","e":${json}}`);
      this.enqueueLocal(event, true);
      await sent.then(
        () => void this.counters.sent++,
        (err) => {
          this.counters.sendFailed++;
          this.report(err, 'bus:publish');
        },
      );
      this.counters.inflightBytes -= bytes;
      return;
    }
    const entry = this.enqueueLocal(event, false);
    try {
      const id = (await this.pub.eval(
        PUBLISH_REPLAYABLE,
        1,
        this.streamKey(topic),
        this.streamMaxLen,
        json,
        this.channel(topic),
        this.instanceId,
        this.streamTtlMs,
      )) as string;
      event.id = id;
      this.counters.sent++;
    } catch (err) {
      this.counters.sendFailed++;
      this.report(err, 'bus:publish');
    } finally {
      this.counters.inflightBytes -= bytes;
      if (entry) {
        entry.ready = true;
        this.flushLocal(topic);
      }
    }
  }

  subscribe(topic: string, handler: BusHandler): () => void {
    if (this.closed) return () => {};
    let set = this.handlers.get(topic);
    if (!set) {
      this.handlers.set(topic, (set = new Set()));
      if (this.sub.status === 'ready') this.track(this.sub.subscribe(this.channel(topic)), 'bus:subscribe');
      // Not ready: the 'ready' handler subscribes to every topic that has handlers.
    }
    set.add(handler);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const s = this.handlers.get(topic);
      if (!s) return;
      s.delete(handler);
      if (s.size > 0) return;
      this.handlers.delete(topic);
      if (!this.closed && this.sub.status === 'ready') this.track(this.sub.unsubscribe(this.channel(topic)), 'bus:unsubscribe');
    };
  }

  async readSince(topic: string, lastId?: string, limit = READ_SINCE_DEFAULT_LIMIT): Promise<BusEvent[]> {
    if (lastId !== undefined && !isEventId(lastId)) throw new TypeError(`malformed event id: ${JSON.stringify(lastId)}`);
    if (limit <= 0) return [];
    const rows = (await this.pub.xrange(this.streamKey(topic), lastId === undefined ? '-' : `(${lastId}`, '+', 'COUNT', Math.floor(limit))) as Array<
      [string, string[]]
    >;
    const out: BusEvent[] = [];
    for (const [id, fields] of rows) {
      const i = fields.indexOf('e');
      const raw = i >= 0 ? fields[i + 1] : undefined;
      if (raw === undefined) continue;
      try {
        const e = JSON.parse(raw) as BusEvent;
        out.push({ topic: e.topic, name: e.name, payload: e.payload, at: e.at, id });
      } catch {
        // Not written by a bus: skip.
      }
    }
    return out;
  }

  /** Stop delivering, then QUIT both connections. Publishing afterwards does nothing. Safe twice. */
  close(): Promise<void> {
    return (this.closing ??= (async () => {
      this.closed = true;
      this.handlers.clear();
      this.pending.clear();
      const wasUp = this.up;
      this.up = false;
      await Promise.all(
        [this.pub, this.sub].map(async (c) => {
          if (c.status === 'end') return;
          try {
            if (c.status === 'ready') await c.quit();
            else c.disconnect(false);
          } catch {
            c.disconnect(false);
          }
        }),
      );
      if (wasUp) this.safe(() => this.onConnectionChange?.(false));
    })());
  }

  /** Stop delivering and drop both connections now. Safe twice; `close()` afterwards resolves. */
  destroy(): void {
    if (this.closing) return;
    this.closed = true;
    this.handlers.clear();
    this.pending.clear();
    this.up = false;
    this.pub.disconnect(false);
    this.sub.disconnect(false);
    this.closing = Promise.resolve();
  }

  private onMessage(channel: string, message: string): void {
    if (this.closed) return;
    let wire: Wire;
    try {
      wire = JSON.parse(message) as Wire;
    } catch (err) {
      this.report(err, `bus: unreadable message on ${channel}`);
      return;
    }
    if (wire.o === this.instanceId) return;
    const e = wire.e;
    if (!e || typeof e.topic !== 'string' || channel !== this.channel(e.topic)) return;
    this.counters.received++;
    const event: BusEvent = { topic: e.topic, name: e.name, payload: e.payload, at: e.at };
    if (wire.id) event.id = wire.id;
    this.dispatch(event);
  }

  /** Queue a local delivery behind earlier pending ones of the topic; deliver what is ready. */
  private enqueueLocal(event: BusEvent, ready: boolean): Pending | undefined {
    const queue = this.pending.get(event.topic);
    if (!queue) {
      if (ready) {
        this.dispatch(event);
        return undefined;
      }
      const entry = { event, ready };
      this.pending.set(event.topic, [entry]);
      return entry;
    }
    const entry = { event, ready };
    queue.push(entry);
    return entry;
  }

  private flushLocal(topic: string): void {
    const queue = this.pending.get(topic);
    if (!queue) return;
    while (queue.length > 0 && queue[0]!.ready) this.dispatch(queue.shift()!.event);
    if (queue.length === 0) this.pending.delete(topic);
  }

  private dispatch(event: BusEvent): void {
    const set = this.handlers.get(event.topic);
    if (!set) return;
    for (const h of [...set]) {
      try {
        h(event);
      } catch {
        // A failing subscriber must not break the publisher or other subscribers.
      }
    }
  }

  private resubscribe(): void {
    if (this.closed) return;
    const channels = [...this.handlers.keys()].map((t) => this.channel(t));
    if (channels.length === 0) return this.updateUp();
    this.resubscribing = true;
    void this.track(this.sub.subscribe(...channels), 'bus:resubscribe').then(() => {
      this.resubscribing = false;
      this.updateUp();
    });
  }

  private updateUp(): void {
    if (this.closed) return;
    const up = this.pub.status === 'ready' && this.sub.status === 'ready' && !this.resubscribing;
    if (up === this.up) return;
    this.up = up;
    this.safe(() => this.onConnectionChange?.(up));
  }

  private track(p: Promise<unknown>, context: string): Promise<void> {
    const settled = p.then(
      () => undefined,
      (err) => this.report(err, context),
    );
    this.inflightSubscribes.add(settled);
    void settled.then(() => this.inflightSubscribes.delete(settled));
    return settled;
  }

  private report(err: unknown, context: string): void {
    if (this.closed) return;
    const e = err instanceof Error ? err : new Error(String(err));
    this.onError(e, context);
  }

  private safe(fn: () => void): void {
    try {
      fn();
    } catch {
      // Callbacks are observers: their failures are theirs.
    }
  }

  private channel(topic: string): string {
    return `${this.prefix}bus:${topic}`;
  }

  private streamKey(topic: string): string {
    return `${this.prefix}stream:{${topic}}`;
  }
}
