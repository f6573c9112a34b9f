/**
 * Agent Client Protocol (ACP) client: speaks to an agent CLI over its stdio pipes and turns the
 * agent's updates into the session's structured events (`message`, `tool_call`, `tool_result`,
 * `status`, plus `permission_request`, which the editor answers).
 *
 * Wire: JSON-RPC 2.0, one JSON object per line (newline-delimited), client → agent on the agent's
 * stdin, agent → client on its stdout. Protocol version 1 (https://agentclientprotocol.com):
 *
 *   client → agent  request       `initialize` {protocolVersion: 1, clientCapabilities, clientInfo}
 *   client → agent  request       `session/new` {cwd, mcpServers: []} → {sessionId}
 *   client → agent  request       `session/prompt` {sessionId, prompt: [{type: "text", text}]} → {stopReason}
 *   client → agent  notification  `session/cancel` {sessionId}
 *   agent → client  notification  `session/update` {sessionId, update: {sessionUpdate: …}}
 *   agent → client  request       `session/request_permission` {sessionId, toolCall, options}
 *                                 → {outcome: {outcome: "selected", optionId} | {outcome: "cancelled"}}
 *
 * Mapping of `session/update` (see docs/acp.md):
 *   agent_message_chunk (text)   → message {role: "assistant", content}   (one event per chunk)
 *   agent_thought_chunk (text)   → status {state: "thinking", detail}
 *   tool_call                    → tool_call {id: toolCallId, name: title ?? kind, args: rawInput ?? {}}
 *   tool_call_update completed/failed (or a tool_call born finished)
 *                                → tool_result {callId, output, isError: status === "failed"}
 *                                  output = rawOutput, else the text of its content, else the content
 *   plan                         → status {state: "plan", detail: one "[status] content" line per entry}
 *   user_message_chunk, available_commands_update, current_mode_update, unknown kinds → ignored
 * Around a prompt: status "thinking" when it is sent, status "done" (detail = stopReason) when it
 * answers, status "error" (detail = message) when it fails. Tool calls of the turn still open when
 * the turn ends get a tool_result {isError: true, output: {error, stopReason}} so every call is closed.
 *
 * Client-side capabilities: this client advertises no `fs` and no `terminal` capability, and
 * refuses `fs/read_text_file`, `fs/write_text_file`, `terminal/*` and any other agent → client
 * request except `session/request_permission` with JSON-RPC error -32601 (method not found).
 * The agent works on the workspace itself (its cwd); it does not go through the editor's buffers.
 *
 * Robustness: lines are framed across chunk boundaries (UTF-8 safe); lines that are not JSON-RPC
 * objects are ignored, counted in `stats.invalidLines` and reported through `onStderr`; unknown
 * notifications and responses to unknown ids are ignored; `initialize` and `session/new` time out
 * after `requestTimeoutMs` (default 30 s); `session/prompt` has no timeout unless `promptTimeoutMs`
 * is set (a turn may run long: use `cancel()`). When the agent's stdout ends (the agent died) or
 * `close()` is called, every pending request rejects with an Error saying so, and later calls
 * reject at once. The client never kills the agent: its owner does.
 */
import { StringDecoder } from 'node:string_decoder';
import type { ChildProcess } from 'node:child_process';

export type AcpEvent =
  | { kind: 'message'; role: 'assistant'; content: string }
  | { kind: 'tool_call'; id: string; name: string; args: unknown }
  | { kind: 'tool_result'; callId: string; output: unknown; isError: boolean }
  | { kind: 'status'; state: string; detail?: string }
  | {
      kind: 'permission_request';
      requestId: string;
      toolCall: unknown;
      options: Array<{ optionId: string; name: string; kind: string }>;
    };

export interface AcpClientOptions {
  /** Absolute working directory of the ACP session (`session/new {cwd}`). */
  cwd: string;
  onEvent(e: AcpEvent): void;
  /** Diagnostics: ignored lines, protocol warnings (and the agent's stderr with `fromChild`). */
  onStderr?(text: string): void;
  /** Timeout of `initialize` and `session/new` (default 30 000 ms). */
  requestTimeoutMs?: number;
  /** Optional timeout of a whole `session/prompt` turn (default: none). */
  promptTimeoutMs?: number;
}

/** Error answered by the agent (JSON-RPC error object) or raised by the client. */
export class AcpError extends Error {
  constructor(
    message: string,
    readonly method: string,
    readonly code?: number,
    readonly data?: unknown,
    /** True when the client gave up waiting (requestTimeoutMs / promptTimeoutMs). */
    readonly timedOut = false,
  ) {
    super(message);
    this.name = 'AcpError';
  }
}

export const ACP_PROTOCOL_VERSION = 1;
const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
/** A line longer than this without a newline is dropped (protects memory from a runaway agent). */
const MAX_LINE_BYTES = 16 * 1024 * 1024;
const METHOD_NOT_FOUND = -32601;
const INVALID_PARAMS = -32602;

type JsonRpcId = number | string;

interface Pending {
  method: string;
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer?: NodeJS.Timeout;
}

interface PendingPermission {
  rpcId: JsonRpcId;
  optionIds: Set<string>;
}

interface ToolState {
  content?: unknown[];
  rawOutput?: unknown;
  done: boolean;
}

type PermissionOption = { optionId: string; name: string; kind: string };

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function clip(s: string, n = 200): string {
  return s.length > n ? `${s.slice(0, n)}…` : s;
}

/** Text of a ContentBlock[] / ToolCallContent[]; undefined when it holds no text. */
function textOf(content: unknown): string | undefined {
  if (!Array.isArray(content)) return undefined;
  const parts: string[] = [];
  for (const c of content) {
    if (!isObj(c)) continue;
    const block = c.type === 'content' && isObj(c.content) ? c.content : c;
    if (block.type === 'text' && typeof block.text === 'string') parts.push(block.text);
  }
  return parts.length > 0 ? parts.join('') : undefined;
}

export class AcpClient {
  /** Counters, for logs and tests. */
  readonly stats = { invalidLines: 0, ignoredMessages: 0, refusedRequests: 0 };
  /** `agentCapabilities` from the `initialize` answer, once started. */
  agentCapabilities: unknown;
  /** The ACP session id, once started. */
  sessionId: string | undefined;

  private readonly decoder = new StringDecoder('utf8');
  private buf = '';
  private nextId = 1;
  private readonly pending = new Map<JsonRpcId, Pending>();
  private readonly permissions = new Map<string, PendingPermission>();
  private nextPermission = 1;
  private readonly tools = new Map<string, ToolState>();
  /** Tool calls opened during the current turn. */
  private turnTools = new Set<string>();
  private startPromise: Promise<{ sessionId: string; agentInfo?: unknown }> | undefined;
  private prompting = false;
  /** Set once the agent is gone or the client is closed: every later call rejects with it. */
  private dead: Error | undefined;
  private readonly requestTimeoutMs: number;

  private readonly onData = (chunk: Buffer | string): void => this.feed(chunk);
  private readonly onEnd = (): void => {
    if (this.dead) return;
    const rest = this.buf + this.decoder.end();
    this.buf = '';
    if (rest.trim() !== '') this.handleLine(rest); // a last line without its newline
    this.fail(new Error('ACP agent closed its stdout (the agent exited)'));
  };
  private readonly onStreamError = (err: Error): void =>
    this.fail(new Error(`ACP agent pipe failed: ${err.message}`));

  /** Spawned child with stdio pipes: also forwards its stderr and reports its exit code. */
  static fromChild(child: ChildProcess, opts: AcpClientOptions): AcpClient {
    if (!child.stdin || !child.stdout) throw new Error('ACP agent must be spawned with stdio pipes');
    const client = new AcpClient(child.stdin, child.stdout, opts);
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (d: string) => opts.onStderr?.(d));
    child.once('exit', (code, signal) =>
      client.fail(new Error(`ACP agent exited (${signal ? `signal ${signal}` : `code ${code}`})`)),
    );
    child.once('error', (err) => client.fail(new Error(`ACP agent failed to run: ${err.message}`)));
    return client;
  }

  constructor(
    private readonly stdin: NodeJS.WritableStream,
    private readonly stdout: NodeJS.ReadableStream,
    private readonly opts: AcpClientOptions,
  ) {
    this.requestTimeoutMs = opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    stdout.on('data', this.onData);
    stdout.on('end', this.onEnd);
    stdout.on('close', this.onEnd);
    stdout.on('error', this.onStreamError);
    // Writing to a dead agent raises EPIPE on stdin: never let that go unhandled.
    stdin.on('error', this.onStreamError);
  }

  /** `initialize` then `session/new`. Calling it again returns the same promise. */
  start(): Promise<{ sessionId: string; agentInfo?: unknown }> {
    this.startPromise ??= (async () => {
      const init = await this.request('initialize', {
        protocolVersion: ACP_PROTOCOL_VERSION,
        clientCapabilities: { fs: { readTextFile: false, writeTextFile: false }, terminal: false },
        clientInfo: { name: 'session-manager', version: '0.1.0' },
      });
      if (!isObj(init)) throw new AcpError('ACP initialize answered a non-object', 'initialize');
      if (init.protocolVersion !== undefined && init.protocolVersion !== ACP_PROTOCOL_VERSION) {
        throw new AcpError(
          `ACP agent speaks protocol version ${JSON.stringify(init.protocolVersion)}, this client speaks ${ACP_PROTOCOL_VERSION}`,
          'initialize',
        );
      }
      this.agentCapabilities = init.agentCapabilities;
      const created = await this.request('session/new', { cwd: this.opts.cwd, mcpServers: [] });
      if (!isObj(created) || typeof created.sessionId !== 'string' || created.sessionId === '') {
        throw new AcpError('ACP session/new answered without a sessionId', 'session/new');
      }
      this.sessionId = created.sessionId;
      return init.agentInfo === undefined
        ? { sessionId: created.sessionId }
        : { sessionId: created.sessionId, agentInfo: init.agentInfo };
    })();
    return this.startPromise;
  }

  /** One prompt turn. Resolves with the agent's stopReason ("end_turn", "cancelled", …). */
  async prompt(text: string): Promise<{ stopReason: string }> {
    if (this.dead) throw this.dead;
    if (!this.sessionId) throw new AcpError('ACP prompt before start() finished', 'session/prompt');
    if (this.prompting) throw new AcpError('ACP prompt already in progress', 'session/prompt');
    this.prompting = true;
    this.turnTools = new Set();
    this.emit({ kind: 'status', state: 'thinking' });
    try {
      const res = await this.request(
        'session/prompt',
        { sessionId: this.sessionId, prompt: [{ type: 'text', text }] },
        this.opts.promptTimeoutMs,
      );
      const stopReason = isObj(res) && typeof res.stopReason === 'string' ? res.stopReason : 'end_turn';
      this.endTurn(stopReason);
      this.emit({ kind: 'status', state: 'done', detail: stopReason });
      return { stopReason };
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      // A turn we stopped waiting for is still running in the agent: ask it to stop.
      if (e instanceof AcpError && e.timedOut) this.cancel();
      this.endTurn('error');
      this.emit({ kind: 'status', state: 'error', detail: e.message });
      throw e;
    } finally {
      this.prompting = false;
    }
  }

  /**
   * `session/cancel`. Open permission requests are answered "cancelled" at once, as the spec
   * requires; the running prompt then resolves with stopReason "cancelled".
   */
  cancel(): void {
    if (this.dead || !this.sessionId) return;
    this.send({ jsonrpc: '2.0', method: 'session/cancel', params: { sessionId: this.sessionId } });
    for (const id of [...this.permissions.keys()]) this.answerPermission(id, null);
  }

  /**
   * Answers a `permission_request` event. `optionId` null = cancelled. False if the request is
   * unknown (already answered, cancelled, or never asked) or the option was not offered.
   */
  answerPermission(requestId: string, optionId: string | null): boolean {
    const p = this.permissions.get(requestId);
    if (!p) return false;
    if (optionId !== null && !p.optionIds.has(optionId)) return false;
    this.permissions.delete(requestId);
    const outcome = optionId === null ? { outcome: 'cancelled' } : { outcome: 'selected', optionId };
    this.send({ jsonrpc: '2.0', id: p.rpcId, result: { outcome } });
    return true;
  }

  /** Rejects pending requests, drops open permission requests and stops reading. */
  close(): void {
    this.fail(new Error('ACP client closed'));
  }

  // ---- internals -------------------------------------------------------------------------

  private emit(e: AcpEvent): void {
    try {
      this.opts.onEvent(e);
    } catch (err) {
      this.warn(`onEvent threw: ${(err as Error)?.message ?? err}`);
    }
  }

  private warn(text: string): void {
    try {
      this.opts.onStderr?.(`[acp] ${text}\n`);
    } catch {
      /* a diagnostics sink must not break the client */
    }
  }

  private send(msg: object): boolean {
    if (this.dead) return false;
    try {
      this.stdin.write(`${JSON.stringify(msg)}\n`);
      return true;
    } catch (err) {
      this.fail(new Error(`ACP agent pipe failed: ${(err as Error).message}`));
      return false;
    }
  }

  private request(method: string, params: unknown, timeoutMs: number | undefined = this.requestTimeoutMs): Promise<unknown> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise<unknown>((resolve, reject) => {
      const p: Pending = { method, resolve, reject };
      if (timeoutMs !== undefined && timeoutMs > 0) {
        p.timer = setTimeout(() => {
          if (this.pending.delete(id)) {
            reject(new AcpError(`ACP ${method} timed out after ${timeoutMs} ms`, method, undefined, undefined, true));
          }
        }, timeoutMs);
        p.timer.unref?.();
      }
      this.pending.set(id, p);
      this.send({ jsonrpc: '2.0', id, method, params });
    });
  }

  private fail(err: Error): void {
    if (this.dead) return;
    this.dead = err;
    this.stdout.removeListener('data', this.onData);
    this.stdout.removeListener('end', this.onEnd);
    this.stdout.removeListener('close', this.onEnd);
    // Keep the error listeners: a late EPIPE must stay handled.
    this.permissions.clear();
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) {
      if (p.timer) clearTimeout(p.timer);
      p.reject(new AcpError(`${err.message} while waiting for ${p.method}`, p.method));
    }
  }

  private feed(chunk: Buffer | string): void {
    this.buf += typeof chunk === 'string' ? chunk : this.decoder.write(chunk);
    let nl: number;
    while (!this.dead && (nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      this.handleLine(line);
    }
    if (this.buf.length > MAX_LINE_BYTES) {
      this.stats.invalidLines++;
      this.warn(`dropped a line longer than ${MAX_LINE_BYTES} bytes`);
      this.buf = '';
    }
  }

  private handleLine(raw: string): void {
    const line = raw.trim();
    if (line === '') return;
    let msg: unknown;
    try {
      msg = JSON.parse(line);
    } catch {
      msg = undefined;
    }
    if (!isObj(msg) || msg.jsonrpc !== '2.0') {
      this.stats.invalidLines++;
      this.warn(`ignored non-JSON-RPC line from agent: ${clip(line)}`);
      return;
    }
    const hasId = typeof msg.id === 'number' || typeof msg.id === 'string';
    if (typeof msg.method === 'string') {
      if (hasId) this.handleRequest(msg.id as JsonRpcId, msg.method, msg.params);
      else this.handleNotification(msg.method, msg.params);
      return;
    }
    if (hasId && ('result' in msg || 'error' in msg)) {
      this.handleResponse(msg.id as JsonRpcId, msg);
      return;
    }
    this.stats.ignoredMessages++;
  }

  private handleResponse(id: JsonRpcId, msg: Record<string, unknown>): void {
    const p = this.pending.get(id);
    if (!p) {
      this.stats.ignoredMessages++; // late answer to a timed-out request, or a bogus id
      return;
    }
    this.pending.delete(id);
    if (p.timer) clearTimeout(p.timer);
    if (isObj(msg.error)) {
      const e = msg.error;
      const message = typeof e.message === 'string' ? e.message : 'unknown error';
      const code = typeof e.code === 'number' ? e.code : undefined;
      p.reject(new AcpError(`ACP ${p.method} failed: ${message}${code !== undefined ? ` (${code})` : ''}`, p.method, code, e.data));
    } else {
      p.resolve(msg.result);
    }
  }

  private handleRequest(id: JsonRpcId, method: string, params: unknown): void {
    if (method === 'session/request_permission' && isObj(params) && Array.isArray(params.options)) {
      const options: PermissionOption[] = [];
      for (const o of params.options) {
        if (isObj(o) && typeof o.optionId === 'string') {
          options.push({
            optionId: o.optionId,
            name: typeof o.name === 'string' ? o.name : o.optionId,
            kind: typeof o.kind === 'string' ? o.kind : 'other',
          });
        }
      }
      const requestId = `perm-${this.nextPermission++}`;
      this.permissions.set(requestId, { rpcId: id, optionIds: new Set(options.map((o) => o.optionId)) });
      this.emit({ kind: 'permission_request', requestId, toolCall: params.toolCall, options });
      return;
    }
    this.stats.refusedRequests++;
    const invalid = method === 'session/request_permission';
    this.send({
      jsonrpc: '2.0',
      id,
      error: invalid
        ? { code: INVALID_PARAMS, message: 'session/request_permission needs options[]' }
        : { code: METHOD_NOT_FOUND, message: `Method not found: ${method} (not supported by this client)` },
    });
  }

  private handleNotification(method: string, params: unknown): void {
    if (method !== 'session/update' || !isObj(params) || !isObj(params.update)) {
      this.stats.ignoredMessages++;
      return;
    }
    if (this.sessionId !== undefined && params.sessionId !== this.sessionId) {
      this.stats.ignoredMessages++;
      return;
    }
    const u = params.update;
    switch (u.sessionUpdate) {
      case 'agent_message_chunk': {
        const text = isObj(u.content) && u.content.type === 'text' ? u.content.text : undefined;
        if (typeof text === 'string') this.emit({ kind: 'message', role: 'assistant', content: text });
        else this.stats.ignoredMessages++;
        return;
      }
      case 'agent_thought_chunk': {
        const text = isObj(u.content) && u.content.type === 'text' ? u.content.text : undefined;
        if (typeof text === 'string') this.emit({ kind: 'status', state: 'thinking', detail: text });
        return;
      }
      case 'tool_call':
        this.onToolCall(u);
        return;
      case 'tool_call_update':
        this.onToolCallUpdate(u);
        return;
      case 'plan': {
        const entries = Array.isArray(u.entries) ? u.entries : [];
        const detail = entries
          .filter(isObj)
          .map((e) => `[${typeof e.status === 'string' ? e.status : 'pending'}] ${String(e.content ?? '')}`)
          .join('\n');
        this.emit({ kind: 'status', state: 'plan', detail });
        return;
      }
      default:
        this.stats.ignoredMessages++; // user_message_chunk, available_commands_update, current_mode_update, future kinds
    }
  }

  private onToolCall(u: Record<string, unknown>): void {
    if (typeof u.toolCallId !== 'string') {
      this.stats.ignoredMessages++;
      return;
    }
    const id = u.toolCallId;
    const name = typeof u.title === 'string' && u.title !== '' ? u.title : typeof u.kind === 'string' ? u.kind : 'tool';
    const state: ToolState = { done: false };
    if (Array.isArray(u.content)) state.content = u.content;
    if (u.rawOutput !== undefined) state.rawOutput = u.rawOutput;
    this.tools.set(id, state);
    if (this.prompting) this.turnTools.add(id);
    this.emit({ kind: 'tool_call', id, name, args: u.rawInput ?? {} });
    if (u.status === 'completed' || u.status === 'failed') this.finishTool(id, state, u.status === 'failed');
  }

  private onToolCallUpdate(u: Record<string, unknown>): void {
    if (typeof u.toolCallId !== 'string') {
      this.stats.ignoredMessages++;
      return;
    }
    const id = u.toolCallId;
    let state = this.tools.get(id);
    if (!state) {
      // An update for a call we never saw opened: keep it, report its result anyway.
      state = { done: false };
      this.tools.set(id, state);
    }
    if (Array.isArray(u.content)) state.content = u.content; // "replace the content collection"
    if (u.rawOutput !== undefined) state.rawOutput = u.rawOutput;
    if (state.done) return;
    if (u.status === 'completed' || u.status === 'failed') this.finishTool(id, state, u.status === 'failed');
  }

  private finishTool(id: string, state: ToolState, isError: boolean): void {
    state.done = true;
    this.turnTools.delete(id);
    const output = state.rawOutput !== undefined ? state.rawOutput : (textOf(state.content) ?? state.content ?? null);
    this.emit({ kind: 'tool_result', callId: id, output, isError });
    this.tools.delete(id);
  }

  /** Closes the turn's still-open tool calls and voids its unanswered permission requests. */
  private endTurn(stopReason: string): void {
    for (const id of this.turnTools) {
      const state = this.tools.get(id);
      if (!state || state.done) continue;
      state.done = true;
      this.tools.delete(id);
      this.emit({ kind: 'tool_result', callId: id, output: { error: 'turn ended before the tool call finished', stopReason }, isError: true });
    }
    this.turnTools.clear();
    // A turn that is over cannot be waiting for permission any more.
    for (const id of [...this.permissions.keys()]) this.answerPermission(id, null);
  }
}
