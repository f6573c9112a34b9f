/** Scenario sizes: the defaults, a quick set for development, a tiny set for the smoke test. */
export interface Sizes {
  /** Runs per side (alternating A B A B …). */
  runs: number;
  idleSockets: number;
  idleSessions: number;
  idleHoldMs: number;
  /** Sockets connecting at once during idle-conns. */
  idleConnectConcurrency: number;
  echoSessions: number;
  echoPings: number;
  /**
   * Pings per session before measuring (not counted): enough that both servers run
   * optimized code when the clock starts (at 5, V8 was still compiling hot paths of both
   * sides inside the measured second — 15 % of the project's samples in one profile).
   */
  echoWarmup: number;
  fanoutBytes: number;
  fanoutViewers: number;
  spawnSessions: number;
  spawnConcurrency: number;
  /** Sessions listed by `GET /api/sessions` in the rest scenario. */
  restSessions: number;
  restConnections: number;
  restDurationMs: number;
}

export const FULL: Sizes = {
  runs: 3,
  idleSockets: 5000,
  idleSessions: 50,
  idleHoldMs: 10_000,
  idleConnectConcurrency: 100,
  echoSessions: 50,
  echoPings: 200,
  echoWarmup: 50,
  fanoutBytes: 50_000_000,
  fanoutViewers: 20,
  spawnSessions: 200,
  spawnConcurrency: 10,
  restSessions: 20,
  restConnections: 10,
  restDurationMs: 5000,
};

export const QUICK: Sizes = {
  runs: 1,
  idleSockets: 500,
  idleSessions: 10,
  idleHoldMs: 2000,
  idleConnectConcurrency: 50,
  echoSessions: 10,
  echoPings: 50,
  echoWarmup: 3,
  fanoutBytes: 5_000_000,
  fanoutViewers: 5,
  spawnSessions: 40,
  spawnConcurrency: 5,
  restSessions: 10,
  restConnections: 10,
  restDurationMs: 2000,
};

/** Smallest sizes that still exercise every code path (the smoke test in `npm test`). */
export const TINY: Sizes = {
  runs: 1,
  idleSockets: 20,
  idleSessions: 2,
  idleHoldMs: 300,
  idleConnectConcurrency: 10,
  echoSessions: 2,
  echoPings: 5,
  echoWarmup: 1,
  fanoutBytes: 300_000,
  fanoutViewers: 2,
  spawnSessions: 6,
  spawnConcurrency: 2,
  restSessions: 2,
  restConnections: 2,
  restDurationMs: 500,
};
