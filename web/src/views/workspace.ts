import { enc, TERMINAL_STATUSES, type SessionView } from '../api.js';
import type { App } from '../app.js';
import { h, toast } from '../dom.js';
import { bytes, shortId, time } from '../format.js';
import { unavailable } from './unavailable.js';

/** Most file entries shown at once, when an answer carries a listing. */
const MAX_FILES = 1000;

interface FileEntry {
  path: string;
  size: number | undefined;
  type: string | undefined;
  modified: string | undefined;
}

/**
 * The session's workspace: GET /api/dev-envs/:orgId/:projectName (size, files, git, the
 * project stamp, live sessions) and the zip download. Without the dev-env routes, it says so.
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
    // The session's own artifacts (DATA_DIR/sessions/<id>/artifacts/), listed with the files.
    try {
      const arts = await app.api.get<{ items: unknown[] }>(`/api/sessions/${enc(s.id)}/artifacts`);
      if (Array.isArray(arts.items) && arts.items.length) info.artifacts = arts.items;
    } catch {
      // An older server without the route: the workspace alone.
    }
    const withGit = h('input', { type: 'checkbox' });
    const withModules = h('input', { type: 'checkbox' });
    const download = h('button', {
      class: 'primary',
      text: 'Download zip',
      onclick: () => {
        const include = [withGit.checked ? '.git' : '', withModules.checked ? 'node_modules' : ''].filter(Boolean).join(',');
        void downloadZip(app, `${base}/download${include ? `?include=${enc(include)}` : ''}`, s);
      },
    });
    const git = (info.git ?? {}) as { isRepo?: boolean; branch?: string | null };
    const facts: Array<[string, string]> = [];
    const add = (k: string, v: unknown) => {
      if (v !== undefined && v !== null && v !== '') facts.push([k, String(v)]);
    };
    add('path', info.path);
    add('size', typeof info.sizeBytes === 'number' ? `${bytes(info.sizeBytes)}${info.truncated ? ' (at least: the count stopped early)' : ''}` : undefined);
    add('files', info.fileCount);
    add('folders', info.dirCount);
    add('git', info.git ? (git.isRepo ? `repository${git.branch ? ` on ${git.branch}` : ''}` : 'not a repository') : undefined);
    // Any other plain fields a newer server adds.
    const known = new Set(['orgId', 'projectName', 'path', 'sizeBytes', 'fileCount', 'dirCount', 'truncated', 'git', 'project', 'sessions']);
    for (const [k, v] of Object.entries(info)) if (!known.has(k) && (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean')) add(k, v);
    const sessions = Array.isArray(info.sessions) ? (info.sessions as SessionView[]) : [];
    const files = findFiles(info);
    body.replaceChildren(
      h('div', { class: 'toolbar' },
        download,
        h('label', { class: 'muted' }, withGit, ' include .git'),
        h('label', { class: 'muted' }, withModules, ' include node_modules'),
        h('button', { text: 'Refresh', onclick: () => void load() }),
      ),
      h('dl', { class: 'facts' }, facts.flatMap(([k, v]) => [h('dt', { text: k }), h('dd', { text: v })])),
      sessions.length
        ? h('div', { class: 'card' },
          h('strong', { text: 'Live sessions in this workspace' }),
          h('ul', null, sessions.map((x) => h('li', null,
            h('a', { href: `#/s/${x.id}`, text: shortId(x.id) }), ` ${x.agent} · ${x.status}${TERMINAL_STATUSES.has(x.status) ? '' : ` · ${x.userId}`}`))),
        )
        : '',
      info.project && typeof info.project === 'object'
        ? h('details', { class: 'card' }, h('summary', { text: '.vibe/project.json' }), h('pre', { class: 'logs', text: JSON.stringify(info.project, null, 2) }))
        : '',
      files.length
        ? h('table', { class: 'table files' },
          h('thead', null, h('tr', null, h('th', { text: 'Path' }), h('th', { text: 'Size' }), h('th', { text: 'Modified' }))),
          h('tbody', null, files.slice(0, MAX_FILES).map((f) => h('tr', null,
            h('td', { class: 'mono', text: f.type === 'dir' || f.type === 'directory' ? `${f.path}/` : f.path }),
            h('td', { class: 'num', text: bytes(f.size) }),
            h('td', { text: time(f.modified) }),
          ))))
        : '',
      files.length > MAX_FILES ? h('p', { class: 'muted', text: `…and ${files.length - MAX_FILES} more.` }) : '',
    );
  };
  void load();
  return () => {
    disposed = true;
  };
}

/** Arrays of file-like entries in the answer (files, tree, entries, artifacts…), if any. */
function findFiles(info: Record<string, unknown>): FileEntry[] {
  const out: FileEntry[] = [];
  for (const [key, v] of Object.entries(info)) {
    if (!Array.isArray(v) || key === 'sessions') continue;
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
async function downloadZip(app: App, url: string, s: SessionView): Promise<void> {
  try {
    const blob = await app.api.blob(url);
    const href = URL.createObjectURL(blob);
    const a = h('a', { href, download: `${s.orgId}-${s.projectName}.zip` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(href), 60_000);
  } catch (err) {
    toast(`Download failed: ${(err as Error).message}`, 'error');
  }
}
