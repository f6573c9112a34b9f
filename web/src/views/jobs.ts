import type { App } from '../app.js';
import { h } from '../dom.js';
import { shortId, time } from '../format.js';
import { unavailable } from './unavailable.js';

interface Job {
  id: string;
  sessionId: string;
  orgId: string;
  userId?: string;
  projectName: string;
  agent?: string;
  type?: string;
  status: string;
  exitCode?: number | null;
  at: string;
  message?: string;
}

/** A session event means the job log grew; refetch at most this often. */
const REFRESH_DEBOUNCE_MS = 500;

/** The job log (GET /api/jobs), newest first; refreshed when a session event arrives. */
export function jobsView(app: App, root: HTMLElement): () => void {
  const limit = h('select', { 'aria-label': 'How many' }, ['100', '500', '2000'].map((n) => h('option', { value: n, text: `last ${n}` })));
  const filter = h('input', { type: 'search', placeholder: 'Filter…', class: 'filter', 'aria-label': 'Filter jobs' });
  const tbody = h('tbody');
  const note = h('div');
  let jobs: Job[] = [];
  root.append(
    h('section', { class: 'view jobs-view' },
      h('div', { class: 'toolbar' }, filter, limit, h('button', { text: 'Refresh', onclick: () => void load() })),
      note,
      h('table', { class: 'table jobs' },
        h('thead', null, h('tr', null, ['Time', 'Session', 'Project', 'Agent', 'Type', 'Status', 'Exit', 'Message'].map((t) => h('th', { text: t })))),
        tbody),
    ),
  );
  const render = () => {
    const q = filter.value.trim().toLowerCase();
    const rows = jobs.filter((j) => !q || [j.sessionId, j.orgId, j.projectName, j.agent, j.status, j.message, j.userId].some((v) => v && v.toLowerCase().includes(q)));
    tbody.replaceChildren(...rows.map((j) => h('tr', { class: `status-${j.status}` },
      h('td', { text: time(j.at) }),
      h('td', { class: 'mono' }, h('a', { href: `#/s/${j.sessionId}`, text: shortId(j.sessionId), title: j.sessionId })),
      h('td', { text: `${j.orgId}/${j.projectName}` }),
      h('td', { text: j.agent ?? '' }),
      h('td', { text: j.type === 'one_off' ? 'one-off' : j.type === 'long_running' ? 'long-running' : (j.type ?? '') }),
      h('td', null, h('span', { class: `badge status-${j.status}`, text: j.status })),
      h('td', { class: 'num', text: j.exitCode === null || j.exitCode === undefined ? '' : String(j.exitCode) }),
      h('td', { text: j.message ?? '' }),
    )));
  };
  async function load(): Promise<void> {
    try {
      jobs = (await app.api.get<{ items: Job[] }>(`/api/jobs?limit=${limit.value}`)).items;
      note.replaceChildren();
    } catch (err) {
      note.replaceChildren(unavailable('Jobs', err));
    }
    render();
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const off = app.store.onEvent(() => {
    clearTimeout(timer);
    timer = setTimeout(() => void load(), REFRESH_DEBOUNCE_MS);
  });
  filter.addEventListener('input', render);
  limit.addEventListener('change', () => void load());
  void load();
  return () => {
    off();
    clearTimeout(timer);
  };
}
