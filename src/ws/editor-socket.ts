import uWS, { type TemplatedApp, type WebSocket, type HttpResponse, type HttpRequest, type us_socket_context_t } from 'uWebSockets.js';
import { AppError, isAppError, wsCloseCode, type ErrorName } from '../errors.js';
import type { Principal } from '../auth/principal.js';
import { canAccessOrg } from '../auth/principal.js';
import type { Authenticator } from '../auth/jwt.js';
import type { Bus } from '../bus/bus.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { Supervisor, ReplayResult } from '../supervisor/supervisor.js';
import { isTerminal } from '../supervisor/session.js';
import { assertSessionId, assertSignal, isName, isPlainObject, MAX_COLS, MAX_JSON_DEPTH, MAX_ROWS, tooDeep } from '../validate.js';
import { statusLine } from '../http/reply.js';
import type { AgentBridge } from '../agent/bridge.js';

/** A connection without a token must send `auth` within this time (DESIGN §4). */
const AUTH_TIMEOUT_MS = 5000;
/** Longest bearer token accepted (real JWTs are a few KiB). */
const MAX_TOKEN_CHARS = 16 * 1024;
/** Largest frame a client may send: input pastes are the big ones. */
const MAX_INBOUND_FRAME = 1024 * 1024;
/** uWS's own frame limit, as a multiple of ours (so we, not uWS, refuse big frames, with 1009). */
const UWS_PAYLOAD_HEADROOM = 4;
/** uWS drops (not queues) frames past its own limit; keep it well above ours so we decide. */
const UWS_BACKPRESSURE_HEADROOM = 16 * 1024 * 1024;
/** Idle seconds before uWS closes a silent socket; it pings automatically before that. */
const WS_IDLE_TIMEOUT_S = 120;

interface Conn {
  id: number;
  principal: Principal | undefined;
  authTimer: NodeJS.Timeout | undefined;
  /** Frames received while an `auth` message is being verified, handled in order after it. */
  backlog: string[] | undefined;
  /** Attached sessions and subscribed topics, created on first use (idle sockets stay small). */
  sessions: Set<string> | undefined;
  topics: Set<string> | undefined;
  closed: boolean;
  openedAt: number;
}

export type CohostResolver = (token: string) => Promise<Principal>;

export interface EditorSocketDeps {
  app: TemplatedApp;
  auth: Authenticator;
  supervisor: Supervisor;
  bus: Bus;
  log: Logger;
  metrics: Metrics;
  maxBackpressure: number;
  isClosing: () => boolean;
}

/**
 * The editor WebSocket `/ws` (DESIGN §4). Output reaches viewers through uWS topics
 * (`s/<sessionId>`, published once per chunk, not once per socket); bus events through
 * `t/<topic>`. A viewer whose send buffer passes WS_MAX_BACKPRESSURE is closed with 4008
 * and resumes by offset: it never slows the agent or the other viewers.
 */
export class EditorSockets {
  private readonly all = new Set<WebSocket<Conn>>();
  private readonly viewers = new Map<string, Set<WebSocket<Conn>>>();
  private readonly busTopics = new Map<string, { count: number; off: () => void }>();
  private nextId = 1;
  cohost: CohostResolver | undefined;
  /** The agent bridge (prompts, cancel, permission answers, participants). */
  bridge: AgentBridge | undefined;

  constructor(private readonly d: EditorSocketDeps) {
    d.app.ws<Conn>('/ws', {
      compression: uWS.DISABLED,
      // uWS drops oversized frames without a close frame; accept more and refuse with 1009.
      maxPayloadLength: MAX_INBOUND_FRAME * UWS_PAYLOAD_HEADROOM,
      maxBackpressure: d.maxBackpressure * 2 + UWS_BACKPRESSURE_HEADROOM,
      closeOnBackpressureLimit: 0,
      idleTimeout: WS_IDLE_TIMEOUT_S,
      sendPingsAutomatically: true,
      upgrade: (res, req, ctx) => this.upgrade(res, req, ctx),
      open: (ws) => this.open(ws),
      message: (ws, msg, isBinary) => this.message(ws, msg, isBinary),
      close: (ws) => this.close(ws),
    });
    d.supervisor.setFanout({ session: (id, frame) => this.publishSession(id, frame) });
  }

  get connections(): number {
    return this.all.size;
  }

  /** Live guest connections of one share link. */
  guestCount(tokenId: string): number {
    let n = 0;
    for (const ws of this.all) if (ws.getUserData().principal?.scope?.tokenId === tokenId) n++;
    return n;
  }

  /** Cut every guest of a share link at once (revocation): close code 4003. */
  closeGuests(tokenId: string): number {
    let n = 0;
    for (const ws of [...this.all]) {
      if (ws.getUserData().principal?.scope?.tokenId === tokenId) {
        this.fatal(ws, 'SM_ERR_WS_REVOKED');
        n++;
      }
    }
    return n;
  }

  private upgrade(res: HttpResponse, req: HttpRequest, ctx: us_socket_context_t): void {
    const q = new URLSearchParams(req.getQuery() ?? '');
    const key = req.getHeader('sec-websocket-key');
    const protocol = req.getHeader('sec-websocket-protocol');
    const extensions = req.getHeader('sec-websocket-extensions');
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
    });
    const refuse = (err: unknown) => {
      if (aborted) return;
      const e = isAppError(err) ? err : new AppError('SM_ERR_UNAUTHORIZED');
      res.cork(() => {
        res.writeStatus(statusLine(e.status)).writeHeader('Content-Type', 'application/json').end(JSON.stringify(e.toJSON()));
      });
    };
    const accept = (principal: Principal | undefined) => {
      if (aborted) return;
      // A socket keeps who it is, not the token it came with (memory per idle socket).
      if (principal) principal.token = '';
      const conn: Conn = { id: this.nextId++, principal, authTimer: undefined, backlog: undefined, sessions: undefined, topics: undefined, closed: false, openedAt: Date.now() };
      res.cork(() => res.upgrade(conn, key, protocol, extensions, ctx));
    };
    if (this.d.isClosing()) return refuse(new AppError('SM_ERR_SHUTTING_DOWN'));
    const token = q.get('token');
    const cohost = q.get('cohost');
    if (token) {
      // A token that cannot be a JWT is refused at once, inside uWS's upgrade callback.
      if (!plausibleJwt(token)) return refuse(new AppError('SM_ERR_UNAUTHORIZED', 'The token is invalid.'));
      this.d.auth.verify(token).then(accept, refuse);
    }
    else if (cohost) {
      if (!this.cohost) return refuse(new AppError('SM_ERR_UNAUTHORIZED'));
      this.cohost(cohost).then(accept, refuse);
    } else accept(undefined);
  }

  private open(ws: WebSocket<Conn>): void {
    const c = ws.getUserData();
    this.all.add(ws);
    this.d.metrics.wsOpened();
    if (!c.principal) {
      c.authTimer = setTimeout(() => {
        if (!c.principal && !c.closed) this.fatal(ws, 'SM_ERR_WS_AUTH_TIMEOUT');
      }, AUTH_TIMEOUT_MS);
    }
  }

  private close(ws: WebSocket<Conn>): void {
    const c = ws.getUserData();
    c.closed = true;
    if (c.authTimer) clearTimeout(c.authTimer);
    this.all.delete(ws);
    this.d.metrics.wsClosed();
    for (const id of c.sessions ?? []) this.removeViewer(id, ws);
    c.sessions = undefined;
    for (const t of c.topics ?? []) this.releaseBusTopic(t);
    c.topics = undefined;
  }

  /** End every connection with 1001 (graceful shutdown). */
  closeAll(): void {
    for (const ws of [...this.all]) {
      try {
        ws.end(1001, 'server shutting down');
      } catch {
        // Already closing.
      }
    }
  }

  private send(ws: WebSocket<Conn>, frame: unknown): void {
    if (ws.getUserData().closed) return;
    const text = typeof frame === 'string' ? frame : JSON.stringify(frame);
    ws.send(text, false);
    this.d.metrics.addBytesOut(Buffer.byteLength(text));
  }

  private sendError(ws: WebSocket<Conn>, err: unknown, ref: unknown): void {
    const e = isAppError(err) ? err : new AppError('SM_ERR_INTERNAL');
    if (!isAppError(err)) this.d.log.error('ws handler failed', { error: err as Error });
    const frame: Record<string, unknown> = { type: 'error', code: e.code, message: e.message };
    if (typeof ref === 'string' || typeof ref === 'number') frame.ref = ref;
    this.send(ws, frame);
  }

  private fatal(ws: WebSocket<Conn>, name: ErrorName): void {
    const c = ws.getUserData();
    if (c.closed) return;
    const e = new AppError(name);
    this.send(ws, { type: 'error', code: e.code, message: e.message });
    c.closed = true;
    ws.end(wsCloseCode(name), e.code);
  }

  private message(ws: WebSocket<Conn>, raw: ArrayBuffer, isBinary: boolean): void {
    const c = ws.getUserData();
    if (isBinary) return this.fatal(ws, 'SM_ERR_WS_BINARY');
    if (raw.byteLength > MAX_INBOUND_FRAME) return this.fatal(ws, 'SM_ERR_WS_FRAME_TOO_LARGE');
    const text = Buffer.from(raw).toString('utf8');
    if (c.backlog) {
      c.backlog.push(text);
      return;
    }
    this.handle(ws, text);
  }

  private handle(ws: WebSocket<Conn>, text: string): void {
    const c = ws.getUserData();
    let msg: unknown;
    try {
      msg = JSON.parse(text);
    } catch {
      return this.sendError(ws, new AppError('SM_ERR_WS_BAD_FRAME', 'The frame is not valid JSON.'), undefined);
    }
    if (!isPlainObject(msg) || typeof msg.type !== 'string') return this.sendError(ws, new AppError('SM_ERR_WS_BAD_FRAME'), undefined);
    if (tooDeep(msg)) return this.sendError(ws, new AppError('SM_ERR_WS_BAD_FRAME', `The frame nests deeper than ${MAX_JSON_DEPTH} levels.`), msg.ref ?? msg.id);
    const ref = msg.ref ?? msg.id;
    if (msg.type === 'auth') return this.authMessage(ws, msg, ref);
    if (!c.principal) return this.fatal(ws, 'SM_ERR_UNAUTHORIZED');
    try {
      this.dispatch(ws, c.principal, msg, ref);
    } catch (err) {
      this.sendError(ws, err, ref);
    }
  }

  private authMessage(ws: WebSocket<Conn>, msg: Record<string, unknown>, ref: unknown): void {
    const c = ws.getUserData();
    if (c.principal) return this.sendError(ws, new AppError('SM_ERR_WS_BAD_FRAME', 'This connection is already authenticated.'), ref);
    if (typeof msg.token !== 'string') return this.fatal(ws, 'SM_ERR_UNAUTHORIZED');
    c.backlog = [];
    this.d.auth.verify(msg.token).then(
      (p) => {
        if (c.closed) return;
        p.token = '';
        c.principal = p;
        if (c.authTimer) clearTimeout(c.authTimer);
        c.authTimer = undefined;
        const backlog = c.backlog ?? [];
        c.backlog = undefined;
        for (const t of backlog) this.handle(ws, t);
      },
      () => this.fatal(ws, 'SM_ERR_UNAUTHORIZED'),
    );
  }

  private dispatch(ws: WebSocket<Conn>, p: Principal, msg: Record<string, unknown>, ref: unknown): void {
    switch (msg.type) {
      case 'ping':
        return this.send(ws, ref === undefined ? { type: 'pong' } : { type: 'pong', ref });
      case 'attach':
        return this.attach(ws, p, msg, ref);
      case 'detach': {
        const id = this.session(p, msg.sessionId);
        if (ws.getUserData().sessions?.delete(id)) {
          ws.unsubscribe(`s/${id}`);
          this.removeViewer(id, ws);
        }
        return;
      }
      case 'input': {
        const id = this.writable(p, msg.sessionId);
        if (typeof msg.data !== 'string') throw new AppError('SM_ERR_VALIDATION', '"data" must be a string.');
        this.d.supervisor.input(id, msg.data);
        return;
      }
      case 'resize': {
        const id = this.writable(p, msg.sessionId);
        const { cols, rows } = msg;
        if (!Number.isInteger(cols) || !Number.isInteger(rows) || (cols as number) < 1 || (rows as number) < 1 || (cols as number) > MAX_COLS || (rows as number) > MAX_ROWS) {
          throw new AppError('SM_ERR_VALIDATION', `"cols" and "rows" must be integers from 1 to ${MAX_COLS} and ${MAX_ROWS}.`);
        }
        this.d.supervisor.resize(id, cols as number, rows as number);
        return;
      }
      case 'signal': {
        const id = this.writable(p, msg.sessionId);
        this.d.supervisor.signal(id, assertSignal(msg.signal));
        return;
      }
      case 'prompt': {
        const id = this.writable(p, msg.sessionId);
        if (typeof msg.text !== 'string' || msg.text.length === 0) throw new AppError('SM_ERR_VALIDATION', '"text" must be a non-empty string.');
        if (msg.attachments !== undefined && !Array.isArray(msg.attachments)) throw new AppError('SM_ERR_VALIDATION', '"attachments" must be an array.');
        const bridge = this.requireBridge();
        const r = this.d.supervisor.get(id)!;
        bridge.prompt(r, msg.text, msg.attachments as unknown[] | undefined, p).then(
          (res) => this.send(ws, { type: 'prompted', sessionId: id, promptId: res.promptId, via: res.via, ...(ref !== undefined ? { ref } : {}) }),
          (err: unknown) => this.sendError(ws, err, ref),
        );
        return;
      }
      case 'cancel': {
        const id = this.writable(p, msg.sessionId);
        this.requireBridge().cancel(this.d.supervisor.get(id)!);
        return;
      }
      case 'permission': {
        const id = this.writable(p, msg.sessionId);
        if (typeof msg.requestId !== 'string') throw new AppError('SM_ERR_VALIDATION', '"requestId" must be a string.');
        if (msg.optionId !== null && typeof msg.optionId !== 'string') throw new AppError('SM_ERR_VALIDATION', '"optionId" must be a string or null (cancelled).');
        this.requireBridge().answerPermission(this.d.supervisor.get(id)!, msg.requestId, msg.optionId as string | null);
        return;
      }
      case 'subscribe': {
        const topic = this.topic(p, msg.topic);
        const c = ws.getUserData();
        if (c.topics?.has(topic)) return;
        (c.topics ??= new Set()).add(topic);
        this.acquireBusTopic(topic);
        ws.subscribe(`t/${topic}`);
        return;
      }
      case 'unsubscribe': {
        if (typeof msg.topic !== 'string') throw new AppError('SM_ERR_VALIDATION', '"topic" must be a string.');
        const c = ws.getUserData();
        if (c.topics?.delete(msg.topic)) {
          ws.unsubscribe(`t/${msg.topic}`);
          this.releaseBusTopic(msg.topic);
        }
        return;
      }
      default:
        throw new AppError('SM_ERR_WS_UNKNOWN_TYPE', `Unknown frame type "${String(msg.type).slice(0, 40)}".`);
    }
  }

  private requireBridge(): AgentBridge {
    if (!this.bridge) throw new AppError('SM_ERR_NOT_FOUND', 'The agent bridge is not enabled.');
    return this.bridge;
  }

  /** Everyone attached to a session, with when they connected. */
  attachedPrincipals(sessionId: string): Array<{ principal: Principal; since: number }> {
    const out: Array<{ principal: Principal; since: number }> = [];
    for (const ws of this.viewers.get(sessionId) ?? []) {
      const c = ws.getUserData();
      if (c.principal) out.push({ principal: c.principal, since: c.openedAt });
    }
    return out;
  }

  /** A session this principal may watch (another org's session is "not found"). */
  private session(p: Principal, raw: unknown): string {
    const id = assertSessionId(raw);
    const r = this.d.supervisor.get(id);
    if (!r || !canAccessOrg(p, r.orgId)) throw new AppError('SM_ERR_SESSION_NOT_FOUND');
    if (p.kind === 'guest' && p.scope?.projectName !== r.projectName) throw new AppError('SM_ERR_SESSION_NOT_FOUND');
    return id;
  }

  private writable(p: Principal, raw: unknown): string {
    if (p.kind === 'guest') throw new AppError('SM_ERR_WS_READ_ONLY');
    return this.session(p, raw);
  }

  private topic(p: Principal, raw: unknown): string {
    if (typeof raw !== 'string') throw new AppError('SM_ERR_VALIDATION', '"topic" must be a string.');
    let org: string | undefined;
    let project: string | undefined;
    const m = /^project:([^/]+)\/([^/]+)$/.exec(raw);
    if (m) {
      org = m[1];
      project = m[2];
      if (!isName(org) || !isName(project)) throw new AppError('SM_ERR_INVALID_NAME');
    } else if (raw.startsWith('org:')) {
      org = raw.slice(4);
      if (!isName(org)) throw new AppError('SM_ERR_INVALID_NAME');
    } else {
      throw new AppError('SM_ERR_VALIDATION', 'Topics are project:<orgId>/<projectName> or org:<orgId>.');
    }
    if (!canAccessOrg(p, org!)) throw new AppError('SM_ERR_FORBIDDEN', `This token may not watch org "${org}".`);
    if (p.kind === 'guest' && (project === undefined || project !== p.scope?.projectName)) {
      throw new AppError('SM_ERR_FORBIDDEN', 'A share link may only watch its project.');
    }
    return raw;
  }

  private attach(ws: WebSocket<Conn>, p: Principal, msg: Record<string, unknown>, ref: unknown): void {
    const id = this.session(p, msg.sessionId);
    const since = msg.since;
    const mode = msg.mode;
    if (mode !== undefined && mode !== 'screen' && mode !== 'replay') throw new AppError('SM_ERR_VALIDATION', '"mode" must be "replay" or "screen".');
    if (since !== undefined && (typeof since !== 'number' || !Number.isInteger(since) || since < 0)) {
      throw new AppError('SM_ERR_VALIDATION', '"since" must be a non-negative integer byte offset.');
    }
    const c = ws.getUserData();
    if (c.sessions?.has(id)) {
      // Re-attach: start over from the requested offset.
      c.sessions!.delete(id);
      ws.unsubscribe(`s/${id}`);
      this.removeViewer(id, ws);
    }
    this.d.supervisor.replay(id, since as number | undefined, (r: ReplayResult) => {
      if (c.closed) return;
      ws.cork(() => {
        const attached: Record<string, unknown> = { type: 'attached', sessionId: id, offset: r.offset, status: r.status };
        if (r.gap) attached.gap = true;
        if (r.screen) attached.screen = r.screen;
        if (ref !== undefined) attached.ref = ref;
        this.send(ws, attached);
        if (r.frame) {
          ws.send(r.frame, false);
          this.d.metrics.addBytesOut(r.frame.length);
        }
        const rec = this.d.supervisor.get(id);
        if (rec && isTerminal(rec.status)) {
          this.send(ws, { type: 'exit', sessionId: id, exitCode: rec.exitCode, signal: rec.signal, reason: rec.reason, status: rec.status });
        }
        // Subscribed now, inside the mailbox callback: the next output frame is exactly at r.end.
        (c.sessions ??= new Set()).add(id);
        ws.subscribe(`s/${id}`);
        this.addViewer(id, ws);
      });
    }, mode === 'screen' ? 'screen' : undefined);
  }

  private addViewer(id: string, ws: WebSocket<Conn>): void {
    let set = this.viewers.get(id);
    if (!set) this.viewers.set(id, (set = new Set()));
    const p = ws.getUserData().principal;
    const first = p && !this.principalWatching(set, p);
    set.add(ws);
    this.d.supervisor.viewerJoined(id);
    if (first && p) this.bridge?.participantEvent(id, 'participant:joined', { role: roleOf(p), userId: p.userId });
  }

  private removeViewer(id: string, ws: WebSocket<Conn>): void {
    const set = this.viewers.get(id);
    if (set?.delete(ws)) {
      if (set.size === 0) this.viewers.delete(id);
      this.d.supervisor.viewerLeft(id);
      const p = ws.getUserData().principal;
      if (p && !this.principalWatching(set, p)) this.bridge?.participantEvent(id, 'participant:left', { role: roleOf(p), userId: p.userId });
    }
  }

  private principalWatching(set: Set<WebSocket<Conn>>, p: Principal): boolean {
    for (const ws of set) {
      const q = ws.getUserData().principal;
      if (q && q.kind === p.kind && q.userId === p.userId) return true;
    }
    return false;
  }

  /** Deliver one frame to a session's viewers; drop viewers that fell too far behind. */
  private publishSession(id: string, frame: Uint8Array | string): void {
    const set = this.viewers.get(id);
    if (!set || set.size === 0) return;
    this.d.app.publish(`s/${id}`, frame, false);
    const len = typeof frame === 'string' ? Buffer.byteLength(frame) : frame.length;
    this.d.metrics.addBytesOut(len * set.size);
    const limit = this.d.maxBackpressure;
    for (const ws of set) {
      if (ws.getBufferedAmount() > limit) {
        this.d.metrics.slowViewerDropped();
        this.fatal(ws, 'SM_ERR_WS_SLOW_CONSUMER');
      }
    }
  }

  private acquireBusTopic(topic: string): void {
    const entry = this.busTopics.get(topic);
    if (entry) {
      entry.count++;
      return;
    }
    const off = this.d.bus.subscribe(topic, (ev) => {
      this.d.app.publish(`t/${topic}`, JSON.stringify({ type: 'event', topic: ev.topic, name: ev.name, payload: ev.payload }), false);
    });
    this.busTopics.set(topic, { count: 1, off });
  }

  private releaseBusTopic(topic: string): void {
    const entry = this.busTopics.get(topic);
    if (!entry) return;
    if (--entry.count === 0) {
      entry.off();
      this.busTopics.delete(topic);
    }
  }
}

function roleOf(p: Principal): string {
  return p.kind === 'guest' ? 'viewer' : 'editor';
}

/** Three base64url segments of sane length: anything else is refused without crypto. */
function plausibleJwt(t: string): boolean {
  return t.length <= MAX_TOKEN_CHARS && /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(t);
}
