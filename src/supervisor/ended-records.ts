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
