import type { Config } from '../config.js';

/** PATH given to agents when the server's own PATH is missing. */
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Names that never pass through, whatever AGENT_ENV_PASSTHROUGH says. */
const NEVER_PASS = new Set(['JWT_SECRET', 'SPINFORGE_PARTNER_KEY', 'REDIS_URL', 'REDIS_PASSWORD', 'JWT_JWKS_URL']);

export interface AgentEnvInput {
  sessionId: string;
  token: string;
  workspaceDir: string;
  orgId: string;
  projectName: string;
  port: number;
  profileEnv: Record<string, string>;
}

/**
 * The agent's environment, built from an allowlist (DESIGN §2), never by copying
 * process.env. Server secrets cannot reach it: they are not on the list, and a
 * passthrough or profile value equal to a secret is dropped.
 */
export function buildAgentEnv(config: Config, serverEnv: Record<string, string | undefined>, secrets: readonly string[], input: AgentEnvInput, serverUrl: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of config.agentEnvPassthrough) {
    const v = serverEnv[name];
    if (v !== undefined && !NEVER_PASS.has(name)) env[name] = v;
  }
  Object.assign(env, input.profileEnv);
  Object.assign(env, {
    SESSION_ID: input.sessionId,
    SESSION_MANAGER_URL: serverUrl,
    SESSION_TOKEN: input.token,
    WORKSPACE_DIR: input.workspaceDir,
    ORG_ID: input.orgId,
    PROJECT_NAME: input.projectName,
    PORT: String(input.port),
    TERM: 'xterm-256color',
    HOME: serverEnv.HOME ?? input.workspaceDir,
    PATH: serverEnv.PATH ?? DEFAULT_PATH,
    LANG: serverEnv.LANG ?? 'C.UTF-8',
  });
  if (config.appmintApiUrl) env.APPMINT_API_URL = config.appmintApiUrl;
  for (const [k, v] of Object.entries(env)) {
    if (secrets.some((s) => v.includes(s))) delete env[k];
  }
  return env;
}
