import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { AppError } from '../errors.js';
import type { Bus } from '../bus/bus.js';
import type { Logger } from '../log.js';
import { projectTopic } from '../workspace/access.js';
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

interface Pending {
  opts: WriteOptions;
  mutate: (doc: PlannerDoc) => unknown;
  resolve: (v: { doc: PlannerDoc; result: unknown }) => void;
  reject: (err: unknown) => void;
}

/** Most writes applied in one commit; the rest wait for the next (bounds one commit's work). */
const MAX_BATCH = 500;

/**
 * The planner of each project. Reads are lock-free (the file is replaced atomically).
 *
 * Writes to one project are serialized with group commit: writes queue per project; one
 * commit at a time reads the current file, applies the queued changes in arrival order,
 * each on its own copy with its own If-Match check and version bump (a change that throws
 * is answered with its error and leaves the others alone), writes the result once
 * atomically (temp, fsync, rename), then answers each caller with the document at its own
 * version and publishes one `planner:updated` per version, in order. So concurrent writers
 * never lose an update, a caller hears back only once its change is on disk, and N queued
 * writes cost one fsync instead of N. The file is re-read at each commit, so edits an agent
 * made on disk are the base of the next change.
 *
 * The queue is per process: two nodes sharing one workspace folder (NFS) would need a file
 * lock; DESIGN §5 keeps a workspace on the node that serves it.
 */
export class Planner {
  private readonly queues = new Map<string, Pending[]>();
  private readonly committing = new Set<string>();

  constructor(private readonly d: PlannerDeps) {}

  async read(orgId: string, projectName: string): Promise<PlannerDoc> {
    const ws = await requireWorkspace(this.d.base, orgId, projectName);
    return this.load(ws.root);
  }

  /**
   * Apply `mutate` to the current document (after the writes queued before it). `mutate`
   * changes the copy it is given, or throws an AppError, and returns what the caller
   * should answer.
   */
  write<T>(orgId: string, projectName: string, opts: WriteOptions, mutate: (doc: PlannerDoc) => T): Promise<{ doc: PlannerDoc; result: T }> {
    const key = `${orgId}/${projectName}`;
    return new Promise((resolve, reject) => {
      const q = this.queues.get(key) ?? [];
      q.push({ opts, mutate, resolve: resolve as Pending['resolve'], reject });
      this.queues.set(key, q);
      if (!this.committing.has(key)) void this.drain(orgId, projectName, key);
    });
  }

  private async drain(orgId: string, projectName: string, key: string): Promise<void> {
    this.committing.add(key);
    try {
      for (;;) {
        const q = this.queues.get(key);
        if (!q || q.length === 0) break;
        const batch = q.splice(0, MAX_BATCH);
        if (q.length === 0) this.queues.delete(key);
        await this.commit(orgId, projectName, batch);
      }
    } finally {
      this.committing.delete(key);
    }
  }

  /** One commit: never throws; every pending write is resolved or rejected. */
  private async commit(orgId: string, projectName: string, batch: Pending[]): Promise<void> {
    let root: string;
    let working: PlannerDoc | AppError;
    try {
      root = (await requireWorkspace(this.d.base, orgId, projectName)).root;
      working = await this.load(root).catch(async (err: unknown) => {
        if (err instanceof AppError && err.code === 'planner_corrupt') return err;
        throw err;
      });
    } catch (err) {
      for (const p of batch) p.reject(err);
      return;
    }
    const applied: Array<{ p: Pending; doc: PlannerDoc; result: unknown }> = [];
    for (const p of batch) {
      try {
        if (working instanceof AppError) {
          // A corrupt file may be replaced wholesale, and only without a version precondition.
          if (!(p.opts.replacesAll && p.opts.ifMatch === undefined)) throw working;
          working = { ...emptyPlanner(), version: await this.corruptVersion(root) };
        }
        const cur: PlannerDoc = working;
        if (p.opts.ifMatch !== undefined && p.opts.ifMatch !== '*' && !p.opts.ifMatch.includes(cur.version)) {
          throw new AppError('SM_ERR_VERSION_CONFLICT', `The planner is at version ${cur.version}, not ${p.opts.ifMatch.join(', ')}.`, {
            details: { currentVersion: cur.version },
            headers: { ETag: `"${cur.version}"` },
          });
        }
        const next = structuredClone(cur);
        const result = p.mutate(next);
        next.version = cur.version + 1;
        next.updatedAt = new Date().toISOString();
        working = next;
        applied.push({ p, doc: next, result });
      } catch (err) {
        p.reject(err);
      }
    }
    if (applied.length === 0) return;
    try {
      await writeVibeFile(root, PLANNER_FILE, JSON.stringify(working, null, 2) + '\n');
    } catch (err) {
      for (const a of applied) a.p.reject(err);
      return;
    }
    for (const a of applied) {
      const payload: Record<string, unknown> = { orgId, projectName, version: a.doc.version };
      if (a.p.opts.cardId !== undefined) payload.cardId = a.p.opts.cardId;
      await this.d.bus.publish(projectTopic(orgId, projectName), 'planner:updated', payload).catch((err: Error) => {
        this.d.log.warn('planner:updated not published', { orgId, projectName, error: err });
      });
      a.p.resolve({ doc: a.doc, result: a.result });
    }
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
