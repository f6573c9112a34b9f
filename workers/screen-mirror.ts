/**
 * Screen state of a session for instant attach (`attach {mode: "screen"}`): a headless
 * xterm fed with the session's output, serialized on demand. Parsing costs CPU in the
 * actor's worker thread (~16 MB/s for scrolling text), so the mirror is lazy: it is built
 * from the replay ring the first time a viewer asks for the screen, and follows output from
 * then on only while it keeps up — past SCREEN_LAG_MAX_BYTES of unparsed output it drops its
 * state and is rebuilt from the ring when asked (or once output has been quiet a while).
 * Full-screen programs (editors, agent TUIs) print little, so they stay mirrored exactly.
 */
import xtermHeadless from '@xterm/headless';
import serializeAddon from '@xterm/addon-serialize';

const { Terminal } = xtermHeadless;
const { SerializeAddon } = serializeAddon;

/** Unparsed output the mirror may lag behind before it gives up and rebuilds later. */
const SCREEN_LAG_MAX_BYTES = 256 * 1024;
/** After this much quiet, a dropped mirror is rebuilt from the ring in the background. */
const SCREEN_RESYNC_QUIET_MS = 1000;
/** Scrollback kept (and serialized) above the visible screen. */
const SCREEN_SCROLLBACK_LINES = 200;

type Term = InstanceType<typeof Terminal>;

export interface ScreenSnapshot {
  data: string;
  cols: number;
  rows: number;
  /** Output offset the screen stands at: every byte before it is on the screen, none after. */
  offset: number;
}

export class ScreenMirror {
  private term: Term | undefined;
  private ser: InstanceType<typeof SerializeAddon> | undefined;
  private pending: Uint8Array[] = [];
  /** Offset after the last byte fed; bytes [written, end) are pending. */
  private end: number;
  /** Offset after the last byte handed to the terminal. */
  private written: number;
  private writing = false;
  /** Until the first screen-mode attach, output is not parsed at all. */
  private stale = true;
  private tracking = false;
  private resyncTimer: NodeJS.Timeout | undefined;
  private disposed = false;

  constructor(
    private cols: number,
    private rows: number,
    baseOffset: number,
    /** The replay ring's bytes, ending at the current output offset. */
    private readonly ring: () => { bytes: Uint8Array; end: number },
  ) {
    this.end = baseOffset;
    this.written = baseOffset;
  }

  private fresh(): Term {
    this.term?.dispose();
    const term = new Terminal({ cols: this.cols, rows: this.rows, scrollback: SCREEN_SCROLLBACK_LINES, allowProposedApi: true });
    const ser = new SerializeAddon();
    term.loadAddon(ser);
    this.term = term;
    this.ser = ser;
    return term;
  }

  feed(bytes: Uint8Array): void {
    if (this.disposed) return;
    this.end += bytes.length;
    if (!this.tracking) return;
    if (this.stale) {
      this.armResync();
      return;
    }
    this.pending.push(bytes);
    if (this.end - this.written > SCREEN_LAG_MAX_BYTES) {
      // Falling behind: stop mirroring; the ring has what a later rebuild needs.
      this.stale = true;
      this.pending = [];
      this.term?.dispose();
      this.term = undefined;
      this.armResync();
      return;
    }
    this.pump();
  }

  /** Hand pending bytes to the terminal, one write at a time. */
  private pump(): void {
    if (this.writing || this.pending.length === 0 || this.disposed || this.stale) return;
    const term = this.term ?? this.fresh();
    const chunk = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending);
    this.pending = [];
    this.written = this.end;
    this.writing = true;
    term.write(chunk, () => {
      this.writing = false;
      this.pump();
    });
  }

  private armResync(): void {
    if (this.resyncTimer) clearTimeout(this.resyncTimer);
    this.resyncTimer = setTimeout(() => {
      this.resyncTimer = undefined;
      if (this.stale && !this.disposed && !this.writing) void this.rebuild().then(() => this.pump());
    }, SCREEN_RESYNC_QUIET_MS);
    this.resyncTimer.unref();
  }

  /** A fresh terminal fed with the ring: the screen at the current offset. */
  private rebuild(): Promise<void> {
    this.stale = false;
    this.pending = [];
    const { bytes, end } = this.ring();
    this.end = end;
    this.written = end;
    const term = this.fresh();
    this.writing = true;
    return new Promise((resolve) =>
      term.write(bytes, () => {
        this.writing = false;
        resolve();
      }),
    );
  }

  resize(cols: number, rows: number): void {
    this.cols = cols;
    this.rows = rows;
    this.term?.resize(cols, rows);
  }

  /** Serialize the screen after every byte fed so far (bytes fed meanwhile may follow it). */
  async snapshot(): Promise<ScreenSnapshot> {
    this.tracking = true;
    while (this.writing) await new Promise((r) => setImmediate(r));
    if (this.stale || !this.term) {
      if (this.resyncTimer) clearTimeout(this.resyncTimer);
      this.resyncTimer = undefined;
      await this.rebuild();
      while (this.writing) await new Promise((r) => setImmediate(r));
    }
    const term = this.term!;
    if (this.pending.length) {
      const chunk = Buffer.concat(this.pending);
      this.pending = [];
      this.written = this.end;
      this.writing = true;
      await new Promise<void>((resolve) => term.write(chunk, () => resolve()));
      this.writing = false;
    }
    const snap = { data: this.ser!.serialize({ scrollback: SCREEN_SCROLLBACK_LINES }), cols: this.cols, rows: this.rows, offset: this.written };
    this.pump();
    return snap;
  }

  dispose(): void {
    this.disposed = true;
    if (this.resyncTimer) clearTimeout(this.resyncTimer);
    this.term?.dispose();
    this.term = undefined;
  }
}
