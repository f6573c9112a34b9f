import WebSocket from 'ws';
import { StringDecoder } from 'node:string_decoder';
import type { Target } from './connection.js';
import { wsUrl } from './connection.js';
import { CliError, EXIT } from './errors.js';

/** Reconnect backoff: first delay, doubling to the cap. */
const RECONNECT_FIRST_MS = 250;
const RECONNECT_MAX_MS = 5000;
/** Give up when the server stays unreachable this long. */
const RECONNECT_GIVE_UP_MS = 60_000;
/** Input typed while disconnected is held up to this much, then dropped (a paste into a dead link). */
const PENDING_INPUT_MAX = 64 * 1024;
/** Ctrl-\ (FS): the detach key, as tmux's prefix-d but one key. */
export const DETACH_KEY = 0x1c;

export interface Frame {
  type: string;
  [k: string]: any;
}

export type StreamEnd = { how: 'detached' } | { how: 'exited'; frame: Frame };

export interface StreamOptions {
  target: Target;
  sessionId: string;
  /** Write output bytes (strings as the server sends them). */
  write: (data: string) => void;
  /** Status lines for the user (stderr, or the terminal in attach mode). */
  notice: (text: string) => void;
  /** First (replay) output: keep only its last N lines (logs --follow). */
  tailLines?: number | undefined;
  /** Called after each `attached` (e.g. send the terminal size). */
  onAttached?: (f: Frame) => void;
}

/**
 * A session's output over `/ws`, written strictly by byte offset: after a dropped connection
 * it re-attaches `since` the next byte it lacks, and cuts whatever the server re-sends, so
 * nothing is written twice; bytes the ring no longer holds are reported, not hidden.
 */
export class SessionStream {
  private ws: WebSocket | undefined;
  private next: number | undefined;
  private firstOutput = true;
  private stopped = false;
  private attempt = 0;
  private downSince: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastError: string | undefined;
  /** True between `attached` and the connection's end: input may go out directly. */
  private attached = false;
  private readonly pending: string[] = [];
  private pendingBytes = 0;
  private settle!: { resolve: (e: StreamEnd) => void; reject: (e: Error) => void };
  readonly done: Promise<StreamEnd>;
  /** performance.now() of the attach request and of the first output written. */
  readonly timing: { attachSent?: number; firstOutput?: number } = {};

  constructor(private readonly o: StreamOptions) {
    this.done = new Promise((resolve, reject) => {
      this.settle = { resolve, reject };
    });
  }

  start(): void {
    this.connect();
  }

  /** Send a frame if connected. */
  send(frame: Frame): boolean {
    if (this.ws?.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /** Keys typed before the (re)attach completes are held and sent right after it, in order. */
  input(data: string): void {
    if (!data) return;
    if (this.attached && this.send({ type: 'input', sessionId: this.o.sessionId, data })) return;
    if (this.pendingBytes + data.length > PENDING_INPUT_MAX) return;
    this.pending.push(data);
    this.pendingBytes += data.length;
  }

  private flushInput(): void {
    const held = this.pending.splice(0);
    this.pendingBytes = 0;
    if (held.length) this.send({ type: 'input', sessionId: this.o.sessionId, data: held.join('') });
  }

  /** Leave the session running: detach and close. */
  detach(): void {
    this.send({ type: 'detach', sessionId: this.o.sessionId });
    this.finish({ how: 'detached' });
  }

  private finish(end: StreamEnd | Error): void {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.timer);
    const ws = this.ws;
    this.ws = undefined;
    if (ws) {
      ws.removeAllListeners('close');
      ws.on('error', () => {});
      // Flush the detach frame, then close.
      ws.close(1000);
    }
    if (end instanceof Error) this.settle.reject(end);
    else this.settle.resolve(end);
  }

  private connect(): void {
    const ws = new WebSocket(wsUrl(this.o.target), { handshakeTimeout: 10_000 });
    this.ws = ws;
    ws.on('open', () => {
      this.attempt = 0;
      this.downSince = undefined;
      ws.send(JSON.stringify({ type: 'auth', token: this.o.target.token }));
      const attach: Frame = { type: 'attach', sessionId: this.o.sessionId };
      if (this.next !== undefined) attach.since = this.next;
      this.timing.attachSent ??= performance.now();
      ws.send(JSON.stringify(attach));
    });
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      let f: Frame;
      try {
        f = JSON.parse(data.toString()) as Frame;
      } catch {
        return;
      }
      this.onFrame(f);
    });
    ws.on('unexpected-response', (_req, res) => {
      const status = res.statusCode ?? 0;
      res.resume();
      if (status === 401 || status === 403) this.finish(new CliError(EXIT.AUTH, `the server refused the WebSocket (${status}): check the token`));
      else this.lost(`upgrade refused (${status})`);
    });
    ws.on('error', (err) => {
      // 'close' follows; remember why for the give-up message.
      this.lastError = (err as NodeJS.ErrnoException).code ?? err.message;
    });
    ws.on('close', (code, reason) => {
      if (this.ws !== ws || this.stopped) return;
      this.ws = undefined;
      this.attached = false;
      if (code === 4001) return this.finish(new CliError(EXIT.AUTH, 'unauthorized: the server refused the token on /ws'));
      if (code === 4003) return this.finish(new CliError(EXIT.AUTH, 'the share link was revoked'));
      this.lost(code === 4008 ? 'fell behind (4008)' : `connection closed (${code}${reason.length ? ` ${reason.toString()}` : ''})`);
    });
  }

  private lost(why: string): void {
    if (this.stopped) return;
    this.downSince ??= Date.now();
    if (Date.now() - this.downSince > RECONNECT_GIVE_UP_MS) {
      this.finish(new CliError(EXIT.UNREACHABLE, `lost the server at ${this.o.target.url} (${this.lastError ?? why}) and could not reconnect for ${RECONNECT_GIVE_UP_MS / 1000} s`));
      return;
    }
    if (this.attempt === 0) this.o.notice(`[${why}; reconnecting…]`);
    const delay = Math.min(RECONNECT_MAX_MS, RECONNECT_FIRST_MS * 2 ** this.attempt);
    this.attempt++;
    this.timer = setTimeout(() => this.connect(), delay);
  }

  private onFrame(f: Frame): void {
    if (f.type === 'error') {
      if (f.code === 'session_not_found') return this.finish(new CliError(EXIT.NOT_FOUND, 'no such session (404)'));
      if (f.code === 'unauthorized' || f.code === 'auth_timeout') return this.finish(new CliError(EXIT.AUTH, `unauthorized: ${String(f.message)}`));
      if (f.code === 'read_only') return this.o.notice('[read-only: this token may only watch]');
      this.o.notice(`[server: ${String(f.code)}: ${String(f.message)}]`);
      return;
    }
    if (f.sessionId !== this.o.sessionId) return;
    switch (f.type) {
      case 'attached': {
        const offset = typeof f.offset === 'number' ? f.offset : 0;
        if (this.next === undefined) this.next = offset;
        else if (f.gap === true && offset > this.next) {
          this.o.notice(`[${offset - this.next} bytes of output were not kept while disconnected]`);
          this.next = offset;
        } else this.o.notice('[reconnected]');
        this.attached = true;
        this.o.onAttached?.(f);
        this.flushInput();
        return;
      }
      case 'output':
        return this.onOutput(f);
      case 'exit':
        return this.finish({ how: 'exited', frame: f });
    }
  }

  private onOutput(f: Frame): void {
    if (typeof f.data !== 'string' || typeof f.offset !== 'number') return;
    let data: string = f.data;
    const buf = Buffer.from(data, 'utf8');
    const end = f.offset + buf.length;
    if (this.next === undefined) this.next = f.offset;
    if (end <= this.next) return;
    if (f.offset < this.next) data = new StringDecoder('utf8').write(buf.subarray(this.next - f.offset));
    this.next = end;
    if (this.firstOutput) {
      this.firstOutput = false;
      this.timing.firstOutput = performance.now();
      if (this.o.tailLines !== undefined) data = lastLines(data, this.o.tailLines);
    }
    if (data) this.o.write(data);
  }
}

/** The last `n` lines of a chunk (a trailing newline does not count as a line). */
export function lastLines(s: string, n: number): string {
  const parts = s.split('\n');
  const trailing = parts[parts.length - 1] === '';
  if (trailing) parts.pop();
  return parts.slice(-n).join('\n') + (trailing ? '\n' : '');
}
