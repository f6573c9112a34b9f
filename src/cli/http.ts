import { CliError, EXIT, exitForStatus } from './errors.js';
import type { Target } from './connection.js';

/** DELETE waits for the agent to exit (up to 10 s on the server); leave room above it. */
const REQUEST_TIMEOUT_MS = 60_000;
/**
 * The server reads at most 4 KiB of request headers when they arrive in pieces, and drops
 * the connection past it without an answer (docs/reliability.md F19). A bearer token this
 * long leaves no room for the rest: say so here instead of "connection closed".
 */
const MAX_TOKEN_BYTES = 3 * 1024;

/** The REST API with the CLI's error rules: every failure becomes a CliError with an exit code. */
export class ApiClient {
  constructor(readonly target: Target) {}

  private needToken(): string {
    const token = this.target.token;
    const bytes = token ? Buffer.byteLength(token) : 0;
    if (bytes > MAX_TOKEN_BYTES) {
      throw new CliError(
        EXIT.AUTH,
        `the token is ${bytes} bytes; the server takes at most 4 KiB of request headers, so tokens over ${MAX_TOKEN_BYTES} bytes cannot be sent (ask for one with fewer claims)`,
        'token_too_large',
      );
    }
    if (token) return token;
    throw new CliError(
      EXIT.AUTH,
      'no token: pass --token, set SESSION_MANAGER_TOKEN, or run next to a dev-mode server (its DATA_DIR/jwt-secret is used).',
      'no_token',
    );
  }

  async request<T = any>(method: string, p: string, body?: unknown, as: 'json' | 'text' = 'json'): Promise<T> {
    const token = this.needToken();
    const headers: Record<string, string> = { authorization: `Bearer ${token}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(this.target.url + p, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
    } catch (err) {
      throw unreachable(this.target.url, err);
    }
    const text = await res.text();
    if (!res.ok) {
      let code = `http_${res.status}`;
      let message = text.slice(0, 300) || res.statusText;
      try {
        const j = JSON.parse(text) as { error?: { code?: string; message?: string } };
        if (j.error?.code) code = j.error.code;
        if (j.error?.message) message = j.error.message;
      } catch {
        // Not the API's JSON error: keep the text.
      }
      throw new CliError(exitForStatus(res.status), describe(res.status, code, message, this.target), code);
    }
    if (as === 'text') return text as T;
    try {
      return (text ? JSON.parse(text) : undefined) as T;
    } catch {
      throw new CliError(EXIT.FAILURE, `the server at ${this.target.url} did not answer JSON for ${method} ${p} (is that URL a session-manager?)`);
    }
  }

  get<T = any>(p: string): Promise<T> {
    return this.request<T>('GET', p);
  }
}

function describe(status: number, code: string, message: string, target: Target): string {
  if (status === 401) {
    const hint = target.tokenSource === 'dev-secret'
      ? 'the token minted from DATA_DIR/jwt-secret was refused: is this the same server and DATA_DIR?'
      : 'pass a valid --token or SESSION_MANAGER_TOKEN';
    return `unauthorized (401): ${message} — ${hint}`;
  }
  if (status === 403) return `forbidden (403): ${message}`;
  if (status === 404) return code === 'session_not_found' ? 'no such session (404)' : `not found (404): ${message}`;
  return `${message} (${status} ${code})`;
}

/** A connection failure, said plainly. */
export function unreachable(url: string, err: unknown): CliError {
  const e = err as { name?: string; cause?: { code?: string; message?: string } };
  const why = e?.name === 'TimeoutError' ? 'timed out' : (e?.cause?.code ?? e?.cause?.message ?? (err as Error)?.message ?? 'failed');
  return new CliError(EXIT.UNREACHABLE, `cannot reach the server at ${url} (${why}). Is it running? Start it with "session-manager serve", or set --url / SESSION_MANAGER_URL.`, 'unreachable');
}
