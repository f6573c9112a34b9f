import type { Logger } from '../log.js';
import type { Supervisor } from './supervisor.js';

/** The reaper looks at least this often (DESIGN §7: min(IDLE_TIMEOUT_MS / 2, 30 s)). */
const MAX_CHECK_INTERVAL_MS = 30_000;

/**
 * Idle culler, outside the core like JupyterHub's: it lists sessions through the
 * supervisor's public methods and terminates the idle ones (no viewer, no pty I/O for
 * IDLE_TIMEOUT_MS). Sessions in transition (queued, starting) are never touched.
 */
export class IdleReaper {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly sup: Supervisor, private readonly log: Logger) {}

  start(): void {
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    const every = Math.max(50, Math.min(this.sup.limits.idleTimeoutMs / 2, MAX_CHECK_INTERVAL_MS));
    this.timer = setTimeout(() => {
      void this.check().finally(() => this.schedule());
    }, every);
    this.timer.unref();
  }

  async check(): Promise<void> {
    const timeout = this.sup.limits.idleTimeoutMs;
    const now = Date.now();
    for (const r of this.sup.list({ status: 'running' })) {
      const viewers = this.sup.viewers(r.id);
      const last = this.sup.lastActivity(r.id);
      if (viewers > 0 || last === undefined) continue;
      const idleMs = now - last;
      if (idleMs < timeout) continue;
      this.log.info('idle reaper: terminating session', { sessionId: r.id, idleMs, timeoutMs: timeout, viewers, reason: 'no viewer and no pty I/O' });
      await this.sup.terminate(r.id, 'idle_terminated', `idle for ${Math.round(idleMs / 1000)} s with no viewer`).catch((err: unknown) => {
        this.log.warn('idle reaper: terminate failed', { sessionId: r.id, error: err as Error });
      });
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }
}
