import uWS, { type TemplatedApp, type WebSocket } from 'uWebSockets.js';
import { AppError, isAppError, wsCloseCode } from '../errors.js';
import type { Logger } from '../log.js';
import type { Supervisor } from '../supervisor/supervisor.js';
import type { SessionRecord } from '../supervisor/session.js';
import type { AgentBridge, AgentChannel } from '../agent/bridge.js';
import { parseAgentEvent } from '../agent/events.js';
import { isPlainObject, MAX_JSON_DEPTH, tooDeep } from '../validate.js';
import { statusLine } from '../http/reply.js';

/** An agent that connects without `?token=` must send `auth` within this time. */
const AUTH_TIMEOUT_MS = 5000;
/** Largest agent frame (a message or a tool result). */
const MAX_AGENT_FRAME = 1024 * 1024;

interface AgentConn {
  session: SessionRecord | undefined;
  channel: AgentChannel | undefined;
  authTimer: NodeJS.Timeout | undefined;
  closed: boolean;
}

/**
 * `/agent`: the structured channel of an agent process (docs/agent-protocol.md). The
 * credential is the agent's SESSION_TOKEN: minted per run, valid only for that session
 * while it lives. Invalid frames get an `error`; the channel stays open and nothing is kept.
 */
export function agentSocket(app: TemplatedApp, sup: Supervisor, bridge: AgentBridge, log: Logger, isClosing: () => boolean): void {
  const attach = (ws: WebSocket<AgentConn>, r: SessionRecord) => {
    const c = ws.getUserData();
    c.session = r;
    c.channel = {
      send: (frame) => {
        if (!c.closed) ws.send(JSON.stringify(frame), false);
      },
      close: (code, reason) => {
        if (c.closed) return;
        c.closed = true;
        ws.end(code, reason);
      },
    };
    bridge.openChannel(r, c.channel);
  };
  const fail = (ws: WebSocket<AgentConn>, err: unknown, ref: unknown) => {
    const e = isAppError(err) ? err : new AppError('SM_ERR_INTERNAL');
    if (!isAppError(err)) log.error('agent frame failed', { error: err as Error });
    const frame: Record<string, unknown> = { type: 'error', code: e.code, message: e.message };
    if (e.details !== undefined) frame.details = e.details;
    if (typeof ref === 'string' || typeof ref === 'number') frame.ref = ref;
    if (!ws.getUserData().closed) ws.send(JSON.stringify(frame), false);
  };

  app.ws<AgentConn>('/agent', {
    compression: uWS.DISABLED,
    maxPayloadLength: MAX_AGENT_FRAME * 4,
    idleTimeout: 120,
    sendPingsAutomatically: true,
    upgrade: (res, req, ctx) => {
      const token = new URLSearchParams(req.getQuery() ?? '').get('token');
      const key = req.getHeader('sec-websocket-key');
      const protocol = req.getHeader('sec-websocket-protocol');
      const extensions = req.getHeader('sec-websocket-extensions');
      const conn: AgentConn = { session: undefined, channel: undefined, authTimer: undefined, closed: false };
      if (isClosing() || (token && !sup.resolveCredential(token))) {
        const e = new AppError(isClosing() ? 'SM_ERR_SHUTTING_DOWN' : 'SM_ERR_UNAUTHORIZED', isClosing() ? undefined : 'The session credential is not valid (or its session ended).');
        res.writeStatus(statusLine(e.status)).writeHeader('Content-Type', 'application/json').end(JSON.stringify(e.toJSON()));
        return;
      }
      conn.session = token ? sup.resolveCredential(token) : undefined;
      res.upgrade(conn, key, protocol, extensions, ctx);
    },
    open: (ws) => {
      const c = ws.getUserData();
      if (c.session) attach(ws, c.session);
      else {
        c.authTimer = setTimeout(() => {
          if (!c.session && !c.closed) {
            c.closed = true;
            ws.end(wsCloseCode('SM_ERR_WS_AUTH_TIMEOUT'), 'auth_timeout');
          }
        }, AUTH_TIMEOUT_MS);
      }
    },
    message: (ws, raw, isBinary) => {
      const c = ws.getUserData();
      if (isBinary) {
        c.closed = true;
        ws.end(wsCloseCode('SM_ERR_WS_BINARY'), 'binary_not_supported');
        return;
      }
      if (raw.byteLength > MAX_AGENT_FRAME) {
        c.closed = true;
        ws.end(wsCloseCode('SM_ERR_WS_FRAME_TOO_LARGE'), 'frame_too_large');
        return;
      }
      let frame: unknown;
      try {
        frame = JSON.parse(Buffer.from(raw).toString('utf8'));
      } catch {
        return fail(ws, new AppError('SM_ERR_WS_BAD_FRAME', 'The frame is not valid JSON.'), undefined);
      }
      if (!isPlainObject(frame) || typeof frame.type !== 'string') return fail(ws, new AppError('SM_ERR_WS_BAD_FRAME'), undefined);
      if (tooDeep(frame)) return fail(ws, new AppError('SM_ERR_WS_BAD_FRAME', `The frame nests deeper than ${MAX_JSON_DEPTH} levels.`), frame.ref);
      const ref = frame.ref;
      if (frame.type === 'auth' && c.session) {
        return fail(ws, new AppError('SM_ERR_WS_BAD_FRAME', 'This channel is already authenticated.'), ref);
      }
      if (frame.type === 'auth') {
        const r = typeof frame.token === 'string' ? sup.resolveCredential(frame.token) : undefined;
        if (!r) {
          c.closed = true;
          ws.end(wsCloseCode('SM_ERR_UNAUTHORIZED'), 'unauthorized');
          return;
        }
        if (c.authTimer) clearTimeout(c.authTimer);
        attach(ws, r);
        return;
      }
      const r = c.session;
      if (!r || !c.channel) {
        c.closed = true;
        ws.end(wsCloseCode('SM_ERR_UNAUTHORIZED'), 'unauthorized');
        return;
      }
      try {
        if (frame.type === 'ping') {
          ws.send(JSON.stringify({ type: 'pong', ...(ref !== undefined ? { ref } : {}) }), false);
          return;
        }
        if (frame.type === 'ack') {
          bridge.ack(r, frame.id);
          return;
        }
        const event = parseAgentEvent(frame);
        bridge.ingest(r, event).then(
          (seq) => {
            if (ref !== undefined && !c.closed) ws.send(JSON.stringify({ type: 'stored', ref, seq }), false);
          },
          (err: unknown) => fail(ws, err, ref),
        );
      } catch (err) {
        fail(ws, err, ref);
      }
    },
    close: (ws) => {
      const c = ws.getUserData();
      c.closed = true;
      if (c.authTimer) clearTimeout(c.authTimer);
      if (c.session && c.channel) bridge.closeChannel(c.session, c.channel);
    },
  });
}
