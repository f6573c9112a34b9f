import type { Credentials } from './auth.js';

/** One frame of the editor protocol (DESIGN §4). */
export interface Frame {
  type: string;
  [k: string]: unknown;
}

export type SocketState = 'connecting' | 'open' | 'reconnecting' | 'unauthorized' | 'revoked' | 'stopped';

/** Reconnect backoff: first delay, doubling to the cap (a restarting server is back in seconds). */
const RECONNECT_FIRST_MS = 250;
const RECONNECT_MAX_MS = 5000;
/** Client ping cadence, and how long silence may last before the link is presumed dead. */
const PING_EVERY_MS = 20_000;
const SILENCE_LIMIT_MS = 50_000;
/** Close codes that mean "do not come back" (DESIGN §7): bad token, revoked share link. */
const CLOSE_UNAUTHORIZED = 4001;
const CLOSE_REVOKED = 4003;
/** Error callbacks kept for requests (a success has no answer, so old ones are dropped). */
const MAX_PENDING_REFS = 500;

type SessionListener = (f: Frame) => void;
type EventListener = (name: string, payload: unknown, topic: string) => void;

/**
 * The page's one WebSocket to `/ws`. It reconnects with backoff and, on every (re)open,
 * re-sends the subscriptions it holds and tells its users (terminal views re-attach by
 * offset). Tokens go in a first `auth` frame, not the URL; share links use `?cohost=`.
 */
export class Socket {
  state: SocketState = 'stopped';
  private ws: WebSocket | undefined;
  private attempt = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private pingTimer: ReturnType<typeof setInterval> | undefined;
  private lastMessageAt = 0;
  private nextRef = 1;
  private readonly topics = new Map<string, Set<EventListener>>();
  private readonly sessions = new Map<string, Set<SessionListener>>();
  private readonly refs = new Map<number, (f: Frame) => void>();
  private readonly openListeners = new Set<() => void>();
  private readonly stateListeners = new Set<(s: SocketState) => void>();
  private readonly errorListeners = new Set<(f: Frame) => void>();

  constructor(private readonly creds: Credentials) {}

  start(): void {
    if (this.state !== 'stopped') return;
    this.connect();
    this.pingTimer = setInterval(() => this.keepAlive(), PING_EVERY_MS);
  }

  stop(): void {
    this.setState('stopped');
    clearTimeout(this.reconnectTimer);
    clearInterval(this.pingTimer);
    this.ws?.close(1000);
    this.ws = undefined;
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  /** Send a frame now; false if the socket is not open (callers resend on `onOpen`). */
  send(frame: Frame): boolean {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /** Send a frame with a `ref`; `onError` receives an `error` frame that answers it. */
  request(frame: Frame, onError?: (f: Frame) => void): boolean {
    const ref = this.nextRef++;
    if (onError) this.refs.set(ref, onError);
    // Requests that succeed get no answer: their refs are forgotten oldest first.
    if (this.refs.size > MAX_PENDING_REFS) this.refs.delete(this.refs.keys().next().value as number);
    return this.send({ ...frame, ref });
  }

  /** Listen to a bus topic (`org:<id>`, `project:<org>/<name>`); subscribes on first use. */
  subscribe(topic: string, fn: EventListener, onError?: (f: Frame) => void): () => void {
    let set = this.topics.get(topic);
    if (!set) {
      this.topics.set(topic, (set = new Set()));
      this.request({ type: 'subscribe', topic }, onError);
    }
    set.add(fn);
    return () => {
      const s = this.topics.get(topic);
      if (!s?.delete(fn) || s.size > 0) return;
      this.topics.delete(topic);
      this.send({ type: 'unsubscribe', topic });
    };
  }

  hasTopic(topic: string): boolean {
    return this.topics.has(topic);
  }

  /** Frames about one session (attached, output, exit, status). */
  onSession(sessionId: string, fn: SessionListener): () => void {
    let set = this.sessions.get(sessionId);
    if (!set) this.sessions.set(sessionId, (set = new Set()));
    set.add(fn);
    return () => {
      set!.delete(fn);
      if (set!.size === 0) this.sessions.delete(sessionId);
    };
  }

  /** Runs on every open (after auth is sent): the place to (re)attach. */
  onOpen(fn: () => void): () => void {
    this.openListeners.add(fn);
    return () => this.openListeners.delete(fn);
  }

  onState(fn: (s: SocketState) => void): () => void {
    this.stateListeners.add(fn);
    return () => this.stateListeners.delete(fn);
  }

  /** Error frames that answer no request of ours. */
  onError(fn: (f: Frame) => void): () => void {
    this.errorListeners.add(fn);
    return () => this.errorListeners.delete(fn);
  }

  private setState(s: SocketState): void {
    if (this.state === s) return;
    this.state = s;
    for (const fn of this.stateListeners) fn(s);
  }

  private url(): string {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const q = this.creds.kind === 'cohost' ? `?cohost=${encodeURIComponent(this.creds.cohost)}` : '';
    return `${proto}//${location.host}/ws${q}`;
  }

  private connect(): void {
    this.setState(this.attempt === 0 ? 'connecting' : 'reconnecting');
    const ws = new WebSocket(this.url());
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.attempt = 0;
      this.lastMessageAt = Date.now();
      if (this.creds.kind === 'token') ws.send(JSON.stringify({ type: 'auth', token: this.creds.token }));
      for (const topic of this.topics.keys()) this.request({ type: 'subscribe', topic });
      this.setState('open');
      for (const fn of [...this.openListeners]) fn();
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      this.lastMessageAt = Date.now();
      let f: Frame;
      try {
        f = JSON.parse(String(ev.data)) as Frame;
      } catch {
        return;
      }
      this.dispatch(f);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = undefined;
      if (this.state === 'stopped') return;
      if (ev.code === CLOSE_UNAUTHORIZED) return this.setState('unauthorized');
      if (ev.code === CLOSE_REVOKED) return this.setState('revoked');
      this.scheduleReconnect();
    };
    ws.onerror = () => {
      // onclose follows and decides.
    };
  }

  private scheduleReconnect(): void {
    this.setState('reconnecting');
    const delay = Math.min(RECONNECT_MAX_MS, RECONNECT_FIRST_MS * 2 ** this.attempt);
    this.attempt++;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  private keepAlive(): void {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    if (Date.now() - this.lastMessageAt > SILENCE_LIMIT_MS) {
      // The link is dead without a close (a sleeping laptop, a dropped proxy): start over.
      const ws = this.ws;
      this.ws = undefined;
      ws.close();
      this.scheduleReconnect();
      return;
    }
    this.send({ type: 'ping' });
  }

  private dispatch(f: Frame): void {
    if (f.type === 'event') {
      const topic = String(f.topic);
      for (const fn of [...(this.topics.get(topic) ?? [])]) fn(String(f.name), f.payload, topic);
      return;
    }
    if (f.type === 'error') {
      const ref = typeof f.ref === 'number' ? f.ref : undefined;
      const cb = ref !== undefined ? this.refs.get(ref) : undefined;
      if (ref !== undefined) this.refs.delete(ref);
      if (cb) cb(f);
      else for (const fn of this.errorListeners) fn(f);
      return;
    }
    if (typeof f.sessionId === 'string') {
      for (const fn of [...(this.sessions.get(f.sessionId) ?? [])]) fn(f);
    }
  }
}
