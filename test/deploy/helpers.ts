/** Test helpers for deploy: a real SSE reader over fetch, workspace fixtures, job waits. */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { api, until, type TestServer } from '../helpers/server.js';

export interface SseMessage {
  id: string | undefined;
  event: string;
  data: any;
}

/** A Server-Sent Events reader on a real HTTP response, parsed as the EventSource spec says. */
export class SseClient {
  readonly messages: SseMessage[] = [];
  readonly comments: string[] = [];
  /** Every byte received, as text (for "the key appears nowhere" checks). */
  raw = '';
  status = 0;
  headers: Headers | undefined;
  /** Resolves when the server closes the stream (or the reader is aborted). */
  ended!: Promise<void>;
  endedByServer = false;
  private readonly abort = new AbortController();
  private waiters: Array<() => void> = [];

  static async open(base: string, p: string, token: string, headers: Record<string, string> = {}): Promise<SseClient> {
    const c = new SseClient();
    const res = await fetch(base + p, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream', ...headers }, signal: c.abort.signal });
    c.status = res.status;
    c.headers = res.headers;
    if (res.status !== 200 || !res.body) {
      c.raw = await res.text();
      c.ended = Promise.resolve();
      c.endedByServer = true;
      return c;
    }
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    c.ended = (async () => {
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) {
            c.endedByServer = true;
            break;
          }
          const text = decoder.decode(value, { stream: true });
          c.raw += text;
          buf += text;
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            c.parseBlock(buf.slice(0, i));
            buf = buf.slice(i + 2);
          }
          c.wake();
        }
      } catch {
        // Aborted by close().
      } finally {
        c.wake();
      }
    })();
    return c;
  }

  private parseBlock(block: string): void {
    let id: string | undefined;
    let event = 'message';
    const data: string[] = [];
    let any = false;
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) {
        this.comments.push(line.slice(1).trim());
        continue;
      }
      const j = line.indexOf(':');
      const field = j < 0 ? line : line.slice(0, j);
      const value = j < 0 ? '' : line.slice(j + 1).replace(/^ /, '');
      if (field === 'id') id = value;
      else if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
      else continue;
      any = true;
    }
    if (!any || data.length === 0) return;
    this.messages.push({ id, event, data: JSON.parse(data.join('\n')) });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  get steps(): any[] {
    return this.messages.filter((m) => m.event === 'step').map((m) => m.data);
  }

  get end(): any | undefined {
    return this.messages.find((m) => m.event === 'end')?.data;
  }

  /** Wait (bounded) until `pred` holds over what was received. */
  async waitFor(pred: (c: SseClient) => boolean, what: string, timeoutMs = 20_000): Promise<void> {
    const t0 = Date.now();
    while (!pred(this)) {
      if (this.endedByServer) throw new Error(`stream ended while waiting for ${what}; got ${this.raw.slice(-400)}`);
      if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}; got ${this.raw.slice(-400)}`);
      await Promise.race([new Promise<void>((r) => this.waiters.push(r)), new Promise((r) => setTimeout(r, 200))]);
    }
  }

  /** Wait (bounded) for the server to close the stream. */
  async waitEnd(timeoutMs = 30_000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.ended,
      new Promise((_, rej) => (timer = setTimeout(() => rej(new Error(`stream did not end; got ${this.raw.slice(-400)}`)), timeoutMs))),
    ]);
    clearTimeout(timer);
  }

  close(): void {
    this.abort.abort();
  }
}

/** Create a workspace folder with files (paths relative to it) the way a builder's agent would. */
export function writeWorkspace(s: TestServer, orgId: string, projectName: string, files: Record<string, string>): string {
  const dir = path.join(s.workspaces, orgId, projectName);
  mkdirSync(dir, { recursive: true });
  for (const [rel, content] of Object.entries(files)) {
    const abs = path.join(dir, rel);
    mkdirSync(path.dirname(abs), { recursive: true });
    writeFileSync(abs, content);
  }
  return dir;
}

/** `.vibe/project.json` with a build section. */
export function projectJson(orgId: string, projectName: string, build?: Record<string, unknown>): string {
  return JSON.stringify({ orgId, projectName, createdBy: 'alice', createdAt: new Date().toISOString(), ...(build ? { build } : {}) }, null, 2);
}

/** Wait (bounded) until a job is no longer running; returns it with its events. */
export async function waitJob(s: TestServer, token: string, jobId: string, timeoutMs = 30_000): Promise<any> {
  return until(async () => {
    const r = await api(s, 'GET', `/api/deploy/job/${jobId}`, { token });
    return r.status === 200 && r.body.status !== 'running' ? r.body : undefined;
  }, `deploy job ${jobId} to end`, timeoutMs, 50);
}
