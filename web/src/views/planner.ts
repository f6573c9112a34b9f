import { enc, type SessionView } from '../api.js';
import type { App } from '../app.js';
import { h, toast } from '../dom.js';
import { unavailable } from './unavailable.js';

interface Criterion {
  id: string;
  text: string;
  done: boolean;
}
interface Card {
  id: string;
  title: string;
  description?: string;
  status: string;
  criteria?: Criterion[];
  logs?: Array<{ at: string; message: string; author?: string }>;
}
interface PlannerDoc {
  version: number;
  updatedAt?: string;
  cards: Card[];
}

/** Usual board columns first; any other status gets its own column after them. */
const COLUMN_ORDER = ['backlog', 'todo', 'planned', 'in_progress', 'doing', 'review', 'blocked', 'done'];

/**
 * The project's planner board (GET /api/planner/:orgId/:projectName), live: a
 * `planner:updated` event on `project:<org>/<project>` reloads it. Criteria can be ticked
 * and cards moved between columns. Without the planner routes, it says so.
 */
export function plannerPanel(app: App, root: HTMLElement, session: () => SessionView | undefined, readOnly = false): () => void {
  const body = h('div');
  const status = h('span', { class: 'muted' });
  root.append(h('div', { class: 'toolbar' }, h('button', { text: 'Refresh', onclick: () => void load() }), status), body);
  let doc: PlannerDoc | undefined;
  let base = '';
  let off: (() => void) | undefined;
  let disposed = false;

  async function load(): Promise<void> {
    const s = session();
    if (!s) {
      if (!disposed) setTimeout(() => void load(), 300);
      return;
    }
    base = `/api/planner/${enc(s.orgId)}/${enc(s.projectName)}`;
    off ??= app.socket.subscribe(`project:${s.orgId}/${s.projectName}`, (name, payload) => {
      if (name !== 'planner:updated') return;
      const v = (payload as { version?: number } | undefined)?.version;
      if (doc && typeof v === 'number' && v === doc.version) return;
      void load();
    });
    try {
      doc = await app.api.get<PlannerDoc>(base);
    } catch (err) {
      body.replaceChildren(unavailable('Planner', err));
      status.textContent = '';
      return;
    }
    status.textContent = `version ${doc.version}${doc.updatedAt ? ` · updated ${new Date(doc.updatedAt).toLocaleString()}` : ''}`;
    render();
  }

  function render(): void {
    if (!doc) return;
    const cards = Array.isArray(doc.cards) ? doc.cards : [];
    const statuses = [...new Set(cards.map((c) => c.status || 'todo'))];
    statuses.sort((a, b) => rankCol(a) - rankCol(b));
    if (!cards.length) {
      body.replaceChildren(h('p', { class: 'muted', text: 'The planner has no cards yet.' }));
      return;
    }
    body.replaceChildren(
      h('div', { class: 'board' }, statuses.map((st) =>
        h('div', { class: 'column' },
          h('h3', { text: `${st.replace(/_/g, ' ')} (${cards.filter((c) => (c.status || 'todo') === st).length})` }),
          cards.filter((c) => (c.status || 'todo') === st).map((c) => cardEl(c, statuses)),
        ),
      )),
    );
  }

  function cardEl(c: Card, statuses: string[]): HTMLElement {
    const move = h('select', { 'aria-label': 'Move card' }, [...new Set([...statuses, ...COLUMN_ORDER.filter((x) => ['todo', 'in_progress', 'done'].includes(x))])].map((st) =>
      h('option', { value: st, text: st.replace(/_/g, ' '), selected: st === c.status }),
    ));
    move.disabled = readOnly;
    move.addEventListener('change', () => void write(`${base}/cards/${enc(c.id)}`, { status: move.value }));
    const crit = c.criteria ?? [];
    return h('div', { class: 'card planner-card', 'data-card': c.id },
      h('div', { class: 'card-title', text: c.title || c.id }),
      c.description ? h('p', { class: 'muted', text: c.description }) : null,
      crit.length
        ? h('ul', { class: 'criteria' }, crit.map((ac) => {
          const box = h('input', { type: 'checkbox', checked: !!ac.done, disabled: readOnly, 'data-criterion': ac.id });
          box.addEventListener('change', () => void write(`${base}/cards/${enc(c.id)}/criteria/${enc(ac.id)}`, { done: box.checked }));
          return h('li', null, h('label', null, box, ' ', ac.text));
        }))
        : null,
      h('div', { class: 'card-foot' }, move, c.logs?.length ? h('span', { class: 'muted', text: `${c.logs.length} log entr${c.logs.length === 1 ? 'y' : 'ies'}` }) : null),
    );
  }

  async function write(path: string, body: unknown): Promise<void> {
    try {
      await app.api.patch(path, body);
      await load();
    } catch (err) {
      toast(`Planner: ${(err as Error).message}`, 'error');
      await load();
    }
  }

  void load();
  return () => {
    disposed = true;
    off?.();
  };
}

function rankCol(s: string): number {
  const i = COLUMN_ORDER.indexOf(s);
  return i < 0 ? COLUMN_ORDER.length : i;
}
