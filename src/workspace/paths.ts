import { lstat, readFile, realpath } from 'node:fs/promises';
import path from 'node:path';
import { AppError } from '../errors.js';
import { mkdirp, sweepTempFiles, writeFileAtomic } from '../store/atomic.js';
import { assertName } from '../validate.js';

/**
 * The one module that turns user input into filesystem paths under WORKSPACE_BASE_PATH.
 * Names are validated here; relative paths are split into checked segments; every
 * resolution walks the path one segment at a time and follows a symlink only when its real
 * target stays inside the workspace. Callers get back a real path (links already resolved),
 * so the file they open or write is the one that was checked.
 */

/** The folder the server keeps per-project metadata in (`project.json`, `planner.json`). */
export const VIBE_DIR = '.vibe';
/** Longest relative path a request may name, and longest segment (bytes, as most filesystems). */
const MAX_REL_PATH = 4096;
const MAX_SEGMENT_BYTES = 255;
/** Control characters, NUL included: never part of a name we accept. */
const CONTROL_RE = /[\u0000-\u001f\u007f]/;

/** The folder of a project: WORKSPACE_BASE_PATH/<orgId>/<projectName>. Names are validated here. */
export function workspaceDir(base: string, orgId: string, projectName: string): string {
  assertName(orgId, 'orgId');
  assertName(projectName, 'projectName');
  return path.join(base, orgId, projectName);
}

/** The folder holding an org's workspaces. */
export function orgDir(base: string, orgId: string): string {
  assertName(orgId, 'orgId');
  return path.join(base, orgId);
}

export interface ProjectStamp {
  orgId: string;
  projectName: string;
  createdBy: string;
  createdAt: string;
  description?: string;
  template?: string;
  [extra: string]: unknown;
}

/** Create the workspace if missing and stamp `.vibe/project.json` when it has none. */
/** Workspaces this process made sure of (cleared by `forgetWorkspace` when one is deleted). */
const ensured = new Set<string>();

/** A workspace was deleted (or moved): the next `ensureWorkspace` checks it again. */
export function forgetWorkspace(base: string, orgId: string, projectName: string): void {
  ensured.delete(workspaceDir(base, orgId, projectName));
}

export async function ensureWorkspace(base: string, orgId: string, projectName: string, createdBy: string): Promise<string> {
  const dir = workspaceDir(base, orgId, projectName);
  if (ensured.has(dir)) return dir;
  await mkdirp(dir);
  const root = await realWorkspaceRoot(base, orgId, projectName);
  if (!root) throw new AppError('SM_ERR_PATH_REFUSED', 'The workspace folder is not a plain directory under WORKSPACE_BASE_PATH.');
  const vibe = await resolveInside(root, [VIBE_DIR], { allowDotfiles: true });
  if (!vibe.exists) await mkdirp(vibe.path);
  const stamp = await resolveInside(root, [VIBE_DIR, 'project.json'], { allowDotfiles: true });
  if (!stamp.exists) {
    const doc: ProjectStamp = { orgId, projectName, createdBy, createdAt: new Date().toISOString() };
    await writeFileAtomic(stamp.path, JSON.stringify(doc, null, 2) + '\n');
  }
  ensured.add(dir);
  return dir;
}

/**
 * The real path of an existing workspace, or undefined when it is missing, not a
 * directory, or reached through a symlink (the org or project folder itself may not
 * point elsewhere).
 */
export async function realWorkspaceRoot(base: string, orgId: string, projectName: string): Promise<string | undefined> {
  const dir = workspaceDir(base, orgId, projectName);
  try {
    const st = await lstat(dir);
    if (!st.isDirectory()) return undefined;
    const [realBase, realDir] = await Promise.all([realpath(base), realpath(dir)]);
    if (realDir !== path.join(realBase, orgId, projectName)) return undefined;
    return realDir;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

export interface Workspace {
  orgId: string;
  projectName: string;
  /** The path as configured (what sessions report as `workspacePath`). */
  dir: string;
  /** Its real path; everything below is resolved against this. */
  root: string;
}

/** An existing workspace, or 404 `workspace_not_found`. */
export async function requireWorkspace(base: string, orgId: string, projectName: string): Promise<Workspace> {
  const dir = workspaceDir(base, orgId, projectName);
  const root = await realWorkspaceRoot(base, orgId, projectName);
  if (!root) throw new AppError('SM_ERR_WORKSPACE_NOT_FOUND', `No workspace for ${orgId}/${projectName}.`);
  return { orgId, projectName, dir, root };
}

/**
 * Split a user's relative path (`src/app.js`) into segments. Refused with 400
 * `path_refused`: absolute paths, `.`/`..` segments, backslashes, NUL and other control
 * characters, over-long paths, and (unless `allowDotfiles`) any segment starting with a dot.
 * Empty segments (`a//b`, a trailing `/`) are dropped.
 */
export function relSegments(rel: unknown, opts: { allowDotfiles?: boolean; field?: string } = {}): string[] {
  const field = opts.field ?? 'path';
  const refuse = (why: string): never => {
    throw new AppError('SM_ERR_PATH_REFUSED', `"${field}" ${why}.`, { details: { field } });
  };
  if (typeof rel !== 'string') return refuse('must be a string');
  if (rel.length === 0 || rel.length > MAX_REL_PATH) refuse(`must be 1 to ${MAX_REL_PATH} characters`);
  if (CONTROL_RE.test(rel)) refuse('may not hold control characters');
  if (rel.includes('\\')) refuse('may not hold backslashes');
  if (rel.startsWith('/')) refuse('must be relative to the workspace');
  const segs = rel.split('/').filter((s) => s !== '');
  for (const s of segs) checkSegment(s, opts.allowDotfiles ?? false, refuse);
  return segs;
}

/** Check one already-decoded path segment; `refuse` throws. */
export function checkSegment(s: string, allowDotfiles: boolean, refuse: (why: string) => never): void {
  if (s === '.' || s === '..') refuse('may not hold "." or ".." segments');
  if (s.includes('/') || s.includes('\\')) refuse('may not hold separators inside a segment');
  if (CONTROL_RE.test(s)) refuse('may not hold control characters');
  if (Buffer.byteLength(s) > MAX_SEGMENT_BYTES) refuse(`segments must be at most ${MAX_SEGMENT_BYTES} bytes`);
  if (!allowDotfiles && s.startsWith('.')) refuse('may not name dotfiles');
}

/** True when `p` is `root` or below it. */
export function isInside(root: string, p: string): boolean {
  return p === root || p.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
}

export interface Resolved {
  /** Real path of the target when it exists; else real path of its deepest existing ancestor joined with the rest. */
  path: string;
  exists: boolean;
  /** lstat of the resolved target (never a symlink: links are followed and checked). */
  stat?: import('node:fs').Stats;
}

/**
 * Resolve checked segments under a workspace's real root, one at a time. A symlink is
 * followed only when its real target is inside the root (else 400 `path_refused`); a
 * dangling link is refused too. Unless `allowDotfiles`, the resolved path may not pass
 * through a dot-named entry either (a link `public.txt -> .env` is refused like `.env`).
 */
export async function resolveInside(root: string, segs: string[], opts: { allowDotfiles?: boolean } = {}): Promise<Resolved> {
  const refuse = (why: string): never => {
    throw new AppError('SM_ERR_PATH_REFUSED', `The path ${why}.`);
  };
  let cur = root;
  let st: import('node:fs').Stats | undefined;
  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i]!;
    checkSegment(seg, opts.allowDotfiles ?? false, refuse);
    const next = path.join(cur, seg);
    try {
      st = await lstat(next);
    } catch (err) {
      if (!isNotFound(err) && (err as NodeJS.ErrnoException).code !== 'ENOTDIR') throw err;
      if ((err as NodeJS.ErrnoException).code === 'ENOTDIR') refuse('goes through a file');
      return { path: path.join(next, ...segs.slice(i + 1)), exists: false };
    }
    if (st.isSymbolicLink()) {
      let real: string;
      try {
        real = await realpath(next);
      } catch {
        return refuse('goes through a broken symlink');
      }
      if (!isInside(root, real)) refuse('leaves the workspace through a symlink');
      if (!(opts.allowDotfiles ?? false) && path.relative(root, real).split(path.sep).some((s) => s.startsWith('.'))) {
        refuse('reaches a dotfile through a symlink');
      }
      st = await lstat(real);
      cur = real;
    } else cur = next;
    if (i < segs.length - 1 && !st.isDirectory()) refuse('goes through a file');
  }
  return { path: cur, exists: true, stat: st ?? (await lstat(cur)) };
}

/** Resolve a workspace-relative path given as a string (see relSegments, resolveInside). */
export async function resolveRel(root: string, rel: unknown, opts: { allowDotfiles?: boolean; field?: string } = {}): Promise<Resolved> {
  return resolveInside(root, relSegments(rel, opts), opts);
}

/** `.vibe/<name>` of a workspace, checked like any other path (`.vibe` may not be a link out). */
export async function vibeFile(root: string, name: string): Promise<Resolved> {
  return resolveInside(root, [VIBE_DIR, name], { allowDotfiles: true });
}

/** Read a `.vibe/` JSON file, or undefined when absent. Throws SyntaxError on bad JSON. */
export async function readVibeJson<T>(root: string, name: string): Promise<T | undefined> {
  const r = await vibeFile(root, name);
  if (!r.exists) return undefined;
  try {
    return JSON.parse(await readFile(r.path, 'utf8')) as T;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** `.vibe/` folders swept of stale temp files by this process (once each; bounded). */
const sweptVibeDirs = new Set<string>();
const SWEPT_VIBE_DIRS_MAX = 10_000;

/** Atomically write a `.vibe/` file, creating `.vibe/` when missing. */
export async function writeVibeFile(root: string, name: string, data: string): Promise<void> {
  const dir = await resolveInside(root, [VIBE_DIR], { allowDotfiles: true });
  if (dir.exists && !dir.stat!.isDirectory()) throw new AppError('SM_ERR_PATH_REFUSED', '.vibe is not a directory.');
  if (!dir.exists) await mkdirp(dir.path);
  else if (!sweptVibeDirs.has(dir.path)) {
    // The first write here since this process started: temp files of writes a crash cut
    // short (older than a minute, so no other node's write in flight) go.
    if (sweptVibeDirs.size >= SWEPT_VIBE_DIRS_MAX) sweptVibeDirs.clear();
    sweptVibeDirs.add(dir.path);
    void sweepTempFiles(dir.path, 1).catch(() => 0);
  }
  const r = await vibeFile(root, name);
  await writeFileAtomic(r.path, data);
}

export function isNotFound(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT';
}
