import { randomUUID } from 'node:crypto';
import { realpath, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { AppError, isAppError, storageError } from '../errors.js';
import type { Bus } from '../bus/bus.js';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import type { Store } from '../store/store.js';
import { runBuild, type BuildRun } from './build-runner.js';
import { BUILD_MARKER_ENV, killOrphanBuild } from './orphans.js';
import { packageDir, PackageError, type PackageResult } from './packager.js';
import { ProjectConfigError, readBuildSettings, resolveInside, type BuildSettings } from './project-config.js';
import type { DeployContext, DeployProvider } from './providers/provider.js';
import { endOf, isFinished, type DeployEnd, type DeployEvent, type DeployJob, type StepName, type StepStatus } from './types.js';

/** Store collection of job documents; each job's events are the log `deploy-jobs/<id>`. */
export const DEPLOY_JOBS = 'deploy-jobs';
/** Finished jobs kept in memory (events included) so late SSE readers need no disk read. */
const FINISHED_KEPT = 50;
/** A follower of a job running on another node re-reads the store this often. */
const REMOTE_POLL_MS = 1000;
/** Shutdown waits this long for running jobs to record their interruption. */
const CLOSE_DEADLINE_MS = 3000;
/** Names never passed to a build, whatever AGENT_ENV_PASSTHROUGH says (as for agents). */
const NEVER_PASS = new Set(['JWT_SECRET', 'SPINFORGE_PARTNER_KEY', 'REDIS_URL', 'REDIS_PASSWORD', 'JWT_JWKS_URL']);

export function eventsLog(jobId: string): string {
  return `${DEPLOY_JOBS}/${jobId}`;
}

/** Receives a job's events in seq order, then its end. */
export interface JobListener {
  event(ev: DeployEvent): void;
  end(end: DeployEnd): void;
}

interface Tracked {
  job: DeployJob;
  events: DeployEvent[];
  listeners: Set<JobListener>;
  abort: AbortController;
  build: BuildRun | undefined;
  /** Persistence of this job, in order (events log appends and document writes). */
  writes: Promise<void>;
  /** The last write of this job failed (disk full, read-only). */
  writeError?: unknown;
  /** Resolves when the job has ended and everything about it is persisted. */
  settled: Promise<void>;
}

/** A step that ends the job: `reason` is the machine-readable why. */
class StepFailure extends Error {
  constructor(readonly reason: string, message: string) {
    super(message);
  }
}

export interface DeployDeps {
  store: Store;
  bus: Bus;
  log: Logger;
  config: Config;
  providers: ReadonlyMap<string, DeployProvider>;
  /** Values redacted from every event message (server secrets). */
  secrets: readonly string[];
  /** The server's environment (PATH, HOME, LANG and AGENT_ENV_PASSTHROUGH names for builds). */
  serverEnv: Record<string, string | undefined>;
}

/**
 * Deploy jobs (DESIGN §3, §7): one running job per project; steps prepare → build →
 * package → upload → activate, each reported as events `{seq, jobId, step, status,
 * message, at}` that are persisted with the job, delivered to followers (SSE) and
 * published as `deploy:step` on `project:<orgId>/<projectName>`. Followers get every event
 * after the seq they name, exactly once, then the end. A job found `running` at boot (this
 * node died mid-job) is marked `failed`/`interrupted` and its build's leftovers killed.
 */
export class DeployService {
  private readonly tracked = new Map<string, Tracked>();
  private readonly finished: string[] = [];
  /** `<orgId>/<projectName>` → the running job's id. */
  private readonly running = new Map<string, string>();
  private closing = false;

  constructor(private readonly d: DeployDeps) {}

  provider(name: string): DeployProvider {
    const p = this.d.providers.get(name);
    if (!p) throw new AppError('SM_ERR_DEPLOY_UNKNOWN_PROVIDER', `No deploy provider "${name.slice(0, 64)}"; this server has ${[...this.d.providers.keys()].join(', ')}.`);
    return p;
  }

  runningJob(orgId: string, projectName: string): string | undefined {
    return this.running.get(`${orgId}/${projectName}`);
  }

  /** Boot recovery: this node's jobs still `running` were interrupted. */
  async recover(): Promise<void> {
    const docs = await this.d.store.list<DeployJob>(DEPLOY_JOBS);
    for (const j of docs) {
      if (!j || typeof j.id !== 'string' || j.status !== 'running' || j.node !== this.d.config.nodeId) continue;
      const events = await this.d.store.readLog<DeployEvent>(eventsLog(j.id)).catch(() => [] as DeployEvent[]);
      j.lastSeq = events.reduce((m, e) => Math.max(m, e.seq ?? 0), j.lastSeq ?? 0);
      if (j.buildPid) {
        const killed = await killOrphanBuild(j.buildPid, j.id);
        if (killed) this.d.log.warn('killed the leftovers of an interrupted build', { jobId: j.id, processes: killed });
      }
      const message = `interrupted: the server stopped during the ${j.step} step`;
      const ev: DeployEvent = { seq: j.lastSeq + 1, jobId: j.id, step: j.step, status: 'failed', message, at: new Date().toISOString() };
      await this.d.store.append(eventsLog(j.id), ev);
      j.lastSeq = ev.seq;
      j.status = 'failed';
      j.reason = 'interrupted';
      j.message = message;
      j.endedAt = ev.at;
      delete j.buildPid;
      await this.d.store.put(DEPLOY_JOBS, j.id, j);
      await rm(this.zipPath(j.id), { force: true });
      this.d.log.warn('deploy job interrupted by a restart', { jobId: j.id, orgId: j.orgId, projectName: j.projectName, step: j.step });
    }
  }

  /**
   * Claim the project and start a job in the background. The claim is synchronous, so of
   * two racing requests exactly one gets the job and the other a 409 naming it.
   */
  start(provider: DeployProvider, orgId: string, projectName: string, userId: string, workspace: string): DeployJob {
    if (this.closing) throw new AppError('SM_ERR_SHUTTING_DOWN');
    const key = `${orgId}/${projectName}`;
    const busy = this.running.get(key);
    if (busy) {
      throw new AppError('SM_ERR_DEPLOY_RUNNING', `A deploy of ${key} is already running (job ${busy}).`, { details: { jobId: busy } });
    }
    const now = new Date().toISOString();
    const job: DeployJob = {
      id: randomUUID(),
      provider: provider.name,
      orgId,
      projectName,
      userId,
      status: 'running',
      step: 'prepare',
      createdAt: now,
      startedAt: now,
      node: this.d.config.nodeId,
      lastSeq: 0,
    };
    let settle!: () => void;
    const t: Tracked = {
      job,
      events: [],
      listeners: new Set(),
      abort: new AbortController(),
      build: undefined,
      writes: Promise.resolve(),
      settled: new Promise<void>((r) => (settle = r)),
    };
    this.running.set(key, job.id);
    this.tracked.set(job.id, t);
    this.persistDoc(t);
    this.d.log.info('deploy started', { jobId: job.id, provider: provider.name, orgId, projectName, userId });
    void this.run(t, provider, workspace)
      .catch((err: unknown) => this.d.log.error('deploy runner failed', { jobId: job.id, error: err as Error }))
      .finally(async () => {
        this.running.delete(key);
        await t.writes;
        await rm(this.zipPath(job.id), { force: true }).catch(() => {});
        this.retire(job.id);
        settle();
      });
    return { ...job };
  }

  /** A job's document (no events) or undefined. */
  async peek(id: string): Promise<DeployJob | undefined> {
    const t = this.tracked.get(id);
    if (t) return { ...t.job };
    return this.d.store.get<DeployJob>(DEPLOY_JOBS, id);
  }

  /** A job with its events. */
  async get(id: string): Promise<(DeployJob & { events: DeployEvent[] }) | undefined> {
    const t = this.tracked.get(id);
    if (t) return { ...t.job, events: [...t.events] };
    const job = await this.d.store.get<DeployJob>(DEPLOY_JOBS, id);
    if (!job) return undefined;
    const events = await this.d.store.readLog<DeployEvent>(eventsLog(id));
    return { ...job, events: dedupe(events) };
  }

  /** A project's jobs, newest first. */
  async list(orgId: string, projectName: string, limit: number): Promise<DeployJob[]> {
    const docs = await this.d.store.list<DeployJob>(DEPLOY_JOBS);
    const byId = new Map<string, DeployJob>();
    for (const j of docs) if (j && j.orgId === orgId && j.projectName === projectName) byId.set(j.id, j);
    for (const t of this.tracked.values()) if (t.job.orgId === orgId && t.job.projectName === projectName) byId.set(t.job.id, { ...t.job });
    return [...byId.values()].sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0)).slice(0, limit);
  }

  /**
   * Deliver every event with seq > `after`, then live ones, then the end, to `l`.
   * Returns a function that stops the delivery, or undefined when there is no such job.
   * For a job this node runs (or ran recently) replay and subscription happen in one
   * synchronous step, so nothing is lost or repeated between them.
   */
  async follow(id: string, after: number, l: JobListener): Promise<(() => void) | undefined> {
    const t = this.tracked.get(id);
    if (t) {
      for (const ev of t.events) if (ev.seq > after) l.event(ev);
      if (isFinished(t.job)) {
        l.end(endOf(t.job));
        return () => {};
      }
      t.listeners.add(l);
      return () => t.listeners.delete(l);
    }
    return this.followStored(id, after, l);
  }

  /** A job not tracked here: finished (from the store), or running on another node (polled). */
  private async followStored(id: string, after: number, l: JobListener): Promise<(() => void) | undefined> {
    let job = await this.d.store.get<DeployJob>(DEPLOY_JOBS, id);
    if (!job) return undefined;
    let last = after;
    let stopped = false;
    const pump = async (): Promise<boolean> => {
      const events = dedupe(await this.d.store.readLog<DeployEvent>(eventsLog(id)));
      for (const ev of events) {
        if (stopped) return true;
        if (ev.seq > last) {
          l.event(ev);
          last = ev.seq;
        }
      }
      if (isFinished(job!)) {
        if (!stopped) l.end(endOf(job!));
        return true;
      }
      return false;
    };
    if (await pump()) return () => {};
    let timer: NodeJS.Timeout | undefined;
    const tick = async () => {
      if (stopped) return;
      try {
        job = (await this.d.store.get<DeployJob>(DEPLOY_JOBS, id)) ?? job;
        if (await pump()) return;
      } catch (err) {
        this.d.log.warn('could not poll a deploy job', { jobId: id, error: err as Error });
      }
      if (!stopped) timer = setTimeout(() => void tick(), REMOTE_POLL_MS).unref();
    };
    timer = setTimeout(() => void tick(), REMOTE_POLL_MS).unref();
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    };
  }

  /** Cancel running jobs (they end `failed`/`interrupted`), wait for their records. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    const live = [...this.tracked.values()].filter((t) => !isFinished(t.job));
    for (const t of live) {
      t.abort.abort();
      t.build?.cancel();
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(live.map((t) => t.settled)),
      new Promise<void>((r) => (timer = setTimeout(r, CLOSE_DEADLINE_MS))),
    ]);
    if (timer) clearTimeout(timer);
  }

  // ---- the job ---------------------------------------------------------------------------

  private async run(t: Tracked, provider: DeployProvider, workspace: string): Promise<void> {
    const job = t.job;
    try {
      // prepare
      this.begin(t, 'prepare', `deploying ${job.orgId}/${job.projectName} with ${provider.name}`);
      try {
        provider.assertAvailable();
      } catch (err) {
        throw new StepFailure('provider_not_configured', (err as Error).message);
      }
      const ws = await stat(workspace).catch(() => undefined);
      if (!ws?.isDirectory()) throw new StepFailure('no_workspace', `The workspace of ${job.orgId}/${job.projectName} does not exist.`);
      let settings: BuildSettings;
      try {
        settings = await readBuildSettings(workspace);
      } catch (err) {
        if (err instanceof ProjectConfigError) throw new StepFailure('bad_project_config', err.message);
        throw err;
      }
      this.emit(t, 'prepare', 'succeeded', settings.command ? `build command: ${settings.command}` : 'no build.command in .vibe/project.json');
      this.checkAbort(t);

      // build
      this.begin(t, 'build', settings.command ? `$ ${settings.command}` : 'nothing to build');
      if (settings.command) await this.build(t, workspace, settings);
      else this.emit(t, 'build', 'skipped', 'no build.command in .vibe/project.json: publishing static files');
      this.checkAbort(t);

      // package
      this.begin(t, 'package', 'collecting files');
      const pkg = await this.package(t, workspace, settings);
      this.checkAbort(t);

      // upload
      const ctx: DeployContext = { job: t.job, pkg, signal: t.abort.signal, note: (m) => this.emit(t, t.job.step, 'output', m) };
      this.begin(t, 'upload', `uploading to ${provider.name}`);
      const uploaded = await provider.upload(ctx);
      this.emit(t, 'upload', 'succeeded', uploaded.message);
      this.checkAbort(t);

      // activate
      this.begin(t, 'activate', 'activating the release');
      const act = await provider.activate(ctx, uploaded);
      if (act.url) job.url = act.url;
      this.emit(t, 'activate', 'succeeded', act.message);
      this.end(t, 'succeeded', undefined, act.url ? `deployed: ${act.url}` : 'deployed');
    } catch (err) {
      let reason: string;
      let message: string;
      if (t.abort.signal.aborted) {
        reason = 'interrupted';
        message = `interrupted: the server shut down during the ${job.step} step`;
      } else if (err instanceof StepFailure) {
        reason = err.reason;
        message = err.message;
      } else if (err instanceof PackageError) {
        reason = 'package_failed';
        message = `packaging failed: ${err.message}`;
      } else if (isAppError(err)) {
        reason = err.code;
        message = err.message;
      } else {
        reason = 'internal_error';
        message = `${job.step} failed: ${(err as Error).message ?? String(err)}`;
        this.d.log.error('deploy step failed', { jobId: job.id, step: job.step, error: err as Error });
      }
      this.emit(t, job.step, 'failed', message);
      this.end(t, 'failed', reason, message);
    }
  }

  private async build(t: Tracked, workspace: string, settings: BuildSettings): Promise<void> {
    const run = runBuild({
      command: settings.command!,
      cwd: workspace,
      env: this.buildEnv(t.job, workspace),
      timeoutMs: settings.timeoutMs,
      onOutput: (text) => this.emit(t, 'build', 'output', text),
    });
    t.build = run;
    if (run.pid !== undefined) {
      t.job.buildPid = run.pid;
      this.persistDoc(t);
    }
    const r = await run.done;
    t.build = undefined;
    delete t.job.buildPid;
    this.persistDoc(t);
    if (r.spawnError) throw new StepFailure('build_failed', `the build command could not start: ${r.spawnError}`);
    if (t.abort.signal.aborted || r.cancelled) throw new StepFailure('interrupted', 'build cancelled');
    if (r.timedOut) throw new StepFailure('build_timeout', `the build command timed out after ${settings.timeoutMs} ms and was killed`);
    if (r.exitCode !== 0) {
      const how = r.signal ? `was killed by ${r.signal}` : `exited with code ${r.exitCode}`;
      throw new StepFailure('build_failed', `the build command ${how}`);
    }
    this.emit(t, 'build', 'succeeded', `build finished (${r.outputBytes} bytes of output)`);
  }

  /** DESIGN §7: `build.output` if set, else `dist/` if it exists, else the workspace minus dotfiles. */
  private async package(t: Tracked, workspace: string, settings: BuildSettings): Promise<PackageResult> {
    const realWs = await realpath(workspace);
    let source: string;
    if (settings.output) {
      const abs = resolveInside(realWs, settings.output);
      const real = abs ? await realpath(abs).catch(() => undefined) : undefined;
      if (!abs || !real || resolveInside(realWs, path.relative(realWs, real)) === undefined) {
        throw new StepFailure('bad_build_output', `build.output "${settings.output}" is not a folder inside the workspace.`);
      }
      if (!(await stat(real)).isDirectory()) throw new StepFailure('bad_build_output', `build.output "${settings.output}" is not a folder.`);
      source = real;
    } else {
      const dist = path.join(realWs, 'dist');
      const st = await stat(dist).catch(() => undefined);
      const real = st?.isDirectory() ? await realpath(dist).catch(() => undefined) : undefined;
      source = real && real.startsWith(realWs + path.sep) ? real : realWs;
    }
    const rel = path.relative(realWs, source) || '.';
    const pkg = await packageDir(source, this.zipPath(t.job.id));
    if (pkg.files.length === 0) throw new StepFailure('nothing_to_publish', `${rel === '.' ? 'the workspace' : `${rel}/`} holds no files to publish.`);
    this.emit(t, 'package', 'succeeded', `${pkg.files.length} files (${pkg.bytes} bytes) from ${rel === '.' ? 'the workspace' : `${rel}/`} → zip of ${pkg.zipBytes} bytes`);
    return pkg;
  }

  /** A build's environment: an allowlist, like an agent's, never process.env wholesale. */
  private buildEnv(job: DeployJob, workspace: string): Record<string, string> {
    const e = this.d.serverEnv;
    const env: Record<string, string> = {};
    for (const name of this.d.config.agentEnvPassthrough) {
      const v = e[name];
      if (v !== undefined && !NEVER_PASS.has(name)) env[name] = v;
    }
    Object.assign(env, {
      PATH: e.PATH ?? '/usr/local/bin:/usr/bin:/bin',
      HOME: e.HOME ?? workspace,
      LANG: e.LANG ?? 'C.UTF-8',
      TERM: 'dumb',
      CI: '1',
      WORKSPACE_DIR: workspace,
      ORG_ID: job.orgId,
      PROJECT_NAME: job.projectName,
      DEPLOY_JOB_ID: job.id,
      DEPLOY_PROVIDER: job.provider,
      [BUILD_MARKER_ENV]: job.id,
    });
    for (const [k, v] of Object.entries(env)) if (this.d.secrets.some((s) => v.includes(s))) delete env[k];
    return env;
  }

  private zipPath(jobId: string): string {
    return path.join(this.d.config.deployDir, '.jobs', `${jobId}.zip`);
  }

  private checkAbort(t: Tracked): void {
    if (t.abort.signal.aborted) throw new StepFailure('interrupted', 'cancelled');
  }

  // ---- events ----------------------------------------------------------------------------

  private begin(t: Tracked, step: StepName, message: string): void {
    t.job.step = step;
    this.persistDoc(t);
    this.emit(t, step, 'started', message);
  }

  private emit(t: Tracked, step: StepName, status: StepStatus, message: string): DeployEvent {
    const job = t.job;
    const ev: DeployEvent = { seq: ++job.lastSeq, jobId: job.id, step, status, message: this.redact(message), at: new Date().toISOString() };
    t.events.push(ev);
    this.persist(t, () => this.d.store.append(eventsLog(job.id), ev));
    this.d.bus
      .publish(`project:${job.orgId}/${job.projectName}`, 'deploy:step', { ...ev, orgId: job.orgId, projectName: job.projectName, provider: job.provider })
      .catch((err: unknown) => this.d.log.warn('bus publish failed', { jobId: job.id, error: err as Error }));
    for (const l of [...t.listeners]) {
      try {
        l.event(ev);
      } catch (err) {
        this.d.log.warn('a deploy follower failed', { jobId: job.id, error: err as Error });
      }
    }
    return ev;
  }

  private end(t: Tracked, status: 'succeeded' | 'failed', reason: string | undefined, message: string): void {
    const job = t.job;
    job.status = status;
    if (reason) job.reason = reason;
    job.message = this.redact(message);
    job.endedAt = new Date().toISOString();
    this.persistDoc(t);
    const end = endOf(job);
    for (const l of [...t.listeners]) {
      try {
        l.end(end);
      } catch {
        // A follower that fails at the end changes nothing.
      }
    }
    t.listeners.clear();
    this.d.log.info('deploy ended', { jobId: job.id, status, reason, orgId: job.orgId, projectName: job.projectName });
  }

  /** Resolves once everything written for a job so far is stored (answer 202 after it). */
  async written(id: string): Promise<void> {
    const t = this.tracked.get(id);
    if (!t) return;
    await t.writes;
    if (t.writeError) throw storageError(t.writeError);
  }

  private persistDoc(t: Tracked): void {
    const snapshot = { ...t.job };
    this.persist(t, () => this.d.store.put(DEPLOY_JOBS, snapshot.id, snapshot));
  }

  private persist(t: Tracked, fn: () => Promise<void>): void {
    t.writes = t.writes.then(fn).catch((err: unknown) => {
      t.writeError = err;
      this.d.log.error('could not persist a deploy job', { jobId: t.job.id, error: err as Error });
    });
  }

  /** Keep a finished job in memory for a while (late followers), then rely on the store. */
  private retire(id: string): void {
    this.finished.push(id);
    while (this.finished.length > FINISHED_KEPT) this.tracked.delete(this.finished.shift()!);
  }

  private redact(s: string): string {
    let out = s;
    for (const secret of this.d.secrets) if (out.includes(secret)) out = out.split(secret).join('[redacted]');
    return out;
  }
}

/** Events by seq, each once (a log is append-only, but be strict about what is replayed). */
function dedupe(events: DeployEvent[]): DeployEvent[] {
  const seen = new Set<number>();
  const out: DeployEvent[] = [];
  for (const e of events) {
    if (!e || typeof e.seq !== 'number' || seen.has(e.seq)) continue;
    seen.add(e.seq);
    out.push(e);
  }
  return out.sort((a, b) => a.seq - b.seq);
}
