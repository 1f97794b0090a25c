import { describe, expect, it } from "vitest";
import type { RecentRun } from "../api/types";
import { stripSquares } from "./strip";

const run = (id: string, state_type: RecentRun["state_type"], state_name: string): RecentRun => ({
  id,
  name: `run-${id}`,
  state_type,
  state_name,
  scheduled_at: "2026-12-04T02:00:00Z",
});

describe("stripSquares", () => {
  it("given runs newest first, when drawn, then the oldest is on the left and the strip is padded", () => {
    const squares = stripSquares([run("c", "FAILED", "Failed"), run("b", "COMPLETED", "Completed"), run("a", "SCHEDULED", "Late")], 5, "UTC");
    expect(squares.map((square) => square.id)).toEqual([null, null, "a", "b", "c"]);
    expect(squares.map((square) => square.className)).toEqual([
      "strip-empty",
      "strip-empty",
      "state-late",
      "state-completed",
      "state-failed",
    ]);
    expect(squares[4]?.label).toBe("run-c: Failed, scheduled 2026-12-04 02:00:00");
  });

  it("given more runs than the width, when drawn, then only the newest fit", () => {
    const recent = Array.from({ length: 12 }, (_, index) => run(String(index), "COMPLETED", "Completed"));
    const squares = stripSquares(recent, 10);
    expect(squares).toHaveLength(10);
    expect(squares[9]?.id).toBe("0");
    expect(squares[0]?.id).toBe("9");
  });

  it("given a cached run, when drawn, then it has the cached colour", () => {
    expect(stripSquares([run("x", "COMPLETED", "Cached")], 1)[0]?.className).toBe("state-cached");
  });
});
