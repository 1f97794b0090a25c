// The runs list's filters: kept in the page URL (deep links) and turned into `GET /flow-runs`
// query parameters.

import type { QueryValue } from "../api/client";
import { STATE_TYPES, type StateType } from "../api/types";

export interface RunFilters {
  flow: string;
  deployment: string;
  states: StateType[];
  since: string;
  until: string;
  tags: string[];
  /** Future runs instead of runs that started or are due (the default, as `sluice flow-run ls`). */
  upcoming: boolean;
}

/** Split "a, b" (and repeated parameters) into clean, distinct values. */
export function splitList(values: string[]): string[] {
  const items = values.flatMap((value) => value.split(",")).map((item) => item.trim()).filter(Boolean);
  return Array.from(new Set(items));
}

/** Filters from the page URL (`flow`, `deployment`, `state`, `since`, `until`, `tag`). */
export function filtersFromSearch(search: URLSearchParams): RunFilters {
  const known = new Set<string>(STATE_TYPES);
  return {
    flow: search.get("flow") ?? "",
    deployment: search.get("deployment") ?? "",
    states: splitList(search.getAll("state")).map((s) => s.toUpperCase()).filter((s): s is StateType => known.has(s)),
    since: search.get("since") ?? "",
    until: search.get("until") ?? "",
    tags: splitList(search.getAll("tag")),
    upcoming: search.get("upcoming") === "1",
  };
}

/** The page URL's query for these filters (empty ones left out). */
export function filtersToSearch(filters: RunFilters): URLSearchParams {
  const search = new URLSearchParams();
  if (filters.flow) search.set("flow", filters.flow);
  if (filters.deployment) search.set("deployment", filters.deployment);
  if (filters.states.length) search.set("state", filters.states.join(","));
  if (filters.since) search.set("since", filters.since);
  if (filters.until) search.set("until", filters.until);
  filters.tags.forEach((tag) => search.append("tag", tag));
  if (filters.upcoming) search.set("upcoming", "1");
  return search;
}

/** A run the control plane created "now" may carry a time a moment after this clock. */
const DUE_GRACE_MS = 1000;

/** `GET /flow-runs` parameters for these filters. Without `until`, the list holds the runs that
 * started or are due (scheduled before now), so the hour of future Scheduled runs a short
 * interval makes never pushes them off the first page; `upcoming` lists future runs instead. */
export function filtersToApiQuery(filters: RunFilters, now: Date = new Date()): Record<string, QueryValue> {
  const due = new Date(now.getTime() + DUE_GRACE_MS).toISOString();
  return {
    flow_name: filters.flow || undefined,
    deployment_id: filters.deployment || undefined,
    state_type: filters.states.length ? filters.states.join(",") : undefined,
    scheduled_after: filters.since || (filters.upcoming ? now.toISOString() : undefined),
    scheduled_before: filters.until || (filters.upcoming ? undefined : due),
    tag: filters.tags.length ? filters.tags : undefined,
  };
}
