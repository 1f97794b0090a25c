import { describe, expect, it } from "vitest";
import { filtersFromSearch, filtersToApiQuery, filtersToSearch } from "./runFilters";
import { failureRate } from "./stats";

describe("run filters", () => {
  it("given a deep link, when read, then the filters map to the API's parameters", () => {
    const filters = filtersFromSearch(
      new URLSearchParams("flow=etl&deployment=etl/nightly&state=failed,CRASHED,bogus&since=2026-12-01T00:00:00Z&tag=a,b&tag=c"),
    );
    expect(filters.states).toEqual(["FAILED", "CRASHED"]);
    expect(filters.tags).toEqual(["a", "b", "c"]);
    const now = new Date("2026-12-04T12:00:00Z");
    expect(filtersToApiQuery(filters, now)).toEqual({
      flow_name: "etl",
      deployment_id: "etl/nightly",
      state_type: "FAILED,CRASHED",
      scheduled_after: "2026-12-01T00:00:00Z",
      scheduled_before: "2026-12-04T12:00:01.000Z",
      tag: ["a", "b", "c"],
    });
  });

  it("given the upcoming filter, when mapped, then future runs are asked for instead of due ones", () => {
    const now = new Date("2026-12-04T12:00:00Z");
    const filters = filtersFromSearch(new URLSearchParams("upcoming=1"));
    expect(filters.upcoming).toBe(true);
    const query = filtersToApiQuery(filters, now);
    expect([query.scheduled_after, query.scheduled_before]).toEqual(["2026-12-04T12:00:00.000Z", undefined]);
  });

  it("given filters, when written to the URL and read back, then they are the same", () => {
    const filters = { flow: "f", deployment: "", states: ["RUNNING" as const], since: "", until: "2026-12-02T00:00:00Z", tags: ["x"], upcoming: false };
    expect(filtersFromSearch(filtersToSearch(filters))).toEqual(filters);
    expect(filtersToSearch(filters).toString()).toBe("flow=f&state=RUNNING&until=2026-12-02T00%3A00%3A00Z&tag=x");
  });
});

describe("failureRate", () => {
  it("given finished runs, when computed, then failed and crashed count against completed", () => {
    expect(failureRate({ COMPLETED: 6, FAILED: 1, CRASHED: 1, RUNNING: 5 })).toBe(0.25);
  });

  it("given no finished run, when computed, then there is no rate", () => {
    expect(failureRate({ SCHEDULED: 3 })).toBeNull();
  });
});
