import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** Direct child processes of a pid (from /proc). */
export function childPids(ppid: number): number[] {
  const out: number[] = [];
  for (const n of readdirSync('/proc')) {
    if (!/^\d+$/.test(n)) continue;
    try {
      const stat = readFileSync(`/proc/${n}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(rest[1]) === ppid) out.push(Number(n));
    } catch {
      // gone
    }
  }
  return out;
}

/** Every process whose session id is `sid` (an agent and whatever it started). */
export function sessionMembers(sid: number): number[] {
  const out: number[] = [];
  for (const n of readdirSync('/proc')) {
    if (!/^\d+$/.test(n)) continue;
    try {
      const stat = readFileSync(`/proc/${n}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(rest[3]) === sid && rest[0] !== 'Z') out.push(Number(n));
    } catch {
      // gone
    }
  }
  return out;
}

/** Open descriptors of a process that point at /dev/ptmx (pty masters). */
export function ptmxFds(pid: number): number {
  let n = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`) === '/dev/ptmx') n++;
    } catch {
      // closed meanwhile
    }
  }
  return n;
}

export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

export function threadCount(pid: number): number {
  return readdirSync(`/proc/${pid}/task`).length;
}
