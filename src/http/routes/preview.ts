import { AppError, isAppError } from '../../errors.js';
import type { ServerParts } from '../../server.js';
import { isName } from '../../validate.js';
import { contentType } from '../../workspace/content-types.js';
import { checkSegment, realWorkspaceRoot, resolveInside } from '../../workspace/paths.js';
import { serveFile } from '../../workspace/serve-file.js';

/**
 * Headers on every preview file. The preview is public and same-origin with the API, so
 * its documents run in a sandbox with an opaque origin (no reach into the studio's storage
 * or cookies); CORS is open so that origin may still load the project's own modules and data.
 */
const PREVIEW_HEADERS: Record<string, string> = {
  'Cache-Control': 'no-cache',
  'X-Content-Type-Options': 'nosniff',
  'Content-Security-Policy': 'sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads allow-pointer-lock',
  'Access-Control-Allow-Origin': '*',
  'Referrer-Policy': 'no-referrer',
};

const notFound = () => new AppError('SM_ERR_NOT_FOUND');

/**
 * `GET /preview/:orgId/:projectName/*` (public): workspace files for the studio's iframe.
 * The rest of the path arrives still percent-encoded; each segment is decoded once and
 * must be a plain name (no `.`/`..`, separators, NUL or other control characters, no
 * leading dot), then resolved through the workspace path checks (symlinks may not leave
 * the workspace or reach a dotfile). Every refusal is the same 404 as a missing file.
 */
export function previewRoutes(parts: ServerParts): void {
  const { router, config } = parts;

  router.get('/preview/:orgId/:projectName/*', async (ctx) => {
    const { orgId, projectName } = ctx.params;
    if (!isName(orgId) || !isName(projectName)) throw notFound();
    const segs: string[] = [];
    for (const raw of ctx.rest.split('/')) {
      if (raw === '') continue;
      let seg: string;
      try {
        seg = decodeURIComponent(raw);
      } catch {
        throw notFound();
      }
      checkSegment(seg, false, () => {
        throw notFound();
      });
      segs.push(seg);
    }
    const root = await realWorkspaceRoot(config.workspaceBasePath, orgId, projectName);
    if (!root) throw notFound();
    let target;
    try {
      target = await resolveInside(root, segs);
      if (target.exists && target.stat!.isDirectory()) {
        if (!ctx.path.endsWith('/')) {
          // Relative links in index.html resolve against the folder only with a trailing slash.
          const q = ctx.query.toString();
          ctx.reply.send(301, '', { Location: `${ctx.path}/${q ? `?${q}` : ''}`, ...PREVIEW_HEADERS });
          return;
        }
        target = await resolveInside(root, [...segs, 'index.html']);
      }
    } catch (err) {
      if (isAppError(err) && err.code === 'path_refused') throw notFound();
      throw err;
    }
    if (!target.exists || !target.stat!.isFile()) throw notFound();
    await serveFile(ctx, target.path, target.stat!, { ...PREVIEW_HEADERS, 'Content-Type': contentType(target.path) });
  }, 'public');
}
