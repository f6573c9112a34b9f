import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { isPlainObject } from '../validate.js';

/** A build command may run this long unless `.vibe/project.json` says otherwise. */
export const BUILD_TIMEOUT_DEFAULT_MS = 10 * 60 * 1000;
/** Ceiling for `build.timeoutMs`: a deploy slot must not be held for hours. */
export const BUILD_TIMEOUT_MAX_MS = 60 * 60 * 1000;
/** Floor for `build.timeoutMs`. */
export const BUILD_TIMEOUT_MIN_MS = 100;

/** The `build` section of `.vibe/project.json`. */
export interface BuildSettings {
  /** Run with `sh -c` in the workspace. */
  command: string | undefined;
  /** The folder to publish, relative to the workspace. */
  output: string | undefined;
  timeoutMs: number;
}

export class ProjectConfigError extends Error {}

/**
 * Read `build.command`, `build.output` and `build.timeoutMs` from `.vibe/project.json`.
 * A missing file or section means "no build, publish static files". A malformed one is an
 * error the job reports (a silently ignored typo would publish the wrong thing).
 */
export async function readBuildSettings(workspace: string): Promise<BuildSettings> {
  let text: string;
  try {
    text = await readFile(path.join(workspace, '.vibe', 'project.json'), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { command: undefined, output: undefined, timeoutMs: BUILD_TIMEOUT_DEFAULT_MS };
    throw new ProjectConfigError(`.vibe/project.json cannot be read: ${(err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new ProjectConfigError('.vibe/project.json is not valid JSON.');
  }
  const build = isPlainObject(doc) ? doc.build : undefined;
  if (build === undefined || build === null) return { command: undefined, output: undefined, timeoutMs: BUILD_TIMEOUT_DEFAULT_MS };
  if (!isPlainObject(build)) throw new ProjectConfigError('.vibe/project.json: "build" must be an object.');
  const command = build.command;
  if (command !== undefined && command !== null && (typeof command !== 'string' || command.length > 16 * 1024)) {
    throw new ProjectConfigError('.vibe/project.json: "build.command" must be a string (run with sh -c).');
  }
  const output = build.output;
  if (output !== undefined && output !== null && (typeof output !== 'string' || output.length === 0 || output.length > 1024)) {
    throw new ProjectConfigError('.vibe/project.json: "build.output" must be a relative folder path.');
  }
  let timeoutMs = BUILD_TIMEOUT_DEFAULT_MS;
  const t = build.timeoutMs;
  if (t !== undefined && t !== null) {
    if (typeof t !== 'number' || !Number.isInteger(t) || t < BUILD_TIMEOUT_MIN_MS || t > BUILD_TIMEOUT_MAX_MS) {
      throw new ProjectConfigError(`.vibe/project.json: "build.timeoutMs" must be an integer from ${BUILD_TIMEOUT_MIN_MS} to ${BUILD_TIMEOUT_MAX_MS}.`);
    }
    timeoutMs = t;
  }
  return {
    command: typeof command === 'string' && command.trim() ? command : undefined,
    output: typeof output === 'string' ? output : undefined,
    timeoutMs,
  };
}

/** Resolve `build.output` inside the workspace; undefined when it would leave it. */
export function resolveInside(workspace: string, rel: string): string | undefined {
  if (path.isAbsolute(rel) || rel.includes('\0')) return undefined;
  const abs = path.resolve(workspace, rel);
  const back = path.relative(workspace, abs);
  if (back === '') return abs;
  if (back.startsWith('..') || path.isAbsolute(back)) return undefined;
  return abs;
}
