import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { AppError } from '../errors.js';
import type { Bus } from '../bus/bus.js';
import type { Logger } from '../log.js';
import { projectTopic } from '../workspace/access.js';
import { KeyedMutex } from '../workspace/mutex.js';
import { isNotFound, requireWorkspace, vibeFile, writeVibeFile } from '../workspace/paths.js';
import { emptyPlanner, parseStored, type PlannerDoc } from './document.js';

export const PLANNER_FILE = 'planner.json';

export interface PlannerDeps {
  base: string;
  bus: Bus;
  log: Logger;
}

export interface WriteOptions {
  /** Versions from If-Match; undefined: no precondition. */
  ifMatch: number[] | '*' | undefined;
  /** Set for card-level writes: carried in `planner:updated`. */
  cardId?: string;
  /** A whole-document replace may overwrite a corrupt file; merges may not. */
  replacesAll?: boolean;
}

/**
 * The planner of each project. Reads are lock-free (the file is replaced atomically).
 * Writes to one project go through a per-project mutex: read the current file, check
 * If-Match, apply the change to a copy, bump `version`, write atomically (temp, fsync,
 * rename), publish `planner:updated` — so concurrent writers never lose an update and
 * events leave in version order. The file is re-read on every write, so edits an agent
 * made on disk are the base of the next change.
 *
 * The mutex is per process: two nodes sharing one workspace folder (NFS) would need a
 * file lock; DESIGN §5 keeps a workspace on the node that serves it.
 */
export class Planner {
  private readonly lock = new KeyedMutex();

  constructor(private readonly d: PlannerDeps) {}

  async read(orgId: string, projectName: string): Promise<PlannerDoc> {
    const ws = await requireWorkspace(this.d.base, orgId, projectName);
    return this.load(ws.root);
  }

  /**
   * Apply `mutate` to the current document under the project's lock. `mutate` changes the
   * copy it is given (or throws an AppError) and returns what the caller should answer.
   */
  async write<T>(orgId: string, projectName: string, opts: WriteOptions, mutate: (doc: PlannerDoc) => T): Promise<{ doc: PlannerDoc; result: T }> {
    return this.lock.run(`${orgId}/${projectName}`, async () => {
      const ws = await requireWorkspace(this.d.base, orgId, projectName);
      let current: PlannerDoc;
      try {
        current = await this.load(ws.root);
      } catch (err) {
        // A corrupt file may be replaced wholesale, and only without a version precondition.
        if (!(err instanceof AppError && err.code === 'planner_corrupt' && opts.replacesAll && opts.ifMatch === undefined)) throw err;
        current = { ...emptyPlanner(), version: await this.corruptVersion(ws.root) };
      }
      if (opts.ifMatch !== undefined && opts.ifMatch !== '*' && !opts.ifMatch.includes(current.version)) {
        throw new AppError('SM_ERR_VERSION_CONFLICT', `The planner is at version ${current.version}, not ${opts.ifMatch.join(', ')}.`, {
          details: { currentVersion: current.version },
          headers: { ETag: `"${current.version}"` },
        });
      }
      const next = structuredClone(current);
      const result = mutate(next);
      next.version = current.version + 1;
      next.updatedAt = new Date().toISOString();
      await writeVibeFile(ws.root, PLANNER_FILE, JSON.stringify(next, null, 2) + '\n');
      const payload: Record<string, unknown> = { orgId, projectName, version: next.version };
      if (opts.cardId !== undefined) payload.cardId = opts.cardId;
      await this.d.bus.publish(projectTopic(orgId, projectName), 'planner:updated', payload).catch((err: Error) => {
        this.d.log.warn('planner:updated not published', { orgId, projectName, error: err });
      });
      return { doc: next, result };
    });
  }

  private async load(root: string): Promise<PlannerDoc> {
    const f = await vibeFile(root, PLANNER_FILE);
    if (!f.exists) return emptyPlanner();
    let text: string;
    try {
      text = await readFile(f.path, 'utf8');
    } catch (err) {
      if (isNotFound(err)) return emptyPlanner();
      throw err;
    }
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (err) {
      throw new AppError('SM_ERR_PLANNER_CORRUPT', '.vibe/planner.json is not valid JSON.', { cause: err });
    }
    return parseStored(raw);
  }

  /** The version a corrupt file still states, so a replace keeps counting up from it. */
  private async corruptVersion(root: string): Promise<number> {
    try {
      const raw = JSON.parse(await readFile((await vibeFile(root, PLANNER_FILE)).path, 'utf8')) as { version?: unknown };
      return Number.isInteger(raw.version) && (raw.version as number) >= 0 ? (raw.version as number) : 0;
    } catch {
      return 0;
    }
  }
}

/** A card id for a card created without one. */
export function newCardId(): string {
  return `card-${randomBytes(5).toString('hex')}`;
}
