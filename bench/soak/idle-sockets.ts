/**
 * Soak: many idle editor sockets held while sessions stream.
 *
 *   node dist/bench/soak/idle-sockets.js [--sockets 19000] [--clients 4] [--hold-s 300]
 *     [--sessions 50] [--lines-per-s 20] [--connect-concurrency 100]
 *
 * `--sockets` authenticated /ws sockets (each subscribed to its org topic unless
 * `--subscribe 0`) are opened by
 * `--clients` child processes (bench/soak/socket-client.ts) and held for `--hold-s`
 * seconds while `--sessions` agents each print `--lines-per-s` lines a second to one
 * attached viewer. Reported: sockets opened and failed, server RSS before/after and per
 * socket, descriptors, every socket's ping answered at the end, unexpected closes, and the
 * viewers' output (lines received, offset holes, drops). Loopback only; bounded.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import path from 'node:path';
import WebSocket from 'ws';
import { api, args, own, report, ROOT, sleep, startServer, stats, token } from './lib.js';

const o = args({ sockets: 19_000, clients: 4, holdS: 300, sessions: 50, linesPerS: 20, connectConcurrency: 100, subscribe: 1 });
/** Every this many seconds of the hold, the server is sampled. */
const SAMPLE_EVERY_S = 30;

interface ClientProc {
  send(cmd: string): void;
  next(type: string): Promise<any>;
  exited: Promise<void>;
}

function client(wsUrl: string, tok: string, count: number): ClientProc {
  const script = path.join(ROOT, 'dist/bench/soak/socket-client.js');
  const p = own(spawn(process.execPath, [script, wsUrl, tok, String(count), String(o.connectConcurrency), String(o.subscribe)], { stdio: ['pipe', 'pipe', 'inherit'] }));
  const queue: any[] = [];
  const waiters: Array<{ type: string; resolve: (m: any) => void }> = [];
  createInterface({ input: p.stdout! }).on('line', (line) => {
    const m = JSON.parse(line) as { type: string };
    const w = waiters.find((x) => x.type === m.type);
    if (w) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(m);
    } else queue.push(m);
  });
  return {
    send: (cmd) => p.stdin!.write(cmd + '\n'),
    next: (type) => {
      const i = queue.findIndex((m) => m.type === type);
      if (i >= 0) return Promise.resolve(queue.splice(i, 1)[0]);
      return new Promise((resolve) => waiters.push({ type, resolve }));
    },
    exited: new Promise((res) => p.once('exit', () => res())),
  };
}

async function main(): Promise<void> {
  const s = await startServer({ MAX_CONCURRENT_SESSIONS: String(o.sessions + 10) });
  const tok = await token();
  // Streaming sessions, each with one viewer that checks offsets.
  const period = (1 / o.linesPerS).toFixed(4);
  const viewers: Array<{ ws: WebSocket; lines: number; holes: number; end: number; closed: number | undefined }> = [];
  for (let i = 0; i < o.sessions; i++) {
    const r = await api(s, tok, 'POST', '/api/sessions', {
      orgId: 'soak',
      projectName: `stream-${i % 10}`,
      agent: 'script',
      command: ['perl', '-e', `$|=1; $i=0; while (1) { printf "stream ${i} %d %.3f\\n", ++$i, time; select(undef, undef, undef, ${period}) }`],
    });
    if (r.status !== 201) throw new Error(`session ${i}: ${r.status} ${JSON.stringify(r.body)}`);
    const v = { ws: new WebSocket(`${s.wsUrl}?token=${encodeURIComponent(tok)}`), lines: 0, holes: 0, end: -1, closed: undefined as number | undefined };
    v.ws.on('message', (d) => {
      const f = JSON.parse(d.toString()) as { type: string; offset?: number; data?: string };
      if (f.type !== 'output') return;
      if (v.end >= 0 && f.offset !== v.end) v.holes++;
      v.end = f.offset! + Buffer.byteLength(f.data!);
      v.lines += (f.data!.match(/\n/g) ?? []).length;
    });
    v.ws.on('close', (code) => (v.closed = code));
    await new Promise<void>((res, rej) => {
      v.ws.once('open', () => res());
      v.ws.once('error', rej);
    });
    v.ws.send(JSON.stringify({ type: 'attach', sessionId: r.body.id }));
    viewers.push(v);
  }
  await sleep(2000);
  const before = stats(s.pid);
  const t0 = Date.now();
  const per = Math.ceil(o.sockets / o.clients);
  const clients = Array.from({ length: o.clients }, (_, i) => client(s.wsUrl, tok, Math.min(per, o.sockets - i * per)));
  const ready = await Promise.all(clients.map((c) => c.next('ready')));
  const connectS = (Date.now() - t0) / 1000;
  const opened = ready.reduce((n, r) => n + r.opened, 0);
  const failed = ready.reduce((n, r) => n + r.failed, 0);
  const connected = stats(s.pid);
  const linesAtStart = viewers.reduce((n, v) => n + v.lines, 0);
  const samples: Array<{ t: number } & ReturnType<typeof stats>> = [{ t: 0, ...connected }];
  for (let t = SAMPLE_EVERY_S; t <= o.holdS; t += SAMPLE_EVERY_S) {
    await sleep(SAMPLE_EVERY_S * 1000);
    samples.push({ t, ...stats(s.pid) });
  }
  if (o.holdS % SAMPLE_EVERY_S) await sleep((o.holdS % SAMPLE_EVERY_S) * 1000);
  for (const c of clients) c.send('check');
  const checked = await Promise.all(clients.map((c) => c.next('checked')));
  const end = stats(s.pid);
  const linesHeld = viewers.reduce((n, v) => n + v.lines, 0) - linesAtStart;
  const metrics = (await api(s, tok, 'GET', '/api/metrics')).body;
  const viewersDropped = viewers.filter((v) => v.closed !== undefined).length;
  for (const c of clients) c.send('close');
  await Promise.all(clients.map((c) => c.exited));
  for (const v of viewers) v.ws.close();
  await s.stop();
  report('idle-sockets', {
    sockets: o.sockets,
    clients: o.clients,
    holdS: o.holdS,
    sessions: o.sessions,
    subscribed: o.subscribe === 1,
    opened,
    failed,
    connectS: Math.round(connectS * 10) / 10,
    connectPerS: Math.round(opened / connectS),
    pingsOk: checked.reduce((n, c) => n + c.ok, 0),
    pingsFailed: checked.reduce((n, c) => n + c.failed, 0),
    unexpectedCloses: checked.reduce((n, c) => n + c.closed, 0),
    serverRssBeforeMiB: before.rssMiB,
    serverRssConnectedMiB: connected.rssMiB,
    serverRssEndMiB: end.rssMiB,
    rssPerSocketKiB: Math.round(((connected.rssMiB - before.rssMiB) * 1024 * 100) / Math.max(1, opened)) / 100,
    serverFds: { before: before.fds, connected: connected.fds, end: end.fds },
    serverThreads: end.threads,
    streamLinesDuringHold: linesHeld,
    streamLinesExpected: Math.round(o.sessions * o.linesPerS * (o.holdS + connectS)),
    viewerHoles: viewers.reduce((n, v) => n + v.holes, 0),
    viewersDropped,
    wsConnectionsReported: metrics?.ws?.connections ?? null,
    samples,
  });
}

main().catch((err) => {
  process.stderr.write(`idle-sockets: ${(err as Error).stack}\n`);
  process.exit(1);
});
