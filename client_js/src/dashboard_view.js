// What the dashboard shows, worked out from `api/v1/status` (pure functions, unit-tested):
// the strategy's parameters as text, the end conditions with the progress towards each, and
// which admin actions make sense in the run's state.

/** A parameter or report value as text: null is "none" (a parameter the strategy does not use). */
export function valueText(value) {
  if (value === null || value === undefined) return 'none';
  if (typeof value === 'number') return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(6)));
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/**
 * Rows of the strategy table: its effective parameters (the server fills in defaults), then what
 * it reports. @returns {{name: string, text: string, kind: 'param'|'report'}[]}
 */
export function strategyRows(strategy = {}) {
  return [
    ...Object.entries(strategy.params ?? {}).map(([name, v]) => ({ name, text: valueText(v), kind: 'param' })),
    ...Object.entries(strategy.report ?? {}).map(([name, v]) => ({ name, text: valueText(v), kind: 'report' })),
  ];
}

const fraction = (value, limit) => (limit > 0 ? Math.max(0, Math.min(1, value / limit)) : 0);

/**
 * The end conditions and the progress towards each:
 *   target accuracy: last validated accuracy / target
 *   max merges:      merges / max merges
 *   max seconds:     elapsed / max seconds
 * @returns {{key: string, label: string, limit: number, value: number|null, fraction: number, text: string}[]}
 */
export function endProgress(status = {}) {
  const ends = status.endConditions ?? {};
  const rows = [];
  if (typeof ends.targetAccuracy === 'number') {
    const accuracy = status.lastValidatedEvaluation?.valAccuracy;
    const value = typeof accuracy === 'number' ? accuracy : null;
    rows.push({
      key: 'targetAccuracy', label: 'target accuracy', limit: ends.targetAccuracy, value,
      fraction: value === null ? 0 : fraction(value, ends.targetAccuracy),
      text: `${value === null ? '-' : value.toFixed(3)} of ${ends.targetAccuracy}`,
    });
  }
  if (typeof ends.maxMerges === 'number') {
    const value = status.merges ?? 0;
    rows.push({
      key: 'maxMerges', label: 'max merges', limit: ends.maxMerges, value,
      fraction: fraction(value, ends.maxMerges), text: `${value} of ${ends.maxMerges}`,
    });
  }
  if (typeof ends.maxSeconds === 'number') {
    const value = status.elapsed ?? 0;
    rows.push({
      key: 'maxSeconds', label: 'max seconds', limit: ends.maxSeconds, value,
      fraction: fraction(value, ends.maxSeconds), text: `${Math.floor(value)} s of ${ends.maxSeconds} s`,
    });
  }
  return rows;
}

/** Which admin buttons are live: none of pause/resume/end after the end (export stays: the final model). */
export function adminActions(status = {}) {
  const state = status.state;
  const ended = state === 'ended';
  return {
    pause: !ended && state !== 'paused' && !status.finishing,
    resume: !ended && state === 'paused',
    end: !ended,
    export: true,
  };
}
