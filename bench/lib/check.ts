/**
 * Checks a viewer's output stream byte by byte against the expected text, by offset.
 * A frame whose offset is past the end seen so far is a hole; before it, a repeat.
 */

/** Raw offsets indexed every this many bytes to find their place in the JSON encoding. */
const BLOCK = 256;

/** JSON.stringify's length for one ASCII character. */
function escLen(c: number): number {
  if (c === 0x22 || c === 0x5c || c === 0x08 || c === 0x0c || c === 0x0a || c === 0x0d || c === 0x09) return 2;
  return c < 0x20 ? 6 : 1;
}

/** The expected stream (ASCII), with its JSON encoding and an index between the two. */
export class ExpectedStream {
  readonly length: number;
  /** JSON.stringify(text) without the quotes, as bytes. */
  readonly escaped: Buffer;
  /** escAt[k] = position in `escaped` of raw offset k * BLOCK. */
  private readonly escAt: Float64Array;

  constructor(readonly text: string) {
    for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7e) throw new Error('expected stream must be ASCII');
    this.length = text.length;
    this.escaped = Buffer.from(JSON.stringify(text).slice(1, -1), 'latin1');
    this.escAt = new Float64Array(Math.floor(text.length / BLOCK) + 2);
    let e = 0;
    for (let i = 0; i <= text.length; i++) {
      if (i % BLOCK === 0) this.escAt[i / BLOCK] = e;
      if (i < text.length) e += escLen(text.charCodeAt(i));
    }
  }

  /** Position in `escaped` of raw offset `raw` (0 ≤ raw ≤ length). */
  escOffset(raw: number): number {
    const k = Math.floor(raw / BLOCK);
    let e = this.escAt[k]!;
    for (let i = k * BLOCK; i < raw; i++) e += escLen(this.text.charCodeAt(i));
    return e;
  }

  /** The raw offset whose escaped position is `esc`, or -1 if `esc` falls inside an escape. */
  rawOffset(esc: number): number {
    let lo = 0;
    let hi = this.escAt.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (mid * BLOCK <= this.length && this.escAt[mid]! <= esc) lo = mid;
      else hi = mid - 1;
    }
    let raw = lo * BLOCK;
    let e = this.escAt[lo]!;
    while (e < esc && raw < this.length) e += escLen(this.text.charCodeAt(raw++));
    return e === esc ? raw : -1;
  }
}

export class StreamCheck {
  /** The next offset expected (every byte before it has been seen). */
  end: number;
  holes = 0;
  holeBytes = 0;
  repeats = 0;
  mismatches = 0;
  frames = 0;
  /** Frames that had to be decoded (did not match the expected JSON encoding as bytes). */
  decoded = 0;
  firstError: string | undefined;
  /** performance.now() of the last frame, and of the frame that completed the stream. */
  lastAt = 0;
  doneAt = 0;

  constructor(private readonly expected: ExpectedStream, start = 0) {
    this.end = start;
  }

  get total(): number {
    return this.expected.length;
  }

  get complete(): boolean {
    return this.end >= this.expected.length;
  }

  /** Bytes the viewer never got at the end of the stream (0 when complete). */
  get lostAtEnd(): number {
    return Math.max(0, this.expected.length - this.end);
  }

  get ok(): boolean {
    return this.complete && this.holes === 0 && this.mismatches === 0 && this.repeats === 0;
  }

  private place(offset: number, length: number, now: number): void {
    this.frames++;
    this.lastAt = now;
    if (offset > this.end) {
      this.holes++;
      this.holeBytes += offset - this.end;
      this.firstError ??= `hole: got offset ${offset}, expected ${this.end}`;
    } else if (offset < this.end) {
      this.repeats++;
      this.firstError ??= `repeat: got offset ${offset}, expected ${this.end}`;
    }
    const end = offset + length;
    if (end > this.end) this.end = end;
    if (this.complete && !this.doneAt) this.doneAt = now;
  }

  /** A decoded chunk. */
  push(offset: number, data: string, now: number): void {
    this.decoded++;
    // The expected stream is ASCII: byte offsets are character indexes.
    const ascii = Buffer.byteLength(data) === data.length;
    if (!ascii || offset > this.expected.length || !this.expected.text.startsWith(data, offset)) {
      this.mismatches++;
      this.firstError ??= `bytes at offset ${offset} (${data.length} long) differ from the expected stream`;
    }
    this.place(offset, Buffer.byteLength(data), now);
  }

  /**
   * A chunk still JSON-encoded (frame[start, end)). Returns false, recording nothing, when
   * it does not match the expected encoding byte for byte: the caller then decodes it and
   * calls `push`, which judges the decoded bytes.
   */
  pushEscaped(offset: number, frame: Buffer, start: number, end: number, now: number): boolean {
    if (offset > this.expected.length) return false;
    const e0 = this.expected.escOffset(offset);
    const e1 = e0 + (end - start);
    if (e1 > this.expected.escaped.length) return false;
    if (this.expected.escaped.compare(frame, start, end, e0, e1) !== 0) return false;
    const rawEnd = this.expected.rawOffset(e1);
    if (rawEnd < 0) return false;
    this.place(offset, rawEnd - offset, now);
    return true;
  }

  summary(): { ok: boolean; received: number; expected: number; lostAtEnd: number; holes: number; holeBytes: number; repeats: number; mismatches: number; frames: number; decoded: number; firstError?: string } {
    return {
      ok: this.ok,
      frames: this.frames,
      decoded: this.decoded,
      received: this.end,
      expected: this.expected.length,
      lostAtEnd: this.lostAtEnd,
      holes: this.holes,
      holeBytes: this.holeBytes,
      repeats: this.repeats,
      mismatches: this.mismatches,
      ...(this.firstError ? { firstError: this.firstError } : {}),
    };
  }
}
