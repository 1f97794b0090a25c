// Layout of the task-run Gantt chart: one row per task run, x positions as fractions of the
// run's time span so the SVG can scale to any width.

import type { TaskRun } from "../api/types";

export interface GanttBar {
  taskRun: TaskRun;
  row: number;
  /** Left edge and width as fractions (0..1) of the chart's time span. */
  x: number;
  width: number;
  attempts: number;
  cached: boolean;
  /** Still running: the bar reaches "now". */
  open: boolean;
}

export interface GanttLayout {
  bars: GanttBar[];
  startMs: number;
  endMs: number;
}

const time = (iso: string | null | undefined): number | null => {
  if (!iso) return null;
  const ms = new Date(iso).getTime();
  return Number.isNaN(ms) ? null : ms;
};

/**
 * Place task runs on a shared time axis. A task with no start (cached, or not started) is drawn
 * as a marker at its state time; a running one extends to `now`.
 */
export function layoutGantt(taskRuns: TaskRun[], now: Date): GanttLayout {
  const spans = taskRuns.map((taskRun) => {
    const start = time(taskRun.start_time) ?? time(taskRun.state.timestamp) ?? now.getTime();
    const ended = time(taskRun.end_time);
    const open = ended === null && taskRun.state.type === "RUNNING";
    const end = ended ?? (open ? now.getTime() : start);
    return { taskRun, start, end: Math.max(start, end), open };
  });
  spans.sort((a, b) => a.start - b.start || a.taskRun.task_key.localeCompare(b.taskRun.task_key));
  if (spans.length === 0) return { bars: [], startMs: now.getTime(), endMs: now.getTime() };
  const startMs = Math.min(...spans.map((span) => span.start));
  // A span of at least 100 ms keeps a run of instant tasks readable.
  const endMs = Math.max(startMs + 100, ...spans.map((span) => span.end));
  const total = endMs - startMs;
  const bars = spans.map((span, row) => ({
    taskRun: span.taskRun,
    row,
    x: (span.start - startMs) / total,
    width: (span.end - span.start) / total,
    attempts: Math.max(1, span.taskRun.run_count),
    cached: span.taskRun.state.name === "Cached",
    open: span.open,
  }));
  return { bars, startMs, endMs };
}
