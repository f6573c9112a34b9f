/**
 * What a scenario needs from a server under test. The project and the baseline speak
 * different protocols (uWS JSON frames vs. Socket.IO events); each adapter maps them onto
 * this one shape so every scenario drives both sides with the same code.
 */
import type { Child } from '../lib/procs.js';

export type SideName = 'project' | 'baseline';

export interface Attached {
  offset: number;
  status: string;
}

/** One editor connection. */
export interface Viewer {
  attach(sessionId: string, since?: number): Promise<Attached>;
  input(sessionId: string, data: string): void;
  /** Called for every output chunk (offset = byte offset of its first byte). */
  onOutput: ((sessionId: string, offset: number, data: string) => void) | undefined;
  /**
   * When set, output frames are first offered still JSON-encoded (frame[start, end) is the
   * escaped `data`); returning false means "decode it": `onOutput` then gets the chunk.
   */
  onOutputRaw: ((sessionId: string, offset: number, frame: Buffer, start: number, end: number) => boolean) | undefined;
  onExit: ((sessionId: string) => void) | undefined;
  /** Close code when the connection ended. */
  closed: number | undefined;
  onClose: ((code: number) => void) | undefined;
  close(): void;
}

export interface ServerUnderTest {
  side: SideName;
  child: Child;
  url: string;
  /** The bearer token the adapter uses (for load generators). */
  token: string;
  /** Start an agent running `command` (argv); resolves once it runs, with its id. */
  createSession(command: string[], opts?: { projectName?: string }): Promise<string>;
  /** End a session; resolves when the server answers (both sides wait for the agent's exit). */
  deleteSession(id: string): Promise<void>;
  connect(): Promise<Viewer>;
  /** Replace the bench org's planner of `projectName` with `cards` (creating the workspace if needed). */
  seedPlanner(projectName: string, cards: PlannerCard[]): Promise<void>;
  /** Where `PATCH` (JSON card fields) changes one card of that planner. */
  cardUrl(projectName: string, cardId: string): string;
}

/** A planner card as both sides accept it (DESIGN §7). */
export interface PlannerCard {
  id: string;
  title: string;
  status?: string;
  description?: string;
  criteria?: Array<{ id: string; text: string; done?: boolean }>;
  [extra: string]: unknown;
}

export interface StartSide {
  (opts: { dir: string; maxSessions: number; nodeArgs?: string[] }): Promise<ServerUnderTest>;
}
