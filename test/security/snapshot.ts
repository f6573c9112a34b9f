/** File-tree fingerprints: "did anything change on disk?" for the 0-writes checks. */
import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';

/** Every file under `root` (recursively, symlinks not followed) → sha256 of its content. */
export function fingerprint(root: string, skip: (rel: string) => boolean = () => false): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string) => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const n of names) {
      const abs = path.join(dir, n);
      const rel = path.relative(root, abs);
      if (skip(rel)) continue;
      const st = lstatSync(abs);
      if (st.isDirectory()) walk(abs);
      else if (st.isFile()) out.set(rel, createHash('sha256').update(readFileSync(abs)).digest('hex'));
      else out.set(rel, `other:${st.mode}`);
    }
  };
  walk(root);
  return out;
}

/** Files added, removed or changed between two fingerprints. */
export function diff(a: Map<string, string>, b: Map<string, string>): string[] {
  const out: string[] = [];
  for (const [k, v] of a) if (!b.has(k)) out.push(`removed ${k}`);
  else if (b.get(k) !== v) out.push(`changed ${k}`);
  for (const k of b.keys()) if (!a.has(k)) out.push(`added ${k}`);
  return out.sort();
}

/** Every regular file under `root` (recursively). */
export function allFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const n of names) {
      const abs = path.join(dir, n);
      const st = lstatSync(abs);
      if (st.isDirectory()) walk(abs);
      else if (st.isFile()) out.push(abs);
    }
  };
  walk(root);
  return out;
}
