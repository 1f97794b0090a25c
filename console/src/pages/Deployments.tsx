// Deployments: schedules in words, next run, last runs strip, pause/resume — one request
// (`/stats/deployments`) for the whole table.

import { Link } from "react-router-dom";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { apiPatch, seg } from "../api/client";
import { deploymentSummariesQuery } from "../api/queries";
import type { DeploymentSummary } from "../api/types";
import { ErrorBox, Page, useNow } from "../components/common";
import { NextRun, RunStrip, ScheduleWords, deploymentPath } from "../components/DeploymentBits";

const REFRESH_MS = 10_000;

export function DeploymentsPage() {
  const now = useNow(REFRESH_MS);
  const queryClient = useQueryClient();
  const deployments = useQuery({ ...deploymentSummariesQuery, refetchInterval: REFRESH_MS });
  const pause = useMutation({
    mutationFn: (target: DeploymentSummary) =>
      apiPatch(`/deployments/${seg(target.flow_name)}/${seg(target.name)}`, { paused: !target.paused }),
    onSettled: () => queryClient.invalidateQueries({ queryKey: deploymentSummariesQuery.queryKey }),
  });

  return (
    <Page name="deployments" ready={Boolean(deployments.data)} title="Deployments">
      <ErrorBox error={deployments.error ?? pause.error} />
      {deployments.data ? (
        <div className="table-wrap card">
          <table>
            <caption className="sr-only">Deployments</caption>
            <thead>
              <tr>
                <th scope="col">Deployment</th>
                <th scope="col">Pool</th>
                <th scope="col">Schedules</th>
                <th scope="col">Next run</th>
                <th scope="col">Last runs</th>
                <th scope="col">Status</th>
              </tr>
            </thead>
            <tbody>
              {deployments.data.map((deployment) => (
                <tr key={deployment.id} data-testid="deployment-row" data-deployment={`${deployment.flow_name}/${deployment.name}`}>
                  <td>
                    <Link to={deploymentPath(deployment)}>
                      {deployment.flow_name}/{deployment.name}
                    </Link>
                  </td>
                  <td>
                    <Link to={`/pools/${encodeURIComponent(deployment.pool)}`}>{deployment.pool}</Link>
                  </td>
                  <td>
                    <ScheduleWords schedules={deployment.schedules} />
                  </td>
                  <td>
                    <NextRun times={deployment.next_runs} now={now} />
                  </td>
                  <td>
                    <RunStrip recent={deployment.recent} />
                  </td>
                  <td className="nowrap">
                    {deployment.paused ? <span className="badge state-paused">Paused</span> : <span className="badge state-completed">Active</span>}{" "}
                    <button
                      type="button"
                      className="small"
                      disabled={pause.isPending}
                      onClick={() => pause.mutate(deployment)}
                      aria-label={`${deployment.paused ? "Resume" : "Pause"} ${deployment.flow_name}/${deployment.name}`}
                    >
                      {deployment.paused ? "Resume" : "Pause"}
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {deployments.data.length === 0 ? (
            <p className="muted">No deployments yet: create one with <code>sluice deploy path/to/flows.py:my_flow --name nightly</code>.</p>
          ) : null}
        </div>
      ) : null}
    </Page>
  );
}
