/**
 * Session actor: one long-running piscina task per session. It owns the session's pty,
 * replay ring and console.log; it talks to the supervisor only through its MessagePort.
 * The task resolves after the agent has exited, its trailing output has been sent and the
 * console log is flushed. Rules (DESIGN §1): never end the thread from here; never rely on
 * worker termination to end a pty — kill the process tree and await its exit.
 */
import { threadId, type MessagePort } from 'node:worker_threads';
import { isAscii, isUtf8 } from 'node:buffer';
import { outputFrameText, THREAD_KEY, type ActorTask, type FromActor, type ToActor } from '../src/supervisor/mailbox.js';
import { launchPty, livePtys, type PtyExit, type PtyProcess } from './pty-process.js';
import { ReplayRing, alignToCharStart } from './replay-ring.js';
import { ConsoleLog } from './console-log.js';
import { processUsage } from './process-tree.js';
import { ScreenMirror } from './screen-mirror.js';
import { createCgroup, killCgroup, removeCgroup } from './cgroup.js';
import { launchPipes } from './pipe-process.js';
import { AcpClient } from './acp-client.js';
import { outbox } from './outbox.js';

/** Flush output at most this long after the first byte of a burst: latency vs. message count. */
const COALESCE_MS = 4;
/** ... or as soon as this much is pending (DESIGN §1: "a few ms or 64 KiB"). */
const COALESCE_BYTES = 64 * 1024;
/** Pending output up to this size is flushed on the next loop turn (interactive echo). */
const INTERACTIVE_BYTES = 1024;
/** Pause the pty when the supervisor is this far behind in acknowledging output... */
const FLOW_HIGH_BYTES = 8 * 1024 * 1024;
/** ...and resume it once it is this close again (VS Code's pty-host pattern). */
const FLOW_LOW_BYTES = 2 * 1024 * 1024;
/** A killed agent gets this long after SIGHUP/SIGTERM before SIGKILL. */
const KILL_GRACE_MS = 2000;
/** How often per-session CPU and RSS are sampled for metrics. */
const USAGE_SAMPLE_MS = 5000;

/** Every live actor of this worker thread, so a fatal worker error can kill their ptys first. */
const liveActors = new Set<SessionActor>();

class SessionActor {
  private pty: PtyProcess | undefined;
  private cgroup: string | undefined;
  private acp: AcpClient | undefined;
  /** Prompts wait for the ACP handshake (initialize, session/new). */
  private acpStarted: Promise<unknown> = Promise.resolve();
  private readonly ring: ReplayRing;
  private readonly log: ConsoleLog;
  private readonly screen: ScreenMirror;
  private offset: number;
  private acked: number;
  private paused = false;
  private pending: Buffer[] = [];
  /** The start of a UTF-8 character whose rest has not arrived yet. */
  private carry: Buffer | undefined;
  private pendingBytes = 0;
  private flushTimer: NodeJS.Timeout | undefined;
  /** Marked dirty in the thread's outbox: flushed at the end of this loop turn. */
  private flushQueued = false;
  private lastFlushAt = 0;
  private usageTimer: NodeJS.Timeout | undefined;
  private killTimer: NodeJS.Timeout | undefined;
  private cause: 'exit' | 'kill' | 'actor_error' = 'exit';
  private error: string | undefined;
  private done!: (value: void) => void;
  readonly finished: Promise<void>;

  constructor(private readonly port: MessagePort, private readonly key: number, private readonly task: ActorTask['spec']) {
    this.offset = task.baseOffset;
    this.acked = task.baseOffset;
    this.ring = new ReplayRing(task.replayBytes, task.baseOffset, task.initialRing);
    this.log = new ConsoleLog(task.consoleLogPath);
    this.screen = new ScreenMirror(task.cols, task.rows, this.ring.end, () => ({ bytes: this.ring.slice(this.ring.start), end: this.ring.end }));
    this.finished = new Promise((resolve) => (this.done = resolve));
  }

  /** To the supervisor, through the thread's outbox (ordered with this actor's output). */
  private post(msg: FromActor, transfer: ArrayBuffer[] = []): void {
    outbox.post(this.key, msg, transfer);
  }

  /** The actor's last word: sent now, before the task resolves and the port closes. */
  private postLast(msg: FromActor, transfer: ArrayBuffer[] = []): void {
    outbox.forget(this);
    outbox.post(this.key, msg, transfer);
  }

  async start(): Promise<void> {
    // Live from here: a worker going down waits for actors still launching, too.
    liveActors.add(this);
    outbox.connect(this.port);
    const s = this.task;
    this.cgroup = s.cgroupBase ? createCgroup(s.cgroupBase, s.sessionId) : undefined;
    const spec = { command: s.command, args: s.args, cwd: s.cwd, env: s.env, cols: s.cols, rows: s.rows, cgroup: this.cgroup, runAs: s.runAs };
    let res: { ok: true; pty: PtyProcess } | { ok: false; error: string };
    if (s.protocol === 'acp') {
      const piped = await launchPipes(spec);
      if (piped.ok) {
        res = { ok: true, pty: piped.proc };
        this.acp = AcpClient.fromChild(piped.child, { cwd: s.cwd, onEvent: (event) => this.post({ t: 'agent_event', event }) });
      } else res = piped;
    } else res = await launchPty(spec);
    if (!res.ok) {
      if (this.cgroup) await removeCgroup(this.cgroup);
      this.postLast({ t: 'spawn_failed', error: res.error });
      liveActors.delete(this);
      this.port.close();
      this.done();
      return;
    }
    const p = res.pty;
    this.pty = p;
    p.onData((d) => this.onData(d));
    p.onExit((e) => void this.onExit(e));
    // The worker went down while this agent was launching: it ends at once, like the others.
    if (fatal) void this.killNow();
    this.port.on('message', (m: ToActor) => {
      try {
        this.onMessage(m);
      } catch (err) {
        void this.fail(err);
      }
    });
    this.usageTimer = setInterval(() => void this.sampleUsage(), USAGE_SAMPLE_MS);
    this.usageTimer.unref();
    // The supervisor writes keystrokes, sizes and signals from its own thread (no hop through
    // this one): the terminal's second descriptor is its from here on.
    this.post({ t: 'spawned', pid: p.pid, inputFd: p.inputFd });
    if (this.acp) {
      this.acpStarted = this.acp.start();
      this.acpStarted.then(
        () => this.post({ t: 'agent_event', event: { kind: 'status', state: 'ready' } }),
        (err: Error) => this.post({ t: 'agent_event', event: { kind: 'status', state: 'error', detail: `ACP start failed: ${err.message}` } }),
      );
    }
  }

  private onMessage(m: ToActor): void {
    const p = this.pty!;
    switch (m.t) {
      case 'resize':
        this.screen.resize(m.cols, m.rows);
        break;
      case 'kill':
        this.cause = 'kill';
        void this.killTree();
        break;
      case 'replay':
        if (m.mode === 'screen') void this.replayScreen(m.reqId).catch((err) => this.fail(err));
        else this.replay(m.reqId, m.since);
        break;
      case 'ack':
        this.acked = Math.max(this.acked, m.offset);
        if (this.paused && this.offset - this.acked <= FLOW_LOW_BYTES) {
          this.paused = false;
          p.resume();
        }
        break;
      case 'prompt': {
        const acp = this.acp;
        if (!acp) break;
        this.acpStarted.then(() => acp.prompt(m.text)).then(
          (r) => this.post({ t: 'agent_event', event: { kind: 'prompt_done', promptId: m.id, stopReason: r.stopReason } }),
          (err: Error) => this.post({ t: 'agent_event', event: { kind: 'prompt_failed', promptId: m.id, error: err.message } }),
        );
        break;
      }
      case 'cancel':
        this.acp?.cancel();
        break;
      case 'permission':
        this.acp?.answerPermission(m.requestId, m.optionId);
        break;
      case 'fault':
        if (!this.task.testHooks) break;
        if (m.kind === 'throw') throw new Error('injected actor fault');
        if (m.kind === 'crash-worker') {
          setImmediate(() => {
            throw new Error('injected worker crash');
          });
        }
        break;
    }
  }

  private onData(d: Buffer): void {
    this.pending.push(d);
    this.pendingBytes += d.length;
    if (this.pendingBytes >= COALESCE_BYTES) {
      this.flush();
      return;
    }
    if (this.flushTimer || this.flushQueued) return;
    const since = performance.now() - this.lastFlushAt;
    // A small write (an echo, a prompt) or the first bytes after a quiet spell go out on
    // the next turn of the loop; a big read inside a burst waits the rest of the window so
    // a flood travels in few, large frames.
    if (this.pendingBytes <= INTERACTIVE_BYTES || since >= COALESCE_MS) {
      this.flushQueued = true;
      outbox.markDirty(this);
    } else this.flushTimer = setTimeout(() => this.flush(), COALESCE_MS - since);
  }

  flush(final = false): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    this.flushQueued = false;
    if (this.pending.length === 0 && !(final && this.carry)) return;
    let bytes = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    this.lastFlushAt = performance.now();
    if (this.carry) {
      bytes = Buffer.concat([this.carry, bytes]);
      this.carry = undefined;
    }
    // A chunk never ends inside a character: hold an incomplete tail back for the next one.
    const cut = final ? 0 : incompleteUtf8Tail(bytes);
    if (cut) {
      this.carry = Buffer.from(bytes.subarray(bytes.length - cut));
      bytes = bytes.subarray(0, bytes.length - cut);
      if (bytes.length === 0) return;
    }
    // Offsets count the bytes viewers get: invalid sequences become U+FFFD first.
    // ASCII (most terminal output, every base64 flood) takes the one-byte-per-char path:
    // no UTF-8 validation, decoding or encoding work, the frame is written as latin1.
    const ascii = isAscii(bytes);
    if (!ascii && !isUtf8(bytes)) bytes = Buffer.from(bytes.toString('utf8'), 'utf8');
    const text = ascii ? bytes.toString('latin1') : bytes.toString('utf8');
    const offset = this.offset;
    this.offset += bytes.length;
    this.ring.push(bytes);
    this.log.write(bytes);
    this.screen.feed(bytes);
    outbox.postOutput(this.key, offset, bytes.length, outputFrameText(this.task.sessionId, offset, text), ascii);
    if (!this.paused && this.offset - this.acked > FLOW_HIGH_BYTES && this.pty && !this.pty.exited) {
      this.paused = true;
      this.pty.pause();
    }
  }

  /**
   * A ready-to-send `output` frame (a replay's) in a non-pooled buffer, so its ArrayBuffer
   * can be transferred instead of copied.
   */
  private frame(offset: number, text: string): Buffer {
    const json = outputFrameText(this.task.sessionId, offset, text);
    const b = Buffer.allocUnsafeSlow(Buffer.byteLength(json));
    b.write(json, 'utf8');
    return b;
  }

  private replay(reqId: number, since: number | undefined): void {
    this.flush();
    const start = this.ring.start;
    const end = this.ring.end;
    let from = since === undefined ? start : Math.min(Math.max(since, start), end);
    const gap = since !== undefined && since < start;
    let bytes = this.ring.slice(from);
    const skip = alignToCharStart(bytes);
    if (skip) {
      bytes = bytes.subarray(skip);
      from += skip;
    }
    const frame = bytes.length > 0 ? this.frame(from, bytes.toString('utf8')) : null;
    this.post({ t: 'replay', reqId, offset: from, end, gap, frame }, frame ? [frame.buffer as ArrayBuffer] : []);
  }

  /** Screen-mode attach: the serialized screen, then the bytes output since it was taken. */
  private async replayScreen(reqId: number): Promise<void> {
    this.flush();
    const snap = await this.screen.snapshot();
    this.flush();
    const end = this.ring.end;
    const from = Math.max(snap.offset, this.ring.start);
    const bytes = this.ring.slice(from);
    const frame = bytes.length > 0 ? this.frame(from, bytes.toString('utf8')) : null;
    this.post({ t: 'replay', reqId, offset: snap.offset, end, gap: from !== snap.offset, frame, screen: { data: snap.data, cols: snap.cols, rows: snap.rows } }, frame ? [frame.buffer as ArrayBuffer] : []);
  }

  private async sampleUsage(): Promise<void> {
    if (!this.pty || this.pty.exited) return;
    const u = await processUsage(this.pty.pid);
    if (u) this.post({ t: 'usage', cpuMs: u.cpuMs, rssBytes: u.rssBytes });
  }

  /** SIGHUP (a hung-up terminal) and SIGTERM to the whole tree, SIGKILL after a grace period. */
  async killTree(): Promise<void> {
    const p = this.pty;
    if (!p || p.exited) return;
    if (this.paused) {
      this.paused = false;
      p.resume();
    }
    await p.signalTree(['SIGHUP', 'SIGTERM']);
    if (!this.killTimer) {
      this.killTimer = setTimeout(() => void p.signalTree('SIGKILL'), KILL_GRACE_MS);
    }
  }

  /** The worker is going down: report this actor as failed and kill its agent at once. */
  async workerFatal(err: unknown): Promise<void> {
    if (this.cause !== 'actor_error') {
      this.cause = 'actor_error';
      this.error = `worker thread failed: ${err instanceof Error ? err.message : String(err)}`;
    }
    await this.killNow();
  }

  /** Kill everything at once. */
  async killNow(): Promise<void> {
    if (this.cgroup) killCgroup(this.cgroup);
    const p = this.pty;
    if (!p || p.exited) return;
    await p.signalTree('SIGKILL');
  }

  private async fail(err: unknown): Promise<void> {
    if (this.cause === 'actor_error') return;
    this.cause = 'actor_error';
    this.error = err instanceof Error ? err.message : String(err);
    await this.killNow();
  }

  private async onExit(e: PtyExit): Promise<void> {
    if (this.killTimer) clearTimeout(this.killTimer);
    if (this.usageTimer) clearInterval(this.usageTimer);
    this.flush(true);
    this.screen.dispose();
    this.acp?.close();
    // Reap whatever the agent left behind in its session (background jobs, daemons): the
    // exit drain of a terminal already swept it (and removeCgroup sweeps again while the
    // cgroup is busy).
    const reaped = this.pty?.reaped === true;
    if (this.cgroup) {
      if (!reaped) killCgroup(this.cgroup);
      await removeCgroup(this.cgroup);
    } else if (this.pty && !reaped) await this.pty.signalTree('SIGKILL');
    await this.log.close();
    const end = this.offset;
    const ringStart = this.ring.start;
    const ring = this.ring.slice(ringStart);
    const ringCopy = new Uint8Array(ring.length);
    ringCopy.set(ring);
    const msg: FromActor = {
      t: 'exit',
      exitCode: e.exitCode,
      signal: e.signal,
      endOffset: end,
      ring: ringCopy,
      ringStart,
      cause: this.cause,
      ...(this.error ? { error: this.error } : {}),
    };
    this.postLast(msg, [ringCopy.buffer]);
    liveActors.delete(this);
    this.port.close();
    this.done();
  }
}

/**
 * A fatal error in this worker (an exception no actor caught): kill every pty of the
 * worker and wait for them to exit, then ask the supervisor to end the thread. Ending a
 * worker with live ptys can abort the whole process; ending it with none cannot.
 */
let fatal = false;
process.on('uncaughtException', (err) => {
  if (fatal) return;
  fatal = true;
  const actors = [...liveActors];
  void Promise.all(actors.map((a) => a.workerFatal(err)))
    .then(() => Promise.all(actors.map((a) => a.finished)))
    .then(() => {
      // Every agent of this thread was SIGKILLed and has reported its exit, and the pty
      // module itself counts no live terminal: only then is ending the thread safe (DESIGN
      // §1), and the supervisor does it (it owns the pool). A rethrow would not end it:
      // after a handled uncaught exception this worker stops running ticks, immediates and
      // timers (docs/architecture.md), so the word goes out at once, not on the next turn.
      // Otherwise it keeps draining, refuses new sessions, and stays: a live pty is never
      // torn down with its thread.
      if (liveActors.size > 0 || livePtys() > 0) return;
      outbox.post(THREAD_KEY, { t: 'thread_drained', threadId });
    });
});

export default async function runSession(task: ActorTask): Promise<{ ok: true }> {
  // A worker that is going down takes no new session; the supervisor retries elsewhere.
  if (fatal) throw new Error('worker is draining after a fatal error');
  const actor = new SessionActor(task.port as MessagePort, task.key, task.spec);
  await actor.start();
  await actor.finished;
  return { ok: true };
}

/** Bytes at the end of `b` that start a UTF-8 character without finishing it (0 if none). */
export function incompleteUtf8Tail(b: Uint8Array): number {
  const n = b.length;
  let i = n - 1;
  while (i >= 0 && n - i <= 3 && (b[i]! & 0xc0) === 0x80) i--;
  if (i < 0) return 0;
  const lead = b[i]!;
  const need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  const have = n - i;
  return have < need && lead < 0xf8 ? have : 0;
}
