import { lstat, realpath, stat } from 'node:fs/promises';
import path from 'node:path';

/** Served for a folder. */
const INDEX = 'index.html';



export type SiteLookup =
  | { kind: 'file'; file: string; size: number; mtimeMs: number }
  /** A folder asked for without its trailing slash: redirect so relative links resolve. */
  | { kind: 'redirect' }
  | { kind: 'none' };

/**
 * Find the file for a request under a site root, the way a careful static server does:
 * each segment is percent-decoded on its own; empty, `.`/`..`, dot-prefixed (`.git`,
 * `.env`), NUL, slash or backslash segments are refused; the resolved real path (symlinks
 * followed) must stay inside the root's real path; only regular files are served; a folder
 * serves its index.html.
 */
export async function lookupSiteFile(root: string, restEncoded: string, trailingSlash: boolean): Promise<SiteLookup> {
  const realRoot = await realpath(root).catch(() => undefined);
  if (!realRoot) return { kind: 'none' };
  const raw = restEncoded === '' ? [] : restEncoded.split('/');
  const segs: string[] = [];
  for (const r of raw) {
    let s: string;
    try {
      s = decodeURIComponent(r);
    } catch {
      return { kind: 'none' };
    }
    if (s === '' || s.startsWith('.') || /[\0/\\]/.test(s)) return { kind: 'none' };
    segs.push(s);
  }
  let candidate = path.join(realRoot, ...segs);
  let st = await lstat(candidate).catch(() => undefined);
  if (!st) return { kind: 'none' };
  const isDir = st.isDirectory() || (st.isSymbolicLink() && (await stat(candidate).catch(() => undefined))?.isDirectory());
  if (isDir) {
    if (!trailingSlash) return { kind: 'redirect' };
    candidate = path.join(candidate, INDEX);
  } else if (trailingSlash && segs.length > 0) {
    return { kind: 'none' };
  }
  const real = await realpath(candidate).catch(() => undefined);
  if (!real || !real.startsWith(realRoot + path.sep)) return { kind: 'none' };
  st = await stat(real).catch(() => undefined);
  if (!st?.isFile()) return { kind: 'none' };
  return { kind: 'file', file: real, size: st.size, mtimeMs: st.mtimeMs };
}
