import type { Credentials } from './auth.js';

/** An HTTP failure with the server's stable error code (DESIGN §3), or `network`. */
export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly details?: unknown) {
    super(message);
    this.name = 'ApiError';
  }

  /** The route does not exist here (a feature not built on this server) or the thing is gone. */
  get notFound(): boolean {
    return this.status === 404;
  }
}

/** What a session looks like in the API (DESIGN §2 plus live fields). */
export interface SessionView {
  id: string;
  userId: string;
  orgId: string;
  projectName: string;
  agent: string;
  type: 'long_running' | 'one_off';
  command: string | string[] | null;
  priority: number;
  status: string;
  createdAt: string;
  startedAt: string | null;
  endedAt: string | null;
  lastActivityAt: string;
  exitCode: number | null;
  signal: string | null;
  reason: string | null;
  pid: number | null;
  cols: number;
  rows: number;
  outputOffset?: number;
  viewers?: number;
  queuePosition?: number;
  usage?: { cpuMs: number; rssBytes: number; at: string };
  restarts?: number;
  workspacePath?: string;
}

export const TERMINAL_STATUSES = new Set(['exited', 'failed', 'killed', 'crashed', 'idle_terminated', 'lost']);

type Listener = () => void;

export class Api {
  private readonly unauthorized = new Set<Listener>();

  constructor(readonly creds: Credentials) {}

  onUnauthorized(fn: Listener): void {
    this.unauthorized.add(fn);
  }

  /** `path` is under the server root, e.g. `/api/sessions`. */
  async request<T = unknown>(method: string, path: string, body?: unknown, opts: { as?: 'json' | 'text' | 'blob'; headers?: Record<string, string> } = {}): Promise<T> {
    const headers: Record<string, string> = { ...opts.headers };
    let url = path;
    if (this.creds.kind === 'token') headers.Authorization = `Bearer ${this.creds.token}`;
    else url += (url.includes('?') ? '&' : '?') + 'cohost=' + encodeURIComponent(this.creds.cohost);
    let payload: string | undefined;
    if (body !== undefined) {
      payload = JSON.stringify(body);
      headers['Content-Type'] = 'application/json';
    }
    let res: Response;
    try {
      res = await fetch(url, { method, headers, body: payload, cache: 'no-store' });
    } catch {
      throw new ApiError(0, 'network', 'Cannot reach the server.');
    }
    if (!res.ok) {
      let code = `http_${res.status}`;
      let message = res.statusText || `HTTP ${res.status}`;
      let details: unknown;
      try {
        const j = (await res.json()) as { error?: { code?: string; message?: string; details?: unknown } };
        if (j.error?.code) code = j.error.code;
        if (j.error?.message) message = j.error.message;
        details = j.error?.details;
      } catch {
        // Not a JSON error body.
      }
      if (res.status === 401) for (const fn of this.unauthorized) fn();
      throw new ApiError(res.status, code, message, details);
    }
    if (opts.as === 'text') return (await res.text()) as T;
    if (opts.as === 'blob') return (await res.blob()) as T;
    const text = await res.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  get<T = unknown>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }
  post<T = unknown>(path: string, body?: unknown): Promise<T> {
    return this.request<T>('POST', path, body ?? {});
  }
  put<T = unknown>(path: string, body: unknown, headers?: Record<string, string>): Promise<T> {
    return this.request<T>('PUT', path, body, headers ? { headers } : {});
  }
  patch<T = unknown>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PATCH', path, body);
  }
  del<T = unknown>(path: string): Promise<T> {
    return this.request<T>('DELETE', path);
  }
  text(path: string): Promise<string> {
    return this.request<string>('GET', path, undefined, { as: 'text' });
  }
  blob(path: string): Promise<Blob> {
    return this.request<Blob>('GET', path, undefined, { as: 'blob' });
  }
}

export function enc(s: string): string {
  return encodeURIComponent(s);
}
