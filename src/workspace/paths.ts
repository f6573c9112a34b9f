import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../store/atomic.js';
import { assertName } from '../validate.js';

/** The folder of a project: WORKSPACE_BASE_PATH/<orgId>/<projectName>. Names are validated here. */
export function workspaceDir(base: string, orgId: string, projectName: string): string {
  assertName(orgId, 'orgId');
  assertName(projectName, 'projectName');
  return path.join(base, orgId, projectName);
}

export interface ProjectStamp {
  orgId: string;
  projectName: string;
  createdBy: string;
  createdAt: string;
  description?: string;
  template?: string;
}

/** Create the workspace if missing and stamp `.vibe/project.json` when it has none. */
export async function ensureWorkspace(base: string, orgId: string, projectName: string, createdBy: string): Promise<string> {
  const dir = workspaceDir(base, orgId, projectName);
  await mkdir(path.join(dir, '.vibe'), { recursive: true });
  const stampFile = path.join(dir, '.vibe', 'project.json');
  try {
    await readFile(stampFile);
  } catch {
    const stamp: ProjectStamp = { orgId, projectName, createdBy, createdAt: new Date().toISOString() };
    await writeFileAtomic(stampFile, JSON.stringify(stamp, null, 2) + '\n');
  }
  return dir;
}
