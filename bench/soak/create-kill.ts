/**
 * Soak: session create/kill cycles, watching the server for growth.
 *
 *   node dist/bench/soak/create-kill.js [--cycles 10000] [--concurrency 4] [--sample-every 1000]
 *
 * Each cycle creates a `bash` session (a pty, an actor, a port, a record, a credential) and
 * deletes it. After a warm-up, every `--sample-every` cycles the server's RSS, main-thread
 * heap (GET /api/metrics), open descriptors, threads and children are sampled; the report
 * gives each one's least-squares slope per 1,000 cycles, the failures, and what is left
 * at the end (children, ptmx descriptors).
 */
import { readdirSync, readlinkSync } from 'node:fs';
import { api, args, report, sleep, slope, startServer, stats, token } from './lib.js';

/** `--kept N`: ENDED_SESSIONS_KEPT for the server (0: its default), so the kept set fills within the run. */
const o = args({ cycles: 10_000, concurrency: 4, sampleEvery: 1000, warmup: 200, kept: 0 });

function ptmx(pid: number): number {
  let n = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`) === '/dev/ptmx') n++;
    } catch {
      /* closed meanwhile */
    }
  }
  return n;
}

async function main(): Promise<void> {
  const s = await startServer({ MAX_CONCURRENT_SESSIONS: String(o.concurrency * 4), ...(o.kept > 0 ? { ENDED_SESSIONS_KEPT: String(o.kept) } : {}) });
  const tok = await token();
  let done = 0;
  let failures = 0;
  const firstErrors: string[] = [];
  const samples: Array<{ cycles: number; rssMiB: number; heapMiB: number; fds: number; threads: number; children: number }> = [];
  const sample = async (cycles: number) => {
    // Let exits settle so a sample counts only what stays.
    await sleep(500);
    const m = (await api(s, tok, 'GET', '/api/metrics')).body;
    const st = stats(s.pid);
    samples.push({ cycles, rssMiB: st.rssMiB, heapMiB: Math.round((m.memory.heapUsed / 1048576) * 10) / 10, fds: st.fds, threads: st.threads, children: st.children });
  };
  const cycle = async () => {
    const c = await api(s, tok, 'POST', '/api/sessions', { orgId: 'soak', projectName: `cycles-${done % 8}`, agent: 'bash' });
    if (c.status !== 201) {
      failures++;
      if (firstErrors.length < 5) firstErrors.push(`create ${c.status} ${JSON.stringify(c.body).slice(0, 120)}`);
      return;
    }
    const d = await api(s, tok, 'DELETE', `/api/sessions/${c.body.id}`);
    if (d.body?.status !== 'killed') {
      failures++;
      if (firstErrors.length < 5) firstErrors.push(`delete ${d.status} ${d.body?.status}`);
    }
  };
  const runCycles = async (n: number) => {
    let started = 0;
    await Promise.all(
      Array.from({ length: o.concurrency }, async () => {
        while (started < n) {
          started++;
          await cycle();
          done++;
        }
      }),
    );
  };
  const t0 = Date.now();
  await runCycles(o.warmup);
  done = 0;
  await sample(0);
  for (let at = o.sampleEvery; at <= o.cycles; at += o.sampleEvery) {
    await runCycles(o.sampleEvery);
    await sample(at);
    process.stderr.write(`create-kill: ${at}/${o.cycles} cycles, RSS ${samples.at(-1)!.rssMiB} MiB, fds ${samples.at(-1)!.fds}\n`);
  }
  const seconds = (Date.now() - t0) / 1000;
  await sleep(2000);
  const endStats = stats(s.pid);
  const endPtmx = ptmx(s.pid);
  await s.stop();
  const xs = samples.map((x) => x.cycles / 1000);
  const per1k = (key: 'rssMiB' | 'heapMiB' | 'fds' | 'threads' | 'children') => Math.round(slope(xs, samples.map((x) => x[key])) * 100) / 100;
  report('create-kill', {
    cycles: o.cycles,
    concurrency: o.concurrency,
    seconds: Math.round(seconds),
    cyclesPerS: Math.round((o.cycles + o.warmup) / seconds),
    failures,
    firstErrors,
    slopePer1k: { rssMiB: per1k('rssMiB'), heapMiB: per1k('heapMiB'), fds: per1k('fds'), threads: per1k('threads'), children: per1k('children') },
    first: samples[0],
    last: samples.at(-1),
    end: { children: endStats.children, ptmxFds: endPtmx, fds: endStats.fds, threads: endStats.threads },
    samples,
  });
}

main().catch((err) => {
  process.stderr.write(`create-kill: ${(err as Error).stack}\n`);
  process.exit(1);
});
