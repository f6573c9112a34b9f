/**
 * spawn-rate: T one-off sessions (`cat`), at most C at once; each is created (answer once
 * the pty runs) and then deleted (answer once the agent has exited). Sessions per second
 * over the whole phase, create and delete latency percentiles.
 */
import { availableParallelism } from 'node:os';
import { fmt, pool, ratio, roundsRange, withServer, type ScenarioDef } from '../lib/scenario.js';
import { percentile, sortNumbers } from '../lib/stats.js';

/** Warm-up sessions before the clock starts, in multiples of the concurrency. */
const SPAWN_WARMUP_ROUNDS = 3;

export const spawnRate: ScenarioDef = {
  name: 'spawn-rate',
  title: 'Spawn and kill rate',
  sizes: (s) => ({ sessions: s.spawnSessions, concurrency: s.spawnConcurrency }),
  side: (ctx, start) =>
    withServer(ctx, start, ctx.sizes.spawnConcurrency + 10, async (srv, probe) => {
      const { spawnSessions: n, spawnConcurrency: c } = ctx.sizes;
      // Warm-up, as echo's: the workspace exists, lazy paths ran, and both servers run
      // optimized code when the clock starts (a cold start otherwise charges each side its
      // JIT compilation, on the background threads the CPU figures count).
      await pool(SPAWN_WARMUP_ROUNDS * c, c, async () => {
        await srv.deleteSession(await srv.createSession(['cat']));
      });
      const createMs: number[] = [];
      const deleteMs: number[] = [];
      const errors: string[] = [];
      probe.mark();
      const t0 = performance.now();
      await pool(n, c, async () => {
        try {
          const a = performance.now();
          const id = await srv.createSession(['cat']);
          const b = performance.now();
          createMs.push(b - a);
          await srv.deleteSession(id);
          deleteMs.push(performance.now() - b);
        } catch (err) {
          errors.push((err as Error).message);
        }
      });
      const wall = (performance.now() - t0) / 1000;
      const cpu = probe.since();
      const where = probe.breakdown();
      const cs = sortNumbers(createMs);
      const ds = sortNumbers(deleteMs);
      const r2 = (x: number) => Math.round(x * 100) / 100;
      return {
        metrics: {
          sessions: createMs.length,
          errors: errors.length,
          perS: r2(deleteMs.length / wall),
          createP50Ms: r2(percentile(cs, 50)),
          createP99Ms: r2(percentile(cs, 99)),
          deleteP50Ms: r2(percentile(ds, 50)),
          deleteP99Ms: r2(percentile(ds, 99)),
          serverCpuS: r2(cpu.serverCpuS),
          serverMainCpuS: r2(cpu.serverMainCpuS),
          serverCpuMsPerSession: r2((cpu.serverCpuS * 1000) / Math.max(1, deleteMs.length)),
          machineCpuS: where.machineCpuS,
          driverCpuS: r2(cpu.driverCpuS),
          // The ceiling: sessions/s if the server cost nothing (fork, exec and exit of the
          // agent, the kernel's pty work and the driver stay).
          outsideCpuMsPerSession: r2(((where.machineCpuS - cpu.serverCpuS) * 1000) / Math.max(1, deleteMs.length)),
          ceilingPerS: r2((deleteMs.length * availableParallelism()) / Math.max(0.01, where.machineCpuS - cpu.serverCpuS)),
          ...Object.fromEntries(Object.entries(where.threads).map(([k, v]) => [`threadCpuS:${k}`, v])),
        },
        errors,
      };
    }),
  summarize(r) {
    const p = r.project?.median ?? {};
    const b = r.baseline?.median ?? {};
    const ratios = { perS: ratio(p.perS, b.perS), createP99: ratio(p.createP99Ms, b.createP99Ms) };
    const met = Number.isFinite(ratios.perS) ? ratios.perS >= 2 : null;
    // Measured in the baseline's runs: its agents are forked from the whole server, so their
    // exec and exit cost more outside it than the project's (clone3 with a shared address
    // space): the lower of the two ceilings.
    const ceiling = b.ceilingPerS ?? p.ceilingPerS ?? NaN;
    const wanted = 2 * (b.perS ?? NaN);
    const beyond = Number.isFinite(ceiling) && wanted > ceiling ? `; 2× baseline = ${fmt(wanted)}/s is above this machine's ceiling of ${fmt(ceiling)}/s` : '';
    const targets = [{ figure: 'spawn+kill per s', target: '≥ 2× baseline', value: `${fmt(p.perS)} /s (${fmt(ratios.perS, 2)}×${roundsRange(r, 'perS')})${beyond}`, met }];
    const cell = (m: typeof p) => `${fmt(m.perS)} sessions/s · create p99 ${fmt(m.createP99Ms)} ms · delete p99 ${fmt(m.deleteP99Ms)} ms`;
    const limit = Number.isFinite(ceiling) ? `ceiling ${fmt(ceiling)} sessions/s (server at zero cost: ${fmt(b.outsideCpuMsPerSession ?? p.outsideCpuMsPerSession)} ms CPU per session outside it)` : '—';
    const row = `| spawn-rate | ${cell(p)} | ${cell(b)} | ${limit} | sessions/s ${fmt(ratios.perS, 2)}× · create p99 ${fmt(ratios.createP99, 2)}× | ${met === null ? 'n/a' : met ? 'met' : 'missed'} |`;
    return { ratios, targets, row };
  },
};
