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
