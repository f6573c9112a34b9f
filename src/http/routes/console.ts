import { createHash } from 'node:crypto';
import { contentType } from '../../workspace/content-types.js';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { gzip as gzipCb, constants as zlibConstants } from 'node:zlib';
import type { ServerParts } from '../../server.js';
import { AppError } from '../../errors.js';
import type { HttpContext } from '../context.js';
import { statusLine } from '../reply.js';

const gzip = promisify(gzipCb);

/**
 * The web control center (`web/`, built into `web/dist/` and committed): `/` is the page,
 * `/assets/*` its bundles. Public routes: the page holds no data; it signs in with the token
 * the user brings (DESIGN §6 ready URL) and keeps it in sessionStorage.
 *
 * Files are read once at start (a few hundred KB) and served from memory, so no request
 * touches the disk and no path from a request ever reaches the file system: `/assets/<name>`
 * answers only names that were in the folder at start (no traversal by construction).
 */

/** Hashed asset names never change content: cache them for a year. */
const ASSET_CACHE = 'public, max-age=31536000, immutable';
/** The page names the current hashed assets: revalidate it every time (cheap: ETag → 304). */
const PAGE_CACHE = 'no-cache';
/** Compressing below this size costs more than it saves. */
const GZIP_MIN_BYTES = 1024;


interface Asset {
  body: Buffer;
  gz: Buffer | undefined;
  type: string;
  etag: string;
}

/** Where the built page lives: `web/dist` at the repo root, found from src/ or dist/src/. */
export async function findConsoleDir(): Promise<string | undefined> {
  const here = path.dirname(fileURLToPath(import.meta.url));
  for (const up of ['../../..', '../../../..']) {
    const dir = path.resolve(here, up, 'web/dist');
    try {
      if ((await stat(path.join(dir, 'index.html'))).isFile()) return dir;
    } catch {
      // Not here; try the next candidate.
    }
  }
  return undefined;
}

async function loadAsset(file: string): Promise<Asset> {
  const body = await readFile(file);
  const type = contentType(file);
  const compressible = /^(text\/|application\/json|image\/svg)/.test(type) && body.length >= GZIP_MIN_BYTES;
  const gz = compressible ? await gzip(body, { level: zlibConstants.Z_BEST_COMPRESSION }) : undefined;
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
  return { body, gz, type, etag };
}

/** Load `web/dist` into memory: the page and every file directly under `assets/`. */
export async function loadConsole(dir: string): Promise<{ page: Asset; assets: Map<string, Asset> }> {
  const page = await loadAsset(path.join(dir, 'index.html'));
  const assets = new Map<string, Asset>();
  let names: string[] = [];
  try {
    names = await readdir(path.join(dir, 'assets'));
  } catch {
    // A page without assets still loads (and says what is missing).
  }
  for (const name of names) {
    const file = path.join(dir, 'assets', name);
    if (!(await stat(file)).isFile()) continue;
    assets.set(name, await loadAsset(file));
  }
  return { page, assets };
}

/** Headers that keep the token on the page: no referrer, no framing, only our own scripts. */
function pageSecurityHeaders(ctx: HttpContext): Record<string, string> {
  const host = ctx.headers.host && /^[A-Za-z0-9.:[\]-]{1,300}$/.test(ctx.headers.host) ? ctx.headers.host : '';
  const ws = host ? ` ws://${host} wss://${host}` : '';
  return {
    'Content-Security-Policy':
      "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self'; " +
      `connect-src 'self'${ws}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
    'Referrer-Policy': 'no-referrer',
    'X-Content-Type-Options': 'nosniff',
    'X-Frame-Options': 'DENY',
    'Cross-Origin-Opener-Policy': 'same-origin',
  };
}

function serve(ctx: HttpContext, a: Asset, cache: string, extra: Record<string, string> = {}): void {
  const headers: Record<string, string> = { 'Cache-Control': cache, ETag: a.etag, Vary: 'Accept-Encoding', 'X-Content-Type-Options': 'nosniff', ...extra };
  const inm = ctx.headers['if-none-match'];
  if (inm && inm.split(',').some((t) => t.trim().replace(/^W\//, '') === a.etag)) {
    ctx.reply.send(304, '', headers);
    return;
  }
  const useGz = a.gz !== undefined && /\bgzip\b/.test(ctx.headers['accept-encoding'] ?? '');
  headers['Content-Type'] = a.type;
  if (useGz) headers['Content-Encoding'] = 'gzip';
  const body = useGz ? a.gz! : a.body;
  if (ctx.method === 'HEAD') return head(ctx, body.length, headers);
  ctx.reply.send(200, body, headers);
}

/** HEAD: the headers of the GET, with its real Content-Length and no body. */
function head(ctx: HttpContext, length: number, headers: Record<string, string>): void {
  if (!ctx.reply.open) return;
  ctx.reply.ended = true;
  ctx.res.cork(() => {
    ctx.res.writeStatus(statusLine(200));
    for (const [k, v] of Object.entries(headers)) ctx.res.writeHeader(k, v);
    ctx.res.endWithoutBody(length);
  });
}

/** Register `/` and `/assets/*` (public). Without a built page, `/` says how to build it. */
export async function consoleRoutes(parts: Pick<ServerParts, 'router' | 'log'>, dir?: string): Promise<void> {
  const root = dir ?? (await findConsoleDir());
  let loaded: Awaited<ReturnType<typeof loadConsole>> | undefined;
  try {
    if (root) loaded = await loadConsole(root);
  } catch (err) {
    parts.log.warn('web console could not be read', { dir: root, error: err as Error });
  }
  if (!loaded) parts.log.warn('web console not built: run `node web/build.mjs` (npm run build:web)');

  parts.router.get('/', (ctx) => {
    if (!loaded) {
      ctx.reply.text(503, 'The web console is not built. Run `node web/build.mjs` (npm run build:web) and restart.\n', 'text/plain; charset=utf-8', {
        'Cache-Control': 'no-store',
      });
      return;
    }
    serve(ctx, loaded.page, PAGE_CACHE, pageSecurityHeaders(ctx));
  }, 'public');

  parts.router.get('/assets/*', (ctx) => {
    let name: string;
    try {
      name = decodeURIComponent(ctx.rest);
    } catch {
      throw new AppError('SM_ERR_NOT_FOUND');
    }
    // Only names that were in the folder at start: `..`, `/`, `\` or anything else never match.
    const a = loaded?.assets.get(name);
    if (!a) throw new AppError('SM_ERR_NOT_FOUND', 'No such asset.');
    serve(ctx, a, ASSET_CACHE);
  }, 'public');
}
