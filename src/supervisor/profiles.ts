import { readFile, access } from 'node:fs/promises';
import { constants as fsConstants } from 'node:fs';
import path from 'node:path';
import { AppError } from '../errors.js';
import { isPlainObject } from '../validate.js';

export type RestartPolicy = 'never' | 'on-failure' | 'always';
export type SessionType = 'long_running' | 'one_off';

/** An agent profile (DESIGN §7 agents.json). */
export interface AgentProfile {
  name: string;
  /** Without a command, the request's `command` is run (that is what `script` is). */
  command?: string | undefined;
  args: string[];
  type: SessionType;
  env: Record<string, string>;
  /** Working directory relative to the workspace. */
  cwd?: string | undefined;
  restart: RestartPolicy;
  /** `acp`: spawned with stdio pipes and spoken to with the Agent Client Protocol. */
  protocol?: 'acp' | undefined;
}

export const BUILTIN_PROFILES: Record<string, AgentProfile> = {
  bash: { name: 'bash', command: 'bash', args: ['--login'], type: 'long_running', env: {}, restart: 'never' },
  claude: { name: 'claude', command: 'claude', args: [], type: 'long_running', env: {}, restart: 'on-failure' },
  codex: { name: 'codex', command: 'codex', args: [], type: 'long_running', env: {}, restart: 'on-failure' },
  script: { name: 'script', args: [], type: 'one_off', env: {}, restart: 'never' },
};

function parseProfile(name: string, raw: unknown, file: string): AgentProfile {
  const where = `${file}: profile "${name}"`;
  if (!isPlainObject(raw)) throw new Error(`${where} must be an object`);
  const { command, args, type, env, cwd, restart, protocol } = raw;
  if (protocol !== undefined && protocol !== 'acp') throw new Error(`${where}: "protocol" must be "acp" when set`);
  if (command !== undefined && (typeof command !== 'string' || !command)) throw new Error(`${where}: "command" must be a non-empty string`);
  if (args !== undefined && (!Array.isArray(args) || !args.every((a) => typeof a === 'string'))) throw new Error(`${where}: "args" must be an array of strings`);
  if (type !== undefined && type !== 'long_running' && type !== 'one_off') throw new Error(`${where}: "type" must be long_running or one_off`);
  if (env !== undefined && (!isPlainObject(env) || !Object.values(env).every((v) => typeof v === 'string'))) throw new Error(`${where}: "env" must map names to strings`);
  if (cwd !== undefined && typeof cwd !== 'string') throw new Error(`${where}: "cwd" must be a string`);
  if (restart !== undefined && !['never', 'on-failure', 'always'].includes(restart as string)) throw new Error(`${where}: "restart" must be never, on-failure or always`);
  return {
    name,
    command: command as string | undefined,
    args: (args as string[] | undefined) ?? [],
    type: (type as SessionType | undefined) ?? 'long_running',
    env: (env as Record<string, string> | undefined) ?? {},
    cwd: cwd as string | undefined,
    restart: (restart as RestartPolicy | undefined) ?? 'never',
    protocol: protocol as 'acp' | undefined,
  };
}

/** Built-in profiles with AGENTS_FILE merged over them (same name replaces). */
export async function loadProfiles(agentsFile: string | undefined): Promise<Map<string, AgentProfile>> {
  const out = new Map(Object.entries(BUILTIN_PROFILES));
  if (!agentsFile) return out;
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(agentsFile, 'utf8'));
  } catch (err) {
    throw new Error(`AGENTS_FILE: cannot read ${agentsFile}: ${(err as Error).message}`);
  }
  if (!isPlainObject(parsed)) throw new Error(`AGENTS_FILE: ${agentsFile} must hold a JSON object of profiles`);
  for (const [name, raw] of Object.entries(parsed)) out.set(name, parseProfile(name, raw, agentsFile));
  return out;
}

/** Whether a command can be found on a PATH (claude/codex are offered only when installed). */
export async function commandAvailable(command: string, pathVar: string): Promise<boolean> {
  const candidates = command.includes('/') ? [command] : pathVar.split(':').filter(Boolean).map((d) => path.join(d, command));
  for (const c of candidates) {
    try {
      await access(c, fsConstants.X_OK);
      return true;
    } catch {
      // keep looking
    }
  }
  return false;
}

export function getProfile(profiles: Map<string, AgentProfile>, name: string): AgentProfile {
  const p = profiles.get(name);
  if (!p) throw new AppError('SM_ERR_UNKNOWN_AGENT', `No agent profile is named "${name}".`, { details: { agents: [...profiles.keys()] } });
  return p;
}
