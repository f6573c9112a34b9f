import { randomUUID } from 'node:crypto';
import { AppError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Principal } from '../auth/principal.js';
import type { Conversations } from '../conversations/conversations.js';
import type { Supervisor } from '../supervisor/supervisor.js';
import type { SessionRecord } from '../supervisor/session.js';
import type { AgentEventFromActor } from '../supervisor/mailbox.js';
import { KeyedMutex } from '../workspace/mutex.js';
import type { AgentEvent } from './events.js';

/** Typed prompt text and its Enter go to the pty separately, this far apart (full-screen CLIs). */
const PROMPT_ENTER_DELAY_MS = 60;
/** Prompts an agent has not acknowledged, kept per session (oldest dropped past this). */
const MAX_PENDING_PROMPTS = 100;

/** The transport side of an agent channel (the /agent WebSocket). */
export interface AgentChannel {
  send(frame: Record<string, unknown>): void;
  close(code: number, reason: string): void;
}

export interface Participant {
  role: 'owner' | 'editor' | 'viewer' | 'agent';
  userId: string;
  connections: number;
  since: string;
}

/** Who watches a session over /ws (the editor socket layer answers). */
export interface ViewerDirectory {
  attachedPrincipals(sessionId: string): Array<{ principal: Principal; since: number }>;
}

/**
 * The agent bridge: events from agents (channel or ACP) are validated, numbered, relayed to
 * the session's viewers as `event` frames and kept in the session's conversation; prompts
 * from editors go to the agent's channel, to its ACP actor, or are typed into its pty.
 */
export class AgentBridge {
  private readonly channels = new Map<string, { ch: AgentChannel; since: number }>();
  private readonly seqs = new Map<string, number>();
  private readonly pending = new Map<string, Map<string, { text: string; at: number }>>();
  /** ACP message chunks of the turn in progress, stored as one turn at its end. */
  private readonly chunks = new Map<string, string[]>();
  private readonly writes = new KeyedMutex();
  viewers: ViewerDirectory = { attachedPrincipals: () => [] };

  constructor(
    private readonly sup: Supervisor,
    private readonly conversations: () => Conversations | undefined,
    private readonly log: Logger,
  ) {
    sup.agentEvents = (r, e) => void this.actorEvents.run(r.id, () => this.fromActor(r, e));
    sup.onEnded((r) => this.sessionEnded(r));
    sup.onForgotten((id) => this.seqs.delete(id));
  }

  // ---- channel lifecycle ------------------------------------------------------------------

  /** A new channel for a session replaces an older one (a reconnecting agent wins). */
  openChannel(r: SessionRecord, ch: AgentChannel): void {
    const old = this.channels.get(r.id);
    if (old) old.ch.close(4009, 'replaced by a newer agent connection');
    this.channels.set(r.id, { ch, since: Date.now() });
    ch.send({ type: 'welcome', sessionId: r.id, conversationId: r.conversationId ?? null });
    // Prompts sent while the agent was away are delivered now.
    for (const [id, p] of this.pending.get(r.id) ?? []) ch.send({ type: 'prompt', id, text: p.text });
    this.participantEvent(r.id, 'participant:joined', { role: 'agent', userId: `agent:${r.id}` });
  }

  closeChannel(r: SessionRecord, ch: AgentChannel): void {
    const cur = this.channels.get(r.id);
    if (cur?.ch !== ch) return;
    this.channels.delete(r.id);
    this.participantEvent(r.id, 'participant:left', { role: 'agent', userId: `agent:${r.id}` });
  }

  hasChannel(id: string): boolean {
    return this.channels.has(id);
  }

  private sessionEnded(r: SessionRecord): void {
    const cur = this.channels.get(r.id);
    if (cur) {
      this.channels.delete(r.id);
      cur.ch.close(4010, 'session ended');
    }
    this.pending.delete(r.id);
    void this.flushChunks(r);
  }

  // ---- events in --------------------------------------------------------------------------

  /** An agent acknowledged a prompt. */
  ack(r: SessionRecord, id: unknown): void {
    if (typeof id !== 'string' || !this.pending.get(r.id)?.delete(id)) {
      throw new AppError('SM_ERR_VALIDATION', '"id" must name a prompt that is waiting for its ack.', { details: { field: 'id' } });
    }
    this.relay(r, 'agent:prompt_ack', { promptId: id });
  }

  /** A validated event from an agent channel. Resolves once it is stored. */
  async ingest(r: SessionRecord, e: AgentEvent): Promise<number> {
    const seq = this.relay(r, `agent:${e.type}`, eventPayload(e));
    switch (e.type) {
      case 'message':
        await this.store(r, [{ role: e.role, content: e.content, metadata: { seq } }]);
        break;
      case 'tool_call':
        await this.store(r, [{ role: 'assistant', content: '', toolCalls: [{ id: e.id, name: e.name, args: e.args }], metadata: { seq } }]);
        break;
      case 'tool_result':
        await this.store(r, [{ role: 'tool', content: typeof e.output === 'string' ? e.output : (JSON.stringify(e.output) ?? ''), toolResults: [{ callId: e.callId, output: e.output, isError: e.isError }], metadata: { seq } }]);
        break;
      case 'context':
        this.sup.patchMetadata(r.id, e.patch);
        break;
      case 'status':
      case 'permission_request':
        break;
    }
    return seq;
  }

  /**
   * An actor's events are handled one after the other, per session: a `tool_call` waits for
   * the message chunks before it to be stored, and a `tool_result` sent right after it must
   * not overtake it (both can arrive in one batch from the actor's thread). Its own mutex:
   * handling an event takes `writes` for the same session.
   */
  private readonly actorEvents = new KeyedMutex();

  /** Events translated by an ACP actor. Message chunks stream live and are stored joined. */
  private async fromActor(r: SessionRecord, e: AgentEventFromActor): Promise<void> {
    try {
      switch (e.kind) {
        case 'message': {
          this.relay(r, 'agent:message', { role: e.role, content: e.content, chunk: true });
          const list = this.chunks.get(r.id) ?? [];
          list.push(e.content);
          this.chunks.set(r.id, list);
          return;
        }
        case 'tool_call':
          await this.flushChunks(r);
          await this.ingest(r, { type: 'tool_call', id: e.id, name: e.name, args: e.args });
          return;
        case 'tool_result':
          await this.ingest(r, { type: 'tool_result', callId: e.callId, output: e.output, isError: e.isError });
          return;
        case 'status':
          this.relay(r, 'agent:status', e.detail === undefined ? { state: e.state } : { state: e.state, detail: e.detail });
          return;
        case 'permission_request':
          this.relay(r, 'agent:permission_request', { requestId: e.requestId, toolCall: e.toolCall, options: e.options });
          return;
        case 'prompt_done':
          await this.flushChunks(r);
          this.relay(r, 'agent:prompt_done', { promptId: e.promptId, stopReason: e.stopReason });
          return;
        case 'prompt_failed':
          await this.flushChunks(r);
          this.relay(r, 'agent:prompt_failed', { promptId: e.promptId, error: e.error });
          return;
      }
    } catch (err) {
      this.log.warn('agent event from actor not handled', { sessionId: r.id, error: err as Error });
    }
  }

  private async flushChunks(r: SessionRecord): Promise<void> {
    const list = this.chunks.get(r.id);
    if (!list?.length) return;
    this.chunks.delete(r.id);
    await this.store(r, [{ role: 'assistant', content: list.join('') }]);
  }

  // ---- prompts ----------------------------------------------------------------------------

  /**
   * A prompt from an editor: to the agent's channel (acknowledged by id), to its ACP actor,
   * or typed into the pty (text, then Enter). Recorded as a user turn either way.
   */
  async prompt(r: SessionRecord, text: string, attachments: unknown[] | undefined, by: Principal): Promise<{ promptId: string; via: 'channel' | 'acp' | 'pty' }> {
    if (r.status !== 'running') throw new AppError('SM_ERR_SESSION_NOT_RUNNING', `The session is ${r.status}.`);
    if (this.sup.isRemote(r.id)) return this.sup.fleet!.request(r, 'prompt', { text, attachments, userId: by.userId });
    const promptId = randomUUID();
    let via: 'channel' | 'acp' | 'pty';
    const channel = this.channels.get(r.id);
    if (channel) {
      via = 'channel';
      let pend = this.pending.get(r.id);
      if (!pend) this.pending.set(r.id, (pend = new Map()));
      pend.set(promptId, { text, at: Date.now() });
      if (pend.size > MAX_PENDING_PROMPTS) pend.delete(pend.keys().next().value!);
      channel.ch.send(attachments ? { type: 'prompt', id: promptId, text, attachments } : { type: 'prompt', id: promptId, text });
    } else if (this.sup.speaksAcp(r.id)) {
      via = 'acp';
      this.sup.acpPrompt(r.id, promptId, text);
    } else {
      via = 'pty';
      this.sup.input(r.id, text);
      setTimeout(() => {
        try {
          this.sup.input(r.id, '\r');
        } catch {
          // The session ended in between.
        }
      }, PROMPT_ENTER_DELAY_MS).unref();
    }
    this.relay(r, 'agent:prompt', { promptId, text, via, by: by.userId, ...(attachments ? { attachments } : {}) });
    await this.store(r, [{ role: 'user', content: text, metadata: { promptId, via, by: by.userId, ...(attachments ? { attachments } : {}) } }]);
    return { promptId, via };
  }

  cancel(r: SessionRecord): void {
    if (this.sup.isRemote(r.id)) return this.sup.fleet!.send(r, 'cancel', {});
    const channel = this.channels.get(r.id);
    if (channel) channel.ch.send({ type: 'cancel' });
    else if (this.sup.speaksAcp(r.id)) this.sup.acpCancel(r.id);
    else this.sup.input(r.id, '\u0003');
  }

  answerPermission(r: SessionRecord, requestId: string, optionId: string | null): void {
    if (this.sup.isRemote(r.id)) return this.sup.fleet!.send(r, 'permission', { requestId, optionId });
    const channel = this.channels.get(r.id);
    if (channel) channel.ch.send({ type: 'permission', requestId, optionId });
    else if (this.sup.speaksAcp(r.id)) this.sup.acpPermission(r.id, requestId, optionId);
    else throw new AppError('SM_ERR_SESSION_NOT_RUNNING', 'This agent takes no permission answers.');
    this.relay(r, 'agent:permission_answer', { requestId, optionId });
  }

  // ---- participants -----------------------------------------------------------------------

  participants(r: SessionRecord): Participant[] {
    const out: Participant[] = [];
    const byUser = new Map<string, Participant>();
    let ownerConnections = 0;
    let ownerSince = r.createdAt;
    for (const { principal, since } of this.viewers.attachedPrincipals(r.id)) {
      if (principal.kind === 'user' && principal.userId === r.userId) {
        ownerConnections++;
        continue;
      }
      const role = principal.kind === 'guest' ? 'viewer' : 'editor';
      const key = `${role}:${principal.userId}`;
      const p = byUser.get(key);
      if (p) p.connections++;
      else byUser.set(key, { role, userId: principal.userId, connections: 1, since: new Date(since).toISOString() });
    }
    if (ownerConnections === 0) ownerSince = r.createdAt;
    out.push({ role: 'owner', userId: r.userId, connections: ownerConnections, since: ownerSince });
    out.push(...byUser.values());
    const ch = this.channels.get(r.id);
    const acpLive = this.sup.speaksAcp(r.id) && r.status === 'running';
    if (ch || acpLive) {
      out.push({ role: 'agent', userId: `agent:${r.id}`, connections: ch ? 1 : 0, since: new Date(ch?.since ?? Date.parse(r.startedAt ?? r.createdAt)).toISOString() });
    }
    return out;
  }

  participantEvent(sessionId: string, name: 'participant:joined' | 'participant:left', payload: { role: string; userId: string }): void {
    const r = this.sup.get(sessionId);
    if (r) this.relay(r, name, payload);
  }

  // ---- plumbing ---------------------------------------------------------------------------

  /** Number an event and send it to the session's viewers. Returns its seq. */
  private relay(r: SessionRecord, name: string, payload: Record<string, unknown>): number {
    const seq = (this.seqs.get(r.id) ?? 0) + 1;
    this.seqs.set(r.id, seq);
    const frame = { type: 'event', topic: `session:${r.id}`, name, payload: { sessionId: r.id, seq, at: new Date().toISOString(), ...payload } };
    this.sup.toViewers(r.id, JSON.stringify(frame));
    return seq;
  }

  /** Append turns to the session's conversation, creating and binding it on first use. */
  private store(r: SessionRecord, turns: Array<Record<string, unknown>>): Promise<void> {
    const conv = this.conversations();
    if (!conv) return Promise.resolve();
    return this.writes.run(r.id, async () => {
      if (!r.conversationId) {
        const created = await conv.create(r.orgId, r.projectName, r.userId, { title: `Session ${r.id.slice(0, 8)} (${r.agent})` });
        this.sup.bindConversation(r.id, created.id);
      }
      await conv.append(r.orgId, r.projectName, r.conversationId!, { messages: turns });
    });
  }
}

function eventPayload(e: AgentEvent): Record<string, unknown> {
  const { type: _type, ...rest } = e;
  void _type;
  return rest;
}
