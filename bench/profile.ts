/**
 * Where did the time go? Summarises V8 .cpuprofile files (from `bench … --cpu-prof DIR`)
 * and V8 tick logs (isolate-*.log from `bench … --prof DIR`, through `node --prof-process`):
 * per file (one per thread), the busy time and the functions with the most self time.
 * Usage: node dist/bench/profile.js <dir|file>… [--top N]
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

function files(p: string): string[] {
  if (statSync(p).isDirectory()) return readdirSync(p).flatMap((f) => files(path.join(p, f)));
  return p.endsWith('.cpuprofile') || /isolate-.*\.log$/.test(p) ? [p] : [];
}

function short(url: string): string {
  if (!url) return '';
  const u = url.replace(/^file:\/\//, '');
  const i = u.indexOf('node_modules/');
  if (i >= 0) return u.slice(i + 'node_modules/'.length);
  const d = u.indexOf('/dist/');
  return d >= 0 ? u.slice(d + 1) : path.basename(u);
}

/** The summary and the top of the bottom-up profile of a V8 tick log. */
function summariseTickLog(file: string, top: number): string {
  const text = execFileSync(process.execPath, ['--prof-process', file], { encoding: 'utf8', maxBuffer: 256 << 20, stdio: ['ignore', 'pipe', 'ignore'] });
  const lines = text.split('\n');
  const section = (title: string, n: number) => {
    const i = lines.findIndex((l) => l.includes(title));
    return i < 0 ? [] : lines.slice(i, i + n).filter((l) => l.trim() !== '');
  };
  return [`${path.basename(file)}:`, ...section('[Summary]', 12), ...section('[JavaScript]', top + 2), ...section('[C++]', top + 2), ...section('[Bottom up (heavy) profile]', top * 2 + 5)].join('\n');
}

export function summarise(file: string, top: number): string {
  if (file.endsWith('.log')) return summariseTickLog(file, top);
  const prof = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (let i = 0; i < prof.samples.length; i++) {
    const n = byId.get(prof.samples[i]!);
    const dt = prof.timeDeltas[i] ?? 0;
    if (!n) continue;
    const name = n.callFrame.functionName || '(anonymous)';
    if (name === '(idle)') {
      idle += dt;
      continue;
    }
    total += dt;
    const key = `${name} ${short(n.callFrame.url)}${n.callFrame.url ? `:${n.callFrame.lineNumber + 1}` : ''}`;
    self.set(key, (self.get(key) ?? 0) + dt);
  }
  const rows = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, top);
  const ms = (us: number) => (us / 1000).toFixed(0).padStart(7);
  const out = [`${path.basename(file)}: busy ${ms(total)} ms, idle ${ms(idle)} ms`];
  for (const [k, v] of rows) out.push(`  ${ms(v)} ms ${((v / Math.max(1, total)) * 100).toFixed(1).padStart(5)} %  ${k}`);
  return out.join('\n');
}

function main(): void {
  const args = process.argv.slice(2);
  let top = 15;
  const paths: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--top') top = Number(args[++i]);
    else paths.push(args[i]!);
  }
  if (paths.length === 0) {
    process.stderr.write('usage: node dist/bench/profile.js <dir|file>… [--top N]\n');
    process.exit(2);
  }
  for (const f of paths.flatMap(files)) process.stdout.write(`${summarise(f, top)}\n\n`);
}

main();
