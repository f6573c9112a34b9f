/**
 * Driver adapter for the baseline: Express REST, Socket.IO events (bench/baseline/server.ts).
 * The driver speaks the Socket.IO v4 wire protocol (Engine.IO 4, websocket transport)
 * directly over `ws`, the same client library as for the project, so both sides cost the
 * driver the same per frame and output can be checked without decoding (lib/frames.ts).
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import { parseOutputFast } from '../lib/frames.js';
import { spawnNode } from '../lib/procs.js';
import { BASELINE_MAIN, baseEnv } from '../lib/paths.js';
import { BENCH_ORG, BENCH_SECRET, benchToken } from '../lib/token.js';
import { call } from './http.js';
import type { Attached, ServerUnderTest, StartSide, Viewer } from './types.js';

const CONNECT_TIMEOUT_MS = 20_000;
const ATTACH_TIMEOUT_MS = 20_000;
/** Engine.IO packet types (first character) and Socket.IO packet types (second, after "4"). */
const EIO_OPEN = '0';
const EIO_PING = '2';
const EIO_PONG = '3';
const EIO_MESSAGE = '4';
const SIO_CONNECT = '0';
const SIO_DISCONNECT = '1';
const SIO_EVENT = '2';
const SIO_ACK = '3';
const SIO_CONNECT_ERROR = '4';
const OUTPUT_PREFIX = Buffer.from('42["output",{"sessionId":"', 'latin1');
const OUTPUT_SUFFIX = Buffer.from('"}]', 'latin1');

class BaselineViewer implements Viewer {
  onOutput: Viewer['onOutput'];
  onOutputRaw: Viewer['onOutputRaw'];
  onExit: Viewer['onExit'];
  onClose: Viewer['onClose'];
  closed: number | undefined;
  private nextAck = 1;
  private readonly acks = new Map<number, (args: unknown[]) => void>();

  constructor(private readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) return;
      if (this.onOutputRaw) {
        const o = parseOutputFast(data, OUTPUT_PREFIX, OUTPUT_SUFFIX);
        if (o && this.onOutputRaw(o.sessionId, o.offset, data, o.dataStart, o.dataEnd)) return;
      }
      this.packet(data.toString('utf8'));
    });
    ws.on('close', (code) => {
      this.closed = code;
      this.onClose?.(code);
    });
    ws.on('error', () => {});
  }

  private packet(p: string): void {
    if (p === EIO_PING) return void this.ws.send(EIO_PONG);
    if (p[0] !== EIO_MESSAGE) return;
    if (p[1] === SIO_EVENT) {
      const [name, m] = JSON.parse(p.slice(2)) as [string, { sessionId: string; offset: number; data: string }];
      if (name === 'output') this.onOutput?.(m.sessionId, m.offset, m.data);
      else if (name === 'exit') this.onExit?.(m.sessionId);
    } else if (p[1] === SIO_ACK) {
      const at = p.indexOf('[');
      const id = Number(p.slice(2, at));
      const cb = this.acks.get(id);
      this.acks.delete(id);
      cb?.(JSON.parse(p.slice(at)) as unknown[]);
    } else if (p[1] === SIO_DISCONNECT) {
      this.ws.close();
    }
  }

  /** Emit an event with an acknowledgement (Socket.IO: 4 2 <ack id> [name, arg]). */
  private emitWithAck(name: string, arg: unknown, timeoutMs: number): Promise<unknown[]> {
    const id = this.nextAck++;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.acks.delete(id);
        reject(new Error(`${name} timed out`));
      }, timeoutMs);
      this.acks.set(id, (args) => {
        clearTimeout(t);
        resolve(args);
      });
      this.ws.send(`${EIO_MESSAGE}${SIO_EVENT}${id}${JSON.stringify([name, arg])}`);
    });
  }

  async attach(sessionId: string, since?: number): Promise<Attached> {
    const [r] = (await this.emitWithAck('attach', since === undefined ? { sessionId } : { sessionId, since }, ATTACH_TIMEOUT_MS)) as [
      { offset: number; status: string; error?: string },
    ];
    if (r.error) throw new Error(`attach failed: ${r.error}`);
    return { offset: r.offset, status: r.status };
  }

  input(sessionId: string, data: string): void {
    this.ws.send(`${EIO_MESSAGE}${SIO_EVENT}${JSON.stringify(['input', { sessionId, data }])}`);
  }

  close(): void {
    this.ws.terminate();
  }
}

/** Open a Socket.IO connection to the default namespace with `auth: {token}`. */
function connectSocketIo(url: string, token: string): Promise<Viewer> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket`, { perMessageDeflate: false, handshakeTimeout: CONNECT_TIMEOUT_MS });
    let settled = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ws.terminate();
      reject(err);
    };
    const timer = setTimeout(() => fail(new Error('socket.io connect timed out')), CONNECT_TIMEOUT_MS);
    const onHandshake = (data: Buffer) => {
      const p = data.toString('utf8');
      if (p[0] === EIO_OPEN) {
        ws.send(`${EIO_MESSAGE}${SIO_CONNECT}${JSON.stringify({ token })}`);
      } else if (p === EIO_PING) {
        ws.send(EIO_PONG);
      } else if (p.startsWith(EIO_MESSAGE + SIO_CONNECT)) {
        settled = true;
        clearTimeout(timer);
        ws.off('message', onHandshake);
        resolve(new BaselineViewer(ws));
      } else if (p.startsWith(EIO_MESSAGE + SIO_CONNECT_ERROR)) {
        fail(new Error(`socket.io connect refused: ${p.slice(2, 200)}`));
      }
    };
    ws.on('message', onHandshake);
    ws.once('unexpected-response', (_req, res) => fail(new Error(`upgrade refused: ${res.statusCode}`)));
    ws.once('error', (err) => fail(err));
    ws.once('close', (code) => fail(new Error(`closed (${code}) during the handshake`)));
  });
}

export const startBaseline: StartSide = async ({ dir, nodeArgs }) => {
  const dataDir = path.join(dir, 'data');
  mkdirSync(dataDir, { recursive: true });
  const child = await spawnNode(BASELINE_MAIN, [], {
    cwd: dir,
    ...(nodeArgs ? { nodeArgs } : {}),
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
    token,
    async createSession(command, opts = {}) {
      const r = await call(`${url}/api/sessions`, 'POST', token, { orgId: BENCH_ORG, projectName: opts.projectName ?? 'bench', command });
      if (r.status !== 201) throw new Error(`create session: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
      return (r.body as { id: string }).id;
    },
    async deleteSession(id) {
      const r = await call(`${url}/api/sessions/${id}`, 'DELETE', token);
      if (r.status !== 200) throw new Error(`delete session: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
    },
    connect: () => connectSocketIo(url, token),
    async seedPlanner(projectName, cards) {
      const r = await call(`${url}/api/planner/${BENCH_ORG}/${projectName}`, 'PUT', token, { cards });
      if (r.status !== 200) throw new Error(`seed planner: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
    },
    cardUrl: (projectName, cardId) => `${url}/api/planner/${BENCH_ORG}/${projectName}/cards/${cardId}`,
  };
  return s;
};
