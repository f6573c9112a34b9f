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
}

export type BusHandler = (event: BusEvent) => void;

export interface Bus {
  publish(topic: string, name: string, payload: unknown): Promise<void>;
  /** Returns the function that ends this subscription. */
  subscribe(topic: string, handler: BusHandler): () => void;
  close(): Promise<void>;
}
