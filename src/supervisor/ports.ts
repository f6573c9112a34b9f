/** Hands out ports from PORT_RANGE to sessions (the agent's `PORT`), lowest free first. */
export class PortAllocator {
  private readonly used = new Set<number>();
  private next: number;

  constructor(private readonly low: number, private readonly high: number) {
    this.next = low;
  }

  /** A free port, or undefined when the range is exhausted. */
  allocate(): number | undefined {
    const size = this.high - this.low + 1;
    for (let i = 0; i < size; i++) {
      const p = this.low + ((this.next - this.low + i) % size);
      if (!this.used.has(p)) {
        this.used.add(p);
        this.next = p + 1 > this.high ? this.low : p + 1;
        return p;
      }
    }
    return undefined;
  }

  reserve(port: number): void {
    this.used.add(port);
  }

  release(port: number | null | undefined): void {
    if (port != null) this.used.delete(port);
  }

  get inUse(): number {
    return this.used.size;
  }
}
