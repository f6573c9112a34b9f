import type { Bus, BusEvent, BusHandler } from './bus.js';

/** In-process bus: synchronous fan-out to the handlers of a topic. */
export class MemoryBus implements Bus {
  private readonly handlers = new Map<string, Set<BusHandler>>();
  private closed = false;

  async publish(topic: string, name: string, payload: unknown): Promise<void> {
    if (this.closed) return;
    const set = this.handlers.get(topic);
    if (!set) return;
    const event: BusEvent = { topic, name, payload, at: new Date().toISOString() };
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

  async close(): Promise<void> {
    this.closed = true;
    this.handlers.clear();
  }
}
