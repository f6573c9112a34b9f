/**
 * One HTTP/1.1 request over a raw TCP socket, with the request target sent byte for byte.
 * fetch() and http.request() normalize or refuse hostile paths (`..`, `%2e%2e`, `\`,
 * NUL); the traversal tests need the server to see exactly what an attacker would send.
 */
import net from 'node:net';

export interface RawResponse {
  /** 0 when the server closed the connection without an HTTP answer. */
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/**
 * `endAfterWrite` half-closes the socket once the request is out: a server that is still
 * waiting for the rest of a request it cannot parse then sees EOF instead of idling.
 */
export function rawGet(port: number, target: string | Buffer, headers: Record<string, string> = {}, opts: { endAfterWrite?: boolean; timeoutMs?: number } = {}): Promise<RawResponse> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`raw request timed out: ${String(target).slice(0, 100)}`));
    }, timeoutMs);
    sock.on('connect', () => {
      const head = Buffer.concat([
        Buffer.from('GET '),
        Buffer.isBuffer(target) ? target : Buffer.from(target, 'latin1'),
        Buffer.from(` HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`),
      ]);
      sock.write(head);
      if (opts.endAfterWrite) sock.end();
    });
    sock.on('data', (d) => chunks.push(d));
    sock.on('error', () => {});
    sock.on('close', () => {
      clearTimeout(timer);
      const all = Buffer.concat(chunks);
      const end = all.indexOf('\r\n\r\n');
      if (end < 0) return resolve({ status: 0, headers: {}, body: all });
      const lines = all.subarray(0, end).toString('latin1').split('\r\n');
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1] ?? 0);
      const h: Record<string, string> = {};
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        if (i > 0) h[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      let body = all.subarray(end + 4);
      if (/chunked/i.test(h['transfer-encoding'] ?? '')) body = dechunk(body);
      resolve({ status, headers: h, body });
    });
  });
}

function dechunk(b: Buffer): Buffer {
  const out: Buffer[] = [];
  let p = 0;
  for (let guard = 0; guard < 1_000_000 && p < b.length; guard++) {
    const nl = b.indexOf('\r\n', p);
    if (nl < 0) break;
    const size = parseInt(b.subarray(p, nl).toString('latin1'), 16);
    if (!size) break;
    out.push(b.subarray(nl + 2, nl + 2 + size));
    p = nl + 2 + size + 2;
  }
  return Buffer.concat(out);
}
