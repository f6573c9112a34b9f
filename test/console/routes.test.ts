/**
 * The console's static routes: `/` and `/assets/*` are public, typed, cached correctly,
 * compressed when asked, and never reach outside web/dist.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { ROOT, startServer, type TestServer } from '../helpers/server.js';

let s: TestServer;
const assets = readdirSync(path.join(ROOT, 'web/dist/assets'));
const js = assets.find((n) => /^main-.*\.js$/.test(n))!;
const css = assets.find((n) => /^main-.*\.css$/.test(n))!;

/** Page weight budget (gzip, what a browser downloads): xterm.js is most of it. */
const PAGE_BUDGET_GZIP_KB = 200;

beforeAll(async () => {
  s = await startServer();
});
afterAll(async () => {
  await s?.stop();
});

describe('console routes', () => {
  it('serves the page without a token, naming the built assets, with headers that keep the token in', async () => {
    const res = await fetch(`${s.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(res.headers.get('cache-control')).toBe('no-cache');
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    expect(res.headers.get('x-frame-options')).toBe('DENY');
    const csp = res.headers.get('content-security-policy')!;
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toContain(`ws://127.0.0.1:${s.port}`);
    expect(res.headers.get('set-cookie')).toBeNull();
    const html = await res.text();
    expect(html).toContain(`/assets/${js}`);
    expect(html).toContain(`/assets/${css}`);
    // The same page answers the ready URL (?token=…): the query is the page's business.
    expect((await fetch(`${s.url}/?token=abc`)).status).toBe(200);
  });

  it('serves hashed assets with their types and a year of caching; ETag revalidation gives 304', async () => {
    const j = await fetch(`${s.url}/assets/${js}`);
    expect(j.status).toBe(200);
    expect(j.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(j.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(j.headers.get('x-content-type-options')).toBe('nosniff');
    const etag = j.headers.get('etag')!;
    expect(etag).toMatch(/^"[\w-]+"$/);
    const c = await fetch(`${s.url}/assets/${css}`);
    expect(c.headers.get('content-type')).toBe('text/css; charset=utf-8');
    const again = await fetch(`${s.url}/assets/${js}`, { headers: { 'if-none-match': etag } });
    expect(again.status).toBe(304);
    const page = await fetch(`${s.url}/`);
    expect((await fetch(`${s.url}/`, { headers: { 'if-none-match': page.headers.get('etag')! } })).status).toBe(304);
  });

  it('sends gzip when accepted, identity otherwise, and answers HEAD with the real length', async () => {
    const plain = await fetch(`${s.url}/assets/${js}`, { headers: { 'accept-encoding': 'identity' } });
    const body = Buffer.from(await plain.arrayBuffer());
    expect(plain.headers.get('content-encoding')).toBeNull();
    expect(plain.headers.get('vary')).toBe('Accept-Encoding');
    // fetch() decodes gzip itself; the raw size shows on HEAD.
    const head = await fetch(`${s.url}/assets/${js}`, { method: 'HEAD', headers: { 'accept-encoding': 'gzip' } });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-encoding')).toBe('gzip');
    const gzLen = Number(head.headers.get('content-length'));
    expect(gzLen).toBeGreaterThan(1000);
    expect(gzLen).toBeLessThan(body.length / 2);
    const decoded = await fetch(`${s.url}/assets/${js}`, { headers: { 'accept-encoding': 'gzip' } });
    expect(Buffer.from(await decoded.arrayBuffer()).equals(body)).toBe(true);
  });

  it('refuses anything outside web/dist/assets', async () => {
    for (const p of [
      '/assets/..%2Findex.html',
      '/assets/..%2F..%2Fpackage.json',
      '/assets/%2e%2e/%2e%2e/package.json',
      '/assets/..%5C..%5Cpackage.json',
      '/assets/',
      '/assets/nope.js',
      `/assets/${js}%00.txt`,
      '/assets/../../package.json',
      '/index.html',
      '/web/dist/index.html',
    ]) {
      const res = await fetch(`${s.url}${p}`);
      expect(res.status, p).toBe(404);
      const text = await res.text();
      expect(text, p).not.toContain('"name": "session-manager"');
    }
  });

  it('stays within its page weight budget', async () => {
    let raw = 0;
    let gz = 0;
    const files = ['/', `/assets/${js}`, `/assets/${css}`];
    for (const f of files) {
      const b = Buffer.from(await (await fetch(`${s.url}${f}`)).arrayBuffer());
      raw += b.length;
      gz += gzipSync(b, { level: 9 }).length;
    }
    console.log(`page weight: ${(raw / 1024).toFixed(1)} KB raw, ${(gz / 1024).toFixed(1)} KB gzip (${files.length} requests)`);
    expect(gz / 1024).toBeLessThan(PAGE_BUDGET_GZIP_KB);
  });
});
