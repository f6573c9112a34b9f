/**
 * An agent with stdio pipes instead of a pty (ACP agents): stdin/stdout carry JSON-RPC,
 * stderr is the session's terminal stream. Same interface as a pty, so the actor treats
 * both alike: exit is reported after the streams closed (trailing stderr read), kill
 * signals the whole tree (the child leads its own session: `detached`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { signalAgent } from './process-tree.js';
import { agentArgv } from './cgroup.js';
import { resolveCommand, type PtyExit, type PtyProcess, type PtySpec } from './pty-process.js';

export type PipeLaunch = { ok: true; proc: PtyProcess; child: ChildProcess } | { ok: false; error: string };

export async function launchPipes(spec: PtySpec): Promise<PipeLaunch> {
  try {
    if (!(await stat(spec.cwd)).isDirectory()) return { ok: false, error: `working directory is not a directory: ${spec.cwd}` };
  } catch {
    return { ok: false, error: `working directory does not exist: ${spec.cwd}` };
  }
  const file = await resolveCommand(spec.command, spec.env, spec.cwd);
  if (!file) return { ok: false, error: `command not found: ${spec.command}` };
  let child: ChildProcess;
  try {
    const argv = agentArgv(file, spec.args, { cgroup: spec.cgroup, runAs: spec.runAs });
    child = spawn(argv.file, argv.args, { cwd: spec.cwd, env: spec.env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
  } catch (err) {
    return { ok: false, error: `spawn failed: ${(err as Error).message}` };
  }
  if (child.pid === undefined) {
    const error = await new Promise<string>((resolve) => child.once('error', (e) => resolve(e.message)));
    return { ok: false, error: `spawn failed: ${error}` };
  }
  child.on('error', () => {});
  child.stdin?.on('error', () => {});
  const pid = child.pid;
  let exited = false;
  const exitCbs: Array<(e: PtyExit) => void> = [];
  child.once('close', (code, signal) => {
    exited = true;
    for (const cb of exitCbs) cb({ exitCode: signal ? null : code, signal: signal ?? null });
  });
  child.stderr!.setEncoding('utf8');
  const proc: PtyProcess = {
    pid,
    get exited() {
      return exited;
    },
    reaped: false,
    onData: (cb) => {
      // stderr lines become terminal lines.
      child.stderr!.on('data', (d: string) => cb(Buffer.from(d.replace(/\r?\n/g, '\r\n'), 'utf8')));
    },
    onExit: (cb) => {
      exitCbs.push(cb);
    },
    pause: () => child.stderr!.pause(),
    resume: () => child.stderr!.resume(),
    signalTree: (sig) => signalAgent(pid, sig, spec.cgroup),
  };
  return { ok: true, proc, child };
}
