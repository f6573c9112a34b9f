import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AppError } from '../errors.js';
import { writeFileAtomic } from '../store/atomic.js';
import { isName, isPlainObject } from '../validate.js';
import { resolveInside } from '../workspace/paths.js';

/**
 * Starter projects from `templates/` at the repository root. Each template is a folder
 * `templates/<id>/` with `template.json` (`{name, description}`) and the files to copy
 * under `files/`. Text files may say `{{projectName}}` and `{{orgId}}`.
 */
export interface TemplateInfo {
  id: string;
  name: string;
  description: string;
  files: string[];
}

export interface ApplyResult {
  templateId: string;
  /** Files written (new or replaced), workspace-relative. */
  written: string[];
  /** Files already present with the same content. */
  unchanged: string[];
}

/** Extensions whose content gets `{{projectName}}`/`{{orgId}}` substituted. */
const TEXT_EXT = new Set(['.html', '.htm', '.css', '.js', '.mjs', '.json', '.md', '.txt', '.svg']);
/** How far up from this module the repository root may be (src/templates or dist/src/templates). */
const MAX_UP = 5;

/** The repository's `templates/` folder, found by walking up from this module. */
export function findTemplatesRoot(from = path.dirname(fileURLToPath(import.meta.url))): string {
  let dir = from;
  for (let i = 0; i < MAX_UP; i++) {
    const cand = path.join(dir, 'templates');
    if (existsSync(path.join(dir, 'package.json')) && existsSync(cand)) return cand;
    dir = path.dirname(dir);
  }
  throw new Error(`templates/ not found above ${from}`);
}

export class Templates {
  private cache: Promise<Map<string, TemplateInfo>> | undefined;

  constructor(readonly root: string = findTemplatesRoot()) {}

  async list(): Promise<TemplateInfo[]> {
    return [...(await this.load()).values()];
  }

  async get(id: unknown): Promise<TemplateInfo> {
    const t = typeof id === 'string' ? (await this.load()).get(id) : undefined;
    if (!t) throw new AppError('SM_ERR_UNKNOWN_TEMPLATE', `No template "${String(id).slice(0, 64)}".`, { details: { field: 'templateId' } });
    return t;
  }

  /**
   * Copy a template into a workspace (its real root). Every target is resolved through the
   * workspace path checks, so no file lands outside it, not even through a symlink. With
   * `overwrite` false, any file that exists with different content stops the whole apply
   * (409, nothing written).
   */
  async apply(workspaceRoot: string, id: unknown, vars: { orgId: string; projectName: string }, overwrite: boolean): Promise<ApplyResult> {
    const t = await this.get(id);
    const plan: Array<{ rel: string; target: string; data: Buffer; same: boolean }> = [];
    const conflicts: string[] = [];
    for (const rel of t.files) {
      const data = await this.content(t.id, rel, vars);
      const r = await resolveInside(workspaceRoot, rel.split('/'), { allowDotfiles: true });
      let same = false;
      if (r.exists) {
        if (!r.stat!.isFile()) {
          conflicts.push(rel);
          continue;
        }
        same = (await readFile(r.path)).equals(data);
        if (!same && !overwrite) conflicts.push(rel);
      }
      plan.push({ rel, target: r.path, data, same });
    }
    if (conflicts.length > 0) {
      throw new AppError('SM_ERR_TEMPLATE_CONFLICT', `${conflicts.length} file(s) differ from the template; pass overwrite: true to replace them.`, { details: { files: conflicts.slice(0, 100) } });
    }
    const written: string[] = [];
    const unchanged: string[] = [];
    for (const p of plan) {
      if (p.same) {
        unchanged.push(p.rel);
        continue;
      }
      await writeFileAtomic(p.target, p.data);
      written.push(p.rel);
    }
    return { templateId: t.id, written, unchanged };
  }

  private async content(id: string, rel: string, vars: { orgId: string; projectName: string }): Promise<Buffer> {
    const raw = await readFile(path.join(this.root, id, 'files', ...rel.split('/')));
    if (!TEXT_EXT.has(path.extname(rel).toLowerCase())) return raw;
    return Buffer.from(raw.toString('utf8').replace(/\{\{projectName\}\}/g, vars.projectName).replace(/\{\{orgId\}\}/g, vars.orgId));
  }

  private load(): Promise<Map<string, TemplateInfo>> {
    this.cache ??= (async () => {
      const out = new Map<string, TemplateInfo>();
      const ids = (await readdir(this.root, { withFileTypes: true })).filter((d) => d.isDirectory() && isName(d.name)).map((d) => d.name).sort();
      for (const id of ids) {
        const meta = JSON.parse(await readFile(path.join(this.root, id, 'template.json'), 'utf8')) as unknown;
        if (!isPlainObject(meta)) throw new Error(`templates/${id}/template.json is not an object`);
        const files = await listFiles(path.join(this.root, id, 'files'));
        out.set(id, { id, name: String(meta.name ?? id), description: String(meta.description ?? ''), files });
      }
      return out;
    })();
    this.cache.catch(() => {
      this.cache = undefined;
    });
    return this.cache;
  }
}

async function listFiles(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const d of (await readdir(dir, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    const rel = prefix ? `${prefix}/${d.name}` : d.name;
    if (d.isDirectory()) out.push(...(await listFiles(path.join(dir, d.name), rel)));
    else if (d.isFile()) out.push(rel);
  }
  return out;
}
