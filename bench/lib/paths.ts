import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** dist/bench/lib → the repository root. */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const DIST = path.join(ROOT, 'dist');
export const PROJECT_MAIN = path.join(DIST, 'src/main.js');
export const BASELINE_MAIN = path.join(DIST, 'bench/baseline/server.js');
export const PTY_READ_PROBE = path.join(DIST, 'bench/limits/pty-read.js');
export const UWS_FANOUT_PROBE = path.join(DIST, 'bench/limits/uws-fanout.js');
export const PTY_ECHO_PROBE = path.join(DIST, 'bench/limits/pty-echo.js');
export const WS_ECHO_PROBE = path.join(DIST, 'bench/limits/ws-echo.js');

/** The environment every child starts from: no inherited secrets or config. */
export function baseEnv(dir: string): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: process.env.HOME ?? dir,
    LANG: 'C.UTF-8',
  };
}
