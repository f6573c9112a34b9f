/**
 * The scenario runner: alternate sides (project, baseline, then any limit probes) for
 * `runs` rounds, take medians, compute ratios and targets, and print one JSON line and
 * one markdown row per scenario.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { ServerUnderTest, SideName, StartSide } from '../adapters/types.js';
import { Probe, stopChild, type MachineLoad } from './procs.js';
import type { Sizes } from './sizes.js';
import { medianRecord } from './stats.js';
import type { Payload } from './payload.js';

export type Metrics = Record<string, number>;

/** One run of one side (or of a limit probe). */
export interface SideRun {
  metrics: Metrics;
  /** Byte checks and other correctness facts. */
  check?: Record<string, unknown>;
  load: MachineLoad;
  cleanup?: { stopMs: number; exit: string; leftovers: number };
  errors?: string[];
  /** The run threw: no metrics, excluded from medians. */
  failed?: boolean;
}

function failedRun(err: unknown): SideRun {
  const msg = err instanceof Error ? err.message : String(err);
  const cleanup = (err as { cleanup?: SideRun['cleanup'] } | undefined)?.cleanup;
  return {
    metrics: {},
    failed: true,
    errors: [msg.slice(0, 2000)],
    load: { load1Start: NaN, load1End: NaN, machineBusyPct: NaN, driverCpuS: NaN },
    ...(cleanup ? { cleanup } : {}),
  };
}

export interface Ctx {
  sizes: Sizes;
  tmp: string;
  log(msg: string): void;
  sides: Record<SideName, StartSide>;
  /** Limit figures measured earlier in this invocation (fan-out reuses the pty read limit). */
  limits: Record<string, SideSummary>;
  payload(bytes: number): Payload;
  /** Extra node flags for the servers under test (e.g. --cpu-prof). */
  serverNodeArgs(side: SideName): string[] | undefined;
  /** Keep profiler output a stopped server left in its working dir. */
  keepProfiles: ((side: SideName, dir: string) => void) | undefined;
}

export interface SideSummary {
  median: Metrics;
  runs: SideRun[];
}

export interface Target {
  figure: string;
  target: string;
  value: string;
  met: boolean | null;
}

export interface ScenarioResult {
  scenario: string;
  title: string;
  at: string;
  runs: number;
  sizes: Record<string, number>;
  project?: SideSummary;
  baseline?: SideSummary;
  limits?: Record<string, SideSummary>;
  ratios?: Metrics;
  targets?: Target[];
  /** What a scenario does not measure yet. */
  pending?: string;
  row: string;
}

export interface ScenarioDef {
  name: string;
  title: string;
  /** Sizes that matter for this scenario (recorded with the result). */
  sizes(s: Sizes): Record<string, number>;
  side?(ctx: Ctx, start: StartSide, side: SideName): Promise<SideRun>;
  /** Limit probes run in the same alternation (after the two sides of each round). */
  limits?(ctx: Ctx): Record<string, (ctx: Ctx) => Promise<SideRun>>;
  summarize(r: ScenarioResult, ctx: Ctx): { ratios: Metrics; targets: Target[]; row: string };
  /** The scenario does not run at all yet: this says why (printed instead of numbers). */
  pending?: string;
  /** Part of the scenario is not measured yet (recorded as `pending` next to the numbers). */
  note?: string;
}

export async function runScenario(def: ScenarioDef, ctx: Ctx): Promise<ScenarioResult> {
  const result: ScenarioResult = {
    scenario: def.name,
    title: def.title,
    at: new Date().toISOString(),
    runs: ctx.sizes.runs,
    sizes: def.sizes(ctx.sizes),
    row: '',
  };
  if (def.pending) {
    result.pending = def.pending;
    result.row = `| ${def.name} | — | — | — | — | ${def.pending} |`;
    return result;
  }
  const runs: Record<string, SideRun[]> = {};
  const limitProbes = def.limits?.(ctx) ?? {};
  const push = (k: string, r: SideRun) => (runs[k] ??= []).push(r);
  for (let i = 1; i <= ctx.sizes.runs; i++) {
    if (def.side) {
      for (const side of ['project', 'baseline'] as const) {
        ctx.log(`${def.name}: run ${i}/${ctx.sizes.runs} ${side}`);
        const r = await def.side(ctx, ctx.sides[side], side).catch((err: unknown) => failedRun(err));
        ctx.log(`${def.name}: ${side} ${JSON.stringify(r.metrics)}`);
        push(side, r);
      }
    }
    for (const [name, fn] of Object.entries(limitProbes)) {
      ctx.log(`${def.name}: run ${i}/${ctx.sizes.runs} limit ${name}`);
      const r = await fn(ctx).catch((err: unknown) => failedRun(err));
      ctx.log(`${def.name}: limit ${name} ${JSON.stringify(r.metrics)}`);
      push(`limit:${name}`, r);
    }
  }
  const summary = (list: SideRun[]): SideSummary => ({ median: medianRecord(list.filter((r) => !r.failed).map((r) => r.metrics)) as Metrics, runs: list });
  if (runs.project) result.project = summary(runs.project);
  if (runs.baseline) result.baseline = summary(runs.baseline);
  for (const [k, list] of Object.entries(runs)) {
    if (!k.startsWith('limit:')) continue;
    const name = k.slice('limit:'.length);
    (result.limits ??= {})[name] = summary(list);
    ctx.limits[name] = result.limits[name]!;
  }
  if (def.note) result.pending = def.note;
  const s = def.summarize(result, ctx);
  result.ratios = s.ratios;
  result.targets = s.targets;
  result.row = s.row;
  return result;
}

/**
 * Start a fresh server of one side in its own temp dir, run `fn`, then stop it (SIGTERM,
 * SIGKILL after a grace period, leftover agents killed by PID) and remove the dir.
 * `fn` may return callbacks to run after the server is gone (closing client sockets).
 */
export async function withServer(
  ctx: Ctx,
  start: StartSide,
  maxSessions: number,
  fn: (srv: ServerUnderTest, probe: Probe) => Promise<{ metrics: Metrics; check?: Record<string, unknown>; errors?: string[]; after?: () => void }>,
): Promise<SideRun> {
  const dir = mkdtempSync(path.join(ctx.tmp, 'srv-'));
  const side = start === ctx.sides.project ? 'project' : 'baseline';
  const nodeArgs = ctx.serverNodeArgs(side);
  let srv: ServerUnderTest;
  try {
    srv = await start({ dir, maxSessions, ...(nodeArgs ? { nodeArgs } : {}) });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const probe = new Probe(srv.child);
  let out: Awaited<ReturnType<typeof fn>> | undefined;
  let failure: Error | undefined;
  try {
    out = await fn(srv, probe);
  } catch (err) {
    // Say what the server said last: the reason is usually there.
    const tail = srv.child.output.slice(-8).join('\n');
    failure = new Error(`${(err as Error).message}${tail ? `\n--- ${side} server output (last lines) ---\n${tail}` : ''}`);
  }
  const load = probe.finish();
  const stop = await stopChild(srv.child);
  try {
    out?.after?.();
  } catch {
    // Closing clients of a server that is gone.
  }
  ctx.keepProfiles?.(side, dir);
  rmSync(dir, { recursive: true, force: true });
  const cleanup = { stopMs: stop.ms, exit: stop.signal ?? String(stop.code), leftovers: stop.leftovers };
  if (failure || !out) throw Object.assign(failure ?? new Error('no result'), { cleanup });
  out.metrics.peakRssMiB = Math.round((probe.peakRssKiB / 1024) * 10) / 10;
  return {
    metrics: out.metrics,
    ...(out.check ? { check: out.check } : {}),
    ...(out.errors?.length ? { errors: out.errors.slice(0, 20) } : {}),
    load,
    cleanup,
  };
}

/** Run `n` jobs with at most `concurrency` at once. */
export async function pool(n: number, concurrency: number, job: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      await job(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, concurrency) }, worker));
}

/** Wait until `pred()` or the deadline; returns whether `pred()` became true. Polls every `everyMs`. */
export async function waitFor(pred: () => boolean, timeoutMs: number, everyMs = 10): Promise<boolean> {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > timeoutMs) return false;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return true;
}

/** Format helpers for table cells. */
export function fmt(x: number | undefined, digits = 1): string {
  if (x === undefined || !Number.isFinite(x)) return 'n/a';
  if (Math.abs(x) >= 1000) return Math.round(x).toLocaleString('en-US');
  return x.toFixed(digits);
}

export function ratio(a: number | undefined, b: number | undefined): number {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return NaN;
  return Math.round((a / b) * 1000) / 1000;
}

/**
 * The project/baseline ratio of `key` in each round (run i of each side ran back to back),
 * as "; rounds lo–hi×": how far a single round strays from the ratio of the medians. Empty
 * with fewer than two rounds.
 */
export function roundsRange(r: ScenarioResult, key: string, digits = 2): string {
  const b = r.baseline?.runs ?? [];
  const rs = (r.project?.runs ?? []).map((x, i) => ratio(x.metrics[key], b[i]?.metrics[key])).filter(Number.isFinite);
  if (rs.length < 2) return '';
  return `; rounds ${fmt(Math.min(...rs), digits)}–${fmt(Math.max(...rs), digits)}×`;
}
