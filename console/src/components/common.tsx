// Small building blocks shared by the pages.

import { useEffect, useState, type ReactNode } from "react";
import { Link } from "react-router-dom";
import { errorMessage } from "../api/client";
import type { FlowRun, State } from "../api/types";
import { stateClass } from "../lib/states";
import { formatDateTime, formatDuration, secondsBetween } from "../lib/time";

/** An API (or network) error, with the API's own message. */
export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  return (
    <p className="error" role="alert" data-testid="error">
      {errorMessage(error)}
    </p>
  );
}

/** A coloured state name. */
export function StateBadge({ state, testId }: { state: Pick<State, "type" | "name">; testId?: string }) {
  return (
    <span className={`badge ${stateClass(state.type, state.name)}`} data-testid={testId} title={state.type}>
      {state.name}
    </span>
  );
}

/** A page's root element with the test hooks of the contract (`page-<name>`, `data-ready`). */
export function Page({ name, ready, title, actions, children }: {
  name: string;
  ready: boolean;
  title: ReactNode;
  actions?: ReactNode;
  children: ReactNode;
}) {
  return (
    <section data-testid={`page-${name}`} data-ready={ready ? "true" : undefined} className="page">
      <div className="page-head">
        <h1>{title}</h1>
        {actions ? <div className="actions">{actions}</div> : null}
      </div>
      {children}
    </section>
  );
}

/** The current time, refreshed every `intervalMs` (relative times and running durations). */
export function useNow(intervalMs = 1000): Date {
  const [now, setNow] = useState(() => new Date());
  useEffect(() => {
    const timer = window.setInterval(() => setNow(new Date()), intervalMs);
    return () => window.clearInterval(timer);
  }, [intervalMs]);
  return now;
}

/** The rendered width of an element (attach the returned callback ref), kept current on resize. */
export function useWidth<T extends HTMLElement>(): [(element: T | null) => void, number] {
  const [element, setElement] = useState<T | null>(null);
  const [width, setWidth] = useState(0);
  useEffect(() => {
    if (!element) return;
    setWidth(element.clientWidth);
    const observer = new ResizeObserver(() => setWidth(element.clientWidth));
    observer.observe(element);
    return () => observer.disconnect();
  }, [element]);
  return [setElement, width];
}

/** The page's theme, following the toggle (charts redraw with the new colours). */
export function useThemeName(): string {
  const [theme, setTheme] = useState(() => document.documentElement.dataset.theme ?? "light");
  useEffect(() => {
    const listener = (event: Event) => setTheme(String((event as CustomEvent).detail));
    window.addEventListener("sluice-theme", listener);
    return () => window.removeEventListener("sluice-theme", listener);
  }, []);
  return theme;
}

/** A run's duration so far ("—" before it starts). */
export function runDuration(run: Pick<FlowRun, "start_time" | "end_time">, now: Date): string {
  const seconds = secondsBetween(run.start_time, run.end_time, now);
  return seconds === null ? "—" : formatDuration(seconds);
}

/**
 * A table of flow runs, with the runs-list test hooks (`run-row`, `run-state`); a page that has
 * its own `run-state` (the run page, for its subflows) passes other test ids so each stays unique.
 */
export function RunsTable({ runs, now, deploymentNames, caption, rowTestId = "run-row", stateTestId = "run-state" }: {
  runs: FlowRun[];
  now: Date;
  deploymentNames?: Map<string, string>;
  caption: string;
  rowTestId?: string;
  stateTestId?: string;
}) {
  return (
    <div className="table-wrap">
      <table>
        <caption className="sr-only">{caption}</caption>
        <thead>
          <tr>
            <th scope="col">Run</th>
            <th scope="col">Flow</th>
            <th scope="col">Deployment</th>
            <th scope="col">State</th>
            <th scope="col">Scheduled</th>
            <th scope="col">Duration</th>
            <th scope="col">Tags</th>
          </tr>
        </thead>
        <tbody>
          {runs.map((run) => (
            <tr key={run.id} data-testid={rowTestId} data-run-id={run.id}>
              <td>
                <Link to={`/runs/${encodeURIComponent(run.id)}`}>{run.name ?? run.id}</Link>
              </td>
              <td>{run.flow_name}</td>
              <td>{run.deployment_id ? deploymentNames?.get(run.deployment_id) ?? run.deployment_id.slice(0, 8) : "—"}</td>
              <td data-testid={stateTestId}>
                <StateBadge state={run.state} />
              </td>
              <td>{formatDateTime(run.scheduled_at)}</td>
              <td>{runDuration(run, now)}</td>
              <td>{run.tags.map((tag) => <span key={tag} className="tag">{tag}</span>)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
