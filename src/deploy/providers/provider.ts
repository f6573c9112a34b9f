import type { PackageResult } from '../packager.js';
import type { DeployJob } from '../types.js';

/** What a provider gets for a job's upload and activate steps. */
export interface DeployContext {
  job: DeployJob;
  pkg: PackageResult;
  /** Cancelled when the server shuts down mid-job. */
  signal: AbortSignal;
  /** Add a progress line to the running step's events. */
  note(message: string): void;
}

export interface Uploaded {
  message: string;
  /** The provider's id of the uploaded release, handed to `activate`. */
  ref: string;
}

export interface Activated {
  message: string;
  url?: string;
}

/**
 * A deploy target. The job runner owns steps, events and errors; a provider only moves
 * the package and answers status/aliases/undeploy. Failures throw (an AppError when the
 * client should see a specific code); messages must never carry a credential.
 */
export interface DeployProvider {
  readonly name: string;
  /** Throws `SM_ERR_DEPLOY_PROVIDER_UNAVAILABLE` (503) when the server lacks its configuration. */
  assertAvailable(): void;
  upload(ctx: DeployContext): Promise<Uploaded>;
  activate(ctx: DeployContext, uploaded: Uploaded): Promise<Activated>;
  status(orgId: string, projectName: string): Promise<Record<string, unknown>>;
  syncAliases(orgId: string, projectName: string, body: Record<string, unknown>): Promise<Record<string, unknown>>;
  undeploy(orgId: string, projectName: string): Promise<Record<string, unknown>>;
}
