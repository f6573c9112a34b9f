import { mkdir, readdir, readFile, rm, open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { mkdirp, sweepTempFiles, writeFileAtomic } from './atomic.js';
import { assertStorePath, type Store } from './store.js';
import { loadNative } from '../native.js';

/** Files read by one pool job of a scan, and jobs in flight at once. */
const SCAN_JOB_FILES = 64;
const SCAN_JOBS = 4;

const files = loadNative<{ readFiles(paths: string[]): Promise<Array<Buffer | string>> }>('read_files');

/**
 * One file of a scan as a document, or undefined when it is gone since the listing, is not a
 * document (a stray entry) or is not ours (JSON written by hand?). Any other read error
 * (EMFILE, EIO, EACCES) fails the scan rather than hiding a record.
 */
function parseDocument<T>(b: Buffer | string, collection: string): T | undefined {
  if (typeof b === 'string') {
    if (b === 'ENOENT' || b === 'ENOTDIR' || b === 'EISDIR') return undefined;
    throw Object.assign(new Error(`${b}: could not read a document of ${collection}`), { code: b });
  }
  try {
    return JSON.parse(b.toString('utf8')) as T;
  } catch {
    return undefined;
  }
}

/** Lines of a log gathered for one write, and the callers waiting for it. */
interface LogBatch {
  text: string;
  settle: Array<(err?: unknown) => void>;
}

/** Append handles kept open at once (the job log and the busiest conversations). */
const OPEN_LOG_HANDLES = 32;

/**
 * Filesystem store under DATA_DIR. Documents are JSON files written atomically; a
 * collection's documents live at `<collection>/<id>.json`, except sessions, which keep the
 * layout of DESIGN §2 (`sessions/<id>/metadata.json`, next to `console.log`). Logs are
 * JSON lines (`<log>.jsonl`); a torn last line (crash mid-append) is skipped on read.
 */
export class FsStore implements Store {
  readonly kind = 'fs' as const;
  private closed = false;
  /** The write loop of each log with lines to write (drainLog): lines never interleave. */
  private readonly appendChains = new Map<string, Promise<void>>();
  /** Lines appended to a log while its previous write is on the pool, and their callers. */
  private readonly pendingLines = new Map<string, LogBatch>();
  /**
   * The newest batch of each log with lines not yet written (waiting, or on the pool): batches
   * are written in order, so once it settles every line appended before it is in the file.
   */
  private readonly newestBatch = new Map<string, LogBatch>();
  /** Logs whose last byte was checked (once per process: afterwards every append ends in \n). */
  private readonly tailChecked = new Set<string>();
  private readonly handles = new Map<string, FileHandle>();

  constructor(readonly root: string) {}

  /** The sweep of stale temp files started by init (close waits for it). */
  private sweep: Promise<unknown> = Promise.resolve();

  async init(): Promise<void> {
    await mkdir(this.root, { recursive: true });
    // Temp files of writes cut short by a crash are litter, never data (readers skip them):
    // they are swept in the background. Walking every session folder before the server
    // answered took seconds at 50,000 sessions.
    this.sweep = sweepTempFiles(this.root, 3).catch(() => 0);
  }

  private docPath(collection: string, id: string): string {
    assertStorePath(collection);
    assertStorePath(id);
    if (collection === 'sessions') return path.join(this.root, 'sessions', id, 'metadata.json');
    return path.join(this.root, collection, `${id}.json`);
  }

  private logPath(log: string): string {
    assertStorePath(log);
    return path.join(this.root, `${log}.jsonl`);
  }

  async get<T>(collection: string, id: string): Promise<T | undefined> {
    try {
      return JSON.parse(await readFile(this.docPath(collection, id), 'utf8')) as T;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async put<T>(collection: string, id: string, doc: T): Promise<void> {
    this.assertOpen();
    await writeFileAtomic(this.docPath(collection, id), JSON.stringify(doc, null, 2) + '\n');
  }

  async delete(collection: string, id: string): Promise<boolean> {
    this.assertOpen();
    const file = this.docPath(collection, id);
    const target = collection === 'sessions' ? path.dirname(file) : file;
    try {
      await rm(target, { recursive: true });
      const log = path.join(this.root, collection, `${id}.jsonl`);
      const h = this.handles.get(log);
      if (h) {
        this.handles.delete(log);
        await h.close().catch(() => {});
      }
      this.tailChecked.delete(log);
      await rm(log, { force: true });
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }

  async list<T>(collection: string): Promise<T[]> {
    const out: T[] = [];
    await this.scan<T>(collection, (d) => out.push(d));
    return out;
  }

  async scan<T>(collection: string, visit: (doc: T) => void): Promise<void> {
    assertStorePath(collection);
    const dir = path.join(this.root, collection);
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    const ids =
      collection === 'sessions'
        ? names.filter((n) => !n.startsWith('.'))
        : names.filter((n) => n.endsWith('.json') && !n.startsWith('.')).map((n) => n.slice(0, -5));
    const paths = ids.map((id) => this.docPath(collection, id));
    // A few pool jobs at a time, each reading its files back to back (native/read_files.c).
    for (let i = 0; i < paths.length; i += SCAN_JOB_FILES * SCAN_JOBS) {
      const jobs: Array<Promise<Array<Buffer | string>>> = [];
      for (let k = 0; k < SCAN_JOBS; k++) {
        const slice = paths.slice(i + k * SCAN_JOB_FILES, i + (k + 1) * SCAN_JOB_FILES);
        if (slice.length > 0) jobs.push(files.readFiles(slice));
      }
      for (const b of (await Promise.all(jobs)).flat()) {
        const doc = parseDocument<T>(b, collection);
        if (doc !== undefined) visit(doc);
      }
    }
  }

  append(log: string, entry: unknown): Promise<void> {
    this.assertOpen();
    const file = this.logPath(log);
    const line = JSON.stringify(entry) + '\n';
    return new Promise<void>((resolve, reject) => {
      let batch = this.pendingLines.get(file);
      if (!batch) {
        batch = { text: '', settle: [] };
        this.pendingLines.set(file, batch);
        this.newestBatch.set(file, batch);
      }
      batch.text += line;
      batch.settle.push((err) => (err === undefined ? resolve() : reject(err)));
      if (!this.appendChains.has(file)) this.appendChains.set(file, this.drainLog(file));
    });
  }

  /**
   * Write a log's waiting lines until none are left, in order, one write per batch: lines
   * appended while a write is on the pool go out together in the next one (the job log of a
   * busy node is one write per pool round trip, not one per line, and callers never queue
   * behind each other's round trips).
   */
  private async drainLog(file: string): Promise<void> {
    for (let batch = this.pendingLines.get(file); batch; batch = this.pendingLines.get(file)) {
      this.pendingLines.delete(file);
      let failure: unknown;
      try {
        // With an open handle the folder exists; only a first append (or one after the
        // handle was closed) makes sure.
        if (!this.handles.has(file)) await mkdirp(path.dirname(file));
        // A crash may have left a torn last line; start on a fresh line so this one survives.
        const prefix = this.tailChecked.has(file) ? '' : await this.tornTailPrefix(file);
        this.tailChecked.add(file);
        const fh = await this.appendHandle(file);
        const bytes = Buffer.from(prefix + batch.text, 'utf8');
        for (let at = 0; at < bytes.length; ) {
          const { bytesWritten } = await fh.write(bytes, at);
          if (bytesWritten <= 0) throw new Error(`append to ${file}: the write made no progress`);
          at += bytesWritten;
        }
      } catch (err) {
        failure = err ?? new Error('append failed');
      }
      for (const settle of batch.settle) settle(failure);
      if (this.newestBatch.get(file) === batch) this.newestBatch.delete(file);
    }
    this.appendChains.delete(file);
  }

  /** An open append handle per log, the most recently used kept (no open/close per line). */
  private async appendHandle(file: string): Promise<FileHandle> {
    const cached = this.handles.get(file);
    if (cached) {
      this.handles.delete(file);
      this.handles.set(file, cached);
      return cached;
    }
    const fh = await open(file, 'a');
    this.handles.set(file, fh);
    while (this.handles.size > OPEN_LOG_HANDLES) {
      const [oldest, h] = this.handles.entries().next().value as [string, FileHandle];
      this.handles.delete(oldest);
      // Its chain has settled or is this file's: close once pending writes are done.
      void (this.appendChains.get(oldest) ?? Promise.resolve()).then(() => h.close().catch(() => {}));
    }
    return fh;
  }

  /** '\n' when the file exists and does not end with a newline (a torn line from a crash). */
  private async tornTailPrefix(file: string): Promise<string> {
    const fh = await open(file, 'r').catch(() => undefined);
    if (!fh) return '';
    try {
      const { size } = await fh.stat();
      if (size === 0) return '';
      const b = Buffer.alloc(1);
      await fh.read(b, 0, 1, size - 1);
      return b[0] === 0x0a ? '' : '\n';
    } finally {
      await fh.close();
    }
  }

  async readLog<T>(log: string, opts: { limit?: number; newestFirst?: boolean } = {}): Promise<T[]> {
    const file = this.logPath(log);
    // Read your writes: lines appended before this call are in what it reads. Only those:
    // waiting for the write loop itself would wait as long as appends keep coming.
    const newest = this.newestBatch.get(file);
    if (newest) await new Promise<void>((written) => newest.settle.push(() => written()));
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const out: T[] = [];
    for (const line of text.split('\n')) {
      if (!line) continue;
      try {
        out.push(JSON.parse(line) as T);
      } catch {
        // A torn line from a crash mid-append: skip it, keep the rest.
      }
    }
    if (opts.newestFirst) out.reverse();
    return opts.limit !== undefined ? out.slice(0, opts.limit) : out;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await Promise.all([...this.appendChains.values(), this.sweep]);
    this.closed = true;
    for (const h of this.handles.values()) await h.close().catch(() => {});
    this.handles.clear();
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('store is closed');
  }
}
