import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startServer, until, type TestServer } from '../helpers/server.js';
import { readZip } from './helpers/zip.js';

let s: TestServer;
let token: string;

beforeAll(async () => {
  s = await startServer();
  token = await s.token({ sub: 'alice', orgId: 'acme' });
});
afterAll(async () => {
  await s?.stop();
});

const ws = (project: string, ...rel: string[]) => path.join(s.workspaces, 'acme', project, ...rel);

/** GET a URL and return the whole body as a Buffer (zip downloads). */
async function download(p: string, t = token): Promise<{ status: number; headers: Headers; body: Buffer }> {
  const res = await fetch(s.url + p, { headers: { authorization: `Bearer ${t}` } });
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

describe('dev-envs', () => {
  it('create scaffolds the default template and stamps .vibe/project.json; a description skips the scaffold', async () => {
    const made = await api(s, 'POST', '/api/dev-envs', { token, body: { orgId: 'acme', projectName: 'site' } });
    expect(made.status).toBe(201);
    expect(made.body).toMatchObject({ orgId: 'acme', projectName: 'site', path: ws('site') });
    expect(made.body.project).toMatchObject({ orgId: 'acme', projectName: 'site', createdBy: 'alice', template: 'plain-html' });
    expect(made.body.files).toEqual(expect.arrayContaining(['.vibe/project.json', 'index.html', 'AGENTS.md']));
    const stamp = JSON.parse(readFileSync(ws('site', '.vibe', 'project.json'), 'utf8'));
    expect(stamp).toMatchObject({ orgId: 'acme', projectName: 'site', createdBy: 'alice', template: 'plain-html' });
    expect(Date.parse(stamp.createdAt)).not.toBeNaN();
    expect(readFileSync(ws('site', 'index.html'), 'utf8')).toContain('<title>site</title>');
    expect(readFileSync(ws('site', 'AGENTS.md'), 'utf8')).toContain('`.vibe/planner.json`');

    const described = await api(s, 'POST', '/api/dev-envs', { token, body: { orgId: 'acme', projectName: 'brief', description: 'A recipe box with tags' } });
    expect(described.status).toBe(201);
    expect(described.body.project.description).toBe('A recipe box with tags');
    expect(described.body.project.template).toBeUndefined();
    expect(readdirSync(ws('brief')).sort()).toEqual(['.vibe', 'AGENTS.md']);
    const agents = readFileSync(ws('brief', 'AGENTS.md'), 'utf8');
    expect(agents).toContain('A recipe box with tags');
    expect(agents).toContain('choose the framework');

    const chosen = await api(s, 'POST', '/api/dev-envs', { token, body: { orgId: 'acme', projectName: 'app', template: 'vanilla-app', description: 'todo' } });
    expect(chosen.status).toBe(201);
    expect(existsSync(ws('app', 'src', 'main.js'))).toBe(true);

    expect((await api(s, 'POST', '/api/dev-envs', { token, body: { orgId: 'acme', projectName: 'site' } })).body.error.code).toBe('workspace_exists');
    const unknown = await api(s, 'POST', '/api/dev-envs', { token, body: { orgId: 'acme', projectName: 'nope', template: 'no-such' } });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.code).toBe('unknown_template');
    expect(existsSync(ws('nope'))).toBe(false);
  });

  it('a workspace a session made (only .vibe/) can still be created as a dev-env', async () => {
    mkdirSync(ws('fromsession', '.vibe'), { recursive: true });
    writeFileSync(ws('fromsession', '.vibe', 'project.json'), JSON.stringify({ orgId: 'acme', projectName: 'fromsession', createdBy: 'bob', createdAt: '2024-01-01T00:00:00.000Z' }));
    const made = await api(s, 'POST', '/api/dev-envs', { token, body: { orgId: 'acme', projectName: 'fromsession', template: 'static-site' } });
    expect(made.status).toBe(201);
    expect(made.body.project).toMatchObject({ createdBy: 'bob', createdAt: '2024-01-01T00:00:00.000Z', template: 'static-site' });
    expect(existsSync(ws('fromsession', 'css', 'style.css'))).toBe(true);
  });

  it('validates names before authorization, and keeps other orgs out', async () => {
    const bad = await api(s, 'POST', '/api/dev-envs', { token, body: { orgId: 'acme', projectName: '../escape' } });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('invalid_name');
    expect((await api(s, 'GET', '/api/dev-envs/acme/..%2Fx', { token })).status).toBe(400);
    const other = await s.token({ sub: 'mallory', orgId: 'evil' });
    expect((await api(s, 'GET', '/api/dev-envs/acme', { token: other })).status).toBe(403);
    expect((await api(s, 'GET', '/api/dev-envs/acme/site', { token: other })).status).toBe(403);
    expect((await api(s, 'DELETE', '/api/dev-envs/acme/site', { token: other })).status).toBe(403);
    expect((await api(s, 'GET', '/api/dev-envs/acme/site/download', { token: other })).status).toBe(403);
    expect((await api(s, 'POST', '/api/dev-envs', { token: other, body: { orgId: 'acme', projectName: 'x' } })).status).toBe(403);
    expect((await api(s, 'GET', '/api/dev-envs/acme')).status).toBe(401);
  });

  it('lists an org and inspects size, file count, git and live sessions', async () => {
    const list = await api(s, 'GET', '/api/dev-envs/acme', { token });
    expect(list.status).toBe(200);
    const names = list.body.items.map((i: any) => i.projectName);
    expect(names).toEqual(expect.arrayContaining(['site', 'brief', 'app']));
    expect(list.body.items.find((i: any) => i.projectName === 'site').project.template).toBe('plain-html');

    const before = await api(s, 'GET', '/api/dev-envs/acme/site', { token });
    expect(before.status).toBe(200);
    const onDisk = ['index.html', 'AGENTS.md', '.vibe/project.json'].reduce((n, f) => n + readFileSync(ws('site', ...f.split('/'))).length, 0);
    expect(before.body).toMatchObject({ orgId: 'acme', projectName: 'site', fileCount: 3, dirCount: 1, sizeBytes: onDisk, truncated: false, git: { isRepo: false, branch: null }, sessions: [] });

    const init = await api(s, 'POST', '/api/git/acme/site/init', { token });
    expect(init.status).toBe(201);
    const sess = await api(s, 'POST', '/api/sessions', { token, body: { orgId: 'acme', projectName: 'site', agent: 'bash' } });
    expect(sess.status).toBe(201);
    const after = await api(s, 'GET', '/api/dev-envs/acme/site', { token });
    expect(after.body.git).toEqual({ isRepo: true, branch: 'main' });
    expect(after.body.sessions.map((x: any) => x.id)).toEqual([sess.body.id]);
    expect((await api(s, 'GET', '/api/dev-envs/acme', { token })).body.items.find((i: any) => i.projectName === 'site').liveSessions).toBe(1);
    await api(s, 'DELETE', `/api/sessions/${sess.body.id}`, { token });
    expect((await api(s, 'GET', '/api/dev-envs/acme/missing', { token })).body.error.code).toBe('workspace_not_found');
  });

  it('sync-ai-instructions back-fills an old workspace and is idempotent to the byte', async () => {
    const dir = ws('legacy');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'index.html'), '<p>old</p>');
    writeFileSync(path.join(dir, 'AGENTS.md'), '# My notes\n\nKeep these.\n');
    const first = await api(s, 'POST', '/api/dev-envs/acme/legacy/sync-ai-instructions', { token });
    expect(first.status).toBe(200);
    expect(first.body.changed.sort()).toEqual(['.vibe/project.json', 'AGENTS.md']);
    const stamp1 = readFileSync(path.join(dir, '.vibe', 'project.json'));
    const agents1 = readFileSync(path.join(dir, 'AGENTS.md'));
    expect(JSON.parse(stamp1.toString())).toMatchObject({ orgId: 'acme', projectName: 'legacy', createdBy: 'alice' });
    expect(agents1.toString().startsWith('# My notes\n\nKeep these.\n')).toBe(true);
    expect(agents1.toString()).toContain('session-manager:begin');

    const second = await api(s, 'POST', '/api/dev-envs/acme/legacy/sync-ai-instructions', { token });
    expect(second.body.changed).toEqual([]);
    expect(second.body.unchanged.sort()).toEqual(['.vibe/project.json', 'AGENTS.md']);
    expect(readFileSync(path.join(dir, '.vibe', 'project.json')).equals(stamp1)).toBe(true);
    expect(readFileSync(path.join(dir, 'AGENTS.md')).equals(agents1)).toBe(true);

    // A stamp missing fields is completed; the generated block is rewritten in place, notes kept.
    writeFileSync(path.join(dir, '.vibe', 'project.json'), JSON.stringify({ description: 'A blog' }));
    const third = await api(s, 'POST', '/api/dev-envs/acme/legacy/sync-ai-instructions', { token });
    expect(third.body.changed.sort()).toEqual(['.vibe/project.json', 'AGENTS.md']);
    const agents3 = readFileSync(path.join(dir, 'AGENTS.md'), 'utf8');
    expect(agents3.match(/session-manager:begin/g)).toHaveLength(1);
    expect(agents3).toContain('A blog');
    expect(agents3.startsWith('# My notes\n\nKeep these.\n')).toBe(true);
    const fourth = await api(s, 'POST', '/api/dev-envs/acme/legacy/sync-ai-instructions', { token });
    expect(fourth.body.changed).toEqual([]);
    expect((await api(s, 'POST', '/api/dev-envs/acme/ghost/sync-ai-instructions', { token })).status).toBe(404);
  });

  it('downloads a zip: read back entry by entry; .git and node_modules only when included; links out left out', async () => {
    await api(s, 'POST', '/api/dev-envs', { token, body: { orgId: 'acme', projectName: 'zipme', template: 'static-site' } });
    const dir = ws('zipme');
    mkdirSync(path.join(dir, 'node_modules', 'dep'), { recursive: true });
    writeFileSync(path.join(dir, 'node_modules', 'dep', 'index.js'), 'module.exports = 1;\n');
    mkdirSync(path.join(dir, 'src', 'node_modules'), { recursive: true });
    writeFileSync(path.join(dir, 'src', 'node_modules', 'x.js'), 'x');
    const binary = randomBytes(300_000);
    writeFileSync(path.join(dir, 'blob.bin'), binary);
    writeFileSync(path.join(dir, 'photo.png'), binary.subarray(0, 5000));
    mkdirSync(path.join(dir, 'empty-dir'));
    const outside = path.join(s.dir, 'outside-secret.txt');
    writeFileSync(outside, 'TOP-SECRET-OUTSIDE');
    symlinkSync(outside, path.join(dir, 'link-out'));
    symlinkSync('css/style.css', path.join(dir, 'link-in'));
    await api(s, 'POST', '/api/git/acme/zipme/init', { token });

    const r = await download('/api/dev-envs/acme/zipme/download');
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('application/zip');
    expect(r.headers.get('content-disposition')).toBe('attachment; filename="zipme.zip"');
    const zip = readZip(r.body);
    const names = [...zip.keys()];
    expect(names.every((n) => n.startsWith('zipme/'))).toBe(true);
    for (const f of ['index.html', 'about.html', 'css/style.css', 'js/main.js', 'README.md', 'AGENTS.md', '.vibe/project.json']) {
      expect(zip.get(`zipme/${f}`)!.data.equals(readFileSync(path.join(dir, ...f.split('/'))))).toBe(true);
    }
    expect(zip.get('zipme/blob.bin')!.data.equals(binary)).toBe(true);
    // Already-compressed formats are stored, text is deflated.
    expect(zip.get('zipme/photo.png')!.method).toBe(0);
    expect(zip.get('zipme/photo.png')!.data.equals(binary.subarray(0, 5000))).toBe(true);
    expect(zip.get('zipme/index.html')!.method).toBe(8);
    expect(zip.get('zipme/empty-dir/')!.isDir).toBe(true);
    expect(zip.get('zipme/link-in')!.isSymlink).toBe(true);
    expect(zip.get('zipme/link-in')!.data.toString()).toBe('css/style.css');
    expect(names.some((n) => n.includes('link-out'))).toBe(false);
    expect(names.some((n) => n.includes('node_modules'))).toBe(false);
    expect(names.some((n) => n.startsWith('zipme/.git/'))).toBe(false);
    expect(r.body.includes(Buffer.from('TOP-SECRET-OUTSIDE'))).toBe(false);

    const all = readZip((await download('/api/dev-envs/acme/zipme/download?include=.git,node_modules')).body);
    expect(all.get('zipme/node_modules/dep/index.js')!.data.toString()).toBe('module.exports = 1;\n');
    expect(all.get('zipme/src/node_modules/x.js')).toBeDefined();
    expect(all.get('zipme/.git/HEAD')!.data.toString()).toBe('ref: refs/heads/main\n');
    const gitOnly = readZip((await download('/api/dev-envs/acme/zipme/download?include=git')).body);
    expect(gitOnly.get('zipme/.git/HEAD')).toBeDefined();
    expect([...gitOnly.keys()].some((n) => n.includes('node_modules'))).toBe(false);
    expect((await api(s, 'GET', '/api/dev-envs/acme/zipme/download?include=etc', { token })).status).toBe(400);
    expect((await api(s, 'GET', '/api/dev-envs/acme/nothing/download', { token })).status).toBe(404);
    unlinkSync(path.join(dir, 'link-out'));
  });

  it('a zip larger than the socket buffers reaches a paused reader intact (backpressure), and an aborted one frees its files', async () => {
    await api(s, 'POST', '/api/dev-envs', { token, body: { orgId: 'acme', projectName: 'big', description: 'big files' } });
    const dir = ws('big');
    const files = new Map<string, Buffer>();
    for (let i = 0; i < 48; i++) {
      const b = randomBytes(1024 * 1024); // incompressible: the zip is ~48 MiB
      files.set(`f${String(i).padStart(2, '0')}.bin`, b);
      writeFileSync(path.join(dir, `f${String(i).padStart(2, '0')}.bin`), b);
    }
    // Paused reader: stop reading after the first chunk until the stream stalls (the server
    // must hold back, not buffer 20 MiB), then drain and check every byte.
    // The server's file reads (rchar in /proc/<pid>/io) while the client does not read: with
    // backpressure they stop once the socket buffers are full, far below the 48 MiB it would
    // read if it buffered the whole archive in memory.
    const rchar = () => Number(/rchar: (\d+)/.exec(readFileSync(`/proc/${s.pid}/io`, 'utf8'))![1]);
    let readWhilePaused = -1;
    const body = await new Promise<Buffer>((resolve, reject) => {
      const start = rchar();
      const req = http.get(`${s.url}/api/dev-envs/acme/big/download`, { headers: { authorization: `Bearer ${token}` } }, (res) => {
        const chunks: Buffer[] = [];
        res.once('data', (d: Buffer) => {
          chunks.push(d);
          res.pause();
          let last = -1;
          let stable = 0;
          let ticks = 0;
          const check = setInterval(() => {
            const now = rchar();
            stable = now === last ? stable + 1 : 0;
            last = now;
            if (++ticks > 300) {
              clearInterval(check);
              reject(new Error('the server never stopped reading while the client was paused'));
            } else if (stable >= 5) {
              clearInterval(check);
              readWhilePaused = now - start;
              res.on('data', (x: Buffer) => chunks.push(x));
              res.on('end', () => resolve(Buffer.concat(chunks)));
              res.resume();
            }
          }, 100);
        });
        res.on('error', reject);
      });
      req.on('error', reject);
    });
    expect(readWhilePaused).toBeGreaterThan(0);
    expect(readWhilePaused).toBeLessThan(body.length / 2);
    const zip = readZip(body);
    for (const [name, data] of files) expect(zip.get(`big/${name}`)!.data.equals(data)).toBe(true);

    // Abort: read a little, cut the connection, and watch the server's open files return.
    const baseline = fdCount(s.pid);
    const readBefore = rchar();
    const ac = new AbortController();
    const res = await fetch(`${s.url}/api/dev-envs/acme/big/download`, { headers: { authorization: `Bearer ${token}` }, signal: ac.signal });
    const reader = res.body!.getReader();
    await reader.read();
    ac.abort();
    await reader.read().catch(() => undefined);
    await until(() => fdCount(s.pid) <= baseline, 'server file descriptors back to baseline after an aborted download');
    await until(() => s.output.some((l) => l.includes('"zip download"') && l.includes('"aborted":true')), 'the aborted download to be logged');
    // And it stopped working on the archive: it read far less than the workspace holds.
    let prev = -1;
    let steady = 0;
    await until(() => {
      const now = rchar();
      steady = now === prev ? steady + 1 : 0;
      prev = now;
      return steady >= 5;
    }, 'the server to stop reading files after the abort', 30_000, 100);
    expect(rchar() - readBefore).toBeLessThan(body.length / 2);
    // The server still serves downloads after the abort.
    expect(readZip((await download('/api/dev-envs/acme/big/download')).body).size).toBe(files.size + 3);
  });

  it('delete is 409 while sessions run, force stops them first; then the workspace is gone', async () => {
    await api(s, 'POST', '/api/dev-envs', { token, body: { orgId: 'acme', projectName: 'doomed' } });
    const sess = await api(s, 'POST', '/api/sessions', { token, body: { orgId: 'acme', projectName: 'doomed', agent: 'bash' } });
    expect(sess.status).toBe(201);
    const refused = await api(s, 'DELETE', '/api/dev-envs/acme/doomed', { token });
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe('sessions_running');
    expect(refused.body.error.details.sessions).toEqual([sess.body.id]);
    expect(existsSync(ws('doomed', 'index.html'))).toBe(true);

    const forced = await api(s, 'DELETE', '/api/dev-envs/acme/doomed?force=true', { token });
    expect(forced.status).toBe(200);
    expect(forced.body).toMatchObject({ deleted: true, stoppedSessions: [sess.body.id] });
    expect((await api(s, 'GET', `/api/sessions/${sess.body.id}`, { token })).body.status).toBe('killed');
    expect(existsSync(ws('doomed'))).toBe(false);
    expect(readdirSync(path.join(s.workspaces, 'acme')).some((n) => n.includes('doomed'))).toBe(false);
    expect((await api(s, 'GET', '/api/dev-envs/acme/doomed', { token })).status).toBe(404);
    expect((await api(s, 'DELETE', '/api/dev-envs/acme/doomed', { token })).status).toBe(404);

    // Without sessions, a plain delete works; a link inside is removed, not followed.
    await api(s, 'POST', '/api/dev-envs', { token, body: { orgId: 'acme', projectName: 'linked' } });
    const keep = path.join(s.dir, 'keep-me');
    mkdirSync(keep);
    writeFileSync(path.join(keep, 'precious.txt'), 'precious');
    symlinkSync(keep, ws('linked', 'link'));
    expect((await api(s, 'DELETE', '/api/dev-envs/acme/linked', { token })).status).toBe(200);
    expect(readFileSync(path.join(keep, 'precious.txt'), 'utf8')).toBe('precious');
    rmSync(keep, { recursive: true });
  });
});

describe('templates', () => {
  it('lists at least three starters and applies one, refusing to clobber without overwrite', async () => {
    const list = await api(s, 'GET', '/api/templates', { token });
    expect(list.status).toBe(200);
    const ids = list.body.items.map((t: any) => t.id);
    expect(ids).toEqual(expect.arrayContaining(['plain-html', 'static-site', 'vanilla-app']));
    for (const t of list.body.items) {
      expect(t.name).toBeTruthy();
      expect(t.description).toBeTruthy();
      expect(t.files.length).toBeGreaterThan(0);
    }

    const applied = await api(s, 'POST', '/api/templates/apply', { token, body: { templateId: 'vanilla-app', orgId: 'acme', projectName: 'tpl' } });
    expect(applied.status).toBe(200);
    expect(applied.body.written.sort()).toEqual(list.body.items.find((t: any) => t.id === 'vanilla-app').files.slice().sort());
    expect(readFileSync(ws('tpl', 'index.html'), 'utf8')).toContain('<h1>tpl</h1>');

    const again = await api(s, 'POST', '/api/templates/apply', { token, body: { templateId: 'vanilla-app', orgId: 'acme', projectName: 'tpl' } });
    expect(again.status).toBe(200);
    expect(again.body.written).toEqual([]);

    writeFileSync(ws('tpl', 'index.html'), '<p>mine</p>');
    const clash = await api(s, 'POST', '/api/templates/apply', { token, body: { templateId: 'vanilla-app', orgId: 'acme', projectName: 'tpl' } });
    expect(clash.status).toBe(409);
    expect(clash.body.error).toMatchObject({ code: 'template_conflict', details: { files: ['index.html'] } });
    expect(readFileSync(ws('tpl', 'index.html'), 'utf8')).toBe('<p>mine</p>');
    const forced = await api(s, 'POST', '/api/templates/apply', { token, body: { templateId: 'vanilla-app', orgId: 'acme', projectName: 'tpl', overwrite: true } });
    expect(forced.body.written).toEqual(['index.html']);

    expect((await api(s, 'POST', '/api/templates/apply', { token, body: { templateId: 'nope', orgId: 'acme', projectName: 'tpl' } })).body.error.code).toBe('unknown_template');
    expect((await api(s, 'POST', '/api/templates/apply', { token, body: { templateId: '../x', orgId: 'acme', projectName: 'tpl' } })).status).toBe(400);
  });

  it('never writes outside the workspace, even through a symlinked folder', async () => {
    const outside = path.join(s.dir, 'outside-dir');
    mkdirSync(outside);
    mkdirSync(ws('trap'), { recursive: true });
    symlinkSync(outside, ws('trap', 'css'));
    const r = await api(s, 'POST', '/api/templates/apply', { token, body: { templateId: 'static-site', orgId: 'acme', projectName: 'trap', overwrite: true } });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('path_refused');
    expect(readdirSync(outside)).toEqual([]);
  });
});
