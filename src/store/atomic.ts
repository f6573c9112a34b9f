import { randomBytes } from 'node:crypto';
import { open, rename, mkdir, unlink } from 'node:fs/promises';
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
    await mkdir(dir, { recursive: true });
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
