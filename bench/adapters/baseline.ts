/** Driver adapter for the baseline: Express REST, Socket.IO events (bench/baseline/server.ts). */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { io, type Socket } from 'socket.io-client';
import { spawnNode } from '../lib/procs.js';
import { BASELINE_MAIN, baseEnv } from '../lib/paths.js';
import { BENCH_ORG, BENCH_SECRET, benchToken } from '../lib/token.js';
import { call } from './http.js';
import type { Attached, ServerUnderTest, StartSide, Viewer } from './types.js';

const CONNECT_TIMEOUT_MS = 20_000;
const ATTACH_TIMEOUT_MS = 20_000;

class BaselineViewer implements Viewer {
  onOutput: Viewer['onOutput'];
  onExit: Viewer['onExit'];
  onClose: Viewer['onClose'];
  closed: number | undefined;

  constructor(private readonly socket: Socket) {
    socket.on('output', (m: { sessionId: string; offset: number; data: string }) => this.onOutput?.(m.sessionId, m.offset, m.data));
    socket.on('exit', (m: { sessionId: string }) => this.onExit?.(m.sessionId));
    socket.on('disconnect', () => {
      this.closed ??= 1000;
      this.onClose?.(this.closed);
    });
  }

  attach(sessionId: string, since?: number): Promise<Attached> {
    return new Promise((resolve, reject) => {
      this.socket.timeout(ATTACH_TIMEOUT_MS).emit('attach', since === undefined ? { sessionId } : { sessionId, since }, (err: Error | null, r: { offset: number; status: string; error?: string }) => {
        if (err) reject(new Error('attach timed out'));
        else if (r.error) reject(new Error(`attach failed: ${r.error}`));
        else resolve({ offset: r.offset, status: r.status });
      });
    });
  }

  input(sessionId: string, data: string): void {
    this.socket.emit('input', { sessionId, data });
  }

  close(): void {
    this.socket.disconnect();
  }
}

export const startBaseline: StartSide = async ({ dir }) => {
  const dataDir = path.join(dir, 'data');
  mkdirSync(dataDir, { recursive: true });
  const child = await spawnNode(BASELINE_MAIN, [], {
    cwd: dir,
    readyPrefix: 'baseline ready at ',
    env: {
      ...baseEnv(dir),
      PORT: '0',
      JWT_SECRET: BENCH_SECRET,
      DATA_DIR: dataDir,
      WORKSPACE_BASE_PATH: path.join(dir, 'workspaces'),
    },
  });
  const url = /ready at (http:\/\/\S+)/.exec(child.readyLine)![1]!;
  const token = await benchToken();
  const s: ServerUnderTest = {
    side: 'baseline',
    child,
    url,
    async createSession(command, opts = {}) {
      const r = await call(`${url}/api/sessions`, 'POST', token, { orgId: BENCH_ORG, projectName: opts.projectName ?? 'bench', command });
      if (r.status !== 201) throw new Error(`create session: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
      return (r.body as { id: string }).id;
    },
    async deleteSession(id) {
      const r = await call(`${url}/api/sessions/${id}`, 'DELETE', token);
      if (r.status !== 200) throw new Error(`delete session: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
    },
    connect() {
      return new Promise<Viewer>((resolve, reject) => {
        // forceNew: one real connection per viewer (the client would otherwise multiplex).
        const socket = io(url, { transports: ['websocket'], forceNew: true, reconnection: false, auth: { token }, timeout: CONNECT_TIMEOUT_MS });
        socket.once('connect', () => resolve(new BaselineViewer(socket)));
        socket.once('connect_error', (err) => {
          socket.disconnect();
          reject(err);
        });
      });
    },
  };
  return s;
};
