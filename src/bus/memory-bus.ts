import { compareEventIds, isEventId, isReplayableEvent, type Bus, type BusEvent, type BusHandler } from './bus.js';

/** Replayable events kept per topic in memory (one node: a deploy's steps, a session's lifecycle). */
export const MEMORY_HISTORY_PER_TOPIC = 1_000;
/** Topics with a history; the least recently written is forgotten first (bounds memory). */
export const MEMORY_HISTORY_TOPICS = 1_000;
/** `readSince` answers at most this many events unless asked for fewer. */
export const READ_SINCE_DEFAULT_LIMIT = 1_000;

export interface MemoryBusOptions {
  historyPerTopic?: number;
  historyTopics?: number;
  replayable?: (topic: string, name: string) => boolean;
}

/** In-process bus: synchronous fan-out to the handlers of a topic, bounded replay history. */
export class MemoryBus implements Bus {
  private readonly handlers = new Map<string, Set<BusHandler>>();
  private readonly history = new Map<string, BusEvent[]>();
  private readonly historyPerTopic: number;
  private readonly historyTopics: number;
  private readonly replayable: (topic: string, name: string) => boolean;
  private lastMs = 0;
  private seq = 0;
  private closed = false;

  constructor(opts: MemoryBusOptions = {}) {
    this.historyPerTopic = opts.historyPerTopic ?? MEMORY_HISTORY_PER_TOPIC;
    this.historyTopics = opts.historyTopics ?? MEMORY_HISTORY_TOPICS;
    this.replayable = opts.replayable ?? isReplayableEvent;
  }

  async publish(topic: string, name: string, payload: unknown): Promise<void> {
    if (this.closed) return;
    const event: BusEvent = { topic, name, payload, at: new Date().toISOString() };
    if (this.replayable(topic, name)) {
      event.id = this.nextId();
      this.remember(event);
    }
    const set = this.handlers.get(topic);
    if (!set) return;
    for (const h of [...set]) {
      try {
        h(event);
      } catch {
        // A failing subscriber must not break the publisher or other subscribers.
      }
    }
  }

  subscribe(topic: string, handler: BusHandler): () => void {
    let set = this.handlers.get(topic);
    if (!set) this.handlers.set(topic, (set = new Set()));
    set.add(handler);
    return () => {
      const s = this.handlers.get(topic);
      if (!s) return;
      s.delete(handler);
      if (s.size === 0) this.handlers.delete(topic);
    };
  }

  async readSince(topic: string, lastId?: string, limit = READ_SINCE_DEFAULT_LIMIT): Promise<BusEvent[]> {
    if (lastId !== undefined && !isEventId(lastId)) throw new TypeError(`malformed event id: ${JSON.stringify(lastId)}`);
    const events = this.history.get(topic) ?? [];
    const out: BusEvent[] = [];
    for (const e of events) {
      if (out.length >= limit) break;
      if (lastId === undefined || compareEventIds(e.id!, lastId) > 0) out.push(e);
    }
    return out;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.handlers.clear();
    this.history.clear();
  }

  /** Ids shaped like Redis stream ids (`<ms>-<seq>`), strictly increasing even if the clock steps back. */
  private nextId(): string {
    const now = Date.now();
    if (now > this.lastMs) {
      this.lastMs = now;
      this.seq = 0;
    } else {
      this.seq++;
    }
    return `${this.lastMs}-${this.seq}`;
  }

  private remember(event: BusEvent): void {
    let list = this.history.get(event.topic);
    if (list) {
      this.history.delete(event.topic); // re-insert: the Map's order is least recently written first
    } else {
      list = [];
      if (this.history.size >= this.historyTopics) {
        const oldest = this.history.keys().next().value;
        if (oldest !== undefined) this.history.delete(oldest);
      }
    }
    this.history.set(event.topic, list);
    list.push(event);
    if (list.length > this.historyPerTopic) list.splice(0, list.length - this.historyPerTopic);
  }
}
