import type { App } from '../app.js';
import { h } from '../dom.js';

/** CSI/OSC escape sequences: the log is pty output; the tab shows it as plain text. */
// eslint-disable-next-line no-control-regex
const ANSI = /\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[()][A-Za-z0-9]|[=>78cDEHMNOZ])/g;

export function stripAnsi(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(ANSI, '').replace(/\r(?!\n)/g, '\n').replace(/\r\n/g, '\n').replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '');
}

/** Tail of console.log (GET /api/sessions/:id/logs?lines=N). */
export function logsPanel(app: App, root: HTMLElement, id: string): () => void {
  const lines = h('select', { 'aria-label': 'Lines' }, ['200', '1000', '5000'].map((n) => h('option', { value: n, text: `${n} lines` })));
  const pre = h('pre', { class: 'logs' });
  const status = h('span', { class: 'muted' });
  const reload = async () => {
    status.textContent = 'Loading…';
    try {
      const text = await app.api.text(`/api/sessions/${id}/logs?lines=${lines.value}`);
      pre.textContent = stripAnsi(text) || '(empty)';
      status.textContent = `Fetched ${new Date().toLocaleTimeString()}`;
      pre.scrollTop = pre.scrollHeight;
    } catch (err) {
      status.textContent = '';
      pre.textContent = `Could not load the log: ${(err as Error).message}`;
    }
  };
  lines.addEventListener('change', () => void reload());
  root.append(h('div', { class: 'toolbar' }, lines, h('button', { text: 'Refresh', onclick: () => void reload() }), status), pre);
  void reload();
  return () => {};
}
