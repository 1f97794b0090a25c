import { describe, expect, it } from "vitest";
import type { TaskRun } from "../api/types";
import { layoutGantt } from "./gantt";

function task(id: string, start: string | null, end: string | null, extra: Partial<TaskRun> = {}): TaskRun {
  return {
    id,
    flow_run_id: "run",
    task_name: `task-${id}`,
    name: `task-${id}-0`,
    task_key: id,
    state: { type: end ? "COMPLETED" : "RUNNING", name: end ? "Completed" : "Running", timestamp: end ?? start ?? "2026-12-04T10:00:00Z" },
    start_time: start,
    end_time: end,
    run_count: 1,
    tags: [],
    ...extra,
  };
}

describe("layoutGantt", () => {
  const now = new Date("2026-12-04T10:00:10Z");

  it("given tasks, when laid out, then rows follow start time and positions are fractions of the span", () => {
    const layout = layoutGantt(
      [task("b", "2026-12-04T10:00:05Z", "2026-12-04T10:00:10Z"), task("a", "2026-12-04T10:00:00Z", "2026-12-04T10:00:05Z")],
      now,
    );
    expect(layout.bars.map((bar) => [bar.taskRun.id, bar.row, bar.x, bar.width])).toEqual([
      ["a", 0, 0, 0.5],
      ["b", 1, 0.5, 0.5],
    ]);
  });

  it("given a running task, when laid out, then its bar reaches now and is open", () => {
    const layout = layoutGantt([task("a", "2026-12-04T10:00:00Z", null)], now);
    expect(layout.bars[0]).toMatchObject({ x: 0, width: 1, open: true });
  });

  it("given retries and a cached run, when laid out, then attempts and cached are flagged", () => {
    const cached = task("c", null, null, {
      state: { type: "COMPLETED", name: "Cached", timestamp: "2026-12-04T10:00:02Z" },
    });
    const retried = task("r", "2026-12-04T10:00:00Z", "2026-12-04T10:00:04Z", { run_count: 3 });
    const layout = layoutGantt([cached, retried], now);
    const byId = Object.fromEntries(layout.bars.map((bar) => [bar.taskRun.id, bar]));
    expect(byId.r).toMatchObject({ attempts: 3, cached: false });
    expect(byId.c).toMatchObject({ attempts: 1, cached: true, width: 0, x: 0.5 });
  });

  it("given no tasks, when laid out, then there are no bars", () => {
    expect(layoutGantt([], now).bars).toEqual([]);
  });
});
