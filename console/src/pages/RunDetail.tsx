// Run detail: header with Cancel / Retry / Suspend / Resume, state timeline, task Gantt, parent and subflows, and
// tabs (logs, tasks, history, parameters) kept in `?tab=` for deep links.

import { useState } from "react";
import { Link, useParams, useSearchParams } from "react-router-dom";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { apiGet, apiPost, ApiError, seg } from "../api/client";
import { deploymentNamesQuery } from "../api/queries";
import type { FlowRun, Page as ApiPage, SetStateResponse, State, TaskRun } from "../api/types";
import { ErrorBox, Page, RunsTable, StateBadge, runDuration, useNow } from "../components/common";
import { Gantt } from "../components/Gantt";
import { LogsPanel } from "../components/LogsPanel";
import { HistoryTable, ParametersTable, StateTimeline, TaskTable } from "../components/RunSections";
import { canResume, canSuspend, isTerminal } from "../lib/states";
import { formatDateTime } from "../lib/time";

const POLL_MS = 2000;
const TABS = ["logs", "tasks", "history", "parameters"] as const;
type Tab = (typeof TABS)[number];
/** Task runs read for the Gantt: enough for any readable chart, bounded for huge runs. */
const MAX_TASK_PAGES = 10;

async function fetchTaskRuns(runId: string): Promise<{ items: TaskRun[]; truncated: boolean }> {
  const items: TaskRun[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < MAX_TASK_PAGES; page++) {
    const result: ApiPage<TaskRun> = await apiGet(`/flow-runs/${seg(runId)}/task-runs`, { limit: 200, cursor });
    items.push(...result.items);
    if (!result.next_cursor) return { items, truncated: false };
    cursor = result.next_cursor;
  }
  return { items, truncated: true };
}

type RunAction = "cancel" | "retry" | "suspend" | "resume";
/** The state message an action from the console leaves ("suspended from the console"). */
const ACTION_DONE: Record<RunAction, string> = { cancel: "cancelled", retry: "retried", suspend: "suspended", resume: "resumed" };
/** The notice shown once the API accepted an action. */
const ACTION_NOTICE: Record<RunAction, string> = {
  cancel: "Cancel requested", retry: "Retry started", suspend: "Suspended", resume: "Resumed",
};

export function RunDetail() {
  const { id = "" } = useParams();
  const [search, setSearch] = useSearchParams();
  const tabParam = search.get("tab");
  const tab: Tab = TABS.includes(tabParam as Tab) ? (tabParam as Tab) : "logs";
  const now = useNow(1000);
  const queryClient = useQueryClient();
  const [actionMessage, setActionMessage] = useState<string | null>(null);

  const run = useQuery({
    queryKey: ["flow-run", id],
    queryFn: () => apiGet<FlowRun>(`/flow-runs/${seg(id)}`),
    refetchInterval: (query) => (query.state.data && isTerminal(query.state.data.state.type) ? false : POLL_MS),
  });
  const live = !run.data || !isTerminal(run.data.state.type);
  const history = useQuery({
    queryKey: ["flow-run", id, "history"],
    queryFn: () => apiGet<State[]>(`/flow-runs/${seg(id)}/history`),
    refetchInterval: live ? POLL_MS : false,
  });
  const taskRuns = useQuery({
    queryKey: ["flow-run", id, "task-runs"],
    queryFn: () => fetchTaskRuns(id),
    refetchInterval: live ? POLL_MS : false,
  });
  const subflows = useQuery({
    queryKey: ["flow-run", id, "subflows"],
    queryFn: async () => {
      const page = await apiGet<ApiPage<FlowRun>>("/flow-runs", { parent_flow_run_id: id, limit: 50 });
      // Guard against a server that ignores the filter: never list unrelated runs as subflows.
      return { ...page, items: page.items.filter((child) => child.parent_flow_run_id === id) };
    },
    refetchInterval: live ? POLL_MS * 2 : false,
  });
  const deploymentNames = useQuery(deploymentNamesQuery);

  const action = useMutation({
    mutationFn: async (kind: RunAction) => {
      const body = kind === "retry" ? undefined : { message: `${ACTION_DONE[kind]} from the console` };
      const response = await apiPost<SetStateResponse>(`/flow-runs/${seg(id)}/${kind}`, body);
      // A refusal inside a 200 (status REJECT/ABORT) is shown like an API error.
      if (response.status !== "ACCEPT") {
        throw new ApiError(409, "rejected", response.reason ?? `The API refused to ${kind} this run (${response.status}).`);
      }
      return response;
    },
    onMutate: () => setActionMessage(null),
    onSuccess: (response, kind) => {
      setActionMessage(`${ACTION_NOTICE[kind]}: the run is now ${response.state.name}.`);
    },
    onSettled: () => queryClient.invalidateQueries({ queryKey: ["flow-run", id] }),
  });

  const data = run.data;
  const deploymentName = data?.deployment_id ? deploymentNames.data?.get(data.deployment_id) : undefined;

  return (
    <Page
      name="run"
      ready={Boolean(data)}
      title={data ? <>{data.name ?? data.id} <StateBadge state={data.state} testId="run-state" /></> : "Flow run"}
      actions={
        <>
          <button type="button" data-testid="cancel-run" disabled={action.isPending} onClick={() => action.mutate("cancel")}>
            Cancel
          </button>
          <button type="button" data-testid="retry-run" disabled={action.isPending} onClick={() => action.mutate("retry")}>
            Retry
          </button>
          {data && canSuspend(data.state) ? (
            <button type="button" data-testid="suspend-run" disabled={action.isPending} onClick={() => action.mutate("suspend")}
              title="Hold the run; a running attempt is stopped by its worker">
              Suspend
            </button>
          ) : null}
          {data && canResume(data.state) ? (
            <button type="button" data-testid="resume-run" disabled={action.isPending} onClick={() => action.mutate("resume")}
              title="Queue a new attempt that runs the flow from the start">
              Resume
            </button>
          ) : null}
        </>
      }
    >
      <ErrorBox error={run.error ?? action.error} />
      {actionMessage ? <p className="notice" role="status">{actionMessage}</p> : null}
      {data ? (
        <>
          <dl className="facts card">
            <div><dt>Flow</dt><dd><Link to={`/runs?flow=${encodeURIComponent(data.flow_name)}`}>{data.flow_name}</Link></dd></div>
            <div>
              <dt>Deployment</dt>
              <dd>{deploymentName ? <Link to={`/deployments/${deploymentName.split("/").map(encodeURIComponent).join("/")}`}>{deploymentName}</Link> : data.deployment_id ?? "—"}</dd>
            </div>
            <div><dt>Pool</dt><dd>{data.pool ? <Link to={`/pools/${encodeURIComponent(data.pool)}`}>{data.pool}</Link> : "—"}</dd></div>
            <div><dt>Scheduled</dt><dd>{formatDateTime(data.scheduled_at)}</dd></div>
            <div><dt>Started</dt><dd>{formatDateTime(data.start_time)}</dd></div>
            <div><dt>Duration</dt><dd>{runDuration(data, now)}</dd></div>
            <div><dt>Attempts</dt><dd>{data.run_count}{data.retries ? ` (retries allowed: ${data.retries})` : ""}</dd></div>
            <div><dt>Worker</dt><dd>{data.worker ?? "—"}</dd></div>
            <div><dt>Id</dt><dd><code>{data.id}</code></dd></div>
            {data.parent_flow_run_id ? (
              <div><dt>Parent run</dt><dd><Link data-testid="parent-run" to={`/runs/${encodeURIComponent(data.parent_flow_run_id)}`}>{data.parent_flow_run_id}</Link></dd></div>
            ) : null}
            {data.tags.length ? <div><dt>Tags</dt><dd>{data.tags.map((tag) => <span key={tag} className="tag">{tag}</span>)}</dd></div> : null}
          </dl>
          {data.state.message ? <p className="card state-message"><strong>{data.state.name}:</strong> {data.state.message}</p> : null}

          <section className="card" aria-labelledby="timeline-title">
            <h2 id="timeline-title">State timeline</h2>
            <StateTimeline history={history.data ?? []} now={now} />
          </section>

          <section className="card" aria-labelledby="gantt-title">
            <h2 id="gantt-title">Task runs</h2>
            <ErrorBox error={taskRuns.error} />
            {taskRuns.data ? <Gantt taskRuns={taskRuns.data.items} now={now} /> : <p className="muted">Loading…</p>}
            {taskRuns.data?.truncated ? <p className="muted">Showing the first {taskRuns.data.items.length} task runs.</p> : null}
          </section>

          {subflows.data && subflows.data.items.length > 0 ? (
            <section className="card" aria-labelledby="subflows-title">
              <h2 id="subflows-title">Subflow runs</h2>
              <RunsTable runs={subflows.data.items} now={now} deploymentNames={deploymentNames.data} caption="Subflow runs" rowTestId="subflow-row" stateTestId="subflow-state" />
            </section>
          ) : null}

          <section className="card">
            <div className="tabs" role="tablist" aria-label="Run details">
              {TABS.map((name) => (
                <button
                  key={name}
                  type="button"
                  role="tab"
                  id={`tab-${name}`}
                  aria-selected={tab === name}
                  aria-controls={`panel-${name}`}
                  onClick={() => setSearch((previous) => { const next = new URLSearchParams(previous); next.set("tab", name); return next; }, { replace: true })}
                >
                  {name[0]?.toUpperCase() + name.slice(1)}
                </button>
              ))}
            </div>
            <div role="tabpanel" id={`panel-${tab}`} aria-labelledby={`tab-${tab}`}>
              {tab === "logs" ? <LogsPanel runId={id} live={live} /> : null}
              {tab === "tasks" ? <TaskTable taskRuns={taskRuns.data?.items ?? []} now={now} /> : null}
              {tab === "history" ? <HistoryTable history={history.data ?? []} /> : null}
              {tab === "parameters" ? <ParametersTable parameters={data.parameters} /> : null}
            </div>
          </section>
        </>
      ) : null}
    </Page>
  );
}
