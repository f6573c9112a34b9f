import { randomBytes } from 'node:crypto';
import { access, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { loadNative } from '../native.js';

interface AtomicWriter {
  atomicWrite(file: string, tmp: string, dir: string, data: Buffer, mode: number): Promise<void>;
}

const native = loadNative<AtomicWriter>('atomic_write');

/**
 * Write a file atomically: temp file in the same directory, fsync, rename, fsync the
 * directory. A reader (or a restart after SIGKILL) sees the old content or the new, never a
 * mix. The system calls run back to back as one job on libuv's pool (native/atomic_write.c)
 * instead of eight round trips; errors carry the usual `code` (ENOENT, ENOSPC, EROFS…).
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array, mode = 0o666): Promise<void> {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  try {
    await native.atomicWrite(file, tmp, dir, bytes, mode);
  } catch (err) {
    // The directory does not exist yet (first write): make it, then try once more.
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
