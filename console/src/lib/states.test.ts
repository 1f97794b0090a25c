import { describe, expect, it } from "vitest";
import { canCancel, canResume, canSuspend } from "./states";

describe("suspend and resume buttons", () => {
  it("offers Suspend for waiting and running runs only", () => {
    // Given runs in each kind of state, Then only the live, not yet suspended ones can suspend
    expect(canSuspend({ type: "SCHEDULED", name: "Late" })).toBe(true);
    expect(canSuspend({ type: "PENDING", name: "Pending" })).toBe(true);
    expect(canSuspend({ type: "RUNNING", name: "Running" })).toBe(true);
    expect(canSuspend({ type: "PAUSED", name: "Suspended" })).toBe(false);
    expect(canSuspend({ type: "CANCELLING", name: "Cancelling" })).toBe(false);
    expect(canSuspend({ type: "COMPLETED", name: "Completed" })).toBe(false);
  });

  it("offers Resume for Suspended runs only, and Cancel stays available for them", () => {
    expect(canResume({ type: "PAUSED", name: "Suspended" })).toBe(true);
    expect(canResume({ type: "PAUSED", name: "Paused" })).toBe(false);
    expect(canResume({ type: "FAILED", name: "Failed" })).toBe(false);
    expect(canCancel("PAUSED")).toBe(true);
  });
});
