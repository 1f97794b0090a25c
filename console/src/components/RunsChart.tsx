// Runs per bucket by state: stacked bars drawn by uPlot from `/stats/flow-runs` buckets.

import { useEffect, useMemo, useRef, useState } from "react";
import uPlot from "uplot";
import type { FlowRunStats, StateType } from "../api/types";
import { formatBucketLabel } from "../lib/time";
import { useThemeName, useWidth } from "./common";

/** Bottom-to-top stacking order: the outcomes first, then what is still moving. */
const STACK: StateType[] = ["COMPLETED", "FAILED", "CRASHED", "CANCELLED", "RUNNING", "PENDING", "CANCELLING", "PAUSED", "SCHEDULED"];

const LABELS: Record<StateType, string> = {
  COMPLETED: "Completed",
  FAILED: "Failed",
  CRASHED: "Crashed",
  CANCELLED: "Cancelled",
  RUNNING: "Running",
  PENDING: "Pending",
  CANCELLING: "Cancelling",
  PAUSED: "Paused",
  SCHEDULED: "Scheduled",
};

function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
}

/**
 * The stacked series: uPlot draws series in order, so the tallest (all states) goes first and
 * each following series, one state fewer, paints over it; what shows is each state's band.
 */
function stackedData(stats: FlowRunStats, present: StateType[]): uPlot.AlignedData {
  const xs = stats.buckets.map((bucket) => new Date(bucket.start).getTime() / 1000);
  const series = present.map((_, level) =>
    stats.buckets.map((bucket) =>
      present.slice(0, present.length - level).reduce((sum, type) => sum + (bucket.counts[type] ?? 0), 0),
    ),
  );
  return [xs, ...series];
}

export function RunsChart({ stats }: { stats: FlowRunStats }) {
  const [wrapRef, width] = useWidth<HTMLDivElement>();
  const plotRef = useRef<HTMLDivElement>(null);
  const theme = useThemeName();
  const [hoverIndex, setHoverIndex] = useState<number | null>(null);
  const windowSeconds = (new Date(stats.until).getTime() - new Date(stats.since).getTime()) / 1000;

  const present = useMemo(
    () => STACK.filter((type) => stats.buckets.some((bucket) => (bucket.counts[type] ?? 0) > 0)),
    [stats],
  );

  useEffect(() => {
    const target = plotRef.current;
    if (!target || width === 0) return;
    const stacked = present.length ? present : (["COMPLETED"] as StateType[]);
    const data = present.length
      ? stackedData(stats, present)
      : ([stats.buckets.map((b) => new Date(b.start).getTime() / 1000), stats.buckets.map(() => 0)] as uPlot.AlignedData);
    const axisColor = cssVar("--muted");
    const gridColor = cssVar("--border");
    const bars = uPlot.paths.bars?.({ size: [0.8, 40], gap: 1 });
    const options: uPlot.Options = {
      width,
      height: 220,
      legend: { show: false },
      cursor: { y: false, points: { show: false } },
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
      axes: [
        {
          stroke: axisColor,
          grid: { show: false },
          // "Fri 16:00" labels need more room than "16:00" ones.
          space: windowSeconds > 86_400 ? 90 : 50,
          values: (_u, splits) => splits.map((split) => formatBucketLabel(new Date(split * 1000).toISOString(), stats.bucket_seconds, windowSeconds)),
        },
        { stroke: axisColor, grid: { stroke: gridColor, width: 1 }, size: 40 },
      ],
      series: [
        {},
        ...stacked.slice().reverse().map((type) => ({
          label: LABELS[type],
          fill: cssVar(`--state-${type.toLowerCase()}`),
          stroke: cssVar(`--state-${type.toLowerCase()}`),
          width: 0,
          paths: bars,
          points: { show: false },
        })),
      ],
      hooks: { setCursor: [(u) => setHoverIndex(u.cursor.idx ?? null)] },
    };
    const plot = new uPlot(options, data, target);
    return () => plot.destroy();
  }, [stats, present, width, theme, windowSeconds]);

  const hovered = hoverIndex !== null ? stats.buckets[hoverIndex] : undefined;
  const summary = present.map((type) => `${stats.totals[type] ?? 0} ${LABELS[type].toLowerCase()}`).join(", ");

  return (
    <div className="chart" data-testid="runs-chart">
      <div ref={wrapRef} className="chart-plot" role="img" aria-label={`Runs per hour by state: ${summary || "no runs"} in this window.`}>
        <div ref={plotRef} />
      </div>
      <div className="chart-legend" aria-hidden="true">
        {hovered ? (
          <span className="chart-hover">
            <strong>{formatBucketLabel(hovered.start, stats.bucket_seconds, windowSeconds)}</strong>{" "}
            {present.map((type) => `${LABELS[type]} ${hovered.counts[type] ?? 0}`).join(" · ") || "no runs"}
          </span>
        ) : (
          present.map((type) => (
            <span key={type} className="legend-item">
              <span className={`swatch state-${type.toLowerCase()}`} /> {LABELS[type]} {stats.totals[type] ?? 0}
            </span>
          ))
        )}
        {present.length === 0 && !hovered ? <span className="muted">No runs in this window.</span> : null}
      </div>
    </div>
  );
}
