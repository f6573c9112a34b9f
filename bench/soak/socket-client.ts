/**
 * A child process of the idle-socket soak: opens `count` authenticated editor sockets to
 * `/ws` (each subscribes to its org topic) and holds them. One process holds at most a few
 * thousand, so several of them stay under the 20,000-descriptor limit per process.
 *
 * argv: <wsUrl> <token> <count> <connectConcurrency> [subscribe 1|0]
 * stdout (JSON lines): {type:"ready", opened, failed, errors[]} ·
 *   {type:"checked", ok, failed, closed} · {type:"closed"}
 * stdin commands (lines): "check" (ping every socket, count pongs) · "close" (close all, exit).
 */
import { createInterface } from 'node:readline';
import WebSocket from 'ws';

/** Pongs that do not come back within this are counted as failures. */
const CHECK_TIMEOUT_MS = 60_000;

const [wsUrl, tok, countRaw, concRaw, subRaw] = process.argv.slice(2);
const subscribe = subRaw !== '0';
const count = Number(countRaw);
const concurrency = Number(concRaw ?? 100);
const sockets: WebSocket[] = [];
let unexpectedCloses = 0;
let closing = false;
const errors: string[] = [];

const out = (o: unknown) => process.stdout.write(JSON.stringify(o) + '\n');

async function open(): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const ws = new WebSocket(`${wsUrl}?token=${encodeURIComponent(tok!)}`, { perMessageDeflate: false });
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error('connect timeout'));
    }, 30_000);
    ws.once('open', () => {
      clearTimeout(timer);
      if (subscribe) ws.send(JSON.stringify({ type: 'subscribe', topic: 'org:soak' }));
      sockets.push(ws);
      ws.on('close', () => {
        if (!closing) unexpectedCloses++;
      });
      resolve();
    });
    ws.once('unexpected-response', (_req, res) => {
      clearTimeout(timer);
      reject(new Error(`upgrade refused: ${res.statusCode}`));
    });
    ws.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

async function main(): Promise<void> {
  let next = 0;
  let failed = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) {
        next++;
        try {
          await open();
        } catch (err) {
          failed++;
          if (errors.length < 5) errors.push((err as Error).message);
        }
      }
    }),
  );
  out({ type: 'ready', opened: sockets.length, failed, errors });
  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    if (line === 'check') void check();
    if (line === 'close') {
      closing = true;
      for (const ws of sockets) ws.terminate();
      out({ type: 'closed' });
      process.exit(0);
    }
  });
}

async function check(): Promise<void> {
  let ok = 0;
  let failed = 0;
  await Promise.all(
    sockets.map(
      (ws, i) =>
        new Promise<void>((resolve) => {
          if (ws.readyState !== WebSocket.OPEN) {
            failed++;
            return resolve();
          }
          const ref = `c${i}`;
          const timer = setTimeout(() => {
            ws.off('message', onMsg);
            failed++;
            resolve();
          }, CHECK_TIMEOUT_MS);
          const onMsg = (d: WebSocket.RawData) => {
            const f = JSON.parse(d.toString()) as { type: string; ref?: string };
            if (f.type === 'pong' && f.ref === ref) {
              clearTimeout(timer);
              ws.off('message', onMsg);
              ok++;
              resolve();
            }
          };
          ws.on('message', onMsg);
          ws.send(JSON.stringify({ type: 'ping', ref }));
        }),
    ),
  );
  out({ type: 'checked', ok, failed, closed: unexpectedCloses });
}

void main();
