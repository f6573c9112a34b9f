import type { Stats } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import path from 'node:path';

export interface WalkEntry {
  /** Workspace-relative, `/`-separated. */
  rel: string;
  abs: string;
  /** lstat: symlinks are reported as links, never followed. */
  stat: Stats;
}

/** lstat calls in flight per directory batch: enough to keep libuv's pool busy, not to flood it. */
const STAT_BATCH = 64;

/**
 * Depth-first walk below `root` (not including it), directories before their contents,
 * names sorted so archives and counts are reproducible. Symlinks are yielded, not followed.
 * `skip(rel, stat)` prunes an entry (and, for a directory, everything under it). Entries
 * that vanish mid-walk are ignored.
 */
export async function* walkTree(root: string, skip: (rel: string, stat: Stats) => boolean = () => false): AsyncGenerator<WalkEntry> {
  const stack: string[] = [''];
  while (stack.length > 0) {
    const dirRel = stack.pop()!;
    let names: string[];
    try {
      names = (await readdir(dirRel ? path.join(root, dirRel) : root)).sort();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') continue;
      throw err;
    }
    const subdirs: string[] = [];
    for (let i = 0; i < names.length; i += STAT_BATCH) {
      const batch = names.slice(i, i + STAT_BATCH);
      const stats = await Promise.all(
        batch.map((n) => lstat(path.join(root, dirRel, n)).catch((err: NodeJS.ErrnoException) => {
          if (err.code === 'ENOENT') return undefined;
          throw err;
        })),
      );
      for (let j = 0; j < batch.length; j++) {
        const st = stats[j];
        if (!st) continue;
        const rel = dirRel ? `${dirRel}/${batch[j]}` : batch[j]!;
        if (skip(rel, st)) continue;
        yield { rel, abs: path.join(root, rel), stat: st };
        if (st.isDirectory()) subdirs.push(rel);
      }
    }
    // Reverse so the stack pops them in name order.
    for (let k = subdirs.length - 1; k >= 0; k--) stack.push(subdirs[k]!);
  }
}

export interface TreeSize {
  bytes: number;
  files: number;
  dirs: number;
  /** True when the walk stopped at `maxEntries` (the figures are then lower bounds). */
  truncated: boolean;
}

/** Sum of regular file sizes, counts of files and directories, bounded by `maxEntries`. */
export async function treeSize(root: string, maxEntries: number): Promise<TreeSize> {
  const out: TreeSize = { bytes: 0, files: 0, dirs: 0, truncated: false };
  let n = 0;
  for await (const e of walkTree(root)) {
    if (++n > maxEntries) {
      out.truncated = true;
      break;
    }
    if (e.stat.isFile()) {
      out.files++;
      out.bytes += e.stat.size;
    } else if (e.stat.isDirectory()) out.dirs++;
  }
  return out;
}
