import type { HttpResponse } from 'uWebSockets.js';
import { AppError, isAppError } from '../errors.js';

const STATUS_TEXT: Record<number, string> = {
  200: 'OK', 201: 'Created', 202: 'Accepted', 204: 'No Content', 206: 'Partial Content', 304: 'Not Modified',
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed',
  409: 'Conflict', 412: 'Precondition Failed', 413: 'Payload Too Large', 415: 'Unsupported Media Type',
  416: 'Range Not Satisfiable', 429: 'Too Many Requests', 500: 'Internal Server Error', 502: 'Bad Gateway',
  503: 'Service Unavailable', 504: 'Gateway Timeout',
};

export function statusLine(status: number): string {
  return `${status} ${STATUS_TEXT[status] ?? 'Status'}`;
}

/**
 * The one way to answer an HTTP request. uWS forbids touching a response after it was
 * aborted or ended; every method here checks both, so a late answer is a no-op, not a crash.
 */
export class Reply {
  aborted = false;
  ended = false;
  private readonly abortHandlers: Array<() => void> = [];

  constructor(readonly res: HttpResponse) {
    res.onAborted(() => {
      this.aborted = true;
      for (const h of this.abortHandlers.splice(0)) {
        try {
          h();
        } catch {
          /* an abort handler must not throw into uWS */
        }
      }
    });
  }

  /** True while the response may still be written. */
  get open(): boolean {
    return !this.aborted && !this.ended;
  }

  onAbort(handler: () => void): void {
    if (this.aborted) handler();
    else this.abortHandlers.push(handler);
  }

  send(status: number, body: string | Uint8Array, headers: Record<string, string> = {}): void {
    if (!this.open) return;
    this.ended = true;
    this.res.cork(() => {
      this.res.writeStatus(statusLine(status));
      for (const [k, v] of Object.entries(headers)) this.res.writeHeader(k, v);
      this.res.end(body);
    });
  }

  json(status: number, body: unknown, headers: Record<string, string> = {}): void {
    this.send(status, JSON.stringify(body), { 'Content-Type': 'application/json; charset=utf-8', ...headers });
  }

  text(status: number, body: string, contentType = 'text/plain; charset=utf-8', headers: Record<string, string> = {}): void {
    this.send(status, body, { 'Content-Type': contentType, ...headers });
  }

  error(err: unknown): void {
    const e = isAppError(err) ? err : new AppError('SM_ERR_INTERNAL');
    this.json(e.status, e.toJSON(), e.headers ?? {});
  }

  /** Begin a streamed response (SSE, zip, file). Returns false when the response is gone. */
  beginStream(status: number, headers: Record<string, string>): boolean {
    if (!this.open) return false;
    this.res.cork(() => {
      this.res.writeStatus(statusLine(status));
      for (const [k, v] of Object.entries(headers)) this.res.writeHeader(k, v);
    });
    return true;
  }

  /** Write a chunk of a streamed response; false means backpressure (wait for onWritable). */
  write(chunk: string | Uint8Array): boolean {
    if (!this.open) return false;
    let ok = false;
    this.res.cork(() => {
      ok = this.res.write(chunk);
    });
    return ok;
  }

  /** End a streamed response. */
  end(chunk?: string | Uint8Array): void {
    if (!this.open) return;
    this.ended = true;
    this.res.cork(() => {
      this.res.end(chunk);
    });
  }
}
