import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { open, readFile, rmdir } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config.js';
import { AppError, storageError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Store } from '../store/store.js';
import type { Bus } from '../bus/bus.js';
import type { Metrics } from '../metrics.js';
import { ensureWorkspace } from '../workspace/paths.js';
import { signalAgent } from '../../workers/process-tree.js';
import { alignToCharStart } from '../../workers/replay-ring.js';
import { killCgroup, leftoverCgroups, nodeCgroupBase, removeCgroup } from '../../workers/cgroup.js';
import { ActorPool, type ActorHandle } from './actor-pool.js';
import { buildAgentEnv } from './agent-env.js';
import { outputFrameText, type AgentEventFromActor, type FromActor } from './mailbox.js';
import { PortAllocator } from './ports.js';
import { commandAvailable, getProfile, type AgentProfile } from './profiles.js';
import { isTerminal, type SessionRecord, type SessionStatus } from './session.js';
import { EndedRecords, NewestEnded } from './ended-records.js';
import { AdmissionQueue } from './admission-queue.js';
import { AgentIds } from './agent-ids.js';
import type { Fleet } from '../fleet/fleet.js';

/** Acknowledge output to the actor every this many bytes (flow control, see session-actor). */
const ACK_EVERY_BYTES = 256 * 1024;
/** How long DELETE waits for the agent to exit before answering with the record as it is. */
const KILL_WAIT_MS = 10_000;
/** Rings of ended sessions kept in memory for late attaches; older ones fall back to console.log. */
const ENDED_RINGS_KEPT = 64;
/** Restart backoff: first delay, doubling up to the cap; reset after a stable run. */
const RESTART_BASE_MS = 500;
const RESTART_MAX_MS = 30_000;
const RESTART_STABLE_MS = 60_000;
/** Usage and viewer counts are published (batched per org) at most this often. */
const LIVE_UPDATE_MS = 5000;
/** Starts tried when a worker dies before the pty is up, and the pause between them. */
const START_ATTEMPTS = 5;
const START_RETRY_DELAY_MS = 100;

/** Agent credentials are recognizable by prefix (never confused with a JWT). */
export const CREDENTIAL_PREFIX = 'sm_ses_';

function hashCredential(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** True when `pid` is alive and its environment carries SESSION_ID=<sessionId>. */
async function isAgentOf(pid: number, sessionId: string): Promise<boolean> {
  try {
    const env = await readFile(`/proc/${pid}/environ`, 'utf8');
    return env.split('\0').includes(`SESSION_ID=${sessionId}`);
  } catch {
    return false;
  }
}

/** Where the supervisor delivers a session's frames (the WebSocket layer implements it). */
export interface Fanout {
  session(sessionId: string, frame: Uint8Array | string): void;
}

export interface CreateSessionInput {
  userId: string;
  orgId: string;
  projectName: string;
  agent: string;
  command?: string | string[] | undefined;
  metadata?: Record<string, unknown> | undefined;
  priority?: number | undefined;
  cols?: number | undefined;
  rows?: number | undefined;
  conversationId?: string | undefined;
}

export interface ReplayResult {
  offset: number;
  end: number;
  gap: boolean;
  frame: Uint8Array | string | null;
  status: SessionStatus;
  /** Screen mode: the serialized screen standing at `offset` (frame follows from there). */
  screen?: { data: string; cols: number; rows: number } | undefined;
}

export interface Limits {
  maxConcurrentSessions: number;
  maxQueue: number;
  idleTimeoutMs: number;
}

interface Live {
  actor: ActorHandle | undefined;
  viewers: number;
  lastActivity: number;
  killReason: SessionStatus | undefined;
  killMessage: string | undefined;
  replays: Map<number, (r: ReplayResult) => void>;
  ackedAt: number;
  usage: { cpuMs: number; rssBytes: number; at: string } | undefined;
  ring: { bytes: Uint8Array; start: number } | undefined;
  spawnWaiter: ((outcome: 'ok' | 'failed' | 'retry') => void) | undefined;
  exitWaiters: Array<() => void>;
  restartTimer: NodeJS.Timeout | undefined;
  startedAtMs: number;
  /** Bumped on every (re)start so a late message of an old run is ignored. */
  run: number;
  /** The current start is the last attempt (no retry if its worker dies). */
  lastAttempt: boolean;
  /** sha256 of this run's agent credential. */
  credentialHash: string | undefined;
}

export interface SupervisorDeps {
  config: Config;
  store: Store;
  bus: Bus;
  log: Logger;
  metrics: Metrics;
  profiles: Map<string, AgentProfile>;
  serverEnv: Record<string, string | undefined>;
  secrets: readonly string[];
  serverUrl: () => string;
}

/**
 * The supervisor owns the session registry and the scheduler: admission (cap, priority
 * queue, pause), lifecycle (status machine, restart policy, boot recovery) and the job log.
 * Actors own ptys; the supervisor talks to them only through their mailboxes.
 */
export class Supervisor {
  private readonly records = new Map<string, SessionRecord>();
  private readonly live = new Map<string, Live>();
  private readonly queue = new AdmissionQueue();
  private readonly ports: PortAllocator;
  private readonly pool: ActorPool;
  private readonly endedRings: string[] = [];
  /** The newest ended sessions: the ones that stay in `records` (src/supervisor/ended-records.ts). */
  private readonly endedKept: EndedRecords;
  private fanout: Fanout = { session: () => {} };
  private paused = false;
  private closing = false;
  private replaySeq = 0;
  private admitting = false;
  limits: Limits;

  constructor(private readonly deps: SupervisorDeps) {
    const c = deps.config;
    this.ports = new PortAllocator(c.portRange[0], c.portRange[1]);
    this.pool = new ActorPool(c.workerThreads, c.sessionsPerThread);
    this.limits = { maxConcurrentSessions: c.maxConcurrentSessions, maxQueue: c.maxQueue, idleTimeoutMs: c.idleTimeoutMs };
    this.endedKept = new EndedRecords(c.endedSessionsKept);
    this.agentIds = c.agentUidRange ? new AgentIds(c.agentUidRange, deps.store, c.workspaceBasePath) : undefined;
  }

  setFanout(f: Fanout): void {
    this.fanout = f;
  }

  get isClosing(): boolean {
    return this.closing;
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /** Per-org agent identities (AGENT_UID_RANGE), or undefined when agents run as the server. */
  private readonly agentIds: AgentIds | undefined;

  /** This node's cgroup base, when cgroups can hold sessions here (workers/cgroup.ts). */
  private cgroupBase: string | undefined;

  /**
   * End every process of a session from here (its worker died, or shutdown ran out of time):
   * through its cgroup when sessions have them, else by scanning for its process tree.
   */
  private async reapAgent(r: SessionRecord): Promise<void> {
    if (this.cgroupBase) await this.reapCgroup(r.id);
    else if (r.pid) await signalAgent(r.pid, 'SIGKILL').catch(() => 0);
  }

  /** End every process of a session's cgroup and remove it (worker death, boot, shutdown). */
  private async reapCgroup(sessionId: string): Promise<void> {
    if (!this.cgroupBase) return;
    const dir = path.join(this.cgroupBase, sessionId);
    killCgroup(dir);
    await removeCgroup(dir);
  }

  /** Boot recovery: load records; this node's sessions that were live are `lost` (restarted per profile). */
  async recover(): Promise<void> {
    this.cgroupBase = nodeCgroupBase(this.deps.config.nodeId);
    this.deps.log.info(this.cgroupBase ? 'sessions run in cgroups' : 'cgroups unavailable: process trees tracked through /proc', { cgroup: this.cgroupBase });
    // Cgroups left by a previous run of this node: whatever is still in them is orphaned.
    if (this.cgroupBase) for (const id of leftoverCgroups(this.cgroupBase)) await this.reapCgroup(id);
    // One pass over the store, keeping only what this node needs in memory: records that
    // were live (to be marked lost) and the newest ended ones (lists); the rest stay on disk
    // and are read by id when asked for. A boot over 50,000 records held all of them (about
    // 500 MB of RSS) and read them one pool round trip at a time.
    const wasLive = new Map<string, SessionRecord>();
    const newest = new NewestEnded(this.deps.config.endedSessionsKept);
    await this.deps.store.scan<SessionRecord>('sessions', (r) => {
      if (!r || typeof r.id !== 'string') return;
      // A shared store holds every node's sessions: only ours belong in this registry.
      if (this.deps.store.kind !== 'fs' && r.node !== this.deps.config.nodeId) return;
      r.outputOffset ??= 0;
      if (r.node === this.deps.config.nodeId && !isTerminal(r.status)) wasLive.set(r.id, r);
      else if (isTerminal(r.status)) newest.offer(r);
      else this.records.set(r.id, r);
    });
    const restart: SessionRecord[] = [];
    for (const r of wasLive.values()) {
      this.records.set(r.id, r);
      const was = r.status;
      r.status = 'lost';
      r.reason = `node restarted while the session was ${was}`;
      r.endedAt = new Date().toISOString();
      // The agent may have outlived the node that owned it: end it, but only if that pid
      // still is this session's agent (its environment names the session).
      if (!this.cgroupBase && r.pid && (await isAgentOf(r.pid, r.id))) await signalAgent(r.pid, 'SIGKILL').catch(() => 0);
      await this.persist(r);
      await this.job(r, `marked lost at boot (was ${was})`);
      this.deps.log.warn('session lost at boot', { sessionId: r.id, was });
      const profile = this.deps.profiles.get(r.agent);
      if (profile?.restart === 'always' && was !== 'queued') restart.push(r);
      else newest.offer(r);
    }
    // Only the newest ended sessions stay in memory, oldest first into the kept set.
    for (const r of newest.oldestFirst()) {
      this.records.set(r.id, r);
      this.forgetEnded(this.endedKept.ended(r.id));
    }
    for (const r of restart) this.scheduleRestart(r, 0);
  }

  /** Drop ended sessions that fell out of the kept set from memory (they stay in the store). */
  private forgetEnded(ids: string[]): void {
    for (const id of ids) {
      const r = this.records.get(id);
      const l = this.live.get(id);
      // Still in use (viewers, a pending restart): it stays until it ends again.
      if (!r || !isTerminal(r.status) || l?.actor || l?.restartTimer || (l?.viewers ?? 0) > 0) continue;
      this.records.delete(id);
      this.live.delete(id);
      for (const fn of this.forgottenHooks) fn(id);
    }
  }

  private readonly forgottenHooks: Array<(id: string) => void> = [];

  /** Called when an ended session leaves memory (its record stays in the store). */
  onForgotten(fn: (id: string) => void): void {
    this.forgottenHooks.push(fn);
  }

  /**
   * A session by id, ended ones no longer kept in memory included (read from the store).
   * Sessions of this node only, and other nodes' from the fleet's mirror or the shared store.
   */
  async find(id: string): Promise<SessionRecord | undefined> {
    const r = this.get(id);
    if (r) return r;
    const stored = await this.deps.store.get<SessionRecord>('sessions', id).catch(() => undefined);
    return stored && typeof stored.id === 'string' && isTerminal(stored.status) ? stored : undefined;
  }

  // ---- queries ---------------------------------------------------------------------------

  /** A session of this node or, in a fleet, of another node (from the mirror). */
  get(id: string): SessionRecord | undefined {
    return this.records.get(id) ?? this.fleet?.get(id);
  }

  /** Only this node's sessions. */
  getLocal(id: string): SessionRecord | undefined {
    return this.records.get(id);
  }

  /** True when the session is owned by another node of the fleet. */
  isRemote(id: string): boolean {
    return !this.records.has(id) && !!this.fleet?.get(id);
  }

  /** Every session this node knows: its own and (in a fleet) the other nodes'. */
  list(filter: Partial<Pick<SessionRecord, 'userId' | 'orgId' | 'projectName' | 'status'>> = {}): SessionRecord[] {
    const out: SessionRecord[] = [];
    const all = this.fleet ? [...this.records.values(), ...this.fleet.list().filter((r) => !this.records.has(r.id))] : this.records.values();
    for (const r of all) {
      if (filter.userId !== undefined && r.userId !== filter.userId) continue;
      if (filter.orgId !== undefined && r.orgId !== filter.orgId) continue;
      if (filter.projectName !== undefined && r.projectName !== filter.projectName) continue;
      if (filter.status !== undefined && r.status !== filter.status) continue;
      out.push(r);
    }
    return out.sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0));
  }

  /** The record as the API shows it: live fields filled in. */
  view(r: SessionRecord): Record<string, unknown> {
    const l = this.live.get(r.id);
    const out: Record<string, unknown> = { ...r };
    if (l) {
      out.lastActivityAt = new Date(l.lastActivity).toISOString();
      out.viewers = l.viewers;
      if (l.usage) out.usage = l.usage;
    } else out.viewers = 0;
    if (r.status === 'queued') out.queuePosition = this.queue.position(r.id);
    return out;
  }

  /**
   * Sessions starting or running. Kept as a set (entered in `startOnce`, left in
   * `setEnded`) so admission does not walk every record this node ever had.
   */
  private readonly active = new Set<SessionRecord>();

  counts(): { running: number; starting: number; queued: number; total: number } {
    let running = 0;
    for (const r of this.active) if (r.status === 'running') running++;
    return { running, starting: this.active.size - running, queued: this.queue.size, total: this.records.size };
  }

  lastActivity(id: string): number | undefined {
    return this.live.get(id)?.lastActivity;
  }

  viewers(id: string): number {
    return this.live.get(id)?.viewers ?? 0;
  }

  // ---- commands --------------------------------------------------------------------------

  async create(input: CreateSessionInput): Promise<{ record: SessionRecord; queued: boolean }> {
    if (this.closing) throw new AppError('SM_ERR_SHUTTING_DOWN');
    const profile = getProfile(this.deps.profiles, input.agent);
    if (!profile.command && input.command === undefined) {
      throw new AppError('SM_ERR_VALIDATION', `Agent "${profile.name}" runs the request's "command": give one.`, { details: { field: 'command' } });
    }
    if (profile.command && !(await commandAvailable(profile.command, this.deps.serverEnv.PATH ?? ''))) {
      throw new AppError('SM_ERR_AGENT_UNAVAILABLE', `Agent "${profile.name}" needs "${profile.command}", which is not installed here.`);
    }
    const admitNow = this.canAdmit();
    if (!admitNow && this.queue.size >= this.limits.maxQueue) {
      throw new AppError('SM_ERR_QUEUE_FULL', undefined, { details: { maxQueue: this.limits.maxQueue } });
    }
    const workspacePath = await ensureWorkspace(this.deps.config.workspaceBasePath, input.orgId, input.projectName, input.userId);
    const now = new Date().toISOString();
    const record: SessionRecord = {
      id: randomUUID(),
      userId: input.userId,
      orgId: input.orgId,
      projectName: input.projectName,
      agent: profile.name,
      type: profile.type,
      command: profile.command ? null : (input.command ?? null),
      priority: input.priority ?? 0,
      metadata: input.metadata ?? {},
      status: 'queued',
      createdAt: now,
      startedAt: null,
      endedAt: null,
      lastActivityAt: now,
      exitCode: null,
      signal: null,
      reason: null,
      pid: null,
      port: null,
      cols: input.cols ?? 80,
      rows: input.rows ?? 24,
      node: this.deps.config.nodeId,
      workspacePath,
      restarts: 0,
      outputOffset: 0,
      conversationId: input.conversationId ?? null,
    };
    this.records.set(record.id, record);
    void this.event(record, 'session:created');
    if (admitNow) {
      // Admitted at once: the record is first written when the agent runs (or fails).
      await this.start(record);
      return { record, queued: false };
    }
    await this.persist(record);
    await this.job(record, 'queued');
    this.queue.push(record);
    this.deps.metrics.setQueued(this.queue.size);
    return { record, queued: true };
  }

  /**
   * Per-run agent credentials (SESSION_TOKEN): sha256 → session id. Minted at each start,
   * valid only for that session and only while that run lives.
   */
  private readonly credentials = new Map<string, string>();

  /** The live session a credential belongs to, or undefined. */
  resolveCredential(token: string): SessionRecord | undefined {
    const id = this.credentials.get(hashCredential(token));
    const r = id ? this.records.get(id) : undefined;
    return r && (r.status === 'running' || r.status === 'starting') ? r : undefined;
  }

  private mintCredential(l: Live, id: string): string {
    if (l.credentialHash) this.credentials.delete(l.credentialHash);
    const token = `${CREDENTIAL_PREFIX}${randomBytes(32).toString('base64url')}`;
    l.credentialHash = hashCredential(token);
    this.credentials.set(l.credentialHash, id);
    return token;
  }

  private revokeCredential(l: Live | undefined): void {
    if (l?.credentialHash) this.credentials.delete(l.credentialHash);
    if (l) l.credentialHash = undefined;
  }

  input(id: string, data: string): void {
    const remote = this.remoteRecord(id);
    if (remote) return this.fleet!.send(remote, 'input', { data });
    const l = this.requireLive(id);
    l.lastActivity = Date.now();
    l.actor!.input(data);
  }

  resize(id: string, cols: number, rows: number): void {
    const remote = this.remoteRecord(id);
    if (remote) return this.fleet!.send(remote, 'resize', { cols, rows });
    const l = this.requireLive(id);
    const r = this.records.get(id)!;
    r.cols = cols;
    r.rows = rows;
    l.actor!.resize(cols, rows);
  }

  signal(id: string, signal: NodeJS.Signals): void {
    const remote = this.remoteRecord(id);
    if (remote) return this.fleet!.send(remote, 'signal', { signal });
    const l = this.requireLive(id);
    l.lastActivity = Date.now();
    l.actor!.signal(signal);
  }

  private readonly endedHooks: Array<(r: SessionRecord) => void> = [];

  /** Called whenever a session reaches a terminal status. */
  onEnded(fn: (r: SessionRecord) => void): void {
    this.endedHooks.push(fn);
  }

  /** Where agent events from ACP actors go (the agent bridge sets it). */
  agentEvents: (r: SessionRecord, e: AgentEventFromActor) => void = () => {};

  /** The session's profile speaks ACP (structured prompts go to the actor, not the pty). */
  speaksAcp(id: string): boolean {
    const r = this.records.get(id);
    return !!r && this.deps.profiles.get(r.agent)?.protocol === 'acp';
  }

  /** Send a prompt to an ACP actor. */
  acpPrompt(id: string, promptId: string, text: string): void {
    this.requireLive(id).actor!.send({ t: 'prompt', id: promptId, text });
  }

  acpCancel(id: string): void {
    this.requireLive(id).actor!.send({ t: 'cancel' });
  }

  acpPermission(id: string, requestId: string, optionId: string | null): void {
    this.requireLive(id).actor!.send({ t: 'permission', requestId, optionId });
  }

  /** Merge a patch into the session's metadata (null deletes a key) and persist it. */
  patchMetadata(id: string, patch: Record<string, unknown>): Record<string, unknown> {
    const r = this.records.get(id);
    if (!r) throw new AppError('SM_ERR_SESSION_NOT_FOUND');
    for (const [k, v] of Object.entries(patch)) {
      if (v === null) delete r.metadata[k];
      else r.metadata[k] = v;
    }
    void this.persist(r);
    return r.metadata;
  }

  /** Bind a conversation to a session (at start, when none was given). */
  bindConversation(id: string, conversationId: string): void {
    const r = this.records.get(id);
    if (!r) return;
    r.conversationId = conversationId;
    void this.persist(r);
  }

  /** Deliver a frame to a session's viewers (agent events, participants). */
  toViewers(id: string, frame: string): void {
    this.emit(id, frame);
  }

  /** Frames that arrived from another node for local viewers of a remote session. */
  deliver(id: string, frame: Uint8Array | string): void {
    this.fanout.session(id, frame);
  }

  /** A frame of a local session: to local viewers and to nodes watching it. */
  private emit(id: string, frame: Uint8Array | string, offset?: number, end?: number): void {
    this.fanout.session(id, frame);
    this.fleet?.frame(id, frame, offset, end);
  }

  private remoteRecord(id: string): SessionRecord | undefined {
    return this.isRemote(id) ? this.fleet!.get(id) : undefined;
  }

  /** Write every local record again (after the shared store came back). */
  async republish(): Promise<void> {
    await Promise.all([...this.records.values()].map((r) => this.persist(r)));
  }

  /** The fleet link, when several nodes share a Redis. */
  fleet: Fleet | undefined;

  /** Test hook: make an actor throw or its worker die. */
  fault(id: string, kind: 'throw' | 'crash-worker'): void {
    this.requireLive(id).actor!.send({ t: 'fault', kind });
  }

  /**
   * End a session: `killed` through the API, `idle_terminated` by the reaper. Queued
   * sessions leave the queue. Resolves with the record once the agent has exited (or after
   * KILL_WAIT_MS). Ended sessions are returned unchanged.
   */
  async terminate(
    id: string,
    as: 'killed' | 'idle_terminated' | 'completed',
    message?: string,
    extra: { details?: unknown; summary?: string; artifacts?: unknown[] } = {},
  ): Promise<SessionRecord> {
    const remote = this.isRemote(id) ? this.fleet!.get(id)! : undefined;
    if (remote) {
      const rec = await this.fleet!.request<SessionRecord>(remote, 'terminate', { as, message, extra });
      return Object.assign(remote, rec);
    }
    const r = this.records.get(id);
    if (!r) throw new AppError('SM_ERR_SESSION_NOT_FOUND');
    if (!isTerminal(r.status)) {
      if (extra.details !== undefined) r.details = extra.details;
      if (extra.summary !== undefined) r.summary = extra.summary;
      if (extra.artifacts !== undefined) r.artifacts = extra.artifacts;
    }
    if (r.status === 'queued') {
      this.queue.remove(id);
      this.deps.metrics.setQueued(this.queue.size);
      await this.setEnded(r, as, message ?? 'removed from the queue');
      return r;
    }
    const l = this.live.get(id);
    if (l?.restartTimer && isTerminal(r.status)) {
      clearTimeout(l.restartTimer);
      l.restartTimer = undefined;
      return r;
    }
    if (isTerminal(r.status) || !l?.actor) return r;
    l.killReason ??= as;
    l.killMessage ??= message;
    const exited = new Promise<void>((resolve) => l.exitWaiters.push(resolve));
    if (r.status === 'starting') {
      // Kill as soon as it has spawned; the spawn waiter runs first.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    l.actor.send({ t: 'kill', reason: as });
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, KILL_WAIT_MS).unref())]);
    return r;
  }

  /** Count viewers (the idle reaper spares sessions with one). */
  viewerJoined(id: string): void {
    if (this.isRemote(id)) return this.fleet!.viewerJoined(id);
    const l = this.live.get(id);
    if (l) l.viewers++;
    const r = this.records.get(id);
    if (r) this.liveUpdate(r);
  }

  viewerLeft(id: string): void {
    if (this.isRemote(id)) return this.fleet!.viewerLeft(id);
    const l = this.live.get(id);
    if (l && l.viewers > 0) {
      l.viewers--;
      if (l.viewers === 0) l.lastActivity = Math.max(l.lastActivity, Date.now());
      const r = this.records.get(id);
      if (r) this.liveUpdate(r);
    }
  }

  /** Sessions whose usage or viewer count changed since the last `sessions:usage`, by org. */
  private readonly usageDirty = new Map<string, Set<string>>();
  private usageTimer: NodeJS.Timeout | undefined;

  /**
   * Usage samples and viewer counts change often: they go out as one `sessions:usage`
   * event per org per LIVE_UPDATE_MS ({items: [session views]}), so the traffic to an org's
   * subscribers does not grow with its number of sessions.
   */
  private liveUpdate(r: SessionRecord): void {
    if (this.closing) return;
    let set = this.usageDirty.get(r.orgId);
    if (!set) this.usageDirty.set(r.orgId, (set = new Set()));
    set.add(r.id);
    if (this.usageTimer) return;
    this.usageTimer = setTimeout(() => {
      this.usageTimer = undefined;
      const dirty = [...this.usageDirty];
      this.usageDirty.clear();
      for (const [orgId, ids] of dirty) {
        const items = [...ids].map((id) => this.records.get(id)).filter((x): x is SessionRecord => !!x && !isTerminal(x.status)).map((x) => this.view(x));
        if (items.length) void this.deps.bus.publish(`org:${orgId}`, 'sessions:usage', { items }).catch(() => {});
      }
    }, LIVE_UPDATE_MS);
    this.usageTimer.unref();
  }

  /**
   * Replay for an attach. `cb` runs inside the mailbox's message handler, before any later
   * output frame is delivered, so the caller can send the replay and subscribe the viewer
   * with no hole and no repeat.
   */
  replay(id: string, since: number | undefined, cb: (r: ReplayResult) => void, mode?: 'screen'): void {
    const remote = this.remoteRecord(id);
    if (remote) return this.fleet!.replay(remote, since, cb, mode);
    const r = this.records.get(id);
    if (!r) throw new AppError('SM_ERR_SESSION_NOT_FOUND');
    const l = this.live.get(id);
    if (l?.actor && !isTerminal(r.status) && r.status !== 'queued') {
      const reqId = ++this.replaySeq;
      l.replays.set(reqId, cb);
      l.actor.send({ t: 'replay', reqId, since: mode === 'screen' ? undefined : since, mode });
      return;
    }
    if (l?.ring) {
      cb(this.replayFromRing(r, l.ring, since));
      return;
    }
    void this.replayFromConsoleLog(r, since).then(cb, () =>
      cb({ offset: r.outputOffset, end: r.outputOffset, gap: since !== undefined && since < r.outputOffset, frame: null, status: r.status }),
    );
  }

  private replayFromRing(r: SessionRecord, ring: { bytes: Uint8Array; start: number }, since: number | undefined): ReplayResult {
    const end = ring.start + ring.bytes.length;
    let from = since === undefined ? ring.start : Math.min(Math.max(since, ring.start), end);
    const gap = since !== undefined && since < ring.start;
    let bytes = ring.bytes.subarray(from - ring.start);
    const skip = alignToCharStart(bytes);
    bytes = bytes.subarray(skip);
    from += skip;
    const frame = bytes.length ? outputFrameText(r.id, from, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('utf8')) : null;
    return { offset: from, end, gap, frame, status: r.status };
  }

  private async replayFromConsoleLog(r: SessionRecord, since: number | undefined): Promise<ReplayResult> {
    const file = path.join(this.deps.config.dataDir, 'sessions', r.id, 'console.log');
    const fh = await open(file, 'r');
    try {
      const size = (await fh.stat()).size;
      const take = Math.min(size, this.deps.config.replayBytes);
      const buf = Buffer.alloc(take);
      await fh.read(buf, 0, take, size - take);
      const end = r.outputOffset;
      return this.replayFromRing(r, { bytes: buf, start: Math.max(0, end - take) }, since);
    } finally {
      await fh.close();
    }
  }

  // ---- scheduler -------------------------------------------------------------------------

  private canAdmit(): boolean {
    if (this.paused || this.closing) return false;
    const c = this.counts();
    return c.running + c.starting < this.limits.maxConcurrentSessions;
  }

  /** Admit queued sessions while there is room: priority first, then age. */
  private async admit(): Promise<void> {
    if (this.admitting) return;
    this.admitting = true;
    try {
      while (this.queue.size > 0 && this.canAdmit()) {
        const next = this.queue.shift()!;
        this.deps.metrics.setQueued(this.queue.size);
        if (next.status !== 'queued') continue;
        await this.start(next);
      }
    } finally {
      this.admitting = false;
    }
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    void this.admit();
  }

  setLimits(l: Partial<Limits>): Limits {
    this.limits = { ...this.limits, ...l };
    void this.admit();
    return this.limits;
  }

  // ---- lifecycle -------------------------------------------------------------------------

  private requireLive(id: string): Live {
    const r = this.records.get(id);
    if (!r) throw new AppError('SM_ERR_SESSION_NOT_FOUND');
    const l = this.live.get(id);
    if (r.status !== 'running' || !l?.actor) throw new AppError('SM_ERR_SESSION_NOT_RUNNING', `The session is ${r.status}.`);
    return l;
  }

  private liveFor(id: string): Live {
    let l = this.live.get(id);
    if (!l) {
      l = {
        actor: undefined,
        viewers: 0,
        lastActivity: Date.now(),
        killReason: undefined,
        killMessage: undefined,
        replays: new Map(),
        ackedAt: 0,
        usage: undefined,
        ring: undefined,
        spawnWaiter: undefined,
        exitWaiters: [],
        restartTimer: undefined,
        startedAtMs: 0,
        run: 0,
        lastAttempt: false,
        credentialHash: undefined,
      };
      this.live.set(id, l);
    }
    return l;
  }

  private commandLine(r: SessionRecord, profile: AgentProfile): { command: string; args: string[] } {
    if (profile.command) return { command: profile.command, args: profile.args };
    const c = r.command;
    if (Array.isArray(c)) return { command: c[0]!, args: [...c.slice(1), ...profile.args] };
    return { command: 'sh', args: ['-c', String(c)] };
  }

  /**
   * Spawn the actor for a record (new or restarted) and wait until the pty runs or fails.
   * A worker that dies before the pty is up (e.g. it was draining after a fatal error) is
   * not the session's fault: the start is retried on the pool's replacement worker.
   */
  private async start(r: SessionRecord, initialRing?: Uint8Array): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const outcome = await this.startOnce(r, initialRing, attempt >= START_ATTEMPTS);
      if (outcome !== 'retry') return;
      this.deps.log.warn('worker died before the agent started; retrying', { sessionId: r.id, attempt });
      await new Promise((resolve) => setTimeout(resolve, START_RETRY_DELAY_MS * 2 ** (attempt - 1)));
      if (this.closing) return this.setEnded(r, 'failed', 'server shutdown before start');
    }
  }

  private async startOnce(r: SessionRecord, initialRing: Uint8Array | undefined, lastAttempt: boolean): Promise<'ok' | 'failed' | 'retry'> {
    const t0 = performance.now();
    const profile = this.deps.profiles.get(r.agent);
    const l = this.liveFor(r.id);
    const run = ++l.run;
    l.killReason = undefined;
    l.killMessage = undefined;
    l.ring = undefined;
    l.ackedAt = r.outputOffset;
    r.status = 'starting';
    this.endedKept.revived(r.id);
    this.active.add(r);
    r.exitCode = null;
    r.signal = null;
    r.reason = null;
    r.endedAt = null;
    if (!profile) {
      await this.setEnded(r, 'failed', `agent profile "${r.agent}" no longer exists`);
      return 'failed';
    }
    const port = this.ports.allocate();
    if (port === undefined) {
      await this.setEnded(r, 'failed', 'no free port in PORT_RANGE');
      return 'failed';
    }
    r.port = port;
    const { command, args } = this.commandLine(r, profile);
    const cwd = profile.cwd ? path.resolve(r.workspacePath, profile.cwd) : r.workspacePath;
    const env = buildAgentEnv(
      this.deps.config,
      this.deps.serverEnv,
      this.deps.secrets,
      {
        sessionId: r.id,
        token: this.mintCredential(l, r.id),
        workspaceDir: r.workspacePath,
        orgId: r.orgId,
        projectName: r.projectName,
        port,
        profileEnv: profile.env,
      },
      this.deps.serverUrl(),
    );
    let runAs: { uid: number; gid: number } | undefined;
    if (this.agentIds) {
      try {
        const uid = await this.agentIds.uidFor(r.orgId);
        env.HOME = await this.agentIds.prepare(r.orgId, r.workspacePath, uid);
        runAs = { uid, gid: uid };
      } catch (err) {
        this.ports.release(port);
        await this.setEnded(r, 'failed', `could not prepare the agent's identity: ${(err as Error).message}`);
        return 'failed';
      }
    }
    const spawned = new Promise<'ok' | 'failed' | 'retry'>((resolve) => (l.spawnWaiter = resolve));
    l.lastAttempt = lastAttempt;
    const actor = this.pool.start(
      {
        sessionId: r.id,
        command,
        args,
        cwd,
        env,
        cols: r.cols,
        rows: r.rows,
        replayBytes: this.deps.config.replayBytes,
        consoleLogPath: path.join(this.deps.config.dataDir, 'sessions', r.id, 'console.log'),
        baseOffset: r.outputOffset,
        initialRing,
        testHooks: this.deps.config.testHooks,
        protocol: profile.protocol === 'acp' ? 'acp' : 'pty',
        cgroupBase: this.cgroupBase,
        runAs,
      },
      (m) => {
        if (l.run === run) this.onActorMessage(r, l, m);
      },
    );
    l.actor = actor;
    actor.task.then(
      () => {
        // Normal end: the `exit` message (same mailbox as the output) finalizes the session.
      },
      (err: unknown) => {
        if (l.run === run) void this.onActorDied(r, l, err);
      },
    );
    const outcome = await spawned;
    if (outcome === 'ok') {
      this.deps.metrics.observeSpawn((performance.now() - t0) / 1000);
      // Answer only once the running record is on disk: a 201 is never forgotten by a crash.
      await this.persistChains.get(r.id);
      const failed = this.persistErrors.get(r.id);
      if (failed) {
        // A session that cannot be recorded does not run: end it and say why.
        l.killReason = 'failed';
        l.killMessage = 'could not record the session';
        l.actor?.send({ t: 'kill', reason: 'failed' });
        throw storageError(failed);
      }
    }
    return outcome;
  }

  private onActorMessage(r: SessionRecord, l: Live, m: FromActor): void {
    switch (m.t) {
      case 'out': {
        l.lastActivity = Date.now();
        r.outputOffset = m.offset + m.length;
        this.emit(r.id, m.frame, m.offset, m.offset + m.length);
        if (r.outputOffset - l.ackedAt >= ACK_EVERY_BYTES) {
          l.ackedAt = r.outputOffset;
          l.actor?.send({ t: 'ack', offset: r.outputOffset });
        }
        break;
      }
      case 'replay': {
        const cb = l.replays.get(m.reqId);
        l.replays.delete(m.reqId);
        cb?.({ offset: m.offset, end: m.end, gap: m.gap, frame: m.frame, status: r.status, screen: m.screen });
        break;
      }
      case 'spawned': {
        r.pid = m.pid;
        r.status = 'running';
        r.startedAt = new Date().toISOString();
        l.startedAtMs = Date.now();
        l.lastActivity = Date.now();
        l.spawnWaiter?.('ok');
        l.spawnWaiter = undefined;
        this.deps.metrics.setRunning(this.counts().running);
        void this.persist(r);
        void this.job(r, r.restarts ? `restarted (${r.restarts})` : 'started');
        this.statusChanged(r);
        break;
      }
      case 'spawn_failed': {
        l.actor?.close();
        l.actor = undefined;
        this.ports.release(r.port);
        void this.setEnded(r, 'failed', m.error).then(() => {
          l.spawnWaiter?.('failed');
          l.spawnWaiter = undefined;
        });
        break;
      }
      case 'usage':
        l.usage = { cpuMs: m.cpuMs, rssBytes: m.rssBytes, at: new Date().toISOString() };
        this.liveUpdate(r);
        break;
      case 'agent_event':
        l.lastActivity = Date.now();
        this.agentEvents(r, m.event);
        break;
      case 'exit':
        void this.onExit(r, l, m);
        break;
    }
  }

  private async onExit(r: SessionRecord, l: Live, m: Extract<FromActor, { t: 'exit' }>): Promise<void> {
    l.actor?.close();
    l.actor = undefined;
    l.run++;
    this.ports.release(r.port);
    r.outputOffset = m.endOffset;
    r.exitCode = m.exitCode;
    r.signal = m.signal;
    l.ring = { bytes: m.ring, start: m.ringStart };
    this.rememberRing(r.id);
    let status: SessionStatus;
    let reason: string;
    if (m.cause === 'actor_error') {
      status = 'crashed';
      reason = `actor error: ${m.error ?? 'unknown'}`;
    } else if (l.killReason) {
      status = l.killReason;
      reason = l.killMessage ?? (status === 'idle_terminated' ? 'idle timeout' : status === 'completed' ? 'completed' : 'terminated through the API');
    } else if (r.type === 'one_off') {
      status = 'exited';
      reason = m.signal ? `ended by ${m.signal}` : `exited with code ${m.exitCode}`;
    } else if (m.signal) {
      status = 'crashed';
      reason = `agent ended by ${m.signal}`;
    } else {
      status = 'exited';
      reason = `exited with code ${m.exitCode}`;
    }
    for (const [, cb] of l.replays) cb(this.replayFromRing(r, l.ring, undefined));
    l.replays.clear();
    await this.setEnded(r, status, reason);
    this.applyRestartPolicy(r, l);
  }

  /** The actor's worker died: the task rejected without an `exit`. Reap the agent from here. */
  private async onActorDied(r: SessionRecord, l: Live, err: unknown): Promise<void> {
    l.actor?.close();
    l.actor = undefined;
    l.run++;
    if (r.status === 'running') await this.reapAgent(r);
    this.ports.release(r.port);
    for (const [, cb] of l.replays) cb({ offset: r.outputOffset, end: r.outputOffset, gap: true, frame: null, status: 'crashed' });
    l.replays.clear();
    const message = err instanceof Error ? err.message : String(err);
    const waiter = l.spawnWaiter;
    l.spawnWaiter = undefined;
    if (waiter && !l.lastAttempt && !this.closing) {
      // Not started yet: the start loop tries again on another worker.
      r.port = null;
      waiter('retry');
      return;
    }
    this.deps.log.error('session actor died', { sessionId: r.id, error: message });
    await this.setEnded(r, waiter ? 'failed' : 'crashed', `worker died: ${message}`);
    waiter?.('failed');
    this.applyRestartPolicy(r, l);
  }

  private rememberRing(id: string): void {
    this.endedRings.push(id);
    while (this.endedRings.length > ENDED_RINGS_KEPT) {
      const old = this.endedRings.shift()!;
      const ol = this.live.get(old);
      if (ol && !ol.actor && ol.viewers === 0 && !ol.restartTimer) this.live.delete(old);
      else if (ol) ol.ring = undefined;
    }
  }

  private async setEnded(r: SessionRecord, status: SessionStatus, reason: string): Promise<void> {
    r.status = status;
    this.active.delete(r);
    r.reason = reason;
    r.endedAt = new Date().toISOString();
    r.port = null;
    const l = this.live.get(r.id);
    this.revokeCredential(l);
    if (l) r.lastActivityAt = new Date(l.lastActivity).toISOString();
    this.deps.metrics.setRunning(this.counts().running);
    await this.persist(r);
    // Whoever waits for the end (DELETE) hears of it once the record is on disk; the job
    // line is appended first, so a read of the job log from then on has it.
    const logged = this.job(r, reason);
    if (l) for (const w of l.exitWaiters.splice(0)) w();
    await logged;
    this.emit(
      r.id,
      JSON.stringify({ type: 'exit', sessionId: r.id, exitCode: r.exitCode, signal: r.signal, reason: r.reason, status }),
    );
    this.statusChanged(r);
    this.forgetEnded(this.endedKept.ended(r.id));
    for (const fn of this.endedHooks) {
      try {
        fn(r);
      } catch (err) {
        this.deps.log.warn('session-ended hook failed', { sessionId: r.id, error: err as Error });
      }
    }
    if (status === 'completed') void this.event(r, 'session:completed');
    else if (status === 'killed' || status === 'idle_terminated') void this.event(r, 'session:terminated');
    this.deps.log.info('session ended', { sessionId: r.id, status, reason });
    if (!this.closing) void this.admit();
  }

  private applyRestartPolicy(r: SessionRecord, l: Live): void {
    if (this.closing) return;
    const profile = this.deps.profiles.get(r.agent);
    if (!profile || r.type !== 'long_running') return;
    const failed = r.status === 'crashed' || (r.status === 'exited' && r.exitCode !== 0);
    const wanted =
      (profile.restart === 'always' && (r.status === 'crashed' || r.status === 'exited')) || (profile.restart === 'on-failure' && failed);
    if (!wanted) return;
    const stable = l.startedAtMs && Date.now() - l.startedAtMs > RESTART_STABLE_MS;
    const attempt = stable ? 0 : r.restarts;
    this.scheduleRestart(r, Math.min(RESTART_MAX_MS, RESTART_BASE_MS * 2 ** attempt));
  }

  private scheduleRestart(r: SessionRecord, delayMs: number): void {
    const l = this.liveFor(r.id);
    this.deps.log.info('session restart scheduled', { sessionId: r.id, delayMs, restarts: r.restarts + 1 });
    l.restartTimer = setTimeout(() => {
      l.restartTimer = undefined;
      if (this.closing || !isTerminal(r.status)) return;
      r.restarts++;
      const ring = l.ring && l.ring.start + l.ring.bytes.length === r.outputOffset ? l.ring.bytes.slice() : undefined;
      void this.start(r, ring);
    }, delayMs);
    l.restartTimer.unref();
  }

  private statusChanged(r: SessionRecord): void {
    this.emit(r.id, JSON.stringify({ type: 'status', sessionId: r.id, status: r.status }));
    void this.event(r, 'session:updated');
  }

  private async event(r: SessionRecord, name: string): Promise<void> {
    try {
      await this.deps.bus.publish(`org:${r.orgId}`, name, this.view(r));
    } catch (err) {
      this.deps.log.warn('bus publish failed', { error: err as Error });
    }
  }

  /**
   * Persist a record. Writes of one record are chained, and each writes the record as it is
   * when its turn comes, so an older snapshot can never land after a newer one.
   */
  private persist(r: SessionRecord): Promise<void> {
    const prev = this.persistChains.get(r.id) ?? Promise.resolve();
    const next = prev.then(async () => {
      try {
        await this.deps.store.put('sessions', r.id, r);
        this.persistErrors.delete(r.id);
        this.fleet?.recordChanged(r);
      } catch (err) {
        this.persistErrors.set(r.id, err);
        this.deps.log.error('could not persist session', { sessionId: r.id, error: err as Error });
      }
    });
    this.persistChains.set(r.id, next);
    void next.then(() => {
      if (this.persistChains.get(r.id) === next) this.persistChains.delete(r.id);
    });
    return next;
  }

  private readonly persistChains = new Map<string, Promise<void>>();
  /** The last write of a record failed (disk full, read-only): create answers with it. */
  private readonly persistErrors = new Map<string, unknown>();

  private async job(r: SessionRecord, message: string): Promise<void> {
    try {
      await this.deps.store.append('jobs', {
        id: randomUUID(),
        sessionId: r.id,
        orgId: r.orgId,
        userId: r.userId,
        projectName: r.projectName,
        agent: r.agent,
        type: r.type,
        status: r.status,
        exitCode: r.exitCode,
        at: new Date().toISOString(),
        message,
      });
    } catch (err) {
      this.deps.log.error('could not append to the job log', { sessionId: r.id, error: err as Error });
    }
  }

  // ---- shutdown --------------------------------------------------------------------------

  /**
   * Stop every session within `deadlineMs`: kill through the mailbox, then SIGKILL what is
   * left from here; only then destroy the pool (no live pty). Safe to call twice.
   */
  async close(deadlineMs = 2500): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    for (const l of this.live.values()) if (l.restartTimer) clearTimeout(l.restartTimer);
    if (this.usageTimer) clearTimeout(this.usageTimer);
    this.usageDirty.clear();
    for (const q of this.queue.drain()) await this.setEnded(q, 'killed', 'server shutdown');
    const live = [...this.active];
    const waits = live.map((r) => this.terminate(r.id, 'killed', 'server shutdown'));
    await Promise.race([Promise.all(waits), new Promise((resolve) => setTimeout(resolve, deadlineMs))]);
    for (const r of live) {
      if (!isTerminal(r.status)) await this.reapAgent(r);
    }
    // Give the actors a moment to observe the exits and resolve their tasks.
    await Promise.race([
      Promise.all(live.map((r) => this.live.get(r.id)?.actor?.task.catch(() => {}))),
      new Promise((resolve) => setTimeout(resolve, 1000)),
    ]);
    // Whatever did not report in time is recorded from here: never leave a record `running`.
    for (const r of live) {
      if (isTerminal(r.status)) continue;
      const l = this.live.get(r.id);
      if (l) l.run++;
      l?.actor?.close();
      await this.setEnded(r, 'killed', 'server shutdown');
    }
    await this.pool.destroy().catch(() => {});
    await Promise.all([...this.persistChains.values()]);
    // The node's own cgroup directory goes when empty (session cgroups were removed).
    if (this.cgroupBase) await rmdir(this.cgroupBase).catch(() => {});
  }
}
