/** Driver adapter for the project: REST on uWS, the `/ws` JSON protocol (DESIGN §4). */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import { parseOutputFast } from '../lib/frames.js';
import { spawnNode } from '../lib/procs.js';
import { PROJECT_MAIN, baseEnv } from '../lib/paths.js';
import { BENCH_ORG, BENCH_SECRET, benchToken } from '../lib/token.js';
import { call } from './http.js';
import type { Attached, ServerUnderTest, StartSide, Viewer } from './types.js';

const CONNECT_TIMEOUT_MS = 20_000;

/** `BENCH_PROJECT_ENV` (space-separated NAME=value): settings for the project's server only. */
function projectEnvOverrides(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of (process.env.BENCH_PROJECT_ENV ?? '').split(/\s+/).filter(Boolean)) {
    const eq = pair.indexOf('=');
    if (eq > 0) out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}
const ATTACH_TIMEOUT_MS = 20_000;
const OUTPUT_PREFIX = Buffer.from('{"type":"output","sessionId":"', 'latin1');
const OUTPUT_SUFFIX = Buffer.from('"}', 'latin1');

export class ProjectViewer implements Viewer {
  onOutput: Viewer['onOutput'];
  onOutputRaw: Viewer['onOutputRaw'];
  onExit: Viewer['onExit'];
  onClose: Viewer['onClose'];
  closed: number | undefined;
  /** The client's own error (e.g. a frame it could not accept), for failure messages. */
  private lastError: string | undefined;
  private readonly attaching = new Map<string, { resolve: (a: Attached) => void; reject: (e: Error) => void }>();

  constructor(private readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) return;
      if (this.onOutputRaw) {
        const o = parseOutputFast(data, OUTPUT_PREFIX, OUTPUT_SUFFIX);
        if (o && this.onOutputRaw(o.sessionId, o.offset, data, o.dataStart, o.dataEnd)) return;
      }
      const f = JSON.parse(data.toString('utf8')) as { type: string; sessionId?: string; offset?: number; data?: string; status?: string; code?: string };
      switch (f.type) {
        case 'output':
          this.onOutput?.(f.sessionId!, f.offset!, f.data!);
          break;
        case 'attached': {
          const w = this.attaching.get(f.sessionId!);
          this.attaching.delete(f.sessionId!);
          w?.resolve({ offset: f.offset!, status: f.status! });
          break;
        }
        case 'exit':
          this.onExit?.(f.sessionId!);
          break;
        case 'error':
          for (const [id, w] of this.attaching) {
            this.attaching.delete(id);
            w.reject(new Error(`attach failed: ${f.code}`));
          }
          break;
      }
    });
    ws.on('close', (code, reason) => {
      this.closed = code;
      this.onClose?.(code);
      const why = [reason.toString(), this.lastError].filter(Boolean).join('; ');
      for (const [id, w] of this.attaching) {
        this.attaching.delete(id);
        w.reject(new Error(`closed (${code}${why ? `: ${why}` : ''}) while attaching`));
      }
    });
    ws.on('error', (err) => {
      this.lastError = err.message;
    });
  }

  attach(sessionId: string, since?: number): Promise<Attached> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.attaching.delete(sessionId);
        reject(new Error('attach timed out'));
      }, ATTACH_TIMEOUT_MS);
      this.attaching.set(sessionId, {
        resolve: (a) => {
          clearTimeout(t);
          resolve(a);
        },
        reject: (e) => {
          clearTimeout(t);
          reject(e);
        },
      });
      this.ws.send(JSON.stringify(since === undefined ? { type: 'attach', sessionId } : { type: 'attach', sessionId, since }));
    });
  }

  input(sessionId: string, data: string): void {
    this.ws.send(JSON.stringify({ type: 'input', sessionId, data }));
  }

  /** Any JSON frame (the limit probe's `go`). */
  sendFrame(frame: Record<string, unknown>): void {
    this.ws.send(JSON.stringify(frame));
  }

  close(): void {
    this.ws.terminate();
  }
}

/** Open a `ws` client speaking the project's frames (also used against the uWS limit probe). */
export function connectWs(wsUrl: string): Promise<ProjectViewer> {
  return new Promise<ProjectViewer>((resolve, reject) => {
    const ws = new WebSocket(wsUrl, { perMessageDeflate: false, handshakeTimeout: CONNECT_TIMEOUT_MS });
    ws.once('open', () => resolve(new ProjectViewer(ws)));
    ws.once('unexpected-response', (_req, res) => {
      reject(new Error(`upgrade refused: ${res.statusCode}`));
      ws.terminate();
    });
    ws.once('error', reject);
  });
}

export const startProject: StartSide = async ({ dir, maxSessions, nodeArgs }) => {
  const dataDir = path.join(dir, 'data');
  mkdirSync(dataDir, { recursive: true });
  const child = await spawnNode(PROJECT_MAIN, [], {
    cwd: dir,
    ...(nodeArgs ? { nodeArgs } : {}),
    readyPrefix: 'session-manager ready at ',
    env: {
      ...baseEnv(dir),
      SESSION_MANAGER_PORT: '0',
      HOST: '127.0.0.1',
      JWT_SECRET: BENCH_SECRET,
      DATA_DIR: dataDir,
      WORKSPACE_BASE_PATH: path.join(dir, 'workspaces'),
      DEPLOY_DIR: path.join(dir, 'deploys'),
      NODE_ID: `bench-${path.basename(dir)}`,
      MAX_CONCURRENT_SESSIONS: String(maxSessions),
      LOG_LEVEL: 'info',
      // The benchmark creates sessions far faster than a builder would.
      RATE_LIMIT_SESSIONS_PER_MIN: '0',
      // One driver process reads all 20 fan-out viewers on a shared 2-core machine; with the
      // default 4 MiB it sometimes falls behind and is cut (4008, by design). The baseline
      // buffers without limit, so the project gets a large budget too: throughput, not the
      // slow-viewer policy (tested in test/slow-viewer.test.ts), is measured here.
      WS_MAX_BACKPRESSURE: String(64 * 1024 * 1024),
      RATE_LIMIT_EXPENSIVE_PER_MIN: '0',
      // Tuning experiments: BENCH_PROJECT_ENV="WORKER_THREADS=1 SESSIONS_PER_THREAD=100".
      ...projectEnvOverrides(),
    },
  });
  const url = /ready at (http:\/\/[^/\s]+)/.exec(child.readyLine)![1]!;
  const token = await benchToken();
  const wsUrl = `${url.replace('http', 'ws')}/ws?token=${encodeURIComponent(token)}`;
  const s: ServerUnderTest = {
    side: 'project',
    child,
    url,
    token,
    async createSession(command, opts = {}) {
      const r = await call(`${url}/api/sessions`, 'POST', token, { orgId: BENCH_ORG, projectName: opts.projectName ?? 'bench', agent: 'script', command });
      if (r.status !== 201) throw new Error(`create session: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
      return (r.body as { id: string }).id;
    },
    async deleteSession(id) {
      const r = await call(`${url}/api/sessions/${id}`, 'DELETE', token);
      if (r.status !== 200) throw new Error(`delete session: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
    },
    connect: () => connectWs(wsUrl),
    async seedPlanner(projectName, cards) {
      const put = () => call(`${url}/api/planner/${BENCH_ORG}/${projectName}`, 'PUT', token, { cards });
      let r = await put();
      if (r.status === 404) {
        // No workspace yet (no session ran in it): create it the API's way, then replace.
        const d = await call(`${url}/api/dev-envs`, 'POST', token, { orgId: BENCH_ORG, projectName, description: 'bench' });
        if (d.status !== 201) throw new Error(`create workspace: ${d.status} ${JSON.stringify(d.body).slice(0, 300)}`);
        r = await put();
      }
      if (r.status !== 200) throw new Error(`seed planner: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
    },
    cardUrl: (projectName, cardId) => `${url}/api/planner/${BENCH_ORG}/${projectName}/cards/${cardId}`,
  };
  return s;
};
