/**
 * echo-latency: M sessions running `cat` (terminal echo off, so each line comes back once,
 * from cat), one viewer each; every viewer sends P sequential lines and times each until
 * its line is back. p50/p95/p99/max over all pings, pings per second over the whole phase.
 */
import { availableParallelism } from 'node:os';
import { connectWs } from '../adapters/project.js';
import type { ServerUnderTest, StartSide, Viewer } from '../adapters/types.js';
import { mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { baseEnv, PTY_ECHO_PROBE, WS_ECHO_PROBE } from '../lib/paths.js';
import { Probe, spawnNode, stopChild } from '../lib/procs.js';
import { fmt, pool, ratio, roundsRange, waitFor, withServer, type Ctx, type ScenarioDef, type SideRun } from '../lib/scenario.js';
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

/**
 * The latency limit: limits/ws-echo.ts answers every line at once from memory (no pty, no
 * agent), driven by the same code, so its p99 is what the driver and the machine add alone.
 */
const startWsEcho: StartSide = async ({ dir }) => {
  const child = await spawnNode(WS_ECHO_PROBE, [], { cwd: dir, env: baseEnv(dir), readyPrefix: 'ws-echo ready at ' });
  const wsUrl = /ready at (\S+)/.exec(child.readyLine)![1]!;
  let n = 0;
  const none = () => Promise.reject(new Error('ws-echo has no planner'));
  const srv: ServerUnderTest = {
    side: 'baseline',
    child,
    url: wsUrl.replace(/^ws/, 'http'),
    token: '',
    createSession: async () => `00000000-0000-4000-8000-${String(++n).padStart(12, '0')}`,
    deleteSession: async () => {},
    connect: () => connectWs(wsUrl),
    seedPlanner: none,
    cardUrl: () => '',
  };
  return srv;
};

/** The terminal's own round trip: the same pings on ptys running `cat`, no server, no network. */
async function ptyEcho(ctx: Ctx): Promise<SideRun> {
  const { echoSessions, echoPings, echoWarmup } = ctx.sizes;
  const dir = mkdtempSync(path.join(ctx.tmp, 'ptyecho-'));
  const probe = new Probe(undefined);
  try {
    const child = await spawnNode(PTY_ECHO_PROBE, [String(echoSessions), String(echoPings), String(echoWarmup)], {
      cwd: dir,
      env: baseEnv(dir),
      readyPrefix: 'pty-echo result ',
      timeoutMs: 120_000,
    });
    const stop = await stopChild(child);
    const metrics = JSON.parse(child.readyLine.slice('pty-echo result '.length)) as Record<string, number>;
    return { metrics, load: probe.finish(), cleanup: { stopMs: stop.ms, exit: stop.signal ?? String(stop.code), leftovers: stop.leftovers } };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export const echoLatency: ScenarioDef = {
  name: 'echo-latency',
  title: 'Interactive echo latency',
  sizes: (s) => ({ sessions: s.echoSessions, pings: s.echoPings, warmup: s.echoWarmup }),
  limits: () => ({ 'pty-echo': ptyEcho, 'ws-echo': (ctx: Ctx): Promise<SideRun> => echoRun(ctx, startWsEcho) }),
  side: (ctx, start) => echoRun(ctx, start),
  summarize: summarizeEcho,
};

function echoRun(ctx: Ctx, start: StartSide): Promise<SideRun> {
  return withServer(ctx, start, ctx.sizes.echoSessions + 10, async (srv, probe) => {
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
    });
}

function summarizeEcho(r: Parameters<ScenarioDef['summarize']>[0]): ReturnType<ScenarioDef['summarize']> {
  const p = r.project?.median ?? {};
  // The driver and the machine alone (no pty, no agent): the floor under any server's tail.
  const floor = r.limits?.['ws-echo']?.median ?? {};
  // The terminal and `cat` alone (no server, no network): the floor under the pty's share.
  const ptyFloor = r.limits?.['pty-echo']?.median ?? {};
  const b = r.baseline?.median ?? {};
  const ratios = { p99: ratio(p.p99Ms, b.p99Ms), p50: ratio(p.p50Ms, b.p50Ms), pingsPerS: ratio(p.pingsPerS, b.pingsPerS) };
  const okP99 = Number.isFinite(ratios.p99) ? ratios.p99 <= 0.5 : null;
  const okRate = Number.isFinite(ratios.pingsPerS) ? ratios.pingsPerS >= 2 : null;
  // Measured in the baseline's runs: what any server leaves to the rest of the machine.
  const ceiling = b.ceilingPingsPerS ?? p.ceilingPingsPerS ?? NaN;
  const wanted = 2 * (b.pingsPerS ?? NaN);
  const beyond = Number.isFinite(ceiling) && wanted > ceiling ? `; 2× baseline = ${fmt(wanted, 0)}/s is above this machine's ceiling of ${fmt(ceiling, 0)}/s` : '';
  const targets = [
    {
      figure: 'echo p99',
      target: '≤ 1/2 of baseline',
      value: `${fmt(p.p99Ms, 2)} ms (${fmt(ratios.p99, 3)}×${roundsRange(r, 'p99Ms', 3)})${Number.isFinite(ptyFloor.p99Ms) ? `; the ptys and \`cat\` alone, no server or network: p99 ${fmt(ptyFloor.p99Ms, 2)} ms` : ''}${Number.isFinite(floor.p99Ms) ? `; the driver and network alone, no pty: p99 ${fmt(floor.p99Ms, 2)} ms` : ''}`,
      met: okP99,
    },
    { figure: 'echo pings/s', target: '≥ 2× baseline', value: `${fmt(p.pingsPerS, 0)} /s (${fmt(ratios.pingsPerS, 2)}×${roundsRange(r, 'pingsPerS')})${beyond}`, met: okRate },
  ];
  const cell = (m: typeof p) => `p50 ${fmt(m.p50Ms, 2)} · p95 ${fmt(m.p95Ms, 2)} · p99 ${fmt(m.p99Ms, 2)} · max ${fmt(m.maxMs, 1)} ms · ${fmt(m.pingsPerS, 0)} pings/s`;
  const verdict = okP99 === null || okRate === null ? 'n/a' : `${okP99 ? 'met' : 'missed'} / ${okRate ? 'met' : 'missed'}`;
  const limits: string[] = [];
  if (Number.isFinite(ceiling)) limits.push(`ceiling ${fmt(ceiling, 0)} pings/s (server at zero cost: ${fmt(b.outsideCpuMsPerPing ?? p.outsideCpuMsPerPing, 3)} ms CPU per ping outside it)`);
  if (Number.isFinite(ptyFloor.p99Ms)) limits.push(`ptys + cat alone (no server): p50 ${fmt(ptyFloor.p50Ms, 2)} · p99 ${fmt(ptyFloor.p99Ms, 2)} ms · ${fmt(ptyFloor.pingsPerS, 0)} pings/s`);
  if (Number.isFinite(floor.p99Ms)) limits.push(`driver + uWS echo from memory (no pty): p50 ${fmt(floor.p50Ms, 2)} · p99 ${fmt(floor.p99Ms, 2)} ms · ${fmt(floor.pingsPerS, 0)} pings/s`);
  const limit = limits.length ? limits.join(' · ') : '—';
  const row = `| echo-latency | ${cell(p)} | ${cell(b)} | ${limit} | p99 ${fmt(ratios.p99, 3)}× · pings/s ${fmt(ratios.pingsPerS, 2)}× | ${verdict} |`;
  return { ratios, targets, row };
}
