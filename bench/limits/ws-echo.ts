/**
 * Latency limit for the echo scenario: a uWS server that answers each `input` frame at once
 * with the `output` frame `cat` would produce (the line, then "\r\n"), in the project's /ws
 * frame format. No pty, no threads, no agent: what the driver, the loopback network and the
 * scheduler alone cost each ping on this machine, at the same concurrency.
 * Usage: node ws-echo.js; prints "ws-echo ready at ws://…/ws".
 */
import uWS from 'uWebSockets.js';

const offsets = new Map<string, number>();
const app = uWS.App();

function output(ws: uWS.WebSocket<object>, sessionId: string, data: string): void {
  const offset = offsets.get(sessionId) ?? 0;
  offsets.set(sessionId, offset + Buffer.byteLength(data));
  ws.send(JSON.stringify({ type: 'output', sessionId, offset, data }), false);
}

app.ws<object>('/ws', {
  compression: uWS.DISABLED,
  maxPayloadLength: 64 * 1024,
  idleTimeout: 120,
  message: (ws, msg) => {
    const f = JSON.parse(Buffer.from(msg).toString('utf8')) as { type: string; sessionId?: string; data?: string };
    if (f.type === 'attach' && f.sessionId) {
      ws.send(JSON.stringify({ type: 'attached', sessionId: f.sessionId, offset: 0, status: 'running' }), false);
      output(ws, f.sessionId, 'READY\r\n');
    } else if (f.type === 'input' && f.sessionId && typeof f.data === 'string') {
      // The terminal turns the typed "\r" into a newline for cat, and cat's "\n" into "\r\n".
      output(ws, f.sessionId, `${f.data.replace(/\r$/, '')}\r\n`);
    } else if (f.type === 'ping') ws.send('{"type":"pong"}', false);
  },
});

app.listen('127.0.0.1', 0, (s) => {
  if (!s) {
    process.stderr.write('ws-echo: cannot listen\n');
    process.exit(1);
  }
  process.stdout.write(`ws-echo ready at ws://127.0.0.1:${uWS.us_socket_local_port(s)}/ws\n`);
});

process.on('SIGTERM', () => process.exit(0));
