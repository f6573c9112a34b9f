import { lstat, readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../store/atomic.js';
import { isPlainObject } from '../validate.js';
import { isNotFound, readVibeJson, resolveInside, writeVibeFile, type ProjectStamp } from './paths.js';

/**
 * What a workspace tells its agent: `.vibe/project.json` (the stamp) and `AGENTS.md`
 * (the agent instruction file, https://agents.md). The generated part of AGENTS.md sits
 * between two markers so a builder's own notes around it survive a re-sync, and it is a
 * pure function of the stamp, so syncing twice changes nothing.
 */

export const AGENTS_FILE = 'AGENTS.md';
const BEGIN = '<!-- session-manager:begin (generated from .vibe/project.json; edit outside these markers) -->';
const END = '<!-- session-manager:end -->';

export async function readStamp(root: string): Promise<ProjectStamp | undefined> {
  try {
    const doc = await readVibeJson<unknown>(root, 'project.json');
    return isPlainObject(doc) ? (doc as ProjectStamp) : undefined;
  } catch (err) {
    if (err instanceof SyntaxError) return undefined;
    throw err;
  }
}

export async function writeStamp(root: string, stamp: ProjectStamp): Promise<void> {
  await writeVibeFile(root, 'project.json', JSON.stringify(stamp, null, 2) + '\n');
}

/** The generated block of AGENTS.md for a stamp. */
export function agentsBlock(stamp: ProjectStamp): string {
  const clean = (s: string) => s.replace(/<!--/g, '<!—').replace(/\r\n?/g, '\n').trim();
  const lines = [
    BEGIN,
    '## Workspace',
    '',
    `- Org \`${stamp.orgId}\`, project \`${stamp.projectName}\`. The project record is \`.vibe/project.json\`.`,
    stamp.template
      ? `- Started from the \`${stamp.template}\` template.`
      : '- No starter template was applied: choose the framework and layout that fit the brief below.',
    '',
  ];
  if (typeof stamp.description === 'string' && stamp.description.trim()) {
    lines.push('## Brief', '', clean(stamp.description), '');
  }
  lines.push(
    '## Conventions',
    '',
    '- The planner is `.vibe/planner.json`: `{version, updatedAt, cards: [{id, title, description?, status, criteria: [{id, text, done}], logs: [{at, message, author?}]}]}`.',
    '  Change it through `$SESSION_MANAGER_URL/api/planner/$ORG_ID/$PROJECT_NAME` (bearer `$SESSION_TOKEN`) so open editors refresh:',
    '  `PATCH …/cards/<id>` merges fields, `POST …/cards/<id>/logs` `{message}` records progress, `PATCH …/cards/<id>/criteria/<acId>` `{done}` ticks a criterion.',
    '- The preview serves this folder at `$SESSION_MANAGER_URL/preview/$ORG_ID/$PROJECT_NAME/` (`index.html` for folders). Dotfiles (`.git`, `.vibe`, `.env*`) are never served.',
    '- A dev server, if you start one, listens on `$PORT`.',
    END,
  );
  return lines.join('\n');
}

/** AGENTS.md content after syncing the generated block into `existing` (undefined: no file yet). */
export function syncAgentsText(existing: string | undefined, stamp: ProjectStamp): string {
  const block = agentsBlock(stamp);
  if (existing === undefined) return `# ${stamp.projectName}\n\n${block}\n`;
  const b = existing.indexOf(BEGIN);
  const e = existing.indexOf(END, b + 1);
  if (b >= 0 && e > b) return existing.slice(0, b) + block + existing.slice(e + END.length);
  const sep = existing.length === 0 ? '' : existing.endsWith('\n\n') ? '' : existing.endsWith('\n') ? '\n' : '\n\n';
  return `${existing}${sep}${block}\n`;
}

export interface SyncResult {
  changed: string[];
  unchanged: string[];
  project: ProjectStamp;
}

/**
 * Back-fill `.vibe/project.json` (missing fields only; org and project corrected to where
 * the workspace lives) and the generated block of AGENTS.md. Writes only what differs, so
 * a second call changes nothing, to the byte.
 */
export async function syncAiInstructions(root: string, orgId: string, projectName: string, caller: string): Promise<SyncResult> {
  const changed: string[] = [];
  const unchanged: string[] = [];
  const current = await readStamp(root);
  const stamp: ProjectStamp = { ...(current ?? {}) } as ProjectStamp;
  let dirty = current === undefined;
  const fill = <K extends keyof ProjectStamp>(k: K, v: ProjectStamp[K]) => {
    if (stamp[k] !== v) {
      stamp[k] = v;
      dirty = true;
    }
  };
  fill('orgId', orgId);
  fill('projectName', projectName);
  if (typeof stamp.createdBy !== 'string') fill('createdBy', caller);
  if (typeof stamp.createdAt !== 'string') fill('createdAt', (await lstat(root)).mtime.toISOString());
  if (dirty) {
    // Keep the familiar key order for a stamp written from scratch.
    const ordered: ProjectStamp = { orgId: stamp.orgId, projectName: stamp.projectName, createdBy: stamp.createdBy, createdAt: stamp.createdAt };
    await writeStamp(root, Object.assign(ordered, stamp));
    changed.push('.vibe/project.json');
  } else unchanged.push('.vibe/project.json');

  const agents = await resolveInside(root, [AGENTS_FILE]);
  let existing: string | undefined;
  if (agents.exists) {
    try {
      existing = await readFile(agents.path, 'utf8');
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
  const next = syncAgentsText(existing, stamp);
  if (next !== existing) {
    await writeFileAtomic(agents.path, next);
    changed.push(AGENTS_FILE);
  } else unchanged.push(AGENTS_FILE);
  return { changed, unchanged, project: stamp };
}
