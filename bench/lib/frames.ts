/**
 * Cheap parsing of output frames in the driver. Both servers encode `data` with
 * JSON.stringify, so a frame's data section can be compared, as bytes, with the JSON
 * encoding of the expected stream — no JSON.parse and no UTF-16 string per frame. With 20
 * viewers in one driver process, JSON.parse alone would cost a core at ~500 MB/s and cap
 * the fan-out it can observe. Any frame this does not recognise goes the slow way.
 */

export interface RawOutput {
  sessionId: string;
  offset: number;
  /** The JSON-escaped `data` bytes are frame[dataStart, dataEnd). */
  dataStart: number;
  dataEnd: number;
}

const OFFSET_KEY = Buffer.from('","offset":', 'latin1');
const DATA_KEY = Buffer.from(',"data":"', 'latin1');
const UUID_LEN = 36;

function matchAt(buf: Buffer, at: number, what: Buffer): boolean {
  if (at + what.length > buf.length) return false;
  return buf.compare(what, 0, what.length, at, at + what.length) === 0;
}

/**
 * Recognise `<prefix><uuid>","offset":<n>,"data":"<escaped>"<suffix>` where prefix ends
 * with `"sessionId":"`; the project sends `{"type":"output","sessionId":"…` and `"}`, the
 * baseline `42["output",{"sessionId":"…` and `"}]`.
 */
export function parseOutputFast(buf: Buffer, prefix: Buffer, suffix: Buffer): RawOutput | undefined {
  if (!matchAt(buf, 0, prefix)) return undefined;
  const idStart = prefix.length;
  const sessionId = buf.toString('latin1', idStart, idStart + UUID_LEN);
  let i = idStart + UUID_LEN;
  if (!matchAt(buf, i, OFFSET_KEY)) return undefined;
  i += OFFSET_KEY.length;
  let offset = 0;
  const digitsStart = i;
  while (i < buf.length && buf[i]! >= 0x30 && buf[i]! <= 0x39 && i - digitsStart < 16) offset = offset * 10 + (buf[i++]! - 0x30);
  if (i === digitsStart) return undefined;
  if (!matchAt(buf, i, DATA_KEY)) return undefined;
  const dataStart = i + DATA_KEY.length;
  const dataEnd = buf.length - suffix.length;
  if (dataEnd < dataStart || !matchAt(buf, dataEnd, suffix)) return undefined;
  // The closing quote must not be escaped: an odd run of backslashes before it would mean
  // the suffix is inside the string. Let the slow path handle that (never for our frames).
  let bs = 0;
  for (let k = dataEnd - 1; k >= dataStart && buf[k] === 0x5c; k--) bs++;
  if (bs % 2 === 1) return undefined;
  return { sessionId, offset, dataStart, dataEnd };
}
