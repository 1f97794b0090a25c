// The "last runs" strip of a deployment: coloured squares, oldest on the left.

import type { RecentRun } from "../api/types";
import { stateClass } from "./states";
import { formatDateTime } from "./time";

export interface StripSquare {
  /** Run id, or null for an empty slot (fewer runs than the strip's width). */
  id: string | null;
  className: string;
  label: string;
}

/**
 * Squares for `recent` (the API lists newest first): oldest first, padded on the left with empty
 * slots up to `width` so every strip on the page lines up.
 */
export function stripSquares(recent: RecentRun[], width = 10, timeZone?: string): StripSquare[] {
  const runs = recent.slice(0, width).reverse();
  const empty: StripSquare[] = Array.from({ length: width - runs.length }, () => ({
    id: null,
    className: "strip-empty",
    label: "no run",
  }));
  return empty.concat(
    runs.map((run) => ({
      id: run.id,
      className: stateClass(run.state_type, run.state_name),
      label: `${run.name ?? run.id}: ${run.state_name}, scheduled ${formatDateTime(run.scheduled_at, timeZone)}`,
    })),
  );
}
