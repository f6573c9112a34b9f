/**
 * Exit codes of the `session-manager` CLI. Scripts may rely on them (docs/console.md).
 * `one-off --wait` is the exception: it exits with the job's own code, as `docker run` does.
 */
export const EXIT = {
  OK: 0,
  /** Anything else: a 5xx, an unexpected failure. */
  FAILURE: 1,
  /** Bad command line: unknown command or flag, missing argument, ambiguous id prefix. */
  USAGE: 2,
  /** The server cannot be reached (refused, DNS, timeout). */
  UNREACHABLE: 3,
  /** No token, or the server refused it (401), or the token may not do this (403). */
  AUTH: 4,
  /** No such session (404). */
  NOT_FOUND: 5,
  /** The server refused the request as invalid or conflicting (400, 409, 413, 415, 429). */
  REJECTED: 6,
} as const;

export class CliError extends Error {
  constructor(readonly exitCode: number, message: string, readonly code?: string) {
    super(message);
    this.name = 'CliError';
  }
}

/** Exit code for an HTTP status. */
export function exitForStatus(status: number): number {
  if (status === 401 || status === 403) return EXIT.AUTH;
  if (status === 404) return EXIT.NOT_FOUND;
  if (status >= 400 && status < 500) return EXIT.REJECTED;
  return EXIT.FAILURE;
}
