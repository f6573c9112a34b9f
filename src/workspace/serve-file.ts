import type { Stats } from 'node:fs';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { statusLine } from '../http/reply.js';
import type { HttpContext } from '../http/context.js';

/** Files up to this size are read whole and sent in one write; larger ones are streamed. */
const SMALL_FILE = 512 * 1024;
/** Read size for streamed files. */
const STREAM_CHUNK = 256 * 1024;

export type ByteRange = { start: number; end: number };

/**
 * Parse a `Range` header for a file of `size` bytes: one `bytes=a-b`, `bytes=a-` or
 * `bytes=-n` range. Returns undefined to send the whole file (no header, a unit other than
 * bytes, or several ranges, which RFC 9110 lets a server ignore) and 'unsatisfiable' for 416.
 */
export function parseRange(header: string | undefined, size: number): ByteRange | 'unsatisfiable' | undefined {
  if (!header) return undefined;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m) return undefined;
  const [, a, b] = m;
  if (a === '' && b === '') return undefined;
  let start: number;
  let end: number;
  if (a === '') {
    const n = Number(b);
    if (n === 0) return 'unsatisfiable';
    start = Math.max(0, size - n);
    end = size - 1;
  } else {
    start = Number(a);
    end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
    if (b !== '' && Number(b) < start) return undefined;
  }
  if (start >= size || size === 0) return 'unsatisfiable';
  return { start, end };
}

/** A strong validator from size, mtime and inode: a rewrite or a swap of the file changes it. */
export function fileEtag(st: Stats): string {
  return `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}-${st.ino.toString(16)}"`;
}

function etagMatches(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  if (header.trim() === '*') return true;
  return header.split(',').some((t) => t.trim().replace(/^W\//, '') === etag);
}

/** End a response with no body (HEAD, 304), reporting `length` when given. */
export function endWithoutBody(ctx: HttpContext, status: number, headers: Record<string, string>, length?: number): void {
  const reply = ctx.reply;
  if (!reply.open) return;
  reply.ended = true;
  ctx.res.cork(() => {
    ctx.res.writeStatus(statusLine(status));
    for (const [k, v] of Object.entries(headers)) ctx.res.writeHeader(k, v);
    ctx.res.endWithoutBody(length);
  });
}

/**
 * Serve one regular file with conditional and range support: `ETag`/`If-None-Match` →
 * 304, `Range` → 206 (or 416), `If-Range` honoured, HEAD answered without a body. Large
 * bodies stream through `tryEnd` with uWS backpressure (resume on `onWritable` from the
 * exact offset uWS accepted); an aborted request destroys the read stream. Resolves when
 * the response is done.
 */
export async function serveFile(ctx: HttpContext, file: string, st: Stats, headers: Record<string, string>): Promise<void> {
  const etag = fileEtag(st);
  const base: Record<string, string> = {
    ...headers,
    ETag: etag,
    'Last-Modified': st.mtime.toUTCString(),
    'Accept-Ranges': 'bytes',
  };
  if (etagMatches(ctx.headers['if-none-match'], etag)) {
    endWithoutBody(ctx, 304, base);
    return;
  }
  let range = parseRange(ctx.headers.range, st.size);
  const ifRange = ctx.headers['if-range'];
  if (range !== undefined && ifRange !== undefined && ifRange.trim() !== etag) range = undefined;
  if (range === 'unsatisfiable') {
    ctx.reply.send(416, '', { ...base, 'Content-Range': `bytes */${st.size}` });
    return;
  }
  const start = range ? range.start : 0;
  const end = range ? range.end : st.size - 1;
  const length = st.size === 0 ? 0 : end - start + 1;
  const status = range ? 206 : 200;
  const out = range ? { ...base, 'Content-Range': `bytes ${start}-${end}/${st.size}` } : base;
  if (ctx.method === 'HEAD') {
    endWithoutBody(ctx, status, out, length);
    return;
  }
  if (length <= SMALL_FILE) {
    const fh = await open(file, 'r');
    try {
      const buf = Buffer.alloc(length);
      let got = 0;
      while (got < length) {
        const { bytesRead } = await fh.read(buf, got, length - got, start + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      ctx.reply.send(status, got === length ? buf : buf.subarray(0, got), out);
    } finally {
      await fh.close();
    }
    return;
  }
  await streamBody(ctx, file, start, end, length, status, out);
}

function streamBody(ctx: HttpContext, file: string, start: number, end: number, total: number, status: number, headers: Record<string, string>): Promise<void> {
  const reply = ctx.reply;
  const res = ctx.res;
  return new Promise<void>((resolve) => {
    const stream = createReadStream(file, { start, end, highWaterMark: STREAM_CHUNK });
    let finished = false;
    /** True while a chunk uWS did not fully take waits for onWritable. */
    let waiting = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      stream.destroy();
      resolve();
    };
    reply.onAbort(finish);
    if (!reply.beginStream(status, headers)) return finish();
    stream.on('error', () => {
      if (reply.open) {
        reply.ended = true;
        try {
          res.close();
        } catch {
          /* already gone */
        }
      }
      finish();
    });
    stream.on('end', () => {
      // tryEnd reports done on the last chunk; a file that shrank under us ends short: cut.
      if (waiting) return;
      if (reply.open) {
        reply.ended = true;
        try {
          res.close();
        } catch {
          /* already gone */
        }
      }
      finish();
    });
    stream.on('data', (chunk: Buffer | string) => {
      const buf = chunk as Buffer;
      if (!reply.open) return finish();
      const offsetBefore = res.getWriteOffset();
      let ok = false;
      let done = false;
      res.cork(() => {
        [ok, done] = res.tryEnd(buf, total);
      });
      if (done) {
        reply.ended = true;
        return finish();
      }
      if (ok) return;
      // Backpressure: keep what uWS did not take and wait for the socket to drain.
      stream.pause();
      waiting = true;
      res.onWritable((offset) => {
        if (!reply.open) {
          finish();
          return true;
        }
        let ok2 = false;
        let done2 = false;
        res.cork(() => {
          [ok2, done2] = res.tryEnd(buf.subarray(offset - offsetBefore), total);
        });
        if (done2) {
          reply.ended = true;
          finish();
        } else if (ok2) {
          waiting = false;
          if (stream.readableEnded) {
            // The file ended (shrank) while we waited: the promised length cannot be met.
            reply.ended = true;
            res.close();
            finish();
          } else stream.resume();
        }
        return ok2;
      });
    });
  });
}
