import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { AcpClient, type AcpEvent } from '../../workers/acp-client.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/acp-echo-agent.mjs', import.meta.url));
const WAIT_MS = 10_000;

const children: ChildProcess[] = [];
const clients: AcpClient[] = [];

afterEach(() => {
  for (const c of clients.splice(0)) c.close();
  for (const ch of children.splice(0)) if (ch.exitCode === null && ch.signalCode === null) ch.kill('SIGKILL');
});

/** Collects a client's events; `next(pred)` waits (bounded) for the first matching one. */
class Recorder {
  readonly events: AcpEvent[] = [];
  readonly stderr: string[] = [];
  private waiters: Array<{ pred: (e: AcpEvent) => boolean; resolve: (e: AcpEvent) => void }> = [];

  onEvent = (e: AcpEvent): void => {
    this.events.push(e);
    this.waiters = this.waiters.filter((w) => {
      if (!w.pred(e)) return true;
      w.resolve(e);
      return false;
    });
  };

  onStderr = (t: string): void => {
    this.stderr.push(t);
  };

  next<K extends AcpEvent['kind']>(kind: K, pred: (e: Extract<AcpEvent, { kind: K }>) => boolean = () => true): Promise<Extract<AcpEvent, { kind: K }>> {
    const match = (e: AcpEvent): boolean => e.kind === kind && pred(e as Extract<AcpEvent, { kind: K }>);
    const seen = this.events.find(match);
    if (seen) return Promise.resolve(seen as Extract<AcpEvent, { kind: K }>);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${kind} event within ${WAIT_MS} ms`)), WAIT_MS);
      this.waiters.push({
        pred: match,
        resolve: (e) => {
          clearTimeout(timer);
          resolve(e as Extract<AcpEvent, { kind: K }>);
        },
      });
    });
  }

  of<K extends AcpEvent['kind']>(kind: K): Array<Extract<AcpEvent, { kind: K }>> {
    return this.events.filter((e) => e.kind === kind) as Array<Extract<AcpEvent, { kind: K }>>;
  }

  text(): string {
    return this.of('message').map((m) => m.content).join('');
  }

  clear(): void {
    this.events.length = 0;
  }
}

function spawnAgent(args: string[] = [FIXTURE]): ChildProcess {
  const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  children.push(child);
  return child;
}

async function startEcho(opts: { raw?: boolean } = {}): Promise<{ child: ChildProcess; client: AcpClient; rec: Recorder; sessionId: string; agentInfo?: unknown }> {
  const child = spawnAgent();
  const rec = new Recorder();
  const o = { cwd: process.cwd(), onEvent: rec.onEvent, onStderr: rec.onStderr, requestTimeoutMs: WAIT_MS };
  const client = opts.raw ? new AcpClient(child.stdin!, child.stdout!, o) : AcpClient.fromChild(child, o);
  clients.push(client);
  const started = await client.start();
  return { child, client, rec, ...started };
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

describe('AcpClient against the ACP echo agent', () => {
  it('starts: initialize + session/new', async () => {
    const { client, sessionId, agentInfo, rec } = await startEcho();
    expect(sessionId).toMatch(/^sess_echo_\d+$/);
    expect(client.sessionId).toBe(sessionId);
    expect(agentInfo).toMatchObject({ name: 'acp-echo-agent' });
    expect(client.agentCapabilities).toMatchObject({ loadSession: false });
    // start() is idempotent
    await expect(client.start()).resolves.toEqual({ sessionId, agentInfo });
    expect(rec.events).toEqual([]);
  });

  it('prompt → thinking, streamed chunks, tool_call then tool_result, done', async () => {
    const { client, rec } = await startEcho();
    const text = 'hello ACP world, héllo ✓ 😀 — echo me back';
    await expect(client.prompt(text)).resolves.toEqual({ stopReason: 'end_turn' });

    const kinds = rec.events.map((e) => e.kind);
    expect(rec.events[0]).toEqual({ kind: 'status', state: 'thinking' });
    expect(rec.events.at(-1)).toEqual({ kind: 'status', state: 'done', detail: 'end_turn' });
    expect(rec.of('status').find((s) => s.state === 'plan')?.detail).toBe('[in_progress] echo the prompt');

    const messages = rec.of('message');
    expect(messages.length).toBeGreaterThanOrEqual(2);
    expect(messages.every((m) => m.role === 'assistant')).toBe(true);
    expect(rec.text()).toBe(text);

    const calls = rec.of('tool_call');
    const results = rec.of('tool_result');
    expect(calls).toHaveLength(1);
    expect(results).toHaveLength(1);
    expect(calls[0]).toEqual({ kind: 'tool_call', id: expect.any(String), name: 'echo', args: { text } });
    expect(results[0]).toEqual({ kind: 'tool_result', callId: calls[0]!.id, output: { echoed: text, length: text.length }, isError: false });
    expect(kinds.indexOf('tool_call')).toBeLessThan(kinds.indexOf('message'));
    expect(kinds.lastIndexOf('message')).toBeLessThan(kinds.indexOf('tool_result'));

    // a second turn on the same session works and gets a fresh tool call id
    rec.clear();
    await expect(client.prompt('again')).resolves.toEqual({ stopReason: 'end_turn' });
    expect(rec.text()).toBe('again');
    expect(rec.of('tool_call')[0]!.id).not.toBe(calls[0]!.id);
  });

  it('refuses a second prompt while one is running, and prompt before start', async () => {
    const child = spawnAgent();
    const rec = new Recorder();
    const early = AcpClient.fromChild(child, { cwd: process.cwd(), onEvent: rec.onEvent });
    clients.push(early);
    await expect(early.prompt('too early')).rejects.toThrow(/before start/);

    const { client, rec: rec2 } = await startEcho();
    const first = client.prompt('slow one');
    await rec2.next('tool_call');
    await expect(client.prompt('second')).rejects.toThrow(/already in progress/);
    client.cancel();
    await expect(first).resolves.toEqual({ stopReason: 'cancelled' });
  });

  it('surfaces a permission request and sends the chosen option back', async () => {
    const { client, rec } = await startEcho();
    const turn = client.prompt('ask permission first');
    const req = await rec.next('permission_request');
    expect(req.requestId).toEqual(expect.any(String));
    expect(req.options).toEqual([
      { optionId: 'allow-once', name: 'Allow once', kind: 'allow_once' },
      { optionId: 'reject-once', name: 'Reject', kind: 'reject_once' },
    ]);
    expect(req.toolCall).toMatchObject({ title: 'echo', rawInput: { text: 'ask permission first' } });

    expect(client.answerPermission('no-such-request', 'allow-once')).toBe(false);
    expect(client.answerPermission(req.requestId, 'not-offered')).toBe(false);
    expect(client.answerPermission(req.requestId, 'allow-once')).toBe(true);
    expect(client.answerPermission(req.requestId, 'allow-once')).toBe(false); // already answered

    await expect(turn).resolves.toEqual({ stopReason: 'end_turn' });
    expect(rec.text()).toContain('permission: allow-once');
    expect(rec.of('tool_result')[0]).toMatchObject({ isError: false });
  });

  it('a rejected permission ends the tool call as an error', async () => {
    const { client, rec } = await startEcho();
    const turn = client.prompt('permission please');
    const req = await rec.next('permission_request');
    expect(client.answerPermission(req.requestId, 'reject-once')).toBe(true);
    await expect(turn).resolves.toEqual({ stopReason: 'end_turn' });
    expect(rec.text()).toContain('permission: reject-once');
    const call = rec.of('tool_call')[0]!;
    expect(rec.of('tool_result')).toEqual([{ kind: 'tool_result', callId: call.id, output: 'not allowed (reject-once)', isError: true }]);
  });

  it('cancel → the turn answers stopReason "cancelled"', async () => {
    const { client, rec } = await startEcho();
    const turn = client.prompt('a slow job');
    const call = await rec.next('tool_call');
    client.cancel();
    await expect(turn).resolves.toEqual({ stopReason: 'cancelled' });
    expect(rec.of('tool_result')).toEqual([{ kind: 'tool_result', callId: call.id, output: 'cancelled', isError: true }]);
    expect(rec.events.at(-1)).toEqual({ kind: 'status', state: 'done', detail: 'cancelled' });
    // the session is still usable
    await expect(client.prompt('after cancel')).resolves.toEqual({ stopReason: 'end_turn' });
  });

  it('cancel while a permission request is open answers it "cancelled"', async () => {
    const { client, rec } = await startEcho();
    const turn = client.prompt('permission for a slow job');
    const req = await rec.next('permission_request');
    client.cancel();
    expect(client.answerPermission(req.requestId, 'allow-once')).toBe(false);
    await expect(turn).resolves.toEqual({ stopReason: 'cancelled' });
    expect(rec.text()).toContain('permission: cancelled');
  });

  it('agent killed mid-prompt → prompt rejects with a clear error, later calls too', async () => {
    const { child, client, rec } = await startEcho();
    const turn = client.prompt('slow, then killed');
    const call = await rec.next('tool_call');
    child.kill('SIGKILL');
    await expect(turn).rejects.toThrow(/ACP agent (exited|closed its stdout).*while waiting for session\/prompt/);
    await exited(child);
    expect(rec.of('status').at(-1)).toMatchObject({ state: 'error' });
    // the open tool call is closed as an error so the conversation stays consistent
    expect(rec.of('tool_result')).toEqual([
      { kind: 'tool_result', callId: call.id, output: expect.objectContaining({ stopReason: 'error' }), isError: true },
    ]);
    await expect(client.prompt('anyone there?')).rejects.toThrow(/ACP agent/);
    client.cancel(); // no-op, must not throw
    expect(client.answerPermission('perm-1', null)).toBe(false);
  });

  it('agent that exits on its own (plain pipes, no child handle) → prompt rejects', async () => {
    const { child, client, rec } = await startEcho({ raw: true });
    const turn = client.prompt('please die');
    await expect(turn).rejects.toThrow(/closed its stdout.*session\/prompt/);
    expect(rec.text()).toBe('about to die');
    await exited(child);
    expect(child.exitCode).toBe(3);
  });

  it('tolerates garbage lines, split lines and unknown notifications', async () => {
    const { client, rec } = await startEcho();
    await expect(client.prompt('garbage in')).resolves.toEqual({ stopReason: 'end_turn' });
    expect(client.stats.invalidLines).toBeGreaterThanOrEqual(2); // "this is not json", "[1,2,3]"
    expect(client.stats.ignoredMessages).toBeGreaterThanOrEqual(3); // x/unknown, available_commands_update, something_new
    expect(rec.stderr.join('')).toContain('this is not json');
    expect(rec.text()).toBe('[split]garbage in');
    await expect(client.prompt('still fine')).resolves.toEqual({ stopReason: 'end_turn' });
  });

  it('refuses client-side fs requests with -32601', async () => {
    const { client, rec } = await startEcho();
    await expect(client.prompt('readfile now')).resolves.toEqual({ stopReason: 'end_turn' });
    expect(rec.text()).toContain('fs: error -32601');
    expect(client.stats.refusedRequests).toBe(1);
  });

  it('times out a request the agent never answers, and close() rejects pending ones', async () => {
    // A real process that reads stdin but never answers.
    const mute = spawnAgent(['-e', 'process.stdin.resume(); setInterval(() => {}, 1000)']);
    const rec = new Recorder();
    const client = AcpClient.fromChild(mute, { cwd: process.cwd(), onEvent: rec.onEvent, requestTimeoutMs: 300 });
    clients.push(client);
    await expect(client.start()).rejects.toThrow(/initialize timed out after 300 ms/);

    const { client: echo, rec: rec2 } = await startEcho();
    const turn = echo.prompt('slow and closed');
    await rec2.next('tool_call');
    echo.close();
    await expect(turn).rejects.toThrow(/ACP client closed while waiting for session\/prompt/);
    await expect(echo.prompt('after close')).rejects.toThrow(/closed/);
  });
});
