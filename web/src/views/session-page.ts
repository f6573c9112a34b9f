import { TERMINAL_STATUSES, type SessionView } from '../api.js';
import { isGuest, type App } from '../app.js';
import { h, toast } from '../dom.js';
import { age, command, shortId } from '../format.js';
import { TerminalView } from './terminal.js';
import { logsPanel } from './logs.js';
import { workspacePanel } from './workspace.js';
import { plannerPanel } from './planner.js';

type Tab = 'terminal' | 'logs' | 'workspace' | 'planner';

/** One session: header, then Terminal / Logs / Workspace / Planner. The terminal stays attached across tabs. */
export function sessionPage(app: App, root: HTMLElement, params: string[]): () => void {
  const id = (params[0] ?? '').toLowerCase();
  const guest = isGuest(app);
  const tabs: Tab[] = guest ? ['terminal', 'logs', 'planner'] : ['terminal', 'logs', 'workspace', 'planner'];
  let tab: Tab = tabs.includes(params[1] as Tab) ? (params[1] as Tab) : 'terminal';
  const cleanups: Array<() => void> = [];

  const statusBadge = h('span', { class: 'badge' });
  const title = h('h2', { class: 'session-title' });
  const meta = h('div', { class: 'muted session-meta' });
  const killBtn = guest ? null : h('button', { class: 'danger', text: 'Kill', onclick: () => void kill() });
  const interruptBtn = guest ? null : h('button', { text: 'Ctrl-C', title: 'Send an interrupt (input \\u0003)', onclick: () => app.socket.send({ type: 'input', sessionId: id, data: '\u0003' }) });
  const banner = h('div', { class: 'banner hidden', role: 'status' });
  const tabBar = h('nav', { class: 'subtabs', role: 'tablist' });
  const panels = new Map<Tab, HTMLElement>();
  for (const t of tabs) panels.set(t, h('div', { class: `panel panel-${t}`, role: 'tabpanel' }));

  root.append(
    h('section', { class: 'view session-page' },
      h('div', { class: 'session-head' },
        h('a', { href: '#/sessions', class: 'back', text: '← Sessions' }),
        title, statusBadge,
        guest ? h('span', { class: 'badge readonly', title: 'A share link may only watch', text: 'read-only' }) : null,
        h('span', { class: 'spacer' }),
        interruptBtn, killBtn,
      ),
      meta, banner, tabBar,
      [...panels.values()],
    ),
  );

  let session: SessionView | undefined = app.store.sessions.get(id);
  const paint = () => {
    const s = session;
    title.textContent = s ? `${s.agent} · ${s.orgId}/${s.projectName}` : shortId(id);
    statusBadge.textContent = s?.status ?? '…';
    statusBadge.className = `badge status-${s?.status ?? 'unknown'}`;
    meta.textContent = s
      ? `${s.id} · user ${s.userId} · ${s.type === 'one_off' ? 'one-off' : 'long-running'}${command(s.command) ? ` · ${command(s.command)}` : ''} · started ${age(s.startedAt ?? s.createdAt)} ago`
      : id;
    if (killBtn) killBtn.disabled = !s || TERMINAL_STATUSES.has(s.status);
    if (interruptBtn) interruptBtn.disabled = !s || s.status !== 'running';
  };
  paint();
  cleanups.push(app.store.onChange(() => {
    const s = app.store.sessions.get(id);
    if (s && s !== session) {
      session = s;
      paint();
    }
  }));
  if (!session) {
    app.api.get<SessionView>(`/api/sessions/${id}`).then(
      (s) => {
        app.store.upsert(s);
        session = app.store.sessions.get(id) ?? s;
        paint();
      },
      (err: Error) => showBanner(err.message),
    );
  }

  function showBanner(text: string): void {
    banner.textContent = text;
    banner.classList.remove('hidden');
  }

  async function kill(): Promise<void> {
    if (!confirm(`Kill session ${shortId(id)}?`)) return;
    try {
      app.store.upsert(await app.api.del<SessionView>(`/api/sessions/${id}`));
    } catch (err) {
      toast(`Kill failed: ${(err as Error).message}`, 'error');
    }
  }

  // The terminal.
  const term = new TerminalView(app.socket, id, {
    readOnly: guest,
    onStatus: (status) => {
      if (session && session.status !== status) {
        session = { ...session, status };
        paint();
      }
    },
    onError: (message) => showBanner(`Terminal: ${message}`),
  });
  panels.get('terminal')!.append(term.el);
  term.mount();
  cleanups.push(() => term.dispose());

  // The other tabs load when first shown.
  const loaded = new Set<Tab>(['terminal']);
  const load = (t: Tab) => {
    if (loaded.has(t)) return;
    loaded.add(t);
    const panel = panels.get(t)!;
    const project = () => session ?? app.store.sessions.get(id);
    if (t === 'logs') cleanups.push(logsPanel(app, panel, id));
    if (t === 'workspace') cleanups.push(workspacePanel(app, panel, project));
    if (t === 'planner') cleanups.push(plannerPanel(app, panel, project, guest));
  };
  const show = (t: Tab) => {
    tab = t;
    for (const [name, panel] of panels) panel.classList.toggle('hidden', name !== t);
    for (const b of tabBar.querySelectorAll('button')) b.setAttribute('aria-selected', String(b.dataset.tab === t));
    load(t);
    if (t === 'terminal') term.focus();
    history.replaceState(history.state, '', `#/s/${id}${t === 'terminal' ? '' : `/${t}`}`);
  };
  for (const t of tabs) {
    const b = h('button', { role: 'tab', 'data-tab': t, text: t[0]!.toUpperCase() + t.slice(1), onclick: () => show(t) });
    tabBar.append(b);
  }
  show(tab);
  return () => {
    for (const c of cleanups.splice(0)) c();
  };
}
