/** Helpers of the fault suite: a seeded PRNG, /proc scans for leftovers, and a torn-file audit. */
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import path from 'node:path';

/** mulberry32: small, fast, good enough to pick kill moments reproducibly. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface ProcInfo {
  pid: number;
  ppid: number;
  sid: number;
  state: string;
  cmd: string;
  cwd: string;
  env: string[];
}

/** Every live (non-zombie) process, with what identifies it. */
export function processes(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const n of readdirSync('/proc')) {
    if (!/^\d+$/.test(n)) continue;
    try {
      const stat = readFileSync(`/proc/${n}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (rest[0] === 'Z') continue;
      let cwd = '';
      let env: string[] = [];
      try {
        cwd = readlinkSync(`/proc/${n}/cwd`);
        env = readFileSync(`/proc/${n}/environ`, 'utf8').split('\0');
      } catch {
        // Not ours to read, or gone.
      }
      out.push({ pid: Number(n), ppid: Number(rest[1]), sid: Number(rest[3]), state: rest[0]!, cmd: readFileSync(`/proc/${n}/cmdline`, 'utf8').split('\0').join(' ').trim(), cwd, env });
    } catch {
      // Gone meanwhile.
    }
  }
  return out;
}

/** Processes working inside `dir` (agents, builds) that are not descendants of `serverPid`. */
export function leftoversUnder(dir: string, serverPid?: number): ProcInfo[] {
  const all = processes();
  const byPid = new Map(all.map((p) => [p.pid, p]));
  const underServer = (p: ProcInfo): boolean => {
    for (let q: ProcInfo | undefined = p, i = 0; q && i < 64; q = byPid.get(q.ppid), i++) if (q.pid === serverPid) return true;
    return false;
  };
  return all.filter((p) => p.pid !== process.pid && (p.cwd === dir || p.cwd.startsWith(dir + '/')) && !(serverPid && underServer(p)));
}

/** Processes whose environment or command line carries `marker`. */
export function withMarker(marker: string): ProcInfo[] {
  return processes().filter((p) => p.pid !== process.pid && (p.cmd.includes(marker) || p.env.some((e) => e.includes(marker))));
}

/** SIGKILL by pid, ignoring the already-gone. */
export function killAll(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone.
    }
  }
}

export interface Audit {
  jsonFiles: number;
  jsonlFiles: number;
  jsonlLines: number;
  /** .json files that do not parse (torn, truncated, empty). */
  torn: string[];
  /** .jsonl lines that end in a newline but do not parse (corruption inside a log). */
  tornLines: string[];
  /** .jsonl files whose last line has no newline and does not parse (a lost last append). */
  tornTails: string[];
  /** Temp files of atomic writes left behind (`.name.<hex>.tmp`). */
  tempFiles: string[];
}

/** Read every JSON and JSON-lines file under the roots (`.vibe` folders included). */
export function auditJson(roots: string[]): Audit {
  const a: Audit = { jsonFiles: 0, jsonlFiles: 0, jsonlLines: 0, torn: [], tornLines: [], tornTails: [], tempFiles: [] };
  const walk = (dir: string) => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const n of names) {
      const abs = path.join(dir, n);
      let st;
      try {
        st = statSync(abs);
      } catch {
        continue;
      }
      if (st.isDirectory()) {
        if (n === '.git' || n === 'node_modules') continue;
        walk(abs);
        continue;
      }
      if (/\.tmp$/.test(n)) a.tempFiles.push(abs);
      if (n.endsWith('.json')) {
        a.jsonFiles++;
        try {
          JSON.parse(readFileSync(abs, 'utf8'));
        } catch {
          a.torn.push(abs);
        }
      } else if (n.endsWith('.jsonl')) {
        a.jsonlFiles++;
        const text = readFileSync(abs, 'utf8');
        const lines = text.split('\n');
        const tail = lines.pop()!;
        for (const line of lines) {
          a.jsonlLines++;
          if (!line) continue;
          try {
            JSON.parse(line);
          } catch {
            a.tornLines.push(`${abs}: ${line.slice(0, 80)}`);
          }
        }
        if (tail) {
          try {
            JSON.parse(tail);
          } catch {
            a.tornTails.push(abs);
          }
        }
      }
    }
  };
  for (const r of roots) walk(r);
  return a;
}
