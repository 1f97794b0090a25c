// Backfill: create the runs a deployment's schedules would have made in [start, end).

import { useState, type FormEvent } from "react";
import { useMutation } from "@tanstack/react-query";
import { apiPost, seg } from "../api/client";
import type { BackfillSummary } from "../api/types";
import { localInputToIso } from "../lib/time";
import { ErrorBox } from "./common";

export function BackfillForm({ flow, name, onDone }: { flow: string; name: string; onDone: () => void }) {
  const [start, setStart] = useState("");
  const [end, setEnd] = useState("");
  const [reprocess, setReprocess] = useState<"none" | "failed" | "all">("none");
  const [maxActive, setMaxActive] = useState("");
  const [formError, setFormError] = useState<string | null>(null);

  const backfill = useMutation({
    mutationFn: (body: Record<string, unknown>) =>
      apiPost<BackfillSummary>(`/deployments/${seg(flow)}/${seg(name)}/backfill`, body),
    onSuccess: onDone,
  });

  function submit(event: FormEvent) {
    event.preventDefault();
    const startIso = localInputToIso(start);
    const endIso = localInputToIso(end);
    if (!startIso || !endIso) return setFormError("Give both a start and an end time.");
    if (endIso <= startIso) return setFormError("The end must be after the start: backfill covers [start, end).");
    const limit = maxActive.trim() ? Number(maxActive) : null;
    if (limit !== null && (!Number.isInteger(limit) || limit < 1 || limit > 10000))
      return setFormError("Max active must be a whole number from 1 to 10000, or empty for no limit.");
    setFormError(null);
    backfill.mutate({ start: startIso, end: endIso, reprocess, max_active: limit });
  }

  const summary = backfill.data;
  return (
    <form data-testid="backfill-form" className="card form" onSubmit={submit} noValidate aria-labelledby="backfill-title">
      <h2 id="backfill-title">Backfill</h2>
      <p className="muted">Create the runs this deployment's schedules would have made between two times.</p>
      <div className="filter-grid">
        <label>
          Start
          <input name="start" type="datetime-local" value={start} onChange={(event) => setStart(event.target.value)} required />
        </label>
        <label>
          End
          <input name="end" type="datetime-local" value={end} onChange={(event) => setEnd(event.target.value)} required />
        </label>
        <label>
          Reprocess
          <select name="reprocess" value={reprocess} onChange={(event) => setReprocess(event.target.value as typeof reprocess)}>
            <option value="none">none (skip slots that have a run)</option>
            <option value="failed">failed (re-run failed slots)</option>
            <option value="all">all (re-run every slot)</option>
          </select>
        </label>
        <label>
          Max active
          <input name="max_active" inputMode="numeric" value={maxActive} onChange={(event) => setMaxActive(event.target.value)} placeholder="no limit" />
        </label>
      </div>
      {formError ? <p className="error" role="alert" data-testid="error">{formError}</p> : null}
      <ErrorBox error={backfill.error} />
      {summary ? (
        <p className="notice" role="status">
          Backfill {summary.backfill_id}: {summary.slots} slots, {summary.created} runs created, {summary.reprocessed} reprocessed,{" "}
          {summary.existing} already there.
        </p>
      ) : null}
      <div className="actions">
        <button type="submit" disabled={backfill.isPending}>
          {backfill.isPending ? "Backfilling…" : "Backfill"}
        </button>
      </div>
    </form>
  );
}
