import { randomBytes } from 'node:crypto';
import { readFile, mkdir, open } from 'node:fs/promises';
import path from 'node:path';
import { jwtVerify, createRemoteJWKSet, SignJWT, errors as joseErrors, type JWTPayload } from 'jose';
import { AppError } from '../errors.js';
import type { Principal } from './principal.js';

/** HMAC algorithms for JWT_SECRET; asymmetric ones for JWKS. Never `none`, never mixed. */
const HMAC_ALGS = ['HS256', 'HS384', 'HS512'];
const ASYMMETRIC_ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'EdDSA'];
/** Shared by every principal without roles (most of them). */
const NO_ROLES: string[] = Object.freeze([]) as unknown as string[];
/** Verified tokens remembered (only tokens with an expiry; oldest forgotten first). */
const VERIFIED_CACHE_MAX = 10_000;
/** Tolerated clock difference between token issuer and this node. */
const CLOCK_TOLERANCE_S = 5;

export interface AuthOptions {
  secret?: string | undefined;
  jwksUrl?: string | undefined;
  issuer?: string | undefined;
  audience?: string | undefined;
  orgClaim: string;
}

export class Authenticator {
  private readonly key: Uint8Array | ReturnType<typeof createRemoteJWKSet>;
  private readonly algorithms: string[];

  constructor(private readonly opts: AuthOptions) {
    if (opts.jwksUrl) {
      this.key = createRemoteJWKSet(new URL(opts.jwksUrl));
      this.algorithms = ASYMMETRIC_ALGS;
    } else if (opts.secret) {
      this.key = new TextEncoder().encode(opts.secret);
      this.algorithms = HMAC_ALGS;
    } else {
      throw new Error('Authenticator needs a secret or a JWKS URL');
    }
  }

  /**
   * Tokens verified recently, with their expiry: thousands of editor sockets of one builder
   * share a token, and verifying it once saves the signature check and its garbage per socket.
   */
  private readonly verified = new Map<string, { userId: string; orgId: string | undefined; roles: string[]; expMs: number; nbfMs: number }>();

  /** Verify a bearer token; any failure is a 401 that says why without echoing the token. */
  async verify(token: string | undefined): Promise<Principal> {
    if (!token) throw new AppError('SM_ERR_UNAUTHORIZED', 'A bearer token is required.');
    const hit = this.verified.get(token);
    if (hit) {
      const now = Date.now();
      if (now < hit.expMs + CLOCK_TOLERANCE_S * 1000 && now >= hit.nbfMs - CLOCK_TOLERANCE_S * 1000) {
        return { kind: 'user', userId: hit.userId, orgId: hit.orgId, roles: hit.roles, token };
      }
      this.verified.delete(token);
    }
    let payload: JWTPayload;
    try {
      const verifyOpts = {
        algorithms: this.algorithms,
        clockTolerance: CLOCK_TOLERANCE_S,
        ...(this.opts.issuer ? { issuer: this.opts.issuer } : {}),
        ...(this.opts.audience ? { audience: this.opts.audience } : {}),
      };
      const res =
        this.key instanceof Uint8Array
          ? await jwtVerify(token, this.key, verifyOpts)
          : await jwtVerify(token, this.key, verifyOpts);
      payload = res.payload;
    } catch (err) {
      let why = 'The token is invalid.';
      if (err instanceof joseErrors.JWTExpired) why = 'The token has expired.';
      else if (err instanceof joseErrors.JWTClaimValidationFailed) why = `The token's "${err.claim}" claim is not acceptable.`;
      else if (err instanceof joseErrors.JOSEAlgNotAllowed) why = 'The token\'s algorithm is not allowed.';
      else if (err instanceof joseErrors.JWSSignatureVerificationFailed) why = 'The token\'s signature does not verify.';
      throw new AppError('SM_ERR_UNAUTHORIZED', why, { cause: err });
    }
    if (typeof payload.sub !== 'string' || payload.sub === '') {
      throw new AppError('SM_ERR_UNAUTHORIZED', 'The token has no "sub" claim.');
    }
    const org = payload[this.opts.orgClaim];
    const roles = Array.isArray(payload.roles) && payload.roles.length > 0 ? payload.roles.filter((r): r is string => typeof r === 'string') : NO_ROLES;
    const principal: Principal = { kind: 'user', userId: payload.sub, orgId: typeof org === 'string' ? org : undefined, roles, token };
    if (typeof payload.exp === 'number') {
      if (this.verified.size >= VERIFIED_CACHE_MAX) this.verified.delete(this.verified.keys().next().value!);
      this.verified.set(token, { userId: principal.userId, orgId: principal.orgId, roles, expMs: payload.exp * 1000, nbfMs: typeof payload.nbf === 'number' ? payload.nbf * 1000 : 0 });
    }
    return principal;
  }
}

/** Sign a token with an HMAC secret (dev mode's admin token, tests). */
export async function signToken(
  secret: string,
  claims: { sub: string; orgId?: string; roles?: string[]; orgClaim?: string },
  expiresIn: string | number = '30d',
): Promise<string> {
  const body: Record<string, unknown> = { roles: claims.roles ?? [] };
  if (claims.orgId !== undefined) body[claims.orgClaim ?? 'orgId'] = claims.orgId;
  return new SignJWT(body)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(claims.sub)
    .setIssuedAt()
    .setExpirationTime(expiresIn)
    .sign(new TextEncoder().encode(secret));
}

/**
 * Dev mode (no JWT_SECRET, no JWT_JWKS_URL): a secret made on first start and kept in
 * DATA_DIR with mode 0600, as Jupyter keeps its token. Returns the secret.
 */
export async function devSecret(dataDir: string): Promise<string> {
  const file = path.join(dataDir, 'jwt-secret');
  try {
    const existing = (await readFile(file, 'utf8')).trim();
    if (existing.length >= 32) return existing;
  } catch {
    // First start: make one below.
  }
  await mkdir(dataDir, { recursive: true });
  const secret = randomBytes(32).toString('base64url');
  const fh = await open(file, 'w', 0o600);
  try {
    await fh.writeFile(secret + '\n');
    await fh.sync();
  } finally {
    await fh.close();
  }
  return secret;
}
