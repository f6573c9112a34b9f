/**
 * rest: planner PATCH and `GET /api/sessions` under autocannon. The planner routes arrive
 * with the workspace issue; until then this scenario reports that it is pending (no number).
 */
import type { ScenarioDef } from '../lib/scenario.js';

export const rest: ScenarioDef = {
  name: 'rest',
  title: 'REST under load (autocannon)',
  sizes: () => ({}),
  pending: 'waits for the workspace issue (planner routes)',
  summarize: () => ({ ratios: {}, targets: [], row: '' }),
};
