import { randomBytes } from 'node:crypto';
import { access, open, rename, mkdir, unlink } from 'node:fs/promises';
import path from 'node:path';

/**
 * Write a file atomically: temp file in the same directory, fsync, rename, fsync the
 * directory. A reader (or a restart after SIGKILL) sees the old content or the new, never a mix.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array, mode = 0o666): Promise<void> {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  let fh;
  try {
    fh = await open(tmp, 'w', mode);
  } catch (err) {
    // The directory does not exist yet (first write): make it, then try once more.
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    await mkdirp(dir);
    fh = await open(tmp, 'w', mode);
  }
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw err;
  }
  await fh.close();
  try {
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
  const dh = await open(dir, 'r').catch(() => undefined);
  if (dh) {
    await dh.sync().catch(() => {});
    await dh.close();
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
