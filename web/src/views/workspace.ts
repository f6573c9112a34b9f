import { enc, type SessionView } from '../api.js';
import type { App } from '../app.js';
import { h, toast } from '../dom.js';
import { bytes, time } from '../format.js';
import { unavailable } from './unavailable.js';

/** Most file entries shown at once; a workspace listing can be long. */
const MAX_FILES = 1000;

interface FileEntry {
  path: string;
  size: number | undefined;
  type: string | undefined;
  modified: string | undefined;
}

/**
 * The session's workspace (GET /api/dev-envs/:orgId/:projectName) and its zip download.
 * The dev-env routes come from the workspace feature; without them this says so.
 */
export function workspacePanel(app: App, root: HTMLElement, session: () => SessionView | undefined): () => void {
  const body = h('div');
  root.append(body);
  let disposed = false;
  const load = async () => {
    const s = session();
    if (!s) {
      body.replaceChildren(h('p', { class: 'muted', text: 'Loading the session…' }));
      if (!disposed) setTimeout(() => void load(), 300);
      return;
    }
    const base = `/api/dev-envs/${enc(s.orgId)}/${enc(s.projectName)}`;
    body.replaceChildren(h('p', { class: 'muted', text: 'Loading…' }));
    let info: Record<string, unknown>;
    try {
      info = await app.api.get<Record<string, unknown>>(base);
    } catch (err) {
      body.replaceChildren(unavailable('Workspace', err));
      return;
    }
    const facts = Object.entries(info).filter(([, v]) => v === null || ['string', 'number', 'boolean'].includes(typeof v));
    const files = findFiles(info);
    const download = h('button', { class: 'primary', text: 'Download zip', onclick: () => void downloadZip(app, base, s) });
    body.replaceChildren(
      h('div', { class: 'toolbar' }, download, h('button', { text: 'Refresh', onclick: () => void load() })),
      h('dl', { class: 'facts' }, facts.flatMap(([k, v]) => [h('dt', { text: k }), h('dd', { text: String(v) })])),
      files.length
        ? h('table', { class: 'table files' },
          h('thead', null, h('tr', null, h('th', { text: 'Path' }), h('th', { text: 'Size' }), h('th', { text: 'Modified' }))),
          h('tbody', null, files.slice(0, MAX_FILES).map((f) => h('tr', null,
            h('td', { class: 'mono', text: f.type === 'dir' || f.type === 'directory' ? `${f.path}/` : f.path }),
            h('td', { class: 'num', text: bytes(f.size) }),
            h('td', { text: time(f.modified) }),
          ))))
        : h('p', { class: 'muted', text: 'No file listing in this answer.' }),
      files.length > MAX_FILES ? h('p', { class: 'muted', text: `…and ${files.length - MAX_FILES} more.` }) : '',
    );
  };
  void load();
  return () => {
    disposed = true;
  };
}

/** Any array of file-like entries in the answer (files, tree, entries, artifacts…). */
function findFiles(info: Record<string, unknown>): FileEntry[] {
  const out: FileEntry[] = [];
  for (const [key, v] of Object.entries(info)) {
    if (!Array.isArray(v)) continue;
    for (const e of v) {
      if (typeof e === 'string') out.push({ path: key === 'artifacts' ? `artifacts/${e}` : e, size: undefined, type: undefined, modified: undefined });
      else if (e && typeof e === 'object') {
        const o = e as Record<string, unknown>;
        const p = typeof o.path === 'string' ? o.path : typeof o.name === 'string' ? o.name : undefined;
        if (!p) continue;
        out.push({
          path: key === 'artifacts' && !p.startsWith('artifacts/') ? `artifacts/${p}` : p,
          size: typeof o.size === 'number' ? o.size : undefined,
          type: typeof o.type === 'string' ? o.type : o.isDirectory === true ? 'dir' : undefined,
          modified: typeof o.modifiedAt === 'string' ? o.modifiedAt : typeof o.mtime === 'string' ? o.mtime : undefined,
        });
      }
    }
  }
  return out;
}

/** The zip needs the bearer header, so it is fetched and handed to the browser as a blob. */
async function downloadZip(app: App, base: string, s: SessionView): Promise<void> {
  try {
    const blob = await app.api.blob(`${base}/download`);
    const url = URL.createObjectURL(blob);
    const a = h('a', { href: url, download: `${s.orgId}-${s.projectName}.zip` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch (err) {
    toast(`Download failed: ${(err as Error).message}`, 'error');
  }
}
