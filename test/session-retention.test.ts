import { afterAll, expect, it } from 'vitest';
import { api, startServer, until, type TestServer } from './helpers/server.js';

/**
 * A node keeps its live sessions and only the newest ENDED_SESSIONS_KEPT ended ones in
 * memory (lists); every record stays on disk and is found by id, across restarts too.
 */
let s: TestServer | undefined;
afterAll(async () => {
  await s?.stop();
});

it('only the newest ended sessions stay listed; older ones are still found by id, with their logs, after a restart too', async () => {
  s = await startServer({ env: { ENDED_SESSIONS_KEPT: '3' } });
  const token = await s.token();
  const ids: string[] = [];
  // One at a time, so they end in this order.
  for (let i = 0; i < 6; i++) {
    const created = await api(s, 'POST', '/api/sessions', {
      token,
      body: { orgId: 'acme', projectName: 'kept', agent: 'script', command: `echo "RUN-$((${i} * 11))"` },
    });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    ids.push(id);
    await until(async () => (await api(s!, 'GET', `/api/sessions/${id}`, { token })).body.status === 'exited', `session ${i} to end`);
  }
  // A live one is always listed, whatever the bound.
  const live = await api(s, 'POST', '/api/sessions', { token, body: { orgId: 'acme', projectName: 'kept', agent: 'script', command: 'sleep 30' } });
  expect(live.status).toBe(201);

  const listed = async () => ((await api(s!, 'GET', '/api/sessions?projectName=kept', { token })).body.items as Array<{ id: string }>).map((x) => x.id);
  expect(new Set(await listed())).toEqual(new Set([live.body.id, ...ids.slice(3)]));

  const checkOld = async () => {
    for (const [i, id] of ids.entries()) {
      const got = await api(s!, 'GET', `/api/sessions/${id}`, { token });
      expect(got.status).toBe(200);
      expect(got.body).toMatchObject({ id, status: 'exited', exitCode: 0 });
      const logs = await api(s!, 'GET', `/api/sessions/${id}/logs`, { token });
      expect(logs.status).toBe(200);
      expect(logs.body).toContain(`RUN-${i * 11}`);
    }
    // Still another org's business: 404, as for any session.
    const other = await s!.token({ sub: 'mallory', orgId: 'other' });
    expect((await api(s!, 'GET', `/api/sessions/${ids[0]}`, { token: other })).status).toBe(404);
    // Terminating a session that ended long ago answers its record, as for one still listed.
    const del = await api(s!, 'DELETE', `/api/sessions/${ids[0]}`, { token });
    expect(del.status).toBe(200);
    expect(del.body).toMatchObject({ id: ids[0], status: 'exited' });
  };
  await checkOld();

  const kill = await api(s, 'DELETE', `/api/sessions/${live.body.id}`, { token });
  expect(kill.body.status).toBe('killed');
  // The kill is the newest end now: the three newest ended sessions are listed.
  expect(new Set(await listed())).toEqual(new Set([live.body.id, ...ids.slice(4)]));

  // After a restart the node loads the newest ended sessions only; the rest are read by id.
  const dir = s.dir;
  await s.stop();
  s = await startServer({ dir, env: { ENDED_SESSIONS_KEPT: '3' } });
  expect(new Set(await listed())).toEqual(new Set([live.body.id, ...ids.slice(4)]));
  await checkOld();
}, 90_000);
