import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { ERRORS } from '../../src/errors.js';

it('docs/errors.md lists every code of the catalog with its status, and no other', () => {
  const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
  const documented = new Map<string, number>();
  for (const m of doc.matchAll(/^\| `([a-z_]+)` \| (\d{3}) \|/gm)) documented.set(m[1]!, Number(m[2]));
  const catalog = new Map(Object.values(ERRORS).map((e) => [e.code as string, e.status as number]));
  expect(Object.fromEntries(documented)).toEqual(Object.fromEntries(catalog));
  // Codes are unique and snake_case.
  expect(new Set(Object.values(ERRORS).map((e) => e.code)).size).toBe(Object.keys(ERRORS).length);
  for (const e of Object.values(ERRORS)) expect(e.code).toMatch(/^[a-z][a-z0-9_]*$/);
});
