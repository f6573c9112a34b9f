import { existsSync, mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { api, startServer, until, type TestServer } from '../helpers/server.js';

let s: TestServer;
let token: string;
beforeAll(async () => {
  s = await startServer();
  token = await s.token({ sub: 'alice', orgId: 'acme' });
});
afterAll(async () => {
  await s?.stop();
});

/**
 * A write cut short by a crash leaves its temp file (`.<name>.<hex>.tmp`) next to the
 * target. The first `.vibe/` write of a workspace after a start removes those older than a
 * minute; younger ones may be another node's write in flight and stay.
 */
it('the first .vibe write after a start sweeps stale temp files of cut writes, and only those', async () => {
  expect((await api(s, 'POST', '/api/dev-envs', { token, body: { orgId: 'acme', projectName: 'swept', description: 'temp files' } })).status).toBe(201);
  const vibe = path.join(s.workspaces, 'acme', 'swept', '.vibe');
  mkdirSync(path.join(vibe, 'conversations'), { recursive: true });
  const old = Date.now() / 1000 - 600;
  const stale = [path.join(vibe, '.planner.json.0123456789ab.tmp'), path.join(vibe, 'conversations', '.c1.json.abcdef012345.tmp')];
  const fresh = path.join(vibe, '.planner.json.ba9876543210.tmp');
  const other = path.join(vibe, '.notes.tmp');
  for (const f of [...stale, fresh, other]) writeFileSync(f, '{"torn":');
  for (const f of [...stale, other]) utimesSync(f, old, old);
  const put = await api(s, 'PUT', '/api/planner/acme/swept', { token, body: { cards: [] } });
  expect(put.status).toBe(200);
  await until(() => stale.every((f) => !existsSync(f)), 'stale temp files to go');
  expect(existsSync(fresh)).toBe(true);
  // Not an atomic write's temp name: not ours to remove.
  expect(existsSync(other)).toBe(true);
  expect(existsSync(path.join(vibe, 'planner.json'))).toBe(true);
});
