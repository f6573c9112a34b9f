/**
 * Smoke test of the benchmark harness (issue 3): `bench all --tiny` runs every scenario
 * against both servers with tiny sizes, prints one JSON line per scenario, writes the
 * results file and the docs into a temp dir, and its byte checks pass. No timing is
 * asserted: benchmarks never gate `npm test`.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from './helpers/server.js';
import { ExpectedStream, StreamCheck } from '../bench/lib/check.js';
import { parseOutputFast } from '../bench/lib/frames.js';

const RUN = path.join(ROOT, 'dist/bench/run.js');
const SCENARIOS = ['limits', 'idle-conns', 'echo-latency', 'fanout', 'spawn-rate', 'rest'];
/** The harness's own bound for this test: tiny sizes finish in well under this. */
const RUN_TIMEOUT_MS = 55_000;

interface Result {
  scenario: string;
  row: string;
  sizes: Record<string, number>;
  pending?: string;
  project?: {
    median: Record<string, number>;
    runs: Array<{ metrics: Record<string, number>; check?: Record<string, any>; cleanup?: { leftovers: number }; failed?: boolean; errors?: string[] }>;
  };
  baseline?: Result['project'];
  limits?: Record<string, NonNullable<Result['project']>>;
  ratios?: Record<string, number>;
  targets?: Array<{ figure: string; target: string; value: string; met: boolean | null }>;
}

let out: string;
let stdout = '';
let stderr = '';
let code: number | null = null;
const results = new Map<string, Result>();

beforeAll(async () => {
  out = mkdtempSync(path.join(tmpdir(), 'sm-bench-smoke-'));
  code = await new Promise<number | null>((resolve) => {
    const child = spawn(process.execPath, [RUN, 'all', '--tiny', '--out', out], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    const timer = setTimeout(() => child.kill('SIGINT'), RUN_TIMEOUT_MS);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    const r = JSON.parse(line) as Result;
    results.set(r.scenario, r);
  }
}, RUN_TIMEOUT_MS + 10_000);

afterAll(() => {
  if (out) rmSync(out, { recursive: true, force: true });
});

describe('bench byte checker', () => {
  const text = 'READY\r\n' + 'QUJD"\\x\t'.repeat(300) + 'tail\r\n';
  const expected = new ExpectedStream(text);
  const prefix = Buffer.from('{"type":"output","sessionId":"', 'latin1');
  const suffix = Buffer.from('"}', 'latin1');
  const id = '00000000-0000-4000-8000-000000000000';
  const frame = (offset: number, data: string) => Buffer.from(`{"type":"output","sessionId":"${id}","offset":${offset},"data":${JSON.stringify(data)}}`);
  const feed = (c: StreamCheck, offset: number, data: string) => {
    const buf = frame(offset, data);
    const o = parseOutputFast(buf, prefix, suffix);
    expect(o?.sessionId).toBe(id);
    if (!c.pushEscaped(o!.offset, buf, o!.dataStart, o!.dataEnd, 0)) c.push(offset, data, 0);
  };

  it('accepts a stream split anywhere, checked as encoded bytes without decoding', () => {
    const c = new StreamCheck(expected);
    for (let at = 0; at < text.length; ) {
      const n = 1 + ((at * 7) % 97);
      feed(c, at, text.slice(at, at + n));
      at += n;
    }
    expect(c.summary()).toMatchObject({ ok: true, holes: 0, repeats: 0, mismatches: 0, decoded: 0, lostAtEnd: 0 });
  });

  it('finds wrong bytes, holes, repeats and a lost tail', () => {
    const c = new StreamCheck(expected);
    feed(c, 0, text.slice(0, 100));
    feed(c, 100, 'X' + text.slice(101, 200));
    feed(c, 250, text.slice(250, 300));
    feed(c, 280, text.slice(280, 320));
    const s = c.summary();
    expect(s).toMatchObject({ ok: false, mismatches: 1, holes: 1, holeBytes: 50, repeats: 1, received: 320, lostAtEnd: text.length - 320 });
  });
});

describe('bench harness (tiny sizes)', () => {
  it('runs every scenario and prints one JSON line and one markdown row each', () => {
    expect(code, stderr.slice(-2000)).toBe(0);
    expect([...results.keys()]).toEqual(SCENARIOS);
    for (const r of results.values()) {
      expect(r.row.startsWith(`| ${r.scenario} |`)).toBe(true);
      expect(stdout).toContain(`\n${r.row}\n`);
    }
  });

  it('reports medians for both sides, ratios and targets', () => {
    const keys: Record<string, string[]> = {
      'idle-conns': ['sockets', 'errors', 'rssPerSocketKiB', 'connectPerS'],
      'echo-latency': ['pings', 'p50Ms', 'p95Ms', 'p99Ms', 'maxMs', 'pingsPerS'],
      fanout: ['mbpsPerViewer', 'mbpsAggregate', 'cpuSPerGB', 'lostAtExitBytes'],
      'spawn-rate': ['sessions', 'perS', 'createP99Ms'],
      rest: ['listReqPerS', 'listP99Ms', 'listErrors', 'patchReqPerS', 'patchP99Ms', 'patchErrors'],
    };
    for (const [name, want] of Object.entries(keys)) {
      const r = results.get(name)!;
      for (const side of [r.project!, r.baseline!]) {
        expect(side.runs.length).toBe(1);
        expect(side.runs[0]!.failed, `${name}: ${side.runs[0]!.errors?.join('; ')}\n${stderr.slice(-2000)}`).toBeUndefined();
        for (const k of want) expect(typeof side.median[k], `${name}.${k}`).toBe('number');
        for (const run of side.runs) expect(run.cleanup?.leftovers, `${name}: agents left behind`).toBe(0);
      }
      expect(Object.keys(r.ratios ?? {}).length).toBeGreaterThan(0);
      if (name !== 'rest') expect(r.targets!.length).toBeGreaterThan(0);
    }
    expect(results.get('idle-conns')!.project!.median.sockets).toBe(results.get('idle-conns')!.sizes.sockets);
    expect(results.get('idle-conns')!.baseline!.median.sockets).toBe(results.get('idle-conns')!.sizes.sockets);
    expect(results.get('echo-latency')!.project!.median.pings).toBe(results.get('echo-latency')!.sizes.sessions! * results.get('echo-latency')!.sizes.pings!);
    // Both halves of `rest` ran, every request answered 2xx, no planner write was lost.
    const rest = results.get('rest')!;
    expect(rest.pending).toBeUndefined();
    expect(rest.row).toMatch(/PATCH card/);
    for (const side of [rest.project!, rest.baseline!]) {
      expect(side.median.listErrors).toBe(0);
      expect(side.median.patchErrors).toBe(0);
      expect(side.runs[0]!.check!.lostUpdates).toBe(0);
    }
    // The echo floors (ptys + cat alone; driver + uWS alone) ran in the same invocation.
    for (const l of ['pty-echo', 'ws-echo']) {
      expect(results.get('echo-latency')!.limits![l]!.median.p99Ms, l).toBeGreaterThan(0);
      expect(results.get('echo-latency')!.limits![l]!.median.pings, l).toBe(results.get('echo-latency')!.sizes.sessions! * results.get('echo-latency')!.sizes.pings!);
    }
    // The echo and spawn ceilings are measured, not assumed.
    for (const [name, k] of [['echo-latency', 'ceilingPingsPerS'], ['spawn-rate', 'ceilingPerS']] as const) {
      expect(results.get(name)!.baseline!.median[k], `${name}.${k}`).toBeGreaterThan(0);
    }
  });

  it('measures the physical limits, and the byte checker passes a lossless stream', () => {
    const l = results.get('limits')!.limits!;
    expect(typeof l['pty-read']!.median.mbps).toBe('number');
    const uws = l['uws-fanout']!.runs[0]!.check!;
    expect(uws).toMatchObject({ ok: true, holes: 0, mismatches: 0, repeats: 0, lostAtExitBytes: 0 });
    expect(uws.viewersOk).toBe(uws.viewers);
  });

  it('checks every fan-out byte by offset on both sides: no hole, repeat or wrong byte', () => {
    const f = results.get('fanout')!;
    for (const side of [f.project!, f.baseline!]) {
      expect(side.runs[0]!.failed, `${side.runs[0]!.errors?.join('; ')}\n${stderr.slice(-2000)}`).toBeUndefined();
      const c = side.runs[0]!.check!;
      expect(c.viewers).toBe(f.sizes.viewers);
      expect(c.exitsSeen).toBe(f.sizes.viewers);
      expect(c).toMatchObject({ holes: 0, repeats: 0, mismatches: 0 });
      expect(c.expectedBytes).toBeGreaterThan(f.sizes.bytes! - 100);
      expect(typeof c.lostAtExitBytes).toBe('number');
    }
  });

  // Issue 3 target "bytes lost at agent exit: 0": the project holds the pty slave until the
  // output is drained (workers/pty-process.ts); raw node-pty and the baseline lose the tail.
  it('the project delivers every byte, including those printed right before the agent exits', () => {
    const c = results.get('fanout')!.project!.runs[0]!.check!;
    expect(c.lostAtExitBytes).toBe(0);
    expect(c.ok).toBe(true);
    expect(c.viewersOk).toBe(c.viewers);
  });

  it('writes the results file, the markdown table and the SVG chart', () => {
    const json = readdirSync(out).filter((f) => f.endsWith('-quick.json'));
    expect(json.length).toBe(1);
    const file = JSON.parse(readFileSync(path.join(out, json[0]!), 'utf8'));
    expect(Object.keys(file.scenarios).sort()).toEqual([...SCENARIOS].sort());
    expect(file.machine.cores).toBeGreaterThan(0);
    const md = readFileSync(path.join(out, 'benchmarks.md'), 'utf8');
    for (const r of results.values()) expect(md).toContain(r.row);
    expect(md).toContain('benchmarks.svg');
    expect(existsSync(path.join(out, 'benchmarks.svg'))).toBe(true);
    expect(readFileSync(path.join(out, 'benchmarks.svg'), 'utf8')).toMatch(/^<svg [^>]*>[\s\S]*<rect [\s\S]*<\/svg>\n$/);
  });
});
