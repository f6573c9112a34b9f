import { randomBytes } from 'node:crypto';
import { access, mkdir, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { loadNative } from '../native.js';

interface AtomicWriter {
  atomicWrite(file: string, tmp: string, dir: string, data: Buffer, mode: number): Promise<void>;
}

const native = loadNative<AtomicWriter>('atomic_write');

/** Random bytes for temp-file names, drawn 256 names at a time (one CSPRNG call each). */
let suffixes = Buffer.alloc(0);
let suffixAt = 0;

/** 12 random hex digits: a temp name no other writer picks. */
function tmpSuffix(): string {
  if (suffixAt >= suffixes.length) {
    suffixes = randomBytes(6 * 256);
    suffixAt = 0;
  }
  suffixAt += 6;
  return suffixes.toString('hex', suffixAt - 6, suffixAt);
}

/**
 * Write a file atomically: temp file in the same directory, fsync, rename, fsync the
 * directory. A reader (or a restart after SIGKILL) sees the old content or the new, never a
 * mix. The system calls run back to back as one job on libuv's pool (native/atomic_write.c)
 * instead of eight round trips; errors carry the usual `code` (ENOENT, ENOSPC, EROFS…).
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array, mode = 0o666): Promise<void> {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${tmpSuffix()}.tmp`);
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  try {
    await native.atomicWrite(file, tmp, dir, bytes, mode);
  } catch (err) {
    // A deeper part of the path does not exist yet (the native job makes the last level
    // itself): make it, then try once more.
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    await mkdirp(dir);
    await native.atomicWrite(file, tmp, dir, bytes, mode);
  }
}

/**
 * `mkdir -p` that reports the real reason it failed. A recursive mkdir on a read-only
 * filesystem answers ENOENT; creating the missing levels one by one answers EROFS (or
 * ENOSPC, EACCES), which callers turn into a clear storage error.
 */
export async function mkdirp(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
    return;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const missing: string[] = [];
  let d = dir;
  for (;;) {
    try {
      await access(d);
      break;
    } catch {
      missing.push(d);
      const up = path.dirname(d);
      if (up === d) break;
      d = up;
    }
  }
  for (const m of missing.reverse()) {
    try {
      await mkdir(m);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
}

/** Temp files of writes cut short by a crash are older than this when swept. */
const STALE_TEMP_MS = 60_000;

/**
 * Remove `.<name>.<hex>.tmp` files that atomic writes left behind when the process was
 * killed mid-write (harmless, but they pile up). Bounded depth; only old ones.
 */
export async function sweepTempFiles(root: string, depth: number): Promise<number> {
  let removed = 0;
  const now = Date.now();
  const walk = async (dir: string, d: number): Promise<void> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isFile() && /^\..+\.[0-9a-f]{12}\.tmp$/.test(e.name)) {
        try {
          if (now - (await stat(p)).mtimeMs > STALE_TEMP_MS) {
            await rm(p, { force: true });
            removed++;
          }
        } catch {
          // gone already
        }
      } else if (e.isDirectory() && d > 0) await walk(p, d - 1);
    }
  };
  await walk(root, depth);
  return removed;
}
