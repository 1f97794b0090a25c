// The task-run Gantt chart: hand-written SVG, one row per task run. Retries show as a count and
// tick marks on the bar; cached runs as hollow bars.

import type { TaskRun } from "../api/types";
import { layoutGantt } from "../lib/gantt";
import { stateClass } from "../lib/states";
import { formatDuration } from "../lib/time";
import { useWidth } from "./common";

const ROW_HEIGHT = 24;
const LABEL_WIDTH = 200;
const AXIS_HEIGHT = 22;
const MIN_BAR_PX = 3;

export function Gantt({ taskRuns, now }: { taskRuns: TaskRun[]; now: Date }) {
  const [wrapRef, width] = useWidth<HTMLDivElement>();
  const layout = layoutGantt(taskRuns, now);
  const plotWidth = Math.max(100, width - LABEL_WIDTH - 60);
  const height = AXIS_HEIGHT + layout.bars.length * ROW_HEIGHT + 4;
  const spanSeconds = (layout.endMs - layout.startMs) / 1000;
  const ticks = [0, 0.25, 0.5, 0.75, 1];

  if (taskRuns.length === 0) {
    return <p className="muted">No task runs recorded for this run yet.</p>;
  }

  return (
    <div ref={wrapRef} className="gantt">
      {width > 0 ? (
        <svg width={width} height={height} role="img" aria-label={`Task runs over ${formatDuration(spanSeconds)}`}>
          {ticks.map((tick) => (
            <g key={tick} transform={`translate(${LABEL_WIDTH + tick * plotWidth},0)`}>
              <line className="gantt-grid" y1={AXIS_HEIGHT - 4} y2={height} />
              <text className="gantt-axis" y={12} textAnchor={tick === 1 ? "end" : tick === 0 ? "start" : "middle"}>
                +{formatDuration(tick * spanSeconds)}
              </text>
            </g>
          ))}
          {layout.bars.map((bar) => {
            const y = AXIS_HEIGHT + bar.row * ROW_HEIGHT;
            const x = LABEL_WIDTH + bar.x * plotWidth;
            const barWidth = Math.max(MIN_BAR_PX, bar.width * plotWidth);
            const seconds = bar.taskRun.start_time && bar.taskRun.end_time
              ? (new Date(bar.taskRun.end_time).getTime() - new Date(bar.taskRun.start_time).getTime()) / 1000
              : null;
            const description = `${bar.taskRun.name}: ${bar.taskRun.state.name}` +
              (bar.attempts > 1 ? `, ${bar.attempts} attempts` : "") +
              (seconds !== null ? `, ${formatDuration(seconds)}` : "");
            return (
              <g key={bar.taskRun.id}>
                <text className="gantt-label" x={4} y={y + 16}>
                  {truncate(bar.taskRun.name, 28)}
                </text>
                <rect
                  data-testid="task-bar"
                  data-task-name={bar.taskRun.task_name}
                  data-attempts={bar.attempts}
                  data-state={bar.taskRun.state.name}
                  className={`gantt-bar ${stateClass(bar.taskRun.state.type, bar.taskRun.state.name)}${bar.cached ? " cached" : ""}${bar.open ? " open" : ""}`}
                  x={x}
                  y={y + 4}
                  width={barWidth}
                  height={ROW_HEIGHT - 8}
                  rx={3}
                >
                  <title>{description}</title>
                </rect>
                {bar.attempts > 1
                  ? Array.from({ length: Math.min(bar.attempts - 1, 20) }, (_, index) => (
                      <line
                        key={index}
                        className="gantt-retry"
                        x1={x + (barWidth * (index + 1)) / bar.attempts}
                        x2={x + (barWidth * (index + 1)) / bar.attempts}
                        y1={y + 4}
                        y2={y + ROW_HEIGHT - 4}
                      />
                    ))
                  : null}
                <text className="gantt-note" x={x + barWidth + 6} y={y + 16}>
                  {bar.cached ? "cached" : bar.attempts > 1 ? `×${bar.attempts} attempts` : ""}
                </text>
              </g>
            );
          })}
        </svg>
      ) : null}
    </div>
  );
}

function truncate(text: string, length: number): string {
  return text.length > length ? `${text.slice(0, length - 1)}…` : text;
}
