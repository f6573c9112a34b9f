import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { environmentWithDotEnv } from '../config.js';
import { signToken } from '../auth/jwt.js';

/** How long a token minted from the dev-mode secret lives: one CLI run, with room for attach. */
const MINTED_TOKEN_TTL = '12h';

export interface Target {
  /** Base URL without a trailing slash, e.g. http://127.0.0.1:5600 */
  url: string;
  token: string | undefined;
  /** Where the token came from, for error messages. */
  tokenSource: 'flag' | 'env' | 'dev-secret' | 'none';
}

/**
 * Where the server is and which token to use, first match wins:
 *
 * - URL: `--url`, `SESSION_MANAGER_URL`, `PUBLIC_URL`, else `http://HOST:SESSION_MANAGER_PORT`
 *   (defaults 127.0.0.1:5600) — the same variables (and `.env`) the server reads.
 * - Token: `--token`, `SESSION_MANAGER_TOKEN`, else, on the server's own machine in dev mode
 *   (no JWT_SECRET/JWT_JWKS_URL; DESIGN §6), an admin token minted from `DATA_DIR/jwt-secret`.
 *   Reading that file needs the server user's permissions (it is mode 0600).
 */
export async function resolveTarget(flags: { url?: string | undefined; token?: string | undefined }, processEnv: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): Promise<Target> {
  const env = environmentWithDotEnv(processEnv, cwd);
  const pick = (k: string) => {
    const v = env[k];
    return v && v.trim() ? v.trim() : undefined;
  };
  let url = flags.url ?? pick('SESSION_MANAGER_URL') ?? pick('PUBLIC_URL');
  if (!url) {
    let host = pick('HOST') ?? '127.0.0.1';
    if (host === '0.0.0.0' || host === '::') host = '127.0.0.1';
    const port = pick('SESSION_MANAGER_PORT') ?? '5600';
    url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  }
  url = url.replace(/\/+$/, '');
  if (flags.token) return { url, token: flags.token, tokenSource: 'flag' };
  const envToken = pick('SESSION_MANAGER_TOKEN');
  if (envToken) return { url, token: envToken, tokenSource: 'env' };
  if (!pick('JWT_SECRET') && !pick('JWT_JWKS_URL')) {
    const dataDir = path.resolve(cwd, pick('DATA_DIR') ?? './data');
    try {
      const secret = (await readFile(path.join(dataDir, 'jwt-secret'), 'utf8')).trim();
      if (secret.length >= 32) {
        const token = await signToken(secret, { sub: 'admin', roles: ['admin'], orgId: 'default', orgClaim: pick('JWT_ORG_CLAIM') ?? 'orgId' }, MINTED_TOKEN_TTL);
        return { url, token, tokenSource: 'dev-secret' };
      }
    } catch {
      // No dev-mode secret here (or not ours to read).
    }
  }
  return { url, token: undefined, tokenSource: 'none' };
}

export function wsUrl(target: Target): string {
  return target.url.replace(/^http/, 'ws') + '/ws';
}
