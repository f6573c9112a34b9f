/**
 * Physical limits on this machine, in the same run: how fast one Node process can read a
 * pty (no network), and how fast uWS can fan the same bytes out from memory to the same
 * number of `ws` clients in this driver (no pty, no threads).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { connectWs } from '../adapters/project.js';
import { baseEnv, PTY_READ_PROBE, UWS_FANOUT_PROBE } from '../lib/paths.js';
import { Probe, spawnNode, stopChild } from '../lib/procs.js';
import { fmt, type Ctx, type ScenarioDef, type SideRun } from '../lib/scenario.js';
import { awaitStreams, openWatches, streamFigures } from '../lib/stream.js';

/** The session id the uWS probe puts in its frames (limits/uws-fanout.ts). */
const UWS_SESSION_ID = '00000000-0000-4000-8000-000000000000';

/** Generous bound for streaming `bytes` (never expected to be reached). */
export function streamTimeoutMs(bytes: number): number {
  return 30_000 + (bytes / 1e6) * 4000;
}

/** One Node process reading `base64 <payload>` from a pty. */
export async function ptyRead(ctx: Ctx): Promise<SideRun> {
  const payload = ctx.payload(ctx.sizes.fanoutBytes);
  const dir = mkdtempSync(path.join(ctx.tmp, 'pty-'));
  const probe = new Probe(undefined);
  try {
    const child = await spawnNode(PTY_READ_PROBE, [payload.file, String(payload.body.length)], {
      cwd: dir,
      env: baseEnv(dir),
      readyPrefix: 'pty-read result ',
      timeoutMs: streamTimeoutMs(payload.body.length),
    });
    const stop = await stopChild(child);
    const r = JSON.parse(child.readyLine.slice('pty-read result '.length)) as { bytes: number; expected: number; ms: number; cpuS: number };
    return {
      metrics: {
        mbps: Math.round((r.bytes / 1e6 / (r.ms / 1000)) * 100) / 100,
        bytes: r.bytes,
        cpuSPerGB: Math.round((r.cpuS / (r.bytes / 1e9)) * 100) / 100,
      },
      // node-pty often reports EOF before the last few KB (no server involved): recorded, not hidden.
      check: { complete: r.bytes === r.expected, bytes: r.bytes, expected: r.expected, lostAtExitBytes: r.expected - r.bytes },
      load: probe.finish(),
      cleanup: { stopMs: stop.ms, exit: stop.signal ?? String(stop.code), leftovers: stop.leftovers },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** uWS publishing the payload from memory to as many `ws` clients as the fan-out has viewers. */
export async function uwsFanout(ctx: Ctx): Promise<SideRun> {
  const payload = ctx.payload(ctx.sizes.fanoutBytes);
  const dir = mkdtempSync(path.join(ctx.tmp, 'uws-'));
  const child = await spawnNode(UWS_FANOUT_PROBE, [payload.file], { cwd: dir, env: baseEnv(dir), readyPrefix: 'uws-fanout ready at ' });
  const probe = new Probe(child);
  const url = /ready at (\S+)/.exec(child.readyLine)![1]!;
  let stopWatches = () => {};
  try {
    const { watches, stop } = await openWatches({ connect: () => connectWs(url), sessionId: UWS_SESSION_ID, expected: payload.stream(false), viewers: ctx.sizes.fanoutViewers, attach: false });
    stopWatches = stop;
    probe.mark();
    const t0 = performance.now();
    (watches[0]!.viewer as Awaited<ReturnType<typeof connectWs>>).sendFrame({ type: 'go' });
    await awaitStreams(watches, streamTimeoutMs(payload.body.length));
    const cpu = probe.since();
    const f = streamFigures(watches, t0, 0);
    f.metrics.serverCpuS = Math.round(cpu.serverCpuS * 100) / 100;
    f.metrics.cpuSPerGB = Math.round((cpu.serverCpuS / Math.max(1e-9, f.metrics.deliveredMB! / 1000)) * 100) / 100;
    f.metrics.driverCpuS = Math.round(cpu.driverCpuS * 100) / 100;
    const load = probe.finish();
    return { metrics: f.metrics, check: f.check, load };
  } finally {
    probe.finish();
    await stopChild(child);
    stopWatches();
    rmSync(dir, { recursive: true, force: true });
  }
}

export const limits: ScenarioDef = {
  name: 'limits',
  title: 'Physical limits (same machine, same run)',
  sizes: (s) => ({ bytes: s.fanoutBytes, viewers: s.fanoutViewers }),
  limits: () => ({ 'pty-read': ptyRead, 'uws-fanout': uwsFanout }),
  summarize(r) {
    const pty = r.limits?.['pty-read']?.median ?? {};
    const uws = r.limits?.['uws-fanout']?.median ?? {};
    const row = `| limits | — | — | pty read ${fmt(pty.mbps)} MB/s (${fmt(pty.cpuSPerGB, 2)} CPU-s/GB) · uWS fan-out ${fmt(uws.mbpsPerViewer)} MB/s per viewer to ${r.sizes.viewers} (${fmt(uws.cpuSPerGB, 2)} CPU-s/GB) | — | — |`;
    return { ratios: {}, targets: [], row };
  },
};
