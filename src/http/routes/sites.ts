import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { AppError } from '../../errors.js';
import type { ServerParts } from '../../server.js';
import { assertName } from '../../validate.js';
import { siteLink } from '../../deploy/providers/local.js';
import { lookupSiteFile } from '../../deploy/site-files.js';
import { contentType } from '../../workspace/content-types.js';
import type { HttpContext } from '../context.js';

/** Files up to this size are read whole and sent with a Content-Length; bigger ones are streamed. */
const INLINE_MAX_BYTES = 1024 * 1024;
/**
 * Published sites are builders' code served from the server's own origin, where the
 * control center keeps its token (sessionStorage). A CSP sandbox without
 * `allow-same-origin` gives every site page an opaque origin: its scripts run but cannot
 * read that storage (the way Jupyter sandboxes the HTML it serves from /files/). Sites
 * that need storage or cookies belong on their own origin (the spinforge provider).
 */
const SITE_CSP = 'sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads';

/**
 * `GET /sites/:orgId/:projectName/*` (public, like `/preview/…`): what the local deploy
 * provider published. Traversal, dotfiles and symlinks out of the release are refused
 * (src/deploy/site-files.ts); a missing file is a plain 404.
 */
export function siteRoutes(parts: ServerParts): void {
  const deployDir = parts.config.deployDir;
  parts.router.get('/sites/:orgId/:projectName/*', async (ctx) => {
    const orgId = assertName(ctx.params.orgId, 'orgId');
    const projectName = assertName(ctx.params.projectName, 'projectName');
    // The router drops empty segments; whether the path ended in `/` comes from the raw path.
    const found = await lookupSiteFile(siteLink(deployDir, orgId, projectName), ctx.rest, ctx.path.endsWith('/'));
    if (found.kind === 'redirect') {
      const q = ctx.query.toString();
      const base = ctx.path.replace(/\/+$/, '');
      ctx.reply.send(301, '', { Location: `${base}/${q ? `?${q}` : ''}` });
      return;
    }
    if (found.kind === 'none') throw new AppError('SM_ERR_NOT_FOUND', 'No such file on this site.');
    const etag = `W/"${found.size.toString(16)}-${Math.floor(found.mtimeMs).toString(16)}"`;
    const headers: Record<string, string> = {
      'Content-Type': contentType(found.file),
      'Cache-Control': 'no-cache',
      ETag: etag,
      'X-Content-Type-Options': 'nosniff',
      'Content-Security-Policy': SITE_CSP,
      // Public files: a sandboxed page (origin "null") may still fetch its own assets.
      'Access-Control-Allow-Origin': '*',
    };
    if (ctx.headers['if-none-match'] === etag) {
      ctx.reply.send(304, '', headers);
      return;
    }
    if (found.size <= INLINE_MAX_BYTES) {
      const body = await readFile(found.file);
      ctx.reply.send(200, body, headers);
      return;
    }
    await streamFile(ctx, found.file, headers);
  }, 'public');
}

/** Chunked transfer of a big file, pausing the read while uWS reports backpressure. */
async function streamFile(ctx: HttpContext, file: string, headers: Record<string, string>): Promise<void> {
  const reply = ctx.reply;
  if (!reply.beginStream(200, headers)) return;
  await new Promise<void>((resolve) => {
    const rs = createReadStream(file, { highWaterMark: 64 * 1024 });
    const stop = () => {
      rs.destroy();
      resolve();
    };
    reply.onAbort(stop);
    ctx.res.onWritable(() => {
      if (reply.open) rs.resume();
      return true;
    });
    rs.on('data', (chunk) => {
      if (!reply.open) return stop();
      if (!reply.write(chunk as Buffer)) rs.pause();
    });
    rs.once('end', () => {
      reply.end();
      resolve();
    });
    rs.once('error', () => {
      // Headers are out: the only honest signal left is a cut connection.
      if (reply.open) {
        reply.ended = true;
        try {
          ctx.res.close();
        } catch {
          /* already gone */
        }
      }
      resolve();
    });
  });
}
