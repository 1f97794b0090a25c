// Parts of the run detail page: state timeline, history table, parameters, task table.

import type { State, TaskRun } from "../api/types";
import { maskSecrets } from "../lib/secrets";
import { formatDateTime, formatDuration, secondsBetween } from "../lib/time";
import { stateClass } from "../lib/states";
import { StateBadge } from "./common";

/** The states a run went through, left to right, each with the time it began. */
export function StateTimeline({ history, now }: { history: State[]; now: Date }) {
  if (history.length === 0) return null;
  const ordered = history.slice().sort((a, b) => a.timestamp.localeCompare(b.timestamp));
  return (
    <ol className="timeline" aria-label="State timeline">
      {ordered.map((state, index) => {
        const next = ordered[index + 1];
        const seconds = next ? secondsBetween(state.timestamp, next.timestamp, now) : null;
        return (
          <li key={`${state.timestamp}-${index}`} className={stateClass(state.type, state.name)}>
            <span className="timeline-dot" aria-hidden="true" />
            <span className="timeline-name">{state.name}</span>
            <time className="muted" dateTime={state.timestamp}>
              {formatDateTime(state.timestamp).slice(11)}
            </time>
            {seconds !== null ? <span className="muted timeline-gap">{formatDuration(seconds)}</span> : null}
          </li>
        );
      })}
    </ol>
  );
}

/** Every state change with its message, newest last. */
export function HistoryTable({ history }: { history: State[] }) {
  const ordered = history.slice().sort((a, b) => a.timestamp.localeCompare(b.timestamp));
  return (
    <div className="table-wrap">
      <table>
        <caption className="sr-only">State history</caption>
        <thead>
          <tr>
            <th scope="col">Time</th>
            <th scope="col">State</th>
            <th scope="col">Type</th>
            <th scope="col">Message</th>
          </tr>
        </thead>
        <tbody>
          {ordered.map((state, index) => (
            <tr key={`${state.timestamp}-${index}`}>
              <td>{formatDateTime(state.timestamp)}</td>
              <td>
                <StateBadge state={state} />
              </td>
              <td>{state.type}</td>
              <td className="wrap">{state.message ?? ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** The run's parameters, secrets masked. */
export function ParametersTable({ parameters }: { parameters: Record<string, unknown> }) {
  const masked = maskSecrets(parameters) as Record<string, unknown>;
  const entries = Object.entries(masked);
  if (entries.length === 0) return <p className="muted">This run has no parameters (the flow's defaults apply).</p>;
  return (
    <div className="table-wrap">
      <table>
        <caption className="sr-only">Parameters</caption>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Value</th>
          </tr>
        </thead>
        <tbody>
          {entries.map(([name, value]) => (
            <tr key={name}>
              <th scope="row">{name}</th>
              <td>
                <code className="wrap">{typeof value === "string" ? value : JSON.stringify(value, null, 1)}</code>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** Task runs as a table (the Gantt's accessible twin). */
export function TaskTable({ taskRuns, now }: { taskRuns: TaskRun[]; now: Date }) {
  const ordered = taskRuns.slice().sort((a, b) => (a.start_time ?? a.state.timestamp).localeCompare(b.start_time ?? b.state.timestamp));
  return (
    <div className="table-wrap">
      <table>
        <caption className="sr-only">Task runs</caption>
        <thead>
          <tr>
            <th scope="col">Task run</th>
            <th scope="col">State</th>
            <th scope="col">Attempts</th>
            <th scope="col">Started</th>
            <th scope="col">Duration</th>
          </tr>
        </thead>
        <tbody>
          {ordered.map((taskRun) => {
            const seconds = secondsBetween(taskRun.start_time, taskRun.end_time, now);
            return (
              <tr key={taskRun.id}>
                <td>{taskRun.name}</td>
                <td>
                  <StateBadge state={taskRun.state} />
                  {taskRun.state.message ? <div className="muted wrap">{taskRun.state.message}</div> : null}
                </td>
                <td>{Math.max(1, taskRun.run_count)}</td>
                <td>{formatDateTime(taskRun.start_time)}</td>
                <td>{seconds === null ? "—" : formatDuration(seconds)}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}
