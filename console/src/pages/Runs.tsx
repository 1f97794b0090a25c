// Flow runs: server-side filtered (filters live in the URL), 50 per page with a cursor,
// refreshed every 5 s.

import { useEffect, useState, type FormEvent } from "react";
import { useSearchParams } from "react-router-dom";
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { apiGet } from "../api/client";
import { deploymentNamesQuery } from "../api/queries";
import { STATE_TYPES, type FlowRun, type Page as ApiPage, type StateType } from "../api/types";
import { ErrorBox, Page, RunsTable, useNow } from "../components/common";
import { filtersFromSearch, filtersToApiQuery, filtersToSearch, splitList, type RunFilters } from "../lib/runFilters";
import { isoToLocalInput, localInputToIso } from "../lib/time";

const PAGE_SIZE = 50;
const REFRESH_MS = 5000;

export function RunsPage() {
  const [search, setSearch] = useSearchParams();
  const filters = filtersFromSearch(search);
  const filterKey = filtersToSearch(filters).toString();
  // Cursors of the pages before the current one ("Previous" pops), reset when filters change.
  const [paging, setPaging] = useState<{ filterKey: string; cursors: (string | null)[] }>({ filterKey, cursors: [null] });
  const cursors = paging.filterKey === filterKey ? paging.cursors : [null];
  const setCursors = (update: (list: (string | null)[]) => (string | null)[]) =>
    setPaging({ filterKey, cursors: update(cursors) });
  const cursor = cursors[cursors.length - 1] ?? null;
  const now = useNow(REFRESH_MS);

  const runs = useQuery({
    queryKey: ["flow-runs", filterKey, cursor],
    queryFn: () => apiGet<ApiPage<FlowRun>>("/flow-runs", { ...filtersToApiQuery(filters), limit: PAGE_SIZE, cursor }),
    refetchInterval: REFRESH_MS,
    placeholderData: keepPreviousData,
  });
  const deploymentNames = useQuery(deploymentNamesQuery);

  return (
    <Page name="runs" ready={Boolean(runs.data)} title="Flow runs">
      <FilterForm filters={filters} onApply={(next) => setSearch(filtersToSearch(next))} />
      <ErrorBox error={runs.error} />
      {runs.data ? (
        <>
          <RunsTable runs={runs.data.items} now={now} deploymentNames={deploymentNames.data} caption={filters.upcoming ? "Future flow runs, latest first" : "Flow runs that started or are due, newest first"} />
          {runs.data.items.length === 0 ? <p className="muted">No flow runs match these filters.</p> : null}
          <nav className="pager" aria-label="Pages">
            <button type="button" disabled={cursors.length < 2} onClick={() => setCursors((list) => list.slice(0, -1))}>
              ← Previous page
            </button>
            <span className="muted">Page {cursors.length}</span>
            <button
              type="button"
              disabled={!runs.data.next_cursor}
              onClick={() => runs.data?.next_cursor && setCursors((list) => list.concat(runs.data?.next_cursor ?? null))}
            >
              Next page →
            </button>
          </nav>
        </>
      ) : (
        !runs.error && <p className="muted">Loading…</p>
      )}
    </Page>
  );
}

function FilterForm({ filters, onApply }: { filters: RunFilters; onApply: (filters: RunFilters) => void }) {
  const [flow, setFlow] = useState(filters.flow);
  const [deployment, setDeployment] = useState(filters.deployment);
  const [states, setStates] = useState<StateType[]>(filters.states);
  const [since, setSince] = useState(isoToLocalInput(filters.since));
  const [until, setUntil] = useState(isoToLocalInput(filters.until));
  const [tags, setTags] = useState(filters.tags.join(", "));
  const [upcoming, setUpcoming] = useState(filters.upcoming);

  // Follow the URL when it changes from outside the form (a link, back/forward).
  const key = filtersToSearch(filters).toString();
  useEffect(() => {
    setFlow(filters.flow);
    setDeployment(filters.deployment);
    setStates(filters.states);
    setSince(isoToLocalInput(filters.since));
    setUntil(isoToLocalInput(filters.until));
    setTags(filters.tags.join(", "));
    setUpcoming(filters.upcoming);
  }, [key]);

  function submit(event: FormEvent) {
    event.preventDefault();
    onApply({
      flow: flow.trim(),
      deployment: deployment.trim(),
      states,
      since: localInputToIso(since) ?? "",
      until: localInputToIso(until) ?? "",
      tags: splitList([tags]),
      upcoming,
    });
  }

  function toggleState(state: StateType) {
    setStates((list) => (list.includes(state) ? list.filter((item) => item !== state) : list.concat(state)));
  }

  return (
    <form className="card filters" onSubmit={submit} aria-label="Filter flow runs">
      <div className="filter-grid">
        <label>
          Flow
          <input name="flow" value={flow} onChange={(event) => setFlow(event.target.value)} placeholder="flow name" />
        </label>
        <label>
          Deployment
          <input name="deployment" value={deployment} onChange={(event) => setDeployment(event.target.value)} placeholder="flow/name or id" />
        </label>
        <label>
          Scheduled from
          <input name="since" type="datetime-local" value={since} onChange={(event) => setSince(event.target.value)} />
        </label>
        <label>
          Scheduled before
          <input name="until" type="datetime-local" value={until} onChange={(event) => setUntil(event.target.value)} />
        </label>
        <label>
          Tags (all of)
          <input name="tag" value={tags} onChange={(event) => setTags(event.target.value)} placeholder="tag-a, tag-b" />
        </label>
      </div>
      <label className="check">
        <input type="checkbox" name="upcoming" checked={upcoming} onChange={(event) => setUpcoming(event.target.checked)} />
        Future runs instead of runs that started or are due
      </label>
      <fieldset className="state-choices">
        <legend>States</legend>
        {STATE_TYPES.map((state) => (
          <label key={state} className="check">
            <input type="checkbox" name="state" value={state} checked={states.includes(state)} onChange={() => toggleState(state)} />
            {state.toLowerCase()}
          </label>
        ))}
      </fieldset>
      <div className="actions">
        <button type="submit">Apply filters</button>
        <button
          type="button"
          className="ghost"
          onClick={() => onApply({ flow: "", deployment: "", states: [], since: "", until: "", tags: [], upcoming: false })}
        >
          Clear
        </button>
      </div>
    </form>
  );
}
