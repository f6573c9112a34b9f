import { readFileSync } from 'node:fs';
import { hostname, availableParallelism } from 'node:os';
import path from 'node:path';

/** Configuration, read once at start from the environment (a `.env` file fills gaps). */
export interface Config {
  port: number;
  host: string;
  publicUrl: string | undefined;
  maxConcurrentSessions: number;
  maxQueue: number;
  workspaceBasePath: string;
  dataDir: string;
  redisUrl: string | undefined;
  nodeId: string;
  jwtSecret: string | undefined;
  jwtJwksUrl: string | undefined;
  jwtIssuer: string | undefined;
  jwtAudience: string | undefined;
  jwtOrgClaim: string;
  idleTimeoutMs: number;
  portRange: [number, number];
  workerThreads: number;
  sessionsPerThread: number;
  replayBytes: number;
  /** Ended sessions kept in memory (lists); older ones stay in the store, found by id. */
  endedSessionsKept: number;
  wsMaxBackpressure: number;
  maxBodyBytes: number;
  agentsFile: string | undefined;
  agentEnvPassthrough: string[];
  spinforgeApiUrl: string | undefined;
  spinforgePartnerKey: string | undefined;
  deployDir: string;
  appmintApiUrl: string | undefined;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  /**
   * Run agents under per-org uids from this range (needs root). Unset: agents run as the
   * server's own user (dev convenience; they can then read what the server can).
   */
  agentUidRange: [number, number] | undefined;
  /** Longest lifetime of a cohost share link. */
  cohostMaxExpiryMs: number;
  /** Let git clone/pull/push use file:// remotes (off: they would read any repository on the host). */
  gitAllowFileUrls: boolean;
  /** Fault-injection messages for tests (`SM_TEST_HOOKS=1`); never set in production. */
  testHooks: boolean;
}

export class ConfigError extends Error {
  constructor(readonly variable: string, problem: string) {
    super(`${variable}: ${problem}`);
    this.name = 'ConfigError';
  }
}

/** Parse a dotenv file: KEY=VALUE lines, `#` comments, optional single or double quotes. */
export function parseDotEnv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!m) continue;
    let value = m[2] ?? '';
    const q = value[0];
    if ((q === '"' || q === "'") && value.endsWith(q) && value.length >= 2) {
      value = value.slice(1, -1);
      if (q === '"') value = value.replace(/\\n/g, '\n');
    } else {
      value = value.replace(/\s+#.*$/, '');
    }
    out[m[1]!] = value;
  }
  return out;
}

/** The environment with `.env` (in `cwd`) underneath it: the real environment wins. */
export function environmentWithDotEnv(env: NodeJS.ProcessEnv, cwd: string): Record<string, string | undefined> {
  let fromFile: Record<string, string> = {};
  try {
    fromFile = parseDotEnv(readFileSync(path.join(cwd, '.env'), 'utf8'));
  } catch {
    // No .env file: nothing to merge.
  }
  return { ...fromFile, ...env };
}

function int(env: Record<string, string | undefined>, name: string, def: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return def;
  if (!/^\d+$/.test(raw.trim())) throw new ConfigError(name, `must be a whole number, got "${raw}"`);
  const n = Number(raw.trim());
  if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${n}`);
  return n;
}

function uidRange(env: Record<string, string | undefined>): [number, number] | undefined {
  const raw = str(env, 'AGENT_UID_RANGE');
  if (raw === undefined) return undefined;
  const m = /^(\d+)-(\d+)$/.exec(raw);
  if (!m || Number(m[1]) < 1000 || Number(m[2]) < Number(m[1]) || Number(m[2]) > 4_000_000_000) {
    throw new ConfigError('AGENT_UID_RANGE', `must look like 2000000-2999999 (uids above 999), got "${raw}"`);
  }
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new ConfigError('AGENT_UID_RANGE', 'needs the server to run as root to start agents under other uids');
  }
  return [Number(m[1]), Number(m[2])];
}

function bool(env: Record<string, string | undefined>, name: string): boolean {
  const v = env[name]?.trim().toLowerCase();
  if (v === undefined || v === '') return false;
  if (['1', 'true', 'yes'].includes(v)) return true;
  if (['0', 'false', 'no'].includes(v)) return false;
  throw new ConfigError(name, `must be true or false, got "${env[name]}"`);
}

function str(env: Record<string, string | undefined>, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

function url(env: Record<string, string | undefined>, name: string): string | undefined {
  const v = str(env, name);
  if (v === undefined) return undefined;
  try {
    new URL(v);
  } catch {
    throw new ConfigError(name, `must be a URL, got "${v}"`);
  }
  return v;
}

export function loadConfig(env: Record<string, string | undefined>, cwd = process.cwd()): Config {
  const portRangeRaw = str(env, 'PORT_RANGE') ?? '7000-7999';
  const pr = /^(\d+)-(\d+)$/.exec(portRangeRaw);
  if (!pr) throw new ConfigError('PORT_RANGE', `must look like 7000-7999, got "${portRangeRaw}"`);
  const portRange: [number, number] = [Number(pr[1]), Number(pr[2])];
  if (portRange[0] < 1 || portRange[1] > 65535 || portRange[0] > portRange[1]) {
    throw new ConfigError('PORT_RANGE', `must be an ascending range within 1-65535, got "${portRangeRaw}"`);
  }
  const logLevel = (str(env, 'LOG_LEVEL') ?? 'info') as Config['logLevel'];
  if (!['debug', 'info', 'warn', 'error'].includes(logLevel)) {
    throw new ConfigError('LOG_LEVEL', `must be debug, info, warn or error, got "${logLevel}"`);
  }
  const maxConcurrentSessions = int(env, 'MAX_CONCURRENT_SESSIONS', 50, 1, 100_000);
  // One core is left to the main thread, which owns every socket. On 2 cores one actor
  // thread beat two by 1.4× in echo throughput at 0.6× the CPU per keystroke (fewer thread
  // wake-ups, more output per message; docs/benchmarks.md).
  const workerThreads = int(env, 'WORKER_THREADS', Math.max(1, Math.min(4, availableParallelism() - 1)), 1, 256);
  const sessionsPerThread = int(
    env,
    'SESSIONS_PER_THREAD',
    Math.max(64, Math.ceil(maxConcurrentSessions / workerThreads)),
    1,
    100_000,
  );
  const jwtSecret = str(env, 'JWT_SECRET');
  if (jwtSecret !== undefined && Buffer.byteLength(jwtSecret) < 32) {
    throw new ConfigError('JWT_SECRET', 'must be at least 32 bytes long');
  }
  const resolve = (p: string) => path.resolve(cwd, p);
  return {
    port: int(env, 'SESSION_MANAGER_PORT', 5600, 0, 65535),
    host: str(env, 'HOST') ?? '127.0.0.1',
    publicUrl: url(env, 'PUBLIC_URL'),
    maxConcurrentSessions,
    maxQueue: int(env, 'MAX_QUEUE', 1000, 0, 1_000_000),
    workspaceBasePath: resolve(str(env, 'WORKSPACE_BASE_PATH') ?? './workspaces'),
    dataDir: resolve(str(env, 'DATA_DIR') ?? './data'),
    redisUrl: url(env, 'REDIS_URL'),
    nodeId: str(env, 'NODE_ID') ?? hostname(),
    jwtSecret,
    jwtJwksUrl: url(env, 'JWT_JWKS_URL'),
    jwtIssuer: str(env, 'JWT_ISSUER'),
    jwtAudience: str(env, 'JWT_AUDIENCE'),
    jwtOrgClaim: str(env, 'JWT_ORG_CLAIM') ?? 'orgId',
    idleTimeoutMs: int(env, 'IDLE_TIMEOUT_MS', 1_800_000, 100),
    portRange,
    workerThreads,
    sessionsPerThread,
    replayBytes: int(env, 'REPLAY_BYTES', 1_048_576, 1024, 1 << 30),
    endedSessionsKept: int(env, 'ENDED_SESSIONS_KEPT', 10_000, 1, 10_000_000),
    wsMaxBackpressure: int(env, 'WS_MAX_BACKPRESSURE', 4_194_304, 65_536, 1 << 30),
    maxBodyBytes: int(env, 'MAX_BODY_BYTES', 1_048_576, 1024, 1 << 30),
    agentsFile: str(env, 'AGENTS_FILE') ? resolve(str(env, 'AGENTS_FILE')!) : undefined,
    agentEnvPassthrough: (str(env, 'AGENT_ENV_PASSTHROUGH') ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    spinforgeApiUrl: url(env, 'SPINFORGE_API_URL'),
    spinforgePartnerKey: str(env, 'SPINFORGE_PARTNER_KEY'),
    deployDir: resolve(str(env, 'DEPLOY_DIR') ?? './deploys'),
    appmintApiUrl: url(env, 'APPMINT_API_URL'),
    logLevel,
    cohostMaxExpiryMs: int(env, 'COHOST_MAX_EXPIRY_MS', 7 * 24 * 3600 * 1000, 60_000),
    agentUidRange: uidRange(env),
    gitAllowFileUrls: bool(env, 'GIT_ALLOW_FILE_URLS') || env['SM_TEST_HOOKS'] === '1',
    testHooks: env['SM_TEST_HOOKS'] === '1',
  };
}

/** Values that must never appear in a response, a log line or an agent environment. */
export function secretValues(config: Config, env: Record<string, string | undefined>): string[] {
  const out = [config.jwtSecret, config.spinforgePartnerKey];
  if (config.redisUrl) {
    try {
      const u = new URL(config.redisUrl);
      if (u.password) out.push(decodeURIComponent(u.password));
    } catch {
      /* validated earlier */
    }
  }
  for (const name of ['JWT_SECRET', 'SPINFORGE_PARTNER_KEY', 'REDIS_PASSWORD']) out.push(env[name]);
  return [...new Set(out.filter((s): s is string => typeof s === 'string' && s.length >= 6))];
}
