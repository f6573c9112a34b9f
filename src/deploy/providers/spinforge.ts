import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { AppError } from '../../errors.js';
import { isPlainObject } from '../../validate.js';
import type { Activated, DeployContext, DeployProvider, Uploaded } from './provider.js';

/** The header that carries SPINFORGE_PARTNER_KEY to SpinForge (and nowhere else). */
export const SPINFORGE_KEY_HEADER = 'X-Partner-Key';
/** A control call (status, activate, aliases, undeploy) gives up after this. */
const CALL_TIMEOUT_MS = 30_000;
/** An upload gives up after this (packages reach hundreds of MiB). */
const UPLOAD_TIMEOUT_MS = 10 * 60 * 1000;
/** How much of an upstream error body is quoted back, after redaction. */
const ERROR_EXCERPT_CHARS = 300;
/** sync-aliases accepts at most this many domains. */
const MAX_DOMAINS = 100;
const HOSTNAME_RE = /^(?=.{1,253}$)(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

interface Answer {
  status: number;
  body: unknown;
}

/**
 * SpinForge hosting, through its partner API at SPINFORGE_API_URL. Paths (relative to it):
 *   POST   /sites/:orgId/:projectName/deployments                  body: the zip → {deploymentId}
 *   POST   /sites/:orgId/:projectName/deployments/:id/activate     → {url?, domains?}
 *   GET    /sites/:orgId/:projectName                              → the site (404: none)
 *   POST   /sites/:orgId/:projectName/aliases/sync                 {domains?}
 *   DELETE /sites/:orgId/:projectName
 * The partner key rides in `X-Partner-Key` on these calls only. Nothing the server sends
 * back (events, errors, status) quotes it: upstream text is redacted before use.
 */
export class SpinforgeProvider implements DeployProvider {
  readonly name = 'spinforge';

  constructor(private readonly apiUrl: string | undefined, private readonly partnerKey: string | undefined) {}

  assertAvailable(): void {
    if (!this.partnerKey) throw new AppError('SM_ERR_DEPLOY_PROVIDER_UNAVAILABLE', 'The spinforge provider needs SPINFORGE_PARTNER_KEY, which this server does not have.');
    if (!this.apiUrl) throw new AppError('SM_ERR_DEPLOY_PROVIDER_UNAVAILABLE', 'The spinforge provider is disabled: SPINFORGE_PARTNER_KEY is set but SPINFORGE_API_URL is not.');
  }

  async upload(ctx: DeployContext): Promise<Uploaded> {
    const { orgId, projectName, id } = ctx.job;
    const body = Readable.toWeb(createReadStream(ctx.pkg.zipPath)) as unknown as ReadableStream<Uint8Array>;
    const a = await this.call('upload', 'POST', this.sitePath(orgId, projectName, '/deployments'), {
      body,
      headers: { 'Content-Type': 'application/zip', 'Content-Length': String(ctx.pkg.zipBytes), 'X-Deploy-Job-Id': id },
      timeoutMs: UPLOAD_TIMEOUT_MS,
      signal: ctx.signal,
    });
    const b = isPlainObject(a.body) ? a.body : {};
    const ref = typeof b.deploymentId === 'string' && b.deploymentId ? b.deploymentId : typeof b.id === 'string' && b.id ? b.id : id;
    return { message: `uploaded ${ctx.pkg.zipBytes} bytes to SpinForge (deployment ${this.redact(ref)})`, ref };
  }

  async activate(ctx: DeployContext, uploaded: Uploaded): Promise<Activated> {
    const { orgId, projectName, id } = ctx.job;
    const a = await this.call('activate', 'POST', this.sitePath(orgId, projectName, `/deployments/${encodeURIComponent(uploaded.ref)}/activate`), {
      json: { jobId: id },
      signal: ctx.signal,
    });
    const b = isPlainObject(a.body) ? a.body : {};
    const url = typeof b.url === 'string' ? this.redact(b.url) : undefined;
    const domains = Array.isArray(b.domains) ? b.domains.filter((d): d is string => typeof d === 'string').map((d) => this.redact(d)) : [];
    const out: Activated = { message: url ? `live at ${url}` : `activated${domains.length ? ` for ${domains.join(', ')}` : ''}` };
    if (url) out.url = url;
    return out;
  }

  async status(orgId: string, projectName: string): Promise<Record<string, unknown>> {
    this.assertAvailable();
    const a = await this.call('status', 'GET', this.sitePath(orgId, projectName, ''), { allow404: true });
    if (a.status === 404) return { provider: this.name, orgId, projectName, deployed: false };
    return { provider: this.name, orgId, projectName, deployed: true, remote: this.scrub(a.body) };
  }

  async syncAliases(orgId: string, projectName: string, body: Record<string, unknown>): Promise<Record<string, unknown>> {
    this.assertAvailable();
    const json: Record<string, unknown> = {};
    if (body.domains !== undefined) {
      const d = body.domains;
      if (!Array.isArray(d) || d.length > MAX_DOMAINS || !d.every((x) => typeof x === 'string' && HOSTNAME_RE.test(x))) {
        throw new AppError('SM_ERR_VALIDATION', `"domains" must be an array of at most ${MAX_DOMAINS} host names.`, { details: { field: 'domains' } });
      }
      json.domains = d;
    }
    const a = await this.call('sync-aliases', 'POST', this.sitePath(orgId, projectName, '/aliases/sync'), { json, allow404: true });
    if (a.status === 404) throw new AppError('SM_ERR_NOT_DEPLOYED');
    return { provider: this.name, orgId, projectName, synced: true, remote: this.scrub(a.body) };
  }

  async undeploy(orgId: string, projectName: string): Promise<Record<string, unknown>> {
    this.assertAvailable();
    const a = await this.call('undeploy', 'DELETE', this.sitePath(orgId, projectName, ''), { allow404: true });
    if (a.status === 404) throw new AppError('SM_ERR_NOT_DEPLOYED');
    return { provider: this.name, orgId, projectName, undeployed: true };
  }

  private sitePath(orgId: string, projectName: string, tail: string): string {
    return `/sites/${encodeURIComponent(orgId)}/${encodeURIComponent(projectName)}${tail}`;
  }

  /** Replace the partner key wherever it appears (an upstream that echoes it must not leak it). */
  private redact(s: string): string {
    const k = this.partnerKey;
    return k && s.includes(k) ? s.split(k).join('[redacted]') : s;
  }

  /** JSON from upstream, with the key redacted anywhere inside. */
  private scrub(v: unknown): unknown {
    if (v === undefined) return undefined;
    try {
      return JSON.parse(this.redact(JSON.stringify(v)));
    } catch {
      return undefined;
    }
  }

  private async call(
    op: string,
    method: string,
    p: string,
    o: { json?: unknown; body?: ReadableStream<Uint8Array>; headers?: Record<string, string>; timeoutMs?: number; signal?: AbortSignal; allow404?: boolean },
  ): Promise<Answer> {
    this.assertAvailable();
    const url = this.apiUrl!.replace(/\/+$/, '') + p;
    const headers: Record<string, string> = { Accept: 'application/json', [SPINFORGE_KEY_HEADER]: this.partnerKey!, ...o.headers };
    let body: BodyInit | undefined;
    if (o.json !== undefined) {
      body = JSON.stringify(o.json);
      headers['Content-Type'] = 'application/json';
    } else if (o.body) body = o.body as unknown as BodyInit;
    const timeout = AbortSignal.timeout(o.timeoutMs ?? CALL_TIMEOUT_MS);
    const signal = o.signal ? AbortSignal.any([o.signal, timeout]) : timeout;
    let res: Response;
    try {
      res = await fetch(url, { method, headers, body, signal, redirect: 'error', ...(o.body ? { duplex: 'half' } : {}) } as RequestInit);
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause;
      const why = timeout.aborted ? 'timed out' : o.signal?.aborted ? 'was cancelled' : `could not be reached (${this.redact(cause?.code ?? (err as Error).name)})`;
      throw new AppError('SM_ERR_DEPLOY_PROVIDER_FAILED', `SpinForge ${op} ${why}.`, { details: { provider: this.name, op } });
    }
    const text = await res.text().catch(() => '');
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    if (res.ok || (o.allow404 && res.status === 404)) return { status: res.status, body: parsed };
    const upstream = isPlainObject(parsed) ? (isPlainObject(parsed.error) ? parsed.error.message : parsed.message ?? parsed.error) : text;
    const excerpt = this.redact(String(upstream ?? '')).slice(0, ERROR_EXCERPT_CHARS).replace(/\s+/g, ' ').trim();
    throw new AppError('SM_ERR_DEPLOY_PROVIDER_FAILED', `SpinForge ${op} answered ${res.status}${excerpt ? `: ${excerpt}` : ''}.`, {
      details: { provider: this.name, op, upstreamStatus: res.status },
    });
  }
}
