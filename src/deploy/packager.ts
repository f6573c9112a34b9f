import { createWriteStream } from 'node:fs';
import { mkdir, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { ZipArchive } from 'archiver';

/** Most files a deploy may publish: a site with more is almost surely a mistake (node_modules). */
export const PACKAGE_MAX_FILES = 50_000;
/** Most bytes a deploy may publish. */
export const PACKAGE_MAX_BYTES = 512 * 1024 * 1024;
/** Folders never published from a workspace (dotfolders are skipped too). */
const SKIP_DIRS = new Set(['node_modules']);

export interface PackagedFile {
  abs: string;
  /** `/`-separated path inside the package. */
  rel: string;
  size: number;
}

export interface PackageResult {
  sourceDir: string;
  files: PackagedFile[];
  bytes: number;
  zipPath: string;
  zipBytes: number;
}

export class PackageError extends Error {}

/**
 * Every regular file under `root`, in a stable order. Dotfiles and dotfolders (`.git`,
 * `.vibe`, `.env*`) and `node_modules` are left out; symlinks are not followed (a link
 * could point out of the workspace), so they are left out too.
 */
export async function collectFiles(root: string): Promise<PackagedFile[]> {
  const out: PackagedFile[] = [];
  let bytes = 0;
  const walk = async (dir: string, relDir: string): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const abs = path.join(dir, e.name);
      const rel = relDir ? `${relDir}/${e.name}` : e.name;
      if (e.isDirectory()) {
        if (SKIP_DIRS.has(e.name)) continue;
        await walk(abs, rel);
      } else if (e.isFile()) {
        const st = await stat(abs);
        bytes += st.size;
        out.push({ abs, rel, size: st.size });
        if (out.length > PACKAGE_MAX_FILES) throw new PackageError(`more than ${PACKAGE_MAX_FILES} files to publish`);
        if (bytes > PACKAGE_MAX_BYTES) throw new PackageError(`more than ${PACKAGE_MAX_BYTES} bytes to publish`);
      }
    }
  };
  await walk(root, '');
  return out;
}

/** Write `files` into a zip at `zipPath` (archiver, deflate). Resolves with the zip's size. */
export async function zipFiles(files: PackagedFile[], zipPath: string): Promise<number> {
  await mkdir(path.dirname(zipPath), { recursive: true });
  const archive = new ZipArchive({ zlib: { level: 6 } });
  const out = createWriteStream(zipPath);
  const written = new Promise<void>((resolve, reject) => {
    out.once('close', () => resolve());
    out.once('error', reject);
    archive.once('error', reject);
    archive.on('warning', (w) => reject(w));
  });
  archive.pipe(out);
  for (const f of files) archive.file(f.abs, { name: f.rel });
  await Promise.all([archive.finalize(), written]);
  return (await stat(zipPath)).size;
}

export async function packageDir(sourceDir: string, zipPath: string): Promise<PackageResult> {
  const files = await collectFiles(sourceDir);
  const bytes = files.reduce((n, f) => n + f.size, 0);
  const zipBytes = await zipFiles(files, zipPath);
  return { sourceDir, files, bytes, zipPath, zipBytes };
}
