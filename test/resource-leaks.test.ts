import { afterAll, beforeAll, expect, it } from 'vitest';
import { api, startServer, until, type TestServer } from './helpers/server.js';
import { childPids, fdCount, ptmxFds, threadCount } from './helpers/procs.js';

let s: TestServer;
let token: string;
beforeAll(async () => {
  s = await startServer({ env: { MAX_CONCURRENT_SESSIONS: '20', LOG_LEVEL: 'warn' } });
  token = await s.token();
});
afterAll(async () => {
  await s?.stop();
});

const CYCLES = 300;
const CONCURRENCY = 6;

it(`${CYCLES} spawn/kill cycles leave no child process and no growth in /dev/ptmx descriptors`, async () => {
  // Warm up the pool so its threads and their handles exist before the baseline.
  const warm = await api(s, 'POST', '/api/sessions', { token, body: { orgId: 'acme', projectName: 'cycles', agent: 'bash' } });
  await api(s, 'DELETE', `/api/sessions/${warm.body.id}`, { token });
  await until(() => childPids(s.pid).length === 0, 'warm-up reaped');
  const ptmx0 = ptmxFds(s.pid);
  const fds0 = fdCount(s.pid);
  const threads0 = threadCount(s.pid);

  let next = 0;
  let failures = 0;
  const worker = async () => {
    while (next < CYCLES) {
      next++;
      const c = await api(s, 'POST', '/api/sessions', { token, body: { orgId: 'acme', projectName: 'cycles', agent: 'bash' } });
      if (c.status !== 201 || c.body.status !== 'running') {
        failures++;
        continue;
      }
      const d = await api(s, 'DELETE', `/api/sessions/${c.body.id}`, { token });
      if (d.body.status !== 'killed') failures++;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  expect(failures).toBe(0);
  await until(() => childPids(s.pid).length === 0, 'every agent reaped', 20_000);
  await until(() => ptmxFds(s.pid) <= ptmx0, `ptmx fds back to ${ptmx0} (now ${ptmxFds(s.pid)})`, 20_000);
  expect(ptmxFds(s.pid)).toBeLessThanOrEqual(ptmx0);
  // Descriptors and threads return to the baseline (a little slack for sockets in TIME_WAIT handling).
  await until(() => fdCount(s.pid) <= fds0 + 8, `fds back near ${fds0} (now ${fdCount(s.pid)})`, 20_000);
  expect(threadCount(s.pid)).toBeLessThanOrEqual(threads0 + 2);
  const listed = await api(s, 'GET', '/api/sessions?projectName=cycles&status=killed', { token });
  expect(listed.body.total).toBe(CYCLES + 1);
}, 240_000);
