/**
 * Physical limit: uWebSockets.js fanning a payload out from memory to every connected
 * client, in the project's `output` frame format (64 KiB of data per frame), publishing
 * to one topic and pausing while any client's buffer is above a high mark. No pty, no
 * threads, no JSON encoding on the hot path: the ceiling for delivery to these clients.
 * Usage: node uws-fanout.js <payload file>; prints "uws-fanout ready at ws://…/ws".
 * A client's {"type":"go"} starts the stream; an `exit` frame ends it.
 */
import { readFileSync } from 'node:fs';
import uWS from 'uWebSockets.js';
import { base64TerminalText } from '../lib/payload.js';

/** Data per frame: the project's coalescing limit (COALESCE_BYTES). */
const FRAME_DATA = 64 * 1024;
/** Publish while every client has less than this buffered (the project's WS_MAX_BACKPRESSURE default). */
const HIGH_WATER = 4 * 1024 * 1024;
/** Re-check for room this often, in case no drain event comes. */
const PUMP_EVERY_MS = 5;

/** A session id shaped like the project's (a UUID), so frames are the same size and shape. */
const SESSION_ID = '00000000-0000-4000-8000-000000000000';

const file = process.argv[2];
if (!file) {
  process.stderr.write('usage: uws-fanout.js <payload file>\n');
  process.exit(2);
}
const body = base64TerminalText(readFileSync(file));
const frames: Buffer[] = [];
for (let off = 0; off < body.length; off += FRAME_DATA) {
  const data = body.slice(off, off + FRAME_DATA);
  frames.push(Buffer.from(`{"type":"output","sessionId":"${SESSION_ID}","offset":${off},"data":${JSON.stringify(data)}}`));
}
const exitFrame = Buffer.from(`{"type":"exit","sessionId":"${SESSION_ID}","exitCode":0,"signal":null}`);

const sockets = new Set<uWS.WebSocket<object>>();
const app = uWS.App();
let next = -1;
let timer: NodeJS.Timeout | undefined;

function room(): boolean {
  for (const ws of sockets) if (ws.getBufferedAmount() > HIGH_WATER) return false;
  return true;
}

function pump(): void {
  if (next < 0 || next > frames.length) return;
  while (next < frames.length && room()) app.publish('s', frames[next++]!, false);
  if (next === frames.length && room()) {
    app.publish('s', exitFrame, false);
    next++;
    if (timer) clearInterval(timer);
  }
}

app.ws<object>('/ws', {
  compression: uWS.DISABLED,
  maxPayloadLength: 64 * 1024,
  maxBackpressure: 64 * 1024 * 1024,
  closeOnBackpressureLimit: 0,
  idleTimeout: 120,
  open: (ws) => {
    sockets.add(ws);
    ws.subscribe('s');
  },
  message: (_ws, msg) => {
    const text = Buffer.from(msg).toString('utf8');
    if (next < 0 && text.includes('"go"')) {
      next = 0;
      timer = setInterval(pump, PUMP_EVERY_MS);
      pump();
    }
  },
  drain: () => pump(),
  close: (ws) => {
    sockets.delete(ws);
  },
});

app.listen('127.0.0.1', 0, (s) => {
  if (!s) {
    process.stderr.write('uws-fanout: cannot listen\n');
    process.exit(1);
  }
  process.stdout.write(`uws-fanout ready at ws://127.0.0.1:${uWS.us_socket_local_port(s)}/ws\n`);
});

process.on('SIGTERM', () => {
  if (timer) clearInterval(timer);
  process.exit(0);
});
