/** The steps of a deploy, in order (DESIGN §3). */
export const STEPS = ['prepare', 'build', 'package', 'upload', 'activate'] as const;
export type StepName = (typeof STEPS)[number];

/** `started`/`succeeded`/`failed`/`skipped` mark a step's life; `output` carries build output. */
export type StepStatus = 'started' | 'output' | 'succeeded' | 'failed' | 'skipped';

/** One event of a job (DESIGN §7): persisted with the job, streamed over SSE, published as `deploy:step`. */
export interface DeployEvent {
  /** 1, 2, 3… per job, no gaps: the SSE `id:` and what `Last-Event-ID` resumes after. */
  seq: number;
  jobId: string;
  step: StepName;
  status: StepStatus;
  message: string;
  /** ISO 8601. */
  at: string;
}

export type JobStatus = 'running' | 'succeeded' | 'failed';

export interface DeployJob {
  id: string;
  provider: string;
  orgId: string;
  projectName: string;
  userId: string;
  status: JobStatus;
  /** The step now running, or the last one reached. */
  step: StepName;
  /** Why a job failed: `build_failed`, `build_timeout`, `interrupted`, `provider_failed`, … */
  reason?: string;
  message?: string;
  /** Where the deployment answers, once activated. */
  url?: string;
  createdAt: string;
  startedAt: string;
  endedAt?: string;
  /** The node running the job (boot recovery only touches its own). */
  node: string;
  /** Process group of a running build command (killed at boot if the server died mid-build). */
  buildPid?: number;
  /** The highest seq written; the events log is authoritative. */
  lastSeq: number;
}

/** The payload of the SSE `end` event. */
export interface DeployEnd {
  jobId: string;
  status: 'succeeded' | 'failed';
  reason?: string;
  message?: string;
  url?: string;
  lastSeq: number;
  endedAt?: string;
}

export function endOf(job: DeployJob): DeployEnd {
  const end: DeployEnd = { jobId: job.id, status: job.status === 'succeeded' ? 'succeeded' : 'failed', lastSeq: job.lastSeq };
  if (job.reason) end.reason = job.reason;
  if (job.message) end.message = job.message;
  if (job.url) end.url = job.url;
  if (job.endedAt) end.endedAt = job.endedAt;
  return end;
}

export function isFinished(job: DeployJob): boolean {
  return job.status !== 'running';
}
