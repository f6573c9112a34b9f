import { Registry, Gauge, Histogram, Counter, collectDefaultMetrics } from 'prom-client';
import { monitorEventLoopDelay } from 'node:perf_hooks';

/** Prometheus metrics (GET /metrics) and the JSON summary (GET /api/metrics). */
export class Metrics {
  readonly registry = new Registry();
  private readonly running = new Gauge({ name: 'sm_sessions_running', help: 'Sessions with a live pty', registers: [this.registry] });
  private readonly queued = new Gauge({ name: 'sm_sessions_queued', help: 'Sessions waiting for a slot', registers: [this.registry] });
  private readonly spawn = new Histogram({
    name: 'sm_spawn_duration_seconds',
    help: 'Time from admission to a running pty',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  private readonly wsConns = new Gauge({ name: 'sm_ws_connections', help: 'Open editor WebSockets', registers: [this.registry] });
  private readonly bytesOut = new Counter({ name: 'sm_ws_bytes_out_total', help: 'Bytes of frames sent to WebSocket clients', registers: [this.registry] });
  private readonly slowDropped = new Counter({ name: 'sm_ws_slow_viewers_dropped_total', help: 'Viewers closed with 4008', registers: [this.registry] });
  private readonly loopLag = monitorEventLoopDelay({ resolution: 20 });
  private counters = { wsConnections: 0, bytesOut: 0, slowDropped: 0, spawns: 0, spawnSecondsTotal: 0, running: 0, queued: 0 };

  constructor() {
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 20 });
    this.loopLag.enable();
  }

  setRunning(n: number): void {
    this.counters.running = n;
    this.running.set(n);
  }
  setQueued(n: number): void {
    this.counters.queued = n;
    this.queued.set(n);
  }
  observeSpawn(seconds: number): void {
    this.counters.spawns++;
    this.counters.spawnSecondsTotal += seconds;
    this.spawn.observe(seconds);
  }
  wsOpened(): void {
    this.wsConnections(+1);
  }
  wsClosed(): void {
    this.wsConnections(-1);
  }
  private wsConnections(d: number): void {
    this.counters.wsConnections += d;
    this.wsConns.set(this.counters.wsConnections);
  }
  addBytesOut(n: number): void {
    this.counters.bytesOut += n;
    this.bytesOut.inc(n);
  }
  slowViewerDropped(): void {
    this.counters.slowDropped++;
    this.slowDropped.inc();
  }

  /** More sections for the JSON summary (fleet, bus), computed on read. */
  readonly extra: Record<string, () => unknown> = {};

  summary(): Record<string, unknown> {
    const mem = process.memoryUsage();
    const more: Record<string, unknown> = {};
    for (const [k, fn] of Object.entries(this.extra)) more[k] = fn();
    return {
      ...more,
      sessions: { running: this.counters.running, queued: this.counters.queued },
      spawns: this.counters.spawns,
      spawnMeanMs: this.counters.spawns ? Math.round((this.counters.spawnSecondsTotal / this.counters.spawns) * 1000 * 10) / 10 : null,
      ws: { connections: this.counters.wsConnections, bytesOut: this.counters.bytesOut, slowViewersDropped: this.counters.slowDropped },
      eventLoopLagMs: { mean: round(this.loopLag.mean / 1e6), p99: round(this.loopLag.percentile(99) / 1e6), max: round(this.loopLag.max / 1e6) },
      memory: { rss: mem.rss, heapUsed: mem.heapUsed },
      uptimeS: Math.round(process.uptime()),
    };
  }

  close(): void {
    this.loopLag.disable();
    this.registry.clear();
  }
}

function round(n: number): number {
  return Number.isFinite(n) ? Math.round(n * 100) / 100 : 0;
}
