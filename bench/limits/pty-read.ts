/**
 * Physical limit: one Node process reading a pty as fast as it can, no network. Runs
 * `base64 <file>` under node-pty (string data, as both servers read it) and prints
 * "pty-read result {json}" with the bytes read, the time and its own CPU.
 * Usage: node pty-read.js <file> <expectedBytes>
 */
import path from 'node:path';
import * as pty from 'node-pty';

/** After the agent exits, wait this long for trailing output before reporting. */
const TAIL_MS = 1000;
const TIMEOUT_MS = 300_000;

const [file, expectedRaw] = process.argv.slice(2);
const expected = Number(expectedRaw);
if (!file || !Number.isFinite(expected)) {
  process.stderr.write('usage: pty-read.js <file> <expectedBytes>\n');
  process.exit(2);
}

let bytes = 0;
let lastAt = 0;
let exitedAt = 0;
let reported = false;
const cpu0 = process.cpuUsage();
const t0 = performance.now();
const term = pty.spawn('base64', [file], {
  name: 'xterm-256color',
  cols: 80,
  rows: 24,
  cwd: path.dirname(file),
  env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C.UTF-8', TERM: 'xterm-256color' },
});

function report(): void {
  if (reported) return;
  reported = true;
  const c = process.cpuUsage(cpu0);
  const ms = lastAt - t0;
  const out = { bytes, expected, ms, exitedAfterMs: exitedAt ? exitedAt - t0 : null, cpuS: (c.user + c.system) / 1e6 };
  process.stdout.write(`pty-read result ${JSON.stringify(out)}\n`, () => process.exit(0));
}

term.onData((d) => {
  bytes += Buffer.byteLength(d);
  lastAt = performance.now();
  if (bytes >= expected) report();
});
term.onExit(() => {
  exitedAt = performance.now();
  setTimeout(report, TAIL_MS);
});
setTimeout(() => {
  try {
    term.kill('SIGKILL');
  } catch {
    /* gone */
  }
  report();
}, TIMEOUT_MS).unref();
