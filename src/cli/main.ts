#!/usr/bin/env node
/**
 * `session-manager`: the server (`serve`) and a tmux-like client for it (DESIGN, issue 7).
 * Every command but `serve` talks to a running server over its HTTP API and `/ws`.
 * Exit codes: see ./errors.ts and docs/console.md.
 */
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { resolveTarget } from './connection.js';
import { Commands, type Flags } from './commands.js';
import { CliError, EXIT } from './errors.js';

const USAGE = `usage: session-manager <command> [options]

Server:
  serve [--port N] [--host H] [--data-dir DIR]   run the server (same as npm start)

Sessions:
  list [--status S] [--project P] [--org O]       sessions, newest first
  show <id>                                       one session
  create <project> [--agent A] [--command C] [--org O] [--priority N] [--attach]
                                                  start a long-running session (agent: bash)
  one-off <project> <command…> [--org O] [--wait] queue a one-off job (sh -c); --wait streams
                                                  its output and exits with its exit code
  send <id> <text…> [--no-enter]                  type text into a session (Enter unless --no-enter)
  kill <id>                                       terminate a session
  logs <id> [--lines N] [--follow]                tail of its console log; --follow streams on
  jobs [--limit N]                                the job log, newest first
  attach <id>                                     interactive terminal; detach with Ctrl-\\

Ids may be shortened to a unique prefix (4+ characters), as listed by "list".

Connection (first match wins):
  --url URL      or SESSION_MANAGER_URL, PUBLIC_URL, http://HOST:SESSION_MANAGER_PORT (127.0.0.1:5600)
  --token JWT    or SESSION_MANAGER_TOKEN; else, next to a dev-mode server, an admin token
                 minted from DATA_DIR/jwt-secret (readable only by the server's user)

Output: human tables; --json for scripts.
Exit codes: 0 ok, 1 failure, 2 usage, 3 server unreachable, 4 unauthorized/forbidden,
            5 not found, 6 rejected (400/409/429…); one-off --wait: the job's exit code.
`;

const OPTIONS = {
  url: { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
  version: { type: 'boolean', short: 'v', default: false },
  org: { type: 'string' },
  agent: { type: 'string' },
  command: { type: 'string', short: 'c' },
  priority: { type: 'string' },
  lines: { type: 'string', short: 'n' },
  follow: { type: 'boolean', short: 'f', default: false },
  'no-enter': { type: 'boolean', default: false },
  status: { type: 'string' },
  project: { type: 'string' },
  limit: { type: 'string' },
  wait: { type: 'boolean', short: 'w', default: false },
  attach: { type: 'boolean', short: 'a', default: false },
  port: { type: 'string' },
  host: { type: 'string' },
  'data-dir': { type: 'string' },
} as const;

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

export async function run(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    throw new CliError(EXIT.USAGE, `${(err as Error).message} (see session-manager --help)`);
  }
  const v = parsed.values;
  const [cmd, ...rest] = parsed.positionals;
  if (v.version) {
    process.stdout.write(`session-manager ${version()}\n`);
    return EXIT.OK;
  }
  if (v.help || !cmd || cmd === 'help') {
    process.stdout.write(USAGE);
    return cmd || v.help ? EXIT.OK : EXIT.USAGE;
  }
  if (cmd === 'serve') return serve(v);

  const target = await resolveTarget({ url: v.url, token: v.token });
  const flags: Flags = {
    json: v.json, org: v.org, agent: v.agent, command: v.command, priority: v.priority, lines: v.lines, follow: v.follow,
    noEnter: v['no-enter'], status: v.status, project: v.project, limit: v.limit, wait: v.wait, attach: v.attach,
  };
  const c = new Commands(target, flags, { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) });
  switch (cmd) {
    case 'list':
    case 'ls':
      return c.list();
    case 'show':
      return c.show(rest[0]);
    case 'create':
    case 'new':
      return c.create(rest[0]);
    case 'one-off':
      return c.oneOff(rest[0], rest.slice(1));
    case 'send':
      return c.send(rest[0], rest.slice(1));
    case 'kill':
      return c.kill(rest[0]);
    case 'logs':
      return c.logs(rest[0]);
    case 'jobs':
      return c.jobs();
    case 'attach':
    case 'a':
      return c.attach(rest[0]);
    default:
      throw new CliError(EXIT.USAGE, `unknown command "${cmd}" (see session-manager --help)`);
  }
}

/** `serve`: the server itself. Flags become the environment variables src/main.ts reads. */
async function serve(v: { port?: string | undefined; host?: string | undefined; 'data-dir'?: string | undefined }): Promise<number> {
  if (v.port !== undefined) process.env.SESSION_MANAGER_PORT = v.port;
  if (v.host !== undefined) process.env.HOST = v.host;
  if (v['data-dir'] !== undefined) process.env.DATA_DIR = v['data-dir'];
  await import('../main.js');
  // main.js owns the process from here (signals, exit); never resolve.
  return new Promise<number>(() => {});
}

async function main(): Promise<void> {
  let code: number;
  try {
    code = await run(process.argv.slice(2));
  } catch (err) {
    if (err instanceof CliError) {
      process.stderr.write(`session-manager: ${err.message}\n`);
      code = err.exitCode;
    } else {
      process.stderr.write(`session-manager: ${(err as Error)?.stack ?? String(err)}\n`);
      code = EXIT.FAILURE;
    }
  }
  process.exitCode = code;
  // Open handles (a closing WebSocket) must not keep a finished command alive; output
  // still buffered for a pipe is written first.
  const exit = () => setTimeout(() => process.exit(code), 50).unref();
  if (process.stdout.writableNeedDrain) process.stdout.once('drain', exit);
  else exit();
}

void main();
