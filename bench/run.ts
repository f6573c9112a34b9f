/**
 * The benchmark harness (issue 3):
 * `npm run bench -- <scenario|all> [--quick|--tiny] [--runs N] [--set size=N]… [--out DIR] [--cpu-prof DIR | --prof DIR | --perf]`.
 *
 * Scenarios: limits, idle-conns, echo-latency, fanout, spawn-rate, rest (`all` runs them in
 * that order). Each alternates project and baseline for `runs` rounds, prints one JSON line
 * and one markdown row, and the whole invocation merges its results into
 * `bench/results/<date>.json` and regenerates `docs/benchmarks.md` and `docs/benchmarks.svg`.
 * `--quick`, `--tiny` or `--set` write `<tmpdir>/session-manager-bench/<date>-quick.json`
 * and leave the repository alone.
 * `--out DIR` puts the JSON and the docs in DIR instead (the smoke test uses it).
 * `--cpu-prof DIR` starts both servers with `--cpu-prof` (profiles of every thread land in
 * DIR/project and DIR/baseline when each server stops); `--prof DIR` does the same with V8's
 * tick profiler (isolate-*.log, one per thread; use it where --cpu-prof disturbs uWS).
 * `node dist/bench/profile.js DIR/project` prints where the time went. `--perf` starts both
 * servers with `--perf-basic-prof`, so `perf record -g -p <pid>` can name their JIT frames
 * (kernel and native time included, every thread).
 * `report [results.json]` only regenerates the docs from a results file.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startBaseline } from './adapters/baseline.js';
import { startProject } from './adapters/project.js';
import { ROOT } from './lib/paths.js';
import { makePayload, type Payload } from './lib/payload.js';
import { killAllChildren } from './lib/procs.js';
import { runScenario, type Ctx, type ScenarioDef, type ScenarioResult } from './lib/scenario.js';
import { FULL, QUICK, TINY, type Sizes } from './lib/sizes.js';
import { renderChart } from './report/chart.js';
import { TABLE_HEADER, renderMarkdown } from './report/markdown.js';
import { describeMachine, readResults, type ResultsFile } from './report/results.js';
import { echoLatency } from './scenarios/echo-latency.js';
import { fanout } from './scenarios/fanout.js';
import { idleConns } from './scenarios/idle-conns.js';
import { limits } from './scenarios/limits.js';
import { rest } from './scenarios/rest.js';
import { spawnRate } from './scenarios/spawn-rate.js';

const SCENARIOS: ScenarioDef[] = [limits, idleConns, echoLatency, fanout, spawnRate, rest];

/** The whole invocation may not take longer than this (every scenario is bounded too). */
const OVERALL_TIMEOUT_MS = 60 * 60 * 1000;

function usage(msg?: string): never {
  if (msg) process.stderr.write(`bench: ${msg}\n`);
  process.stderr.write(
    `usage: npm run bench -- <${SCENARIOS.map((s) => s.name).join('|')}|all> [--quick|--tiny] [--runs N] [--set size=N]… [--out DIR] [--cpu-prof DIR | --prof DIR | --perf]\n` +
      '       npm run bench -- report [bench/results/<date>.json]   (regenerate docs/benchmarks.md and .svg)\n',
  );
  process.exit(2);
}

interface Args {
  scenarios: ScenarioDef[];
  sizes: Sizes;
  mode: 'full' | 'quick' | 'tiny';
  out: string | undefined;
  cpuProf: string | undefined;
  prof: string | undefined;
  perf: boolean;
}

/** `--set key=value` overrides one size (e.g. `--set fanoutViewers=5`). */
function applySet(sizes: Sizes, spec: string | undefined): void {
  const m = /^(\w+)=(\d+)$/.exec(spec ?? '');
  if (!m || !(m[1]! in sizes)) usage(`--set takes <size>=<whole number>, sizes: ${Object.keys(sizes).join(', ')}`);
  (sizes as unknown as Record<string, number>)[m[1]!] = Number(m[2]);
}

function parseArgs(argv: string[]): Args {
  let which: string | undefined;
  let mode: Args['mode'] = 'full';
  let runs: number | undefined;
  let out: string | undefined;
  const sets: string[] = [];
  let cpuProf: string | undefined;
  let prof: string | undefined;
  let perf = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--quick') mode = 'quick';
    else if (a === '--tiny') mode = 'tiny';
    else if (a === '--runs') {
      runs = Number(argv[++i]);
      if (!Number.isInteger(runs) || runs < 1 || runs > 50) usage('--runs takes a whole number from 1 to 50');
    } else if (a === '--out') {
      out = argv[++i];
      if (!out) usage('--out takes a directory');
    } else if (a === '--set') sets.push(argv[++i] ?? '');
    else if (a === '--cpu-prof') {
      cpuProf = argv[++i];
      if (!cpuProf) usage('--cpu-prof takes a directory');
    } else if (a === '--perf') perf = true;
    else if (a === '--prof') {
      prof = argv[++i];
      if (!prof) usage('--prof takes a directory');
    }
    else if (a === '--help' || a === '-h') usage();
    else if (a.startsWith('-')) usage(`unknown option ${a}`);
    else if (which) usage('one scenario (or all) at a time');
    else which = a;
  }
  if (!which) usage();
  const scenarios = which === 'all' ? SCENARIOS : SCENARIOS.filter((s) => s.name === which);
  if (scenarios.length === 0) usage(`unknown scenario "${which}"`);
  const base = mode === 'full' ? FULL : mode === 'quick' ? QUICK : TINY;
  const sizes: Sizes = { ...base, ...(runs ? { runs } : {}) };
  for (const spec of sets) applySet(sizes, spec);
  // Hand-sized or profiled runs are not the figures: keep them out of docs/benchmarks.md.
  const tuned = (sets.length > 0 || cpuProf !== undefined || prof !== undefined || perf) && mode === 'full';
  return { scenarios, sizes, mode: tuned ? 'quick' : mode, out, cpuProf, prof, perf };
}

/** Copy V8 --prof logs (written in the server's working dir) before that dir is removed. */
function keepV8Logs(from: string, to: string): void {
  mkdirSync(to, { recursive: true });
  for (const f of readdirSync(from)) if (/^isolate-.*\.log$/.test(f)) copyFileSync(path.join(from, f), path.join(to, f));
}

/** Write docs/benchmarks.md and .svg from a results file. */
function writeDocs(file: ResultsFile, resultsFile: string, docsDir: string): void {
  mkdirSync(docsDir, { recursive: true });
  const rel = path.relative(ROOT, resultsFile);
  writeFileSync(path.join(docsDir, 'benchmarks.md'), renderMarkdown(file, rel.startsWith('..') ? resultsFile : rel, 'benchmarks.svg'));
  writeFileSync(path.join(docsDir, 'benchmarks.svg'), renderChart(file));
}

/**
 * Recompute each stored scenario's ratios, targets and row with today's `summarize` from
 * its stored runs, so a report change needs no new run. The limits are gathered in run
 * order, as a run's context gathers them (a scenario sees the limits measured before it).
 */
function resummarize(file: ResultsFile): void {
  const ctx = { limits: {} } as unknown as Ctx;
  for (const def of SCENARIOS) {
    const r = file.scenarios[def.name];
    if (!r || def.pending) continue;
    Object.assign(ctx.limits, r.limits ?? {});
    const s = def.summarize(r, ctx);
    Object.assign(r, { ratios: s.ratios, targets: s.targets, row: s.row });
  }
}

/** `bench report [results.json]`: regenerate the docs from a results file (default: the newest full one). */
function reportOnly(argv: string[]): void {
  const dir = path.join(ROOT, 'bench/results');
  const resultsFile = argv[0] ?? path.join(dir, readdirSync(dir).filter((f) => /^\d{4}-\d\d-\d\d\.json$/.test(f)).sort().pop() ?? 'none.json');
  const file = readResults(resultsFile);
  if (!file) usage(`cannot read results file ${resultsFile}`);
  resummarize(file);
  writeDocs(file, resultsFile, path.join(ROOT, 'docs'));
  process.stderr.write(`docs regenerated from ${resultsFile}\n`);
}

async function main(): Promise<void> {
  if (process.argv[2] === 'report') return reportOnly(process.argv.slice(3));
  const args = parseArgs(process.argv.slice(2));
  const tmp = mkdtempSync(path.join(tmpdir(), 'sm-bench-'));
  const payloads = new Map<number, Payload>();
  const log = (msg: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
  const ctx: Ctx = {
    sizes: args.sizes,
    tmp,
    log,
    sides: { project: startProject, baseline: startBaseline },
    limits: {},
    payload: (bytes) => {
      let p = payloads.get(bytes);
      if (!p) payloads.set(bytes, (p = makePayload(tmp, bytes)));
      return p;
    },
    serverNodeArgs: (side) => {
      if (args.prof) return ['--prof'];
      if (args.perf) return ['--perf-basic-prof'];
      if (!args.cpuProf) return undefined;
      const dir = path.resolve(args.cpuProf, side);
      mkdirSync(dir, { recursive: true });
      return ['--cpu-prof', `--cpu-prof-dir=${dir}`];
    },
    keepProfiles: args.prof ? (side, from) => keepV8Logs(from, path.resolve(args.prof!, side)) : undefined,
  };
  const cleanup = () => {
    killAllChildren();
    rmSync(tmp, { recursive: true, force: true });
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      log(`${sig}: stopping every child`);
      cleanup();
      process.exit(130);
    });
  }
  const overall = setTimeout(() => {
    log('overall time limit reached: stopping every child');
    cleanup();
    process.exit(3);
  }, OVERALL_TIMEOUT_MS);
  overall.unref();

  const machine = describeMachine();
  log(`machine: ${machine.cpuModel} × ${machine.cores}, load ${machine.load1AtStart}; sizes ${args.mode}, ${args.sizes.runs} run(s) per side`);
  const results: ScenarioResult[] = [];
  try {
    for (const def of args.scenarios) {
      const r = await runScenario(def, ctx);
      results.push(r);
      process.stdout.write(`${JSON.stringify(r)}\n`);
      process.stdout.write(`${r.row}\n`);
    }
  } finally {
    cleanup();
  }
  process.stdout.write(`\n${TABLE_HEADER}\n${results.map((r) => r.row).join('\n')}\n`);

  const date = new Date().toISOString().slice(0, 10);
  const quick = args.mode !== 'full';
  const resultsDir = args.out ?? (quick ? path.join(tmpdir(), 'session-manager-bench') : path.join(ROOT, 'bench/results'));
  const docsDir = args.out ?? (quick ? undefined : path.join(ROOT, 'docs'));
  mkdirSync(resultsDir, { recursive: true });
  const resultsFile = path.join(resultsDir, `${date}${quick ? '-quick' : ''}.json`);
  const prev = readResults(resultsFile);
  const file: ResultsFile = {
    version: 1,
    date,
    updatedAt: new Date().toISOString(),
    quick,
    runs: args.sizes.runs,
    machine,
    scenarios: { ...(prev?.scenarios ?? {}), ...Object.fromEntries(results.map((r) => [r.scenario, r])) },
  };
  writeFileSync(resultsFile, `${JSON.stringify(file, null, 2)}\n`);
  log(`results: ${resultsFile}`);
  if (docsDir) {
    writeDocs(file, resultsFile, docsDir);
    log(`docs: ${path.join(docsDir, 'benchmarks.md')} and benchmarks.svg`);
  }
  clearTimeout(overall);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
    killAllChildren();
    process.exit(1);
  },
);
