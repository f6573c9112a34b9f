import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startServer, until, type TestServer } from './helpers/server.js';
import { Client } from './helpers/ws.js';
import { readFileSync } from 'node:fs';
import { childPids } from './helpers/procs.js';

let s: TestServer;
let token: string;

beforeAll(async () => {
  s = await startServer();
  token = await s.token({ sub: 'alice', orgId: 'acme' });
});
afterAll(async () => {
  await s?.stop();
});

describe('session lifecycle', () => {
  it('create → attach → input → output → resize → logs → DELETE → exit', async () => {
    const created = await api(s, 'POST', '/api/sessions', { token, body: { orgId: 'acme', projectName: 'demo', agent: 'bash', cols: 100, rows: 30 } });
    expect(created.status).toBe(201);
    expect(created.body.status).toBe('running');
    expect(created.body.workspacePath).toBe(`${s.workspaces}/acme/demo`);
    const id = created.body.id as string;

    const c = await Client.connect(s.wsUrl, { token });
    const attached = await c.attach(id);
    expect(attached).toMatchObject({ type: 'attached', sessionId: id, status: 'running' });
    c.send({ type: 'input', sessionId: id, data: 'echo "sum=$((20+22))"\r' });
    await c.waitForText(id, 'sum=42');

    c.send({ type: 'resize', sessionId: id, cols: 132, rows: 40 });
    c.send({ type: 'input', sessionId: id, data: 'stty size\r' });
    await c.waitForText(id, '40 132');
    expect((await api(s, 'GET', `/api/sessions/${id}`, { token })).body).toMatchObject({ cols: 132, rows: 40, viewers: 1 });

    const viaRest = await api(s, 'POST', `/api/sessions/${id}/input`, { token, body: { data: 'echo rest-input-$((40+2))' } });
    expect(viaRest.status).toBe(200);
    await c.waitForText(id, 'rest-input-42\r\n');

    const resized = await api(s, 'POST', `/api/sessions/${id}/resize`, { token, body: { cols: 90, rows: 20 } });
    expect(resized.status).toBe(200);

    const logs = await until(async () => {
      const r = await api(s, 'GET', `/api/sessions/${id}/logs?lines=50`, { token });
      return r.text.includes('rest-input-42') ? r : undefined;
    }, 'logs to hold the output');
    expect(logs.headers.get('content-type')).toMatch(/text\/plain/);

    const killed = await api(s, 'DELETE', `/api/sessions/${id}`, { token });
    expect(killed.status).toBe(200);
    expect(killed.body.status).toBe('killed');
    const exit = await c.next((f) => f.type === 'exit' && f.sessionId === id, 'exit frame');
    expect(exit.reason).toMatch(/API/);
    expect(c.errors).toEqual([]);
    const pid = killed.body.pid as number;
    expect(() => process.kill(pid, 0)).toThrow();
    c.close();
  });

  it('a one-off script session exits with its code and appears in the job log', async () => {
    const created = await api(s, 'POST', '/api/sessions', { token, body: { orgId: 'acme', projectName: 'jobs', agent: 'script', command: 'echo one-off-out; exit 7' } });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    const done = await until(async () => {
      const r = await api(s, 'GET', `/api/sessions/${id}`, { token });
      return r.body.status === 'exited' ? r.body : undefined;
    }, 'script to exit');
    expect(done.exitCode).toBe(7);
    expect(done.type).toBe('one_off');
    const argv = await api(s, 'POST', '/api/sessions', { token, body: { orgId: 'acme', projectName: 'jobs', agent: 'script', command: ['sh', '-c', 'exit 0'] } });
    expect(argv.status).toBe(201);
    const jobs = await api(s, 'GET', '/api/jobs?limit=50', { token });
    expect(jobs.status).toBe(200);
    const mine = jobs.body.items.filter((j: any) => j.sessionId === id);
    expect(mine.map((j: any) => j.status)).toEqual(['exited', 'running']);
    expect(mine[0]).toMatchObject({ exitCode: 7, orgId: 'acme' });
    const logs = await api(s, 'GET', `/api/sessions/${id}/logs`, { token });
    expect(logs.text).toContain('one-off-out');
    // Attaching to an ended session replays what it printed, then its exit.
    const c = await Client.connect(s.wsUrl, { token });
    const att = await c.attach(id);
    expect(att.status).toBe('exited');
    await c.waitForText(id, 'one-off-out');
    await c.next((f) => f.type === 'exit' && f.sessionId === id, 'exit after replay');
    c.close();
  });

  it('invalid UTF-8 output reaches viewers as U+FFFD and offsets count what they got', async () => {
    const created = await api(s, 'POST', '/api/sessions', { token, body: { orgId: 'acme', projectName: 'utf8', agent: 'script', command: "printf 'a\\377b\\303\\251c\\360\\237\\230\\200z'" } });
    const id = created.body.id;
    const c = await Client.connect(s.wsUrl, { token });
    await c.attach(id);
    await c.next((f) => f.type === 'exit' && f.sessionId === id, 'exit');
    expect(c.text(id)).toBe('a\uFFFDbéc😀z');
    expect(c.errors).toEqual([]);
    const rec = (await api(s, 'GET', `/api/sessions/${id}`, { token })).body;
    expect(rec.outputOffset).toBe(Buffer.byteLength('a\uFFFDbéc😀z'));
    c.close();
  });

  it('lists, filters and shows sessions by user; another org sees none of them', async () => {
    const other = await s.token({ sub: 'mallory', orgId: 'evil' });
    const mine = await api(s, 'GET', '/api/sessions?orgId=acme', { token });
    expect(mine.body.items.length).toBeGreaterThan(0);
    const byUser = await api(s, 'GET', '/api/sessions/by-user/alice', { token });
    expect(byUser.body.items.every((r: any) => r.userId === 'alice')).toBe(true);
    const theirs = await api(s, 'GET', '/api/sessions', { token: other });
    expect(theirs.body.items).toEqual([]);
    const oneId = mine.body.items[0].id;
    expect((await api(s, 'GET', `/api/sessions/${oneId}`, { token: other })).status).toBe(404);
    expect((await api(s, 'DELETE', `/api/sessions/${oneId}`, { token: other })).status).toBe(404);
    expect((await api(s, 'GET', '/api/sessions?orgId=acme', { token: other })).status).toBe(403);
  });

  it('the agent owns a real terminal: controlling tty, job control, Ctrl-C, its size, no inherited descriptors', async () => {
    const created = await api(s, 'POST', '/api/sessions', { token, body: { orgId: 'acme', projectName: 'tty', agent: 'bash', cols: 111, rows: 33 } });
    const id = created.body.id as string;
    const c = await Client.connect(s.wsUrl, { token });
    await c.attach(id);
    // A session leader whose controlling terminal is the pty, at the size asked for.
    // (Markers are computed by the shell, so the echo of the typed line never matches them.)
    c.send({ type: 'input', sessionId: id, data: 'echo "tty=$(tty) size=$(stty size) sid=$(ps -o sid= -p $$ | tr -d " ") pid=$$ TTY-$((6*7))"\r' });
    await c.waitForText(id, 'TTY-42');
    const m = /tty=(\/dev\/pts\/\d+) size=(\d+ \d+) sid=(\d+) pid=(\d+) TTY-42/.exec(c.text(id));
    expect(m, c.text(id).slice(-300)).not.toBeNull();
    expect(m![2]).toBe('33 111');
    expect(m![3]).toBe(m![4]);
    // Only the terminal on 0, 1, 2 (and what the shell opens itself): nothing of the server's.
    // bash keeps one descriptor of its own (255, the terminal again): nothing else may be open.
    c.send({ type: 'input', sessionId: id, data: 'for f in /proc/$$/fd/*; do readlink $f; done | grep -v "^/dev/pts/" | grep -c . ; echo FDS-$((3*3))\r' });
    await c.waitForText(id, 'FDS-9');
    const fds = /(\d+)\r?\nFDS-9/.exec(c.text(id));
    expect(fds, c.text(id).slice(-300)).not.toBeNull();
    expect(Number(fds![1])).toBe(0);
    // Ctrl-C through the terminal interrupts the foreground job (ISIG + job control).
    c.send({ type: 'input', sessionId: id, data: 'sleep 30; echo NOT-$((5*5))\r' });
    await new Promise((r) => setTimeout(r, 300));
    const t0 = Date.now();
    c.send({ type: 'input', sessionId: id, data: '\u0003' });
    c.send({ type: 'input', sessionId: id, data: 'echo "after=$((40+2))"\r' });
    await c.waitForText(id, 'after=42', 10_000);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(c.text(id)).not.toContain('NOT-25');
    // Job control: a background job is listed by `jobs`.
    c.send({ type: 'input', sessionId: id, data: 'sleep 20 & jobs; echo JOBS-$((2+2)); kill %1\r' });
    await c.waitForText(id, 'JOBS-4');
    expect(c.text(id)).toMatch(/\[1\]\+?\s+Running\s+sleep 20/);
    c.close();
    await api(s, 'DELETE', `/api/sessions/${id}`, { token });
  });

  it('a plain program gets the terminal as its controlling tty, so Ctrl-C reaches it', async () => {
    // dash does not take a terminal by itself (bash does): the spawner must have given it one.
    const created = await api(s, 'POST', '/api/sessions', {
      token,
      body: { orgId: 'acme', projectName: 'tty', agent: 'script', command: 'echo "ctty=$(ps -o tty= -p $$) CTTY-$((9*9))"; sleep 30' },
    });
    const id = created.body.id as string;
    const c = await Client.connect(s.wsUrl, { token });
    await c.attach(id);
    await c.waitForText(id, 'CTTY-81');
    expect(c.text(id)).toMatch(/ctty=pts\/\d+ CTTY-81/);
    // Only once `sleep` runs: a Ctrl-C that lands while dash is still forking it reaches the
    // child before it has reset dash's SIGINT handler, so `sleep` survives it, and dash, which
    // exits on SIGINT only when its foreground child died of it, waits for the 30 s sleep.
    await until(() => childPids(created.body.pid).some((p) => comm(p) === 'sleep'), 'sleep to run');
    const t0 = Date.now();
    c.send({ type: 'input', sessionId: id, data: '\u0003' });
    const exit = await c.next((f) => f.type === 'exit' && f.sessionId === id, 'exit after Ctrl-C', 10_000);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(exit.signal).toBe('SIGINT');
    c.close();
  });

  it('signals go to the agent; SIGINT ends a foreground sleep in a one-off', async () => {
    const created = await api(s, 'POST', '/api/sessions', { token, body: { orgId: 'acme', projectName: 'sig', agent: 'script', command: ['sleep', '30'] } });
    const id = created.body.id;
    const sent = await api(s, 'POST', `/api/sessions/${id}/signal`, { token, body: { signal: 'SIGTERM' } });
    expect(sent.status).toBe(200);
    const done = await until(async () => {
      const r = await api(s, 'GET', `/api/sessions/${id}`, { token });
      return r.body.status === 'exited' ? r.body : undefined;
    }, 'sleep to end');
    expect(done.signal).toBe('SIGTERM');
    expect((await api(s, 'POST', `/api/sessions/${id}/signal`, { token, body: { signal: 'SIGSTOP' } })).body.error.code).toBe('invalid_signal');
  });
});

describe('artifacts', () => {
  it("lists the files in a session's artifacts folder, and what completion declared", async () => {
    const { mkdirSync, writeFileSync } = await import('node:fs');
    const path = await import('node:path');
    const created = await api(s, 'POST', '/api/sessions', { token, body: { orgId: 'acme', projectName: 'arts', agent: 'bash' } });
    const id = created.body.id;
    const dir = path.join(s.dataDir, 'sessions', id, 'artifacts', 'build');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'out.txt'), 'artifact!');
    const r = await api(s, 'GET', `/api/sessions/${id}/artifacts`, { token });
    expect(r.status).toBe(200);
    expect(r.body.items).toEqual([expect.objectContaining({ path: 'build/out.txt', size: 9 })]);
    await api(s, 'POST', `/api/sessions/${id}/complete`, { token, body: { summary: 'done', artifacts: ['build/out.txt'] } });
    expect((await api(s, 'GET', `/api/sessions/${id}/artifacts`, { token })).body.declared).toEqual(['build/out.txt']);
    const other = await s.token({ sub: 'mallory', orgId: 'evil' });
    expect((await api(s, 'GET', `/api/sessions/${id}/artifacts`, { token: other })).status).toBe(404);
  });
});

function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}
