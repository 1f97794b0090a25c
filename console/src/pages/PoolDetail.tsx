// One pool: depths, concurrency in use, pause/resume, and its workers.

import { useParams } from "react-router-dom";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { apiPatch, seg } from "../api/client";
import { poolQuery } from "../api/queries";
import { ErrorBox, Page, useNow } from "../components/common";
import { formatDateTime, relativeTime } from "../lib/time";

const REFRESH_MS = 5000;

export function PoolDetail() {
  const { name = "" } = useParams();
  const now = useNow(REFRESH_MS);
  const queryClient = useQueryClient();
  const pool = useQuery({ ...poolQuery(name), refetchInterval: REFRESH_MS });
  const pause = useMutation({
    mutationFn: (paused: boolean) => apiPatch(`/pools/${seg(name)}`, { paused }),
    onSettled: () => queryClient.invalidateQueries({ queryKey: ["pool", name] }),
  });

  const data = pool.data;
  const canPause = data !== undefined && typeof data.paused === "boolean";
  return (
    <Page
      name="pool"
      ready={Boolean(data)}
      title={`Pool ${name}`}
      actions={
        canPause ? (
          data?.paused ? (
            <button type="button" data-testid="resume-pool" disabled={pause.isPending} onClick={() => pause.mutate(false)}>
              Resume pool
            </button>
          ) : (
            <button type="button" data-testid="pause-pool" disabled={pause.isPending} onClick={() => pause.mutate(true)}>
              Pause pool
            </button>
          )
        ) : null
      }
    >
      <ErrorBox error={pool.error ?? pause.error} />
      {data ? (
        <>
          <dl className="facts card">
            <div><dt>Status</dt><dd>{data.paused ? <span className="badge state-paused">Paused</span> : <span className="badge state-completed">Active</span>}</dd></div>
            <div><dt>Queue depth</dt><dd>{data.queue_depth ?? "—"}</dd></div>
            <div><dt>Dead letters</dt><dd>{data.dlq_depth ?? "—"}</dd></div>
            <div><dt>Running</dt><dd>{data.running ?? "—"} of {data.concurrency_limit ?? "no limit"}</dd></div>
            {data.description ? <div><dt>Description</dt><dd>{data.description}</dd></div> : null}
          </dl>
          <section className="card" aria-labelledby="workers-title">
            <h2 id="workers-title">Workers</h2>
            <div className="table-wrap">
              <table>
                <caption className="sr-only">Workers of pool {name}</caption>
                <thead>
                  <tr>
                    <th scope="col">Worker</th>
                    <th scope="col">Status</th>
                    <th scope="col">Last seen</th>
                    <th scope="col">Host</th>
                    <th scope="col">Slots</th>
                    <th scope="col">Version</th>
                  </tr>
                </thead>
                <tbody>
                  {data.workers.map((worker) => (
                    <tr key={worker.name} data-testid="worker-row" data-worker={worker.name}>
                      <td>{worker.name}</td>
                      <td>
                        {worker.online ? <span className="badge state-completed">Online</span> : <span className="badge state-cancelled">Offline</span>}
                      </td>
                      <td title={formatDateTime(worker.last_seen)}>{relativeTime(worker.last_seen, now)}</td>
                      <td>{worker.host ?? "—"}</td>
                      <td>{worker.slots ?? "—"}</td>
                      <td>{worker.version ?? "—"}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
            {data.workers.length === 0 ? (
              <p className="muted">No worker has been seen on this pool: start one with <code>sluice worker start --pool {name}</code>.</p>
            ) : null}
          </section>
        </>
      ) : null}
    </Page>
  );
}
