import { copyFile, lstat, mkdir, readdir, readlink, rename, rm, symlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { AppError } from '../../errors.js';
import type { Activated, DeployContext, DeployProvider, Uploaded } from './provider.js';

/** Releases kept per project besides the live one (older ones are removed at activation). */
export const LOCAL_RELEASES_KEPT = 2;
/** Files copied at once while publishing. */
const COPY_CONCURRENCY = 8;

/** Where the live site of a project is: a symlink swapped atomically at activation. */
export function siteLink(deployDir: string, orgId: string, projectName: string): string {
  return path.join(deployDir, orgId, projectName);
}

function releasesDir(deployDir: string, orgId: string, projectName: string): string {
  return path.join(deployDir, '.releases', orgId, projectName);
}

/**
 * The built-in provider: publishes to DEPLOY_DIR and the server itself serves it at
 * `/sites/:orgId/:projectName/` (src/http/routes/sites.ts). A release is copied to
 * `.releases/<org>/<project>/<jobId>/`, then `<org>/<project>` — a symlink — is replaced in
 * one rename, so a visitor sees the old site or the new one, never a mix.
 */
export class LocalProvider implements DeployProvider {
  readonly name = 'local';

  constructor(private readonly deployDir: string, private readonly baseUrl: () => string) {}

  assertAvailable(): void {}

  siteUrl(orgId: string, projectName: string): string {
    return `${this.baseUrl()}/sites/${encodeURIComponent(orgId)}/${encodeURIComponent(projectName)}/`;
  }

  async upload(ctx: DeployContext): Promise<Uploaded> {
    const { orgId, projectName, id } = ctx.job;
    const dir = releasesDir(this.deployDir, orgId, projectName);
    const partial = path.join(dir, `${id}.partial`);
    const final = path.join(dir, id);
    await rm(partial, { recursive: true, force: true });
    const files = ctx.pkg.files;
    let next = 0;
    const worker = async () => {
      while (next < files.length) {
        if (ctx.signal.aborted) throw new Error('cancelled');
        const f = files[next++]!;
        const to = path.join(partial, ...f.rel.split('/'));
        await mkdir(path.dirname(to), { recursive: true });
        await copyFile(f.abs, to);
      }
    };
    await mkdir(partial, { recursive: true });
    await Promise.all(Array.from({ length: Math.min(COPY_CONCURRENCY, Math.max(1, files.length)) }, worker));
    await rm(final, { recursive: true, force: true });
    await rename(partial, final);
    return { message: `copied ${files.length} files (${ctx.pkg.bytes} bytes) to the release folder`, ref: id };
  }

  async activate(ctx: DeployContext, uploaded: Uploaded): Promise<Activated> {
    const { orgId, projectName } = ctx.job;
    const target = path.join(releasesDir(this.deployDir, orgId, projectName), uploaded.ref);
    const link = siteLink(this.deployDir, orgId, projectName);
    await mkdir(path.dirname(link), { recursive: true });
    const tmp = path.join(path.dirname(link), `.${projectName}.${randomBytes(6).toString('hex')}.tmp`);
    await symlink(target, tmp, 'dir');
    try {
      const st = await lstat(link).catch(() => undefined);
      // Only this provider writes here; a real folder in the way (older layout) is replaced.
      if (st && !st.isSymbolicLink()) await rm(link, { recursive: true, force: true });
      await rename(tmp, link);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    await this.prune(orgId, projectName, uploaded.ref);
    const url = this.siteUrl(orgId, projectName);
    return { message: `live at ${url}`, url };
  }

  async status(orgId: string, projectName: string): Promise<Record<string, unknown>> {
    const link = siteLink(this.deployDir, orgId, projectName);
    const target = await readlink(link).catch(() => undefined);
    if (!target) return { provider: this.name, orgId, projectName, deployed: false };
    const st = await lstat(link);
    return {
      provider: this.name,
      orgId,
      projectName,
      deployed: true,
      jobId: path.basename(target),
      activatedAt: st.mtime.toISOString(),
      url: this.siteUrl(orgId, projectName),
    };
  }

  async syncAliases(orgId: string, projectName: string): Promise<Record<string, unknown>> {
    const s = await this.status(orgId, projectName);
    if (!s.deployed) throw new AppError('SM_ERR_NOT_DEPLOYED');
    return { provider: this.name, orgId, projectName, aliases: [], url: s.url, message: 'The local provider serves one path and has no domains to sync.' };
  }

  async undeploy(orgId: string, projectName: string): Promise<Record<string, unknown>> {
    const link = siteLink(this.deployDir, orgId, projectName);
    const st = await lstat(link).catch(() => undefined);
    if (!st) throw new AppError('SM_ERR_NOT_DEPLOYED');
    await rm(link, { recursive: true, force: true });
    await rm(releasesDir(this.deployDir, orgId, projectName), { recursive: true, force: true });
    return { provider: this.name, orgId, projectName, undeployed: true };
  }

  /** Remove release folders beyond the newest LOCAL_RELEASES_KEPT and stale partial copies, never the live one. */
  private async prune(orgId: string, projectName: string, live: string): Promise<void> {
    const dir = releasesDir(this.deployDir, orgId, projectName);
    const names = await readdir(dir).catch(() => [] as string[]);
    const dated: Array<{ name: string; t: number }> = [];
    for (const name of names) {
      if (name === live) continue;
      // A partial copy left by an interrupted job (one deploy per project runs at a time).
      if (name.endsWith('.partial')) {
        await rm(path.join(dir, name), { recursive: true, force: true });
        continue;
      }
      const st = await lstat(path.join(dir, name)).catch(() => undefined);
      if (st?.isDirectory()) dated.push({ name, t: st.mtimeMs });
    }
    dated.sort((a, b) => b.t - a.t);
    for (const old of dated.slice(LOCAL_RELEASES_KEPT)) await rm(path.join(dir, old.name), { recursive: true, force: true });
  }
}
