/**
 * JSON over HTTP with a bearer token, bounded in time.
 *
 * The driver shares the machine with the server it measures, so it must cost little:
 * `http.request` on a keep-alive agent costs the driver ~0.1 ms of CPU per call here, where
 * `fetch` (undici, with an `AbortSignal.timeout` per call) cost ~0.7 ms. Both sides are
 * driven by this same client.
 */
import http from 'node:http';

const HTTP_TIMEOUT_MS = 30_000;
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

export function call(url: string, method: string, token: string, body?: unknown): Promise<{ status: number; body: any }> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const headers: Record<string, string | number> = { authorization: `Bearer ${token}` };
  if (payload !== undefined) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = Buffer.byteLength(payload);
  }
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent, timeout: HTTP_TIMEOUT_MS }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          // not JSON
        }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: no answer in ${HTTP_TIMEOUT_MS} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}
