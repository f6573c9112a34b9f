/**
 * The mailbox protocol between the supervisor (main thread) and a session actor (worker
 * thread). One MessagePort per session carries messages to the actor; what an actor says
 * goes through its thread's outbox (one ordered channel per thread, batched per loop turn).
 * Either way a session's messages keep their order, which is what makes attach seamless: a
 * replay answer arrives after every output frame it covers and before every frame it does not.
 */

/** What the actor needs to run one session. */
export interface ActorSpec {
  sessionId: string;
  command: string;
  args: string[];
  cwd: string;
  env: Record<string, string>;
  cols: number;
  rows: number;
  replayBytes: number;
  consoleLogPath: string;
  /** Output offset where this run starts (a restarted session continues its offsets). */
  baseOffset: number;
  /** Tail of the previous run's output, ending at baseOffset (restart). */
  initialRing?: Uint8Array | undefined;
  /** Fault-injection messages accepted (tests only). */
  testHooks: boolean;
  /** `acp`: the agent runs with stdio pipes and speaks the Agent Client Protocol. */
  protocol: 'pty' | 'acp';
  /** This node's cgroup base (workers/cgroup.ts); each session gets a cgroup under it. */
  cgroupBase?: string | undefined;
  /** The agent's identity when agents are isolated (AGENT_UID_RANGE). */
  runAs?: { uid: number; gid: number } | undefined;
}

/** Structured events an ACP actor reports (see workers/acp-client.ts). */
export type AgentEventFromActor =
  | { kind: 'message'; role: 'assistant'; content: string }
  | { kind: 'tool_call'; id: string; name: string; args: unknown }
  | { kind: 'tool_result'; callId: string; output: unknown; isError: boolean }
  | { kind: 'status'; state: string; detail?: string }
  | { kind: 'permission_request'; requestId: string; toolCall: unknown; options: Array<{ optionId: string; name: string; kind: string }> }
  | { kind: 'prompt_done'; promptId: string; stopReason: string }
  | { kind: 'prompt_failed'; promptId: string; error: string };

export type ToActor =
  /** The supervisor has set the terminal's size; the screen mirror follows. */
  | { t: 'resize'; cols: number; rows: number }
  | { t: 'kill'; reason: string }
  | { t: 'replay'; reqId: number; since?: number | undefined; mode?: 'screen' | undefined }
  | { t: 'ack'; offset: number }
  | { t: 'fault'; kind: 'throw' | 'crash-worker' }
  | { t: 'prompt'; id: string; text: string }
  | { t: 'cancel' }
  | { t: 'permission'; requestId: string; optionId: string | null };

export type FromActor =
  /** `inputFd`: the supervisor's own descriptor of the terminal, for input; it closes it. */
  | { t: 'spawned'; pid: number; inputFd?: number | undefined }
  | { t: 'spawn_failed'; error: string }
  /** `frame` is a ready-to-send UTF-8 JSON `output` frame (it travels as text: output-batch.ts). */
  | { t: 'out'; offset: number; length: number; frame: Uint8Array }
  | {
      t: 'replay';
      reqId: number;
      offset: number;
      end: number;
      gap: boolean;
      frame: Uint8Array | null;
      /** Screen mode: the serialized screen standing at `offset`; `frame` carries [offset, end). */
      screen?: { data: string; cols: number; rows: number } | undefined;
    }
  | { t: 'usage'; cpuMs: number; rssBytes: number }
  | { t: 'agent_event'; event: AgentEventFromActor }
  | {
      t: 'exit';
      exitCode: number | null;
      signal: string | null;
      endOffset: number;
      /** Tail of the output (kept by the supervisor for late attaches and restarts). */
      ring: Uint8Array;
      ringStart: number;
      /** How the actor ended: on its own, through `kill`, or by a fault in the actor. */
      cause: 'exit' | 'kill' | 'actor_error';
      error?: string;
    };

/** What the piscina task receives. */
export interface ActorTask {
  port: MessagePort | import('node:worker_threads').MessagePort;
  /** Names this actor in its thread's outbox batches (unique in the process). */
  key: number;
  spec: ActorSpec;
}

/**
 * Actor → supervisor traffic travels in batches on one channel per worker thread
 * (workers/outbox.ts): each batch is `[key, message][]`, or a string of `out` messages
 * (output-batch.ts), in order. The channel's port
 * arrives once, as `{t: 'outbox', port}` on the mailbox of the thread's first actor.
 */
export type OutboxBatch = Array<[number, FromActor | ThreadDrained]>;

/**
 * Key 0 of an outbox batch speaks for the thread itself: after a fatal error it has killed
 * every agent and its pty module counts no live terminal, so the supervisor may end it
 * (a worker never ends itself: see workers/session-actor.ts).
 */
export const THREAD_KEY = 0;
export interface ThreadDrained {
  t: 'thread_drained';
  threadId: number;
}

/** Build the JSON text of an `output` frame without re-encoding `data` twice. */
export function outputFrameText(sessionId: string, offset: number, data: string): string {
  return `{"type":"output","sessionId":"${sessionId}","offset":${offset},"data":${JSON.stringify(data)}}`;
}
