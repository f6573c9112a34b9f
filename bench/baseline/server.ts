/**
 * The baseline peer: the same job written the usual way — Express 4 for REST, Socket.IO 4
 * (websocket transport) for the terminal stream, node-pty in the main thread, and a 1 MiB
 * replay buffer per session. Honestly configured: library defaults, no artificial delays,
 * JWT checked with the same library and claims as the project, each chunk broadcast once to
 * the session's room, console.log appended per session like the project does.
 *
 * Protocol (its own, not the project's):
 *   REST  POST /api/sessions {projectName, command: string | argv, cols?, rows?} → 201 {id, status, pid}
 *         GET /api/sessions · GET/DELETE /api/sessions/:id · POST /api/sessions/:id/input {data}
 *         GET/PUT /api/planner/:orgId/:projectName ({cards}) · PATCH …/cards/:cardId (card fields)
 *         → 200 {version, card} / the document, with ETag: "<version>"
 *   Socket.IO (auth: {token})
 *         → attach {sessionId, since?} (ack {offset, status, gap?})  · detach · input · resize
 *         ← output {sessionId, offset, data} · exit {sessionId, exitCode, signal, status}
 *
 * Env: PORT (0 = any), JWT_SECRET, DATA_DIR, WORKSPACE_BASE_PATH.
 * Prints "baseline ready at http://127.0.0.1:<port>" once listening.
 */
import { randomUUID } from 'node:crypto';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import express, { type NextFunction, type Request, type Response } from 'express';
import { jwtVerify } from 'jose';
import * as pty from 'node-pty';
import { Server, type Socket } from 'socket.io';

/** Replay kept per session, as in the project (REPLAY_BYTES default). */
const REPLAY_BYTES = 1024 * 1024;
/** How long DELETE waits for the agent to exit before SIGKILL. */
const KILL_WAIT_MS = 5000;

interface User {
  sub: string;
  orgId: string | undefined;
  admin: boolean;
}

interface Chunk {
  offset: number;
  bytes: number;
  data: string;
}

interface Session {
  id: string;
  userId: string;
  orgId: string;
  projectName: string;
  command: string | string[];
  status: 'running' | 'exited' | 'killed';
  pid: number;
  exitCode: number | null;
  signal: number | null;
  createdAt: string;
  endedAt: string | null;
  term: pty.IPty | undefined;
  /** Replay buffer: recent chunks, at most REPLAY_BYTES plus one chunk. */
  chunks: Chunk[];
  ringBytes: number;
  offset: number;
  log: WriteStream;
  exited: Promise<void>;
  killRequested: boolean;
}

const secret = new TextEncoder().encode(process.env.JWT_SECRET ?? '');
const dataDir = path.resolve(process.env.DATA_DIR ?? './data');
const workspaces = path.resolve(process.env.WORKSPACE_BASE_PATH ?? './workspaces');
const sessions = new Map<string, Session>();

async function verify(token: unknown): Promise<User> {
  if (typeof token !== 'string' || !token) throw new Error('no token');
  const { payload } = await jwtVerify(token, secret, { algorithms: ['HS256'] });
  const roles = Array.isArray(payload.roles) ? payload.roles : [];
  return { sub: String(payload.sub), orgId: typeof payload.orgId === 'string' ? payload.orgId : undefined, admin: roles.includes('admin') };
}

function canSee(u: User, s: Session): boolean {
  return u.admin || u.orgId === s.orgId;
}

function view(s: Session) {
  const { term: _t, chunks: _c, log: _l, exited: _e, ...rest } = s;
  return rest;
}

function replay(s: Session, since: number | undefined): { offset: number; gap: boolean; data: string } {
  const start = s.chunks.length ? s.chunks[0]!.offset : s.offset;
  const from = since === undefined ? start : Math.min(Math.max(since, start), s.offset);
  const gap = since !== undefined && since < start;
  const parts: string[] = [];
  for (const c of s.chunks) {
    if (c.offset + c.bytes <= from) continue;
    if (c.offset >= from) parts.push(c.data);
    else parts.push(Buffer.from(c.data, 'utf8').subarray(from - c.offset).toString('utf8'));
  }
  return { offset: from, gap, data: parts.join('') };
}

const app = express();
app.use(express.json({ limit: '1mb' }));
const httpServer = createServer(app);
const io = new Server(httpServer, { transports: ['websocket'], serveClient: false });

const auth = (req: Request, res: Response, next: NextFunction) => {
  const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
  verify(m?.[1]).then(
    (u) => {
      res.locals.user = u;
      next();
    },
    () => res.status(401).json({ error: 'unauthorized' }),
  );
};

function spawnSession(u: User, body: Record<string, unknown>): Session {
  const projectName = String(body.projectName ?? 'default');
  const orgId = String(body.orgId ?? u.orgId ?? 'default');
  const command = body.command as string | string[];
  const [file, args] = Array.isArray(command) ? [command[0]!, command.slice(1)] : ['sh', ['-c', String(command)]];
  const id = randomUUID();
  const cwd = path.join(workspaces, orgId, projectName);
  mkdirSync(cwd, { recursive: true });
  const logDir = path.join(dataDir, 'sessions', id);
  mkdirSync(logDir, { recursive: true });
  const term = pty.spawn(file, args, {
    name: 'xterm-256color',
    cols: Number(body.cols ?? 80),
    rows: Number(body.rows ?? 24),
    cwd,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? cwd,
      LANG: process.env.LANG ?? 'C.UTF-8',
      TERM: 'xterm-256color',
      SESSION_ID: id,
      WORKSPACE_DIR: cwd,
    },
  });
  let exitedResolve!: () => void;
  const s: Session = {
    id,
    userId: u.sub,
    orgId,
    projectName,
    command,
    status: 'running',
    pid: term.pid,
    exitCode: null,
    signal: null,
    createdAt: new Date().toISOString(),
    endedAt: null,
    term,
    chunks: [],
    ringBytes: 0,
    offset: 0,
    log: createWriteStream(path.join(logDir, 'console.log'), { flags: 'a' }),
    exited: new Promise((r) => (exitedResolve = r)),
    killRequested: false,
  };
  const room = `s:${id}`;
  term.onData((data) => {
    const bytes = Buffer.byteLength(data);
    const offset = s.offset;
    s.offset += bytes;
    s.chunks.push({ offset, bytes, data });
    s.ringBytes += bytes;
    while (s.chunks.length > 1 && s.ringBytes - s.chunks[0]!.bytes >= REPLAY_BYTES) s.ringBytes -= s.chunks.shift()!.bytes;
    s.log.write(data);
    io.to(room).emit('output', { sessionId: id, offset, data });
  });
  term.onExit(({ exitCode, signal }) => {
    s.status = s.killRequested ? 'killed' : 'exited';
    s.exitCode = exitCode;
    s.signal = signal ?? null;
    s.endedAt = new Date().toISOString();
    s.term = undefined;
    s.log.end();
    io.to(room).emit('exit', { sessionId: id, exitCode, signal: signal ?? null, status: s.status });
    console.log(JSON.stringify({ t: s.endedAt, msg: 'session ended', sessionId: id, status: s.status, exitCode }));
    exitedResolve();
  });
  sessions.set(id, s);
  console.log(JSON.stringify({ t: s.createdAt, msg: 'session started', sessionId: id, pid: term.pid }));
  return s;
}

app.post('/api/sessions', auth, (req, res) => {
  const u = res.locals.user as User;
  const body = (req.body ?? {}) as Record<string, unknown>;
  const c = body.command;
  if (!(typeof c === 'string' && c) && !(Array.isArray(c) && c.length > 0 && c.every((x) => typeof x === 'string'))) {
    res.status(400).json({ error: 'command must be a string or argv' });
    return;
  }
  try {
    const s = spawnSession(u, body);
    res.status(201).json(view(s));
  } catch (err) {
    res.status(500).json({ error: (err as Error).message });
  }
});

app.get('/api/sessions', auth, (_req, res) => {
  const u = res.locals.user as User;
  res.json({ items: [...sessions.values()].filter((s) => canSee(u, s)).map(view) });
});

app.get('/api/sessions/:id', auth, (req, res) => {
  const s = sessions.get(req.params.id!);
  if (!s || !canSee(res.locals.user as User, s)) return void res.status(404).json({ error: 'not found' });
  res.json(view(s));
});

app.post('/api/sessions/:id/input', auth, (req, res) => {
  const s = sessions.get(req.params.id!);
  if (!s || !canSee(res.locals.user as User, s)) return void res.status(404).json({ error: 'not found' });
  if (!s.term) return void res.status(409).json({ error: 'not running' });
  s.term.write(String((req.body as { data?: unknown }).data ?? ''));
  res.json({ ok: true });
});

app.delete('/api/sessions/:id', auth, async (req, res) => {
  const s = sessions.get(req.params.id!);
  if (!s || !canSee(res.locals.user as User, s)) return void res.status(404).json({ error: 'not found' });
  const term = s.term;
  if (term) {
    s.killRequested = true;
    term.kill();
    const t = setTimeout(() => term.kill('SIGKILL'), KILL_WAIT_MS);
    await s.exited;
    clearTimeout(t);
  }
  res.json(view(s));
});

/*
 * Planner: `.vibe/planner.json` in the workspace, read, changed and written back whole.
 * The project writes it atomically (temp file, fsync, rename) with group commit; this does
 * what typical code does: fs.promises.writeFile, no fsync. Writes to one file go through a
 * promise chain, as an app that wants concurrent PATCHes not to lose updates would do.
 */
interface PlannerDoc {
  version: number;
  updatedAt: string;
  cards: Array<Record<string, unknown> & { id: string }>;
  [k: string]: unknown;
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const plannerChains = new Map<string, Promise<unknown>>();

function plannerFile(req: Request, res: Response): string | undefined {
  const { orgId, projectName } = req.params as { orgId: string; projectName: string };
  const u = res.locals.user as User;
  if (!NAME_RE.test(orgId) || !NAME_RE.test(projectName)) return void res.status(400).json({ error: 'bad name' });
  if (!u.admin && u.orgId !== orgId) return void res.status(403).json({ error: 'forbidden' });
  return path.join(workspaces, orgId, projectName, '.vibe', 'planner.json');
}

async function readPlanner(file: string): Promise<PlannerDoc> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as PlannerDoc;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { version: 0, updatedAt: new Date(0).toISOString(), cards: [] };
    throw err;
  }
}

/** Run `job` after the writes queued before it on the same file. */
function serialized<T>(file: string, job: () => Promise<T>): Promise<T> {
  const run = (plannerChains.get(file) ?? Promise.resolve()).then(job);
  const tail = run.catch(() => {});
  plannerChains.set(file, tail);
  void tail.then(() => plannerChains.get(file) === tail && plannerChains.delete(file));
  return run;
}

async function savePlanner(file: string, doc: PlannerDoc): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, JSON.stringify(doc, null, 2) + '\n');
}

app.get('/api/planner/:orgId/:projectName', auth, async (req, res) => {
  const file = plannerFile(req, res);
  if (!file) return;
  try {
    const doc = await readPlanner(file);
    res.set('ETag', `"${doc.version}"`).json(doc);
  } catch (err) {
    res.status(500).json({ error: (err as Error).message });
  }
});

app.put('/api/planner/:orgId/:projectName', auth, async (req, res) => {
  const file = plannerFile(req, res);
  if (!file) return;
  const body = req.body as Partial<PlannerDoc> | undefined;
  if (!body || !Array.isArray(body.cards) || !body.cards.every((c) => c && typeof c.id === 'string' && NAME_RE.test(c.id))) {
    return void res.status(400).json({ error: 'cards must be an array of cards with ids' });
  }
  try {
    const doc = await serialized(file, async () => {
      const cur = await readPlanner(file);
      const next: PlannerDoc = { ...body, version: cur.version + 1, updatedAt: new Date().toISOString(), cards: body.cards! };
      await savePlanner(file, next);
      return next;
    });
    res.set('ETag', `"${doc.version}"`).json(doc);
  } catch (err) {
    res.status(500).json({ error: (err as Error).message });
  }
});

app.patch('/api/planner/:orgId/:projectName/cards/:cardId', auth, async (req, res) => {
  const file = plannerFile(req, res);
  if (!file) return;
  const cardId = req.params.cardId!;
  const fields = (req.body ?? {}) as Record<string, unknown>;
  if (fields.id !== undefined && fields.id !== cardId) return void res.status(400).json({ error: 'id cannot change' });
  try {
    const out = await serialized(file, async () => {
      const doc = await readPlanner(file);
      const card = doc.cards.find((c) => c.id === cardId);
      if (!card) return undefined;
      Object.assign(card, fields);
      doc.version += 1;
      doc.updatedAt = new Date().toISOString();
      await savePlanner(file, doc);
      return { version: doc.version, card };
    });
    if (!out) return void res.status(404).json({ error: 'card not found' });
    res.set('ETag', `"${out.version}"`).json(out);
  } catch (err) {
    res.status(500).json({ error: (err as Error).message });
  }
});

io.use((socket, next) => {
  verify((socket.handshake.auth as { token?: unknown } | undefined)?.token).then(
    (u) => {
      socket.data.user = u;
      next();
    },
    () => next(new Error('unauthorized')),
  );
});

io.on('connection', (socket: Socket) => {
  const u = socket.data.user as User;
  socket.on('attach', (msg: { sessionId?: string; since?: number }, ack?: (r: unknown) => void) => {
    const s = sessions.get(String(msg?.sessionId));
    if (!s || !canSee(u, s)) return ack?.({ error: 'not found' });
    const r = replay(s, typeof msg.since === 'number' ? msg.since : undefined);
    ack?.({ offset: r.offset, status: s.status, gap: r.gap });
    if (r.data) socket.emit('output', { sessionId: s.id, offset: r.offset, data: r.data });
    if (s.status !== 'running') socket.emit('exit', { sessionId: s.id, exitCode: s.exitCode, signal: s.signal, status: s.status });
    socket.join(`s:${s.id}`);
  });
  socket.on('detach', (msg: { sessionId?: string }) => {
    void socket.leave(`s:${String(msg?.sessionId)}`);
  });
  socket.on('input', (msg: { sessionId?: string; data?: string }) => {
    const s = sessions.get(String(msg?.sessionId));
    if (s && canSee(u, s) && s.term && typeof msg.data === 'string') s.term.write(msg.data);
  });
  socket.on('resize', (msg: { sessionId?: string; cols?: number; rows?: number }) => {
    const s = sessions.get(String(msg?.sessionId));
    if (s && canSee(u, s) && s.term && Number.isInteger(msg.cols) && Number.isInteger(msg.rows)) s.term.resize(msg.cols!, msg.rows!);
  });
});

httpServer.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  const { port } = httpServer.address() as AddressInfo;
  process.stdout.write(`baseline ready at http://127.0.0.1:${port}\n`);
});

let stopping = false;
function stop(): void {
  if (stopping) return;
  stopping = true;
  const live = [...sessions.values()].filter((s) => s.term);
  for (const s of live) {
    s.killRequested = true;
    try {
      s.term!.kill();
    } catch {
      /* gone */
    }
  }
  const deadline = setTimeout(() => {
    for (const s of live) {
      try {
        if (s.term) process.kill(s.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    process.exit(0);
  }, 3000);
  void Promise.all(live.map((s) => s.exited)).then(() => {
    clearTimeout(deadline);
    io.close();
    httpServer.close();
    process.exit(0);
  });
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
