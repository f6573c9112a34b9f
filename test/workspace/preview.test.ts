import { randomBytes } from 'node:crypto';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startServer, type TestServer } from '../helpers/server.js';
import { rawGet } from './helpers/raw-http.js';

let s: TestServer;
let token: string;
const big = randomBytes(3 * 1024 * 1024 + 123);
/** Markers of files the preview must never serve. */
const SECRETS = ['OUTSIDE-SECRET-8f3a', 'SIBLING-SECRET-1c9d', 'DOTENV-SECRET-77aa', 'VIBE-SECRET-5b2e', 'GITCONFIG-SECRET-0d4f', 'root:x:0:0'];

beforeAll(async () => {
  s = await startServer();
  token = await s.token({ sub: 'alice', orgId: 'acme' });
  expect((await api(s, 'POST', '/api/dev-envs', { token, body: { orgId: 'acme', projectName: 'web', template: 'static-site' } })).status).toBe(201);
  const ws = path.join(s.workspaces, 'acme', 'web');
  writeFileSync(path.join(ws, '.env'), 'KEY=DOTENV-SECRET-77aa\n');
  writeFileSync(path.join(ws, '.env.local'), 'KEY=DOTENV-SECRET-77aa\n');
  writeFileSync(path.join(ws, '.vibe', 'secret.json'), '"VIBE-SECRET-5b2e"');
  mkdirSync(path.join(ws, '.git'));
  writeFileSync(path.join(ws, '.git', 'config'), '[x]\n\ty = GITCONFIG-SECRET-0d4f\n');
  mkdirSync(path.join(ws, 'docs', 'guide'), { recursive: true });
  writeFileSync(path.join(ws, 'docs', 'guide', 'index.html'), '<h1>guide</h1>');
  mkdirSync(path.join(ws, 'no-index'));
  writeFileSync(path.join(ws, 'no-index', 'a.txt'), 'a');
  writeFileSync(path.join(ws, 'data.json'), '{"ok":true}');
  writeFileSync(path.join(ws, 'pic.png'), Buffer.from('89504e470d0a1a0a', 'hex'));
  writeFileSync(path.join(ws, 'font.woff2'), 'wOF2');
  writeFileSync(path.join(ws, 'module.mjs'), 'export {}');
  writeFileSync(path.join(ws, 'notes.unknownext'), 'x');
  writeFileSync(path.join(ws, 'hello world.txt'), 'spaces ok');
  writeFileSync(path.join(ws, 'big.bin'), big);
  writeFileSync(path.join(ws, 'empty.txt'), '');
  // Secrets outside the workspace: beside it (another project) and above it.
  writeFileSync(path.join(s.dir, 'outside.txt'), 'OUTSIDE-SECRET-8f3a');
  mkdirSync(path.join(s.workspaces, 'acme', 'sibling'), { recursive: true });
  writeFileSync(path.join(s.workspaces, 'acme', 'sibling', 'secret.txt'), 'SIBLING-SECRET-1c9d');
  // Links: out of the workspace (file and folder), to a dotfile inside, and a harmless one inside.
  symlinkSync(path.join(s.dir, 'outside.txt'), path.join(ws, 'link-out.txt'));
  symlinkSync(s.dir, path.join(ws, 'link-dir-out'));
  symlinkSync('/etc/passwd', path.join(ws, 'passwd'));
  symlinkSync('.env', path.join(ws, 'env-link.txt'));
  symlinkSync('../sibling', path.join(ws, 'sibling-link'));
  symlinkSync('css/style.css', path.join(ws, 'style-link.css'));
  symlinkSync('missing-target', path.join(ws, 'dangling'));
});
afterAll(async () => {
  await s?.stop();
});

const get = (p: string, headers: Record<string, string> = {}) => fetch(s.url + p, { headers });

describe('preview', () => {
  it('serves files with their content types, index.html for folders, without a token', async () => {
    const cases: Array<[string, string]> = [
      ['/preview/acme/web/index.html', 'text/html; charset=utf-8'],
      ['/preview/acme/web/css/style.css', 'text/css; charset=utf-8'],
      ['/preview/acme/web/js/main.js', 'text/javascript; charset=utf-8'],
      ['/preview/acme/web/module.mjs', 'text/javascript; charset=utf-8'],
      ['/preview/acme/web/data.json', 'application/json; charset=utf-8'],
      ['/preview/acme/web/pic.png', 'image/png'],
      ['/preview/acme/web/font.woff2', 'font/woff2'],
      ['/preview/acme/web/README.md', 'text/markdown; charset=utf-8'],
      ['/preview/acme/web/notes.unknownext', 'application/octet-stream'],
      ['/preview/acme/web/hello%20world.txt', 'text/plain; charset=utf-8'],
      ['/preview/acme/web/style-link.css', 'text/css; charset=utf-8'],
    ];
    for (const [p, type] of cases) {
      const r = await get(p);
      expect(r.status, p).toBe(200);
      expect(r.headers.get('content-type'), p).toBe(type);
      expect(r.headers.get('x-content-type-options')).toBe('nosniff');
      expect(r.headers.get('content-security-policy')).toMatch(/^sandbox /);
      await r.arrayBuffer();
    }
    const root = await get('/preview/acme/web/');
    expect(root.status).toBe(200);
    expect(await root.text()).toContain('<title>web</title>');
    expect(await (await get('/preview/acme/web/docs/guide/')).text()).toBe('<h1>guide</h1>');
    const redirect = await fetch(`${s.url}/preview/acme/web/docs/guide`, { redirect: 'manual' });
    expect(redirect.status).toBe(301);
    expect(redirect.headers.get('location')).toBe('/preview/acme/web/docs/guide/');
    expect((await fetch(`${s.url}/preview/acme/web`, { redirect: 'manual' })).headers.get('location')).toBe('/preview/acme/web/');
    expect((await get('/preview/acme/web/no-index/')).status).toBe(404);
    expect((await get('/preview/acme/web/missing.html')).status).toBe(404);
    expect((await get('/preview/acme/nothing/index.html')).status).toBe(404);
    const empty = await get('/preview/acme/web/empty.txt');
    expect(empty.status).toBe(200);
    expect(await empty.text()).toBe('');
  });

  it('ETag and If-None-Match give 304; a changed file gets a new ETag', async () => {
    const first = await get('/preview/acme/web/data.json');
    const etag = first.headers.get('etag')!;
    expect(etag).toMatch(/^"[0-9a-f-]+"$/);
    expect(first.headers.get('last-modified')).toBeTruthy();
    await first.text();
    const again = await get('/preview/acme/web/data.json', { 'if-none-match': etag });
    expect(again.status).toBe(304);
    expect(await again.text()).toBe('');
    writeFileSync(path.join(s.workspaces, 'acme', 'web', 'data.json'), '{"ok":false,"longer":1}');
    const changed = await get('/preview/acme/web/data.json', { 'if-none-match': etag });
    expect(changed.status).toBe(200);
    expect(changed.headers.get('etag')).not.toBe(etag);
    expect(await changed.text()).toBe('{"ok":false,"longer":1}');
  });

  it('answers byte ranges (206/416), honours If-Range, streams large files whole, and HEAD has no body', async () => {
    const full = await get('/preview/acme/web/big.bin');
    expect(full.status).toBe(200);
    expect(full.headers.get('accept-ranges')).toBe('bytes');
    expect(full.headers.get('content-length')).toBe(String(big.length));
    expect(Buffer.from(await full.arrayBuffer()).equals(big)).toBe(true);
    const etag = full.headers.get('etag')!;

    const mid = await get('/preview/acme/web/big.bin', { range: 'bytes=1000-1999' });
    expect(mid.status).toBe(206);
    expect(mid.headers.get('content-range')).toBe(`bytes 1000-1999/${big.length}`);
    expect(Buffer.from(await mid.arrayBuffer()).equals(big.subarray(1000, 2000))).toBe(true);
    const tail = await get('/preview/acme/web/big.bin', { range: 'bytes=-500' });
    expect(Buffer.from(await tail.arrayBuffer()).equals(big.subarray(big.length - 500))).toBe(true);
    const open = await get('/preview/acme/web/big.bin', { range: 'bytes=1048576-' });
    expect(open.status).toBe(206);
    expect(open.headers.get('content-length')).toBe(String(big.length - 1048576));
    expect(Buffer.from(await open.arrayBuffer()).equals(big.subarray(1048576))).toBe(true);
    const beyond = await get('/preview/acme/web/big.bin', { range: `bytes=${big.length}-` });
    expect(beyond.status).toBe(416);
    expect(beyond.headers.get('content-range')).toBe(`bytes */${big.length}`);
    await beyond.text();
    const stale = await get('/preview/acme/web/big.bin', { range: 'bytes=0-9', 'if-range': '"stale"' });
    expect(stale.status).toBe(200);
    await stale.arrayBuffer();
    const fresh = await get('/preview/acme/web/big.bin', { range: 'bytes=0-9', 'if-range': etag });
    expect(fresh.status).toBe(206);
    expect(Buffer.from(await fresh.arrayBuffer()).equals(big.subarray(0, 10))).toBe(true);

    const h = await fetch(s.url + '/preview/acme/web/index.html', { method: 'HEAD' });
    expect(h.status).toBe(200);
    expect(h.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(Number(h.headers.get('content-length'))).toBeGreaterThan(100);
    expect(await h.text()).toBe('');
  });

  it('refuses dotfiles, links out of the workspace and links to dotfiles with 404', async () => {
    for (const p of ['.env', '.env.local', '.vibe/project.json', '.vibe/secret.json', '.git/config', '.git/', 'link-out.txt', 'link-dir-out/outside.txt', 'passwd', 'env-link.txt', 'sibling-link/secret.txt', 'dangling']) {
      const r = await get(`/preview/acme/web/${p}`);
      const body = await r.text();
      expect(r.status, p).toBe(404);
      for (const secret of SECRETS) expect(body, p).not.toContain(secret);
    }
  });

  it('a table of hostile paths: none escapes the workspace, whatever the encoding', async () => {
    const P = '/preview/acme/web/';
    const hostile: string[] = [
      `${P}../sibling/secret.txt`,
      `${P}../../../outside.txt`,
      `${P}..%2fsibling%2fsecret.txt`,
      `${P}..%2Fsibling%2Fsecret.txt`,
      `${P}%2e%2e/sibling/secret.txt`,
      `${P}%2E%2E/%2E%2E/%2E%2E/outside.txt`,
      `${P}.%2e/sibling/secret.txt`,
      `${P}%2e%2e%2fsibling%2fsecret.txt`,
      `${P}%252e%252e/sibling/secret.txt`,
      `${P}..%5csibling%5csecret.txt`,
      `${P}..\\sibling\\secret.txt`,
      `${P}%5c..%5c..%5coutside.txt`,
      `${P}css/../../sibling/secret.txt`,
      `${P}css/%2e%2e/%2e%2e/sibling/secret.txt`,
      `${P}index.html%00.png`,
      `${P}%00`,
      `${P}.env`,
      `${P}%2eenv`,
      `${P}.git/config`,
      `${P}%2egit/config`,
      `${P}.vibe/secret.json`,
      `${P}%2Evibe/secret.json`,
      `${P}%2fetc%2fpasswd`,
      `${P}/etc/passwd`,
      `${P}..;/sibling/secret.txt`,
      `${P}...//sibling/secret.txt`,
      `${P}link-dir-out/outside.txt`,
      `${P}sibling-link/secret.txt`,
      `${P}passwd`,
      '/preview/acme/..%2facme%2fsibling/secret.txt',
      '/preview/acme/../acme/sibling/secret.txt',
      '/preview/..%2f..%2f/outside.txt',
      '/preview/acme/%2e%2e/outside.txt',
      `${P}%2e%2e%5c%2e%2e%5coutside.txt`,
    ];
    // Not percent-encoding of UTF-8 (overlong forms, %u): the router refuses the whole path.
    const badEncoding = [
      `${P}%c0%ae%c0%ae/sibling/secret.txt`,
      `${P}%e0%80%ae%e0%80%ae/sibling/secret.txt`,
      `${P}..%c0%afsibling/secret.txt`,
      `${P}%u002e%u002e/sibling/secret.txt`,
    ];
    expect(hostile.length).toBeGreaterThanOrEqual(25);
    for (const [targets, status] of [[hostile, 404], [badEncoding, 400]] as const) {
      for (const target of targets) {
        const r = await rawGet(s.port, target);
        const text = r.body.toString('latin1');
        for (const secret of SECRETS) expect(text, target).not.toContain(secret);
        expect(r.status, target).toBe(status);
      }
    }
    // A raw NUL byte in the request line, too.
    // uWS does not parse it and keeps waiting; our EOF makes it close without an answer.
    const nul = await rawGet(s.port, Buffer.from(`${P}index.html\u0000.png`, 'latin1'), {}, { endAfterWrite: true });
    expect(nul.status).toBe(0);
    expect(nul.body.length).toBe(0);
  });
});
