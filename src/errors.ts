/**
 * The one error catalog. Every failure a client can see has a stable snake_case `code`,
 * an HTTP status and, where it ends a WebSocket, a close code. Callers match on `code`,
 * never on messages. `docs/errors.md` lists the same table; a test keeps them in step.
 */
export const ERRORS = {
  SM_ERR_BAD_REQUEST: { code: 'bad_request', status: 400, message: 'The request is malformed.' },
  SM_ERR_INVALID_JSON: { code: 'invalid_json', status: 400, message: 'The body is not valid JSON.' },
  SM_ERR_VALIDATION: { code: 'validation_failed', status: 400, message: 'A field has a wrong type or value.' },
  SM_ERR_INVALID_NAME: { code: 'invalid_name', status: 400, message: 'A name does not match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$.' },
  SM_ERR_UNKNOWN_AGENT: { code: 'unknown_agent', status: 400, message: 'No agent profile has that name.' },
  SM_ERR_AGENT_UNAVAILABLE: { code: 'agent_unavailable', status: 400, message: 'The agent profile\'s command is not installed on this node.' },
  SM_ERR_INVALID_SIGNAL: { code: 'invalid_signal', status: 400, message: 'Signal must be one of SIGINT, SIGTERM, SIGKILL, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2.' },
  SM_ERR_UNAUTHORIZED: { code: 'unauthorized', status: 401, message: 'A valid bearer token is required.', wsClose: 4001 },
  SM_ERR_FORBIDDEN: { code: 'forbidden', status: 403, message: 'The token may not do this.' },
  SM_ERR_NOT_FOUND: { code: 'not_found', status: 404, message: 'Nothing is here.' },
  SM_ERR_SESSION_NOT_FOUND: { code: 'session_not_found', status: 404, message: 'No such session.' },
  SM_ERR_METHOD_NOT_ALLOWED: { code: 'method_not_allowed', status: 405, message: 'The route does not take this method.' },
  SM_ERR_CONFLICT: { code: 'conflict', status: 409, message: 'The resource changed or is in a conflicting state.' },
  SM_ERR_SESSION_NOT_RUNNING: { code: 'session_not_running', status: 409, message: 'The session is not running.' },
  SM_ERR_BODY_TOO_LARGE: { code: 'body_too_large', status: 413, message: 'The body is larger than MAX_BODY_BYTES.' },
  SM_ERR_UNSUPPORTED_MEDIA_TYPE: { code: 'unsupported_media_type', status: 415, message: 'Send Content-Type: application/json.' },
  SM_ERR_QUEUE_FULL: { code: 'queue_full', status: 429, message: 'The session queue is full (MAX_QUEUE).' },
  SM_ERR_INTERNAL: { code: 'internal_error', status: 500, message: 'Something failed inside the server.' },
  SM_ERR_SPAWN_FAILED: { code: 'spawn_failed', status: 500, message: 'The agent could not be started.' },
  SM_ERR_STORAGE_FULL: { code: 'storage_full', status: 507, message: 'The server\'s disk is full; nothing was stored.' },
  SM_ERR_STORAGE_UNAVAILABLE: { code: 'storage_unavailable', status: 503, message: 'The server cannot write its data right now (read-only or no permission); nothing was stored.' },
  SM_ERR_SHUTTING_DOWN: { code: 'shutting_down', status: 503, message: 'The server is shutting down.', wsClose: 1001 },
  SM_ERR_NOT_READY: { code: 'not_ready', status: 503, message: 'The server is not ready.' },
  // Cohost and deploy
  SM_ERR_COHOST_NOT_FOUND: { code: 'cohost_not_found', status: 404, message: 'No such share link (unknown, expired or revoked).' },
  SM_ERR_DEPLOY_UNKNOWN_PROVIDER: { code: 'unknown_provider', status: 404, message: 'No deploy provider has that name (local, spinforge).' },
  SM_ERR_DEPLOY_JOB_NOT_FOUND: { code: 'deploy_job_not_found', status: 404, message: 'No such deploy job.' },
  SM_ERR_NOT_DEPLOYED: { code: 'not_deployed', status: 404, message: 'The project has no deployment with this provider.' },
  SM_ERR_DEPLOY_RUNNING: { code: 'deploy_running', status: 409, message: 'A deploy of this project is already running.' },
  SM_ERR_DEPLOY_PROVIDER_FAILED: { code: 'provider_failed', status: 502, message: 'The deploy provider answered with an error.' },
  SM_ERR_DEPLOY_PROVIDER_UNAVAILABLE: { code: 'provider_not_configured', status: 503, message: 'The deploy provider is not configured on this server.' },
  // Workspaces
  SM_ERR_PATH_REFUSED: { code: 'path_refused', status: 400, message: 'The path is not a plain relative path inside the workspace.' },
  SM_ERR_WORKSPACE_NOT_FOUND: { code: 'workspace_not_found', status: 404, message: 'No workspace for this org and project.' },
  SM_ERR_WORKSPACE_EXISTS: { code: 'workspace_exists', status: 409, message: 'The workspace already holds files.' },
  SM_ERR_WORKSPACE_NOT_EMPTY: { code: 'workspace_not_empty', status: 409, message: 'The workspace is not empty (only .vibe/ counts as empty).' },
  SM_ERR_SESSIONS_RUNNING: { code: 'sessions_running', status: 409, message: 'Sessions are live in this workspace; stop them or pass ?force=true.' },
  SM_ERR_UNKNOWN_TEMPLATE: { code: 'unknown_template', status: 400, message: 'No template has that id.' },
  SM_ERR_TEMPLATE_CONFLICT: { code: 'template_conflict', status: 409, message: 'Template files would replace different files; pass overwrite: true.' },
  SM_ERR_PLANNER_INVALID: { code: 'invalid_planner', status: 400, message: 'The planner document does not have the expected shape.' },
  SM_ERR_PLANNER_CORRUPT: { code: 'planner_corrupt', status: 409, message: '.vibe/planner.json is not a valid planner; replace it with PUT.' },
  SM_ERR_VERSION_CONFLICT: { code: 'version_conflict', status: 409, message: 'The document changed since that version (If-Match).' },
  SM_ERR_CARD_NOT_FOUND: { code: 'card_not_found', status: 404, message: 'No card has that id.' },
  SM_ERR_CARD_EXISTS: { code: 'card_exists', status: 409, message: 'A card with that id exists.' },
  SM_ERR_CRITERION_NOT_FOUND: { code: 'criterion_not_found', status: 404, message: 'The card has no acceptance criterion with that id.' },
  SM_ERR_CONVERSATION_NOT_FOUND: { code: 'conversation_not_found', status: 404, message: 'No such conversation.' },
  SM_ERR_GIT_NOT_REPO: { code: 'not_a_repository', status: 409, message: 'The workspace is not a git repository (POST …/init or …/clone).' },
  SM_ERR_GIT_BAD_URL: { code: 'bad_remote_url', status: 400, message: 'The remote URL is not an allowed git URL (no credentials inside it).' },
  SM_ERR_GIT_AUTH_FAILED: { code: 'git_auth_failed', status: 403, message: 'The git remote refused the credentials.' },
  SM_ERR_GIT_REMOTE_NOT_FOUND: { code: 'remote_not_found', status: 404, message: 'The repository has no remote with that name.' },
  SM_ERR_GIT_CONFLICT: { code: 'git_conflict', status: 409, message: 'Git refused: a merge conflict or a rejected (non-fast-forward) update.' },
  SM_ERR_GIT_NOTHING_TO_COMMIT: { code: 'nothing_to_commit', status: 409, message: 'There are no changes to commit.' },
  SM_ERR_GIT_FAILED: { code: 'git_failed', status: 400, message: 'The git command failed.' },
  SM_ERR_GIT_REMOTE_FAILED: { code: 'git_remote_failed', status: 502, message: 'The git remote could not be reached or has no such repository.' },
  SM_ERR_GIT_TIMEOUT: { code: 'git_timeout', status: 504, message: 'The git command took too long and was stopped.' },
  // Fleet
  SM_ERR_OWNER_UNREACHABLE: { code: 'owner_unreachable', status: 503, message: 'The node that owns this session cannot be reached right now.' },
  // Rate limits (src/http/rate-limit.ts)
  SM_ERR_RATE_LIMITED: { code: 'rate_limited', status: 429, message: 'Too many requests of this kind; retry after the seconds in Retry-After.' },
  // WebSocket-only outcomes.
  SM_ERR_WS_AUTH_TIMEOUT: { code: 'auth_timeout', status: 401, message: 'No auth message arrived within 5 s.', wsClose: 4001 },
  SM_ERR_WS_BAD_FRAME: { code: 'bad_frame', status: 400, message: 'Frames are JSON text objects with a string "type".' },
  SM_ERR_WS_UNKNOWN_TYPE: { code: 'unknown_type', status: 400, message: 'The frame type is not part of the protocol.' },
  SM_ERR_WS_BINARY: { code: 'binary_not_supported', status: 400, message: 'Binary frames are not part of the protocol.', wsClose: 1003 },
  SM_ERR_WS_READ_ONLY: { code: 'read_only', status: 403, message: 'This connection may only watch.' },
  SM_ERR_WS_FRAME_TOO_LARGE: { code: 'frame_too_large', status: 413, message: 'Frames are at most 1 MiB.', wsClose: 1009 },
  SM_ERR_WS_SLOW_CONSUMER: { code: 'slow_consumer', status: 400, message: 'The viewer fell behind by more than WS_MAX_BACKPRESSURE; resume by offset.', wsClose: 4008 },
  SM_ERR_WS_REVOKED: { code: 'revoked', status: 403, message: 'The share link was revoked.', wsClose: 4003 },
} as const satisfies Record<string, { code: string; status: number; message: string; wsClose?: number }>;

export type ErrorName = keyof typeof ERRORS;
export type ErrorCode = (typeof ERRORS)[ErrorName]['code'];

export class AppError extends Error {
  readonly code: string;
  readonly status: number;
  readonly details: unknown;
  readonly headers: Record<string, string> | undefined;

  constructor(
    name: ErrorName,
    message?: string,
    opts: { details?: unknown; cause?: unknown; headers?: Record<string, string> } = {},
  ) {
    const entry = ERRORS[name];
    super(message ?? entry.message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = name;
    this.code = entry.code;
    this.status = entry.status;
    this.details = opts.details;
    this.headers = opts.headers;
  }

  toJSON(): { error: { code: string; message: string; details?: unknown } } {
    const body: { code: string; message: string; details?: unknown } = { code: this.code, message: this.message };
    if (this.details !== undefined) body.details = this.details;
    return { error: body };
  }
}

export function isAppError(err: unknown): err is AppError {
  return err instanceof AppError;
}

/** Close code for a catalog entry that ends a WebSocket. */
export function wsCloseCode(name: ErrorName): number {
  const entry = ERRORS[name] as { wsClose?: number };
  return entry.wsClose ?? 1008;
}

/** Storage failures (disk full, read-only, permission denied) as catalog errors; others unchanged. */
export function storageError(err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return new AppError('SM_ERR_STORAGE_FULL', undefined, { cause: err });
  if (code === 'EROFS' || code === 'EACCES' || code === 'EPERM') return new AppError('SM_ERR_STORAGE_UNAVAILABLE', undefined, { cause: err });
  return err;
}
