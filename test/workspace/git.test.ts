import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startServer, type ApiResponse, type TestServer } from '../helpers/server.js';
import { startGitHttp, type GitHttpServer } from './helpers/git-http.js';

let s: TestServer;
let token: string;
let remotes: string;
let httpRemote: GitHttpServer;
/** Every response body the tests saw, to prove no token ever came back. */
const seenBodies: string[] = [];
const TOKEN = 'ghp_TESTTOKEN0123456789abcdefSECRET';

const call = async (method: string, p: string, body?: unknown): Promise<ApiResponse> => {
  const r = await api(s, method, p, { token, body });
  seenBodies.push(r.text);
  return r;
};

/** Plain git for the test's own side (the "other developer"), isolated from the machine's config. */
function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', args, {
    cwd,
    env: {
      PATH: process.env.PATH,
      HOME: cwd,
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_CONFIG_GLOBAL: '/dev/null',
      GIT_AUTHOR_NAME: 'Other Dev',
      GIT_AUTHOR_EMAIL: 'other@example.com',
      GIT_COMMITTER_NAME: 'Other Dev',
      GIT_COMMITTER_EMAIL: 'other@example.com',
      GIT_ALLOW_PROTOCOL: 'file',
    },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** A bare repository with one commit on main (README.md, app.txt). */
function seedBare(name: string): string {
  const bare = path.join(remotes, name);
  const work = path.join(remotes, `${name}-seed`);
  git(remotes, 'init', '--bare', '--initial-branch=main', bare);
  git(remotes, 'init', '--initial-branch=main', work);
  writeFileSync(path.join(work, 'README.md'), '# seeded\n');
  writeFileSync(path.join(work, 'app.txt'), 'line one\nline two\n');
  git(work, 'add', '-A');
  git(work, 'commit', '-m', 'seed');
  git(work, 'push', bare, 'main');
  return bare;
}

const ws = (project: string, ...rel: string[]) => path.join(s.workspaces, 'acme', project, ...rel);

beforeAll(async () => {
  s = await startServer();
  token = await s.token({ sub: 'alice', orgId: 'acme' });
  remotes = path.join(s.dir, 'remotes');
  mkdirSync(remotes);
  httpRemote = await startGitHttp(remotes, TOKEN);
});
afterAll(async () => {
  await httpRemote?.close();
  await s?.stop();
  // The token never reached a response or a log line.
  expect(seenBodies.some((b) => b.includes(TOKEN))).toBe(false);
  expect(s.output.some((l) => l.includes(TOKEN))).toBe(false);
});

describe('git', () => {
  it('clone (file://, with a token), status, commit, push, pull and log against a bare repository', async () => {
    const bare = seedBare('origin.git');
    const cloned = await call('POST', '/api/git/acme/proj/clone', { url: `file://${bare}`, token: TOKEN });
    expect(cloned.status).toBe(201);
    expect(cloned.body).toMatchObject({ url: `file://${bare}`, branch: 'main' });
    expect(readFileSync(ws('proj', 'README.md'), 'utf8')).toBe('# seeded\n');
    expect(existsSync(ws('proj', '.vibe', 'project.json'))).toBe(true);
    const config = readFileSync(ws('proj', '.git', 'config'), 'utf8');
    expect(config).not.toContain(TOKEN);
    expect(config).toContain(`url = file://${bare}`);
    expect(readdirSync(path.join(s.workspaces, 'acme')).filter((n) => n.startsWith('.clone-'))).toEqual([]);

    const status = await call('GET', '/api/git/acme/proj/status');
    expect(status.status).toBe(200);
    expect(status.body.branch).toMatchObject({ head: 'main', upstream: 'origin/main', ahead: 0, behind: 0, detached: false });
    expect(status.body.files).toEqual([{ path: '.vibe/project.json', kind: 'untracked', index: '?', worktree: '?' }]);

    writeFileSync(ws('proj', 'app.txt'), 'line one\nline two\nline three\n');
    writeFileSync(ws('proj', 'new file.md'), 'spaces in the name\n');
    const dirty = await call('GET', '/api/git/acme/proj/status');
    expect(dirty.body.clean).toBe(false);
    expect(dirty.body.files).toEqual(expect.arrayContaining([
      { path: 'app.txt', kind: 'changed', index: '.', worktree: 'M' },
      { path: 'new file.md', kind: 'untracked', index: '?', worktree: '?' },
    ]));

    // Only the named paths, by a given author; the rest stays uncommitted.
    const partial = await call('POST', '/api/git/acme/proj/commit', { message: 'Add a third line', paths: ['app.txt'], author: { name: 'Ada Author', email: 'ada@example.com' } });
    expect(partial.status).toBe(201);
    expect(partial.body).toMatchObject({ branch: 'main', author: { name: 'Ada Author', email: 'ada@example.com' }, message: 'Add a third line' });
    expect(partial.body.commit).toMatch(/^[0-9a-f]{40}$/);
    const show = git(ws('proj'), 'show', '-s', '--format=%an <%ae>|%cn <%ce>', 'HEAD').trim();
    expect(show).toBe('Ada Author <ada@example.com>|alice <alice@users.session-manager>');
    expect(git(ws('proj'), 'show', '--name-only', '--format=', 'HEAD').trim()).toBe('app.txt');

    // Everything else, with no author: the token's user commits.
    const rest = await call('POST', '/api/git/acme/proj/commit', { message: 'Add notes' });
    expect(rest.status).toBe(201);
    expect(git(ws('proj'), 'show', '-s', '--format=%an <%ae>', 'HEAD').trim()).toBe('alice <alice@users.session-manager>');
    expect((await call('POST', '/api/git/acme/proj/commit', { message: 'again' })).body.error.code).toBe('nothing_to_commit');

    const pushed = await call('POST', '/api/git/acme/proj/push', { token: TOKEN });
    expect(pushed.status).toBe(200);
    expect(pushed.body).toMatchObject({ remote: 'origin', branch: 'main', head: rest.body.commit });
    expect(git(bare, 'rev-parse', 'main').trim()).toBe(rest.body.commit);

    // Another developer pushes; pull brings it in.
    const other = path.join(remotes, 'other');
    git(remotes, 'clone', bare, other);
    writeFileSync(path.join(other, 'CONTRIBUTING.md'), 'be nice\n');
    git(other, 'add', '-A');
    git(other, 'commit', '-m', 'Contributing guide');
    git(other, 'push', 'origin', 'main');
    const pulled = await call('POST', '/api/git/acme/proj/pull', { token: TOKEN });
    expect(pulled.status).toBe(200);
    expect(pulled.body).toMatchObject({ remote: 'origin', branch: 'main', updated: true, head: git(bare, 'rev-parse', 'main').trim() });
    expect(readFileSync(ws('proj', 'CONTRIBUTING.md'), 'utf8')).toBe('be nice\n');
    const noop = await call('POST', '/api/git/acme/proj/pull', {});
    expect(noop.body.updated).toBe(false);

    const log = await call('GET', '/api/git/acme/proj/log?limit=10');
    expect(log.status).toBe(200);
    expect(log.body.items.map((c: any) => c.subject)).toEqual(['Contributing guide', 'Add notes', 'Add a third line', 'seed']);
    expect(log.body.items[2]).toMatchObject({ author: { name: 'Ada Author', email: 'ada@example.com' }, committer: { name: 'alice' } });
    expect(log.body.items[0].parents).toHaveLength(1);
    expect((await call('GET', '/api/git/acme/proj/log?limit=1')).body.items).toHaveLength(1);
    expect((await call('GET', '/api/git/acme/proj/log?path=app.txt')).body.items.map((c: any) => c.subject)).toEqual(['Add a third line', 'seed']);
    expect((await call('GET', '/api/git/acme/proj/log?limit=0')).status).toBe(400);
  });

  it('remote get/set, and conflicts: a diverged pull is aborted with 409, a non-fast-forward push is 409', async () => {
    const bare = seedBare('conflict.git');
    expect((await call('POST', '/api/git/acme/conf/clone', { url: `file://${bare}` })).status).toBe(201);
    const remotesList = await call('GET', '/api/git/acme/conf/remote');
    expect(remotesList.body.items).toEqual([{ name: 'origin', url: `file://${bare}` }]);
    const mirror = seedBare('mirror.git');
    const added = await call('POST', '/api/git/acme/conf/remote', { name: 'mirror', url: `file://${mirror}` });
    expect(added.status).toBe(201);
    const changed = await call('POST', '/api/git/acme/conf/remote', { name: 'mirror', url: `file://${bare}` });
    expect(changed.status).toBe(200);
    expect((await call('GET', '/api/git/acme/conf/remote')).body.items.map((r: any) => r.name)).toEqual(['mirror', 'origin']);
    expect((await call('POST', '/api/git/acme/conf/push', { remote: 'nope' })).body.error.code).toBe('remote_not_found');

    const other = path.join(remotes, 'conflict-other');
    git(remotes, 'clone', bare, other);
    writeFileSync(path.join(other, 'app.txt'), 'line one\nTHEIRS\n');
    git(other, 'commit', '-am', 'theirs');
    git(other, 'push', 'origin', 'main');

    writeFileSync(ws('conf', 'app.txt'), 'line one\nOURS\n');
    expect((await call('POST', '/api/git/acme/conf/commit', { message: 'ours', paths: ['app.txt'] })).status).toBe(201);
    const push = await call('POST', '/api/git/acme/conf/push', {});
    expect(push.status).toBe(409);
    expect(push.body.error.code).toBe('git_conflict');

    const pull = await call('POST', '/api/git/acme/conf/pull', {});
    expect(pull.status).toBe(409);
    expect(pull.body.error).toMatchObject({ code: 'git_conflict', details: { files: ['app.txt'] } });
    // The merge was aborted: the workspace is as it was before the pull.
    expect(existsSync(ws('conf', '.git', 'MERGE_HEAD'))).toBe(false);
    expect(readFileSync(ws('conf', 'app.txt'), 'utf8')).toBe('line one\nOURS\n');
    const st = await call('GET', '/api/git/acme/conf/status');
    expect(st.body.files.filter((f: any) => f.kind === 'unmerged')).toEqual([]);
    expect(st.body.branch).toMatchObject({ ahead: 1, behind: 1 });
  });

  it('never runs the workspace\'s hooks or fsmonitor', async () => {
    const bare = seedBare('hooks.git');
    expect((await call('POST', '/api/git/acme/hooked/clone', { url: `file://${bare}` })).status).toBe(201);
    const marker = path.join(s.dir, 'hook-ran');
    const hook = `#!/bin/sh\necho ran >> ${marker}\n`;
    for (const name of ['pre-commit', 'commit-msg', 'post-commit', 'pre-push', 'post-merge', 'post-checkout']) {
      writeFileSync(ws('hooked', '.git', 'hooks', name), hook);
      chmodSync(ws('hooked', '.git', 'hooks', name), 0o755);
    }
    // The same hooks where the repository's own core.hooksPath points.
    const custom = ws('hooked', 'my-hooks');
    mkdirSync(custom);
    for (const name of ['pre-commit', 'commit-msg', 'post-commit', 'pre-push', 'post-merge', 'post-checkout']) writeFileSync(path.join(custom, name), hook, { mode: 0o755 });
    git(ws('hooked'), 'config', 'core.hooksPath', custom);
    const fsmonitor = path.join(s.dir, 'fsmonitor.sh');
    writeFileSync(fsmonitor, `#!/bin/sh\necho fsmonitor >> ${marker}\n`, { mode: 0o755 });
    git(ws('hooked'), 'config', 'core.fsmonitor', fsmonitor);

    writeFileSync(ws('hooked', 'x.txt'), 'x');
    expect((await call('GET', '/api/git/acme/hooked/status')).status).toBe(200);
    expect((await call('POST', '/api/git/acme/hooked/commit', { message: 'with hooks around' })).status).toBe(201);
    expect((await call('POST', '/api/git/acme/hooked/push', {})).status).toBe(200);
    // Someone else pushes, so the pull really merges (post-merge would fire).
    const other = path.join(remotes, 'hooks-other');
    git(remotes, 'clone', bare, other);
    writeFileSync(path.join(other, 'theirs.txt'), 't');
    git(other, 'add', '-A');
    git(other, 'commit', '-m', 'theirs');
    git(other, 'push', 'origin', 'main');
    const pulled = await call('POST', '/api/git/acme/hooked/pull', {});
    expect(pulled.body.updated).toBe(true);
    // The same repository does run them for a plain git: the fixture is live.
    expect(existsSync(marker)).toBe(false);
    git(ws('hooked'), 'status');
    expect(readFileSync(marker, 'utf8')).toContain('fsmonitor');
  });

  it('init, not-a-repository, non-empty clone targets and refused URLs', async () => {
    await api(s, 'POST', '/api/dev-envs', { token, body: { orgId: 'acme', projectName: 'plain' } });
    for (const [method, p, body] of [
      ['GET', '/api/git/acme/plain/status', undefined],
      ['GET', '/api/git/acme/plain/log', undefined],
      ['GET', '/api/git/acme/plain/remote', undefined],
      ['POST', '/api/git/acme/plain/commit', { message: 'x' }],
      ['POST', '/api/git/acme/plain/push', {}],
      ['POST', '/api/git/acme/plain/pull', {}],
    ] as const) {
      const r = await call(method, p, body);
      expect(r.status, p).toBe(409);
      expect(r.body.error.code).toBe('not_a_repository');
    }
    const bare = seedBare('target.git');
    const notEmpty = await call('POST', '/api/git/acme/plain/clone', { url: `file://${bare}` });
    expect(notEmpty.status).toBe(409);
    expect(notEmpty.body.error.code).toBe('workspace_not_empty');

    const init = await call('POST', '/api/git/acme/plain/init', {});
    expect(init.status).toBe(201);
    expect(init.body).toEqual({ created: true, branch: 'main' });
    expect((await call('POST', '/api/git/acme/plain/init', {})).status).toBe(200);
    expect((await call('GET', '/api/git/acme/plain/log')).body.items).toEqual([]);
    const first = await call('POST', '/api/git/acme/plain/commit', { message: 'first' });
    expect(first.status).toBe(201);
    expect((await call('GET', '/api/git/acme/plain/status')).body).toMatchObject({ clean: true, branch: { head: 'main', oid: first.body.commit } });

    // A workspace holding only .vibe/ counts as empty; its own .vibe files are kept.
    mkdirSync(ws('vibeonly', '.vibe'), { recursive: true });
    writeFileSync(ws('vibeonly', '.vibe', 'project.json'), '{"orgId":"acme","projectName":"vibeonly","createdBy":"x","createdAt":"2024-01-01T00:00:00Z"}');
    expect((await call('POST', '/api/git/acme/vibeonly/clone', { url: `file://${bare}`, branch: 'main' })).status).toBe(201);
    expect(readFileSync(ws('vibeonly', '.vibe', 'project.json'), 'utf8')).toContain('"createdBy":"x"');

    const bad = [
      'ext::sh -c touch% /tmp/pwned',
      'https://user:secret@example.com/repo.git',
      '-oProxyCommand=touch /tmp/pwned',
      '/etc',
      `file://${s.workspaces}/acme/proj`,
      `file://${s.dataDir}`,
      'fd::17',
      'https://example.com/a b',
      '',
    ];
    for (const url of bad) {
      const r = await call('POST', '/api/git/acme/fresh/clone', { url });
      expect(r.status, url).toBe(400);
      expect(r.body.error.code, url).toBe('bad_remote_url');
    }
    // Allowed in form (file:// is on in test mode) but not a repository: the remote failed, nothing is left behind.
    const notRepo = await call('POST', '/api/git/acme/fresh/clone', { url: 'file:///etc' });
    expect(notRepo.status).toBe(502);
    expect(notRepo.body.error.code).toBe('git_remote_failed');
    expect(readdirSync(path.join(s.workspaces, 'acme')).filter((n) => n.startsWith('.clone-'))).toEqual([]);
    expect(readdirSync(ws('fresh')).filter((n) => n !== '.vibe')).toEqual([]);
    expect((await call('POST', '/api/git/acme/plain/remote', { name: 'x', url: 'ext::sh -c id' })).body.error.code).toBe('bad_remote_url');
    expect((await call('POST', '/api/git/acme/plain/remote', { name: '-x', url: `file://${bare}` })).status).toBe(400);
    expect((await call('POST', '/api/git/acme/plain/push', { branch: '--force' })).status).toBe(400);
    expect((await call('POST', '/api/git/acme/plain/commit', { message: 'x', paths: ['../outside'] })).body.error.code).toBe('path_refused');
    expect((await call('POST', '/api/git/acme/plain/commit', { message: 'x', paths: ['.git/config'] })).body.error.code).toBe('path_refused');
    expect((await call('POST', '/api/git/acme/plain/commit', { message: '' })).status).toBe(400);
    expect((await call('POST', '/api/git/acme/plain/commit', { message: 'x', author: { name: 'a<b', email: 'x@y' } })).status).toBe(400);
    const other = await s.token({ sub: 'mallory', orgId: 'evil' });
    expect((await api(s, 'GET', '/api/git/acme/plain/status', { token: other })).status).toBe(403);
  });

  it('over HTTP the token is sent as the password once asked for, never stored; a missing or wrong token is git_auth_failed', async () => {
    seedBare('private.git');
    const url = `${httpRemote.url}/private.git`;
    const anonymous = await call('POST', '/api/git/acme/priv/clone', { url });
    expect(anonymous.status).toBe(403);
    expect(anonymous.body.error.code).toBe('git_auth_failed');
    const wrong = await call('POST', '/api/git/acme/priv/clone', { url, token: 'not-the-token' });
    expect(wrong.body.error.code).toBe('git_auth_failed');
    expect(readdirSync(ws('priv')).filter((n) => n !== '.vibe')).toEqual([]);

    const ok = await call('POST', '/api/git/acme/priv/clone', { url, token: TOKEN });
    expect(ok.status).toBe(201);
    expect(httpRemote.seen).toContain(`x-access-token:${TOKEN}`);
    expect(readFileSync(ws('priv', '.git', 'config'), 'utf8')).not.toContain(TOKEN);
    expect(readdirSync(ws('priv', '.git')).some((n) => /credential/i.test(n))).toBe(false);
    expect(existsSync(path.join(s.dataDir, 'git', 'home', '.git-credentials'))).toBe(false);

    writeFileSync(ws('priv', 'change.txt'), 'c');
    expect((await call('POST', '/api/git/acme/priv/commit', { message: 'change' })).status).toBe(201);
    expect((await call('POST', '/api/git/acme/priv/push', {})).body.error.code).toBe('git_auth_failed');
    const pushed = await call('POST', '/api/git/acme/priv/push', { token: TOKEN });
    expect(pushed.status).toBe(200);
    expect((await call('POST', '/api/git/acme/priv/pull', {})).body.error.code).toBe('git_auth_failed');
    expect((await call('POST', '/api/git/acme/priv/pull', { token: TOKEN })).status).toBe(200);
    expect((await call('POST', '/api/git/acme/priv/push', { token: 'has a space' })).status).toBe(400);
  });
});
