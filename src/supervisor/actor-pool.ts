import { closeSync } from 'node:fs';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { THREAD_KEY, type ActorSpec, type ActorTask, type FromActor, type OutboxBatch, type ToActor } from './mailbox.js';
import { decodeOutputs } from './output-batch.js';
import { PtyWriter } from './pty-writer.js';
import { loadNative } from '../native.js';

/** The spawner's terminal ioctl, for sizes set from this thread (native/pty_spawn.c). */
let terminalIoctl: { resize(fd: number, cols: number, rows: number): void } | undefined;

/** The worker file next to this build: `.js` when built, `.ts` when run under tsx. */
function workerFile(): string {
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  return fileURLToPath(new URL(`../../workers/session-actor${ext}`, import.meta.url));
}

/** A running actor as the supervisor sees it: its mailbox and the task's outcome. */
export interface ActorHandle {
  send(msg: ToActor, transfer?: ArrayBuffer[]): void;
  /**
   * Keystrokes, written straight to the terminal from this thread through the descriptor the
   * actor handed over (see `spawned`). An agent on pipes (ACP) has none: its stdin carries
   * the protocol, and typed input has nowhere to go.
   */
  input(data: string): void;
  /**
   * A new terminal size, set from this thread like the input, so that input sent after a
   * resize always meets the new size (the actor's screen mirror follows through the mailbox).
   */
  resize(cols: number, rows: number): void;
  /** A signal for the agent, sent from this thread like the input (so in the same order). */
  signal(sig: NodeJS.Signals): void;
  /** Resolves when the task ends normally; rejects when the actor's worker died. */
  readonly task: Promise<unknown>;
  close(): void;
}

/**
 * The piscina pool of session actors: WORKER_THREADS threads, each running up to
 * SESSIONS_PER_THREAD long-lived actor tasks. No AbortSignal is ever passed (piscina would
 * run such a task alone on its thread): cancellation goes through the mailbox.
 */
export class ActorPool {
  private readonly pool: Piscina;
  private destroyed = false;
  /** Live actors by key: where the messages of the threads' outbox batches go. */
  private readonly handlers = new Map<number, (m: FromActor) => void>();
  private nextKey = 1;

  constructor(threads: number, sessionsPerThread: number) {
    this.pool = new Piscina({
      filename: workerFile(),
      minThreads: threads,
      maxThreads: threads,
      concurrentTasksPerWorker: sessionsPerThread,
      idleTimeout: Number.MAX_SAFE_INTEGER,
      maxQueue: Infinity,
      // piscina's default blocks an idle worker in Atomics.wait until the next task, which
      // stops the thread's event loop; an actor thread must keep running its loop (draining,
      // cleanup, the exit waiters' callbacks) whatever the task count.
      atomics: 'disabled',
      // Workers inherit no argv/env beyond what Node gives them; secrets are never read there.
    });
    // A worker that dies is reported through its tasks' rejections; never crash on the event.
    this.pool.on('error', () => {});
  }

  get threads(): number {
    return this.pool.threads.length;
  }

  start(spec: ActorSpec, onMessage: (m: FromActor) => void): ActorHandle {
    const { port1, port2 } = new MessageChannel();
    const key = this.nextKey++;
    // This handle owns the terminal descriptor the actor hands over, until close().
    let inputFd: number | undefined;
    let writer: PtyWriter | undefined;
    let pid = 0;
    let closed = false;
    this.handlers.set(key, (m) => {
      if (m.t === 'spawned') {
        pid = m.pid;
        inputFd = m.inputFd;
        if (inputFd !== undefined) writer = new PtyWriter(inputFd, () => !closed);
      }
      onMessage(m);
    });
    // The actor's own port brings only its thread's outbox (once per thread).
    port2.on('message', (m: { t: 'outbox'; port: MessagePort }) => {
      if (m?.t === 'outbox') this.listen(m.port);
    });
    const transfer: ArrayBuffer[] = [];
    if (spec.initialRing) transfer.push(spec.initialRing.buffer as ArrayBuffer);
    const task: ActorTask = { port: port1, key, spec };
    const run = this.pool.run(task, { transferList: [port1 as unknown as ArrayBuffer, ...transfer] });
    const send = (msg: ToActor, t: ArrayBuffer[] = []) => {
      try {
        (port2 as MessagePort).postMessage(msg, t);
      } catch {
        // Port already closed: the actor has ended.
      }
    };
    const close = () => {
      if (closed) return;
      closed = true;
      this.handlers.delete(key);
      port2.removeAllListeners('message');
      port2.close();
      writer?.dispose();
      if (inputFd !== undefined) closeQuietly(inputFd);
      inputFd = undefined;
    };
    return {
      send,
      input: (data) => {
        if (!closed) writer?.write(data);
      },
      resize: (cols, rows) => {
        if (closed) return;
        if (inputFd !== undefined) {
          try {
            const ioctl = (terminalIoctl ??= loadNative<{ resize(fd: number, cols: number, rows: number): void }>('pty_spawn'));
            ioctl.resize(inputFd, cols, rows);
          } catch {
            // The terminal is going away; its exit is on the way.
          }
        }
        send({ t: 'resize', cols, rows });
      },
      signal: (sig) => {
        if (closed || !pid) return;
        try {
          process.kill(pid, sig);
        } catch {
          // Already gone: its exit is on the way.
        }
      },
      task: run,
      close,
    };
  }

  /** One message of an outbox, to its session's handler. */
  private readonly deliver = (key: number, m: FromActor): void => {
    const h = this.handlers.get(key);
    if (!h) {
      // A terminal handed over after its session was let go: nobody else will close it.
      if (m.t === 'spawned' && m.inputFd !== undefined) closeQuietly(m.inputFd);
      return;
    }
    try {
      h(m);
    } catch (err) {
      // One session's handler failing must not swallow the rest of the batch; the error
      // still surfaces as it would have from its own message event.
      queueMicrotask(() => {
        throw err;
      });
    }
  };

  /** A worker thread's outbox: output text, or batches of `[key, message]`, in order. */
  private listen(port: MessagePort): void {
    port.on('message', (batch: OutboxBatch | string) => {
      if (typeof batch === 'string') {
        decodeOutputs(batch, this.deliver);
        return;
      }
      for (const [key, m] of batch) {
        if (m.t === 'thread_drained') {
          if (key === THREAD_KEY) this.endThread(m.threadId);
          continue;
        }
        this.deliver(key, m);
      }
    });
    // The thread's life is tracked through its tasks; this port must not keep the process up.
    port.unref();
  }

  /**
   * End a worker thread that failed and has drained (no agent, no live pty: DESIGN §1 makes
   * that the only safe moment); piscina starts a replacement.
   */
  private endThread(threadId: number): void {
    const w = this.pool.threads.find((t) => t.threadId === threadId);
    void w?.terminate().catch(() => {});
  }

  /** Only call when no pty is alive (DESIGN §1). Safe to call twice. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    await this.pool.destroy();
  }
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // Already closed.
  }
}
