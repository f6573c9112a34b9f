/** The results file (`bench/results/<date>.json`): every scenario's latest result of that day. */
import { existsSync, readFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem, type } from 'node:os';
import path from 'node:path';
import { ROOT } from '../lib/paths.js';
import type { ScenarioResult } from '../lib/scenario.js';

export interface Machine {
  cpuModel: string;
  cores: number;
  memGiB: number;
  os: string;
  node: string;
  versions: Record<string, string>;
  load1AtStart: number;
  note: string;
}

export interface ResultsFile {
  version: 1;
  date: string;
  updatedAt: string;
  quick: boolean;
  runs: number;
  machine: Machine;
  scenarios: Record<string, ScenarioResult>;
}

export function describeMachine(): Machine {
  const versions: Record<string, string> = {};
  for (const pkg of ['uWebSockets.js', 'piscina', 'node-pty', 'express', 'socket.io', 'ws', 'autocannon']) {
    try {
      versions[pkg] = (JSON.parse(readFileSync(path.join(ROOT, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string }).version;
    } catch {
      versions[pkg] = 'unknown';
    }
  }
  const c = cpus();
  return {
    cpuModel: c[0]?.model.trim() ?? 'unknown',
    cores: c.length,
    memGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    os: `${type()} ${release()}`,
    node: process.version,
    versions,
    load1AtStart: Math.round((loadavg()[0] ?? NaN) * 100) / 100,
    note: 'driver, servers and agents share the machine; loopback only',
  };
}

export function readResults(file: string): ResultsFile | undefined {
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as ResultsFile;
  } catch {
    return undefined;
  }
}
