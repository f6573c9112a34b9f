import type { SessionRecord } from './session.js';

/**
 * Sessions waiting for a slot, in admission order: higher `priority` first, then older
 * first (creation order breaks ties between equal timestamps). Sizes are bounded by
 * MAX_QUEUE, so a sorted array with binary insertion is plenty.
 */
export class AdmissionQueue {
  private items: Array<{ r: SessionRecord; seq: number }> = [];
  private seq = 0;

  get size(): number {
    return this.items.length;
  }

  push(r: SessionRecord): void {
    const item = { r, seq: this.seq++ };
    let lo = 0;
    let hi = this.items.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (before(this.items[mid]!, item)) lo = mid + 1;
      else hi = mid;
    }
    this.items.splice(lo, 0, item);
  }

  shift(): SessionRecord | undefined {
    return this.items.shift()?.r;
  }

  remove(id: string): boolean {
    const i = this.items.findIndex((x) => x.r.id === id);
    if (i < 0) return false;
    this.items.splice(i, 1);
    return true;
  }

  /** 1-based place in admission order, or undefined when not queued. */
  position(id: string): number | undefined {
    const i = this.items.findIndex((x) => x.r.id === id);
    return i < 0 ? undefined : i + 1;
  }

  drain(): SessionRecord[] {
    const out = this.items.map((x) => x.r);
    this.items = [];
    return out;
  }
}

function before(a: { r: SessionRecord; seq: number }, b: { r: SessionRecord; seq: number }): boolean {
  if (a.r.priority !== b.r.priority) return a.r.priority > b.r.priority;
  if (a.r.createdAt !== b.r.createdAt) return a.r.createdAt < b.r.createdAt;
  return a.seq < b.seq;
}
