// The task and run states of the API (docs/protocol.md 11, 11.5), in the
// order the page lists them, and which task states a cancel still reaches.

export const TASK_STATES = Object.freeze(['queued', 'dispatched', 'running', 'succeeded',
  'failed', 'timed_out', 'cancelled', 'rejected', 'lost', 'skipped']);

// A run's own states (11.5).
export const RUN_STATES = Object.freeze(['running', 'succeeded', 'failed', 'stopped',
  'cancelled']);

const CANCELLABLE = new Set(['queued', 'dispatched', 'running']);
const ENDED = new Set(['succeeded', 'failed', 'timed_out', 'cancelled', 'rejected', 'lost',
  'skipped']);

export function isCancellable(state) { return CANCELLABLE.has(state); }

export function hasEnded(state) { return ENDED.has(state); }

// "3 running, 5 succeeded" for a run's counts of its tasks by state.
export function countsText(counts) {
  if (!counts) return '';
  return TASK_STATES.filter((s) => counts[s]).map((s) => counts[s] + ' ' + s).join(', ');
}
