// Measurements outside the main harness (run with tsx): the event rate of the /agent channel.
import { fileURLToPath } from 'node:url';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { api, startServer, tempDir } from '../../test/helpers/server.ts';
import { Client } from '../../test/helpers/ws.ts';
const dir = tempDir();
const agents = path.join(dir, 'agents.json');
const TYPE = process.env.BLAST_TYPE ?? 'status';
const N = TYPE === 'message' ? '5000' : '20000';
writeFileSync(agents, JSON.stringify({ blast: { command: process.execPath, args: [fileURLToPath(new URL('./blast-agent.mjs', import.meta.url))], env: { BLAST_N: N, BLAST_TYPE: TYPE } } }));
const s = await startServer({ dir, env: { AGENTS_FILE: agents, LOG_LEVEL: 'warn' } });
try {
  const token = await s.token();
  const id = (await api(s, 'POST', '/api/sessions', { token, body: { orgId: 'acme', projectName: 'ev', agent: 'blast' } })).body.id;
  const ed = await Client.connect(s.wsUrl, { token });
  await ed.attach(id);
  await new Promise((r) => setTimeout(r, 800));
  const t0 = performance.now();
  ed.send({ type: 'prompt', sessionId: id, text: 'go' });
  await ed.next((f) => f.type === 'event' && f.name === 'agent:message' && f.payload.content === 'blast done', 'done', 120_000);
  const ms = performance.now() - t0;
  const n = ed.frames.filter((f) => f.type === 'event' && f.name === `agent:${TYPE}`).length;
  console.log(JSON.stringify({ type: TYPE, events: n, ms: Math.round(ms), eventsPerS: Math.round((n / ms) * 1000), stored: TYPE === 'message' }));
  ed.close();
} finally {
  await s.stop();
}
