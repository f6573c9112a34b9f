/**
 * The project's native modules (`native/*.c`, built by `npm ci` through the package's install
 * script, or `npm run build:native`): `pty_spawn` (agents in ptys, workers/pty-process.ts),
 * `atomic_write` (durable file replacement, src/store/atomic.ts) and `read_files` (many small
 * files in one pool job, src/store/fs-store.ts).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export function loadNative<T>(name: 'pty_spawn' | 'atomic_write' | 'read_files'): T {
  const here = path.dirname(fileURLToPath(import.meta.url));
  // dist/src/ when built, src/ under tsx.
  const candidates = [path.resolve(here, `../../native/build/Release/${name}.node`), path.resolve(here, `../native/build/Release/${name}.node`)];
  const file = candidates.find((f) => existsSync(f));
  if (!file) throw new Error(`native/build/Release/${name}.node is missing: run \`npm ci\` (or \`npm run build:native\`)`);
  return createRequire(import.meta.url)(file) as T;
}
