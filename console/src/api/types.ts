// Shapes of the Sluice API responses the console reads (see /openapi.json).

export type StateType =
  | "SCHEDULED"
  | "PENDING"
  | "RUNNING"
  | "PAUSED"
  | "CANCELLING"
  | "COMPLETED"
  | "FAILED"
  | "CANCELLED"
  | "CRASHED";

export const STATE_TYPES: StateType[] = [
  "SCHEDULED",
  "PENDING",
  "RUNNING",
  "PAUSED",
  "CANCELLING",
  "COMPLETED",
  "FAILED",
  "CANCELLED",
  "CRASHED",
];

export interface State {
  type: StateType;
  name: string;
  timestamp: string;
  message?: string | null;
  scheduled_time?: string | null;
  details?: Record<string, unknown> | null;
}

export interface FlowRun {
  id: string;
  flow_name: string;
  name?: string | null;
  deployment_id?: string | null;
  pool?: string | null;
  state: State;
  parameters: Record<string, unknown>;
  tags: string[];
  scheduled_at?: string | null;
  start_time?: string | null;
  end_time?: string | null;
  run_count: number;
  retries: number;
  parent_flow_run_id?: string | null;
  parent_task_run_id?: string | null;
  worker?: string | null;
  created?: string | null;
  created_by?: string | null;
}

export interface TaskRun {
  id: string;
  flow_run_id: string;
  task_name: string;
  name: string;
  task_key: string;
  state: State;
  start_time?: string | null;
  end_time?: string | null;
  run_count: number;
  tags: string[];
  cache_key?: string | null;
}

export type LogLevel = "DEBUG" | "INFO" | "WARNING" | "ERROR" | "CRITICAL";

export interface LogRecord {
  id: string;
  flow_run_id: string;
  task_run_id?: string | null;
  timestamp: string;
  level: LogLevel;
  logger: string;
  message: string;
}

export interface Page<T> {
  items: T[];
  next_cursor?: string | null;
}

export interface Worker {
  name: string;
  pool: string;
  host?: string | null;
  version?: string | null;
  slots?: number | null;
  last_seen?: string | null;
  online?: boolean | null;
}

export interface Pool {
  name: string;
  concurrency_limit?: number | null;
  description?: string | null;
  paused?: boolean;
  queue_depth?: number | null;
  dlq_depth?: number | null;
  workers: Worker[];
  running?: number | null;
  created?: string | null;
}

export interface Schedule {
  id?: string | null;
  cron?: string | null;
  interval_seconds?: number | null;
  timezone?: string;
  active: boolean;
}

export interface Deployment {
  id: string;
  flow_name: string;
  name: string;
  pool: string;
  paused: boolean;
  parameters: Record<string, unknown>;
  parameter_schema: Record<string, unknown>;
  tags: string[];
  description?: string | null;
  schedules: Schedule[];
}

/** A run as listed in a deployment summary's `recent` strip. */
export interface RecentRun {
  id: string;
  name?: string | null;
  state_type: StateType;
  state_name: string;
  scheduled_at?: string | null;
}

export interface DeploymentSummary {
  id: string;
  flow_name: string;
  name: string;
  pool: string;
  paused: boolean;
  schedules: { id?: string | null; description: string; active: boolean }[];
  next_runs: string[];
  recent: RecentRun[];
  parameter_schema: Record<string, unknown>;
}

export type StateCounts = Partial<Record<StateType, number>>;

export interface FlowRunStats {
  since: string;
  until: string;
  bucket_seconds: number;
  buckets: { start: string; counts: StateCounts }[];
  totals: StateCounts;
  late: number;
  truncated: boolean;
}

export interface SetStateResponse {
  status: "ACCEPT" | "REJECT" | "ABORT";
  state: State;
  reason?: string | null;
}

export interface BackfillSummary {
  backfill_id: string;
  slots: number;
  created: number;
  reprocessed: number;
  existing: number;
  released: number;
}
