/** A real `ws` client with a frame queue and output assembly by offset. */
import WebSocket from 'ws';

export interface Frame {
  type: string;
  [k: string]: any;
}

export class Client {
  readonly frames: Frame[] = [];
  private waiters: Array<{ pred: (f: Frame) => boolean; resolve: (f: Frame) => void }> = [];
  closed: { code: number; reason: string } | undefined;
  private closeWaiters: Array<(c: { code: number; reason: string }) => void> = [];
  /** Output bytes per session, assembled strictly by offset (a hole or overlap throws). */
  readonly outputs = new Map<string, { start: number; end: number; chunks: Buffer[] }>();
  errors: string[] = [];

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => {
      const f = JSON.parse(isBinary ? '{}' : data.toString()) as Frame;
      if (f.type === 'output') this.onOutput(f);
      this.frames.push(f);
      for (const w of [...this.waiters]) {
        if (w.pred(f)) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve(f);
        }
      }
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      for (const w of this.closeWaiters.splice(0)) w(this.closed);
    });
    ws.on('error', () => {});
  }

  static async connect(url: string, opts: { token?: string; cohost?: string; query?: string } = {}): Promise<Client> {
    const q = opts.token ? `?token=${encodeURIComponent(opts.token)}` : opts.cohost ? `?cohost=${encodeURIComponent(opts.cohost)}` : (opts.query ?? '');
    const ws = new WebSocket(url + q);
    const c = new Client(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
      ws.once('error', reject);
    });
    return c;
  }

  private onOutput(f: Frame): void {
    const data = Buffer.from(f.data as string, 'utf8');
    let o = this.outputs.get(f.sessionId);
    if (!o) {
      o = { start: f.offset, end: f.offset, chunks: [] };
      this.outputs.set(f.sessionId, o);
    }
    if (f.offset !== o.end) this.errors.push(`output for ${f.sessionId} at ${f.offset}, expected ${o.end}`);
    o.chunks.push(data);
    o.end = f.offset + data.length;
  }

  /** Forget assembled output (a re-attach starts a new assembly at its `attached.offset`). */
  resetOutput(sessionId: string, at?: number): void {
    if (at === undefined) this.outputs.delete(sessionId);
    else this.outputs.set(sessionId, { start: at, end: at, chunks: [] });
  }

  text(sessionId: string): string {
    const o = this.outputs.get(sessionId);
    return o ? Buffer.concat(o.chunks).toString('utf8') : '';
  }

  bytes(sessionId: string): Buffer {
    const o = this.outputs.get(sessionId);
    return o ? Buffer.concat(o.chunks) : Buffer.alloc(0);
  }

  send(frame: Record<string, unknown>): void {
    this.ws.send(JSON.stringify(frame));
  }

  next(pred: (f: Frame) => boolean, what = 'frame', timeoutMs = 10_000, fromIndex = 0): Promise<Frame> {
    const existing = this.frames.slice(fromIndex).find(pred);
    if (existing) return Promise.resolve(existing);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve: (f: Frame) => { clearTimeout(t); resolve(f); } };
      const t = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`timed out waiting for ${what}; last frames: ${JSON.stringify(this.frames.slice(-3)).slice(0, 500)}`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  /** Wait for a new frame matching `pred` (ignores frames already received). */
  nextNew(pred: (f: Frame) => boolean, what = 'frame', timeoutMs = 10_000): Promise<Frame> {
    return this.next(pred, what, timeoutMs, this.frames.length);
  }

  async attach(sessionId: string, since?: number): Promise<Frame> {
    const from = this.frames.length;
    this.send(since === undefined ? { type: 'attach', sessionId } : { type: 'attach', sessionId, since });
    const f = await this.next((x) => (x.type === 'attached' || x.type === 'error') && (x.sessionId === sessionId || x.type === 'error'), 'attached', 10_000, from);
    if (f.type === 'error') throw new Error(`attach failed: ${f.code}`);
    return f;
  }

  async waitForText(sessionId: string, needle: string, timeoutMs = 10_000): Promise<void> {
    const t0 = Date.now();
    while (!this.text(sessionId).includes(needle)) {
      if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${JSON.stringify(needle)} in output: ${JSON.stringify(this.text(sessionId).slice(-300))}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  waitClose(timeoutMs = 10_000): Promise<{ code: number; reason: string }> {
    if (this.closed) return Promise.resolve(this.closed);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('timed out waiting for close')), timeoutMs);
      this.closeWaiters.push((c) => {
        clearTimeout(t);
        resolve(c);
      });
    });
  }

  close(): void {
    this.ws.close();
  }
}
