// Pools: workers online, queue and dead-letter depth, running vs concurrency limit.

import { Link } from "react-router-dom";
import { useQueries, useQuery } from "@tanstack/react-query";
import { poolQuery, poolsQuery } from "../api/queries";
import { ErrorBox, Page } from "../components/common";

const REFRESH_MS = 5000;

export function PoolsPage() {
  const pools = useQuery({ ...poolsQuery, refetchInterval: REFRESH_MS });
  // The list has no depths or workers: each pool's own read has them.
  const details = useQueries({
    queries: (pools.data?.items ?? []).map((pool) => ({ ...poolQuery(pool.name), refetchInterval: REFRESH_MS })),
  });

  return (
    <Page name="pools" ready={Boolean(pools.data)} title="Pools and workers">
      <ErrorBox error={pools.error ?? details.find((detail) => detail.error)?.error} />
      {pools.data ? (
        <div className="table-wrap card">
          <table>
            <caption className="sr-only">Work pools</caption>
            <thead>
              <tr>
                <th scope="col">Pool</th>
                <th scope="col">Status</th>
                <th scope="col">Workers online</th>
                <th scope="col">Queue depth</th>
                <th scope="col">Dead letters</th>
                <th scope="col">Running / limit</th>
              </tr>
            </thead>
            <tbody>
              {pools.data.items.map((pool, index) => {
                const detail = details[index]?.data;
                const online = detail?.workers.filter((worker) => worker.online).length ?? 0;
                return (
                  <tr key={pool.name} data-testid="pool-row" data-pool={pool.name}>
                    <td>
                      <Link to={`/pools/${encodeURIComponent(pool.name)}`}>{pool.name}</Link>
                      {pool.description ? <div className="muted">{pool.description}</div> : null}
                    </td>
                    <td>{(detail ?? pool).paused ? <span className="badge state-paused">Paused</span> : <span className="badge state-completed">Active</span>}</td>
                    <td>{detail ? `${online} of ${detail.workers.length}` : "…"}</td>
                    <td>{detail?.queue_depth ?? "—"}</td>
                    <td className={detail?.dlq_depth ? "warn" : undefined}>{detail?.dlq_depth ?? "—"}</td>
                    <td>
                      {detail?.running ?? "—"} / {detail?.concurrency_limit ?? pool.concurrency_limit ?? "∞"}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
          {pools.data.items.length === 0 ? (
            <p className="muted">No pools yet: create one with <code>sluice pool create NAME</code> or deploy with <code>--create-pool</code>.</p>
          ) : null}
        </div>
      ) : null}
    </Page>
  );
}
