import { SignJWT } from 'jose';

/** The HMAC secret both servers are started with (≥ 32 bytes, as the project requires). */
export const BENCH_SECRET = 'bench-secret-0123456789abcdef0123456789abcdef';
export const BENCH_ORG = 'bench';

/** A builder's token for the bench org (same claims for the project and the baseline). */
export function benchToken(sub = 'bench-user'): Promise<string> {
  return new SignJWT({ roles: [], orgId: BENCH_ORG })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime('2h')
    .sign(new TextEncoder().encode(BENCH_SECRET));
}
