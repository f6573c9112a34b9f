import { readdir, readFile } from 'node:fs/promises';

/** Environment marker set on every build command, so boot recovery can recognise its leftovers. */
export const BUILD_MARKER_ENV = 'SM_DEPLOY_JOB_ID';

/**
 * Kill what is left of a build whose server died (SIGKILL, OOM) mid-job. The build ran in
 * its own process group (pgid = the recorded pid); a process is only killed when it is in
 * that group *and* carries this job's marker in its environment, so a recycled pid that
 * now belongs to something else is left alone. Linux only (`/proc`); elsewhere a no-op.
 * Returns how many processes were signalled.
 */
export async function killOrphanBuild(pgid: number, jobId: string): Promise<number> {
  if (!Number.isInteger(pgid) || pgid <= 1) return 0;
  const names = await readdir('/proc').catch(() => [] as string[]);
  const marker = `${BUILD_MARKER_ENV}=${jobId}`;
  let n = 0;
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid) continue;
    try {
      const stat = await readFile(`/proc/${name}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(rest[2]) !== pgid) continue;
      const env = (await readFile(`/proc/${name}/environ`, 'utf8')).split('\0');
      if (!env.includes(marker)) continue;
      process.kill(pid, 'SIGKILL');
      n++;
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return n;
}
