import { createHash } from 'node:crypto';
import { chmod, chown, lchown, mkdir, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Store } from '../store/store.js';

/**
 * Per-org identities for agents (AGENT_UID_RANGE). Every org gets its own uid (and a gid of
 * the same number), so an agent cannot read another org's workspace, the server's DATA_DIR
 * or the server's /proc entries (environment, memory), and cannot signal or trace another
 * org's agents. Layout on disk:
 *
 *   WORKSPACE_BASE_PATH/<org>          root:<org gid>  2770   (others cannot enter)
 *   WORKSPACE_BASE_PATH/<org>/<proj>   root:<org gid>  2770   (agents of the org write here)
 *   WORKSPACE_BASE_PATH/<org>/.home    <org uid>       0700   (the agents' HOME)
 *
 * The setgid bit keeps everything created inside in the org's group; the server runs with
 * umask 002 so what it writes there (templates, git, planner) stays writable by the org.
 * The uid is derived from the org name (stable across nodes); a collision is resolved by
 * probing, recorded in the store so it stays stable.
 */
export class AgentIds {
  private readonly cache = new Map<string, number>();
  private readonly prepared = new Set<string>();

  constructor(
    private readonly range: [number, number],
    private readonly store: Store,
    private readonly base: string,
  ) {}

  async uidFor(orgId: string): Promise<number> {
    const hit = this.cache.get(orgId);
    if (hit !== undefined) return hit;
    const known = await this.store.get<{ uid: number }>('agent-ids', orgId);
    if (known) {
      this.cache.set(orgId, known.uid);
      return known.uid;
    }
    const [lo, hi] = this.range;
    const size = hi - lo + 1;
    const h = createHash('sha256').update(orgId).digest().readUInt32BE(0);
    for (let i = 0; i < Math.min(size, 1000); i++) {
      const uid = lo + ((h + i) % size);
      const owner = await this.store.get<{ orgId: string }>('agent-uids', String(uid));
      if (owner && owner.orgId !== orgId) continue;
      await this.store.put('agent-uids', String(uid), { orgId });
      await this.store.put('agent-ids', orgId, { uid });
      this.cache.set(orgId, uid);
      return uid;
    }
    throw new Error('AGENT_UID_RANGE is exhausted');
  }

  /** Ownership and modes of an org's folders (once per process per folder). Returns HOME. */
  async prepare(orgId: string, workspace: string, uid: number): Promise<string> {
    const orgDir = path.join(this.base, orgId);
    const home = path.join(orgDir, '.home');
    for (const [dir, owner, mode] of [
      [orgDir, 0, 0o2770],
      [workspace, 0, 0o2770],
      [home, uid, 0o700],
    ] as const) {
      if (this.prepared.has(dir)) continue;
      await mkdir(dir, { recursive: true });
      // A workspace made before isolation (or by the server alone): hand its content to the
      // org's group once, group-writable, so the org's agents can edit it.
      if (dir === workspace) await adoptTree(dir, uid);
      await chown(dir, owner, uid);
      await chmod(dir, mode);
      this.prepared.add(dir);
    }
    return home;
  }
}

/** Give a tree to group `gid`, group-writable (symlinks themselves, never their targets). */
async function adoptTree(root: string, gid: number): Promise<void> {
  const stack = [root];
  while (stack.length) {
    const dir = stack.pop()!;
    for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const p = path.join(dir, e.name);
      await lchown(p, 0, gid).catch(() => {});
      if (e.isSymbolicLink()) continue;
      const st = await stat(p).catch(() => undefined);
      if (!st) continue;
      await chmod(p, (st.mode & 0o7777) | 0o060 | (e.isDirectory() ? 0o2000 : 0)).catch(() => {});
      if (e.isDirectory()) stack.push(p);
    }
  }
}
