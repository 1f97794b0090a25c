// The *Run* form of a deployment: one input per parameter of its JSON Schema, validated in the
// browser before `POST /deployments/{flow}/{name}/runs`.

import { useMemo, useState, type FormEvent } from "react";
import { fieldsFromSchema, initialValues, validateForm, type FormField, type FormValues } from "../lib/schemaForm";
import { isSecretKey } from "../lib/secrets";

export function ParamForm({ schema, defaults, busy, onSubmit, onCancel }: {
  schema: Record<string, unknown>;
  defaults: Record<string, unknown>;
  busy: boolean;
  onSubmit: (parameters: Record<string, unknown>) => void;
  onCancel: () => void;
}) {
  const fields = useMemo(() => fieldsFromSchema(schema), [schema]);
  const [values, setValues] = useState<FormValues>(() => initialValues(fields, defaults));
  const [errors, setErrors] = useState<Record<string, string>>({});

  function submit(event: FormEvent) {
    event.preventDefault();
    const result = validateForm(fields, values);
    setErrors(result.errors);
    if (Object.keys(result.errors).length === 0) onSubmit(result.parameters);
  }

  const set = (name: string, value: string | boolean) => setValues((previous) => ({ ...previous, [name]: value }));

  return (
    <form data-testid="run-form" className="card form" onSubmit={submit} noValidate aria-label="Run this deployment">
      <h2>Run with parameters</h2>
      {fields.length === 0 ? <p className="muted">This flow takes no parameters.</p> : null}
      {fields.map((field) => (
        <FieldInput key={field.name} field={field} value={values[field.name]} error={errors[field.name]} onChange={set} />
      ))}
      <div className="actions">
        <button type="submit" data-testid="run-submit" disabled={busy}>
          {busy ? "Starting…" : "Run"}
        </button>
        <button type="button" className="ghost" onClick={onCancel}>
          Close
        </button>
      </div>
    </form>
  );
}

function FieldInput({ field, value, error, onChange }: {
  field: FormField;
  value: string | boolean | undefined;
  error?: string;
  onChange: (name: string, value: string | boolean) => void;
}) {
  const id = `param-input-${field.name}`;
  const hintId = `${id}-hint`;
  const errorId = `${id}-error`;
  const describedBy = [field.description || hint(field) ? hintId : "", error ? errorId : ""].filter(Boolean).join(" ") || undefined;
  const common = {
    id,
    name: `param-${field.name}`,
    "aria-invalid": error ? true : undefined,
    "aria-describedby": describedBy,
    "aria-required": field.required || undefined,
  };
  let input;
  if (field.kind === "boolean") {
    input = <input type="checkbox" {...common} checked={value === true} onChange={(event) => onChange(field.name, event.target.checked)} />;
  } else if (field.kind === "enum") {
    input = (
      <select {...common} value={String(value ?? "")} onChange={(event) => onChange(field.name, event.target.value)}>
        <option value="">{field.required ? "Choose…" : "(flow default)"}</option>
        {(field.enumValues ?? []).map((option) => (
          <option key={JSON.stringify(option)} value={JSON.stringify(option)}>
            {typeof option === "string" ? option : JSON.stringify(option)}
          </option>
        ))}
      </select>
    );
  } else if (field.kind === "array" || field.kind === "json") {
    input = <textarea {...common} rows={3} spellCheck={false} value={String(value ?? "")} onChange={(event) => onChange(field.name, event.target.value)} />;
  } else {
    const type = field.kind === "string" ? (isSecretKey(field.name) ? "password" : "text") : "text";
    input = (
      <input
        {...common}
        type={type}
        inputMode={field.kind === "integer" ? "numeric" : field.kind === "number" ? "decimal" : undefined}
        value={String(value ?? "")}
        onChange={(event) => onChange(field.name, event.target.value)}
      />
    );
  }
  return (
    <div className={`field${error ? " invalid" : ""}`}>
      <label htmlFor={id}>
        {field.title}
        {field.required ? <span aria-hidden="true"> *</span> : null} <span className="muted">({field.kind === "json" ? "JSON" : field.kind})</span>
      </label>
      {input}
      {field.description || hint(field) ? (
        <small id={hintId} className="muted">
          {[field.description, hint(field)].filter(Boolean).join(" ")}
        </small>
      ) : null}
      {error ? (
        <small id={errorId} className="field-error" role="alert">
          {error}
        </small>
      ) : null}
    </div>
  );
}

function hint(field: FormField): string {
  const parts: string[] = [];
  if (field.minimum !== undefined) parts.push(`min ${field.minimum}`);
  if (field.maximum !== undefined) parts.push(`max ${field.maximum}`);
  if (field.kind === "array") parts.push('a JSON array, e.g. ["a", "b"]');
  if (field.kind === "json") parts.push('JSON, e.g. {"key": "value"}');
  return parts.join(", ");
}
