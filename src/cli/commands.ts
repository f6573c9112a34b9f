import { ApiClient } from './http.js';
import { attachTerminal } from './attach.js';
import { CliError, EXIT } from './errors.js';
import { age, bytes, command, cpu, keyValues, status, table } from './format.js';
import { SessionStream } from './stream.js';
import type { Target } from './connection.js';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const TERMINAL = new Set(['exited', 'failed', 'killed', 'crashed', 'idle_terminated', 'lost']);
/** A short id must be at least this long to be looked up as a prefix. */
const MIN_PREFIX = 4;

export interface Flags {
  json: boolean;
  org?: string | undefined;
  agent?: string | undefined;
  command?: string | undefined;
  priority?: string | undefined;
  lines?: string | undefined;
  follow: boolean;
  noEnter: boolean;
  status?: string | undefined;
  project?: string | undefined;
  limit?: string | undefined;
  wait: boolean;
  attach: boolean;
}

export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

type Session = Record<string, any>;

export class Commands {
  private readonly api: ApiClient;

  constructor(private readonly target: Target, private readonly flags: Flags, private readonly io: Io) {
    this.api = new ApiClient(target);
  }

  private json(v: unknown): void {
    this.io.out(JSON.stringify(v, null, 2) + '\n');
  }

  /** A full id, or a unique prefix of one (as `docker` and `git` accept). */
  async resolveId(raw: string | undefined): Promise<string> {
    if (!raw) throw new CliError(EXIT.USAGE, 'a session id is required');
    if (UUID_RE.test(raw)) return raw.toLowerCase();
    if (!/^[0-9a-f-]+$/i.test(raw) || raw.length < MIN_PREFIX) throw new CliError(EXIT.USAGE, `"${raw}" is not a session id (a UUID, or at least ${MIN_PREFIX} of its first characters)`);
    const list = await this.api.get<{ items: Session[] }>('/api/sessions');
    const hits = list.items.filter((s) => String(s.id).startsWith(raw.toLowerCase()));
    if (hits.length === 1) return hits[0]!.id as string;
    if (hits.length === 0) throw new CliError(EXIT.NOT_FOUND, `no session id starts with "${raw}"`);
    throw new CliError(EXIT.USAGE, `"${raw}" matches ${hits.length} sessions: ${hits.slice(0, 5).map((s) => s.id).join(', ')}${hits.length > 5 ? ', …' : ''}`);
  }

  async list(): Promise<number> {
    const q = new URLSearchParams();
    if (this.flags.org) q.set('orgId', this.flags.org);
    if (this.flags.project) q.set('projectName', this.flags.project);
    if (this.flags.status) q.set('status', this.flags.status);
    const res = await this.api.get<{ items: Session[]; total?: number }>(`/api/sessions${q.size ? `?${q}` : ''}`);
    if (this.flags.json) {
      this.json(res);
      return EXIT.OK;
    }
    if (!res.items.length) {
      this.io.out('no sessions\n');
      return EXIT.OK;
    }
    this.io.out(table(
      ['ID', 'STATUS', 'AGENT', 'PROJECT', 'USER', 'AGE', 'CPU', 'RSS', 'VIEWERS'],
      res.items.map((s) => [
        String(s.id).slice(0, 8),
        status(s.status === 'queued' && s.queuePosition ? `queued#${s.queuePosition}` : s.status) + (TERMINAL.has(s.status) && s.exitCode !== null && s.exitCode !== undefined ? `(${s.exitCode})` : ''),
        s.agent,
        `${s.orgId}/${s.projectName}`,
        s.userId,
        age(s.createdAt),
        cpu(s.usage?.cpuMs),
        bytes(s.usage?.rssBytes),
        String(s.viewers ?? 0),
      ]),
    ));
    return EXIT.OK;
  }

  async show(raw: string | undefined): Promise<number> {
    const id = await this.resolveId(raw);
    const s = await this.api.get<Session>(`/api/sessions/${id}`);
    if (this.flags.json) {
      this.json(s);
      return EXIT.OK;
    }
    this.io.out(keyValues([
      ['id', s.id],
      ['status', status(s.status) + (s.queuePosition ? ` (position ${s.queuePosition})` : '')],
      ['agent', s.agent],
      ['type', s.type === 'one_off' ? 'one-off' : 'long-running'],
      ['command', command(s.command)],
      ['org', s.orgId],
      ['project', s.projectName],
      ['user', s.userId],
      ['workspace', s.workspacePath],
      ['created', `${s.createdAt} (${age(s.createdAt)} ago)`],
      ['started', s.startedAt],
      ['ended', s.endedAt],
      ['exit code', s.exitCode],
      ['signal', s.signal],
      ['reason', s.reason],
      ['pid', s.pid],
      ['port', s.port],
      ['size', `${s.cols}x${s.rows}`],
      ['viewers', s.viewers ?? 0],
      ['restarts', s.restarts || undefined],
      ['cpu', cpu(s.usage?.cpuMs)],
      ['rss', bytes(s.usage?.rssBytes)],
      ['output', s.outputOffset !== undefined ? `${s.outputOffset} bytes` : undefined],
    ]));
    return EXIT.OK;
  }

  private async createSession(body: Record<string, unknown>): Promise<Session> {
    if (this.flags.org) body.orgId = this.flags.org;
    if (this.flags.priority !== undefined) {
      const p = Number(this.flags.priority);
      if (!Number.isInteger(p)) throw new CliError(EXIT.USAGE, '--priority must be an integer');
      body.priority = p;
    }
    if (process.stdout.isTTY && process.stdout.columns && process.stdout.rows) {
      body.cols = process.stdout.columns;
      body.rows = process.stdout.rows;
    }
    return this.api.request<Session>('POST', '/api/sessions', body);
  }

  private announce(s: Session): void {
    if (this.flags.json) return this.json(s);
    const where = s.status === 'queued' ? `queued at position ${s.queuePosition ?? '?'}` : s.status;
    this.io.out(`${s.id} ${where}\n`);
  }

  async create(project: string | undefined): Promise<number> {
    if (!project) throw new CliError(EXIT.USAGE, 'create needs a project name: session-manager create <project> [--agent A] [--command C] [--org O]');
    const body: Record<string, unknown> = { projectName: project, agent: this.flags.agent ?? 'bash' };
    if (this.flags.command) body.command = this.flags.command;
    const s = await this.createSession(body);
    if (this.flags.attach) return this.attach(s.id as string);
    this.announce(s);
    return EXIT.OK;
  }

  async oneOff(project: string | undefined, cmd: string[]): Promise<number> {
    if (!project || cmd.length === 0) throw new CliError(EXIT.USAGE, 'one-off needs a project and a command: session-manager one-off <project> <command…>');
    const body: Record<string, unknown> = { projectName: project, agent: this.flags.agent ?? 'script', command: cmd.join(' ') };
    const s = await this.createSession(body);
    if (!this.flags.wait) {
      this.announce(s);
      return EXIT.OK;
    }
    if (!this.flags.json) this.io.err(`${s.id} ${s.status}\n`);
    const stream = new SessionStream({ target: this.target, sessionId: s.id, write: (d) => this.io.out(d), notice: (t) => this.io.err(t + '\n') });
    stream.start();
    const end = await stream.done;
    if (end.how !== 'exited') return EXIT.OK;
    const final = await this.api.get<Session>(`/api/sessions/${s.id}`);
    if (this.flags.json) this.json(final);
    if (typeof final.exitCode === 'number') return final.exitCode;
    return final.status === 'exited' ? EXIT.OK : EXIT.FAILURE;
  }

  async send(raw: string | undefined, text: string[]): Promise<number> {
    const id = await this.resolveId(raw);
    const data = text.join(' ');
    if (text.length === 0 || (!data && this.flags.noEnter)) throw new CliError(EXIT.USAGE, 'send needs text: session-manager send <id> <text…> [--no-enter] ("" alone presses Enter)');
    // An empty text with Enter is a bare Enter key.
    const body = data ? { data, enter: !this.flags.noEnter } : { data: '\r', enter: false };
    const res = await this.api.request('POST', `/api/sessions/${id}/input`, body);
    if (this.flags.json) this.json(res);
    return EXIT.OK;
  }

  async kill(raw: string | undefined): Promise<number> {
    const id = await this.resolveId(raw);
    const s = await this.api.request<Session>('DELETE', `/api/sessions/${id}`);
    if (this.flags.json) this.json(s);
    else this.io.out(`${s.id} ${s.status}\n`);
    return EXIT.OK;
  }

  async logs(raw: string | undefined): Promise<number> {
    const id = await this.resolveId(raw);
    let lines = 200;
    if (this.flags.lines !== undefined) {
      lines = Number(this.flags.lines);
      if (!Number.isInteger(lines) || lines < 1 || lines > 10_000) throw new CliError(EXIT.USAGE, '--lines must be an integer from 1 to 10000');
    }
    if (!this.flags.follow) {
      this.io.out(await this.api.request<string>('GET', `/api/sessions/${id}/logs?lines=${lines}`, undefined, 'text'));
      return EXIT.OK;
    }
    // Follow: the replay of the ring (its last N lines), then live output, until the session ends.
    await this.api.get(`/api/sessions/${id}`);
    const stream = new SessionStream({ target: this.target, sessionId: id, tailLines: lines, write: (d) => this.io.out(d), notice: (t) => this.io.err(t + '\n') });
    const stop = () => stream.detach();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    stream.start();
    try {
      await stream.done;
    } finally {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    }
    return EXIT.OK;
  }

  async jobs(): Promise<number> {
    let limit = 50;
    if (this.flags.limit !== undefined) {
      limit = Number(this.flags.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw new CliError(EXIT.USAGE, '--limit must be an integer from 1 to 10000');
    }
    const res = await this.api.get<{ items: Array<Record<string, any>> }>(`/api/jobs?limit=${limit}`);
    if (this.flags.json) {
      this.json(res);
      return EXIT.OK;
    }
    if (!res.items.length) {
      this.io.out('no jobs\n');
      return EXIT.OK;
    }
    this.io.out(table(
      ['TIME', 'SESSION', 'STATUS', 'EXIT', 'PROJECT', 'AGENT', 'MESSAGE'],
      res.items.map((j) => [
        String(j.at).replace('T', ' ').replace(/\.\d+Z$/, 'Z'),
        String(j.sessionId).slice(0, 8),
        status(String(j.status)),
        j.exitCode === null || j.exitCode === undefined ? '' : String(j.exitCode),
        `${j.orgId}/${j.projectName}`,
        j.agent ?? '',
        j.message ?? '',
      ]),
    ));
    return EXIT.OK;
  }

  async attach(raw: string | undefined): Promise<number> {
    const id = await this.resolveId(raw);
    // Fails fast (and plainly) on a bad token, a missing session or a server that is down.
    const s = await this.api.get<Session>(`/api/sessions/${id}`);
    if (TERMINAL.has(s.status)) {
      // Nothing to type into: show what it printed, as `logs --follow` would, and say how it ended.
      this.io.err(`[session ${id.slice(0, 8)} has ended (${s.status}); its output follows]\n`);
      const stream = new SessionStream({ target: this.target, sessionId: id, write: (d) => this.io.out(d), notice: (t) => this.io.err(t + '\n') });
      stream.start();
      await stream.done;
      return EXIT.OK;
    }
    const end = await attachTerminal({ target: this.target, sessionId: id, label: `${id.slice(0, 8)} (${s.agent} · ${s.orgId}/${s.projectName})` });
    if (end.how === 'detached') this.io.err(`[detached from ${id.slice(0, 8)}; it keeps running — session-manager attach ${id.slice(0, 8)}]\n`);
    else {
      const f = end.frame;
      const how = f.signal ? `signal ${f.signal}` : `code ${f.exitCode ?? '?'}`;
      this.io.err(`[session ${id.slice(0, 8)} ended: ${f.status ?? 'exited'} (${how})]\n`);
    }
    return EXIT.OK;
  }
}
