import { close, fstat, open, writev } from 'node:fs';
import { mkdir, rename } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const openAsync = promisify(open);
const fstatAsync = promisify(fstat);
const closeAsync = promisify(close);
const writevAsync = promisify(writev);

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
  /**
   * The open log, from the first output on (a session that prints nothing costs no file); a
   * raw descriptor: the callback API costs a fraction of a FileHandle's promises.
   */
  private fd: Promise<number | undefined> | undefined;
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

  constructor(private readonly file: string) {}

  private async openFile(): Promise<number | undefined> {
    try {
      await mkdir(path.dirname(this.file), { recursive: true });
      const fd = await openAsync(this.file, 'a', 0o600);
      this.size = (await fstatAsync(fd)).size;
      return fd;
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
    this.fd ??= this.openFile();
    this.chain = this.chain.then(async () => {
      try {
        let fd = await this.fd;
        if (fd === undefined) return;
        if (this.size + n > CONSOLE_LOG_MAX_BYTES && this.size > 0) {
          await closeAsync(fd);
          await rename(this.file, this.file + '.1');
          this.fd = this.openFile();
          fd = await this.fd;
          if (fd === undefined) return;
        }
        // libuv writes every buffer (it continues short writes and splits past IOV_MAX).
        await writevAsync(fd, batch);
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
    const fd = await this.fd;
    this.fd = Promise.resolve(undefined);
    if (fd !== undefined) await closeAsync(fd).catch(() => {});
  }
}
