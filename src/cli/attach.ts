import { StringDecoder } from 'node:string_decoder';
import type { Target } from './connection.js';
import { DETACH_KEY, SessionStream, type StreamEnd } from './stream.js';

/** Alternate screen on/off and cursor shown: how tmux leaves the shell's screen untouched. */
const ALT_SCREEN_ON = '\x1b[?1049h\x1b[H\x1b[2J';
const ALT_SCREEN_OFF = '\x1b[?1049l';
const SHOW_CURSOR = '\x1b[?25h';

export interface AttachOptions {
  target: Target;
  sessionId: string;
  label: string;
  /** Guests (share links) may only watch: no input, no resize. */
  readOnly?: boolean;
}

/**
 * `attach <id>`: the terminal in raw mode, bridged to the session over `/ws`. Keys go to the
 * session as typed (Ctrl-C included); Ctrl-\ detaches and leaves the session running; the
 * terminal size follows the window (SIGWINCH); a dropped connection resumes by offset.
 */
export async function attachTerminal(o: AttachOptions): Promise<StreamEnd> {
  const stdin = process.stdin;
  const stdout = process.stdout;
  const tty = stdin.isTTY === true && stdout.isTTY === true;
  let lastSize = '';

  const stream = new SessionStream({
    target: o.target,
    sessionId: o.sessionId,
    write: (data) => stdout.write(data),
    notice: (text) => stdout.write(`\r\n\x1b[2m${text}\x1b[0m\r\n`),
    onAttached: () => {
      lastSize = '';
      sendSize();
    },
  });

  const sendSize = () => {
    if (!tty || o.readOnly) return;
    const cols = stdout.columns;
    const rows = stdout.rows;
    if (!cols || !rows) return;
    const size = `${cols}x${rows}`;
    if (size === lastSize) return;
    if (stream.send({ type: 'resize', sessionId: o.sessionId, cols, rows })) lastSize = size;
  };

  const decoder = new StringDecoder('utf8');
  const onData = (chunk: Buffer) => {
    const i = chunk.indexOf(DETACH_KEY);
    if (i >= 0) {
      if (!o.readOnly) stream.input(decoder.write(chunk.subarray(0, i)));
      stream.detach();
      return;
    }
    if (!o.readOnly) stream.input(decoder.write(chunk));
  };
  const onEnd = () => stream.detach();
  const onSigwinch = () => sendSize();
  // Killed or hung up: detach cleanly so the terminal is restored (the session keeps running).
  const onTerm = () => stream.detach();

  let restored = false;
  const restore = () => {
    if (restored) return;
    restored = true;
    stdin.off('data', onData);
    stdin.off('end', onEnd);
    stdout.off('resize', onSigwinch);
    process.off('SIGWINCH', onSigwinch);
    process.off('SIGTERM', onTerm);
    process.off('SIGHUP', onTerm);
    process.off('exit', restore);
    if (tty) {
      try {
        stdin.setRawMode(false);
      } catch {
        // stdin already gone.
      }
      stdout.write(ALT_SCREEN_OFF + SHOW_CURSOR);
    }
    stdin.pause();
  };
  process.on('exit', restore);

  if (tty) {
    stdout.write(ALT_SCREEN_ON);
    stdin.setRawMode(true);
  }
  stdout.write(`\x1b[2m[attached to ${o.label}${o.readOnly ? ' (read-only)' : ''} — detach with Ctrl-\\]\x1b[0m\r\n`);
  stdin.on('data', onData);
  stdin.on('end', onEnd);
  stdin.resume();
  stdout.on('resize', onSigwinch);
  process.on('SIGWINCH', onSigwinch);
  process.on('SIGTERM', onTerm);
  process.on('SIGHUP', onTerm);
  stream.start();
  try {
    return await stream.done;
  } finally {
    restore();
  }
}
