import { open, rename, mkdir, type FileHandle } from 'node:fs/promises';
import path from 'node:path';

/** Rotate console.log to console.log.1 past this size: enough for `logs`, bounded on disk. */
export const CONSOLE_LOG_MAX_BYTES = 8 * 1024 * 1024;
/** Most output waiting for the disk before the log starts skipping (bounded memory). */
const LOG_BACKLOG_MAX_BYTES = 32 * 1024 * 1024;
/**
 * Output is written in batches: at most this long after it arrived... (each batch is a trip
 * to libuv's pool and back; at 50 ms, 50 chatty sessions made a thousand of them a second,
 * a fifth of the wake-ups of an interactive echo benchmark. `logs` may lag this much.)
 */
const LOG_BATCH_MS = 200;
/** ...or as soon as this much is waiting. */
const LOG_BATCH_BYTES = 1024 * 1024;

/**
 * Append-only console.log of a session's output, written in order, in batches (one writev
 * per batch instead of one write per output chunk). Rotation keeps one previous file.
 * Failures (disk full) are counted, never thrown into the pty path: the terminal stream
 * matters more than its log.
 */
export class ConsoleLog {
  private fh: Promise<FileHandle | undefined>;
  private chain: Promise<void> = Promise.resolve();
  private size = 0;
  private queued: Uint8Array[] = [];
  private queuedBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  failures = 0;
  /** Bytes queued or being written. */
  private backlog = 0;
  /** Output bytes the log skipped because the disk fell too far behind. */
  skipped = 0;

  constructor(private readonly file: string) {
    // Opened on the first output: a session that prints nothing costs no file.
    this.fh = Promise.resolve(undefined);
  }

  private opened = false;

  private async openFile(): Promise<FileHandle | undefined> {
    try {
      await mkdir(path.dirname(this.file), { recursive: true });
      const fh = await open(this.file, 'a', 0o600);
      this.size = (await fh.stat()).size;
      return fh;
    } catch {
      this.failures++;
      return undefined;
    }
  }

  write(bytes: Uint8Array): void {
    // A disk slower than the agent must not grow memory without bound: past the backlog
    // limit the log skips output (the terminal stream and the replay ring still have it).
    if (this.backlog + bytes.length > LOG_BACKLOG_MAX_BYTES) {
      this.skipped += bytes.length;
      return;
    }
    this.backlog += bytes.length;
    this.queued.push(bytes);
    this.queuedBytes += bytes.length;
    if (this.queuedBytes >= LOG_BATCH_BYTES) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), LOG_BATCH_MS);
  }

  /** Hand the queued bytes to the write chain (in order). */
  private flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.queued.length === 0) return;
    const batch = this.queued;
    const n = this.queuedBytes;
    this.queued = [];
    this.queuedBytes = 0;
    if (!this.opened) {
      this.opened = true;
      this.fh = this.openFile();
    }
    this.chain = this.chain.then(async () => {
      try {
        let fh = await this.fh;
        if (!fh) return;
        if (this.size + n > CONSOLE_LOG_MAX_BYTES && this.size > 0) {
          await fh.close();
          await rename(this.file, this.file + '.1');
          this.fh = this.openFile();
          fh = await this.fh;
          if (!fh) return;
        }
        await fh.writev(batch);
        this.size += n;
      } catch {
        this.failures++;
      } finally {
        this.backlog -= n;
      }
    });
  }

  async close(): Promise<void> {
    this.flush();
    await this.chain;
    const fh = await this.fh;
    await fh?.close().catch(() => {});
    this.fh = Promise.resolve(undefined);
  }
}
