// Measurements outside the main harness (run with tsx): cross-node figures of the fleet.
import { api, startServer } from '../../test/helpers/server.ts';
import { startRedis } from '../../test/helpers/redis.ts';
import { Client } from '../../test/helpers/ws.ts';

const PINGS = 300;
async function echo(c: Client, id: string, tag: string): Promise<number[]> {
  const lat: number[] = [];
  for (let i = 0; i < PINGS; i++) {
    const marker = `${tag}${i}q`;
    const t0 = performance.now();
    const got = c.nextNew((f) => f.type === 'output' && f.sessionId === id && String(f.data).includes(marker), 'echo', 5000);
    c.send({ type: 'input', sessionId: id, data: marker });
    await got;
    lat.push(performance.now() - t0);
  }
  return lat.sort((a, b) => a - b);
}
const pct = (a: number[], p: number) => a[Math.min(a.length - 1, Math.floor((a.length * p) / 100))]!.toFixed(2);
const redis = await startRedis();
const a = await startServer({ env: { REDIS_URL: redis.url, NODE_ID: 'm-a', LOG_LEVEL: 'warn' } });
const b = await startServer({ env: { REDIS_URL: redis.url, NODE_ID: 'm-b', LOG_LEVEL: 'warn' } });
try {
  const token = await a.token();
  const id = (await api(a, 'POST', '/api/sessions', { token, body: { orgId: 'acme', projectName: 'm', agent: 'script', command: ['cat'] } })).body.id;
  await new Promise((r) => setTimeout(r, 500));
  const local = await Client.connect(a.wsUrl, { token });
  await local.attach(id);
  const l = await echo(local, id, 'L');
  const remote = await Client.connect(b.wsUrl, { token });
  await remote.attach(id);
  const r = await echo(remote, id, 'R');
  console.log(JSON.stringify({ echoLocalMs: { p50: pct(l, 50), p99: pct(l, 99) }, echoRemoteMs: { p50: pct(r, 50), p99: pct(r, 99) } }));
  // Throughput: 30 MB of base64 to one remote viewer and one local viewer.
  const flood = (await api(a, 'POST', '/api/sessions', { token, body: { orgId: 'acme', projectName: 'm', agent: 'script', command: 'read go; head -c 22500000 /dev/zero | base64 -w 100; echo DONE-FLOOD' } })).body.id;
  const rv = await Client.connect(b.wsUrl, { token });
  await rv.attach(flood);
  const lv = await Client.connect(a.wsUrl, { token });
  await lv.attach(flood);
  const t0 = performance.now();
  await api(a, 'POST', `/api/sessions/${flood}/input`, { token, body: { data: 'go' } });
  await lv.waitForText(flood, 'DONE-FLOOD', 120_000);
  const tl = performance.now() - t0;
  await rv.waitForText(flood, 'DONE-FLOOD', 120_000);
  const tr = performance.now() - t0;
  const bytes = lv.outputs.get(flood)!.end;
  console.log(JSON.stringify({ bytes, localMBs: (bytes / 1e6 / (tl / 1000)).toFixed(1), remoteMBs: (rv.outputs.get(flood)!.end / 1e6 / (tr / 1000)).toFixed(1), remoteErrors: rv.errors.length, remoteEqual: rv.bytes(flood).equals(lv.bytes(flood).subarray(rv.outputs.get(flood)!.start - lv.outputs.get(flood)!.start)) }));
  local.close(); remote.close(); rv.close(); lv.close();
} finally {
  await a.stop(); await b.stop(); await redis.stop();
}
