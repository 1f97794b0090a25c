// Pieces shared by the deployments list and a deployment's page.

import { Link } from "react-router-dom";
import type { DeploymentSummary, RecentRun } from "../api/types";
import { stripSquares } from "../lib/strip";
import { formatDateTime, relativeTime } from "../lib/time";

/** The last runs as coloured squares, oldest left; each square links to its run. */
export function RunStrip({ recent }: { recent: RecentRun[] }) {
  return (
    <ol className="strip" aria-label="Last runs, oldest first">
      {stripSquares(recent).map((square, index) => (
        <li key={square.id ?? `empty-${index}`}>
          {square.id ? (
            <Link className={`square ${square.className}`} to={`/runs/${encodeURIComponent(square.id)}`} title={square.label} aria-label={square.label} />
          ) : (
            <span className={`square ${square.className}`} title={square.label} />
          )}
        </li>
      ))}
    </ol>
  );
}

/** Schedules in words, inactive ones marked. */
export function ScheduleWords({ schedules }: { schedules: DeploymentSummary["schedules"] }) {
  if (schedules.length === 0) return <span className="muted">no schedule (runs on demand)</span>;
  return (
    <ul className="plain">
      {schedules.map((schedule, index) => (
        <li key={schedule.id ?? index}>
          {schedule.description}
          {schedule.active ? null : <span className="muted"> (inactive)</span>}
        </li>
      ))}
    </ul>
  );
}

/** The first upcoming run time, relative and absolute. */
export function NextRun({ times, now }: { times: string[]; now: Date }) {
  const next = times[0];
  if (!next) return <span className="muted">—</span>;
  return (
    <time dateTime={next} title={formatDateTime(next)}>
      {relativeTime(next, now)}
    </time>
  );
}

/** The page address of a deployment. */
export function deploymentPath(deployment: { flow_name: string; name: string }): string {
  return `/deployments/${encodeURIComponent(deployment.flow_name)}/${encodeURIComponent(deployment.name)}`;
}
