/**
 * Soak: a viewer that never reads while its session floods.
 *
 *   node dist/bench/soak/never-reader.js [--flood-s 20] [--rate-mbps 8] [--viewers 4] [--backpressure 4194304] [--rounds 2]
 *
 * Two floods of `--flood-s` seconds each (a pty printing `--rate-mbps` MB/s; 0 = as fast as
 * `yes` goes, which measures the bench's own JSON parsing more than the server), watched by `--viewers` reading
 * viewers: first alone (reference), then with one more viewer whose socket is paused (it
 * never reads). The two alternate for `--rounds` rounds after a warm-up flood, and medians
 * are reported, so a neighbour's load does not read as an effect. Reported: each phase's server RSS peak, the reading viewers' throughput and
 * its ratio between the phases, every byte accounted for by offset, and how the never-reader
 * ended (close code 4008 expected, with how much it got before).
 */
import WebSocket from 'ws';
import { api, args, report, sleep, startServer, stats, token } from './lib.js';

const o = args({ floodS: 20, rateMbps: 8, viewers: 4, backpressure: 4 * 1024 * 1024, rounds: 2 });

interface Viewer {
  ws: WebSocket;
  bytes: number;
  holes: number;
  end: number;
  firstAt: number;
  lastAt: number;
  exited: boolean;
  closed: number | undefined;
}

function viewer(wsUrl: string, tok: string, sessionId: string): Promise<Viewer> {
  const v: Viewer = { ws: new WebSocket(`${wsUrl}?token=${encodeURIComponent(tok)}`, { perMessageDeflate: false }), bytes: 0, holes: 0, end: -1, firstAt: 0, lastAt: 0, exited: false, closed: undefined };
  v.ws.on('message', (d) => {
    const f = JSON.parse(d.toString()) as { type: string; offset?: number; data?: string };
    if (f.type === 'exit') v.exited = true;
    if (f.type !== 'output') return;
    const n = Buffer.byteLength(f.data!);
    if (v.end >= 0 && f.offset !== v.end) v.holes++;
    v.end = f.offset! + n;
    v.bytes += n;
    const now = performance.now();
    if (!v.firstAt) v.firstAt = now;
    v.lastAt = now;
  });
  v.ws.on('close', (code) => (v.closed = code));
  return new Promise((resolve, reject) => {
    v.ws.once('open', () => {
      v.ws.send(JSON.stringify({ type: 'attach', sessionId }));
      resolve(v);
    });
    v.ws.once('error', reject);
  });
}

/** The flood: paced by perl at --rate-mbps (100-byte lines in 64 KiB writes), or `yes` at full speed. */
function floodCommand(): string {
  if (!o.rateMbps) return `timeout ${o.floodS} yes soak-flood-line-0123456789-abcdefghijklmnopqrstuvwxyz`;
  const rate = Math.round(o.rateMbps * 1e6);
  return `perl -MTime::HiRes=time -e '$|=1; my $c = (("x" x 99) . "\\n") x 655; my $t0 = time; my $n = 0; while (time - $t0 < ${o.floodS}) { print $c; $n += length $c; my $a = $n / ${rate} - (time - $t0); select(undef, undef, undef, $a) if $a > 0 }'`;
}

async function phase(s: Awaited<ReturnType<typeof startServer>>, tok: string, withNeverReader: boolean) {
  const r = await api(s, tok, 'POST', '/api/sessions', {
    orgId: 'soak',
    projectName: 'flood',
    agent: 'script',
    command: ['bash', '-c', `read go; ${floodCommand()}; echo FLOOD-DONE`],
  });
  const id = r.body.id as string;
  const readers = await Promise.all(Array.from({ length: o.viewers }, () => viewer(s.wsUrl, tok, id)));
  const never = withNeverReader ? await viewer(s.wsUrl, tok, id) : undefined;
  await sleep(300);
  // Stop reading: the server's send buffer for this viewer can only grow.
  if (never) (never.ws as unknown as { _socket: { pause(): void } })._socket.pause();
  const base = stats(s.pid).rssMiB;
  await api(s, tok, 'POST', `/api/sessions/${id}/input`, { data: 'go' });
  let peak = base;
  const deadline = Date.now() + (o.floodS + 30) * 1000;
  while (!readers.every((v) => v.exited) && Date.now() < deadline) {
    await sleep(200);
    peak = Math.max(peak, stats(s.pid).rssMiB);
  }
  const rec = (await api(s, tok, 'GET', `/api/sessions/${id}`)).body;
  let neverResult: Record<string, unknown> | undefined;
  if (never) {
    (never.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    const t0 = Date.now();
    while (never.closed === undefined && Date.now() - t0 < 30_000) await sleep(100);
    neverResult = { closeCode: never.closed ?? null, bytesBeforeDrop: never.bytes, holes: never.holes, resumeFrom: never.end };
  }
  const mbps = readers.map((v) => (v.bytes / 1e6 / Math.max(0.001, (v.lastAt - v.firstAt) / 1000)));
  for (const v of readers) v.ws.close();
  return {
    outputBytes: rec.outputOffset as number,
    readersComplete: readers.every((v) => v.end === rec.outputOffset && v.holes === 0),
    readerMBps: Math.round((mbps.reduce((a, b) => a + b, 0) / mbps.length) * 100) / 100,
    rssBaseMiB: base,
    rssPeakMiB: peak,
    neverReader: neverResult,
  };
}

async function main(): Promise<void> {
  const s = await startServer({ WS_MAX_BACKPRESSURE: String(o.backpressure) });
  const tok = await token();
  await phase(s, tok, false);
  const refs: Array<Awaited<ReturnType<typeof phase>>> = [];
  const withs: Array<Awaited<ReturnType<typeof phase>>> = [];
  for (let i = 0; i < o.rounds; i++) {
    refs.push(await phase(s, tok, false));
    withs.push(await phase(s, tok, true));
  }
  const dropped = (await api(s, tok, 'GET', '/api/metrics')).body.ws.slowViewersDropped;
  await s.stop();
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
  const refMBps = median(refs.map((r) => r.readerMBps));
  const withMBps = median(withs.map((r) => r.readerMBps));
  report('never-reader', {
    floodS: o.floodS,
    rateMbps: o.rateMbps,
    viewers: o.viewers,
    backpressureBytes: o.backpressure,
    rounds: o.rounds,
    referenceMBps: refMBps,
    withNeverReaderMBps: withMBps,
    throughputRatio: Math.round((withMBps / refMBps) * 100) / 100,
    rssPeakOverBaseMiB: { reference: Math.max(...refs.map((r) => Math.round((r.rssPeakMiB - r.rssBaseMiB) * 10) / 10)), withNeverReader: Math.max(...withs.map((r) => Math.round((r.rssPeakMiB - r.rssBaseMiB) * 10) / 10)) },
    readersCompleteEveryRound: [...refs, ...withs].every((r) => r.readersComplete),
    neverReaders: withs.map((r) => r.neverReader),
    slowViewersDropped: dropped,
    rounds_: { reference: refs, withNeverReader: withs },
  });
}

main().catch((err) => {
  process.stderr.write(`never-reader: ${(err as Error).stack}\n`);
  process.exit(1);
});
