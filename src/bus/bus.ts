/**
 * Event seam. Topics are strings such as `org:<orgId>`, `project:<orgId>/<projectName>`,
 * `session:<id>`. `MemoryBus` delivers in-process; a Redis implementation carries the same
 * calls across nodes (pub/sub for live traffic, streams for replayable events).
 */
export interface BusEvent {
  topic: string;
  name: string;
  payload: unknown;
  /** ISO 8601 time of publication. */
  at: string;
  /**
   * Set on replayable events only (see `isReplayableEvent`): the position in the topic's
   * bounded history, the same on every node, increasing per topic. Pass it back to
   * `readSince` (e.g. as SSE `Last-Event-ID`) to resume without loss or repeat.
   * Format `<ms>-<seq>`; compare with `compareEventIds`, never as strings.
   */
  id?: string;
}

export type BusHandler = (event: BusEvent) => void;

export interface Bus {
  publish(topic: string, name: string, payload: unknown): Promise<void>;
  /** Returns the function that ends this subscription. */
  subscribe(topic: string, handler: BusHandler): () => void;
  /**
   * Replayable events of `topic` published after `lastId` (all retained ones when absent),
   * oldest first, at most `limit`. History is bounded (count and age), so a very old
   * `lastId` silently resumes from the oldest retained event. Throws on a malformed id.
   */
  readSince(topic: string, lastId?: string, limit?: number): Promise<BusEvent[]>;
  close(): Promise<void>;
}

/**
 * Events a client may need to replay (DESIGN §1): planner writes, deploy steps, session
 * lifecycle, cohost grants and revocations. They get an `id` and a bounded history per
 * topic; everything else (terminal output, forwarded input) is live only.
 */
const REPLAYABLE_EVENT = /^(?:planner:updated$|deploy:|session:|cohost:)/;

export function isReplayableEvent(_topic: string, name: string): boolean {
  return REPLAYABLE_EVENT.test(name);
}

const EVENT_ID = /^(\d{1,20})-(\d{1,20})$/;

/** True for a well-formed event id (`<ms>-<seq>`, as Redis stream ids). */
export function isEventId(id: string): boolean {
  return EVENT_ID.test(id);
}

/** Order of two event ids: negative, zero or positive. Throws on a malformed id. */
export function compareEventIds(a: string, b: string): number {
  const ma = EVENT_ID.exec(a);
  const mb = EVENT_ID.exec(b);
  if (!ma || !mb) throw new TypeError(`malformed event id: ${JSON.stringify(ma ? b : a)}`);
  const ms = BigInt(ma[1]!) - BigInt(mb[1]!);
  if (ms !== 0n) return ms < 0n ? -1 : 1;
  const seq = BigInt(ma[2]!) - BigInt(mb[2]!);
  return seq === 0n ? 0 : seq < 0n ? -1 : 1;
}
