import type { SessionType } from './profiles.js';

export type SessionStatus =
  | 'queued'
  | 'starting'
  | 'running'
  | 'exited'
  | 'failed'
  | 'killed'
  | 'crashed'
  | 'idle_terminated'
  | 'completed'
  | 'lost';

export const TERMINAL_STATUSES: ReadonlySet<SessionStatus> = new Set(['exited', 'failed', 'killed', 'crashed', 'idle_terminated', 'completed', 'lost']);
export const LIVE_STATUSES: ReadonlySet<SessionStatus> = new Set(['starting', 'running']);

/** The persisted session record (DESIGN §2). */
export interface SessionRecord {
  id: string;
  userId: string;
  orgId: string;
  projectName: string;
  agent: string;
  type: SessionType;
  command: string | string[] | null;
  priority: number;
  metadata: Record<string, unknown>;
  status: SessionStatus;
  createdAt: string;
  startedAt: string | null;
  endedAt: string | null;
  lastActivityAt: string;
  exitCode: number | null;
  signal: string | null;
  reason: string | null;
  pid: number | null;
  port: number | null;
  cols: number;
  rows: number;
  node: string;
  workspacePath: string;
  restarts: number;
  /** Output bytes produced so far (the next chunk's offset). */
  outputOffset: number;
  /** The conversation this session's turns are kept in (agent bridge). */
  conversationId?: string | null;
  /** Set by `complete`: what the agent or owner reported. */
  summary?: string | null;
  artifacts?: unknown[] | null;
  /** Set by a terminate that gave details. */
  details?: unknown;
}

export function isTerminal(s: SessionStatus): boolean {
  return TERMINAL_STATUSES.has(s);
}
