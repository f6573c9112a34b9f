/**
 * echo-latency: M sessions running `cat` (terminal echo off, so each line comes back once,
 * from cat), one viewer each; every viewer sends P sequential lines and times each until
 * its line is back. p50/p95/p99/max over all pings, pings per second over the whole phase.
 */
import { availableParallelism } from 'node:os';
import type { Viewer } from '../adapters/types.js';
import { fmt, pool, ratio, waitFor, withServer, type ScenarioDef } from '../lib/scenario.js';
import { percentile, sortNumbers } from '../lib/stats.js';

/** One ping waits at most this long for its line. */
const PING_TIMEOUT_MS = 10_000;
const READY_TIMEOUT_MS = 20_000;
/** `cat` on a pty with echo off; READY once the terminal is set up. */
const ECHO_COMMAND = ['sh', '-c', "stty -echo; printf 'READY\\n'; exec cat"];

interface Pinger {
  viewer: Viewer;
  id: string;
  buf: string;
  wake: (() => void) | undefined;
}

export const echoLatency: ScenarioDef = {
  name: 'echo-latency',
  title: 'Interactive echo latency',
  sizes: (s) => ({ sessions: s.echoSessions, pings: s.echoPings, warmup: s.echoWarmup }),
  side: (ctx, start) =>
    withServer(ctx, start, ctx.sizes.echoSessions + 10, async (srv, probe) => {
      const { echoSessions: m, echoPings, echoWarmup } = ctx.sizes;
      const pingers: Pinger[] = [];
      const errors: string[] = [];
      await pool(m, 10, async () => {
        const id = await srv.createSession(ECHO_COMMAND);
        const viewer = await srv.connect();
        const p: Pinger = { viewer, id, buf: '', wake: undefined };
        viewer.onOutput = (_sid, _off, data) => {
          p.buf += data;
          if (p.buf.length > 1 << 16) p.buf = p.buf.slice(-4096);
          p.wake?.();
        };
        pingers.push(p);
        await viewer.attach(id);
      });
      for (const p of pingers) {
        if (!(await waitFor(() => p.buf.includes('READY\r\n'), READY_TIMEOUT_MS))) throw new Error(`session ${p.id} did not print READY`);
        p.buf = '';
      }
      const lat: number[] = [];
      let timeouts = 0;
      const ping = async (p: Pinger, k: number, tag: string): Promise<number | undefined> => {
        const line = `${tag}${k}`;
        const want = `${line}\r\n`;
        const t = performance.now();
        p.viewer.input(p.id, `${line}\r`);
        const deadline = t + PING_TIMEOUT_MS;
        while (!p.buf.includes(want)) {
          if (performance.now() > deadline) {
            timeouts++;
            p.buf = '';
            return undefined;
          }
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, 50);
            p.wake = () => {
              clearTimeout(timer);
              resolve();
            };
          });
          p.wake = undefined;
        }
        const ms = performance.now() - t;
        p.buf = p.buf.slice(p.buf.indexOf(want) + want.length);
        return ms;
      };
      await Promise.all(pingers.map(async (p, i) => {
        for (let k = 0; k < echoWarmup; k++) await ping(p, k, `w${i}-`);
      }));
      probe.mark();
      const t0 = performance.now();
      await Promise.all(pingers.map(async (p, i) => {
        for (let k = 0; k < echoPings; k++) {
          const ms = await ping(p, k, `p${i}-`);
          if (ms !== undefined) lat.push(ms);
        }
      }));
      const wall = (performance.now() - t0) / 1000;
      const cpu = probe.since();
      const where = probe.breakdown();
      if (timeouts) errors.push(`${timeouts} pings timed out`);
      const sorted = sortNumbers(lat);
      const r3 = (x: number) => Math.round(x * 1000) / 1000;
      return {
        metrics: {
          pings: lat.length,
          timeouts,
          p50Ms: r3(percentile(sorted, 50)),
          p95Ms: r3(percentile(sorted, 95)),
          p99Ms: r3(percentile(sorted, 99)),
          maxMs: r3(sorted[sorted.length - 1] ?? NaN),
          pingsPerS: Math.round(lat.length / wall),
          serverCpuS: Math.round(cpu.serverCpuS * 100) / 100,
          serverMainCpuS: Math.round(cpu.serverMainCpuS * 100) / 100,
          serverCpuMsPerPing: r3((cpu.serverCpuS * 1000) / Math.max(1, lat.length)),
          driverCpuS: Math.round(cpu.driverCpuS * 100) / 100,
          machineCpuS: where.machineCpuS,
          // The ceiling: what every core could do if the server cost nothing, i.e. pings/s
          // bounded by the CPU each ping costs outside the server (driver, cat, the kernel's
          // tty work, the rest of the machine).
          outsideCpuMsPerPing: r3(((where.machineCpuS - cpu.serverCpuS) * 1000) / Math.max(1, lat.length)),
          ceilingPingsPerS: Math.round((lat.length * availableParallelism()) / Math.max(0.01, where.machineCpuS - cpu.serverCpuS)),
          ...Object.fromEntries(Object.entries(where.threads).map(([k, v]) => [`threadCpuS:${k}`, v])),
        },
        errors,
        after: () => {
          for (const p of pingers) p.viewer.close();
        },
      };
    }),
  summarize(r) {
    const p = r.project?.median ?? {};
    const b = r.baseline?.median ?? {};
    const ratios = { p99: ratio(p.p99Ms, b.p99Ms), p50: ratio(p.p50Ms, b.p50Ms), pingsPerS: ratio(p.pingsPerS, b.pingsPerS) };
    const okP99 = Number.isFinite(ratios.p99) ? ratios.p99 <= 0.5 : null;
    const okRate = Number.isFinite(ratios.pingsPerS) ? ratios.pingsPerS >= 2 : null;
    // Measured in the baseline's runs: what any server leaves to the rest of the machine.
    const ceiling = b.ceilingPingsPerS ?? p.ceilingPingsPerS ?? NaN;
    const wanted = 2 * (b.pingsPerS ?? NaN);
    const beyond = Number.isFinite(ceiling) && wanted > ceiling ? `; 2× baseline = ${fmt(wanted, 0)}/s is above this machine's ceiling of ${fmt(ceiling, 0)}/s` : '';
    const targets = [
      { figure: 'echo p99', target: '≤ 1/2 of baseline', value: `${fmt(p.p99Ms, 2)} ms (${fmt(ratios.p99, 3)}×)`, met: okP99 },
      { figure: 'echo pings/s', target: '≥ 2× baseline', value: `${fmt(p.pingsPerS, 0)} /s (${fmt(ratios.pingsPerS, 2)}×)${beyond}`, met: okRate },
    ];
    const cell = (m: typeof p) => `p50 ${fmt(m.p50Ms, 2)} · p95 ${fmt(m.p95Ms, 2)} · p99 ${fmt(m.p99Ms, 2)} · max ${fmt(m.maxMs, 1)} ms · ${fmt(m.pingsPerS, 0)} pings/s`;
    const verdict = okP99 === null || okRate === null ? 'n/a' : `${okP99 ? 'met' : 'missed'} / ${okRate ? 'met' : 'missed'}`;
    const limit = Number.isFinite(ceiling) ? `ceiling ${fmt(ceiling, 0)} pings/s (server at zero cost: ${fmt(b.outsideCpuMsPerPing ?? p.outsideCpuMsPerPing, 3)} ms CPU per ping outside it)` : '—';
    const row = `| echo-latency | ${cell(p)} | ${cell(b)} | ${limit} | p99 ${fmt(ratios.p99, 3)}× · pings/s ${fmt(ratios.pingsPerS, 2)}× | ${verdict} |`;
    return { ratios, targets, row };
  },
};
