/**
 * Checks a viewer's output stream byte by byte against the expected text, by offset.
 * A frame whose offset is past the end seen so far is a hole; before it, a repeat.
 */
export class StreamCheck {
  /** The next offset expected (every byte before it has been seen). */
  end: number;
  holes = 0;
  holeBytes = 0;
  repeats = 0;
  mismatches = 0;
  frames = 0;
  firstError: string | undefined;
  /** performance.now() of the frame that completed the stream (or of the last frame). */
  lastAt = 0;
  doneAt = 0;

  constructor(private readonly expected: string, start = 0) {
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

  push(offset: number, data: string, now: number): void {
    this.frames++;
    this.lastAt = now;
    // The expected stream is ASCII: byte offsets are character indexes.
    const ascii = Buffer.byteLength(data) === data.length;
    if (!ascii || !this.expected.startsWith(data, offset)) {
      this.mismatches++;
      this.firstError ??= `bytes at offset ${offset} (${data.length} long) differ from the expected stream`;
    }
    if (offset > this.end) {
      this.holes++;
      this.holeBytes += offset - this.end;
      this.firstError ??= `hole: got offset ${offset}, expected ${this.end}`;
    } else if (offset < this.end) {
      this.repeats++;
      this.firstError ??= `repeat: got offset ${offset}, expected ${this.end}`;
    }
    const end = offset + data.length;
    if (end > this.end) this.end = end;
    if (this.complete && !this.doneAt) this.doneAt = now;
  }

  summary(): { ok: boolean; received: number; expected: number; lostAtEnd: number; holes: number; holeBytes: number; repeats: number; mismatches: number; firstError?: string } {
    return {
      ok: this.ok,
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
