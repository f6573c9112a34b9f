/** An SVG bar chart of the headline figures, generated from a results file (no dependencies). */
import type { ResultsFile } from './results.js';

interface Bar {
  label: string;
  value: number;
  kind: 'project' | 'baseline' | 'limit';
}

interface Group {
  title: string;
  unit: string;
  better: 'lower' | 'higher';
  bars: Bar[];
}

const COLORS = { project: '#2f6fde', baseline: '#e07b39', limit: '#9a9a9a' };
const WIDTH = 820;
const LABEL_W = 250;
const BAR_AREA = 440;
const BAR_H = 16;
const GAP = 4;

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function num(x: unknown): number {
  return typeof x === 'number' && Number.isFinite(x) ? x : NaN;
}

function fmtValue(v: number, unit: string): string {
  if (!Number.isFinite(v)) return 'n/a';
  if (unit === 'B') return `${Math.round(v).toLocaleString('en-US')} B`;
  const s = Math.abs(v) >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(Math.abs(v) >= 10 ? 1 : 2);
  return `${s} ${unit}`;
}

export function groupsFrom(r: ResultsFile): Group[] {
  const s = r.scenarios;
  const med = (name: string, side: 'project' | 'baseline') => s[name]?.[side]?.median ?? {};
  const lim = (name: string) => s.limits?.limits?.[name]?.median ?? s.fanout?.limits?.[name]?.median ?? {};
  const groups: Group[] = [];
  const pair = (title: string, unit: string, better: Group['better'], scenario: string, key: string, limits: Bar[] = []) => {
    if (!s[scenario]?.project && !s[scenario]?.baseline) return;
    groups.push({
      title,
      unit,
      better,
      bars: [
        { label: 'project', value: num(med(scenario, 'project')[key]), kind: 'project' },
        { label: 'baseline', value: num(med(scenario, 'baseline')[key]), kind: 'baseline' },
        ...limits,
      ],
    });
  };
  pair('Server RSS per idle socket', 'KiB', 'lower', 'idle-conns', 'rssPerSocketKiB');
  pair('Connect + attach rate', 'conn/s', 'higher', 'idle-conns', 'connectPerS');
  pair(`Echo latency p99 (${s['echo-latency']?.sizes.sessions ?? '?'} sessions)`, 'ms', 'lower', 'echo-latency', 'p99Ms');
  pair('Echo throughput', 'pings/s', 'higher', 'echo-latency', 'pingsPerS');
  pair(`Fan-out per viewer (${s.fanout?.sizes.viewers ?? '?'} viewers)`, 'MB/s', 'higher', 'fanout', 'mbpsPerViewer', [
    { label: 'limit: pty read', value: num(lim('pty-read').mbps), kind: 'limit' },
    { label: 'limit: uWS from memory', value: num(lim('uws-fanout').mbpsPerViewer), kind: 'limit' },
  ]);
  pair('Server CPU per delivered GB', 'CPU-s', 'lower', 'fanout', 'cpuSPerGB', [
    { label: 'limit: uWS from memory', value: num(lim('uws-fanout').cpuSPerGB), kind: 'limit' },
  ]);
  const worst = (side: 'project' | 'baseline') => Math.max(0, ...(s.fanout?.[side]?.runs ?? []).filter((x) => !x.failed).map((x) => num(x.metrics.lostAtExitBytes)));
  if (s.fanout?.project || s.fanout?.baseline) {
    groups.push({
      title: 'Bytes lost at agent exit (worst run)',
      unit: 'B',
      better: 'lower',
      bars: [
        { label: 'project', value: worst('project'), kind: 'project' },
        { label: 'baseline', value: worst('baseline'), kind: 'baseline' },
      ],
    });
  }
  pair('Spawn + kill rate', 'sessions/s', 'higher', 'spawn-rate', 'perS');
  pair('REST: GET /api/sessions under autocannon', 'req/s', 'higher', 'rest', 'listReqPerS');
  if ('patchReqPerS' in med('rest', 'project') || 'patchReqPerS' in med('rest', 'baseline')) {
    pair('REST: planner card PATCH under autocannon', 'req/s', 'higher', 'rest', 'patchReqPerS');
  }
  return groups;
}

export function renderChart(r: ResultsFile): string {
  const groups = groupsFrom(r);
  const parts: string[] = [];
  let y = 70;
  for (const g of groups) {
    const p = g.bars.find((b) => b.kind === 'project')?.value ?? NaN;
    const b = g.bars.find((b) => b.kind === 'baseline')?.value ?? NaN;
    const r = Number.isFinite(p) && Number.isFinite(b) && b !== 0 ? ` · project/baseline ${(p / b).toFixed(p / b < 0.1 ? 3 : 2)}×` : '';
    parts.push(`<text x="12" y="${y}" class="t">${esc(g.title)}</text><text x="${WIDTH - 12}" y="${y}" class="n" text-anchor="end">${g.better} is better${r}</text>`);
    y += 8;
    const max = Math.max(...g.bars.map((b) => (Number.isFinite(b.value) ? b.value : 0)), 1e-9);
    for (const b of g.bars) {
      const w = Number.isFinite(b.value) ? Math.max(1, (b.value / max) * BAR_AREA) : 0;
      parts.push(
        `<text x="${LABEL_W - 8}" y="${y + BAR_H - 4}" class="l" text-anchor="end">${esc(b.label)}</text>` +
          `<rect x="${LABEL_W}" y="${y}" width="${w.toFixed(1)}" height="${BAR_H}" fill="${COLORS[b.kind]}"/>` +
          `<text x="${LABEL_W + w + 6}" y="${y + BAR_H - 4}" class="v">${esc(fmtValue(b.value, g.unit))}</text>`,
      );
      y += BAR_H + GAP;
    }
    y += 22;
  }
  const height = y;
  const title = `session-manager vs Express + Socket.IO + node-pty — ${r.date}${r.quick ? ' (quick sizes)' : ''}`;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="system-ui, -apple-system, Segoe UI, sans-serif">`,
    '<style>.t{font-size:13px;font-weight:600;fill:#222}.l{font-size:12px;fill:#444}.v{font-size:12px;fill:#222}.n{font-size:11px;fill:#777}.h{font-size:15px;font-weight:700;fill:#111}</style>',
    `<rect width="${WIDTH}" height="${height}" fill="#fff"/>`,
    `<text x="12" y="24" class="h">${esc(title)}</text>`,
    `<text x="12" y="40" class="n">medians of ${r.runs} alternating runs per side; bars scaled per figure; ${esc(r.machine.cpuModel)} × ${r.machine.cores}</text>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}
