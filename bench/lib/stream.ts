/**
 * Viewers that follow one output stream and check every byte by offset (fan-out and the
 * uWS limit). A viewer the server drops (e.g. 4008, too slow) reconnects and resumes from
 * the last byte it holds, as an editor would; the resume and any gap are counted.
 */
import type { Viewer } from '../adapters/types.js';
import { StreamCheck, type ExpectedStream } from './check.js';
import { waitFor } from './scenario.js';

/** A dropped viewer resumes at most this many times. */
const MAX_RESUMES = 20;
/** After the exit frame, wait this long for bytes still in flight before judging losses. */
export const TAIL_GRACE_MS = 1000;

export interface Watch {
  viewer: Viewer;
  check: StreamCheck;
  exitedAt: number;
  resumes: number;
  closeCodes: number[];
}

export interface WatchOptions {
  connect: () => Promise<Viewer>;
  sessionId: string;
  expected: ExpectedStream;
  viewers: number;
  /** Attach after connecting (the uWS probe streams to every client without one). */
  attach: boolean;
}

export async function openWatches(o: WatchOptions): Promise<{ watches: Watch[]; stop: () => void }> {
  let stopped = false;
  const wire = (w: Watch) => {
    w.viewer.onOutput = (_id, offset, data) => w.check.push(offset, data, performance.now());
    w.viewer.onOutputRaw = (_id, offset, frame, start, end) => w.check.pushEscaped(offset, frame, start, end, performance.now());
    w.viewer.onExit = () => {
      w.exitedAt ||= performance.now();
    };
    w.viewer.onClose = (code) => {
      w.closeCodes.push(code);
      if (stopped || !o.attach || w.exitedAt || w.check.complete || w.resumes >= MAX_RESUMES) return;
      w.resumes++;
      void (async () => {
        try {
          w.viewer = await o.connect();
          wire(w);
          await w.viewer.attach(o.sessionId, w.check.end);
        } catch {
          // Counted as lost bytes when the stream is judged.
        }
      })();
    };
  };
  const watches: Watch[] = [];
  for (let i = 0; i < o.viewers; i++) {
    const w: Watch = { viewer: await o.connect(), check: new StreamCheck(o.expected), exitedAt: 0, resumes: 0, closeCodes: [] };
    wire(w);
    watches.push(w);
    if (o.attach) await w.viewer.attach(o.sessionId);
  }
  return {
    watches,
    stop: () => {
      stopped = true;
      for (const w of watches) w.viewer.close();
    },
  };
}

/** Wait until every viewer has the whole stream and the exit, or the exits plus a grace period, or the deadline. */
export async function awaitStreams(watches: Watch[], timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  const allDone = () => watches.every((w) => w.check.complete && w.exitedAt);
  await waitFor(() => allDone() || watches.every((w) => w.exitedAt), timeoutMs, 2);
  if (allDone()) return true;
  // Exits arrived but bytes are missing: give in-flight bytes a moment, bounded.
  await waitFor(allDone, Math.min(TAIL_GRACE_MS, Math.max(0, deadline - Date.now())), 5);
  return allDone();
}

/** Throughput and byte-check figures over a set of viewers that started at `t0`. */
export function streamFigures(watches: Watch[], t0: number, skip: number): { metrics: Record<string, number>; check: Record<string, unknown> } {
  const rates: number[] = [];
  let delivered = 0;
  let lastAt = t0;
  for (const w of watches) {
    const got = Math.max(0, w.check.end - skip);
    delivered += got;
    const end = w.check.doneAt || w.check.lastAt;
    if (end > lastAt) lastAt = end;
    rates.push(end > t0 ? got / 1e6 / ((end - t0) / 1000) : 0);
  }
  rates.sort((a, b) => a - b);
  const mid = rates.length >> 1;
  const medianRate = rates.length % 2 ? rates[mid]! : (rates[mid - 1]! + rates[mid]!) / 2;
  const sums = watches.map((w) => w.check.summary());
  const lost = Math.max(...sums.map((s) => s.lostAtEnd));
  const r2 = (x: number) => Math.round(x * 100) / 100;
  return {
    metrics: {
      mbpsPerViewer: r2(medianRate),
      mbpsPerViewerMin: r2(rates[0] ?? 0),
      mbpsAggregate: r2(delivered / 1e6 / Math.max(1e-9, (lastAt - t0) / 1000)),
      deliveredMB: r2(delivered / 1e6),
      seconds: r2((lastAt - t0) / 1000),
      lostAtExitBytes: lost,
      resumes: watches.reduce((a, w) => a + w.resumes, 0),
    },
    check: {
      ok: sums.every((s) => s.ok),
      viewersOk: sums.filter((s) => s.ok).length,
      viewers: sums.length,
      expectedBytes: sums[0]?.expected ?? 0,
      lostAtExitBytes: lost,
      holes: sums.reduce((a, s) => a + s.holes, 0),
      holeBytes: sums.reduce((a, s) => a + s.holeBytes, 0),
      repeats: sums.reduce((a, s) => a + s.repeats, 0),
      mismatches: sums.reduce((a, s) => a + s.mismatches, 0),
      frames: sums.reduce((a, s) => a + s.frames, 0),
      decodedFrames: sums.reduce((a, s) => a + s.decoded, 0),
      exitsSeen: watches.filter((w) => w.exitedAt).length,
      closeCodes: [...new Set(watches.flatMap((w) => w.closeCodes))],
      ...(sums.find((s) => s.firstError) ? { firstError: sums.find((s) => s.firstError)!.firstError } : {}),
    },
  };
}
