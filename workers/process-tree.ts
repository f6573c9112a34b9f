import { readdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { cgroupPids } from './cgroup.js';

interface ProcInfo {
  pid: number;
  ppid: number;
  pgid: number;
  sid: number;
}

/**
 * Processes that could belong to an agent: those with a pid at or above the agent's (its
 * children are younger), or all of them when pids have wrapped around. Synchronous reads: a
 * scan is ~1 ms on this thread instead of hundreds of thread-pool round trips.
 */
function readProcs(minPid: number): ProcInfo[] {
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return [];
  }
  const pids: number[] = [];
  let maxPid = 0;
  for (const n of names) {
    const c = n.charCodeAt(0);
    if (c < 48 || c > 57) continue;
    const pid = Number(n);
    if (pid > maxPid) maxPid = pid;
    pids.push(pid);
  }
  const wrapped = maxPid < minPid;
  const out: ProcInfo[] = [];
  for (const pid of pids) {
    if (!wrapped && pid < minPid) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
      // Field 2 (comm) may hold spaces and parens: parse after the last ')'.
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ', 5);
      out.push({ pid, ppid: Number(rest[1]), pgid: Number(rest[2]), sid: Number(rest[3]) });
    } catch {
      // The process ended while we looked.
    }
  }
  return out;
}

/**
 * Every process that belongs to an agent: its terminal session (the agent is a session
 * leader, so its sid is its pid — job-control process groups included) and any descendant
 * that left the session (setsid) while its parent was still alive.
 */
export async function agentProcesses(leaderPid: number): Promise<number[]> {
  const procs = readProcs(leaderPid);
  const found = new Set<number>();
  for (const p of procs) if (p.sid === leaderPid || p.pgid === leaderPid || p.pid === leaderPid) found.add(p.pid);
  const children = new Map<number, number[]>();
  for (const p of procs) {
    const list = children.get(p.ppid);
    if (list) list.push(p.pid);
    else children.set(p.ppid, [p.pid]);
  }
  const stack = [...found];
  while (stack.length) {
    const pid = stack.pop()!;
    for (const c of children.get(pid) ?? []) {
      if (!found.has(c)) {
        found.add(c);
        stack.push(c);
      }
    }
  }
  found.delete(process.pid);
  return [...found];
}

/**
 * Send signals (in order) to every process of an agent. Returns how many processes there
 * were (the leader counts when alive).
 */
export async function signalAgent(leaderPid: number, signals: NodeJS.Signals | NodeJS.Signals[], cgroup?: string): Promise<number> {
  // With a cgroup the kernel keeps the list: no scan, and nothing escapes it.
  const pids = cgroup ? cgroupPids(cgroup) : await agentProcesses(leaderPid);
  const found = pids.length;
  for (const signal of Array.isArray(signals) ? signals : [signals]) {
    for (const pid of pids) {
      try {
        process.kill(pid, signal);
      } catch {
        // Already gone.
      }
    }
    try {
      process.kill(-leaderPid, signal);
    } catch {
      // No such group any more.
    }
  }
  return found;
}

/** Resident set (bytes) and CPU time (ms) of one process, from /proc. */
export async function processUsage(pid: number): Promise<{ rssBytes: number; cpuMs: number } | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields after comm: index 11 = utime, 12 = stime (clock ticks), 21 = rss (pages).
    const ticks = Number(rest[11]) + Number(rest[12]);
    const rssPages = Number(rest[21]);
    return { cpuMs: Math.round((ticks * 1000) / CLOCK_TICKS_PER_S), rssBytes: rssPages * PAGE_SIZE };
  } catch {
    return undefined;
  }
}

/** Linux defaults (sysconf(_SC_CLK_TCK), page size) on x86_64 and arm64. */
const CLOCK_TICKS_PER_S = 100;
const PAGE_SIZE = 4096;
