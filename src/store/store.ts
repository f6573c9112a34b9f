/**
 * Persistence seam. One narrow, backend-neutral interface: documents by collection and id,
 * and append-only logs. `FsStore` (default) keeps them on disk with atomic writes; a Redis
 * implementation fits behind the same calls. Names are validated by the caller's domain
 * code; the store additionally refuses anything that could leave its root.
 */
export interface Store {
  readonly kind: 'fs' | 'redis';
  /** Read one document, or undefined when absent. */
  get<T>(collection: string, id: string): Promise<T | undefined>;
  /** Replace one document atomically (never a torn file). */
  put<T>(collection: string, id: string, doc: T): Promise<void>;
  /** Remove a document (and anything stored under it). True when something was removed. */
  delete(collection: string, id: string): Promise<boolean>;
  /** Every document of a collection, in no particular order. */
  list<T>(collection: string): Promise<T[]>;
  /**
   * Every document of a collection, in no particular order, handed to `visit` a batch at a
   * time: memory stays bounded by a batch, not the collection (a boot over 100,000 session
   * records keeps only what it selects). A document that vanishes meanwhile is skipped; one
   * may be visited twice while the collection changes under the scan (Redis's HSCAN), so
   * callers key what they keep by id.
   */
  scan<T>(collection: string, visit: (doc: T) => void): Promise<void>;
  /** Append one entry to a log; a crash may lose the entry being written, never earlier ones. */
  append(log: string, entry: unknown): Promise<void>;
  /**
   * Read a log, oldest first, or newest first with `newestFirst`; `limit` bounds the count.
   * Entries appended before the call are in the answer, even if their append has not settled.
   */
  readLog<T>(log: string, opts?: { limit?: number; newestFirst?: boolean }): Promise<T[]>;
  /** Flush pending writes and release resources. Safe to call twice. */
  close(): Promise<void>;
}

const SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** A collection or log path: `/`-separated safe segments, never `.` or `..`. */
export function assertStorePath(p: string): void {
  const parts = p.split('/');
  for (const part of parts) {
    if (!SEGMENT.test(part) || part === '.' || part === '..') throw new Error(`unsafe store path: ${JSON.stringify(p)}`);
  }
}
