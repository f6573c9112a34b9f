import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { AppError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Store } from '../store/store.js';
import type { Bus } from '../bus/bus.js';
import type { SessionRecord } from '../supervisor/session.js';
import { isTerminal } from '../supervisor/session.js';
import { EndedRecords } from '../supervisor/ended-records.js';
import type { ReplayResult, Supervisor } from '../supervisor/supervisor.js';

/** Heartbeat period, and the age past which a node counts as dead (survivors mark its sessions lost). */
const HEARTBEAT_MS = 1500;
const DEAD_AFTER_MS = 5000;
/** The heartbeat key's TTL: a node id is "held" this long after its last beat (DESIGN §7: 10 s). */
const NODE_KEY_TTL_MS = 10_000;
/** How often survivors look for dead nodes. */
const REAP_CHECK_MS = 1000;
/** A forwarded command that gets no answer in this time fails with 504. */
const REQUEST_TIMEOUT_MS = 5000;
/** Heals and renewals are short requests; a lost one is retried rather than waited on. */
const HEAL_TIMEOUT_MS = 1500;
/** A node watching a remote session renews its interest this often; the owner forgets it after 3 missed renewals. */
const WATCH_RENEW_MS = 10_000;
const WATCH_EXPIRY_MS = 30_000;
/** A heal that got no answer is tried again after this pause. */
const HEAL_RETRY_MS = 500;

type Op = 'input' | 'resize' | 'signal' | 'terminate' | 'replay' | 'range' | 'watch' | 'unwatch' | 'logs' | 'prompt' | 'cancel' | 'permission';

interface Command {
  reqId?: string;
  from: string;
  op: Op;
  sessionId: string;
  args: Record<string, unknown>;
}

interface Reply {
  reqId: string;
  ok: boolean;
  result?: unknown;
  error?: { code: string; status: number; message: string };
}

/** Handlers the owner node runs for forwarded commands the supervisor cannot run itself. */
export interface FleetLocalOps {
  logs(r: SessionRecord, lines: number): Promise<string>;
  prompt(r: SessionRecord, text: string, attachments: unknown[] | undefined, userId: string): Promise<unknown>;
  cancel(r: SessionRecord): void;
  permission(r: SessionRecord, requestId: string, optionId: string | null): void;
}

interface Watch {
  /** Offset after the last byte published locally. */
  expected: number;
  viewers: number;
  renew: NodeJS.Timeout;
  /** A gap is being healed (or the first replay is on its way). */
  healing: boolean;
  /**
   * Frames that arrived while an answer was on its way. ioredis may hand us the answer and
   * later frames in one go, before the answer's promise settles: they are held, then
   * replayed through the offset check once the answer is applied (never dropped blindly).
   */
  held: Buffer[];
  unreachable: boolean;
}

export interface FleetStats {
  forwardedCommands: number;
  servedCommands: number;
  remoteFramesIn: number;
  framesOut: number;
  lostMarked: number;
  redisRttMs: number | null;
}

/**
 * Several nodes sharing one Redis act as one service (DESIGN §5): heartbeats and the node-id
 * lock, a mirror of the other nodes' session records, commands forwarded to a session's
 * owner (and answered), output streamed to nodes that have viewers of a remote session, gap
 * healing by offset, and survivors marking a dead node's sessions `lost`.
 *
 * Channels (prefix `sm:`): `node:<id>:cmd` commands, `node:<id>:reply` answers,
 * `out:<sessionId>` frames for remote viewers, `sessions` record changes. One publishing and
 * one subscribed connection per node keep every node-to-node stream in order.
 */
export class Fleet {
  private readonly pub: Redis;
  private readonly sub: Redis;
  private readonly remote = new Map<string, SessionRecord>();
  private readonly endedRemote: EndedRecords;
  /** Owner side: session → watching node → expiry. */
  private readonly watchers = new Map<string, Map<string, number>>();
  /** Viewer side: remote sessions this node shows to local viewers. */
  private readonly watching = new Map<string, Watch>();
  private readonly pending = new Map<string, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private readonly instance = randomUUID();
  private heartbeat: NodeJS.Timeout | undefined;
  private reaper: NodeJS.Timeout | undefined;
  private closed = false;
  private up = false;
  localOps: FleetLocalOps | undefined;
  readonly counters: FleetStats = { forwardedCommands: 0, servedCommands: 0, remoteFramesIn: 0, framesOut: 0, lostMarked: 0, redisRttMs: null };

  constructor(
    client: Redis,
    private readonly d: { nodeId: string; url: () => string; prefix: string; sup: Supervisor; store: Store; bus: Bus; log: Logger; endedKept: number },
  ) {
    this.endedRemote = new EndedRecords(d.endedKept);
    const common = { lazyConnect: false, enableOfflineQueue: false, autoResendUnfulfilledCommands: false, maxRetriesPerRequest: 1 };
    this.pub = client.duplicate({ ...common, connectionName: `sm-fleet-pub-${d.nodeId}` });
    this.sub = client.duplicate({ ...common, autoResubscribe: false, connectionName: `sm-fleet-sub-${d.nodeId}` });
    for (const c of [this.pub, this.sub]) c.on('error', (err: Error) => this.d.log.debug('fleet redis error', { error: err }));
    this.sub.on('messageBuffer', (channel: Buffer, message: Buffer) => this.onMessage(channel.toString(), message));
    this.sub.on('ready', () => void this.onReady());
    this.sub.on('close', () => this.onDown());
  }

  private k(name: string): string {
    return `${this.d.prefix}${name}`;
  }

  get isUp(): boolean {
    return this.up;
  }

  // ---- start, heartbeat, id lock ----------------------------------------------------------

  /** Refuse to start while a live node holds our id; then register, subscribe and load the mirror. */
  async start(): Promise<void> {
    await Promise.all([waitReady(this.pub), waitReady(this.sub)]);
    const held = await this.pub.get(this.k(`node:${this.d.nodeId}`));
    if (held) {
      const info = JSON.parse(held) as { beatAt: number; instance: string };
      const age = Date.now() - info.beatAt;
      if (age < NODE_KEY_TTL_MS) {
        throw new Error(
          `NODE_ID: node "${this.d.nodeId}" is held by a live process (last heartbeat ${(age / 1000).toFixed(1)} s ago); wait ${((NODE_KEY_TTL_MS - age) / 1000).toFixed(1)} s or set another NODE_ID`,
        );
      }
    }
    await this.beat();
    await this.pub.sadd(this.k('nodes'), this.d.nodeId);
    await this.d.store.scan<SessionRecord>('sessions', (r) => {
      if (r && r.node !== this.d.nodeId) this.mirror(r);
    });
    this.heartbeat = setInterval(() => void this.beat().catch(() => {}), HEARTBEAT_MS);
    this.heartbeat.unref();
    this.reaper = setInterval(() => void this.reapDeadNodes().catch((err: Error) => this.d.log.debug('reaper failed', { error: err })), REAP_CHECK_MS);
    this.reaper.unref();
  }

  private async beat(): Promise<void> {
    const t0 = performance.now();
    await this.pub.set(this.k(`node:${this.d.nodeId}`), JSON.stringify({ beatAt: Date.now(), instance: this.instance, pid: process.pid, url: this.d.url() }), 'PX', NODE_KEY_TTL_MS);
    this.counters.redisRttMs = Math.round((performance.now() - t0) * 100) / 100;
  }

  private async onReady(): Promise<void> {
    if (this.closed) return;
    try {
      await this.sub.subscribe(this.k(`node:${this.d.nodeId}:cmd`), this.k(`node:${this.d.nodeId}:reply`), this.k('sessions'));
      const outs = [...this.watching.keys()].map((id) => this.k(`out:${id}`));
      if (outs.length) await this.sub.subscribe(...outs);
      const wasDown = !this.up;
      this.up = true;
      this.d.log.info('fleet link up', { watching: this.watching.size });
      if (wasDown) {
        await this.beat().catch(() => {});
        await this.pub.sadd(this.k('nodes'), this.d.nodeId).catch(() => {});
        await this.d.sup.republish().catch(() => {});
        // Heal every watched session: ask for what may have been missed, renew interest.
        for (const [id, w] of this.watching) {
          const r = this.remote.get(id);
          if (!r) continue;
          this.heal(r, w, w.expected);
          if (w.unreachable) {
            w.unreachable = false;
            this.d.sup.deliver(id, JSON.stringify({ type: 'status', sessionId: id, status: r.status }));
          }
        }
      }
    } catch (err) {
      this.d.log.warn('fleet subscribe failed', { error: err as Error });
    }
  }

  private onDown(): void {
    if (!this.up || this.closed) return;
    this.up = false;
    this.d.log.warn('fleet link down; remote sessions unreachable until Redis returns');
    for (const [id, w] of this.watching) {
      w.unreachable = true;
      this.d.sup.deliver(id, JSON.stringify({ type: 'status', sessionId: id, status: 'unreachable' }));
    }
  }

  /** Survivors mark the sessions of a node whose heartbeat stopped `lost` (one survivor per dead node). */
  private async reapDeadNodes(): Promise<void> {
    if (!this.up) return;
    const ids = await this.pub.smembers(this.k('nodes'));
    for (const id of ids) {
      if (id === this.d.nodeId) continue;
      const raw = await this.pub.get(this.k(`node:${id}`));
      const beatAt = raw ? (JSON.parse(raw) as { beatAt: number }).beatAt : 0;
      if (Date.now() - beatAt < DEAD_AFTER_MS) continue;
      const got = await this.pub.set(this.k(`reap:${id}`), this.d.nodeId, 'PX', 15_000, 'NX');
      if (got !== 'OK') continue;
      let n = 0;
      const orphans = new Map<string, SessionRecord>();
      await this.d.store.scan<SessionRecord>('sessions', (r) => {
        if (r && r.node === id && !isTerminal(r.status)) orphans.set(r.id, r);
      });
      for (const r of orphans.values()) {
        r.status = 'lost';
        r.reason = `node ${id} stopped heartbeating`;
        r.endedAt = new Date().toISOString();
        await this.d.store.put('sessions', r.id, r);
        this.mirror(r);
        await this.pub.publish(this.k('sessions'), JSON.stringify(r));
        await this.d.bus.publish(`org:${r.orgId}`, 'session:updated', r).catch(() => {});
        await this.d.store.append('jobs', { id: randomUUID(), sessionId: r.id, orgId: r.orgId, userId: r.userId, projectName: r.projectName, agent: r.agent, type: r.type, status: 'lost', exitCode: null, at: r.endedAt, message: r.reason });
        const w = this.watching.get(r.id);
        if (w) this.d.sup.deliver(r.id, JSON.stringify({ type: 'exit', sessionId: r.id, exitCode: null, signal: null, reason: r.reason, status: 'lost' }));
        n++;
      }
      this.counters.lostMarked += n;
      await this.pub.srem(this.k('nodes'), id);
      this.d.log.warn('node stopped heartbeating; its sessions are lost', { deadNode: id, sessions: n });
    }
  }

  // ---- mirror of other nodes' records -----------------------------------------------------

  /**
   * Keep another node's record; of its ended sessions only the newest stay (as for local
   * ones: the rest are read from the shared store by id).
   */
  private mirror(r: SessionRecord): void {
    this.remote.set(r.id, r);
    if (!isTerminal(r.status)) return this.endedRemote.revived(r.id);
    for (const id of this.endedRemote.ended(r.id)) {
      const old = this.remote.get(id);
      if (old && isTerminal(old.status) && !this.watching.has(id)) this.remote.delete(id);
    }
  }

  get(id: string): SessionRecord | undefined {
    return this.remote.get(id);
  }

  list(): SessionRecord[] {
    return [...this.remote.values()];
  }

  /** Owner side: a local record changed; other nodes update their mirror. */
  recordChanged(r: SessionRecord): void {
    if (!this.up) return;
    this.pub.publish(this.k('sessions'), JSON.stringify(r)).catch(() => {});
  }

  // ---- owner side: frames for remote watchers ---------------------------------------------

  /** Publish a session frame to the nodes watching it (output frames carry their offsets). */
  frame(id: string, frame: Uint8Array | string, offset?: number, end?: number): void {
    const w = this.watchers.get(id);
    if (!w || w.size === 0 || !this.up) return;
    const now = Date.now();
    for (const [node, exp] of w) if (exp < now) w.delete(node);
    if (w.size === 0) return;
    const head = offset === undefined ? 's|' : `o|${offset}|${end}|`;
    const body = typeof frame === 'string' ? Buffer.from(frame) : Buffer.from(frame.buffer, frame.byteOffset, frame.length);
    this.counters.framesOut++;
    this.pub.publish(this.k(`out:${id}`), Buffer.concat([Buffer.from(head), body])).catch(() => {});
  }

  // ---- viewer side ------------------------------------------------------------------------

  /** Forward a command without waiting (input, resize, signal: ordered per node pair). */
  send(r: SessionRecord, op: Op, args: Record<string, unknown>): void {
    if (!this.up) throw new AppError('SM_ERR_OWNER_UNREACHABLE');
    this.counters.forwardedCommands++;
    const cmd: Command = { from: this.d.nodeId, op, sessionId: r.id, args };
    this.pub.publish(this.k(`node:${r.node}:cmd`), JSON.stringify(cmd)).catch(() => {});
  }

  /** Forward a command and wait for the owner's answer. */
  request<T>(r: SessionRecord, op: Op, args: Record<string, unknown>, timeoutMs = REQUEST_TIMEOUT_MS): Promise<T> {
    if (!this.up) return Promise.reject(new AppError('SM_ERR_OWNER_UNREACHABLE'));
    this.counters.forwardedCommands++;
    const reqId = randomUUID();
    const cmd: Command = { reqId, from: this.d.nodeId, op, sessionId: r.id, args };
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(reqId);
        reject(new AppError('SM_ERR_OWNER_UNREACHABLE', `Node "${r.node}" did not answer within ${timeoutMs} ms.`));
      }, timeoutMs);
      this.pending.set(reqId, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.pub.publish(this.k(`node:${r.node}:cmd`), JSON.stringify(cmd)).catch((err: Error) => {
        clearTimeout(timer);
        this.pending.delete(reqId);
        reject(new AppError('SM_ERR_OWNER_UNREACHABLE', undefined, { cause: err }));
      });
    });
  }

  /** Attach a local viewer to a remote session: watch it, then ask the owner for the replay. */
  replay(r: SessionRecord, since: number | undefined, cb: (res: ReplayResult) => void, mode?: 'screen'): void {
    const w = this.watch(r.id);
    const first = w.expected < 0;
    if (first) w.healing = true;
    this.request<WireReplay>(r, 'replay', { since, mode }).then(
      (res) => {
        if (w.expected < 0 || res.end > w.expected) w.expected = res.end;
        // The viewer subscribes in `cb`; frames held meanwhile follow it, in offset order.
        cb({ offset: res.offset, end: res.end, gap: res.gap, frame: res.frame, status: res.status, screen: res.screen });
        if (first) this.release(r.id, w);
      },
      () => {
        cb({ offset: since ?? 0, end: since ?? 0, gap: true, frame: null, status: r.status });
        if (first) this.release(r.id, w);
      },
    );
  }

  viewerJoined(id: string): void {
    const w = this.watching.get(id);
    if (w) w.viewers++;
  }

  viewerLeft(id: string): void {
    const w = this.watching.get(id);
    if (!w) return;
    w.viewers--;
    if (w.viewers > 0) return;
    clearInterval(w.renew);
    this.watching.delete(id);
    this.sub.unsubscribe(this.k(`out:${id}`)).catch(() => {});
    const r = this.remote.get(id);
    if (r && this.up) this.send(r, 'unwatch', {});
  }

  private watch(id: string): Watch {
    let w = this.watching.get(id);
    if (w) return w;
    const renew = setInterval(() => {
      const r = this.remote.get(id);
      if (r && this.up) this.send(r, 'watch', {});
    }, WATCH_RENEW_MS);
    renew.unref();
    w = { expected: -1, viewers: 0, renew, healing: false, unreachable: false, held: [] };
    this.watching.set(id, w);
    this.sub.subscribe(this.k(`out:${id}`)).catch(() => {});
    return w;
  }

  /** Ask the owner for the bytes from `from` on; publish them locally, then continue live. */
  private heal(r: SessionRecord, w: Watch, from: number): void {
    if (w.healing || from < 0) return;
    w.healing = true;
    this.d.log.info('fleet: healing a gap in a remote session', { sessionId: r.id, from });
    this.request<WireReplay>(r, 'range', { since: from }, HEAL_TIMEOUT_MS).then(
      (res) => {
        if (res.frame && res.end > w.expected) {
          // The answer may start before `from` only if the ring lost the range (gap).
          this.d.sup.deliver(r.id, res.frame);
        }
        if (res.end > w.expected) w.expected = res.end;
        this.release(r.id, w);
      },
      (err: unknown) => {
        this.release(r.id, w);
        this.d.log.warn('fleet: gap not healed yet; retrying', { sessionId: r.id, from, error: err as Error });
        // The owner may not have re-subscribed yet after an outage: try again while watched.
        setTimeout(() => {
          if (this.watching.get(r.id) === w && this.up) this.heal(r, w, w.expected);
        }, HEAL_RETRY_MS).unref();
      },
    );
  }

  /** An answer was applied: replay the frames held meanwhile through the offset checks. */
  private release(id: string, w: Watch): void {
    w.healing = false;
    const held = w.held;
    w.held = [];
    for (const m of held) this.onFrame(id, m);
  }

  // ---- incoming messages ------------------------------------------------------------------

  private onMessage(channel: string, message: Buffer): void {
    const name = channel.slice(this.d.prefix.length);
    try {
      if (name.startsWith('out:')) return this.onFrame(name.slice(4), message);
      if (name === 'sessions') {
        const r = JSON.parse(message.toString()) as SessionRecord;
        if (r.node !== this.d.nodeId) this.mirror(r);
        return;
      }
      if (name.endsWith(':reply')) {
        const rep = JSON.parse(message.toString()) as Reply;
        const p = this.pending.get(rep.reqId);
        if (!p) return;
        this.pending.delete(rep.reqId);
        clearTimeout(p.timer);
        if (rep.ok) p.resolve(rep.result);
        else p.reject(new RemoteError(rep.error!));
        return;
      }
      if (name.endsWith(':cmd')) void this.serve(JSON.parse(message.toString()) as Command);
    } catch (err) {
      this.d.log.warn('fleet message not handled', { channel: name, error: err as Error });
    }
  }

  private onFrame(id: string, message: Buffer): void {
    const w = this.watching.get(id);
    if (!w) return;
    this.counters.remoteFramesIn++;
    if (message[0] === 0x73 /* s */) {
      const frame = message.subarray(2).toString();
      this.d.sup.deliver(id, frame);
      return;
    }
    // o|<offset>|<end>|<frame>
    const a = message.indexOf(0x7c, 2);
    const b = message.indexOf(0x7c, a + 1);
    const offset = Number(message.subarray(2, a).toString());
    const end = Number(message.subarray(a + 1, b).toString());
    if (w.healing) {
      w.held.push(message);
      return;
    }
    if (end <= w.expected) return; // a repeat
    if (w.expected >= 0 && offset > w.expected) {
      const r = this.remote.get(id);
      if (r) this.heal(r, w, w.expected);
      return;
    }
    w.expected = end;
    this.d.sup.deliver(id, message.subarray(b + 1));
  }

  /** Owner side: run a forwarded command and answer it. */
  private async serve(cmd: Command): Promise<void> {
    this.counters.servedCommands++;
    const answer = (rep: Omit<Reply, 'reqId'>) => {
      if (!cmd.reqId) return;
      this.pub.publish(this.k(`node:${cmd.from}:reply`), JSON.stringify({ reqId: cmd.reqId, ...rep })).catch(() => {});
    };
    const sup = this.d.sup;
    const r = sup.getLocal(cmd.sessionId);
    try {
      if (!r) throw new AppError('SM_ERR_SESSION_NOT_FOUND');
      const a = cmd.args;
      switch (cmd.op) {
        case 'input':
          sup.input(r.id, String(a.data));
          return answer({ ok: true });
        case 'resize':
          sup.resize(r.id, Number(a.cols), Number(a.rows));
          return answer({ ok: true });
        case 'signal':
          sup.signal(r.id, a.signal as NodeJS.Signals);
          return answer({ ok: true });
        case 'terminate': {
          const rec = await sup.terminate(r.id, a.as as 'killed', a.message as string | undefined, (a.extra as Record<string, never>) ?? {});
          return answer({ ok: true, result: rec });
        }
        case 'watch':
          this.addWatcher(r.id, cmd.from);
          return answer({ ok: true });
        case 'unwatch':
          this.watchers.get(r.id)?.delete(cmd.from);
          return answer({ ok: true });
        case 'replay':
        case 'range':
          sup.replay(
            r.id,
            a.since as number | undefined,
            (res) => {
              // Registered inside the mailbox callback: every later frame reaches the watcher.
              if (cmd.op === 'replay') this.addWatcher(r.id, cmd.from);
              const frame = res.frame === null ? null : typeof res.frame === 'string' ? res.frame : Buffer.from(res.frame).toString();
              answer({ ok: true, result: { offset: res.offset, end: res.end, gap: res.gap, status: res.status, frame, screen: res.screen } satisfies WireReplay });
            },
            a.mode === 'screen' ? 'screen' : undefined,
          );
          return;
        case 'logs':
          return answer({ ok: true, result: await this.localOps!.logs(r, Number(a.lines)) });
        case 'prompt':
          return answer({ ok: true, result: await this.localOps!.prompt(r, String(a.text), a.attachments as unknown[] | undefined, String(a.userId)) });
        case 'cancel':
          this.localOps!.cancel(r);
          return answer({ ok: true });
        case 'permission':
          this.localOps!.permission(r, String(a.requestId), (a.optionId as string | null) ?? null);
          return answer({ ok: true });
      }
    } catch (err) {
      const e = err instanceof AppError ? err : new AppError('SM_ERR_INTERNAL');
      answer({ ok: false, error: { code: e.code, status: e.status, message: e.message } });
    }
  }

  private addWatcher(id: string, node: string): void {
    let w = this.watchers.get(id);
    if (!w) this.watchers.set(id, (w = new Map()));
    w.set(node, Date.now() + WATCH_EXPIRY_MS);
  }

  stats(): FleetStats & { up: boolean; remoteSessions: number; watching: number; watchedByOthers: number } {
    return { ...this.counters, up: this.up, remoteSessions: this.remote.size, watching: this.watching.size, watchedByOthers: this.watchers.size };
  }

  /** Leave the fleet: drop the heartbeat (the id is free at once), close the connections. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    if (this.reaper) clearInterval(this.reaper);
    for (const w of this.watching.values()) clearInterval(w.renew);
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new AppError('SM_ERR_SHUTTING_DOWN'));
    }
    try {
      await this.pub.del(this.k(`node:${this.d.nodeId}`));
      await this.pub.srem(this.k('nodes'), this.d.nodeId);
    } catch {
      // Redis away: the key expires by itself.
    }
    this.sub.disconnect(false);
    this.pub.disconnect(false);
  }
}

interface WireReplay {
  offset: number;
  end: number;
  gap: boolean;
  status: SessionRecord['status'];
  frame: string | null;
  screen?: { data: string; cols: number; rows: number } | undefined;
}

/** An error answered by the owner node, with its code and status. */
class RemoteError extends AppError {
  constructor(e: { code: string; status: number; message: string }) {
    super('SM_ERR_INTERNAL', e.message);
    (this as { code: string }).code = e.code;
    (this as { status: number }).status = e.status;
  }
}

function waitReady(c: Redis): Promise<void> {
  if (c.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('redis connection not ready')), 5000);
    c.once('ready', () => {
      clearTimeout(t);
      resolve();
    });
  });
}
