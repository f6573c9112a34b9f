import uWS, { type TemplatedApp, type us_listen_socket } from 'uWebSockets.js';
import { configureRateLimits, rateLimitsFromEnv } from './http/rate-limit.js';
import type { Config } from './config.js';
import { secretValues } from './config.js';
import { AppError, isAppError, storageError } from './errors.js';
import { createLogger, type Logger } from './log.js';
import { Authenticator, devSecret, signToken } from './auth/jwt.js';
import type { Principal } from './auth/principal.js';
import { FsStore } from './store/fs-store.js';
import { RedisStore } from './store/redis-store.js';
import { connectRedis } from './store/redis-connect.js';
import { RedisBus } from './bus/redis-bus.js';
import { Fleet } from './fleet/fleet.js';
import { tailLines } from './http/routes/sessions.js';
import path from 'node:path';
import { chmod } from 'node:fs/promises';
import type { Store } from './store/store.js';
import { MemoryBus } from './bus/memory-bus.js';
import type { Bus } from './bus/bus.js';
import { Metrics } from './metrics.js';
import { Supervisor } from './supervisor/supervisor.js';
import { IdleReaper } from './supervisor/idle-reaper.js';
import { loadProfiles } from './supervisor/profiles.js';
import { HttpContext } from './http/context.js';
import { Router } from './http/router.js';
import { sessionRoutes } from './http/routes/sessions.js';
import { adminRoutes } from './http/routes/admin.js';
import { EditorSockets } from './ws/editor-socket.js';
import { registerFeatures } from './http/routes/features.js';
import { AgentBridge } from './agent/bridge.js';
import { agentSocket } from './ws/agent-socket.js';
import { CREDENTIAL_PREFIX } from './supervisor/supervisor.js';
import type { Conversations } from './conversations/conversations.js';

/** Everything a route module may need; later features add their routes through it. */
export interface ServerParts {
  config: Config;
  log: Logger;
  store: Store;
  bus: Bus;
  auth: Authenticator;
  supervisor: Supervisor;
  metrics: Metrics;
  router: Router;
  sockets: EditorSockets;
  app: TemplatedApp;
  /** Run at shutdown after sessions stop and before the store closes, in registration order. */
  onClose(fn: () => Promise<void> | void): void;
  /** Extra readiness checks (e.g. Redis); each returns ok and a detail for /readyz. */
  addReadyCheck(name: string, fn: () => Promise<boolean>): void;
  /** The server's base URL (known once listening). */
  url(): string;
  /** The environment the server started with (.env underneath the real one). */
  env: Record<string, string | undefined>;
  /** Conversation history (set by the conversations feature). */
  conversations?: Conversations | undefined;
}

export interface RunningServer {
  url: string;
  port: number;
  /** Set in dev mode: an admin token for the ready URL. */
  adminToken: string | undefined;
  parts: ServerParts;
  /** Refuse new work, close sockets (1001), stop sessions, flush stores. Safe to call twice. */
  close(): Promise<void>;
}

export async function startServer(config: Config, env: Record<string, string | undefined>): Promise<RunningServer> {
  let jwtSecret = config.jwtSecret;
  let devMode = false;
  if (!jwtSecret && !config.jwtJwksUrl) {
    jwtSecret = await devSecret(config.dataDir);
    devMode = true;
  }
  const secrets = [...secretValues(config, env), ...(devMode && jwtSecret ? [jwtSecret] : [])];
  const log = createLogger(config.logLevel, secrets, { node: config.nodeId });
  const fsStore = new FsStore(config.dataDir);
  await fsStore.init();
  if (config.agentUidRange) {
    // Agents run under other uids: the data dir is the server's alone, and what the server
    // writes into workspaces stays writable by the org's group.
    await chmod(config.dataDir, 0o700);
    process.umask(0o002);
  }
  let store: Store = fsStore;
  let bus: Bus = new MemoryBus();
  // REDIS_URL set and reachable → Redis store and bus; set but unreachable → warning, filesystem (DESIGN §1).
  const redis = config.redisUrl ? await connectRedis(config.redisUrl, log) : undefined;
  let redisBus: RedisBus | undefined;
  if (redis) {
    const onError = (err: Error, context: string) => log.warn('redis error', { context, error: err });
    store = new RedisStore(redis.duplicate({ connectionName: 'sm-store' }), { onError });
    redisBus = new RedisBus(redis, { onError });
    bus = redisBus;
    // Until both bus connections are up, publishes would reach this node only.
    if (!(await redisBus.ready())) log.warn('redis bus not ready yet; events stay local until it is');
  }
  const auth = new Authenticator({
    secret: config.jwtJwksUrl ? undefined : jwtSecret,
    jwksUrl: config.jwtJwksUrl,
    issuer: config.jwtIssuer,
    audience: config.jwtAudience,
    orgClaim: config.jwtOrgClaim,
  });
  const metrics = new Metrics();
  configureRateLimits(rateLimitsFromEnv(env));
  const profiles = await loadProfiles(config.agentsFile);
  let url = '';
  const supervisor = new Supervisor({ config, store, bus, log, metrics, profiles, serverEnv: env, secrets, serverUrl: () => url });
  let fleet: Fleet | undefined;
  if (redis) {
    fleet = new Fleet(redis, { nodeId: config.nodeId, url: () => url, prefix: 'sm:', sup: supervisor, store, bus, log, endedKept: config.endedSessionsKept });
    try {
      await fleet.start();
    } catch (err) {
      await fleet.close();
      redis.disconnect(false);
      throw err;
    }
    supervisor.fleet = fleet;
  }
  await supervisor.recover();

  const app = uWS.App();
  const router = new Router();
  let closing = false;
  const sockets = new EditorSockets({ app, auth, supervisor, bus, log, metrics, maxBackpressure: config.wsMaxBackpressure, isClosing: () => closing });
  const closers: Array<() => Promise<void> | void> = [];
  const readyChecks = new Map<string, () => Promise<boolean>>();
  const parts: ServerParts = {
    config, log, store, bus, auth, supervisor, metrics, router, sockets, app, env,
    onClose: (fn) => closers.push(fn),
    addReadyCheck: (name, fn) => readyChecks.set(name, fn),
    url: () => url,
  };

  const bridge = new AgentBridge(supervisor, () => parts.conversations, log);
  sockets.bridge = bridge;
  bridge.viewers = sockets;
  agentSocket(app, supervisor, bridge, log, () => closing);
  sessionRoutes(router, supervisor, config.dataDir, config.testHooks, { bridge: () => bridge, conversations: () => parts.conversations });
  adminRoutes(router, {
    sup: supervisor,
    store,
    metrics,
    auth,
    ready: async () => {
      const checks: Record<string, unknown> = { store: store.kind, shuttingDown: closing };
      let ok = !closing;
      for (const [name, fn] of readyChecks) {
        const good = await fn().catch(() => false);
        checks[name] = good;
        ok &&= good;
      }
      return { ok, checks };
    },
  });
  await registerFeatures(parts);
  if (redis && fleet) {
    const f = fleet;
    parts.addReadyCheck('redis', async () => {
      await redis.ping();
      return f.isUp && (redisBus?.isUp ?? true);
    });
    metrics.extra.fleet = () => ({ ...f.stats(), bus: redisBus?.stats() });
    f.localOps = {
      logs: (r, lines) => tailLines(path.join(config.dataDir, 'sessions', r.id, 'console.log'), lines),
      prompt: (r, text, attachments, userId) => bridge.prompt(r, text, attachments, { kind: 'user', userId, orgId: r.orgId, roles: [], token: '' }),
      cancel: (r) => bridge.cancel(r),
      permission: (r, requestId, optionId) => bridge.answerPermission(r, requestId, optionId),
    };
  }

  const authenticate = async (ctx: HttpContext, mode: 'user' | 'any'): Promise<Principal> => {
    const h = ctx.headers.authorization ?? '';
    const token = /^Bearer\s+(.+)$/i.exec(h)?.[1]?.trim();
    if (token?.startsWith(CREDENTIAL_PREFIX)) return agentPrincipal(ctx, token);
    if (mode === 'any' && !token) {
      const cohost = ctx.query.get('cohost');
      if (cohost && sockets.cohost) return sockets.cohost(cohost);
    }
    return auth.verify(token);
  };

  /**
   * An agent's SESSION_TOKEN works on its own session's routes and its project's planner and
   * conversations, and nowhere else.
   */
  const agentPrincipal = (ctx: HttpContext, token: string): Principal => {
    const r = supervisor.resolveCredential(token);
    if (!r) throw new AppError('SM_ERR_UNAUTHORIZED', 'The session credential is not valid (or its session ended).');
    const own = [`/api/sessions/${r.id}/`, `/api/planner/${r.orgId}/${r.projectName}`, `/api/conversations/${r.orgId}/${r.projectName}`];
    const path = ctx.path.endsWith('/') ? ctx.path : ctx.path + '/';
    if (!own.some((prefix) => path.startsWith(prefix.endsWith('/') ? prefix : prefix + '/'))) {
      throw new AppError('SM_ERR_FORBIDDEN', 'A session credential only reaches its own session and project.');
    }
    return { kind: 'agent', userId: `agent:${r.id}`, orgId: r.orgId, roles: [], scope: { orgId: r.orgId, projectName: r.projectName, sessionId: r.id }, token };
  };

  app.any('/*', (res, req) => {
    const ctx = new HttpContext(res, req, config.maxBodyBytes);
    void dispatch(ctx);
  });

  async function dispatch(ctx: HttpContext): Promise<void> {
    try {
      if (closing) throw new AppError('SM_ERR_SHUTTING_DOWN');
      const m = router.match(ctx.method, ctx.path);
      if (m === 'bad_path') throw new AppError('SM_ERR_BAD_REQUEST', 'The path is not valid percent-encoding.');
      if (m === 'not_found') throw new AppError('SM_ERR_NOT_FOUND', `No route for ${ctx.method} ${ctx.path.slice(0, 200)}.`);
      if (m === 'method') throw new AppError('SM_ERR_METHOD_NOT_ALLOWED');
      ctx.params = m.params;
      ctx.rest = m.rest;
      if (m.auth !== 'public') ctx.principal = await authenticate(ctx, m.auth);
      await m.handler(ctx);
      if (ctx.reply.open) throw new Error(`handler for ${ctx.method} ${ctx.path} did not answer`);
    } catch (caught) {
      const err = storageError(caught);
      if (isAppError(err) && err.code.startsWith('storage_')) log.error('storage failure', { method: ctx.method, path: ctx.path.slice(0, 200), error: caught as Error });
      if (!isAppError(err)) log.error('request failed', { method: ctx.method, path: ctx.path.slice(0, 200), error: err as Error });
      if (ctx.reply.open) {
        const close = isAppError(err) && err.status === 413;
        ctx.reply.error(err);
        if (close && !ctx.reply.aborted) {
          // The rest of an oversized upload is not read: end the connection.
          try {
            ctx.res.close();
          } catch {
            /* already gone */
          }
        }
      }
    }
  }

  const listenSocket = await new Promise<us_listen_socket>((resolve, reject) => {
    app.listen(config.host, config.port, (s) => (s ? resolve(s) : reject(new Error(`SESSION_MANAGER_PORT: cannot listen on ${config.host}:${config.port}`))));
  });
  const port = uWS.us_socket_local_port(listenSocket);
  const hostForUrl = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
  url = config.publicUrl ?? `http://${hostForUrl.includes(':') ? `[${hostForUrl}]` : hostForUrl}:${port}`;
  const reaper = new IdleReaper(supervisor, log);
  reaper.start();
  const adminToken = devMode && jwtSecret ? await signToken(jwtSecret, { sub: 'admin', roles: ['admin'], orgId: 'default', orgClaim: config.jwtOrgClaim }, '30d') : undefined;

  let closed: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closed ??= (async () => {
      closing = true;
      reaper.stop();
      sockets.closeAll();
      await supervisor.close();
      for (const fn of closers) {
        try {
          await fn();
        } catch (err) {
          log.error('shutdown hook failed', { error: err as Error });
        }
      }
      await fleet?.close();
      await store.close();
      await bus.close();
      redis?.disconnect(false);
      uWS.us_listen_socket_close(listenSocket);
      metrics.close();
    })());

  return { url, port, adminToken, parts, close };
}
