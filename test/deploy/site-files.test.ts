import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { lookupSiteFile } from '../../src/deploy/site-files.js';
import { tempDir } from '../helpers/server.js';

describe('site file lookup (static-server path safety)', () => {
  const dir = tempDir('sm-sites-');
  const release = path.join(dir, 'release');
  mkdirSync(path.join(release, 'docs'), { recursive: true });
  writeFileSync(path.join(release, 'index.html'), 'home');
  writeFileSync(path.join(release, 'docs', 'index.html'), 'docs');
  writeFileSync(path.join(release, 'a b.txt'), 'spaced');
  writeFileSync(path.join(release, '.env'), 'SECRET=1');
  writeFileSync(path.join(dir, 'outside.txt'), 'outside');
  symlinkSync(path.join(dir, 'outside.txt'), path.join(release, 'out-link'));
  symlinkSync(path.join(release, 'index.html'), path.join(release, 'in-link'));
  const live = path.join(dir, 'live');
  symlinkSync(release, live);

  it('serves files, folder indexes and percent-encoded names through the live symlink', async () => {
    expect(await lookupSiteFile(live, '', true)).toMatchObject({ kind: 'file', file: path.join(release, 'index.html') });
    expect(await lookupSiteFile(live, 'docs', true)).toMatchObject({ kind: 'file', file: path.join(release, 'docs', 'index.html') });
    expect(await lookupSiteFile(live, 'docs', false)).toEqual({ kind: 'redirect' });
    expect(await lookupSiteFile(live, 'a%20b.txt', false)).toMatchObject({ kind: 'file', size: 6 });
    expect(await lookupSiteFile(live, 'in-link', false)).toMatchObject({ kind: 'file', file: path.join(release, 'index.html') });
  });

  it('refuses traversal, dotfiles, encoded separators, NUL and links out of the release', async () => {
    for (const rest of ['..', '../outside.txt', '%2e%2e/outside.txt', '..%2foutside.txt', 'docs%2f..%2f..%2foutside.txt', '.env', '%2eenv', 'docs/..%5c..%5coutside.txt', 'index.html%00.txt', 'out-link', '%E0%A4%A', 'index.html/']) {
      const trailing = rest.endsWith('/');
      const r = await lookupSiteFile(live, trailing ? rest.slice(0, -1) : rest, trailing);
      expect(r, rest).toEqual({ kind: 'none' });
    }
    expect(await lookupSiteFile(path.join(dir, 'missing'), '', true)).toEqual({ kind: 'none' });
  });
});
