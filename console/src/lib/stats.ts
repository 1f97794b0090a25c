// Figures derived from `/stats/flow-runs` totals.

import type { StateCounts } from "../api/types";

/** Failed + crashed over finished runs (completed, failed, crashed); null when none finished. */
export function failureRate(totals: StateCounts): number | null {
  const failed = (totals.FAILED ?? 0) + (totals.CRASHED ?? 0);
  const finished = failed + (totals.COMPLETED ?? 0);
  return finished === 0 ? null : failed / finished;
}
