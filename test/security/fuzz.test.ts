/**
 * Seeded fuzzing (fast-check) of the three inputs an untrusted party writes freely: the
 * editor protocol (/ws), the agent protocol (/agent) and the planner document. Properties:
 * the server never crashes and never answers internal_error; every frame that is not a
 * JSON object with a string `type` gets `bad_frame`; an unknown type gets `unknown_type`;
 * after any text frame the connection still answers a ping; junk that ends a connection
 * ends it with a close code docs/protocol.md documents. `FUZZ_SEED` replays a run.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { api, ROOT, until } from '../helpers/server.js';
import { Client } from '../helpers/ws.js';
import { makeWorld, request, type World } from './world.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20260801);
const RUNS = Number(process.env.FUZZ_RUNS ?? 250);

/** Close codes docs/protocol.md lists (the table under "Close codes"). */
const DOCUMENTED_CLOSE = new Set(
  [...readFileSync(path.join(ROOT, 'docs/protocol.md'), 'utf8').split('## Close codes')[1]!.matchAll(/^\| (\d{4}) \|/gm)].map((m) => Number(m[1])),
);

let world: World;
let target: string;
beforeAll(async () => {
  world = await makeWorld({ env: { LOG_LEVEL: 'warn' } });
  // A session that ignores every signal it can, so fuzzed `signal` frames leave it running.
  const r = await api(world.s, 'POST', '/api/sessions', {
    token: world.token,
    body: { orgId: world.w.orgId, projectName: world.w.projectName, agent: 'script', command: "trap '' INT TERM HUP QUIT USR1 USR2; exec cat" },
  });
  target = r.body.id;
});
afterAll(async () => {
  await world?.s.stop();
});

/** Deep values travel as a marker and are spliced in as text: the test process must not overflow its own stack. */
const DEEP = '<<DEEP>>';
const DEEP_TEXT = '['.repeat(20_000) + '1' + ']'.repeat(20_000);
const splice = (t: string) => t.split(JSON.stringify(DEEP)).join(DEEP_TEXT);

/** Values: anything JSON can carry, with the nasty corners weighted in. */
const junk = (): fc.Arbitrary<unknown> =>
  fc.oneof(
    { weight: 5, arbitrary: fc.jsonValue({ maxDepth: 4 }) },
    { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) },
    { weight: 1, arbitrary: fc.constantFrom<unknown>(null, true, false, 0, -1, 1e308, -0, '', '\u0000', '\ud800', '../../etc/passwd', 'x'.repeat(20_000), DEEP, { __proto__: null }, []) },
  );

/** Sends raw text and waits for the answer to a ping sent right after it. */
async function roundTrip(c: Client, text: string | Buffer, n: number, binaryText = false): Promise<{ frames: Array<Record<string, any>>; closed?: { code: number } }> {
  const from = c.frames.length;
  c.ws.send(text, { binary: binaryText ? false : typeof text !== 'string' });
  c.ws.send(JSON.stringify({ type: 'ping', ref: `probe-${n}` }));
  const pong = await Promise.race([
    c.next((f) => f.type === 'pong' && f.ref === `probe-${n}`, 'pong', 10_000, from).then(() => 'pong' as const),
    c.waitClose(10_000).then(() => 'closed' as const),
  ]).catch((err: Error) => `hang: ${err.message}`);
  if (pong === 'closed') return { frames: c.frames.slice(from), closed: c.closed! };
  if (pong !== 'pong') throw new Error(`no pong after ${JSON.stringify(String(text).slice(0, 200))}: ${pong}`);
  return { frames: c.frames.slice(from).filter((f) => !(f.type === 'pong' && f.ref === `probe-${n}`)) };
}

const serverAlive = async () => (await request(world.s, 'GET', '/healthz')).status === 200 && world.s.proc.exitCode === null;

describe('/ws protocol fuzz', () => {
  it(`${RUNS} seeded frames: no internal_error, bad frames get bad_frame/unknown_type, the connection stays usable`, async () => {
    const TYPES = ['attach', 'detach', 'input', 'resize', 'signal', 'subscribe', 'unsubscribe', 'ping', 'prompt', 'cancel', 'permission', 'auth', 'output', 'event', 'attached', 'Attach', ''];
    const w = world.w;
    const sessionId = fc.oneof(fc.constant(target), fc.constant(w.id), fc.uuid(), junk());
    const signal = fc.oneof(fc.constantFrom('SIGUSR1', 'SIGUSR2', 'SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGSEGV', 'SIGSTOP', 'sigint', 'KILL', '9'), junk());
    const topic = fc.oneof(fc.constantFrom(`project:${w.orgId}/${w.projectName}`, `org:${w.orgId}`, 'org:evil', 'project:a/b/c', 'project:../..', 'org:', 'session:x'), junk());
    const frame = fc.record(
      {
        type: fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...TYPES) }, { weight: 1, arbitrary: junk() }),
        sessionId,
        data: fc.oneof(fc.string({ unit: 'binary', maxLength: 100 }), junk()),
        cols: fc.oneof(fc.integer({ min: -5, max: 1200 }), junk()),
        rows: fc.oneof(fc.integer({ min: -5, max: 600 }), junk()),
        signal,
        since: fc.oneof(fc.integer({ min: -10, max: 1 << 30 }), junk()),
        mode: fc.oneof(fc.constantFrom('screen', 'replay', 'SCREEN'), junk()),
        topic,
        text: junk(),
        attachments: junk(),
        requestId: junk(),
        optionId: junk(),
        token: junk(),
        ref: junk(),
        id: junk(),
      },
      { requiredKeys: [] },
    );
    const text = fc.oneof(
      { weight: 6, arbitrary: frame.map((f) => JSON.stringify(f)) },
      { weight: 1, arbitrary: fc.json({ maxDepth: 3 }) },
      { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 300 }) },
      { weight: 1, arbitrary: fc.constantFrom('', '{', '{"type":', 'null', '[]', '"ping"', '{"type":null}', '{"type":{"a":1}}', '\u0000', JSON.stringify({ type: 'attach', sessionId: DEEP }), JSON.stringify({ type: 'prompt', sessionId: target, text: 'y', attachments: [DEEP] })) },
    );
    let c = await Client.connect(world.s.wsUrl, { token: world.token });
    let n = 0;
    const problems: string[] = [];
    await fc.assert(
      fc.asyncProperty(text, async (marked) => {
        const i = n++;
        const t = splice(marked);
        const r = await roundTrip(c, t, i);
        if (r.closed) {
          problems.push(`closed ${r.closed.code} after ${marked.slice(0, 200)}`);
          c = await Client.connect(world.s.wsUrl, { token: world.token });
          return true;
        }
        for (const f of r.frames) if (f.type === 'error' && f.code === 'internal_error') problems.push(`internal_error after ${marked.slice(0, 200)}`);
        let parsed: unknown;
        try {
          parsed = JSON.parse(t);
        } catch {
          parsed = Symbol.for('invalid');
        }
        const shapeOk = typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) && typeof (parsed as { type?: unknown }).type === 'string';
        if (!shapeOk && !r.frames.some((f) => f.type === 'error' && f.code === 'bad_frame')) problems.push(`no bad_frame for ${marked.slice(0, 200)}`);
        if (shapeOk && !TYPES.slice(0, 12).includes((parsed as { type: string }).type) && !r.frames.some((f) => f.type === 'error' && (f.code === 'unknown_type' || f.code === 'bad_frame'))) {
          problems.push(`no unknown_type for ${marked.slice(0, 200)}`);
        }
        // Every problem is recorded and the run goes on, so one finding does not hide the next.
        return true;
      }),
      { seed: SEED, numRuns: RUNS },
    );
    console.log(`fuzz /ws: ${n} frames (seed ${SEED}), ${problems.length} problems`);
    expect(problems.slice(0, 20)).toEqual([]);
    expect(c.closed).toBeUndefined();
    c.close();
    expect(await serverAlive()).toBe(true);
  }, 120_000);

  it('binary frames, invalid UTF-8 and oversized frames close the connection with a documented code; others are unaffected', async () => {
    const bystander = await Client.connect(world.s.wsUrl, { token: world.token });
    const cases: Array<[string, Buffer, boolean]> = [
      ['binary', Buffer.from([0, 1, 2, 3, 0xff]), false],
      ['binary-json', Buffer.from('{"type":"ping"}'), false],
      ['invalid-utf8-text', Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), true],
      ['truncated-utf8-text', Buffer.from([0xe2, 0x82]), true],
      ['oversized-text', Buffer.from(JSON.stringify({ type: 'input', sessionId: target, data: 'z'.repeat(1_200_000) })), true],
    ];
    const got: Array<[string, number, boolean]> = [];
    for (const [name, bytes, asText] of cases) {
      const c = await Client.connect(world.s.wsUrl, { token: world.token });
      c.ws.send(bytes, { binary: !asText });
      const closed = await c.waitClose(10_000).catch(() => ({ code: -1 }));
      got.push([name, closed.code, DOCUMENTED_CLOSE.has(closed.code)]);
    }
    expect(got.map(([name, code]) => [name, code, DOCUMENTED_CLOSE.has(code)])).toEqual(got.map(([name, code]) => [name, code, true]));
    bystander.send({ type: 'ping', ref: 'still' });
    await bystander.next((f) => f.type === 'pong' && f.ref === 'still', 'bystander pong');
    bystander.close();
    expect(await serverAlive()).toBe(true);
  });
});

describe('/agent protocol fuzz', () => {
  it(`${RUNS} seeded agent frames: no internal_error, no crash, the channel stays usable`, async () => {
    // The agent's own credential, as it would read it from its environment.
    const r = await api(world.s, 'POST', '/api/sessions', {
      token: world.token,
      body: { orgId: world.w.orgId, projectName: world.w.projectName, agent: 'script', command: 'printf "CRED<%s>\\n" "$SESSION_TOKEN"; exec cat' },
    });
    const id = r.body.id as string;
    const cred = await until(async () => /CRED<(sm_ses_[^>]+)>/.exec((await api(world.s, 'GET', `/api/sessions/${id}/logs`, { token: world.token })).text)?.[1], 'credential');
    const frames: Array<Record<string, any>> = [];
    let closed: number | undefined;
    const connect = async (): Promise<WebSocket> => {
      closed = undefined;
      const sock = new WebSocket(`${world.s.url.replace('http', 'ws')}/agent?token=${encodeURIComponent(cred)}`);
      sock.on('message', (d) => frames.push(JSON.parse(d.toString())));
      sock.on('close', (code) => (closed = code));
      await new Promise<void>((resolve, reject) => {
        sock.once('open', () => resolve());
        sock.once('error', reject);
      });
      return sock;
    };
    let ws = await connect();
    const TYPES = ['message', 'tool_call', 'tool_result', 'status', 'context', 'permission_request', 'ack', 'ping', 'auth', 'prompt', 'Message', ''];
    const frame = fc.record(
      {
        type: fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...TYPES) }, { weight: 1, arbitrary: junk() }),
        role: fc.oneof(fc.constantFrom('assistant', 'user', 'system', 'tool', 'root'), junk()),
        content: junk(),
        id: fc.oneof(fc.constantFrom('call-1', 'x'.repeat(129), '../x', 'a b'), junk()),
        name: junk(),
        args: fc.oneof(junk(), fc.constant(DEEP)),
        callId: junk(),
        output: fc.oneof(junk(), fc.constant(DEEP)),
        isError: junk(),
        state: fc.oneof(fc.constantFrom('thinking', 'done', 'Done', 'x'.repeat(70)), junk()),
        detail: junk(),
        patch: fc.oneof(fc.dictionary(fc.string({ maxLength: 8 }), junk(), { maxKeys: 4 }), fc.constant({ d: DEEP }), fc.constant({ big: 'x'.repeat(70_000) }), junk()),
        requestId: junk(),
        toolCall: junk(),
        options: junk(),
        token: junk(),
        ref: fc.oneof(fc.string(), fc.integer(), junk()),
      },
      { requiredKeys: [] },
    );
    const text = fc.oneof({ weight: 6, arbitrary: frame.map((f) => JSON.stringify(f)) }, { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) }, { weight: 1, arbitrary: fc.json({ maxDepth: 3 }) });
    const problems: string[] = [];
    let n = 0;
    await fc.assert(
      fc.asyncProperty(text, async (marked) => {
        const i = n++;
        const from = frames.length;
        ws.send(splice(marked));
        ws.send(JSON.stringify({ type: 'ping', ref: `probe-${i}` }));
        const ok = await until(() => closed !== undefined || frames.slice(from).some((f) => f.type === 'pong' && f.ref === `probe-${i}`), `agent pong ${i}`, 10_000, 2).catch(() => false);
        if (!ok || closed !== undefined) {
          problems.push(`channel ${closed !== undefined ? `closed ${closed}` : 'hung'} after ${marked.slice(0, 200)}`);
          if (closed === undefined) ws.terminate();
          ws = await connect();
        }
        // `stored`/error answers to a frame may arrive after the pong (storage is async): looked at once at the end.
        return true;
      }),
      { seed: SEED + 1, numRuns: RUNS },
    );
    await new Promise((res) => setTimeout(res, 300));
    for (const f of frames) if (f.type === 'error' && f.code === 'internal_error') problems.push(`internal_error: ${JSON.stringify(f).slice(0, 200)}`);
    const logged = world.s.output.filter((l) => l.includes('agent frame failed')).map((l) => l.slice(0, 300));
    console.log(`fuzz /agent: ${n} frames (seed ${SEED + 1}), ${problems.length} problems`, logged.slice(0, 5));
    ws.close();
    expect(problems.slice(0, 20)).toEqual([]);
    expect(await serverAlive()).toBe(true);
    expect((await api(world.s, 'GET', `/api/sessions/${id}`, { token: world.token })).body.status).toBe('running');
  }, 120_000);
});

describe('planner document fuzz', () => {
  it(`${RUNS} seeded documents and card patches: 200 or 4xx, never 500; what was accepted reads back`, async () => {
    const w = world.w;
    const base = `/api/planner/${w.orgId}/${w.projectName}`;
    const name = fc.oneof({ weight: 4, arbitrary: fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,10}$/) }, { weight: 1, arbitrary: junk() });
    const criterion = fc.record({ id: name, text: fc.oneof(fc.string({ maxLength: 30 }), junk()), done: fc.oneof(fc.boolean(), junk()), extra: junk() }, { requiredKeys: [] });
    const log = fc.record({ at: fc.oneof(fc.date({ noInvalidDate: true }).map((d) => d.toISOString()), junk()), message: fc.oneof(fc.string({ maxLength: 30 }), junk()), author: junk() }, { requiredKeys: [] });
    const card = fc.record(
      {
        id: name,
        title: fc.oneof(fc.string({ minLength: 1, maxLength: 30 }), junk()),
        description: junk(),
        status: fc.oneof(fc.constantFrom('todo', 'doing', 'done'), junk()),
        criteria: fc.oneof(fc.array(criterion, { maxLength: 3 }), junk()),
        logs: fc.oneof(fc.array(log, { maxLength: 3 }), junk()),
        extra: junk(),
      },
      { requiredKeys: [] },
    );
    const doc = fc.oneof(
      { weight: 5, arbitrary: fc.record({ cards: fc.oneof(fc.array(card, { maxLength: 4 }), junk()), version: junk(), updatedAt: junk(), extra: junk() }, { requiredKeys: [] }) },
      { weight: 1, arbitrary: junk() },
    );
    const op = fc.oneof(
      { weight: 3, arbitrary: doc.map((d) => ({ method: 'PUT', p: base, body: d })) },
      { weight: 2, arbitrary: fc.tuple(name, card).map(([id, c]) => ({ method: 'PATCH', p: `${base}/cards/${encodeURIComponent(String(id))}`, body: c })) },
      { weight: 1, arbitrary: card.map((c) => ({ method: 'POST', p: `${base}/cards`, body: c })) },
      { weight: 1, arbitrary: fc.tuple(name, log).map(([id, l]) => ({ method: 'POST', p: `${base}/cards/${encodeURIComponent(String(id))}/logs`, body: l })) },
      { weight: 1, arbitrary: junk().map((v) => ({ method: 'PATCH', p: `${base}/cards/${w.cardId}`, body: JSON.parse(`{"__proto__":${JSON.stringify(v) ?? 'null'},"constructor":{"prototype":${JSON.stringify(v) ?? 'null'}}}`) })) },
      { weight: 1, arbitrary: fc.tuple(name, name, junk()).map(([id, ac, done]) => ({ method: 'PATCH', p: `${base}/cards/${encodeURIComponent(String(id))}/criteria/${encodeURIComponent(String(ac))}`, body: { done } })) },
    );
    const problems: string[] = [];
    let n = 0;
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(op, async ({ method, p, body }) => {
        n++;
        const marked = JSON.stringify(body) ?? 'null';
        const text = splice(marked);
        const res = await request(world.s, method, p, { token: world.token, body: text });
        if (res.status >= 500 || res.status <= 0) {
          problems.push(`${method} ${p} ${marked.slice(0, 200)} → ${res.status} ${res.text.slice(0, 120)}`);
          return true;
        }
        if (res.status === 200 && method === 'PUT') {
          accepted++;
          const put = JSON.parse(res.text);
          const got = await request(world.s, 'GET', base, { token: world.token });
          if (got.text !== res.text && JSON.stringify(JSON.parse(got.text)) !== JSON.stringify(put)) problems.push(`read-back differs after PUT ${marked.slice(0, 200)}`);
        }
        return true;
      }),
      { seed: SEED + 2, numRuns: RUNS },
    );
    console.log(`fuzz planner: ${n} operations (seed ${SEED + 2}), ${accepted} documents accepted, ${problems.length} problems`);
    expect(problems.slice(0, 20)).toEqual([]);
    // The file on disk is still a valid planner.
    const final = await request(world.s, 'GET', base, { token: world.token });
    expect(final.status).toBe(200);
    expect(await serverAlive()).toBe(true);
  }, 120_000);
});
