/**
 * One ordered channel per worker thread for everything its actors tell the supervisor.
 *
 * Every port message costs a wake-up of the main thread and an event dispatch there; with
 * one port per session, fifty chatty sessions meant fifty of each per loop turn. Here the
 * actors that have output mark themselves dirty, one immediate per loop turn flushes them
 * all, and the thread posts the turn's output as one message. A session's messages all
 * travel this one channel, so their order is kept (output before `replay` answers that
 * cover it, the last output before `exit`).
 *
 * Output travels as text. A posted object costs V8's serializer an identity map (a fresh
 * zone allocation, which in a busy heap set off malloc's consolidation on every post) and a
 * transferred buffer a detach and a new ArrayBuffer on each side; a posted string is copied
 * once. So a turn's `out` messages go as one string (src/supervisor/output-batch.ts). Other
 * messages (spawned, exit, replay answers, usage) are waited for: each leaves at once as a
 * one-entry batch `[[actorKey, message]]`, after the output queued before it.
 *
 * The channel is made by the thread's first actor; its other end travels to the supervisor
 * through that actor's own mailbox (`{t: 'outbox', port}`), which is otherwise used only
 * for messages to the actor.
 */
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import type { FromActor, OutboxBatch, ThreadDrained } from '../src/supervisor/mailbox.js';
import { encodeOutput } from '../src/supervisor/output-batch.js';

export interface Flushable {
  flush(): void;
}

class Outbox {
  private port: MessagePort | undefined;
  /** Output records of this loop turn, sent as one string (output-batch.ts). */
  private text: string[] = [];
  private scheduled = false;
  private readonly dirty = new Set<Flushable>();

  /** Make the channel if this thread has none yet, handing its far end over `via`. */
  connect(via: MessagePort): void {
    if (this.port) return;
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    via.postMessage({ t: 'outbox', port: port2 }, [port2 as unknown as ArrayBuffer]);
  }

  /**
   * Send a message to the supervisor now, after the output queued before it (a spawn, an
   * exit or a replay answer is waited for; in the loop turn it would otherwise wait for,
   * other sessions of this thread may be spawning).
   */
  post(key: number, msg: FromActor | ThreadDrained, transfer: ArrayBuffer[] = []): void {
    this.sendText();
    this.send([[key, msg]], transfer);
    this.flush();
  }

  /** Queue an output frame (its JSON text) for the supervisor, as `post` does. */
  postOutput(key: number, offset: number, length: number, frame: string, ascii: boolean): void {
    this.text.push(encodeOutput(key, offset, length, frame, ascii));
    this.schedule();
  }

  /** An actor with pending output: flushed (and sent) at the end of this loop turn. */
  markDirty(a: Flushable): void {
    this.dirty.add(a);
    this.schedule();
  }

  forget(a: Flushable): void {
    this.dirty.delete(a);
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  /** Flush dirty actors, then send the output queued now (also used before a task resolves). */
  flush(): void {
    // Output posted while dirty actors flush joins this turn instead of scheduling another.
    this.scheduled = true;
    if (this.dirty.size > 0) {
      const actors = [...this.dirty];
      this.dirty.clear();
      for (const a of actors) a.flush();
    }
    this.scheduled = false;
    this.sendText();
  }

  private sendText(): void {
    if (this.text.length === 0) return;
    const text = this.text.length === 1 ? this.text[0]! : this.text.join('');
    this.text = [];
    this.send(text);
  }

  private send(m: string | OutboxBatch, transfer: ArrayBuffer[] = []): void {
    try {
      this.port?.postMessage(m, transfer);
    } catch {
      // The supervisor's side is gone (shutdown): nothing left to tell.
    }
  }
}

export const outbox = new Outbox();
