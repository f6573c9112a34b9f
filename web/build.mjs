#!/usr/bin/env node
/**
 * Build the web console: web/src → web/dist (committed, so `npm start` serves it as is).
 *
 *   node web/build.mjs              bundle + minify, then type-check web/src
 *   node web/build.mjs --no-check   skip the type check (esbuild does not type-check)
 *
 * Output: web/dist/index.html naming web/dist/assets/main-<hash>.{js,css}. Everything is
 * bundled from node_modules (@xterm/xterm, @xterm/addon-fit): no CDN. The build is
 * deterministic: the same sources give the same hashes, so a rebuild does not churn git.
 */
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const web = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(web, '..');
const dist = path.join(web, 'dist');
const assets = path.join(dist, 'assets');
const check = !process.argv.includes('--no-check');

await rm(dist, { recursive: true, force: true });
await mkdir(assets, { recursive: true });

const result = await build({
  absWorkingDir: root,
  entryPoints: [path.join(web, 'src/main.ts')],
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
  outdir: assets,
  entryNames: '[name]-[hash]',
  assetNames: '[name]-[hash]',
  loader: { '.woff2': 'file', '.svg': 'file' },
  legalComments: 'linked',
  metafile: true,
  logLevel: 'warning',
  define: { 'process.env.NODE_ENV': '"production"' },
});

const outputs = Object.keys(result.metafile.outputs).map((p) => path.basename(p));
const js = outputs.find((n) => /^main-.*\.js$/.test(n));
const css = outputs.find((n) => /^main-.*\.css$/.test(n));
if (!js || !css) throw new Error(`build produced no main js/css: ${outputs.join(', ')}`);
const template = await readFile(path.join(web, 'index.html'), 'utf8');
await writeFile(path.join(dist, 'index.html'), template.replace('%JS%', js).replace('%CSS%', css));

let raw = 0;
let gz = 0;
const lines = [];
for (const f of ['index.html', ...(await readdir(assets)).map((n) => `assets/${n}`)]) {
  const buf = await readFile(path.join(dist, f));
  const z = gzipSync(buf, { level: 9 }).length;
  if (!f.endsWith('.txt')) {
    raw += buf.length;
    gz += z;
  }
  lines.push(`  ${f.padEnd(40)} ${(buf.length / 1024).toFixed(1).padStart(7)} KB  ${(z / 1024).toFixed(1).padStart(6)} KB gzip`);
}
process.stdout.write(`web/dist:\n${lines.join('\n')}\n  page weight: ${(raw / 1024).toFixed(1)} KB (${(gz / 1024).toFixed(1)} KB gzip)\n`);

if (check) {
  const tsc = path.join(root, 'node_modules/.bin/tsc');
  const r = spawnSync(tsc, ['-p', path.join(web, 'tsconfig.json')], { stdio: 'inherit' });
  if (r.status !== 0) {
    process.stderr.write('web/build.mjs: type check failed (the bundle was written; fix the errors above)\n');
    process.exit(1);
  }
}
