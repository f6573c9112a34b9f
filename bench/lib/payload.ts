/**
 * The fan-out payload: a deterministic binary file that the agent prints with
 * `base64` (76 columns). Through a pty each "\n" becomes "\r\n", so the expected terminal
 * output is known byte for byte and every received byte can be checked by its offset.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { ExpectedStream } from './check.js';

/** GNU base64 wraps at 76 characters: 57 input bytes per full line. */
const B64_COLS = 76;
const RAW_PER_LINE = 57;
/** One output line through the pty: 76 characters and "\r\n". */
const LINE_BYTES = B64_COLS + 2;

/** Printed by the fan-out agent once its terminal is set up, before it waits for "go". */
export const READY_LINE = 'READY\r\n';

export interface Payload {
  /** The binary file given to `base64`. */
  file: string;
  /** What `base64 file` prints through a pty (ASCII), without the READY line. */
  body: string;
  /** The expected stream with its JSON index, built once: with the READY line or without. */
  stream(withReady: boolean): ExpectedStream;
}

/** Deterministic bytes (xorshift32), so runs and sides print the same stream. */
function pseudoRandomBytes(n: number, seed: number): Buffer {
  const words = new Uint32Array(Math.ceil(n / 4));
  let x = seed >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[i] = x;
  }
  return Buffer.from(words.buffer, 0, n);
}

/** Expected pty output of `base64 <raw>` (raw length a multiple of 57: only full lines). */
export function base64TerminalText(raw: Buffer): string {
  const b64 = raw.toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += B64_COLS) lines.push(b64.slice(i, i + B64_COLS));
  return lines.join('\r\n') + (lines.length ? '\r\n' : '');
}

/** Write a payload file whose base64 output is about `outputBytes` long. */
export function makePayload(dir: string, outputBytes: number, seed = 0x5eed): Payload {
  const lines = Math.max(1, Math.ceil(outputBytes / LINE_BYTES));
  const raw = pseudoRandomBytes(lines * RAW_PER_LINE, seed);
  const file = path.join(dir, `payload-${lines}.bin`);
  writeFileSync(file, raw);
  const body = base64TerminalText(raw);
  const streams = new Map<boolean, ExpectedStream>();
  return {
    file,
    body,
    stream(withReady) {
      let s = streams.get(withReady);
      if (!s) streams.set(withReady, (s = new ExpectedStream(withReady ? READY_LINE + body : body)));
      return s;
    },
  };
}

/**
 * The fan-out agent: silence the terminal's echo, say READY, wait for one line, then print
 * the payload and exit at once (the last bytes are written right before the exit).
 */
export function fanoutCommand(file: string): string[] {
  return ['sh', '-c', `stty -echo; printf 'READY\\n'; read go; exec base64 "$0"`, file];
}
