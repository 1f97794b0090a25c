import { describe, expect, it } from "vitest";
import { formatBucketLabel, formatDateTime, formatDuration, relativeTime, statsWindow } from "./time";

describe("statsWindow", () => {
  const now = new Date("2026-12-04T20:37:12Z");

  it("given 24 h, when asked at 20:37, then it covers whole hours up to the end of the current one", () => {
    expect(statsWindow("24h", now)).toEqual({
      since: "2026-12-03T21:00:00.000Z",
      until: "2026-12-04T21:00:00.000Z",
      bucket_seconds: 3600,
    });
  });

  it("given 7 d, when asked, then it spans 168 hourly buckets", () => {
    const window = statsWindow("7d", now);
    const hours = (new Date(window.until).getTime() - new Date(window.since).getTime()) / 3_600_000;
    expect(hours).toBe(168);
    expect(window.bucket_seconds).toBe(3600);
  });
});

describe("formatBucketLabel", () => {
  it("given a one-day window, when labelled, then it shows the hour", () => {
    expect(formatBucketLabel("2026-12-04T14:00:00Z", 3600, 86_400, "UTC")).toBe("14:00");
  });

  it("given a week window, when labelled, then it shows the weekday and hour", () => {
    expect(formatBucketLabel("2026-12-04T14:00:00Z", 3600, 7 * 86_400, "UTC")).toBe("Fri 14:00");
  });

  it("given day buckets, when labelled, then it shows the date", () => {
    expect(formatBucketLabel("2026-12-04T00:00:00Z", 86_400, 30 * 86_400, "UTC")).toBe("4 Dec");
  });

  it("given another zone, when labelled, then the hour is local to it", () => {
    expect(formatBucketLabel("2026-12-04T14:00:00Z", 3600, 86_400, "Europe/Berlin")).toBe("15:00");
  });
});

describe("formatDuration", () => {
  it.each([
    [0.42, "0.42 s"],
    [2.54, "2.5 s"],
    [12.3, "12 s"],
    [185, "3 min 5 s"],
    [120, "2 min"],
    [7380, "2 h 3 min"],
    [-1, "—"],
  ])("given %s seconds, when formatted, then it reads %s", (seconds, text) => {
    expect(formatDuration(seconds)).toBe(text);
  });
});

describe("relativeTime and formatDateTime", () => {
  const now = new Date("2026-12-04T20:00:00Z");
  it("given future and past instants, when described, then they read as in/ago", () => {
    expect(relativeTime("2026-12-04T20:05:00Z", now)).toBe("in 5 min");
    expect(relativeTime("2026-12-04T17:00:00Z", now)).toBe("3 h ago");
    expect(relativeTime("2026-12-04T20:00:02Z", now)).toBe("just now");
    expect(relativeTime(null, now)).toBe("—");
  });

  it("given an instant, when formatted in UTC, then it is a sortable date and time", () => {
    expect(formatDateTime("2026-12-04T20:03:35.123Z", "UTC")).toBe("2026-12-04 20:03:35");
    expect(formatDateTime(undefined)).toBe("—");
  });
});
