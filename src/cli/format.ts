/** Human output: aligned tables, ages, sizes. `--json` bypasses all of this. */

const useColor = () => process.stdout.isTTY === true && !process.env.NO_COLOR;

const STATUS_COLOR: Record<string, number> = {
  running: 32, starting: 33, queued: 33, exited: 90, idle_terminated: 90, killed: 31, failed: 31, crashed: 31, lost: 31,
};

export function status(s: string): string {
  const c = STATUS_COLOR[s];
  return useColor() && c ? `\x1b[${c}m${s}\x1b[0m` : s;
}

/** Visible width (escape sequences do not count). */
function width(s: string): number {
  // eslint-disable-next-line no-control-regex
  return [...s.replace(/\x1b\[[0-9;]*m/g, '')].length;
}

export function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(width(h), ...rows.map((r) => width(r[i] ?? ''))));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c + ' '.repeat(widths[i]! - width(c)))).join('  ').trimEnd();
  return [line(head), ...rows.map(line)].join('\n') + '\n';
}

export function keyValues(pairs: Array<[string, unknown]>): string {
  const w = Math.max(...pairs.map(([k]) => k.length));
  return pairs.filter(([, v]) => v !== undefined && v !== null && v !== '').map(([k, v]) => `${(k + ':').padEnd(w + 1)} ${String(v)}`).join('\n') + '\n';
}

export function age(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '';
  const s = Math.max(0, Math.floor((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h`;
  return `${Math.floor(h / 24)}d`;
}

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '';
  if (n < 1024) return `${n}B`;
  const u = ['K', 'M', 'G', 'T'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < u.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)}${u[i]}`;
}

export function cpu(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '';
  return ms < 1000 ? `${Math.round(ms)}ms` : `${(ms / 1000).toFixed(1)}s`;
}

export function command(c: unknown): string {
  return Array.isArray(c) ? c.join(' ') : typeof c === 'string' ? c : '';
}
