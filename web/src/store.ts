import { Api, TERMINAL_STATUSES, type SessionView } from './api.js';
import type { Credentials } from './auth.js';
import type { Socket } from './socket.js';

/** Status order: a record never goes back (an event may overtake a list answer). */
const RANK: Record<string, number> = { queued: 0, starting: 1, running: 2 };
const rank = (s: string) => (TERMINAL_STATUSES.has(s) ? 3 : (RANK[s] ?? 0));

/** What a share link lets a guest watch (GET /api/cohost/:token), when the route exists. */
export interface GuestScope {
  orgId: string | undefined;
  projectName: string | undefined;
  expiresAt: string | undefined;
  host?: string | undefined;
}

/**
 * The sessions the page knows, kept live by `org:<orgId>` events (`session:created`,
 * `session:updated`) — no polling. Admins watch every org they have seen. After a reconnect
 * the list is fetched once again to cover events sent while the socket was down.
 */
export class SessionStore {
  readonly sessions = new Map<string, SessionView>();
  readonly orgs = new Set<string>();
  guest: GuestScope | undefined;
  loaded = false;
  error: string | undefined;
  private readonly listeners = new Set<() => void>();
  private readonly eventListeners = new Set<(name: string, s: SessionView) => void>();

  constructor(private readonly api: Api, private readonly socket: Socket, private readonly creds: Credentials) {
    socket.onOpen(() => {
      if (this.loaded) void this.load();
    });
  }

  onChange(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Every session event as it arrives (jobs view refreshes on them). */
  onEvent(fn: (name: string, s: SessionView) => void): () => void {
    this.eventListeners.add(fn);
    return () => this.eventListeners.delete(fn);
  }

  private changed(): void {
    for (const fn of [...this.listeners]) fn();
  }

  async load(): Promise<void> {
    try {
      if (this.creds.kind === 'cohost') await this.loadGuest();
      else {
        if (this.creds.claims.orgId) this.watchOrg(this.creds.claims.orgId);
        const list = await this.api.get<{ items: SessionView[] }>('/api/sessions');
        for (const s of list.items) this.upsert(s, true);
        // Sessions that vanished from the server (another node's restart) are dropped.
        const ids = new Set(list.items.map((s) => s.id));
        for (const id of [...this.sessions.keys()]) if (!ids.has(id)) this.sessions.delete(id);
      }
      this.error = undefined;
    } catch (err) {
      this.error = (err as Error).message;
    }
    this.loaded = true;
    this.changed();
  }

  private async loadGuest(): Promise<void> {
    const creds = this.creds as Extract<Credentials, { kind: 'cohost' }>;
    let items: SessionView[] | undefined;
    try {
      const info = await this.api.get<Record<string, unknown>>(`/api/cohost/${encodeURIComponent(creds.cohost)}`);
      const project = (info.project ?? {}) as Record<string, unknown>;
      this.guest = {
        orgId: str(info.orgId) ?? str(project.orgId),
        projectName: str(info.projectName) ?? str(project.projectName) ?? str(info.project),
        expiresAt: str(info.expiresAt),
      };
      this.guest.host = str(info.host);
      const list = info.sessions ?? info.liveSessions;
      if (Array.isArray(list)) {
        // The share link's answer is brief: fill in what the link itself says.
        items = list
          .filter((s): s is SessionView => typeof s === 'object' && s !== null && typeof (s as SessionView).id === 'string')
          .map((s) => ({ ...s, orgId: s.orgId ?? this.guest?.orgId ?? '', projectName: s.projectName ?? this.guest?.projectName ?? '', userId: s.userId ?? this.guest?.host ?? '' }));
      }
    } catch (err) {
      // 404: revoked, expired or no share-link routes here; the session list below tells which.
      if ((err as { status?: number }).status !== 404) throw err;
    }
    if (!items) {
      const list = await this.api.get<{ items: SessionView[] }>('/api/sessions');
      items = list.items.filter((s) => !this.guest?.projectName || s.projectName === this.guest.projectName);
    }
    for (const s of items) this.upsert(s, true);
  }

  /** Subscribe to an org's session events (once). */
  watchOrg(orgId: string): void {
    if (this.creds.kind !== 'token' || this.orgs.has(orgId)) return;
    if (!this.creds.admin && this.creds.claims.orgId !== orgId) return;
    this.orgs.add(orgId);
    this.socket.subscribe(`org:${orgId}`, (name, payload) => {
      // Usage and viewer counts arrive batched per org: {items: [session views]}.
      if (name === 'sessions:usage' && payload && Array.isArray((payload as { items?: unknown }).items)) {
        for (const s of (payload as { items: SessionView[] }).items) if (s && typeof s.id === 'string') this.upsert(s);
        return;
      }
      if (!payload || typeof payload !== 'object' || typeof (payload as SessionView).id !== 'string') return;
      const s = payload as SessionView;
      if (name === 'session:created' || name === 'session:updated' || name === 'session:usage') this.upsert(s);
      for (const fn of [...this.eventListeners]) fn(name, s);
    });
  }

  /** Take a newer view of a session; `fromList` answers lose to events already applied. */
  upsert(s: SessionView, fromList = false): void {
    const old = this.sessions.get(s.id);
    if (old && rank(s.status) < rank(old.status)) return;
    if (old && fromList && rank(s.status) === rank(old.status) && old.status !== s.status) return;
    this.sessions.set(s.id, old ? { ...old, ...s } : s);
    if (this.creds.kind === 'token' && this.creds.admin) this.watchOrg(s.orgId);
    this.changed();
  }

  list(): SessionView[] {
    return [...this.sessions.values()].sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0));
  }
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v ? v : undefined;
}
