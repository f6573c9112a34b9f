/**
 * One ordered channel per worker thread for everything its actors tell the supervisor.
 *
 * Every port message costs a wake-up of the main thread and an event dispatch there; with
 * one port per session, fifty chatty sessions meant fifty of each per loop turn. Here the
 * actors that have output mark themselves dirty, one immediate per loop turn flushes them
 * all, and the thread posts a single batch `[actorKey, message][]`. A session's messages
 * all travel this one channel, so their order is kept (output before `replay` answers that
 * cover it, the last output before `exit`).
 *
 * The channel is made by the thread's first actor; its other end travels to the supervisor
 * through that actor's own mailbox (`{t: 'outbox', port}`), which is otherwise used only
 * for messages to the actor.
 */
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import type { FromActor, ThreadDrained } from '../src/supervisor/mailbox.js';

export interface Flushable {
  flush(): void;
}

class Outbox {
  private port: MessagePort | undefined;
  private batch: Array<[number, FromActor | ThreadDrained]> = [];
  private transfer: ArrayBuffer[] = [];
  private scheduled = false;
  private readonly dirty = new Set<Flushable>();

  /** Make the channel if this thread has none yet, handing its far end over `via`. */
  connect(via: MessagePort): void {
    if (this.port) return;
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    via.postMessage({ t: 'outbox', port: port2 }, [port2 as unknown as ArrayBuffer]);
  }

  /** Queue a message for the supervisor; it leaves at the end of this loop turn. */
  post(key: number, msg: FromActor | ThreadDrained, transfer: ArrayBuffer[] = []): void {
    this.batch.push([key, msg]);
    for (const t of transfer) this.transfer.push(t);
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

  /** Flush dirty actors, then send the batch now (also used before a task resolves). */
  flush(): void {
    // Posts made while dirty actors flush join this batch instead of scheduling another.
    this.scheduled = true;
    if (this.dirty.size > 0) {
      const actors = [...this.dirty];
      this.dirty.clear();
      for (const a of actors) a.flush();
    }
    this.scheduled = false;
    if (this.batch.length === 0) return;
    const batch = this.batch;
    const transfer = this.transfer;
    this.batch = [];
    this.transfer = [];
    try {
      this.port?.postMessage(batch, transfer);
    } catch {
      // The supervisor's side is gone (shutdown): nothing left to tell.
    }
  }
}

export const outbox = new Outbox();
