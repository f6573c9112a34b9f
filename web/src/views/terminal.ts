import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import type { Frame, Socket } from '../socket.js';
import { h } from '../dom.js';

/**
 * Ask for `attach {mode: "screen"}` on a first attach (docs/protocol.md): the server answers
 * with the serialized terminal (screen and scrollback) and the offset it stands at, so a
 * viewer of a full-screen program (vim, an agent TUI) sees it at once instead of a long
 * replay. Re-attaches after a drop ask `since` instead: the terminal already has the rest.
 */
export const REQUEST_SCREEN_MODE = true;
/** Input typed while disconnected is held up to this much, then dropped (a paste into a dead link). */
const PENDING_INPUT_MAX = 64 * 1024;
/** Coalesce resize frames while a window is being dragged. */
const RESIZE_DEBOUNCE_MS = 80;

/** Timings the tests (and the closing note) read: attach sent → first output written. */
export interface AttachStats {
  attachSentAt: number | undefined;
  attachedAt: number | undefined;
  firstOutputAt: number | undefined;
  attaches: number;
}

declare global {
  interface Window {
    __smTerminal?: { stats: AttachStats; offset: () => number | undefined };
  }
}

export interface TerminalOptions {
  readOnly: boolean;
  onStatus?: (status: string) => void;
  onExit?: (f: Frame) => void;
  onError?: (message: string) => void;
}

/**
 * One session's terminal: xterm.js attached over `/ws`. Output is written strictly by byte
 * offset: a re-attach (reconnect) asks `since` the next byte it lacks, and anything the
 * server sends that the terminal already has is cut off, so nothing is written twice and
 * nothing is skipped unless the server says `gap`.
 */
export class TerminalView {
  readonly el: HTMLElement;
  private readonly term: Terminal;
  private readonly fit = new FitAddon();
  private readonly encoder = new TextEncoder();
  private readonly decoder = new TextDecoder();
  /** The offset of the next byte this terminal lacks; undefined before the first attach. */
  private next: number | undefined;
  private exitShown = false;
  /** True from `attached` until the socket re-attaches: input may go out directly. */
  private attached = false;
  private readonly pending: string[] = [];
  private pendingChars = 0;
  private resizeTimer: ReturnType<typeof setTimeout> | undefined;
  private lastSize = '';
  private readonly disposers: Array<() => void> = [];
  readonly stats: AttachStats = { attachSentAt: undefined, attachedAt: undefined, firstOutputAt: undefined, attaches: 0 };

  constructor(private readonly socket: Socket, readonly sessionId: string, private readonly opts: TerminalOptions) {
    this.el = h('div', { class: 'terminal', 'data-session': sessionId });
    this.term = new Terminal({
      disableStdin: opts.readOnly,
      cursorBlink: !opts.readOnly,
      scrollback: 5000,
      fontSize: 14,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
      theme: { background: '#0b0e14', foreground: '#d8dee9', cursor: '#d8dee9' },
    });
    this.term.loadAddon(this.fit);
    window.__smTerminal = { stats: this.stats, offset: () => this.next };
  }

  /** Open the terminal in the page (the element must be in the document) and attach. */
  mount(): void {
    this.term.open(this.el);
    this.refit();
    if (!this.opts.readOnly) {
      this.disposers.push(dispose(this.term.onData((data) => this.input(data))));
      this.disposers.push(dispose(this.term.onBinary((data) => this.input(data))));
    }
    this.disposers.push(dispose(this.term.onResize(() => this.scheduleResize())));
    const onWindowResize = () => this.refit();
    window.addEventListener('resize', onWindowResize);
    this.disposers.push(() => window.removeEventListener('resize', onWindowResize));
    const ro = new ResizeObserver(() => this.refit());
    ro.observe(this.el);
    this.disposers.push(() => ro.disconnect());
    this.disposers.push(this.socket.onSession(this.sessionId, (f) => this.onFrame(f)));
    this.disposers.push(this.socket.onOpen(() => this.attach()));
    if (this.socket.isOpen) this.attach();
    if (!this.opts.readOnly) this.term.focus();
  }

  focus(): void {
    this.refit();
    this.term.focus();
  }

  dispose(): void {
    clearTimeout(this.resizeTimer);
    this.socket.send({ type: 'detach', sessionId: this.sessionId });
    for (const d of this.disposers.splice(0)) d();
    this.term.dispose();
    if (window.__smTerminal?.stats === this.stats) delete window.__smTerminal;
  }

  /** Fit to the element; a hidden element (another tab showing) keeps its size. */
  refit(): void {
    if (!this.el.isConnected || this.el.clientWidth === 0 || this.el.clientHeight === 0) return;
    try {
      this.fit.fit();
    } catch {
      // Not measurable yet.
    }
  }

  /** Keys typed before the (re)attach completes are held and sent right after it, in order. */
  private input(data: string): void {
    if (this.attached && this.socket.send({ type: 'input', sessionId: this.sessionId, data })) return;
    if (this.pendingChars + data.length > PENDING_INPUT_MAX) return;
    this.pending.push(data);
    this.pendingChars += data.length;
  }

  private attach(): void {
    this.attached = false;
    const frame: Frame = { type: 'attach', sessionId: this.sessionId };
    if (this.next !== undefined) frame.since = this.next;
    else if (REQUEST_SCREEN_MODE) frame.mode = 'screen';
    this.stats.attachSentAt ??= performance.now();
    this.stats.attaches++;
    this.lastSize = '';
    this.socket.request(frame, (err) => this.opts.onError?.(`${String(err.code)}: ${String(err.message)}`));
  }

  private onFrame(f: Frame): void {
    switch (f.type) {
      case 'attached':
        return this.onAttached(f);
      case 'output':
        return this.onOutput(f);
      case 'status':
        this.opts.onStatus?.(String(f.status));
        return;
      case 'exit':
        if (!this.exitShown) {
          this.exitShown = true;
          const how = f.signal ? `signal ${String(f.signal)}` : f.exitCode !== null && f.exitCode !== undefined ? `code ${String(f.exitCode)}` : '';
          this.term.write(`\r\n\x1b[2m[session ended${f.status ? `: ${String(f.status)}` : ''}${how ? ` (${how})` : ''}]\x1b[0m\r\n`);
        }
        if (typeof f.status === 'string') this.opts.onStatus?.(f.status);
        this.opts.onExit?.(f);
        return;
    }
  }

  private onAttached(f: Frame): void {
    this.stats.attachedAt ??= performance.now();
    const offset = typeof f.offset === 'number' ? f.offset : 0;
    const screen = screenOf(f.screen);
    if (screen && this.next === undefined) {
      // Screen mode: the serialized screen stands at `offset`; live output follows from there.
      this.applyScreen(screen);
      this.next = offset;
    } else if (this.next === undefined) {
      this.next = offset;
    } else if (f.gap === true && offset > this.next) {
      this.term.write(`\r\n\x1b[2m[${offset - this.next} bytes of output were not kept while disconnected]\x1b[0m\r\n`);
      this.next = offset;
    }
    if (typeof f.status === 'string') this.opts.onStatus?.(f.status);
    this.attached = true;
    this.sendSize();
    const held = this.pending.splice(0);
    this.pendingChars = 0;
    if (held.length) this.socket.send({ type: 'input', sessionId: this.sessionId, data: held.join('') });
  }

  /**
   * `attach {mode: "screen"}`: paint the serialized terminal at the size it was taken at,
   * then fit to the window (the resize that follows lets full-screen programs redraw).
   */
  applyScreen(screen: { data: string; cols?: number | undefined; rows?: number | undefined }): void {
    this.term.reset();
    if (screen.cols && screen.rows && (screen.cols !== this.term.cols || screen.rows !== this.term.rows)) this.term.resize(screen.cols, screen.rows);
    this.term.write(screen.data, () => {
      if (screen.data) this.stats.firstOutputAt ??= performance.now();
      this.refit();
    });
  }

  private onOutput(f: Frame): void {
    if (typeof f.data !== 'string' || typeof f.offset !== 'number') return;
    let bytes: Uint8Array | undefined;
    let data = f.data;
    const len = byteLength(data);
    const end = f.offset + len;
    if (this.next === undefined) this.next = f.offset;
    if (end <= this.next) return; // Already written (a replay overlapping what we have).
    if (f.offset < this.next) {
      bytes = this.encoder.encode(data);
      data = this.decoder.decode(bytes.subarray(this.next - f.offset));
    }
    this.next = end;
    if (this.stats.firstOutputAt === undefined) {
      this.term.write(data, () => {
        this.stats.firstOutputAt ??= performance.now();
      });
    } else this.term.write(data);
  }

  private scheduleResize(): void {
    clearTimeout(this.resizeTimer);
    this.resizeTimer = setTimeout(() => this.sendSize(), RESIZE_DEBOUNCE_MS);
  }

  private sendSize(): void {
    if (this.opts.readOnly || this.exitShown) return;
    const size = `${this.term.cols}x${this.term.rows}`;
    if (size === this.lastSize) return;
    if (this.socket.send({ type: 'resize', sessionId: this.sessionId, cols: this.term.cols, rows: this.term.rows })) this.lastSize = size;
  }
}

/** `attached.screen`: `{data, cols, rows}` (a bare string is taken as data). */
function screenOf(v: unknown): { data: string; cols?: number; rows?: number } | undefined {
  if (typeof v === 'string') return { data: v };
  if (!v || typeof v !== 'object') return undefined;
  const o = v as Record<string, unknown>;
  if (typeof o.data !== 'string') return undefined;
  return {
    data: o.data,
    ...(typeof o.cols === 'number' ? { cols: o.cols } : {}),
    ...(typeof o.rows === 'number' ? { rows: o.rows } : {}),
  };
}

function dispose(d: { dispose(): void }): () => void {
  return () => d.dispose();
}

/** UTF-8 byte length without allocating (offsets count bytes, DESIGN §7). */
export function byteLength(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}
