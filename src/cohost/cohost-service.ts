import { AppError } from '../errors.js';
import type { Principal } from '../auth/principal.js';
import type { Bus } from '../bus/bus.js';
import type { Logger } from '../log.js';
import type { Store } from '../store/store.js';
import { hashToken, looksLikeId, looksLikeToken, newToken, tokenIdOf, tokenMatches } from './tokens.js';

/** Store collection of share-link records (one document per token id). */
export const COHOST_COLLECTION = 'cohost';
/** Bus topic (and event name) of revocations, so every node cuts its own guests. */
export const COHOST_REVOKED_TOPIC = 'cohost:revoked';
/** Default lifetime of a share link (issue 5: 24 h). */
export const COHOST_DEFAULT_EXPIRY_MS = 24 * 60 * 60 * 1000;
/** Default of `COHOST_MAX_EXPIRY_MS`, the longest lifetime a host may ask for (config.ts). */
export const COHOST_MAX_EXPIRY_MS = 7 * 24 * 60 * 60 * 1000;
/** Shortest lifetime: below a second a link is useless and only tests would ask. */
export const COHOST_MIN_EXPIRY_MS = 1000;
/** Ended (expired or revoked) records are kept this long for the host's list, then purged at boot. */
const ENDED_RETENTION_MS = 7 * 24 * 60 * 60 * 1000;
/** setTimeout's ceiling (about 24.8 days); longer waits are re-armed. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** One share link as stored: the token itself never is, only its SHA-256. */
export interface CohostRecord {
  id: string;
  tokenHash: string;
  orgId: string;
  projectName: string;
  hostUserId: string;
  createdAt: string;
  expiresAt: string;
  revokedAt?: string;
  revokedBy?: string;
}

export type CohostStatus = 'active' | 'expired' | 'revoked';

/** What the host's list shows: never the token or its hash. */
export interface CohostView {
  id: string;
  orgId: string;
  projectName: string;
  hostUserId: string;
  createdAt: string;
  expiresAt: string;
  revokedAt?: string;
  status: CohostStatus;
  /** Guests connected to this node now. */
  guests: number;
}

/** What the service needs from the editor sockets (EditorSockets satisfies it). */
export interface GuestSockets {
  guestCount(tokenId: string): number;
  closeGuests(tokenId: string): number;
}

export interface CohostDeps {
  store: Store;
  bus: Bus;
  sockets: GuestSockets;
  log: Logger;
  nodeId: string;
  now?: () => number;
}

export function statusOf(r: CohostRecord, now: number): CohostStatus {
  if (r.revokedAt) return 'revoked';
  return Date.parse(r.expiresAt) <= now ? 'expired' : 'active';
}

/**
 * View-only share links (DESIGN §3, §4). Tokens are 32 random bytes shown once; records
 * hold their hash, so a copy of DATA_DIR cannot be replayed as a link. A record is found
 * by an id derived from the token, so resolving needs no in-memory index and works on any
 * node that shares the store. Guests are cut at revocation (on every node, through the
 * bus) and at expiry (a timer per active link on this node).
 */
export class CohostService {
  private readonly expiryTimers = new Map<string, NodeJS.Timeout>();
  private offBus: (() => void) | undefined;
  private closed = false;
  private readonly now: () => number;

  constructor(private readonly d: CohostDeps) {
    this.now = d.now ?? Date.now;
  }

  /** Load records: purge long-ended ones, arm expiry for active ones, listen for revocations. */
  async init(): Promise<void> {
    const now = this.now();
    const all = await this.d.store.list<CohostRecord>(COHOST_COLLECTION);
    for (const r of all) {
      if (!r || typeof r.id !== 'string' || !looksLikeId(r.id)) continue;
      const st = statusOf(r, now);
      if (st === 'active') this.armExpiry(r);
      else {
        const endedAt = Date.parse(r.revokedAt ?? r.expiresAt);
        if (now - endedAt > ENDED_RETENTION_MS) await this.d.store.delete(COHOST_COLLECTION, r.id).catch(() => false);
      }
    }
    this.offBus = this.d.bus.subscribe(COHOST_REVOKED_TOPIC, (ev) => {
      const id = (ev.payload as { tokenId?: unknown } | undefined)?.tokenId;
      if (typeof id !== 'string' || !looksLikeId(id)) return;
      this.disarm(id);
      this.d.sockets.closeGuests(id);
    });
  }

  async create(host: Principal, orgId: string, projectName: string, expiresInMs: number = COHOST_DEFAULT_EXPIRY_MS): Promise<{ token: string; record: CohostRecord }> {
    if (this.closed) throw new AppError('SM_ERR_SHUTTING_DOWN');
    const token = newToken();
    const now = this.now();
    const record: CohostRecord = {
      id: tokenIdOf(token),
      tokenHash: hashToken(token),
      orgId,
      projectName,
      hostUserId: host.userId,
      createdAt: new Date(now).toISOString(),
      expiresAt: new Date(now + expiresInMs).toISOString(),
    };
    await this.d.store.put(COHOST_COLLECTION, record.id, record);
    this.armExpiry(record);
    this.d.log.info('cohost link created', { tokenId: record.id, orgId, projectName, hostUserId: host.userId, expiresAt: record.expiresAt });
    return { token, record };
  }

  /** The active record of a raw token; undefined for unknown, expired or revoked alike. */
  async resolve(raw: string): Promise<CohostRecord | undefined> {
    if (typeof raw !== 'string' || !looksLikeToken(raw)) return undefined;
    const r = await this.d.store.get<CohostRecord>(COHOST_COLLECTION, tokenIdOf(raw));
    if (!r || !tokenMatches(raw, r.tokenHash)) return undefined;
    return statusOf(r, this.now()) === 'active' ? r : undefined;
  }

  /** The guest principal for `/ws?cohost=` and `?cohost=` on HTTP routes; 401 otherwise. */
  async principal(raw: string): Promise<Principal> {
    const r = await this.resolve(raw);
    if (!r) throw new AppError('SM_ERR_UNAUTHORIZED', 'The share link is unknown, expired or revoked.');
    return {
      kind: 'guest',
      userId: `guest:${r.id}`,
      orgId: r.orgId,
      roles: [],
      scope: { orgId: r.orgId, projectName: r.projectName, tokenId: r.id },
      token: raw,
    };
  }

  /** The record named by a raw token or by its id (as in the host's list), whatever its status. */
  async find(tokenOrId: string): Promise<CohostRecord | undefined> {
    if (looksLikeId(tokenOrId)) return this.d.store.get<CohostRecord>(COHOST_COLLECTION, tokenOrId);
    if (!looksLikeToken(tokenOrId)) return undefined;
    const r = await this.d.store.get<CohostRecord>(COHOST_COLLECTION, tokenIdOf(tokenOrId));
    return r && tokenMatches(tokenOrId, r.tokenHash) ? r : undefined;
  }

  /** Mark revoked, cut this node's guests at once (4003) and tell the other nodes. */
  async revoke(r: CohostRecord, by: Principal): Promise<{ guestsClosed: number }> {
    r.revokedAt = new Date(this.now()).toISOString();
    r.revokedBy = by.userId;
    await this.d.store.put(COHOST_COLLECTION, r.id, r);
    this.disarm(r.id);
    const guestsClosed = this.d.sockets.closeGuests(r.id);
    try {
      await this.d.bus.publish(COHOST_REVOKED_TOPIC, COHOST_REVOKED_TOPIC, { tokenId: r.id, orgId: r.orgId, projectName: r.projectName, node: this.d.nodeId });
    } catch (err) {
      this.d.log.warn('could not publish a cohost revocation', { tokenId: r.id, error: err as Error });
    }
    this.d.log.info('cohost link revoked', { tokenId: r.id, by: by.userId, guestsClosed });
    return { guestsClosed };
  }

  /** A host's links, newest first; ended ones only with `includeEnded`. */
  async listByHost(hostUserId: string, includeEnded: boolean): Promise<CohostView[]> {
    const all = await this.d.store.list<CohostRecord>(COHOST_COLLECTION);
    return all
      .filter((r) => r && r.hostUserId === hostUserId)
      .map((r) => this.view(r))
      .filter((v) => includeEnded || v.status === 'active')
      .sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0));
  }

  view(r: CohostRecord): CohostView {
    const v: CohostView = {
      id: r.id,
      orgId: r.orgId,
      projectName: r.projectName,
      hostUserId: r.hostUserId,
      createdAt: r.createdAt,
      expiresAt: r.expiresAt,
      status: statusOf(r, this.now()),
      guests: this.d.sockets.guestCount(r.id),
    };
    if (r.revokedAt) v.revokedAt = r.revokedAt;
    return v;
  }

  /** Stop timers and the bus subscription. Safe to call twice. */
  close(): void {
    this.closed = true;
    for (const t of this.expiryTimers.values()) clearTimeout(t);
    this.expiryTimers.clear();
    this.offBus?.();
    this.offBus = undefined;
  }

  /** At expiry the link's guests are cut as at revocation (a guest must not outlive its link). */
  private armExpiry(r: CohostRecord): void {
    if (this.closed) return;
    this.disarm(r.id);
    const wait = Date.parse(r.expiresAt) - this.now();
    const t = setTimeout(() => {
      this.expiryTimers.delete(r.id);
      if (Date.parse(r.expiresAt) > this.now()) return this.armExpiry(r);
      const n = this.d.sockets.closeGuests(r.id);
      if (n > 0) this.d.log.info('cohost link expired; guests closed', { tokenId: r.id, guestsClosed: n });
    }, Math.max(0, Math.min(wait, MAX_TIMER_MS)));
    t.unref();
    this.expiryTimers.set(r.id, t);
  }

  private disarm(id: string): void {
    const t = this.expiryTimers.get(id);
    if (t) clearTimeout(t);
    this.expiryTimers.delete(id);
  }
}
