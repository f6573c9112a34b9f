/**
 * Latency limit for the echo scenario: one Node process, no network, no server — M ptys
 * running `cat` (terminal echo off), one chain of sequential lines per pty after a warm-up,
 * the same line format and concurrency as the scenario. Prints
 * "pty-echo result {json}" with p50/p95/p99/max ms and pings/s: what the terminal, `cat` and
 * the scheduler alone cost each ping on this machine.
 * Usage: node pty-echo.js <sessions> <pings> <warmup>
 */
import * as pty from 'node-pty';
import { percentile } from '../lib/stats.js';

const [m, pings, warmup] = process.argv.slice(2).map(Number) as [number, number, number];
if (!(m > 0 && pings > 0 && warmup >= 0)) {
  process.stderr.write('usage: pty-echo.js <sessions> <pings> <warmup>\n');
  process.exit(2);
}
const PING_TIMEOUT_MS = 10_000;

interface Chain {
  term: pty.IPty;
  buf: string;
  wake: (() => void) | undefined;
}

function start(): Promise<Chain> {
  const term = pty.spawn('sh', ['-c', "stty -echo; printf 'READY\\n'; exec cat"], {
    name: 'xterm-256color',
    cols: 80,
    rows: 24,
    cwd: process.cwd(),
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C.UTF-8', TERM: 'xterm-256color' },
  });
  const c: Chain = { term, buf: '', wake: undefined };
  term.onData((d) => {
    c.buf += d;
    c.wake?.();
  });
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('cat did not start')), 20_000);
    const check = () => {
      if (!c.buf.includes('READY\r\n')) return;
      clearTimeout(t);
      c.buf = '';
      c.wake = undefined;
      resolve(c);
    };
    c.wake = check;
    check();
  });
}

async function ping(c: Chain, line: string): Promise<number> {
  const want = `${line}\r\n`;
  const t = performance.now();
  c.term.write(`${line}\r`);
  while (!c.buf.includes(want)) {
    if (performance.now() - t > PING_TIMEOUT_MS) throw new Error('ping timed out');
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 50);
      c.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    c.wake = undefined;
  }
  const ms = performance.now() - t;
  c.buf = c.buf.slice(c.buf.indexOf(want) + want.length);
  return ms;
}

const chains = await Promise.all(Array.from({ length: m }, start));
await Promise.all(chains.map(async (c, i) => {
  for (let k = 0; k < warmup; k++) await ping(c, `w${i}-${k}`);
}));
const lat: number[] = [];
const t0 = performance.now();
await Promise.all(chains.map(async (c, i) => {
  for (let k = 0; k < pings; k++) lat.push(await ping(c, `p${i}-${k}`));
}));
const wall = (performance.now() - t0) / 1000;
lat.sort((a, b) => a - b);
const pct = (p: number) => Math.round(percentile(lat, p) * 1000) / 1000;
const out = { pings: lat.length, p50Ms: pct(50), p95Ms: pct(95), p99Ms: pct(99), maxMs: Math.round(lat[lat.length - 1]! * 1000) / 1000, pingsPerS: Math.round(lat.length / wall) };
for (const c of chains) {
  try {
    process.kill(c.term.pid, 'SIGKILL');
  } catch {
    /* gone */
  }
}
process.stdout.write(`pty-echo result ${JSON.stringify(out)}\n`, () => process.exit(0));
