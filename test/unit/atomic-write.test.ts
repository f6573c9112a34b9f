/**
 * writeFileAtomic (src/store/atomic.ts, native/atomic_write.c): a document's first write
 * makes its folder in the same pool job, and syncs the new folder's entry in its parent as
 * well as the renamed file's entry in the folder — otherwise a power cut could keep the
 * file's data and lose the folder that names it (ext4 without a journal, as on this
 * machine, promises nothing else).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeFileAtomic } from '../../src/store/atomic.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const root = mkdtempSync(path.join(tmpdir(), 'sm-atomic-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('writeFileAtomic', () => {
  it('makes a missing folder (one level, or several) and leaves no temp file', async () => {
    const one = path.join(root, 'sessions', 'a', 'metadata.json');
    const deep = path.join(root, 'x', 'y', 'z', 'doc.json');
    await writeFileAtomic(one, '{"v":1}\n');
    await writeFileAtomic(one, '{"v":2}\n');
    await writeFileAtomic(deep, 'deep');
    expect(readFileSync(one, 'utf8')).toBe('{"v":2}\n');
    expect(readFileSync(deep, 'utf8')).toBe('deep');
    expect(readdirSync(path.dirname(one))).toEqual(['metadata.json']);
    expect(readdirSync(path.dirname(deep))).toEqual(['doc.json']);
  });

  it('syncs the renamed file, its folder, and the new folder in its parent, in that order', () => {
    const dir = path.join(root, 'traced', 'sessions');
    execFileSync('mkdir', ['-p', dir]);
    const file = path.join(dir, 'id-1', 'metadata.json');
    const script = `import { writeFileAtomic } from ${JSON.stringify(path.join(ROOT, 'dist/src/store/atomic.js'))};\nawait writeFileAtomic(${JSON.stringify(file)}, 'x');`;
    const out = path.join(root, 'strace.txt');
    execFileSync('strace', ['-f', '-qq', '-o', out, '-e', 'trace=mkdir,openat,rename,fsync', process.execPath, '--input-type=module', '-e', script]);
    // The calls on our paths, with the descriptor each openat returned.
    const fdPath = new Map<string, string>();
    const calls: string[] = [];
    for (const line of readFileSync(out, 'utf8').split('\n')) {
      const opened = /openat\(AT_FDCWD, "([^"]+)", [^)]*\)\s+= (\d+)/.exec(line);
      if (opened && opened[1]!.startsWith(dir)) {
        fdPath.set(opened[2]!, opened[1]!);
        continue;
      }
      const mk = /mkdir\("([^"]+)"/.exec(line);
      if (mk && mk[1]!.startsWith(dir)) calls.push(`mkdir ${path.relative(dir, mk[1]!) || '.'}`);
      if (/rename\("[^"]+", "([^"]+)"\)\s+= 0/.test(line) && line.includes(dir)) calls.push('rename');
      const sync = /fsync\((\d+)\)\s+= 0/.exec(line);
      if (sync && fdPath.has(sync[1]!)) {
        const p = fdPath.get(sync[1]!)!;
        calls.push(`fsync ${p.endsWith('.tmp') ? 'tmp' : path.relative(dir, p) || '.'}`);
      }
    }
    expect(calls).toEqual(['mkdir id-1', 'fsync tmp', 'rename', 'fsync id-1', 'fsync .']);
    expect(readFileSync(file, 'utf8')).toBe('x');
  });
});
