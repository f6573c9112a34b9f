import { ConfigError, environmentWithDotEnv, loadConfig } from './config.js';
import { startServer } from './server.js';

/** Graceful shutdown must finish within this; past it the process exits anyway. */
const SHUTDOWN_DEADLINE_MS = 8000;

async function main(): Promise<void> {
  const env = environmentWithDotEnv(process.env, process.cwd());
  let config;
  try {
    config = loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`session-manager: bad configuration: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  let server;
  try {
    server = await startServer(config, env);
  } catch (err) {
    process.stderr.write(`session-manager: cannot start: ${(err as Error).message}\n`);
    process.exit(1);
  }
  const readyUrl = server.adminToken ? `${server.url}/?token=${server.adminToken}` : `${server.url}/`;
  process.stdout.write(`session-manager ready at ${readyUrl}\n`);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    server.parts.log.info('shutting down', { signal });
    const deadline = setTimeout(() => {
      process.stderr.write('session-manager: shutdown deadline passed, exiting\n');
      process.exit(1);
    }, SHUTDOWN_DEADLINE_MS);
    deadline.unref();
    server.close().then(
      () => {
        server.parts.log.info('stopped');
        process.exit(0);
      },
      (err: unknown) => {
        process.stderr.write(`session-manager: shutdown failed: ${(err as Error).message}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

void main();
