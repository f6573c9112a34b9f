import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { AppError } from '../errors.js';
import { MAX_JSON_DEPTH, tooDeep } from '../validate.js';
import type { Principal } from '../auth/principal.js';
import { Reply } from './reply.js';

/** Methods whose requests may carry a body; the body is read for these (uWS wants onData at once). */
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * Everything a handler needs about one request. uWS's `HttpRequest` is only valid during
 * the synchronous part of its callback, so the fields are copied out at once and the body
 * reading starts immediately.
 */
export class HttpContext {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  readonly headers: Record<string, string> = {};
  readonly remoteAddress: string;
  readonly reply: Reply;
  params: Record<string, string> = {};
  rest = '';
  principal: Principal | undefined;
  private readonly bodyPromise: Promise<Buffer> | undefined;

  constructor(res: HttpResponse, req: HttpRequest, maxBodyBytes: number) {
    this.method = req.getCaseSensitiveMethod().toUpperCase();
    this.path = req.getUrl();
    this.query = new URLSearchParams(req.getQuery() ?? '');
    req.forEach((k, v) => {
      this.headers[k] = v;
    });
    this.remoteAddress = Buffer.from(res.getRemoteAddressAsText()).toString();
    this.reply = new Reply(res);
    if (BODY_METHODS.has(this.method)) this.bodyPromise = readBody(res, this.reply, this.headers, maxBodyBytes);
    // Unobserved rejections (a handler that never reads its body) are not errors.
    this.bodyPromise?.catch(() => {});
  }

  get res(): HttpResponse {
    return this.reply.res;
  }

  /** The authenticated caller; routes marked `user`/`any` always have one. */
  get who(): Principal {
    if (!this.principal) throw new AppError('SM_ERR_UNAUTHORIZED');
    return this.principal;
  }

  /** The raw body (empty for GET). Rejects with 413 past MAX_BODY_BYTES. */
  async rawBody(): Promise<Buffer> {
    return this.bodyPromise ? this.bodyPromise : Buffer.alloc(0);
  }

  /** The JSON body, or undefined when empty. 415 for a non-JSON content type, 400 for bad JSON. */
  async json(): Promise<unknown> {
    const raw = await this.rawBody();
    if (raw.length === 0) return undefined;
    const ct = (this.headers['content-type'] ?? '').toLowerCase();
    if (!/^application\/([a-z0-9.+-]*\+)?json\s*(;|$)/.test(ct)) throw new AppError('SM_ERR_UNSUPPORTED_MEDIA_TYPE');
    let value: unknown;
    try {
      value = JSON.parse(raw.toString('utf8'));
    } catch {
      throw new AppError('SM_ERR_INVALID_JSON');
    }
    if (tooDeep(value)) throw new AppError('SM_ERR_VALIDATION', `The body nests deeper than ${MAX_JSON_DEPTH} levels.`);
    return value;
  }

  /** True when the caller is on this machine (metrics may be read without a token). */
  get isLoopback(): boolean {
    const a = this.remoteAddress;
    return a === '127.0.0.1' || a === '::1' || a.startsWith('::ffff:127.') || a === '0000:0000:0000:0000:0000:0000:0000:0001' || /^0000:0000:0000:0000:0000:ffff:7f/.test(a);
  }
}

function readBody(res: HttpResponse, reply: Reply, headers: Record<string, string>, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = headers['content-length'];
    if (declared !== undefined && Number(declared) > max) {
      // Refuse before reading; the connection is closed so the rest of the upload is dropped.
      reject(new AppError('SM_ERR_BODY_TOO_LARGE', undefined, { details: { limit: max } }));
      res.onData(() => {});
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    reply.onAbort(() => {
      if (!failed) reject(new AppError('SM_ERR_BAD_REQUEST', 'The client went away.'));
      failed = true;
    });
    res.onData((ab, isLast) => {
      if (failed) return;
      size += ab.byteLength;
      if (size > max) {
        failed = true;
        chunks.length = 0;
        reject(new AppError('SM_ERR_BODY_TOO_LARGE', undefined, { details: { limit: max } }));
        return;
      }
      // The ArrayBuffer is only valid during this callback: copy it.
      chunks.push(Buffer.from(new Uint8Array(ab).slice()));
      if (isLast) resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    });
  });
}
