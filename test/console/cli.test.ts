/**
 * The `session-manager` CLI against a real server: every command, its human and --json
 * output, its exit codes and errors; `attach` driven inside tmux.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer } from 'node:net';
import { api, startServer, tempDir, until, type TestServer } from '../helpers/server.js';
import { CutProxy } from './proxy.js';
import { CLI, cliEnv, exactLines, runCli, startCli, Tmux } from './cli-helpers.js';

/** Bound for each wait on the server or the browser (a shared 2-core machine can be slow). */
const WAIT_MS = 20_000;

let s: TestServer;
let token: string;
let env: Record<string, string>;
const cleanups: Array<() => unknown> = [];

beforeAll(async () => {
  s = await startServer();
  token = await s.token({ sub: 'alice', orgId: 'acme' });
  env = cliEnv({ SESSION_MANAGER_URL: s.url, SESSION_MANAGER_TOKEN: token });
});
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
  await s?.stop();
});

const cli = (...args: string[]) => runCli(args, env, { cwd: s.dir });

async function createBash(project: string): Promise<string> {
  const r = await cli('create', project, '--json');
  expect(r.code, r.stderr).toBe(0);
  const body = JSON.parse(r.stdout);
  expect(body.status).toBe('running');
  return body.id as string;
}

/** Wait for the session's console.log to hold `needle` (polled over HTTP: spawning the CLI is slow). */
async function logsUntil(id: string, needle: string): Promise<string> {
  return until(async () => {
    const r = await api(s, 'GET', `/api/sessions/${id}/logs?lines=100`, { token });
    return r.text.includes(needle) ? r.text : undefined;
  }, `logs to contain ${JSON.stringify(needle)}`, 30_000, 100);
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

describe('cli: sessions', () => {
  it('create, list, show (by unique prefix), in tables and --json', async () => {
    const id = await createBash('cli-demo');
    const human = await cli('create', 'cli-demo');
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^[0-9a-f-]{36} running\n$/);

    const list = await cli('list');
    expect(list.code).toBe(0);
    const lines = list.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^ID\s+STATUS\s+AGENT\s+PROJECT\s+USER\s+AGE\s+CPU\s+RSS\s+VIEWERS$/);
    expect(lines.find((l) => l.startsWith(id.slice(0, 8)))).toMatch(/running\s+bash\s+acme\/cli-demo\s+alice/);

    const json = JSON.parse((await cli('list', '--json', '--project', 'cli-demo')).stdout);
    expect(json.items.map((x: any) => x.id)).toContain(id);
    expect(json.items.every((x: any) => x.projectName === 'cli-demo')).toBe(true);

    const show = await cli('show', id.slice(0, 8));
    expect(show.code).toBe(0);
    expect(show.stdout).toContain(`id:`);
    expect(show.stdout).toContain(id);
    expect(show.stdout).toMatch(/status:\s+running/);
    expect(show.stdout).toMatch(/project:\s+cli-demo/);
    const showJson = JSON.parse((await cli('show', id, '--json')).stdout);
    expect(showJson).toMatchObject({ id, status: 'running', agent: 'bash', orgId: 'acme', userId: 'alice' });
  });

  it('send types text (Enter by default, --no-enter leaves the line open) and logs shows it', async () => {
    const id = await createBash('cli-send');
    expect((await cli('send', id, 'echo', 'cli-send-ok')).code).toBe(0);
    const out = await logsUntil(id, 'cli-send-ok\r\n');
    expect(out).toContain('cli-send-ok');
    expect((await cli('send', id, '--no-enter', 'echo part-one')).code).toBe(0);
    expect((await cli('send', id, '--no-enter', '--', '-part-two')).code).toBe(0);
    expect((await cli('send', id, '--no-enter', '')).code).toBe(2);
    expect((await cli('send', id, '')).code).toBe(0); // a bare Enter
    await logsUntil(id, 'part-one-part-two\r\n');
    const tail = await cli('logs', id, '-n', '1');
    expect(tail.stdout.split('\n').filter(Boolean).length).toBe(1);
  });

  it('logs --follow prints the tail, then live output, and ends with the session', async () => {
    const id = await createBash('cli-follow');
    await cli('send', id, 'echo before-follow');
    await logsUntil(id, 'before-follow\r\n');
    const f = startCli(['logs', id, '--follow', '--lines', '5'], env, s.dir);
    cleanups.push(() => f.proc.kill());
    await until(() => f.out().includes('before-follow'), 'the tail in --follow', WAIT_MS);
    await cli('send', id, 'echo live-after-follow');
    await until(() => f.out().includes('live-after-follow\r\n'), 'live output in --follow', WAIT_MS);
    expect((await cli('kill', id)).stdout).toMatch(/killed/);
    expect(await f.exit).toBe(0);
    // Printed once (the echoed command line also ends with it, hence the subtraction).
    const count = (t: string, needle: string) => t.split(needle).length - 1;
    expect(count(f.out(), 'before-follow\r\n') - count(f.out(), 'echo before-follow\r\n')).toBe(1);
  });

  it('one-off queues a job; --wait streams it and exits with its code; jobs lists it', async () => {
    const queued = await cli('one-off', 'cli-jobs', 'echo', 'quick-job');
    expect(queued.code).toBe(0);
    expect(queued.stdout).toMatch(/^[0-9a-f-]{36} (running|queued at position \d+)\n$/);
    const jobId = queued.stdout.slice(0, 36);

    const waited = await cli('one-off', 'cli-jobs', '--wait', 'echo waited-out; exit 3');
    expect(waited.code).toBe(3);
    expect(waited.stdout).toContain('waited-out');

    await until(async () => (await api(s, 'GET', `/api/sessions/${jobId}`, { token })).body.status === 'exited', 'the job to exit', WAIT_MS);
    const jobs = await cli('jobs', '--limit', '50');
    expect(jobs.code).toBe(0);
    expect(jobs.stdout.split('\n')[0]).toMatch(/^TIME\s+SESSION\s+STATUS\s+EXIT\s+PROJECT\s+AGENT\s+MESSAGE$/);
    expect(jobs.stdout).toMatch(new RegExp(`${jobId.slice(0, 8)}\\s+exited\\s+0\\s+acme/cli-jobs\\s+script`));
    const jobsJson = JSON.parse((await cli('jobs', '--json')).stdout);
    expect(jobsJson.items.some((j: any) => j.sessionId === jobId && j.status === 'exited')).toBe(true);
  });

  it('kill terminates a session and the record stays; attach then shows what it printed', async () => {
    const id = await createBash('cli-kill');
    await cli('send', id, 'echo said-before-kill');
    await logsUntil(id, 'said-before-kill\r\n');
    const k = await cli('kill', id.slice(0, 6));
    expect(k.code).toBe(0);
    expect(k.stdout).toBe(`${id} killed\n`);
    const again = JSON.parse((await cli('show', id, '--json')).stdout);
    expect(again.status).toBe('killed');
    const killJson = JSON.parse((await cli('kill', id, '--json')).stdout);
    expect(killJson.status).toBe('killed');
    const ended = await cli('attach', id);
    expect(ended.code).toBe(0);
    expect(ended.stdout).toContain('said-before-kill\r\n');
    expect(ended.stderr).toMatch(/has ended \(killed\)/);
  });
});

describe('cli: errors and exit codes', () => {
  it('server down → 3, bad token → 4, missing session → 5, usage → 2, rejected → 6', async () => {
    const down = await runCli(['list'], cliEnv({ SESSION_MANAGER_URL: `http://127.0.0.1:${await closedPort()}`, SESSION_MANAGER_TOKEN: token }), { cwd: s.dir });
    expect(down.code).toBe(3);
    expect(down.stderr).toMatch(/cannot reach the server at http:\/\/127\.0\.0\.1:\d+ .*Is it running\?/);

    const bad = await runCli(['list'], cliEnv({ SESSION_MANAGER_URL: s.url, SESSION_MANAGER_TOKEN: 'not-a-jwt' }), { cwd: s.dir });
    expect(bad.code).toBe(4);
    expect(bad.stderr).toMatch(/unauthorized \(401\)/);

    const flagWins = await runCli(['list', '--token', token, '--url', s.url], cliEnv({ SESSION_MANAGER_URL: 'http://127.0.0.1:1', SESSION_MANAGER_TOKEN: 'not-a-jwt' }), { cwd: s.dir });
    expect(flagWins.code).toBe(0);

    const missing = await cli('show', '00000000-0000-4000-8000-000000000000');
    expect(missing.code).toBe(5);
    expect(missing.stderr).toMatch(/no such session/);
    expect((await cli('kill', 'ffffffff')).code).toBe(5);
    expect((await cli('attach', '00000000-0000-4000-8000-000000000000')).code).toBe(5);

    const other = await s.token({ sub: 'bob', orgId: 'other' });
    const mine = await createBash('cli-private');
    const foreign = await runCli(['show', mine], cliEnv({ SESSION_MANAGER_URL: s.url, SESSION_MANAGER_TOKEN: other }), { cwd: s.dir });
    expect(foreign.code).toBe(5);

    for (const args of [['frobnicate'], ['create'], ['show'], ['show', 'xy'], ['list', '--bogus'], ['logs', mine, '--lines', 'many'], []]) {
      const r = await cli(...args);
      expect(r.code, args.join(' ')).toBe(2);
    }
    expect((await cli('--help')).stdout).toMatch(/usage: session-manager <command>/);

    const rejected = await cli('create', 'x', '--agent', 'no-such-agent');
    expect(rejected.code).toBe(6);
    expect(rejected.stderr).toMatch(/unknown_agent/);
    const badName = await cli('create', '../etc');
    expect(badName.code).toBe(6);
    expect(badName.stderr).toMatch(/invalid_name/);

    // Over the server's 4 KiB of request headers (F19): a clear refusal before sending, not a dropped connection.
    const huge = await s.token({ roles: Array.from({ length: 300 }, (_, i) => `role-${i}`) });
    expect(huge.length).toBeGreaterThan(3 * 1024);
    const tooBig = await runCli(['list'], cliEnv({ SESSION_MANAGER_URL: s.url, SESSION_MANAGER_TOKEN: huge }), { cwd: s.dir });
    expect(tooBig.code).toBe(4);
    expect(tooBig.stderr).toMatch(/the token is \d+ bytes; the server takes at most 4 KiB of request headers/);

    const noToken = await runCli(['list'], cliEnv({ SESSION_MANAGER_URL: s.url }), { cwd: tempDir() });
    expect(noToken.code).toBe(4);
    expect(noToken.stderr).toMatch(/no token/);
  });
});

describe('cli: dev mode and serve', () => {
  it('next to a dev-mode server, mints an admin token from DATA_DIR/jwt-secret', async () => {
    const dev = await startServer({ devMode: true });
    cleanups.push(() => dev.stop());
    const viaEnv = await runCli(['create', 'dev-proj', '--json'], cliEnv({ SESSION_MANAGER_URL: dev.url, DATA_DIR: dev.dataDir }), { cwd: tempDir() });
    expect(viaEnv.code, viaEnv.stderr).toBe(0);
    expect(JSON.parse(viaEnv.stdout)).toMatchObject({ status: 'running', orgId: 'default', userId: 'admin' });
    // From the server's working directory, the default ./data is found without DATA_DIR.
    const fromCwd = await runCli(['list'], cliEnv({ SESSION_MANAGER_URL: dev.url }), { cwd: dev.dir });
    expect(fromCwd.code, fromCwd.stderr).toBe(0);
    expect(fromCwd.stdout).toContain('default/dev-proj');
  });

  it('serve runs the server (flags become its environment) and stops on SIGTERM', async () => {
    const dir = tempDir();
    const p = startCli(['serve', '--port', '0', '--host', '127.0.0.1', '--data-dir', `${dir}/data`], cliEnv({ WORKSPACE_BASE_PATH: `${dir}/ws`, NODE_ID: `cli-serve-${process.pid}`, JWT_SECRET: 'serve-secret-0123456789abcdef0123456789' }), dir);
    cleanups.push(() => p.proc.kill('SIGKILL'));
    await until(() => /session-manager ready at /.test(p.out()), 'serve to print its ready line', 20_000).catch((err: Error) => {
      throw new Error(`${err.message}\nstdout: ${p.out()}\nstderr: ${p.err()}`);
    });
    const url = /ready at (http:\/\/[^/\s]+)/.exec(p.out())![1]!;
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    const page = await fetch(`${url}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    p.proc.kill('SIGTERM');
    expect(await p.exit).toBe(0);
  });
});

describe('cli: attach (in tmux)', () => {
  it('shows output, takes input, follows the window size and detaches with Ctrl-\\', async () => {
    const id = await createBash('cli-attach');
    await cli('send', id, 'echo before-attach');
    await logsUntil(id, 'before-attach\r\n');
    const tmux = new Tmux();
    cleanups.push(() => tmux.kill());
    tmux.start(env, 100, 30);
    tmux.type(`node ${JSON.stringify(CLI)} attach ${id.slice(0, 8)}; echo "EXIT=$?"`);
    tmux.keys('Enter');
    await tmux.waitFor((p) => p.includes('detach with Ctrl-\\'), 'the attach banner');
    await tmux.waitFor((p) => exactLines(p, 'before-attach') === 1, 'the replayed output');
    tmux.type('echo from-tmux-$((6*7))');
    tmux.keys('Enter');
    await tmux.waitFor((p) => exactLines(p, 'from-tmux-42') === 1, 'typed command output');
    tmux.type('stty size');
    tmux.keys('Enter');
    await tmux.waitFor((p) => exactLines(p, '30 100') === 1, 'the pty at the pane size');
    tmux.resize(90, 24);
    await until(async () => (await api(s, 'GET', `/api/sessions/${id}`, { token })).body.cols === 90, 'SIGWINCH → resize', WAIT_MS);
    tmux.type('stty size');
    tmux.keys('Enter');
    await tmux.waitFor((p) => exactLines(p, '24 90') === 1, 'the pty resized with the window');
    tmux.keys('C-\\');
    const after = await tmux.waitFor((p) => /^EXIT=\d+$/m.test(p), 'the CLI to exit');
    expect(after).toContain('EXIT=0');
    expect(after).toMatch(/\[detached from [0-9a-f]{8}/);
    // The alternate screen is gone: the shell's own screen is back.
    expect(exactLines(after, 'from-tmux-42')).toBe(0);
    // Detaching leaves the session running, with no viewer.
    const rec = await until(async () => {
      const r = (await api(s, 'GET', `/api/sessions/${id}`, { token })).body;
      return r.viewers === 0 ? r : undefined;
    }, 'the viewer to leave', WAIT_MS);
    expect(rec.status).toBe('running');
    tmux.kill();
  });

  it('resumes by offset after the connection drops: no line lost, none repeated', async () => {
    const id = await createBash('cli-reconnect');
    const proxy = await CutProxy.start(s.port);
    cleanups.push(() => proxy.close());
    const tmux = new Tmux();
    cleanups.push(() => tmux.kill());
    tmux.start({ ...env, SESSION_MANAGER_URL: proxy.url }, 100, 40);
    tmux.type(`node ${JSON.stringify(CLI)} attach ${id}; echo "EXIT=$?"`);
    tmux.keys('Enter');
    await tmux.waitFor((p) => p.includes('detach with Ctrl-\\') && /[#$]\s*$/.test(p), 'the banner and the prompt');
    tmux.type('echo line-$((1+0))');
    tmux.keys('Enter');
    await tmux.waitFor((p) => exactLines(p, 'line-1') === 1, 'line-1');
    // Output made while the viewer is away must arrive once it is back.
    await cli('send', id, 'sleep 0.4; echo during-$((1+1)); echo during-$((1+2))');
    expect(proxy.cut(1500)).toBeGreaterThan(0);
    await tmux.waitFor((p) => p.includes('reconnecting'), 'the reconnect notice');
    await tmux.waitFor((p) => p.includes('[reconnected]'), 'the reconnection', 20_000);
    await tmux.waitFor((p) => exactLines(p, 'during-3') === 1, 'output made while away');
    tmux.type('echo line-$((1+1))');
    tmux.keys('Enter');
    const screen = await tmux.waitFor((p) => exactLines(p, 'line-2') === 1, 'line-2 after the reconnect');
    for (const l of ['line-1', 'during-2', 'during-3', 'line-2']) expect(exactLines(screen, l), `${l} in:\n${screen}`).toBe(1);
    tmux.keys('C-\\');
    expect(await tmux.waitFor((p) => /^EXIT=\d+$/m.test(p), 'the CLI to exit')).toContain('EXIT=0');
    tmux.kill();
  });
});
