/**
 * idle-conns: N authenticated editor sockets attached to S quiet sessions (`cat`), held
 * for a while. Server RSS per socket (growth from before the first connection to the end
 * of the hold), connect rate (connect + authenticate + attach), errors.
 */
import type { Viewer } from '../adapters/types.js';
import { rssKiB, sleep } from '../lib/procs.js';
import { fmt, pool, ratio, roundsRange, withServer, type ScenarioDef } from '../lib/scenario.js';

/** Let the server settle after creating sessions before the RSS reference is taken (capped by the hold). */
const SETTLE_MS = 1000;

export const idleConns: ScenarioDef = {
  name: 'idle-conns',
  title: 'Idle editor sockets',
  sizes: (s) => ({ sockets: s.idleSockets, sessions: s.idleSessions, holdMs: s.idleHoldMs, connectConcurrency: s.idleConnectConcurrency }),
  side: (ctx, start) =>
    withServer(ctx, start, ctx.sizes.idleSessions + 10, async (srv, probe) => {
      const { idleSockets: n, idleSessions: s, idleHoldMs, idleConnectConcurrency } = ctx.sizes;
      const ids: string[] = [];
      for (let i = 0; i < s; i++) ids.push(await srv.createSession(['cat']));
      await sleep(Math.min(SETTLE_MS, idleHoldMs));
      const rss0 = rssKiB(srv.child.pid);
      probe.mark();
      const viewers: Viewer[] = [];
      const errors: string[] = [];
      const t0 = performance.now();
      await pool(n, idleConnectConcurrency, async (i) => {
        try {
          const v = await srv.connect();
          viewers.push(v);
          await v.attach(ids[i % s]!);
        } catch (err) {
          errors.push((err as Error).message);
        }
      });
      const connectS = (performance.now() - t0) / 1000;
      const connectCpu = probe.since();
      const ok = n - errors.length;
      await sleep(idleHoldMs);
      const rss1 = rssKiB(srv.child.pid);
      const dropped = viewers.filter((v) => v.closed !== undefined).length;
      const cpu = probe.since();
      return {
        metrics: {
          sockets: ok,
          errors: errors.length,
          droppedDuringHold: dropped,
          rssBeforeMiB: Math.round((rss0 / 1024) * 10) / 10,
          rssAfterMiB: Math.round((rss1 / 1024) * 10) / 10,
          rssPerSocketKiB: Math.round(((rss1 - rss0) / Math.max(1, ok)) * 100) / 100,
          connectPerS: Math.round(ok / connectS),
          connectCpuS: Math.round(connectCpu.serverCpuS * 100) / 100,
          holdCpuS: Math.round((cpu.serverCpuS - connectCpu.serverCpuS) * 100) / 100,
        },
        errors,
        after: () => {
          for (const v of viewers) v.close();
        },
      };
    }),
  summarize(r) {
    const p = r.project?.median ?? {};
    const b = r.baseline?.median ?? {};
    const ratios = { rssPerSocket: ratio(p.rssPerSocketKiB, b.rssPerSocketKiB), connectPerS: ratio(p.connectPerS, b.connectPerS) };
    const met = Number.isFinite(ratios.rssPerSocket) ? ratios.rssPerSocket <= 1 / 6 && p.rssPerSocketKiB! <= 3 : null;
    const targets = [
      { figure: 'server RSS per idle socket', target: '≤ 1/6 of baseline and ≤ 3 KiB', value: `${fmt(p.rssPerSocketKiB, 2)} KiB (${fmt(ratios.rssPerSocket, 3)}×${roundsRange(r, 'rssPerSocketKiB', 3)})`, met },
    ];
    const cell = (m: typeof p) => `${fmt(m.rssPerSocketKiB, 2)} KiB/socket · ${fmt(m.connectPerS, 0)} conn/s · ${fmt(m.errors, 0)} errors`;
    const row = `| idle-conns | ${cell(p)} | ${cell(b)} | — | RSS ${fmt(ratios.rssPerSocket, 3)}× · conn/s ${fmt(ratios.connectPerS, 2)}× | ${met === null ? 'n/a' : met ? 'met' : 'missed'} |`;
    return { ratios, targets, row };
  },
};
