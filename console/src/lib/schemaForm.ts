// A deployment's parameter form, generated from its JSON Schema (as the SDK writes it with
// pydantic), and the validation run in the browser before the API is asked.

export type FieldKind = "string" | "integer" | "number" | "boolean" | "enum" | "array" | "json";

export interface FormField {
  name: string;
  title: string;
  kind: FieldKind;
  required: boolean;
  description?: string;
  enumValues?: unknown[];
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minLength?: number;
  maxLength?: number;
  /** For arrays of scalars: the item type checked on each element. */
  itemType?: "string" | "integer" | "number" | "boolean";
  defaultValue?: unknown;
}

/** What the inputs hold: text for everything but checkboxes. */
export type FormValues = Record<string, string | boolean>;

type Schema = Record<string, unknown>;

function asSchema(value: unknown): Schema {
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Schema) : {};
}

/** Follow a local `$ref` ("#/$defs/Name" or "#/definitions/Name") against the root schema. */
function resolveRef(schema: Schema, root: Schema): Schema {
  const ref = schema.$ref;
  if (typeof ref !== "string" || !ref.startsWith("#/")) return schema;
  let target: unknown = root;
  for (const part of ref.slice(2).split("/")) target = asSchema(target)[part];
  return { ...asSchema(target), ...Object.fromEntries(Object.entries(schema).filter(([k]) => k !== "$ref")) };
}

/** Drop the `null` branch of an Optional (`anyOf: [X, {type: null}]`); keep anything else. */
function unwrapOptional(schema: Schema, root: Schema): Schema {
  const resolved = resolveRef(schema, root);
  const branches = (resolved.anyOf ?? resolved.oneOf) as unknown[] | undefined;
  if (!Array.isArray(branches)) return resolved;
  const nonNull = branches.map(asSchema).filter((branch) => branch.type !== "null");
  if (nonNull.length !== 1) return resolved;
  const { anyOf: _anyOf, oneOf: _oneOf, ...rest } = resolved;
  return { ...resolveRef(nonNull[0] as Schema, root), ...rest };
}

function kindOf(schema: Schema): FieldKind {
  if (Array.isArray(schema.enum)) return "enum";
  if ("const" in schema) return "enum";
  switch (schema.type) {
    case "string":
      return "string";
    case "integer":
      return "integer";
    case "number":
      return "number";
    case "boolean":
      return "boolean";
    case "array":
      return "array";
    default:
      return "json";
  }
}

const numberOrUndefined = (value: unknown): number | undefined => (typeof value === "number" ? value : undefined);

/** The form's fields, in the schema's property order. */
export function fieldsFromSchema(rootValue: unknown): FormField[] {
  const root = asSchema(rootValue);
  const properties = asSchema(root.properties);
  const required = new Set(Array.isArray(root.required) ? (root.required as string[]) : []);
  return Object.entries(properties).map(([name, raw]) => {
    const schema = unwrapOptional(asSchema(raw), root);
    const kind = kindOf(schema);
    const items = unwrapOptional(asSchema(schema.items), root);
    const itemType = ["string", "integer", "number", "boolean"].includes(String(items.type))
      ? (items.type as FormField["itemType"])
      : undefined;
    return {
      name,
      title: typeof schema.title === "string" ? schema.title : name,
      kind,
      required: required.has(name),
      description: typeof schema.description === "string" ? schema.description : undefined,
      enumValues: Array.isArray(schema.enum) ? (schema.enum as unknown[]) : "const" in schema ? [schema.const] : undefined,
      minimum: numberOrUndefined(schema.minimum),
      maximum: numberOrUndefined(schema.maximum),
      exclusiveMinimum: numberOrUndefined(schema.exclusiveMinimum),
      exclusiveMaximum: numberOrUndefined(schema.exclusiveMaximum),
      minLength: numberOrUndefined(schema.minLength),
      maxLength: numberOrUndefined(schema.maxLength),
      itemType: kind === "array" ? itemType : undefined,
      defaultValue: schema.default,
    };
  });
}

/** The text an input starts with: the deployment's value if set, else the schema default. */
export function initialValues(fields: FormField[], deploymentParameters: Record<string, unknown> = {}): FormValues {
  const values: FormValues = {};
  for (const field of fields) {
    const value = field.name in deploymentParameters ? deploymentParameters[field.name] : field.defaultValue;
    if (field.kind === "boolean") values[field.name] = value === true;
    else if (value === undefined || value === null) values[field.name] = "";
    else if (field.kind === "array" || field.kind === "json") values[field.name] = JSON.stringify(value);
    else if (field.kind === "enum") values[field.name] = JSON.stringify(value);
    else values[field.name] = String(value);
  }
  return values;
}

function checkRange(field: FormField, value: number): string | null {
  if (field.minimum !== undefined && value < field.minimum) return `${field.title} must be at least ${field.minimum}.`;
  if (field.maximum !== undefined && value > field.maximum) return `${field.title} must be at most ${field.maximum}.`;
  if (field.exclusiveMinimum !== undefined && value <= field.exclusiveMinimum)
    return `${field.title} must be greater than ${field.exclusiveMinimum}.`;
  if (field.exclusiveMaximum !== undefined && value >= field.exclusiveMaximum)
    return `${field.title} must be less than ${field.exclusiveMaximum}.`;
  return null;
}

function itemMatches(itemType: NonNullable<FormField["itemType"]>, item: unknown): boolean {
  if (itemType === "integer") return Number.isInteger(item);
  if (itemType === "number") return typeof item === "number";
  return typeof item === itemType;
}

type Parsed = { value: unknown } | { error: string };

function parseField(field: FormField, raw: string | boolean): Parsed {
  if (field.kind === "boolean") return { value: raw === true };
  const text = String(raw).trim();
  switch (field.kind) {
    case "integer": {
      if (!/^[-+]?\d+$/.test(text)) return { error: `${field.title} must be a whole number, e.g. 10.` };
      const value = Number(text);
      const rangeError = checkRange(field, value);
      return rangeError ? { error: rangeError } : { value };
    }
    case "number": {
      const value = Number(text);
      if (!Number.isFinite(value)) return { error: `${field.title} must be a number, e.g. 1.5.` };
      const rangeError = checkRange(field, value);
      return rangeError ? { error: rangeError } : { value };
    }
    case "enum": {
      const choice = (field.enumValues ?? []).find((option) => JSON.stringify(option) === text);
      if (choice === undefined) return { error: `${field.title} must be one of the listed choices.` };
      return { value: choice };
    }
    case "array":
    case "json": {
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        return { error: `${field.title} is not valid JSON: write it as JSON, e.g. ${field.kind === "array" ? '["a", "b"]' : '{"key": "value"}'}.` };
      }
      if (field.kind === "array") {
        if (!Array.isArray(value)) return { error: `${field.title} must be a JSON array, e.g. ["a", "b"].` };
        const itemType = field.itemType;
        if (itemType && !value.every((item) => itemMatches(itemType, item)))
          return { error: `${field.title} must hold only ${itemType} values.` };
      }
      return { value };
    }
    default: {
      const value = String(raw);
      if (field.minLength !== undefined && value.length < field.minLength)
        return { error: `${field.title} must be at least ${field.minLength} characters.` };
      if (field.maxLength !== undefined && value.length > field.maxLength)
        return { error: `${field.title} must be at most ${field.maxLength} characters.` };
      return { value };
    }
  }
}

export interface FormResult {
  parameters: Record<string, unknown>;
  /** Field name -> message; empty when the form can be sent. */
  errors: Record<string, string>;
}

/**
 * Turn the inputs into run parameters. An empty optional field is left out (the flow's own
 * default applies); an empty required field, a wrong type or an out-of-range value is an error.
 */
export function validateForm(fields: FormField[], values: FormValues): FormResult {
  const parameters: Record<string, unknown> = {};
  const errors: Record<string, string> = {};
  for (const field of fields) {
    const raw = values[field.name] ?? (field.kind === "boolean" ? false : "");
    // A string of spaces is a value the user typed; other kinds ignore surrounding blanks.
    const empty = field.kind === "string" ? raw === "" : String(raw).trim() === "";
    if (field.kind !== "boolean" && empty) {
      if (field.required) errors[field.name] = `${field.title} is required: fill it in.`;
      continue;
    }
    const parsed = parseField(field, raw);
    if ("error" in parsed) errors[field.name] = parsed.error;
    else parameters[field.name] = parsed.value;
  }
  return { parameters, errors };
}
