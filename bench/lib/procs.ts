/**
 * Child processes of the bench (servers, limit probes): start one, wait for its ready line,
 * sample its CPU and memory from /proc, and stop it — then kill, by PID, whatever it left
 * behind. Every wait is bounded.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { loadavg } from 'node:os';

/** Linux USER_HZ: /proc/<pid>/stat counts CPU time in these ticks. */
const CLK_TCK = 100;
/** Lines of child output kept for error messages (the rest is read and dropped). */
const OUTPUT_LINES_KEPT = 200;

export interface Child {
  proc: ChildProcess;
  pid: number;
  readyLine: string;
  /** The last lines the child printed. */
  output: string[];
  /** Descendants seen while it ran (pid + start time), reaped by `stopChild` if left alive. */
  seen: Map<number, number>;
}

/** Children alive right now, so an interrupted bench can still clean up by PID. */
const liveChildren = new Set<Child>();

/** SIGKILL every child still running and every descendant seen (interrupt / fatal error path). */
export function killAllChildren(): void {
  for (const c of liveChildren) {
    rememberDescendants(c);
    for (const pid of [c.pid, ...c.seen.keys()]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
  liveChildren.clear();
}

export interface SpawnOptions {
  env: Record<string, string>;
  cwd: string;
  readyPrefix: string;
  timeoutMs?: number;
  nodeArgs?: string[];
}

/** Start `node <script> …args` and resolve once it prints a line starting with `readyPrefix`. */
export async function spawnNode(script: string, args: string[], o: SpawnOptions): Promise<Child> {
  const proc = spawn(process.execPath, [...(o.nodeArgs ?? []), script, ...args], { cwd: o.cwd, env: o.env, stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  const keep = (line: string) => {
    output.push(line);
    if (output.length > OUTPUT_LINES_KEPT) output.splice(0, output.length - OUTPUT_LINES_KEPT);
  };
  let errBuf = '';
  proc.stderr!.on('data', (d: Buffer) => {
    errBuf += d.toString();
    let i;
    while ((i = errBuf.indexOf('\n')) >= 0) {
      keep(errBuf.slice(0, i));
      errBuf = errBuf.slice(i + 1);
    }
  });
  const readyLine = await new Promise<string>((resolve, reject) => {
    let buf = '';
    let done = false;
    const timer = setTimeout(() => {
      done = true;
      try {
        proc.kill('SIGKILL');
      } catch {
        /* gone */
      }
      reject(new Error(`${script} did not become ready in ${o.timeoutMs ?? 20_000} ms:\n${output.join('\n')}`));
    }, o.timeoutMs ?? 20_000);
    proc.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      if (buf.length > 1 << 20) buf = buf.slice(-4096);
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        keep(line);
        if (!done && line.startsWith(o.readyPrefix)) {
          done = true;
          clearTimeout(timer);
          resolve(line);
        }
      }
    });
    proc.once('exit', (code, sig) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      reject(new Error(`${script} exited (${code ?? sig}) before it was ready:\n${output.join('\n')}`));
    });
    proc.once('error', (err) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      reject(err);
    });
  });
  const child: Child = { proc, pid: proc.pid!, readyLine, output, seen: new Map() };
  if (proc.exitCode === null && proc.signalCode === null) {
    liveChildren.add(child);
    proc.once('exit', () => liveChildren.delete(child));
  }
  return child;
}

export interface StopResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  ms: number;
  /** Descendants still alive after the child exited (killed here with SIGKILL). */
  leftovers: number;
}

/** SIGTERM, wait up to `graceMs`, then SIGKILL; then SIGKILL leftover descendants by PID. */
export async function stopChild(c: Child, graceMs = 10_000): Promise<StopResult> {
  rememberDescendants(c);
  const t0 = Date.now();
  const exited = (): boolean => c.proc.exitCode !== null || c.proc.signalCode !== null;
  const res = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    if (exited()) return resolve({ code: c.proc.exitCode, signal: c.proc.signalCode });
    const kill = setTimeout(() => {
      try {
        c.proc.kill('SIGKILL');
      } catch {
        /* gone */
      }
    }, graceMs);
    c.proc.once('exit', (code, signal) => {
      clearTimeout(kill);
      resolve({ code, signal });
    });
    try {
      c.proc.kill('SIGTERM');
    } catch {
      /* gone */
    }
  });
  const ms = Date.now() - t0;
  // Let orphaned agents notice their hung-up terminal before deciding they leaked.
  await sleep(200);
  let leftovers = 0;
  for (const [pid, start] of c.seen) {
    if (startTime(pid) === start) {
      leftovers++;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone meanwhile */
      }
    }
  }
  return { ...res, ms, leftovers };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function statFields(pid: number): string[] | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name is in parentheses and may hold spaces: split after the last ')'.
    return s.slice(s.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** Start time of a process (clock ticks since boot), to tell it from a recycled PID. */
function startTime(pid: number): number | undefined {
  const f = statFields(pid);
  return f ? Number(f[19]) : undefined;
}

/** Record every current descendant of the child so it can be reaped after the child exits. */
export function rememberDescendants(c: Child): void {
  for (const pid of descendants(c.pid)) {
    const st = startTime(pid);
    if (st !== undefined) c.seen.set(pid, st);
  }
}

/** PIDs of all descendants of `root` (from /proc, parent links). */
export function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const f = statFields(Number(e));
    if (!f) continue;
    const ppid = Number(f[1]);
    let list = children.get(ppid);
    if (!list) children.set(ppid, (list = []));
    list.push(Number(e));
  }
  const out: number[] = [];
  const todo = [root];
  while (todo.length && out.length < 100_000) {
    const p = todo.pop()!;
    for (const ch of children.get(p) ?? []) {
      out.push(ch);
      todo.push(ch);
    }
  }
  return out;
}

/** user + system CPU seconds from a /proc …/stat line. */
function statCpuSeconds(st: string): number {
  const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

/** CPU seconds of a process's main thread only (the thread whose id is the pid). */
export function mainThreadCpuSeconds(pid: number): number {
  try {
    return statCpuSeconds(readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8'));
  } catch {
    return NaN;
  }
}

/** CPU seconds per thread name (comm: node, libuv-worker, V8Worker…), summed over a process's threads. */
export function threadCpuSeconds(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const st = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const name = tid === String(pid) ? 'main' : st.slice(st.indexOf('(') + 1, st.lastIndexOf(')'));
      out[name] = (out[name] ?? 0) + statCpuSeconds(st);
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return out;
}

/** CPU seconds (user + system, all threads) a process has used so far. */
export function cpuSeconds(pid: number): number {
  const f = statFields(pid);
  if (!f) return NaN;
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

function statusKiB(pid: number, field: string): number {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(s);
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

/** Resident set size in KiB. */
export function rssKiB(pid: number): number {
  return statusKiB(pid, 'VmRSS');
}

/** Peak resident set size in KiB. */
export function hwmKiB(pid: number): number {
  return statusKiB(pid, 'VmHWM');
}

/**
 * Machine-wide CPU counters in jiffies, for percentages over an interval: busy (steal
 * included: the cores were not ours), steal alone (time the hypervisor gave our virtual
 * cores to someone else), and the total.
 */
export function machineCpu(): { busy: number; steal: number; total: number } {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    return { busy: total - idle, steal: v[7] ?? 0, total };
  } catch {
    return { busy: NaN, steal: NaN, total: NaN };
  }
}

/**
 * Samples a server while a scenario runs: CPU at marks, peak RSS, descendants (for
 * cleanup), machine busy %, driver CPU.
 */
export class Probe {
  private timer: NodeJS.Timeout | undefined;
  peakRssKiB = 0;
  private readonly m0 = machineCpu();
  private readonly d0 = process.cpuUsage();
  private readonly l0 = loadavg1();
  private cpuMark = 0;
  private mainMark = 0;
  private driverMark = process.cpuUsage();
  private machineMark = machineCpu();
  private threadMark: Record<string, number> = {};

  /** Without a child, only the machine and the driver are measured. */
  constructor(private readonly child: Child | undefined, everyMs = 250) {
    if (!child) return;
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
    this.timer.unref();
  }

  private sample(): void {
    if (!this.child) return;
    const r = rssKiB(this.child.pid);
    if (r > this.peakRssKiB) this.peakRssKiB = r;
  }

  /** Start a measured window (server and driver CPU). */
  mark(): void {
    this.cpuMark = this.child ? cpuSeconds(this.child.pid) : 0;
    this.mainMark = this.child ? mainThreadCpuSeconds(this.child.pid) : 0;
    this.driverMark = process.cpuUsage();
    this.machineMark = machineCpu();
    this.threadMark = this.child ? threadCpuSeconds(this.child.pid) : {};
  }

  /**
   * Where the CPU went since `mark()`: the server's threads by name (threads that ended in
   * between are missing), and the whole machine's busy CPU seconds (every core, stolen time
   * left out), so what the agents and the kernel used is visible as machine − server − driver.
   */
  breakdown(): { threads: Record<string, number>; machineCpuS: number } {
    const now = this.child ? threadCpuSeconds(this.child.pid) : {};
    const threads: Record<string, number> = {};
    for (const [k, v] of Object.entries(now)) threads[k] = round(v - (this.threadMark[k] ?? 0), 2);
    const m = machineCpu();
    // Stolen time is not work done here: it would count as the agents' and kernel's share.
    const ours = (x: { busy: number; steal: number }) => x.busy - x.steal;
    return { threads, machineCpuS: round((ours(m) - ours(this.machineMark)) / CLK_TCK, 2) };
  }

  /** Server (all threads, and its main thread alone) and driver CPU seconds since `mark()`. */
  since(): { serverCpuS: number; serverMainCpuS: number; driverCpuS: number } {
    const d = process.cpuUsage(this.driverMark);
    return {
      serverCpuS: this.child ? cpuSeconds(this.child.pid) - this.cpuMark : NaN,
      serverMainCpuS: this.child ? mainThreadCpuSeconds(this.child.pid) - this.mainMark : NaN,
      driverCpuS: (d.user + d.system) / 1e6,
    };
  }

  /** Stop sampling; machine figures over the probe's whole life. */
  finish(): MachineLoad {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.child) rememberDescendants(this.child);
    const m1 = machineCpu();
    const d = process.cpuUsage(this.d0);
    return {
      load1Start: this.l0,
      load1End: loadavg1(),
      machineBusyPct: round(((m1.busy - this.m0.busy) / Math.max(1, m1.total - this.m0.total)) * 100, 1),
      stealPct: round(((m1.steal - this.m0.steal) / Math.max(1, m1.total - this.m0.total)) * 100, 1),
      driverCpuS: round((d.user + d.system) / 1e6, 2),
    };
  }
}

export interface MachineLoad {
  load1Start: number;
  load1End: number;
  /** Busy % of all cores over the run, everything on the machine included (steal too). */
  machineBusyPct: number;
  /** % of the cores' time the hypervisor gave to other guests over the run (absent in older results). */
  stealPct?: number;
  /** CPU the driver (this process) used over the run. */
  driverCpuS: number;
}

function loadavg1(): number {
  return round(loadavg()[0] ?? NaN, 2);
}

export function round(x: number, digits = 2): number {
  if (!Number.isFinite(x)) return x;
  const k = 10 ** digits;
  return Math.round(x * k) / k;
}
