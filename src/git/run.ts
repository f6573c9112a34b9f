import { spawn } from 'node:child_process';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { AppError, type ErrorName } from '../errors.js';

/** Local commands (status, commit, log…): generous for a big repository, short for a hang. */
export const LOCAL_TIMEOUT_MS = 60_000;
/** Network commands (clone, push, pull): a big clone is slow, a dead remote must not hold a request forever. */
export const NETWORK_TIMEOUT_MS = 300_000;
/** A transfer slower than this many bytes/s for GIT_HTTP_LOW_SPEED_TIME seconds is abandoned by git itself. */
const LOW_SPEED_LIMIT = '1000';
const LOW_SPEED_TIME = '60';
/** Output kept per stream; beyond it the command is stopped (status of a runaway tree, say). */
const MAX_OUTPUT = 32 * 1024 * 1024;

export interface Identity {
  name: string;
  email: string;
}

export interface RunOptions {
  cwd: string;
  args: string[];
  timeoutMs?: number;
  /** Handed to git only through the askpass helper's environment, for this one command. */
  token?: string | undefined;
  author?: Identity;
  committer?: Identity;
  /** The repository boundary: git never looks above this folder for a `.git`. */
  ceiling: string;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface GitEnvDirs {
  /** An empty folder: `core.hooksPath` points here, so no hook of the workspace runs. */
  hooks: string;
  /** HOME for git: no server-user ~/.gitconfig, ~/.git-credentials or ~/.ssh keys reach a command. */
  home: string;
  /** An empty global config file. */
  globalConfig: string;
  /** The askpass helper: prints a fixed user name and the token from its environment. */
  askpass: string;
}

const ASKPASS_SCRIPT = `#!/bin/sh
# session-manager git askpass: answers git's credential prompts from the environment of
# this one command. It holds no secret itself.
case "$1" in
  Username*|username*) printf '%s\\n' "\${SM_GIT_USERNAME:-x-access-token}" ;;
  *) printf '%s\\n' "\${SM_GIT_TOKEN:-}" ;;
esac
`;

/** Create the helper folders and files under `<dataDir>/git/`. Idempotent. */
export async function prepareGitDirs(dataDir: string): Promise<GitEnvDirs> {
  const root = path.join(dataDir, 'git');
  const dirs: GitEnvDirs = {
    hooks: path.join(root, 'no-hooks'),
    home: path.join(root, 'home'),
    globalConfig: path.join(root, 'gitconfig'),
    askpass: path.join(root, 'askpass.sh'),
  };
  await mkdir(dirs.hooks, { recursive: true });
  await mkdir(dirs.home, { recursive: true });
  await writeFile(dirs.globalConfig, '');
  await writeFile(dirs.askpass, ASKPASS_SCRIPT, { mode: 0o700 });
  await chmod(dirs.askpass, 0o700);
  return dirs;
}

/**
 * Runs the real `git` binary with execFile semantics (argv, never a shell), in its own
 * process group so a timeout kills git and the helpers it spawned (remote-https, ssh).
 *
 * Every command gets `-c` settings that keep workspace config from running code on the
 * server's behalf: hooks pointed at an empty folder, fsmonitor off, credential helpers
 * reset (nothing stores a token), signing off, the `ext::` transport off, and `file://`
 * off unless this server allows it. The environment is built from scratch: no server
 * variable reaches git except PATH.
 */
export class GitRunner {
  constructor(
    private readonly dirs: GitEnvDirs,
    private readonly allowFileUrls: boolean,
  ) {}

  private configArgs(): string[] {
    return [
      '-c', `core.hooksPath=${this.dirs.hooks}`,
      '-c', 'core.fsmonitor=false',
      '-c', 'credential.helper=',
      '-c', 'commit.gpgSign=false',
      '-c', 'tag.gpgSign=false',
      '-c', 'protocol.ext.allow=never',
      '-c', `protocol.file.allow=${this.allowFileUrls ? 'always' : 'never'}`,
      '-c', 'init.defaultBranch=main',
      '-c', 'advice.detachedHead=false',
    ];
  }

  private env(o: RunOptions): Record<string, string> {
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: this.dirs.home,
      LC_ALL: 'C',
      LANG: 'C',
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_CONFIG_GLOBAL: this.dirs.globalConfig,
      GIT_TERMINAL_PROMPT: '0',
      GIT_ASKPASS: this.dirs.askpass,
      GIT_EDITOR: 'true',
      GIT_SSH_COMMAND: 'ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new',
      GIT_CEILING_DIRECTORIES: o.ceiling,
      GIT_LITERAL_PATHSPECS: '1',
      GIT_HTTP_LOW_SPEED_LIMIT: LOW_SPEED_LIMIT,
      GIT_HTTP_LOW_SPEED_TIME: LOW_SPEED_TIME,
    };
    if (o.token !== undefined) env.SM_GIT_TOKEN = o.token;
    const author = o.author ?? o.committer;
    const committer = o.committer ?? o.author;
    if (author) {
      env.GIT_AUTHOR_NAME = author.name;
      env.GIT_AUTHOR_EMAIL = author.email;
    }
    if (committer) {
      env.GIT_COMMITTER_NAME = committer.name;
      env.GIT_COMMITTER_EMAIL = committer.email;
    }
    return env;
  }

  /** Run git; a non-zero exit is a result, not a throw. Timeouts throw `git_timeout`. */
  run(o: RunOptions): Promise<RunResult> {
    const timeoutMs = o.timeoutMs ?? LOCAL_TIMEOUT_MS;
    // An argument or identity with a NUL byte cannot reach a process: refuse it as bad input.
    const identity = [o.author?.name, o.author?.email, o.committer?.name, o.committer?.email];
    if ([...o.args, ...identity].some((a) => typeof a === 'string' && a.includes('\0'))) {
      return Promise.reject(new AppError('SM_ERR_VALIDATION', 'Git arguments may not contain NUL bytes.'));
    }
    return new Promise<RunResult>((resolve, reject) => {
      const child = spawn('git', [...this.configArgs(), ...o.args], {
        cwd: o.cwd,
        env: this.env(o),
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
        shell: false,
      });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let outLen = 0;
      let errLen = 0;
      let killedFor: 'timeout' | 'output' | undefined;
      const killGroup = (why: 'timeout' | 'output') => {
        killedFor ??= why;
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          child.kill('SIGKILL');
        }
      };
      const timer = setTimeout(() => killGroup('timeout'), timeoutMs);
      timer.unref();
      child.stdout.on('data', (d: Buffer) => {
        outLen += d.length;
        if (outLen > MAX_OUTPUT) return killGroup('output');
        out.push(d);
      });
      child.stderr.on('data', (d: Buffer) => {
        errLen += d.length;
        if (errLen <= MAX_OUTPUT) err.push(d);
      });
      child.on('error', (e) => {
        clearTimeout(timer);
        reject(new AppError('SM_ERR_INTERNAL', 'git could not be started.', { cause: e }));
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        if (killedFor === 'timeout') return reject(new AppError('SM_ERR_GIT_TIMEOUT', `git ${o.args[0]} took more than ${Math.round(timeoutMs / 1000)} s and was stopped.`));
        if (killedFor === 'output') return reject(new AppError('SM_ERR_GIT_FAILED', `git ${o.args[0]} printed more than ${MAX_OUTPUT} bytes.`));
        resolve({ code: code ?? (signal ? 128 : 1), stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
      });
    });
  }
}

/**
 * Replace a token (and any credentials inside URLs) in text that may reach a response or a
 * log line.
 */
export function redact(text: string, token?: string): string {
  let out = text;
  if (token) out = out.split(token).join('[redacted]');
  return out.replace(/([a-z][a-z0-9+.-]*:\/\/)([^\s/@]*)@/gi, (_m, scheme: string, userinfo: string) => {
    const user = userinfo.split(':')[0] ?? '';
    return userinfo.includes(':') ? `${scheme}${user}:[redacted]@` : `${scheme}${userinfo}@`;
  });
}

/** The catalog entry for git's complaint (LC_ALL=C messages), or undefined for a plain failure. */
export function classify(stderr: string, stdout = ''): ErrorName | undefined {
  const t = `${stderr}\n${stdout}`;
  if (/not a git repository/i.test(t) && !/does not appear to be a git repository/i.test(t)) return 'SM_ERR_GIT_NOT_REPO';
  if (/Authentication failed|could not read (Username|Password)|terminal prompts disabled|Permission denied \(publickey|HTTP Basic: Access denied|The requested URL returned error: 40[13]|Invalid username or (password|token)/i.test(t)) {
    return 'SM_ERR_GIT_AUTH_FAILED';
  }
  if (/CONFLICT \(|Automatic merge failed|\[rejected\]|non-fast-forward|Updates were rejected|fetch first|would be overwritten by merge|not possible to fast-forward|refusing to merge unrelated histories/i.test(t)) {
    return 'SM_ERR_GIT_CONFLICT';
  }
  if (/nothing to commit|no changes added to commit/i.test(t)) return 'SM_ERR_GIT_NOTHING_TO_COMMIT';
  if (/does not appear to be a git repository|Could not read from remote repository|Could not resolve host|Failed to connect|Connection refused|unable to access|repository '.*' not found|Repository not found|The requested URL returned error: 5\d\d|transport '.*' not allowed/i.test(t)) {
    return 'SM_ERR_GIT_REMOTE_FAILED';
  }
  return undefined;
}

/** Turn a failed run into an AppError: the mapped code, git's own first error line (redacted). */
export function gitError(r: RunResult, what: string, token?: string, fallback: ErrorName = 'SM_ERR_GIT_FAILED', details?: Record<string, unknown>): AppError {
  const name = classify(r.stderr, r.stdout) ?? fallback;
  const lines = redact(`${r.stderr}\n${r.stdout}`, token).split('\n').map((l) => l.trim()).filter(Boolean);
  const line = lines.find((l) => /^(fatal|error|CONFLICT|!|hint: Updates)/.test(l)) ?? lines[0] ?? `exit code ${r.code}`;
  return new AppError(name, `git ${what} failed: ${line.slice(0, 500)}`, { details: { ...details, exitCode: r.code } });
}
