import type { Reply } from '../http/reply.js';

/** A comment line this often keeps proxies and load balancers from closing an idle stream. */
export const SSE_HEARTBEAT_MS = 15_000;
/**
 * Bytes queued for a reader that stopped reading. Past this the stream is ended: the
 * reader reconnects with Last-Event-ID and loses nothing, and the server holds no more.
 */
export const SSE_MAX_PENDING_BYTES = 1024 * 1024;
/** EventSource waits this long before reconnecting after a dropped connection. */
const SSE_RETRY_MS = 2000;

/**
 * One Server-Sent Events response over a uWS `Reply`. Every write goes through the Reply,
 * which ignores a response that was aborted or ended. When uWS reports backpressure the
 * stream queues in memory and flushes from `onWritable`.
 */
export class SseStream {
  private pending: string[] = [];
  private pendingBytes = 0;
  private blocked = false;
  private heartbeat: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly closers: Array<() => void> = [];
  /** Resolves when the stream ends (by us or by the client going away). */
  readonly done: Promise<void>;
  private resolveDone!: () => void;

  constructor(private readonly reply: Reply, private readonly heartbeatMs = SSE_HEARTBEAT_MS) {
    this.done = new Promise<void>((r) => (this.resolveDone = r));
  }

  /** Send the status line and headers. False when the client is already gone. */
  open(): boolean {
    const ok = this.reply.beginStream(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache, no-transform',
      'X-Accel-Buffering': 'no',
      'X-Content-Type-Options': 'nosniff',
    });
    if (!ok) {
      this.finish();
      return false;
    }
    this.reply.onAbort(() => this.finish());
    this.reply.res.onWritable(() => {
      this.drain();
      return true;
    });
    // The first bytes also push the headers out.
    this.write(`retry: ${SSE_RETRY_MS}\n\n`);
    this.heartbeat = setInterval(() => this.write(': heartbeat\n\n'), this.heartbeatMs);
    // The response, not this timer, keeps the server busy: never hold the process open for it.
    this.heartbeat.unref();
    return true;
  }

  /** Run `fn` once when the stream ends, however it ends. */
  onClose(fn: () => void): void {
    if (this.closed) fn();
    else this.closers.push(fn);
  }

  /** One event; `id` omitted for events that are not resume points. */
  send(event: string, data: unknown, id?: number): void {
    const head = id === undefined ? '' : `id: ${id}\n`;
    // JSON has no raw newlines, so one data line carries it.
    this.write(`${head}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  /** Flush what is queued and end the response. Safe to call twice. */
  close(): void {
    if (this.closed) return;
    const rest = this.pending.join('');
    this.pending = [];
    this.pendingBytes = 0;
    this.reply.end(rest || undefined);
    this.finish();
  }

  private write(chunk: string): void {
    if (this.closed || !this.reply.open) return this.finish();
    if (this.blocked) {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      if (this.pendingBytes > SSE_MAX_PENDING_BYTES) {
        // A reader this far behind resumes with Last-Event-ID instead of growing our memory.
        this.pending = [];
        this.pendingBytes = 0;
        this.reply.end();
        this.finish();
      }
      return;
    }
    if (!this.reply.write(chunk)) this.blocked = true;
  }

  private drain(): void {
    if (this.closed || !this.reply.open) return;
    this.blocked = false;
    if (this.pending.length === 0) return;
    const chunk = this.pending.join('');
    this.pending = [];
    this.pendingBytes = 0;
    if (!this.reply.write(chunk)) this.blocked = true;
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    for (const fn of this.closers.splice(0)) {
      try {
        fn();
      } catch {
        // A close hook must not throw into uWS.
      }
    }
    this.resolveDone();
  }
}
