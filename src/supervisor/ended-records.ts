import type { SessionRecord } from './session.js';

/**
 * Which ended sessions stay in memory.
 *
 * Every record is kept in the store for good; in memory (lists, lookups by id without a
 * read) a node keeps its live sessions and the newest `capacity` ended ones, by the order
 * they ended. Without a bound the registry grew by a record per session for the life of the
 * process (~1.2 KB of heap per ended session in the create/kill soak). Older ended sessions
 * are still found by id (read from the store); lists show the newest.
 */
export class EndedRecords {
  private readonly order = new Set<string>();

  constructor(private readonly capacity: number) {}

  /** `id` ended (again): it is now the newest. Returns the ids that fall out, oldest first. */
  ended(id: string): string[] {
    this.order.delete(id);
    this.order.add(id);
    const out: string[] = [];
    for (const old of this.order) {
      if (this.order.size - out.length <= this.capacity) break;
      out.push(old);
    }
    for (const old of out) this.order.delete(old);
    return out;
  }

  /** `id` runs again (a restart): it is not an ended session any more. */
  revived(id: string): void {
    this.order.delete(id);
  }
}

/** When a session ended, for ordering (ISO strings compare in time order). */
function endedAt(r: SessionRecord): string {
  return r.endedAt ?? r.createdAt;
}

/**
 * The newest `capacity` ended records met in a scan of the store (boot), chosen without
 * holding the others: at most twice the capacity is held at any time. A record offered
 * twice (a store scan may repeat one) counts once.
 */
export class NewestEnded {
  private byId = new Map<string, SessionRecord>();

  constructor(private readonly capacity: number) {}

  offer(r: SessionRecord): void {
    this.byId.set(r.id, r);
    if (this.byId.size >= 2 * Math.max(1, this.capacity)) this.trim();
  }

  /** The chosen records, the one that ended first first. */
  oldestFirst(): SessionRecord[] {
    this.trim();
    return [...this.byId.values()].reverse();
  }

  private trim(): void {
    const kept = [...this.byId.values()].sort((a, b) => (endedAt(a) < endedAt(b) ? 1 : endedAt(a) > endedAt(b) ? -1 : 0)).slice(0, this.capacity);
    this.byId = new Map(kept.map((r) => [r.id, r]));
  }
}
