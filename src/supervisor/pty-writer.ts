/**
 * Input to a pty master, written synchronously from the supervisor's main thread, which has
 * the keystroke, through its own descriptor of the terminal (src/supervisor/actor-pool.ts).
 *
 * node-pty queues every write through `fs.write`, so each keystroke crossed to a libuv pool
 * thread and back: two thread wake-ups (and their futexes) per keystroke, measured as the
 * largest cost of an interactive echo. The master is non-blocking, so a direct write
 * either goes in at once or fails with EAGAIN; only what the kernel refused waits in an
 * in-order queue, retried on the next loop turn while it makes progress and with a short
 * growing delay while the agent reads nothing.
 */
import { writeSync } from 'node:fs';

/** Longest wait between retries while the agent reads no input. */
const MAX_RETRY_MS = 16;

export class PtyWriter {
  private readonly queue: Buffer[] = [];
  private retryImmediate: NodeJS.Immediate | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private delayMs = 0;
  /** Bytes the kernel refused for good (the terminal is gone); for tests and metrics. */
  dropped = 0;

  /** `open()` is false once the fd may be closed (or reused): nothing is written after that. */
  constructor(private readonly fd: number, private readonly open: () => boolean) {}

  write(data: string | Buffer): void {
    let buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    if (buf.length === 0 || !this.open()) return;
    if (this.queue.length === 0) {
      const n = this.tryWrite(buf);
      if (n < 0) return;
      if (n === buf.length) return;
      buf = buf.subarray(n);
    }
    this.queue.push(buf);
    this.schedule(true);
  }

  /** Bytes written, or -1 when the terminal is gone (the queue is dropped). */
  private tryWrite(buf: Buffer): number {
    try {
      return writeSync(this.fd, buf);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return 0;
      // EIO/EBADF: the agent's side of the terminal is gone; input has nowhere to go.
      this.dropAll(buf.length);
      return -1;
    }
  }

  private dropAll(extra = 0): void {
    for (const b of this.queue) this.dropped += b.length;
    this.dropped += extra;
    this.queue.length = 0;
  }

  private schedule(progress: boolean): void {
    if (this.retryImmediate || this.retryTimer) return;
    this.delayMs = progress ? 0 : Math.min(MAX_RETRY_MS, Math.max(1, this.delayMs * 2));
    if (this.delayMs === 0) this.retryImmediate = setImmediate(() => this.drain());
    else this.retryTimer = setTimeout(() => this.drain(), this.delayMs);
  }

  private drain(): void {
    this.retryImmediate = undefined;
    this.retryTimer = undefined;
    if (!this.open()) {
      this.dropAll();
      return;
    }
    let progress = false;
    while (this.queue.length > 0) {
      const head = this.queue[0]!;
      const n = this.tryWrite(head);
      if (n < 0) return;
      if (n > 0) progress = true;
      if (n < head.length) {
        this.queue[0] = head.subarray(n);
        this.schedule(progress);
        return;
      }
      this.queue.shift();
    }
  }

  /** Stop retrying (the terminal closed). */
  dispose(): void {
    if (this.retryImmediate) clearImmediate(this.retryImmediate);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryImmediate = undefined;
    this.retryTimer = undefined;
    this.dropAll();
  }
}
