/**
 * One cgroup (v2) per session, when the machine offers a writable cgroup2 hierarchy. Every
 * process an agent starts stays in its cgroup — including daemons that `setsid`, double-fork
 * and scrub their environment — so a kill can name them all (`cgroup.procs`) and end them
 * all at once (`cgroup.kill`). Without cgroups, process-tree.ts falls back to /proc scans.
 *
 * Layout: <cgroup2 root>/session-manager/<nodeId>/<sessionId>. The agent joins its cgroup
 * before it runs, so there is no window in which it could fork outside: a pty agent is born
 * in it (clone3 with CLONE_INTO_CGROUP, or it writes itself into `cgroup.procs` between vfork
 * and exec where the kernel lacks that: native/pty_spawn.c); an ACP
 * agent (stdio pipes) is started through `/bin/sh -c 'echo $$ > <cgroup.procs>; exec agent…'`.
 */
import { accessSync, constants, existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** A session cgroup of another node is swept only when empty and older than this. */
const STALE_CGROUP_MS = 60_000;

/** The cgroup2 mount (pure v2, or the unified part of a hybrid setup) with cgroup.kill. */
function cgroup2Mount(): string | undefined {
  for (const dir of ['/sys/fs/cgroup', '/sys/fs/cgroup/unified']) {
    if (existsSync(path.join(dir, 'cgroup.procs')) && existsSync(path.join(dir, 'cgroup.controllers'))) return dir;
  }
  return undefined;
}

/**
 * The directory under which this node's session cgroups live, created if needed; undefined
 * when cgroups cannot be used here (not mounted, not writable, no cgroup.kill).
 */
export function nodeCgroupBase(nodeId: string): string | undefined {
  const mount = cgroup2Mount();
  if (!mount) return undefined;
  const base = path.join(mount, 'session-manager', nodeId.replace(/[^A-Za-z0-9._-]/g, '_'));
  try {
    mkdirSync(base, { recursive: true });
    accessSync(base, constants.W_OK);
    // Probe: a child group must offer cgroup.kill (Linux 5.14+).
    const probe = path.join(base, `.probe-${process.pid}`);
    mkdirSync(probe, { recursive: true });
    const ok = existsSync(path.join(probe, 'cgroup.kill'));
    rmdirSync(probe);
    if (ok) sweepEmptySiblings(base);
    return ok ? base : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Node folders left by nodes that are gone (killed, or tests): remove the empty ones. A
 * folder with session cgroups inside cannot be removed (rmdir refuses), so a live node on
 * the same host keeps its own; one that is merely empty recreates it when it needs it.
 */
function sweepEmptySiblings(base: string): void {
  const parent = path.dirname(base);
  let names: string[] = [];
  try {
    names = readdirSync(parent, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
  } catch {
    return;
  }
  for (const n of names) {
    const dir = path.join(parent, n);
    if (dir === base) continue;
    // Session cgroups of a gone node: empty of processes and not brand new.
    for (const id of leftoverCgroups(dir)) {
      const sub = path.join(dir, id);
      try {
        if (cgroupPids(sub).length === 0 && Date.now() - statSync(sub).mtimeMs > STALE_CGROUP_MS) rmdirSync(sub);
      } catch {
        // In use, or gone.
      }
    }
    try {
      rmdirSync(dir);
    } catch {
      // Not empty (a live node's sessions) or already gone.
    }
  }
}

/** Create a session's cgroup; its path, or undefined if that failed. */
export function createCgroup(base: string, sessionId: string): string | undefined {
  const dir = path.join(base, sessionId);
  try {
    mkdirSync(dir, { recursive: true });
    return dir;
  } catch {
    return undefined;
  }
}

export function cgroupPids(dir: string): number[] {
  try {
    return readFileSync(path.join(dir, 'cgroup.procs'), 'latin1')
      .split('\n')
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

/** SIGKILL every process in the cgroup at once. */
export function killCgroup(dir: string): boolean {
  try {
    writeFileSync(path.join(dir, 'cgroup.kill'), '1');
    return true;
  } catch {
    return false;
  }
}

/** Remove an emptied cgroup, waiting (bounded) for its processes to be gone. */
export async function removeCgroup(dir: string, waitMs = 2000): Promise<boolean> {
  const until = Date.now() + waitMs;
  // The kernel frees a cgroup a moment after its last process is reaped: retry soon, then
  // less often (a fixed 20 ms added that much to every session's end).
  let delayMs = 1;
  for (;;) {
    try {
      rmdirSync(dir);
      return true;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return true;
      if (code !== 'EBUSY' || Date.now() > until) return false;
      killCgroup(dir);
      await new Promise((r) => setTimeout(r, delayMs));
      delayMs = Math.min(20, delayMs * 2);
    }
  }
}

/** Session cgroups left under a node's base (boot recovery): their session ids. */
export function leftoverCgroups(base: string): string[] {
  try {
    return readdirSync(base, { withFileTypes: true })
      .filter((d) => d.isDirectory() && !d.name.startsWith('.'))
      .map((d) => d.name);
  } catch {
    return [];
  }
}

/**
 * The argv that starts a piped (ACP) agent inside its cgroup and, with `runAs`, under its own uid/gid:
 * a shell joins the cgroup (as root, before anything else runs), then `setpriv` drops to the
 * agent's identity and execs the agent — same pid throughout, nothing runs outside.
 */
export function agentArgv(file: string, args: string[], opts: { cgroup?: string | undefined; runAs?: { uid: number; gid: number } | undefined }): { file: string; args: string[] } {
  if (!opts.cgroup && !opts.runAs) return { file, args };
  const procs = opts.cgroup ? path.join(opts.cgroup, 'cgroup.procs') : '/dev/null';
  const drop = opts.runAs ? ['/usr/bin/setpriv', `--reuid=${opts.runAs.uid}`, `--regid=${opts.runAs.gid}`, '--clear-groups', '--'] : [];
  return { file: '/bin/sh', args: ['-c', 'echo $$ > "$0" 2>/dev/null; exec "$@"', procs, ...drop, file, ...args] };
}
