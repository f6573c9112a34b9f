/**
 * The report's "rounds" range: the ratio of each back-to-back pair of runs, lowest and
 * highest, next to the ratio of the medians the target is judged on.
 */
import { expect, it } from 'vitest';
import { ratio, roundsRange, type ScenarioResult, type SideRun } from '../../bench/lib/scenario.js';

const run = (perS: number): SideRun => ({ metrics: { perS }, load: {} as SideRun['load'] });
const result = (project: SideRun[], baseline: SideRun[]): ScenarioResult => ({
  scenario: 'spawn-rate',
  title: '',
  at: '',
  runs: project.length,
  sizes: {},
  project: { median: {}, runs: project },
  baseline: { median: {}, runs: baseline },
  row: '',
});

it('pairs run i of each side and gives the lowest and highest ratio', () => {
  // Rounds: 300/150 = 2, 200/160 = 1.25, 330/200 = 1.65 — not the ratio of any two medians.
  const r = result([run(300), run(200), run(330)], [run(150), run(160), run(200)]);
  expect(roundsRange(r, 'perS')).toBe('; rounds 1.25–2.00×');
  expect(roundsRange(r, 'perS', 3)).toBe('; rounds 1.250–2.000×');
  expect(ratio(300, 160)).toBe(1.875);
});

it('says nothing with fewer than two usable rounds', () => {
  expect(roundsRange(result([run(300)], [run(150)]), 'perS')).toBe('');
  // A failed run has no number for the key: that round is left out, not counted as 0.
  const failed: SideRun = { metrics: {}, load: {} as SideRun['load'], failed: true };
  expect(roundsRange(result([run(300), failed], [run(150), run(150)]), 'perS')).toBe('');
  expect(roundsRange(result([run(300), run(200)], [run(150)]), 'perS')).toBe('');
});
