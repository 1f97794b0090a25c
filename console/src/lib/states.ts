// State vocabulary shared by every page: colours (CSS classes), terminal states.

import type { StateType } from "../api/types";

const TERMINAL: ReadonlySet<StateType> = new Set(["COMPLETED", "FAILED", "CANCELLED", "CRASHED"]);

/** True once a run can no longer change on its own (no more polling needed). */
export function isTerminal(type: StateType): boolean {
  return TERMINAL.has(type);
}

/** The CSS class carrying a state's colour (`--state-<type>` in styles.css). */
export function stateClass(type: StateType | string, name?: string): string {
  if (name === "Cached") return "state-cached";
  if (name === "Late") return "state-late";
  return `state-${type.toLowerCase()}`;
}

/** The colour of a state type as a CSS variable reference, for SVG/canvas. */
export function stateColorVar(type: StateType): string {
  return `--state-${type.toLowerCase()}`;
}

/** Runs that can be retried from the page (the API decides; this only hides a useless button). */
export function canRetry(type: StateType): boolean {
  return type === "FAILED" || type === "CRASHED" || type === "CANCELLED";
}

/** Runs that can still be cancelled. */
export function canCancel(type: StateType): boolean {
  return !isTerminal(type) && type !== "CANCELLING";
}

/** The name of a run an operator suspended (type PAUSED, no attempt holds it). */
export const SUSPENDED = "Suspended";

/** Runs that can be suspended from the page: waiting or running, not already suspended. */
export function canSuspend(state: { type: StateType; name: string }): boolean {
  return canCancel(state.type) && state.name !== SUSPENDED;
}

/** Runs that can be resumed from the page: only Suspended ones. */
export function canResume(state: { type: StateType; name: string }): boolean {
  return state.type === "PAUSED" && state.name === SUSPENDED;
}
