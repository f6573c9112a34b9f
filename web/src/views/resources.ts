import { ApiError } from '../api.js';
import { isAdmin, type App } from '../app.js';
import { h, svg, toast } from '../dom.js';
import { bytes } from '../format.js';
import { unavailable } from './unavailable.js';

/** Metrics have no push channel: sample them while this tab is open. */
const SAMPLE_EVERY_MS = 5000;
/** Samples kept per sparkline (5 minutes at the cadence above). */
const SAMPLES = 60;

interface Limits {
  maxConcurrentSessions: number;
  maxQueue: number;
  idleTimeoutMs: number;
  paused: boolean;
  running: number;
  queued: number;
  total: number;
}

interface Series {
  label: string;
  pick: (m: Record<string, any>) => number | undefined;
  fmt: (n: number) => string;
  values: number[];
}

/** Limits and pause/resume (admins), and metrics sparklines (GET /api/metrics). */
export function resourcesView(app: App, root: HTMLElement): () => void {
  const limitsBox = h('div', { class: 'card' });
  const metricsBox = h('div', { class: 'card sparks' });
  root.append(h('section', { class: 'view resources-view' }, h('h2', { text: 'Limits' }), limitsBox, h('h2', { text: 'Metrics' }), metricsBox));

  const series: Series[] = [
    { label: 'Running sessions', pick: (m) => m.sessions?.running, fmt: String, values: [] },
    { label: 'Queued', pick: (m) => m.sessions?.queued, fmt: String, values: [] },
    { label: 'WebSocket connections', pick: (m) => m.ws?.connections, fmt: String, values: [] },
    { label: 'Event loop p99', pick: (m) => m.eventLoopLagMs?.p99, fmt: (n) => `${n} ms`, values: [] },
    { label: 'Supervisor RSS', pick: (m) => m.memory?.rss, fmt: (n) => bytes(n), values: [] },
  ];

  async function loadLimits(): Promise<void> {
    if (!isAdmin(app)) {
      limitsBox.replaceChildren(h('p', { class: 'muted', text: 'Limits and pause/resume are for admins.' }));
      return;
    }
    try {
      renderLimits(await app.api.get<Limits>('/api/resources/limits'));
    } catch (err) {
      limitsBox.replaceChildren(unavailable('Limits', err));
    }
  }

  function renderLimits(l: Limits): void {
    const mcs = h('input', { type: 'number', min: '1', value: String(l.maxConcurrentSessions), 'aria-label': 'Max concurrent sessions' });
    const mq = h('input', { type: 'number', min: '0', value: String(l.maxQueue), 'aria-label': 'Max queue' });
    const idle = h('input', { type: 'number', min: '1', value: String(Math.round(l.idleTimeoutMs / 60000)), 'aria-label': 'Idle timeout (minutes)' });
    const save = h('button', { class: 'primary', text: 'Save limits' });
    const pause = h('button', { class: l.paused ? 'primary' : 'danger', text: l.paused ? 'Resume admissions' : 'Pause admissions' });
    save.addEventListener('click', () => void (async () => {
      try {
        renderLimits(await app.api.put<Limits>('/api/resources/limits', {
          maxConcurrentSessions: Number(mcs.value),
          maxQueue: Number(mq.value),
          idleTimeoutMs: Math.round(Number(idle.value) * 60000),
        }));
        toast('Limits saved.');
      } catch (err) {
        toast(`Could not save: ${(err as ApiError).message}`, 'error');
      }
    })());
    pause.addEventListener('click', () => void (async () => {
      try {
        await app.api.post(l.paused ? '/api/resources/resume' : '/api/resources/pause');
        await loadLimits();
      } catch (err) {
        toast((err as Error).message, 'error');
      }
    })());
    limitsBox.replaceChildren(
      h('p', null,
        h('span', { class: `badge ${l.paused ? 'status-queued' : 'status-running'}`, text: l.paused ? 'paused: new sessions queue' : 'admitting' }),
        ` ${l.running} running · ${l.queued} queued · ${l.total} known`),
      h('div', { class: 'row-fields' },
        h('label', null, 'Max concurrent sessions ', mcs),
        h('label', null, 'Max queue ', mq),
        h('label', null, 'Idle timeout (min) ', idle),
        save, pause,
      ),
    );
  }

  async function sample(): Promise<void> {
    let m: Record<string, any>;
    try {
      m = await app.api.get<Record<string, any>>('/api/metrics');
    } catch (err) {
      metricsBox.replaceChildren(unavailable('Metrics', err));
      return;
    }
    for (const s of series) {
      const v = s.pick(m);
      if (typeof v === 'number' && Number.isFinite(v)) {
        s.values.push(v);
        if (s.values.length > SAMPLES) s.values.shift();
      }
    }
    metricsBox.replaceChildren(...series.map((s) => h('div', { class: 'spark' },
      h('div', { class: 'spark-label', text: s.label }),
      sparkline(s.values),
      h('div', { class: 'spark-value', text: s.values.length ? s.fmt(s.values[s.values.length - 1]!) : '–' }),
    )));
  }

  void loadLimits();
  void sample();
  const timer = setInterval(() => {
    if (document.visibilityState === 'visible') void sample();
  }, SAMPLE_EVERY_MS);
  return () => clearInterval(timer);
}

export function sparkline(values: number[], w = 160, hgt = 32): SVGSVGElement {
  const el = svg('svg', { width: w, height: hgt, viewBox: `0 0 ${w} ${hgt}`, class: 'sparkline', role: 'img' });
  if (values.length < 2) return el;
  const max = Math.max(...values);
  const min = Math.min(...values);
  const span = max - min || 1;
  // Right-aligned: the newest sample at the right edge, older ones drift left.
  const step = w / (SAMPLES - 1);
  const pts = values.map((v, i) => `${(w - (values.length - 1 - i) * step).toFixed(1)},${(hgt - 2 - ((v - min) / span) * (hgt - 4)).toFixed(1)}`);
  el.append(svg('polyline', { points: pts.join(' '), fill: 'none', stroke: 'currentColor', 'stroke-width': 1.5 }));
  return el;
}
