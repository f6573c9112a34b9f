/** Poll `cond` until true; fail after `timeoutMs` (bounded waits, no timing assertions). */
export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A logger that keeps lines in memory instead of printing them. */
export const logged: Array<{ level: string; msg: string; fields?: Record<string, unknown> }> = [];
const line = (level: string) => (msg: string, fields?: Record<string, unknown>) => void logged.push({ level, msg, fields });
export const quietLog = { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error') };

/** Connections the Redis server sees, not counting the one asking (CLIENT LIST). */
export async function serverClients(url: string): Promise<number> {
  const { Redis } = await import('ioredis');
  const raw = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  raw.on('error', () => {});
  try {
    await raw.connect();
    const list = (await raw.call('CLIENT', 'LIST')) as string;
    return list.split('\n').filter((l) => l.trim()).length - 1;
  } finally {
    raw.disconnect();
  }
}

/** Open TCP sockets of this process (to show that close() leaves none behind). */
export function tcpHandles(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;
}

/** Collect unhandled rejections between `start()` and `stop()`. */
export function watchUnhandled(): { errors: unknown[]; stop(): void } {
  const errors: unknown[] = [];
  const on = (e: unknown) => errors.push(e);
  process.on('unhandledRejection', on);
  return { errors, stop: () => process.off('unhandledRejection', on) };
}
