import { afterAll, beforeAll, expect, it } from 'vitest';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { api, startServer, TEST_SECRET, type TestServer } from './helpers/server.js';
import { Client } from './helpers/ws.js';

const PARTNER_KEY = 'sfk_live_partner_key_0123456789';
const REDIS_PASS = 'redis-pass-9f8e7d6c5b';
let s: TestServer;
beforeAll(async () => {
  s = await startServer({
    env: {
      SPINFORGE_PARTNER_KEY: PARTNER_KEY,
      AGENT_ENV_PASSTHROUGH: 'JWT_SECRET,SPINFORGE_PARTNER_KEY,FRIENDLY_VAR',
      FRIENDLY_VAR: 'hello-friend',
      SERVER_ONLY_VAR: 'must-not-leak',
      APPMINT_API_URL: 'http://appmint.invalid/api',
    },
  });
});
afterAll(async () => {
  await s?.stop();
});

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p));
    else out.push(p);
  }
  return out;
}

it("the agent's environment is the allowlist and holds none of the server's secrets", async () => {
  void REDIS_PASS;
  const token = await s.token({ sub: 'alice', orgId: 'acme' });
  const created = await api(s, 'POST', '/api/sessions', { token, body: { orgId: 'acme', projectName: 'envcheck', agent: 'bash' } });
  const id = created.body.id;
  const c = await Client.connect(s.wsUrl, { token });
  await c.attach(id);
  c.send({ type: 'input', sessionId: id, data: 'env; echo ENV-$((10+1))-DONE\r' });
  await c.waitForText(id, 'ENV-11-DONE');
  const out = c.text(id);
  expect(out).toContain(`SESSION_ID=${id}`);
  expect(out).toContain(`SESSION_MANAGER_URL=${s.url}`);
  expect(out).toContain(`WORKSPACE_DIR=${s.workspaces}/acme/envcheck`);
  expect(out).toContain('ORG_ID=acme');
  expect(out).toContain('PROJECT_NAME=envcheck');
  expect(out).toMatch(/PORT=7\d{3}/);
  expect(out).toContain('TERM=xterm-256color');
  expect(out).toContain(`PWD=${s.workspaces}/acme/envcheck`);
  expect(out).toContain('FRIENDLY_VAR=hello-friend');
  expect(out).toContain('APPMINT_API_URL=http://appmint.invalid/api');
  expect(out).not.toContain('SERVER_ONLY_VAR');
  expect(out).not.toContain(TEST_SECRET);
  expect(out).not.toContain(PARTNER_KEY);
  expect(out).not.toContain('SM_TEST_HOOKS');
  expect(out).not.toContain('DATA_DIR=');
  // No secret in any log line or data file either.
  await api(s, 'DELETE', `/api/sessions/${id}`, { token });
  const log = s.output.join('\n');
  expect(log).not.toContain(TEST_SECRET);
  expect(log).not.toContain(PARTNER_KEY);
  for (const f of filesUnder(s.dataDir)) {
    if (f.endsWith('console.log')) continue; // the agent's own screen, checked above
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch {
      continue; // a temp file renamed while we listed: its content is in the file it became
    }
    expect([f, text.includes(TEST_SECRET) || text.includes(PARTNER_KEY)]).toEqual([f, false]);
  }
  c.close();
});
