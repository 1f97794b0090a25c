// Time formatting and the dashboard's time windows. Pure functions; `timeZone` lets tests pin
// the zone (the page uses the browser's).

export type ChartRange = "24h" | "7d";

export interface StatsWindow {
  since: string;
  until: string;
  bucket_seconds: number;
}

const HOUR_MS = 3_600_000;

/**
 * The `/stats/flow-runs` window for a range: whole UTC hours ending with the current hour,
 * so the buckets line up with the API's and the last bar is the hour in progress.
 */
export function statsWindow(range: ChartRange, now: Date): StatsWindow {
  const hours = range === "24h" ? 24 : 24 * 7;
  const untilMs = Math.floor(now.getTime() / HOUR_MS) * HOUR_MS + HOUR_MS;
  return {
    since: new Date(untilMs - hours * HOUR_MS).toISOString(),
    until: new Date(untilMs).toISOString(),
    bucket_seconds: 3600,
  };
}

/**
 * Axis/tooltip label of a bucket: the hour ("14:00") in a one-day window, the weekday and hour
 * ("Fri 14:00") in a longer one, the date ("4 Dec") for day buckets.
 */
export function formatBucketLabel(
  startIso: string,
  bucketSeconds: number,
  windowSeconds: number,
  timeZone?: string,
): string {
  const date = new Date(startIso);
  if (bucketSeconds >= 86_400) {
    return new Intl.DateTimeFormat("en-GB", { day: "numeric", month: "short", timeZone }).format(date);
  }
  const hour = new Intl.DateTimeFormat("en-GB", {
    hour: "2-digit",
    minute: "2-digit",
    hourCycle: "h23",
    timeZone,
  }).format(date);
  if (windowSeconds <= 86_400) return hour;
  const weekday = new Intl.DateTimeFormat("en-GB", { weekday: "short", timeZone }).format(date);
  return `${weekday} ${hour}`;
}

/** "2026-12-04 20:03:35" in the given (default: browser) zone; "—" when missing. */
export function formatDateTime(iso: string | null | undefined, timeZone?: string): string {
  if (!iso) return "—";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  const parts = new Intl.DateTimeFormat("en-CA", {
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hourCycle: "h23",
    timeZone,
  }).formatToParts(date);
  const part = (type: string) => parts.find((p) => p.type === type)?.value ?? "";
  return `${part("year")}-${part("month")}-${part("day")} ${part("hour")}:${part("minute")}:${part("second")}`;
}

/** A duration in words fit for a table cell: "0.42 s", "2.5 s", "12 s", "3 min 5 s", "2 h 3 min". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "—";
  if (seconds < 1) return `${seconds.toFixed(2)} s`;
  if (seconds < 10) return `${seconds.toFixed(1)} s`;
  if (seconds < 60) return `${Math.round(seconds)} s`;
  const totalSeconds = Math.round(seconds);
  if (totalSeconds < 3600) {
    const minutes = Math.floor(totalSeconds / 60);
    const rest = totalSeconds % 60;
    return rest ? `${minutes} min ${rest} s` : `${minutes} min`;
  }
  const hours = Math.floor(totalSeconds / 3600);
  const minutes = Math.floor((totalSeconds % 3600) / 60);
  return minutes ? `${hours} h ${minutes} min` : `${hours} h`;
}

/** Seconds between two instants (end defaults to now), or null when the start is unknown. */
export function secondsBetween(start: string | null | undefined, end: string | null | undefined, now: Date): number | null {
  if (!start) return null;
  const endMs = end ? new Date(end).getTime() : now.getTime();
  return Math.max(0, (endMs - new Date(start).getTime()) / 1000);
}

/** "in 5 min", "3 h ago", "just now". */
export function relativeTime(iso: string | null | undefined, now: Date): string {
  if (!iso) return "—";
  const deltaSeconds = (new Date(iso).getTime() - now.getTime()) / 1000;
  const magnitude = Math.abs(deltaSeconds);
  if (magnitude < 5) return "just now";
  let amount: string;
  if (magnitude < 60) amount = `${Math.round(magnitude)} s`;
  else if (magnitude < 3600) amount = `${Math.round(magnitude / 60)} min`;
  else if (magnitude < 86_400) amount = `${Math.round(magnitude / 3600)} h`;
  else amount = `${Math.round(magnitude / 86_400)} d`;
  return deltaSeconds > 0 ? `in ${amount}` : `${amount} ago`;
}

/** A `datetime-local` input value (local time, minutes) to an ISO instant; null when empty/invalid. */
export function localInputToIso(value: string): string | null {
  if (!value) return null;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

/** An ISO instant to a `datetime-local` input value in the browser's zone. */
export function isoToLocalInput(iso: string | null | undefined): string {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}
