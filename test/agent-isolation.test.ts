import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { api, startServer, TEST_SECRET, type TestServer } from './helpers/server.js';
import { Client } from './helpers/ws.js';

const RANGE = [3_100_000, 3_199_999];
let s: TestServer;
beforeAll(async () => {
  s = await startServer({ env: { AGENT_UID_RANGE: `${RANGE[0]}-${RANGE[1]}`, SPINFORGE_PARTNER_KEY: 'sfk_isolation_key_0123456789' } });
});
afterAll(async () => {
  await s?.stop();
});

async function run(org: string, project: string, script: string): Promise<string> {
  const token = await s.token({ sub: `u-${org}`, orgId: org });
  const created = await api(s, 'POST', '/api/sessions', { token, body: { orgId: org, projectName: project, agent: 'script', command: `${script}; echo END-$((3*4))` } });
  expect(created.status).toBe(201);
  const c = await Client.connect(s.wsUrl, { token });
  await c.attach(created.body.id);
  await c.waitForText(created.body.id, 'END-12', 15_000);
  const out = c.text(created.body.id);
  c.close();
  return out;
}

it('agents run as their org\'s own uid and cannot read other orgs, the data dir or the server', async () => {
  const acme = await run('acme', 'site', 'id -u; echo hello > mine.txt && cat mine.txt; echo ACME-PRIVATE > private.txt');
  const acmeUid = Number(/^(\d+)\r?$/m.exec(acme)?.[1]);
  expect(acmeUid).toBeGreaterThanOrEqual(RANGE[0]!);
  expect(acmeUid).toBeLessThanOrEqual(RANGE[1]!);
  expect(acme).toContain('hello');
  const globex = await run(
    'globex',
    'snoop',
    [
      'id -u',
      'cat "$WORKSPACE_DIR/../../acme/site/private.txt" 2>&1 | head -1',
      'ls "$WORKSPACE_DIR/../../acme" 2>&1 | head -1',
      `ls ${JSON.stringify(s.dataDir)} 2>&1 | head -1`,
      'tr "\\0" "\\n" < /proc/$PPID/environ 2>&1 | grep -c JWT_SECRET',
      'echo HOME=$HOME',
    ].join('; '),
  );
  const globexUid = Number(/^(\d+)\r?$/m.exec(globex)?.[1]);
  expect(globexUid).not.toBe(acmeUid);
  expect(globex).not.toContain('ACME-PRIVATE');
  expect(globex).toMatch(/Permission denied/);
  expect(globex).not.toContain(TEST_SECRET);
  expect(globex).toContain(`HOME=${path.join(s.workspaces, 'globex', '.home')}`);
  // The server still reads and serves the agents' files (it writes as root, umask 002).
  const prev = await api(s, 'GET', '/preview/acme/site/mine.txt');
  expect(prev.text).toBe('hello\n');
});

it('server-made files stay editable by the org; a second session of the org reuses its uid', async () => {
  const token = await s.token({ sub: 'u-acme', orgId: 'acme' });
  expect((await api(s, 'POST', '/api/dev-envs', { token, body: { orgId: 'acme', projectName: 'tpl', template: 'plain-html' } })).status).toBe(201);
  // AGENTS.md and .vibe/project.json were written by the server (create and sync).
  expect((await api(s, 'POST', '/api/dev-envs/acme/tpl/sync-ai-instructions', { token })).status).toBe(200);
  const out = await run('acme', 'tpl', 'id -u; echo edited >> index.html && echo EDIT-OK; echo more >> AGENTS.md && echo EDIT2-OK');
  expect(out).toContain('EDIT-OK');
  expect(out).toContain('EDIT2-OK');
});
