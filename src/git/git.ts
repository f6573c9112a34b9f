import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { AppError } from '../errors.js';
import type { Logger } from '../log.js';
import { KeyedMutex } from '../workspace/mutex.js';
import { ensureWorkspace, isNotFound, relSegments, requireWorkspace, resolveInside, VIBE_DIR, type Workspace } from '../workspace/paths.js';
import { assertBranch, assertRemoteName, LOG_FORMAT, parseLog, parseStatusV2, type LogEntry, type Status } from './parse.js';
import { gitError, GitRunner, NETWORK_TIMEOUT_MS, prepareGitDirs, redact, type Identity, type RunResult } from './run.js';
import { assertRemoteUrl, type UrlPolicy } from './url.js';

export interface GitDeps {
  base: string;
  dataDir: string;
  log: Logger;
  allowFileUrls: boolean;
}

/** Bounds on what a request may ask. */
const MAX_MESSAGE = 64 * 1024;
const MAX_PATHS = 1000;
const MAX_IDENTITY = 256;
export const LOG_LIMIT_DEFAULT = 50;
export const LOG_LIMIT_MAX = 1000;

/**
 * Git on a workspace with the real binary (see GitRunner for the hardening of every
 * command). Commands on one workspace are serialized: git's own index lock would make a
 * concurrent second command fail rather than wait.
 */
export class GitService {
  private readonly lock = new KeyedMutex();
  private runner: GitRunner | undefined;
  private readonly policy: UrlPolicy;

  constructor(private readonly d: GitDeps) {
    this.policy = { allowFile: d.allowFileUrls, forbiddenRoots: [d.base, d.dataDir] };
  }

  async init(): Promise<void> {
    this.runner = new GitRunner(await prepareGitDirs(this.d.dataDir), this.d.allowFileUrls);
  }

  private git(ws: Workspace | string, args: string[], extra: { token?: string | undefined; author?: Identity; committer?: Identity; timeoutMs?: number } = {}): Promise<RunResult> {
    if (!this.runner) throw new Error('GitService.init() was not awaited');
    const cwd = typeof ws === 'string' ? ws : ws.root;
    return this.runner.run({ cwd, args, ceiling: path.dirname(cwd), ...extra });
  }

  /** The workspace, which must hold a `.git` directory of its own (a `.git` file or link is refused). */
  private async repo(orgId: string, projectName: string): Promise<Workspace> {
    const ws = await requireWorkspace(this.d.base, orgId, projectName);
    try {
      const st = await lstat(path.join(ws.root, '.git'));
      if (st.isDirectory()) return ws;
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    throw new AppError('SM_ERR_GIT_NOT_REPO', `${orgId}/${projectName} is not a git repository.`);
  }

  private locked<T>(orgId: string, projectName: string, fn: () => Promise<T>): Promise<T> {
    return this.lock.run(`${orgId}/${projectName}`, fn);
  }

  async status(orgId: string, projectName: string): Promise<Status> {
    return this.locked(orgId, projectName, async () => {
      const ws = await this.repo(orgId, projectName);
      const r = await this.git(ws, ['status', '--porcelain=v2', '--branch', '-z', '--untracked-files=all']);
      if (r.code !== 0) throw gitError(r, 'status');
      return parseStatusV2(r.stdout);
    });
  }

  /** `git init` (idempotent: an existing repository is left as it is). */
  async initRepo(orgId: string, projectName: string, branch: string | undefined): Promise<{ created: boolean; branch: string | null }> {
    const b = branch === undefined ? 'main' : assertBranch(branch);
    return this.locked(orgId, projectName, async () => {
      const ws = await requireWorkspace(this.d.base, orgId, projectName);
      const existing = await lstat(path.join(ws.root, '.git')).catch(() => undefined);
      if (existing) {
        if (!existing.isDirectory()) throw new AppError('SM_ERR_GIT_FAILED', 'The workspace holds a .git that is not a directory.');
        return { created: false, branch: await this.currentBranch(ws) };
      }
      const r = await this.git(ws, ['init', '--quiet', `--initial-branch=${b}`]);
      if (r.code !== 0) throw gitError(r, 'init');
      return { created: true, branch: b };
    });
  }

  /**
   * Clone into the workspace (made if missing). Only a workspace holding nothing but
   * `.vibe/` counts as empty. The clone goes to a sibling folder first and its entries are
   * moved in after it succeeded, so a failed clone leaves the workspace untouched; the
   * workspace's own `.vibe/` files win over the repository's.
   */
  async clone(orgId: string, projectName: string, body: { url: unknown; branch?: unknown; token?: string | undefined }, caller: string): Promise<{ url: string; branch: string | null; head: string | null }> {
    const url = assertRemoteUrl(body.url, this.policy);
    const branch = body.branch === undefined || body.branch === null ? undefined : assertBranch(body.branch);
    return this.locked(orgId, projectName, async () => {
      await ensureWorkspace(this.d.base, orgId, projectName, caller);
      const ws = await requireWorkspace(this.d.base, orgId, projectName);
      const present = (await readdir(ws.root)).filter((n) => n !== VIBE_DIR);
      if (present.length > 0) throw new AppError('SM_ERR_WORKSPACE_NOT_EMPTY', `${orgId}/${projectName} is not empty (${present.length} entries besides .vibe/).`);
      const parent = path.dirname(ws.root);
      const tmp = path.join(parent, `.clone-${projectName}-${randomBytes(4).toString('hex')}`);
      try {
        const args = ['clone', '--quiet', '--origin', 'origin', ...(branch ? ['--branch', branch] : []), '--', url, tmp];
        const r = await this.git(parent, args, { token: body.token, timeoutMs: NETWORK_TIMEOUT_MS });
        if (r.code !== 0) throw gitError(r, 'clone', body.token, 'SM_ERR_GIT_REMOTE_FAILED');
        for (const name of await readdir(tmp)) {
          if (name === VIBE_DIR) {
            await mkdir(path.join(ws.root, VIBE_DIR), { recursive: true });
            for (const inner of await readdir(path.join(tmp, VIBE_DIR))) {
              const dest = path.join(ws.root, VIBE_DIR, inner);
              if (!(await lstat(dest).catch(() => undefined))) await rename(path.join(tmp, VIBE_DIR, inner), dest);
            }
            continue;
          }
          await rename(path.join(tmp, name), path.join(ws.root, name));
        }
      } finally {
        await rm(tmp, { recursive: true, force: true });
      }
      const head = await this.git(ws, ['rev-parse', '-q', '--verify', 'HEAD']);
      return { url: redact(url), branch: await this.currentBranch(ws), head: head.code === 0 ? head.stdout.trim() : null };
    });
  }

  /**
   * Stage everything (or `paths`) and commit. Without an author the caller commits as
   * `<sub> <sub@users.session-manager>`; the committer is always the caller.
   */
  async commit(orgId: string, projectName: string, body: Record<string, unknown>, caller: string): Promise<{ commit: string; branch: string | null; author: Identity; message: string }> {
    const message = body.message;
    if (typeof message !== 'string' || !message.trim() || message.length > MAX_MESSAGE) {
      throw new AppError('SM_ERR_VALIDATION', `"message" must be a non-empty string of at most ${MAX_MESSAGE} characters.`, { details: { field: 'message' } });
    }
    const me = userIdentity(caller);
    const author = body.author === undefined || body.author === null ? me : parseIdentity(body.author);
    let paths: string[][] | undefined;
    if (body.paths !== undefined && body.paths !== null) {
      if (!Array.isArray(body.paths) || body.paths.length === 0 || body.paths.length > MAX_PATHS) {
        throw new AppError('SM_ERR_VALIDATION', `"paths" must be an array of 1 to ${MAX_PATHS} workspace-relative paths.`, { details: { field: 'paths' } });
      }
      paths = body.paths.map((p, i) => {
        const segs = relSegments(p, { allowDotfiles: true, field: `paths[${i}]` });
        if (segs.length === 0 || segs[0] === '.git') throw new AppError('SM_ERR_PATH_REFUSED', `"paths[${i}]" may not name .git.`, { details: { field: `paths[${i}]` } });
        return segs;
      });
    }
    return this.locked(orgId, projectName, async () => {
      const ws = await this.repo(orgId, projectName);
      let spec: string[] = [];
      if (paths) {
        // Each path must stay inside the workspace even through links (it may be a deletion).
        for (const segs of paths) await resolveInside(ws.root, segs, { allowDotfiles: true });
        spec = ['--', ...paths.map((s) => s.join('/'))];
      }
      const add = await this.git(ws, ['add', '-A', ...spec]);
      if (add.code !== 0) throw gitError(add, 'add');
      const staged = await this.git(ws, ['diff', '--cached', '--quiet', ...spec]);
      if (staged.code === 0) throw new AppError('SM_ERR_GIT_NOTHING_TO_COMMIT');
      if (staged.code !== 1) throw gitError(staged, 'diff');
      const r = await this.git(ws, ['commit', '--quiet', '--no-verify', '-m', message, ...spec], { author, committer: me });
      if (r.code !== 0) throw gitError(r, 'commit');
      const head = await this.git(ws, ['rev-parse', 'HEAD']);
      return { commit: head.stdout.trim(), branch: await this.currentBranch(ws), author, message: message.split('\n')[0]! };
    });
  }

  async remotes(orgId: string, projectName: string): Promise<Array<{ name: string; url: string; pushUrl?: string }>> {
    return this.locked(orgId, projectName, async () => this.listRemotes(await this.repo(orgId, projectName)));
  }

  private async listRemotes(ws: Workspace): Promise<Array<{ name: string; url: string; pushUrl?: string }>> {
    const r = await this.git(ws, ['config', '-z', '--get-regexp', '^remote\\..*\\.(url|pushurl)$']);
    if (r.code === 1) return [];
    if (r.code !== 0) throw gitError(r, 'config');
    const by = new Map<string, { name: string; url: string; pushUrl?: string }>();
    for (const rec of r.stdout.split('\0').filter(Boolean)) {
      const nl = rec.indexOf('\n');
      const key = rec.slice(0, nl);
      const value = redact(rec.slice(nl + 1));
      const m = /^remote\.(.+)\.(url|pushurl)$/.exec(key);
      if (!m) continue;
      const e = by.get(m[1]!) ?? { name: m[1]!, url: '' };
      if (m[2] === 'url') e.url = value;
      else e.pushUrl = value;
      by.set(m[1]!, e);
    }
    return [...by.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Add the remote, or point an existing one at a new URL. */
  async setRemote(orgId: string, projectName: string, body: Record<string, unknown>): Promise<{ name: string; url: string; created: boolean }> {
    const name = assertRemoteName(body.name ?? 'origin', 'name');
    const url = assertRemoteUrl(body.url, this.policy);
    return this.locked(orgId, projectName, async () => {
      const ws = await this.repo(orgId, projectName);
      const exists = (await this.remoteUrl(ws, name)) !== undefined;
      const r = await this.git(ws, exists ? ['remote', 'set-url', '--', name, url] : ['remote', 'add', '--', name, url]);
      if (r.code !== 0) throw gitError(r, 'remote');
      return { name, url: redact(url), created: !exists };
    });
  }

  async push(orgId: string, projectName: string, body: { remote?: unknown; branch?: unknown; token?: string | undefined }): Promise<{ remote: string; branch: string; head: string; output: string[] }> {
    const remote = assertRemoteName(body.remote ?? 'origin');
    const wanted = body.branch === undefined || body.branch === null ? undefined : assertBranch(body.branch);
    return this.locked(orgId, projectName, async () => {
      const ws = await this.repo(orgId, projectName);
      await this.requireRemote(ws, remote);
      const branch = wanted ?? (await this.branchOrFail(ws));
      const ref = `refs/heads/${branch}`;
      const head = await this.git(ws, ['rev-parse', '-q', '--verify', ref]);
      if (head.code !== 0) throw new AppError('SM_ERR_GIT_FAILED', `There is no local branch "${branch}" with commits to push.`, { details: { field: 'branch' } });
      const r = await this.git(ws, ['push', '--porcelain', '--set-upstream', '--', remote, `${ref}:${ref}`], { token: body.token, timeoutMs: NETWORK_TIMEOUT_MS });
      if (r.code !== 0) throw gitError(r, 'push', body.token);
      return { remote, branch, head: head.stdout.trim(), output: outputLines(r, body.token) };
    });
  }

  /**
   * Fetch and merge (never rebase). A conflict is aborted, leaving the workspace as it was,
   * and answered 409 `git_conflict` with the conflicting paths.
   */
  async pull(orgId: string, projectName: string, body: { remote?: unknown; branch?: unknown; token?: string | undefined }, caller: string): Promise<{ remote: string; branch: string; head: string | null; updated: boolean; output: string[] }> {
    const remote = assertRemoteName(body.remote ?? 'origin');
    const wanted = body.branch === undefined || body.branch === null ? undefined : assertBranch(body.branch);
    return this.locked(orgId, projectName, async () => {
      const ws = await this.repo(orgId, projectName);
      await this.requireRemote(ws, remote);
      const branch = wanted ?? (await this.branchOrFail(ws));
      const before = await this.git(ws, ['rev-parse', '-q', '--verify', 'HEAD']);
      const me = userIdentity(caller);
      const r = await this.git(ws, ['pull', '--no-rebase', '--no-edit', '--no-verify', '--', remote, branch], { token: body.token, author: me, committer: me, timeoutMs: NETWORK_TIMEOUT_MS });
      if (r.code !== 0) {
        const unmerged = await this.git(ws, ['diff', '--name-only', '--diff-filter=U', '-z']);
        const files = unmerged.code === 0 ? unmerged.stdout.split('\0').filter(Boolean) : [];
        if (files.length > 0) {
          await this.git(ws, ['merge', '--abort']);
          throw new AppError('SM_ERR_GIT_CONFLICT', `Pulling ${remote}/${branch} conflicts in ${files.length} file(s); the merge was aborted.`, { details: { files: files.slice(0, 100) } });
        }
        throw gitError(r, 'pull', body.token);
      }
      const after = await this.git(ws, ['rev-parse', '-q', '--verify', 'HEAD']);
      const headAfter = after.code === 0 ? after.stdout.trim() : null;
      const headBefore = before.code === 0 ? before.stdout.trim() : null;
      return { remote, branch, head: headAfter, updated: headAfter !== headBefore, output: outputLines(r, body.token) };
    });
  }

  async log(orgId: string, projectName: string, opts: { limit: number; path?: string | undefined }): Promise<LogEntry[]> {
    const segs = opts.path === undefined ? undefined : relSegments(opts.path, { allowDotfiles: true });
    return this.locked(orgId, projectName, async () => {
      const ws = await this.repo(orgId, projectName);
      const head = await this.git(ws, ['rev-parse', '-q', '--verify', 'HEAD']);
      if (head.code !== 0) return [];
      if (segs) await resolveInside(ws.root, segs, { allowDotfiles: true });
      const r = await this.git(ws, ['log', `--max-count=${opts.limit}`, LOG_FORMAT, ...(segs ? ['--', segs.join('/')] : [])]);
      if (r.code !== 0) throw gitError(r, 'log');
      return parseLog(r.stdout);
    });
  }

  private async remoteUrl(ws: Workspace, name: string): Promise<string | undefined> {
    const r = await this.git(ws, ['config', '--get', `remote.${name}.url`]);
    return r.code === 0 ? r.stdout.trim() : undefined;
  }

  private async requireRemote(ws: Workspace, name: string): Promise<void> {
    if ((await this.remoteUrl(ws, name)) === undefined) throw new AppError('SM_ERR_GIT_REMOTE_NOT_FOUND', `No remote "${name}".`);
  }

  private async currentBranch(ws: Workspace): Promise<string | null> {
    const r = await this.git(ws, ['symbolic-ref', '--quiet', '--short', 'HEAD']);
    return r.code === 0 ? r.stdout.trim() : null;
  }

  private async branchOrFail(ws: Workspace): Promise<string> {
    const b = await this.currentBranch(ws);
    if (!b) throw new AppError('SM_ERR_GIT_FAILED', 'HEAD is detached; name a "branch".', { details: { field: 'branch' } });
    return b;
  }
}

/** `<sub> <sub@users.session-manager>` with characters git rejects in identities removed. */
export function userIdentity(sub: string): Identity {
  const name = sub.replace(/[<>\n\r\0]/g, '').trim() || 'user';
  const local = name.replace(/[^A-Za-z0-9._+-]/g, '_');
  return { name, email: `${local}@users.session-manager` };
}

function parseIdentity(v: unknown): Identity {
  const bad = (): never => {
    throw new AppError('SM_ERR_VALIDATION', '"author" must be {name, email}: non-empty strings without <, > or line breaks.', { details: { field: 'author' } });
  };
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return bad();
  const { name, email } = v as Record<string, unknown>;
  const okName = typeof name === 'string' && name.trim() !== '' && name.length <= MAX_IDENTITY && !/[<>\n\r\0]/.test(name);
  const okEmail = typeof email === 'string' && email.length <= MAX_IDENTITY && /^[^\s<>@]+@[^\s<>@]+$/.test(email);
  if (!okName || !okEmail) bad();
  return { name: (name as string).trim(), email: email as string };
}

function outputLines(r: RunResult, token?: string): string[] {
  return redact(`${r.stdout}\n${r.stderr}`, token).split('\n').map((l) => l.trimEnd()).filter(Boolean).slice(0, 50);
}
