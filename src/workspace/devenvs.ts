import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { AppError } from '../errors.js';
import type { Logger } from '../log.js';
import { writeFileAtomic } from '../store/atomic.js';
import type { Supervisor } from '../supervisor/supervisor.js';
import type { SessionRecord } from '../supervisor/session.js';
import type { Templates } from '../templates/templates.js';
import { isName } from '../validate.js';
import { KeyedMutex } from './mutex.js';
import { isNotFound, orgDir, realWorkspaceRoot, requireWorkspace, resolveInside, VIBE_DIR, workspaceDir, type ProjectStamp, forgetWorkspace } from './paths.js';
import { AGENTS_FILE, readStamp, syncAgentsText, syncAiInstructions, writeStamp, type SyncResult } from './project.js';
import { treeSize, type TreeSize } from './walk.js';

/** Template scaffolded when a dev-env is created with neither a description nor a template. */
export const DEFAULT_TEMPLATE = 'plain-html';
/** Inspect stops counting past this many entries (a node_modules can hold hundreds of thousands). */
const INSPECT_MAX_ENTRIES = 200_000;
/** Session states that hold a workspace: deleting under them is refused without force. */
const LIVE: ReadonlySet<SessionRecord['status']> = new Set(['queued', 'starting', 'running']);

export interface DevEnvDeps {
  base: string;
  supervisor: Supervisor;
  templates: Templates;
  log: Logger;
}

export interface CreateInput {
  orgId: string;
  projectName: string;
  createdBy: string;
  description?: string | undefined;
  template?: string | undefined;
}

/**
 * Dev-envs: a project's workspace folder with its stamp, scaffold and agent instructions.
 * Create and delete of one project are serialized, so a delete racing a create (or two
 * creates) cannot interleave.
 */
export class DevEnvs {
  private readonly lock = new KeyedMutex();

  constructor(private readonly d: DevEnvDeps) {}

  liveSessions(orgId: string, projectName: string): SessionRecord[] {
    return this.d.supervisor.list({ orgId, projectName }).filter((r) => LIVE.has(r.status));
  }

  /**
   * Create the workspace, stamp `.vibe/project.json`, scaffold the template (unless a
   * description asks the agent to choose), write AGENTS.md. A workspace that holds only
   * `.vibe/` (a session made it) is completed; one that holds files is 409.
   */
  async create(input: CreateInput): Promise<{ dir: string; project: ProjectStamp; files: string[] }> {
    const { orgId, projectName } = input;
    // An unknown template is a 400 before anything touches the disk.
    const templateId = input.template ?? (input.description ? undefined : DEFAULT_TEMPLATE);
    if (templateId !== undefined) await this.d.templates.get(templateId);
    return this.lock.run(`${orgId}/${projectName}`, async () => {
      const dir = workspaceDir(this.d.base, orgId, projectName);
      await mkdir(orgDir(this.d.base, orgId), { recursive: true });
      let root = await realWorkspaceRoot(this.d.base, orgId, projectName);
      if (root) {
        const names = (await readdir(root)).filter((n) => n !== VIBE_DIR);
        if (names.length > 0) throw new AppError('SM_ERR_WORKSPACE_EXISTS', `${orgId}/${projectName} already holds files.`);
      } else {
        try {
          await mkdir(dir);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        }
        root = await realWorkspaceRoot(this.d.base, orgId, projectName);
        if (!root) throw new AppError('SM_ERR_PATH_REFUSED', 'The workspace path is not a plain directory.');
      }
      const previous = await readStamp(root);
      const stamp: ProjectStamp = {
        orgId,
        projectName,
        createdBy: typeof previous?.createdBy === 'string' ? previous.createdBy : input.createdBy,
        createdAt: typeof previous?.createdAt === 'string' ? previous.createdAt : new Date().toISOString(),
      };
      if (input.description !== undefined) stamp.description = input.description;
      if (templateId !== undefined) stamp.template = templateId;
      await writeStamp(root, stamp);
      const files = ['.vibe/project.json'];
      if (templateId !== undefined) {
        const applied = await this.d.templates.apply(root, templateId, { orgId, projectName }, false);
        files.push(...applied.written);
      }
      const agents = await resolveInside(root, [AGENTS_FILE]);
      if (!agents.exists) {
        await writeFileAtomic(agents.path, syncAgentsText(undefined, stamp));
        files.push(AGENTS_FILE);
      }
      return { dir, project: stamp, files };
    });
  }

  /** Every workspace of an org (plain directories with valid names), with its stamp. */
  async list(orgId: string): Promise<Array<Record<string, unknown>>> {
    let entries: import('node:fs').Dirent[];
    try {
      entries = await readdir(orgDir(this.d.base, orgId), { withFileTypes: true });
    } catch (err) {
      if (isNotFound(err)) return [];
      throw err;
    }
    const names = entries.filter((e) => e.isDirectory() && isName(e.name)).map((e) => e.name).sort();
    const items: Array<Record<string, unknown>> = [];
    for (const projectName of names) {
      const root = await realWorkspaceRoot(this.d.base, orgId, projectName);
      if (!root) continue;
      items.push({
        orgId,
        projectName,
        path: workspaceDir(this.d.base, orgId, projectName),
        project: (await readStamp(root).catch(() => undefined)) ?? null,
        liveSessions: this.liveSessions(orgId, projectName).length,
      });
    }
    return items;
  }

  async inspect(orgId: string, projectName: string): Promise<Record<string, unknown>> {
    const ws = await requireWorkspace(this.d.base, orgId, projectName);
    const [project, size, git] = await Promise.all([readStamp(ws.root), treeSize(ws.root, INSPECT_MAX_ENTRIES), gitInfo(ws.root)]);
    const s: TreeSize = size;
    return {
      orgId,
      projectName,
      path: ws.dir,
      project: project ?? null,
      sizeBytes: s.bytes,
      fileCount: s.files,
      dirCount: s.dirs,
      truncated: s.truncated,
      git,
      sessions: this.liveSessions(orgId, projectName).map((r) => this.d.supervisor.view(r)),
    };
  }

  /**
   * Delete a workspace. Live sessions (queued, starting, running) make it 409 unless
   * `force`, which terminates them first (as `killed`). The folder is renamed aside first,
   * so it vanishes at once, then removed; links inside are removed, never followed.
   */
  async remove(orgId: string, projectName: string, force: boolean): Promise<{ stoppedSessions: string[] }> {
    return this.lock.run(`${orgId}/${projectName}`, async () => {
      const ws = await requireWorkspace(this.d.base, orgId, projectName);
      const live = this.liveSessions(orgId, projectName);
      if (live.length > 0 && !force) {
        throw new AppError('SM_ERR_SESSIONS_RUNNING', `${live.length} session(s) are live in ${orgId}/${projectName}; stop them or pass ?force=true.`, {
          details: { sessions: live.map((r) => r.id) },
        });
      }
      await Promise.all(live.map((r) => this.d.supervisor.terminate(r.id, 'killed', 'workspace deleted')));
      const aside = path.join(path.dirname(ws.root), `.deleting-${projectName}-${randomBytes(4).toString('hex')}`);
      await rename(ws.root, aside);
      forgetWorkspace(this.d.base, orgId, projectName);
      await rm(aside, { recursive: true, force: true });
      this.d.log.info('workspace deleted', { orgId, projectName, stoppedSessions: live.length });
      return { stoppedSessions: live.map((r) => r.id) };
    });
  }

  async syncAiInstructions(orgId: string, projectName: string, caller: string): Promise<SyncResult> {
    return this.lock.run(`${orgId}/${projectName}`, async () => {
      const ws = await requireWorkspace(this.d.base, orgId, projectName);
      return syncAiInstructions(ws.root, orgId, projectName, caller);
    });
  }
}

/** Whether the workspace is a git repository, and its branch, read from `.git/HEAD` (no process spawned). */
async function gitInfo(root: string): Promise<{ isRepo: boolean; branch: string | null }> {
  try {
    const st = await lstat(path.join(root, '.git'));
    if (!st.isDirectory()) return { isRepo: st.isFile(), branch: null };
    const head = (await readFile(path.join(root, '.git', 'HEAD'), 'utf8')).trim();
    const m = /^ref: refs\/heads\/(.+)$/.exec(head);
    return { isRepo: true, branch: m ? m[1]! : null };
  } catch (err) {
    if (isNotFound(err)) return { isRepo: false, branch: null };
    throw err;
  }
}
