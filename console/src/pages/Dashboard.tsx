// Dashboard: runs per hour by state, failure rate, late and crashed counts, pools, next runs.
// At most 3 + (number of pools) requests: every count comes from `/stats/flow-runs`.

import { useState } from "react";
import { Link } from "react-router-dom";
import { useQueries, useQuery, keepPreviousData } from "@tanstack/react-query";
import { apiGet } from "../api/client";
import { poolQuery, poolsQuery } from "../api/queries";
import type { FlowRun, FlowRunStats, Page as ApiPage } from "../api/types";
import { ErrorBox, Page, useNow } from "../components/common";
import { RunsChart } from "../components/RunsChart";
import { formatDateTime, relativeTime, statsWindow, type ChartRange } from "../lib/time";
import { failureRate } from "../lib/stats";

const REFRESH_MS = 15_000;
const NEXT_RUNS_SHOWN = 8;

export function Dashboard() {
  const [range, setRange] = useState<ChartRange>("24h");
  const now = useNow(REFRESH_MS);
  // Whole hours: the key (compared by value) changes once an hour, not on every tick.
  const statsRange = statsWindow(range, now);

  const stats = useQuery({
    queryKey: ["stats", "flow-runs", statsRange],
    queryFn: () => apiGet<FlowRunStats>("/stats/flow-runs", { ...statsRange }),
    refetchInterval: REFRESH_MS,
    placeholderData: keepPreviousData,
  });
  const nextRuns = useQuery({
    queryKey: ["next-runs"],
    queryFn: () => fetchNextRuns(new Date()),
    refetchInterval: REFRESH_MS,
  });
  const pools = useQuery({ ...poolsQuery, refetchInterval: REFRESH_MS });
  const poolDetails = useQueries({
    queries: (pools.data?.items ?? []).map((pool) => ({ ...poolQuery(pool.name), refetchInterval: REFRESH_MS })),
  });

  const ready = Boolean(stats.data && nextRuns.data && pools.data);
  const totals = stats.data?.totals ?? {};
  const rate = failureRate(totals);

  return (
    <Page
      name="dashboard"
      ready={ready}
      title="Dashboard"
      actions={
        <div className="segmented" role="group" aria-label="Time range">
          {(["24h", "7d"] as ChartRange[]).map((option) => (
            <button key={option} type="button" aria-pressed={range === option} onClick={() => setRange(option)}>
              {option === "24h" ? "24 hours" : "7 days"}
            </button>
          ))}
        </div>
      }
    >
      <ErrorBox error={stats.error ?? nextRuns.error ?? pools.error} />
      <div className="cards">
        <div className="card metric">
          <span className="metric-label">Failure rate</span>
          <span className="metric-value" data-testid="failure-rate">
            {rate === null ? "—" : `${(rate * 100).toFixed(1)}%`}
          </span>
          <span className="muted">failed + crashed of finished runs</span>
        </div>
        <div className="card metric">
          <span className="metric-label">Late</span>
          <Link className="metric-value" data-testid="late-count" to={`/runs?state=SCHEDULED&until=${encodeURIComponent(now.toISOString())}`}>
            {stats.data?.late ?? "—"}
          </Link>
          <span className="muted">scheduled runs past their time</span>
        </div>
        <div className="card metric">
          <span className="metric-label">Crashed</span>
          <Link
            className="metric-value"
            data-testid="crashed-count"
            to={`/runs?state=CRASHED&since=${encodeURIComponent(statsRange.since)}`}
          >
            {totals.CRASHED ?? (stats.data ? 0 : "—")}
          </Link>
          <span className="muted">in this window</span>
        </div>
        <div className="card metric">
          <span className="metric-label">Runs</span>
          <span className="metric-value">
            {stats.data ? Object.values(totals).reduce((sum, count) => sum + (count ?? 0), 0) : "—"}
          </span>
          <span className="muted">{stats.data?.truncated ? "at least (count truncated)" : "scheduled in this window"}</span>
        </div>
      </div>

      <section className="card" aria-labelledby="chart-title">
        <h2 id="chart-title">Runs per hour by state</h2>
        {stats.data ? <RunsChart stats={stats.data} /> : <p className="muted">Loading…</p>}
      </section>

      <div className="columns">
        <section className="card" aria-labelledby="pools-title">
          <h2 id="pools-title">Pools</h2>
          <table>
            <thead>
              <tr>
                <th scope="col">Pool</th>
                <th scope="col">Workers online</th>
                <th scope="col">Queue</th>
                <th scope="col">Running</th>
              </tr>
            </thead>
            <tbody>
              {(pools.data?.items ?? []).map((pool, index) => {
                const detail = poolDetails[index]?.data;
                const online = detail?.workers.filter((worker) => worker.online).length;
                return (
                  <tr key={pool.name}>
                    <td>
                      <Link to={`/pools/${encodeURIComponent(pool.name)}`}>{pool.name}</Link>
                      {detail?.paused ? <span className="badge state-paused">Paused</span> : null}
                    </td>
                    <td>{detail ? `${online} of ${detail.workers.length}` : "…"}</td>
                    <td>{detail?.queue_depth ?? "—"}</td>
                    <td>
                      {detail?.running ?? "—"}
                      {detail?.concurrency_limit ? ` / ${detail.concurrency_limit}` : ""}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </section>

        <section className="card" aria-labelledby="next-title">
          <h2 id="next-title">Next scheduled runs</h2>
          <ol className="next-runs" data-testid="next-runs">
            {(nextRuns.data ?? []).slice(0, NEXT_RUNS_SHOWN).map((run) => (
              <li key={run.id}>
                <Link to={`/runs/${encodeURIComponent(run.id)}`}>{run.name ?? run.id}</Link>{" "}
                <span className="muted">{run.flow_name}</span>{" "}
                <time dateTime={run.scheduled_at ?? undefined} title={formatDateTime(run.scheduled_at)}>
                  {relativeTime(run.scheduled_at, now)}
                </time>
              </li>
            ))}
            {nextRuns.data && nextRuns.data.length === 0 ? <li className="muted">Nothing scheduled in the next hour.</li> : null}
          </ol>
        </section>
      </div>
    </Page>
  );
}

/**
 * The soonest scheduled runs. The API lists newest first, so ask for a short window (the next
 * hour) and sort it; when that window is fuller than one page, narrow it to ten minutes.
 */
async function fetchNextRuns(now: Date): Promise<FlowRun[]> {
  const ask = (minutes: number) =>
    apiGet<ApiPage<FlowRun>>("/flow-runs", {
      state_type: "SCHEDULED",
      scheduled_after: now.toISOString(),
      scheduled_before: new Date(now.getTime() + minutes * 60_000).toISOString(),
      limit: 200,
    });
  let page = await ask(60);
  if (page.next_cursor) page = await ask(10);
  return page.items
    .slice()
    .sort((a, b) => new Date(a.scheduled_at ?? 0).getTime() - new Date(b.scheduled_at ?? 0).getTime());
}
