// One deployment: schedules, next and last runs, pause/resume, *Run* with a generated form,
// and backfill.

import { useState } from "react";
import { Link, useNavigate, useParams } from "react-router-dom";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { apiGet, apiPatch, apiPost, seg } from "../api/client";
import { deploymentNamesQuery, deploymentQuery, deploymentSummariesQuery } from "../api/queries";
import type { FlowRun, Page as ApiPage } from "../api/types";
import { BackfillForm } from "../components/BackfillForm";
import { ErrorBox, Page, RunsTable, useNow } from "../components/common";
import { RunStrip, ScheduleWords } from "../components/DeploymentBits";
import { ParamForm } from "../components/ParamForm";
import { formatDateTime, relativeTime } from "../lib/time";

const REFRESH_MS = 5000;

export function DeploymentDetail() {
  const { flow = "", name = "" } = useParams();
  const now = useNow(REFRESH_MS);
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const [formOpen, setFormOpen] = useState(false);

  const deployment = useQuery({ ...deploymentQuery(flow, name), refetchInterval: REFRESH_MS });
  const summaries = useQuery({ ...deploymentSummariesQuery, refetchInterval: REFRESH_MS });
  const summary = summaries.data?.find((item) => item.flow_name === flow && item.name === name);
  const runs = useQuery({
    queryKey: ["flow-runs", "deployment", flow, name],
    // Runs that started or are due: the next runs are listed above, from the schedules.
    queryFn: () =>
      apiGet<ApiPage<FlowRun>>("/flow-runs", {
        deployment_id: `${flow}/${name}`,
        scheduled_before: new Date(Date.now() + 1000).toISOString(),
        limit: 10,
      }),
    refetchInterval: REFRESH_MS,
  });

  const deploymentNames = useQuery(deploymentNamesQuery);

  const refresh = () => queryClient.invalidateQueries();
  const pause = useMutation({
    mutationFn: (paused: boolean) => apiPatch(`/deployments/${seg(flow)}/${seg(name)}`, { paused }),
    onSettled: refresh,
  });
  const run = useMutation({
    mutationFn: (parameters: Record<string, unknown>) =>
      apiPost<FlowRun>(`/deployments/${seg(flow)}/${seg(name)}/runs`, { parameters }),
    onSuccess: (created) => navigate(`/runs/${encodeURIComponent(created.id)}`),
  });

  const data = deployment.data;
  return (
    <Page
      name="deployment"
      ready={Boolean(data && (summaries.data || summaries.error))}
      title={`${flow}/${name}`}
      actions={
        data ? (
          <>
            {data.paused ? (
              <button type="button" data-testid="resume-deployment" disabled={pause.isPending} onClick={() => pause.mutate(false)}>
                Resume schedules
              </button>
            ) : (
              <button type="button" data-testid="pause-deployment" disabled={pause.isPending} onClick={() => pause.mutate(true)}>
                Pause schedules
              </button>
            )}
            <button type="button" data-testid="run-deployment" onClick={() => setFormOpen(true)} aria-expanded={formOpen}>
              Run…
            </button>
          </>
        ) : null
      }
    >
      <ErrorBox error={deployment.error ?? pause.error ?? run.error} />
      {data ? (
        <>
          {formOpen ? (
            <ParamForm
              schema={summary?.parameter_schema ?? data.parameter_schema}
              defaults={data.parameters}
              busy={run.isPending}
              onSubmit={(parameters) => run.mutate(parameters)}
              onCancel={() => setFormOpen(false)}
            />
          ) : null}
          <dl className="facts card">
            <div><dt>Status</dt><dd>{data.paused ? <span className="badge state-paused">Paused</span> : <span className="badge state-completed">Active</span>}</dd></div>
            <div><dt>Pool</dt><dd><Link to={`/pools/${encodeURIComponent(data.pool)}`}>{data.pool}</Link></dd></div>
            <div>
              <dt>Schedules</dt>
              <dd>{summary ? <ScheduleWords schedules={summary.schedules} /> : data.schedules.length ? `${data.schedules.length} schedule(s)` : "none"}</dd>
            </div>
            <div><dt>Id</dt><dd><code>{data.id}</code></dd></div>
            {data.tags.length ? <div><dt>Tags</dt><dd>{data.tags.map((tag) => <span key={tag} className="tag">{tag}</span>)}</dd></div> : null}
            {data.description ? <div><dt>Description</dt><dd>{data.description}</dd></div> : null}
          </dl>

          <div className="columns">
            <section className="card" aria-labelledby="upcoming-title">
              <h2 id="upcoming-title">Next runs</h2>
              <ol className="plain">
                {(summary?.next_runs ?? []).map((time) => (
                  <li key={time}>
                    {formatDateTime(time)} <span className="muted">({relativeTime(time, now)})</span>
                  </li>
                ))}
                {summary && summary.next_runs.length === 0 ? <li className="muted">None planned{data.paused ? " (paused)" : ""}.</li> : null}
              </ol>
            </section>
            <section className="card" aria-labelledby="last-title">
              <h2 id="last-title">Last runs</h2>
              {summary ? <RunStrip recent={summary.recent} /> : null}
              <ErrorBox error={summaries.error} />
            </section>
          </div>

          <section className="card" aria-labelledby="runs-title">
            <h2 id="runs-title">
              Recent runs{" "}
              <Link className="small-link" to={`/runs?deployment=${encodeURIComponent(`${flow}/${name}`)}`}>
                all runs →
              </Link>
            </h2>
            {runs.data ? <RunsTable runs={runs.data.items} now={now} deploymentNames={deploymentNames.data} caption="Recent runs of this deployment" /> : null}
          </section>

          <BackfillForm flow={flow} name={name} onDone={refresh} />
        </>
      ) : null}
    </Page>
  );
}
