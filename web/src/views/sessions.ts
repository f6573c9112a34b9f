import { ApiError, TERMINAL_STATUSES, type SessionView } from '../api.js';
import { isAdmin, isGuest, type App } from '../app.js';
import { h, toast } from '../dom.js';
import { age, bytes, command, cpu, shortId } from '../format.js';

/** Ages in the table tick locally; nothing is fetched for it. */
const AGE_TICK_MS = 5000;
const AGENTS = ['bash', 'claude', 'codex', 'script'];

/** The sessions table: live through org events, with create, kill and a filter. */
export function sessionsView(app: App, root: HTMLElement): () => void {
  const guest = isGuest(app);
  const admin = isAdmin(app);
  const filter = h('input', { type: 'search', placeholder: 'Filter: id, agent, project, user, status…', class: 'filter', 'aria-label': 'Filter sessions' });
  const statusSel = h('select', { 'aria-label': 'Status filter' },
    h('option', { value: 'all', text: 'All' }),
    h('option', { value: 'live', text: 'Live (queued, starting, running)' }),
    h('option', { value: 'ended', text: 'Ended' }),
  );
  const tbody = h('tbody');
  const guestNote = h('p', { class: 'muted guest-note' });
  const empty = h('p', { class: 'muted empty' });
  const showOrg = admin;
  const head = h('tr', null,
    ['Status', 'Session', 'Agent', 'Project', showOrg ? 'Org' : null, 'User', 'Age', 'CPU', 'RSS', 'Viewers', ''].filter((x) => x !== null).map((t) => h('th', { text: t })),
  );
  const form = guest ? null : createForm(app);
  const newBtn = guest ? null : h('button', { class: 'primary', text: 'New session', onclick: () => form!.classList.toggle('hidden') });
  const refresh = h('button', { text: 'Refresh', title: 'Fetch the list again (updates arrive live anyway)', onclick: () => void app.store.load() });

  root.append(
    h('section', { class: 'view sessions-view' },
      h('div', { class: 'toolbar' }, filter, statusSel, refresh, newBtn),
      form,
      guestNote,
      h('table', { class: 'table sessions' }, h('thead', null, head), tbody),
      empty,
    ),
  );

  let raf = 0;
  const render = () => {
    raf = 0;
    const q = filter.value.trim().toLowerCase();
    const mode = statusSel.value;
    const rows = app.store.list().filter((s) => {
      const ended = TERMINAL_STATUSES.has(s.status);
      if (mode === 'live' && ended) return false;
      if (mode === 'ended' && !ended) return false;
      if (!q) return true;
      return [s.id, s.agent, s.projectName, s.orgId, s.userId, s.status, command(s.command)].some((v) => v && v.toLowerCase().includes(q));
    });
    tbody.replaceChildren(...rows.map((s) => row(app, s, showOrg, guest)));
    const g = app.store.guest;
    if (guest && g?.projectName) {
      guestNote.textContent = `Watching ${g.orgId ?? ''}/${g.projectName}${g.host ? `, shared by ${g.host}` : ''} — read-only${g.expiresAt ? `, until ${new Date(g.expiresAt).toLocaleString()}` : ''}.`;
    }
    empty.textContent = app.store.error ? `Could not load sessions: ${app.store.error}` : !app.store.loaded ? 'Loading…' : rows.length ? '' : app.store.sessions.size ? 'No session matches the filter.' : 'No sessions yet.';
  };
  const schedule = () => {
    if (!raf) raf = requestAnimationFrame(render);
  };
  filter.addEventListener('input', schedule);
  statusSel.addEventListener('change', schedule);
  const off = app.store.onChange(schedule);
  const tick = setInterval(schedule, AGE_TICK_MS);
  render();
  return () => {
    off();
    clearInterval(tick);
    cancelAnimationFrame(raf);
  };
}

function row(app: App, s: SessionView, showOrg: boolean, guest: boolean): HTMLTableRowElement {
  const ended = TERMINAL_STATUSES.has(s.status);
  const open = () => app.go(`/s/${s.id}`);
  const kill = async (ev: Event) => {
    ev.stopPropagation();
    if (!confirm(`Kill session ${shortId(s.id)} (${s.agent}, ${s.projectName})?`)) return;
    try {
      const v = await app.api.del<SessionView>(`/api/sessions/${s.id}`);
      app.store.upsert(v);
    } catch (err) {
      toast(`Kill failed: ${(err as Error).message}`, 'error');
    }
  };
  const status = s.status === 'queued' && s.queuePosition ? `queued #${s.queuePosition}` : s.status;
  const exit = ended && s.exitCode !== null && s.exitCode !== undefined ? ` (${s.exitCode})` : '';
  return h('tr', { class: `row status-${s.status}`, 'data-id': s.id, onclick: open },
    h('td', null, h('span', { class: `badge status-${s.status}`, text: status + exit })),
    h('td', { class: 'mono', title: s.id }, h('a', { href: `#/s/${s.id}`, text: shortId(s.id) })),
    h('td', { text: s.agent, title: command(s.command) }),
    h('td', { text: s.projectName }),
    showOrg ? h('td', { text: s.orgId }) : null,
    h('td', { text: s.userId }),
    h('td', { text: age(s.createdAt), title: s.createdAt }),
    h('td', { class: 'num', text: cpu(s.usage?.cpuMs) }),
    h('td', { class: 'num', text: bytes(s.usage?.rssBytes) }),
    h('td', { class: 'num', text: String(s.viewers ?? 0) }),
    h('td', { class: 'actions' }, !guest && !ended ? h('button', { class: 'danger small', text: 'Kill', onclick: kill }) : null),
  );
}

function createForm(app: App): HTMLFormElement {
  const claims = app.creds.kind === 'token' ? app.creds.claims : undefined;
  const project = h('input', { name: 'project', required: true, placeholder: 'my-app', pattern: '[A-Za-z0-9][A-Za-z0-9._\\-]{0,63}', 'aria-label': 'Project' });
  const org = h('input', { name: 'org', value: claims?.orgId ?? '', placeholder: 'org', pattern: '[A-Za-z0-9][A-Za-z0-9._\\-]{0,63}', 'aria-label': 'Org' });
  const kindLong = h('input', { type: 'radio', name: 'kind', value: 'long', checked: true });
  const kindOne = h('input', { type: 'radio', name: 'kind', value: 'one' });
  const agent = h('input', { name: 'agent', value: 'bash', list: 'agent-list', 'aria-label': 'Agent' });
  const cmd = h('input', { name: 'command', placeholder: 'command (one-off jobs, or a profile without one)', 'aria-label': 'Command', class: 'wide' });
  const priority = h('input', { name: 'priority', type: 'number', value: '0', min: '-1000', max: '1000', 'aria-label': 'Priority', class: 'narrow' });
  const submit = h('button', { type: 'submit', class: 'primary', text: 'Start' });
  const syncKind = () => {
    if (kindOne.checked) {
      agent.value = 'script';
      cmd.required = true;
      submit.textContent = 'Queue job';
    } else {
      if (agent.value === 'script') agent.value = 'bash';
      cmd.required = false;
      submit.textContent = 'Start';
    }
  };
  kindLong.addEventListener('change', syncKind);
  kindOne.addEventListener('change', syncKind);
  const form = h('form', { class: 'card create hidden', 'aria-label': 'New session' },
    h('datalist', { id: 'agent-list' }, AGENTS.map((a) => h('option', { value: a }))),
    h('div', { class: 'row-fields' },
      h('label', null, 'Project ', project),
      h('label', null, 'Org ', org),
      h('label', null, kindLong, ' long-running'),
      h('label', null, kindOne, ' one-off job'),
      h('label', null, 'Agent ', agent),
      h('label', null, 'Priority ', priority),
    ),
    h('div', { class: 'row-fields' }, h('label', { class: 'grow' }, 'Command ', cmd), submit),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void (async () => {
      const body: Record<string, unknown> = { projectName: project.value.trim(), agent: agent.value.trim() || 'bash', priority: Number(priority.value) || 0 };
      if (org.value.trim()) body.orgId = org.value.trim();
      if (cmd.value.trim()) body.command = cmd.value.trim();
      submit.disabled = true;
      try {
        if (body.orgId) app.store.watchOrg(String(body.orgId));
        const s = await app.api.post<{ id: string; status: string; queuePosition?: number }>('/api/sessions', body);
        const full = await app.api.get<SessionView>(`/api/sessions/${s.id}`).catch(() => undefined);
        if (full) app.store.upsert(full);
        form.classList.add('hidden');
        if (s.status === 'queued') toast(`Queued at position ${s.queuePosition ?? '?'}.`);
        else if (kindOne.checked) toast(`Job ${shortId(s.id)} started.`);
        else app.go(`/s/${s.id}`);
      } catch (err) {
        const e = err as ApiError;
        toast(`Could not start: ${e.message}`, 'error');
      } finally {
        submit.disabled = false;
      }
    })();
  });
  return form;
}
